"""Input validation shared by every function of the package.

Bad input raises ``ValueError`` naming the argument, with what was expected
and what arrived: never a silent broadcast, never a bare ``AssertionError``.
"""

import math

import numpy as np


def _describe(arr):
    return f"shape {tuple(arr.shape)} and dtype {arr.dtype}"


def check_array(name, value, shape, dtype=None, finite=True):
    """Return ``value`` as an ndarray after checking its shape and dtype.

    ``shape`` is a tuple of ints (or ``None`` for "any size"); its length is
    the expected rank. ``dtype`` is the dtype every operand of the call must
    share (``None``: any floating dtype). Integers, objects and mixed
    precision are refused rather than converted.

    Called on every input of every call, so the accepted case costs a few
    attribute reads and one pass for the finiteness check; the messages are
    built only when something is wrong.
    """
    if not isinstance(value, np.ndarray):
        raise ValueError(
            f"{name}: expected a numpy array, received {type(value).__name__}")
    got = value.shape
    if len(shape) != len(got):
        raise ValueError(
            f"{name}: expected a {len(shape)}-D array of shape "
            f"{_shape_text(shape)}, received {_describe(value)}")
    for want, size in zip(shape, got):
        if want is not None and want != size:
            raise ValueError(
                f"{name}: expected shape {_shape_text(shape)}, "
                f"received {_describe(value)}")
    if value.dtype.kind != "f":
        raise ValueError(
            f"{name}: expected a floating-point array, received {_describe(value)}")
    if dtype is not None and value.dtype != dtype:
        raise ValueError(
            f"{name}: expected dtype {np.dtype(dtype)} (the dtype of the "
            f"weights), received {_describe(value)}; convert explicitly "
            f"with .astype()")
    if finite and not _all_finite(value):
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        raise ValueError(
            f"{name}: expected finite values, received {bad} NaN or inf "
            f"entr{'y' if bad == 1 else 'ies'}")
    return value


def _all_finite(value):
    """True when every entry of a floating-point array is finite.

    The sum of the squares is finite only if every entry is (a NaN or an
    inf carries through, and squares cannot cancel), and it is one BLAS
    call, where isfinite and a reduction are two passes and two ufunc
    calls. Only when that sum is not finite (an entry beyond about 1e154 in
    float64, 1e19 in float32, can overflow it alone) does the exact test
    decide."""
    return math.isfinite(np.vdot(value, value)) or \
        bool(np.logical_and.reduce(np.isfinite(value), axis=None))


def _shape_text(shape):
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def check_weights(w_ih, w_hh, b_ih, b_hh, num_gates):
    """Check one cell's weights; return ``(D, H, dtype)``."""
    if not isinstance(w_hh, np.ndarray) or w_hh.ndim != 2:
        check_array("w_hh", w_hh, (None, None))      # raises, naming w_hh
    H = w_hh.shape[1]
    GH = num_gates * H
    check_array("w_hh", w_hh, (GH, H))
    dtype = w_hh.dtype
    check_array("w_ih", w_ih, (GH, None), dtype)
    if (b_ih is None) != (b_hh is None):
        raise ValueError(
            "b_ih, b_hh: expected both biases or neither, received "
            f"b_ih={'None' if b_ih is None else 'array'}, "
            f"b_hh={'None' if b_hh is None else 'array'}")
    if b_ih is not None:
        check_array("b_ih", b_ih, (GH,), dtype)
        check_array("b_hh", b_hh, (GH,), dtype)
    return w_ih.shape[1], H, dtype


def check_lengths(lengths, T, B):
    """Return ``lengths`` as an int64 array of shape (B,) with 1 <= L <= T."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.shape != (B,):
        raise ValueError(
            f"lengths: expected shape ({B},) (one length per sequence of the "
            f"batch), received shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"lengths: expected integers, received dtype {arr.dtype}")
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(
            f"lengths: expected every length in [1, {T}] (T={T}), received "
            f"values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64)


def step_mask(lengths, T, dtype):
    """(T, B, 1) array: 1 where step t is a real step of sequence b, else 0."""
    if lengths is None:
        return None
    return (np.arange(T)[:, None] < lengths[None, :])[:, :, None].astype(dtype)
