"""Pieces every recurrent sequence function shares: checking its inputs,
walking time in either direction, and turning the per-step gate gradients
into weight gradients with a few large matrix products after the loop."""

import numpy as np

from ._checks import check_array, check_lengths, check_weights, step_mask


def check_step_inputs(x, states, weights, num_gates):
    """Validate one step's inputs; ``states`` maps names to (B, H) arrays."""
    D, H, dtype = check_weights(*weights, num_gates)
    x = check_array("x", x, (None, D), dtype)
    B = x.shape[0]
    for name, s in states.items():
        check_array(name, s, (B, H), dtype)
    return B, D, H


def check_sequence_inputs(x, states, weights, num_gates, lengths):
    """Validate a sequence's inputs; return ``(T, B, D, H, lengths, mask)``.

    ``mask`` is ``None`` without lengths, else a (T, B, 1) array of 0/1.
    """
    D, H, dtype = check_weights(*weights, num_gates)
    x = check_array("x", x, (None, None, D), dtype)
    T, B, _ = x.shape
    if T == 0 or B == 0:
        raise ValueError(f"x: expected at least one time step and one "
                         f"sequence, received shape {x.shape}")
    for name, s in states.items():
        check_array(name, s, (B, H), dtype)
    lengths = check_lengths(lengths, T, B)
    return T, B, D, H, lengths, step_mask(lengths, T, dtype)


def time_steps(T, reverse):
    """The order in which steps are computed (reversed for the backward
    direction of a bidirectional layer)."""
    return range(T - 1, -1, -1) if reverse else range(T)


def input_projection(x, w_ih, b_ih, b_hh=None):
    """x_t W_ih^T + b_ih (+ b_hh) for every step at once: one (T*B, D) x
    (D, G*H) matrix product instead of T small ones."""
    T, B, D = x.shape
    a = x.reshape(T * B, D) @ w_ih.T
    if b_ih is not None:
        a += b_ih if b_hh is None else b_ih + b_hh   # one pass over a
    return a.reshape(T, B, -1)


def sigmoid_rows_halved(num_gates, H, sigmoid_gates, dtype):
    """(num_gates * H,) factors: 1/2 on the rows of the gates listed in
    ``sigmoid_gates``, 1 elsewhere. Halving those rows of copies of the
    weights is exact (a power of two), and turns sigmoid(a) into
    tanh(a')/2 + 1/2 with a' = a/2 already computed."""
    half = np.ones(num_gates * H, dtype)
    for q in sigmoid_gates:
        half[q * H:(q + 1) * H] = 0.5
    return half


def scaled_transpose(w, scale):
    """A C-contiguous copy of w^T with column j times scale[j]. BLAS runs
    faster on it than on the transposed view, and the caller's array is
    never the one scaled (np.ascontiguousarray would return the transpose of
    a Fortran-ordered w uncopied)."""
    w_t = np.array(w.T, order="C")
    w_t *= scale
    return w_t


def previous_states(states, s0, reverse):
    """The state each step started from: s0 for the first step computed,
    then the state the previous step left."""
    prev = np.empty_like(states)
    if reverse:
        prev[-1] = s0
        prev[:-1] = states[1:]
    else:
        prev[0] = s0
        prev[1:] = states[:-1]
    return prev


def weight_gradients(d_gx, d_gh, x, h_prev, w_ih, has_bias):
    """Gradients of the weights and of x from the per-step gate gradients.

    d_gx, d_gh: (T, B, G*H) gradients of the input and hidden projections
    (the same array for RNN and LSTM; the GRU's differ in its n block).
    """
    T, B, D = x.shape
    gx = d_gx.reshape(T * B, -1)
    gh = d_gh.reshape(T * B, -1)
    dx = (gx @ w_ih).reshape(T, B, D)
    # (x^T g)^T rather than g^T x: the same numbers, and OpenBLAS is up to a
    # fifth faster on this layout (the results are transposed views)
    dw_ih = (x.reshape(T * B, D).T @ gx).T
    dw_hh = (h_prev.reshape(T * B, -1).T @ gh).T
    if not has_bias:
        return dx, dw_ih, dw_hh, None, None
    db_ih = gx.sum(axis=0)
    db_hh = db_ih.copy() if d_gh is d_gx else gh.sum(axis=0)
    return dx, dw_ih, dw_hh, db_ih, db_hh


def zeros_if_none(value, shape, dtype):
    return np.zeros(shape, dtype) if value is None else value


def check_grad(name, value, shape, dtype):
    """Gradients flowing in are checked like inputs (None means zeros)."""
    if value is None:
        return np.zeros(shape, dtype)
    return check_array(name, value, shape, dtype)
