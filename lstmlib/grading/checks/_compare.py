"""Building blocks of the graded checks: fixtures, formatting, comparison.

The checks run in the grader's process, on plain data decoded from a
kernel's answer (:mod:`lstmlib.grading.protocol`): nothing here meets an
object of the student's. Fixtures are frozen (:func:`freeze`, :func:`thaw`)
so that every use gets a fresh copy: a function that changes its inputs in
place, at home, cannot change the expected values. Arrays are compared in
the order type (exactly np.ndarray), shape, dtype, values.
"""

import math

import numpy as np

_PLAIN = (type(None), bool, int, float, str)


class GradingError(AssertionError):
    """A graded check failed; the message says what and why."""


def fail(message):
    __tracebackhide__ = True
    raise GradingError(message)


# ---------------------------------------------------------------------------
# Frozen fixtures: inputs and expected values are computed before student code
# runs and stored as immutable bytes; every use gets a fresh array.

class _Frozen:
    __slots__ = ("kind", "data", "shape", "dtype", "cls")

    def __init__(self, kind, data, shape=None, dtype=None, cls=None):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "cls", cls)

    def __setattr__(self, name, value):
        raise AttributeError("frozen fixture")


def freeze(value):
    """Turn arrays, (named) tuples, lists, dicts and plain values into an
    immutable description."""
    t = type(value)
    if t is np.ndarray:
        return _Frozen("a", value.tobytes(), tuple(value.shape),
                       value.dtype.str)
    if t in _PLAIN:
        return _Frozen("p", value)
    if isinstance(value, np.generic):
        return _Frozen("s", np.array(value).tobytes(), (),
                       np.array(value).dtype.str)
    if isinstance(value, tuple):
        items = tuple(freeze(v) for v in value)
        return _Frozen("t", items, cls=None if t is tuple else t)
    if t is list:
        return _Frozen("l", tuple(freeze(v) for v in value))
    if t is dict:
        return _Frozen("d", tuple((k, freeze(v)) for k, v in value.items()))
    raise TypeError(f"cannot freeze {t.__name__}")


def thaw(frozen):
    """A fresh, writable copy of what :func:`freeze` stored."""
    k = frozen.kind
    if k == "a":
        arr = np.frombuffer(frozen.data, dtype=np.dtype(frozen.dtype))
        return arr.reshape(frozen.shape).copy()
    if k == "p":
        return frozen.data
    if k == "s":
        return np.frombuffer(frozen.data, dtype=np.dtype(frozen.dtype))[0]
    if k == "t":
        items = [thaw(v) for v in frozen.data]
        return tuple(items) if frozen.cls is None else frozen.cls(*items)
    if k == "l":
        return [thaw(v) for v in frozen.data]
    if k == "d":
        return {key: thaw(v) for key, v in frozen.data}
    raise TypeError("bad fixture")


# ---------------------------------------------------------------------------
# Formatting

def type_name(value):
    """The name of a value's type; for a value that could not cross from a
    graded kernel (lstmlib.grading.protocol.Unsupported), its own type's."""
    t = type(value)
    if t.__name__ == "Unsupported" and t.__module__ == "lstmlib.grading.protocol":
        return value.type_name
    return t.__name__


def fmt(value, limit=400):
    """Short text for a value: arrays printed with numpy's captured printer,
    truncated to ``limit`` characters."""
    if type(value) is np.ndarray:
        try:
            text = np.array2string(value, precision=5, threshold=24,
                                    edgeitems=3, max_line_width=100)
        except Exception:
            text = "<array that cannot be printed>"
    else:
        try:
            text = repr(value)
        except BaseException:
            text = f"<{type(value).__name__} object>"
    if len(text) > limit:
        text = text[:limit] + " ..."
    return text


def shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


# ---------------------------------------------------------------------------
# Comparison: type, then shape, then dtype, then values (pure Python)

def tolerances(dtype_str):
    """(rtol, atol) for a dtype."""
    if dtype_str in ("<f4", "float32"):
        return 2e-4, 2e-5
    return 1e-6, 1e-8


def as_plain(arr):
    """A flat list of Python floats (float64 copy) of an exact ndarray."""
    return arr.astype(np.float64).ravel().tolist()


def mismatches(actual, expected, rtol=None, atol=None):
    """Flat indices where ``actual`` and ``expected`` (exact ndarrays of the
    same shape) differ, and the largest absolute difference; the tolerances
    default to those of the expected dtype."""
    if rtol is None:
        rtol, atol = tolerances(expected.dtype.str)
    a = as_plain(actual)
    e = as_plain(expected)
    bad = []
    worst = 0.0
    for i in range(len(e)):
        ai = a[i]
        ei = e[i]
        if math.isnan(ei):
            ok = math.isnan(ai)
            d = 0.0 if ok else float("inf")
        elif math.isnan(ai) or math.isinf(ai):
            ok = ai == ei
            d = 0.0 if ok else float("inf")
        else:
            d = abs(ai - ei)
            ok = d <= atol + rtol * abs(ei)
        if not ok:
            bad.append(i)
            if d > worst:
                worst = d
    return bad, worst


def same_values(actual, expected, rtol=None, atol=None):
    """True when an exact ndarray equals the expected one (shape and values)."""
    if type(actual) is not np.ndarray or type(expected) is not np.ndarray:
        return False
    if tuple(actual.shape) != tuple(expected.shape):
        return False
    bad, _ = mismatches(actual, expected, rtol, atol)
    return len(bad) == 0


def check_type_shape_dtype(where, name, actual, expected):
    """Raise GradingError unless ``actual`` is an exact ndarray with the
    expected shape and dtype."""
    __tracebackhide__ = True
    if type(actual) is not np.ndarray:
        hint = ""
        if isinstance(actual, np.ndarray) or \
                getattr(actual, "note", None) == "a subclass of np.ndarray":
            hint = (" (a subclass of np.ndarray is not accepted: return a "
                    "plain array, e.g. np.asarray(value))")
        elif actual is None:
            hint = " (did you forget a return statement?)"
        elif isinstance(actual, (list, tuple)):
            hint = " (convert with np.array(...))"
        fail(f"{where}: {name} should be a numpy array (type np.ndarray), "
             f"received {type_name(actual)}{hint}.")
    ashape = tuple(actual.shape)
    eshape = tuple(expected.shape)
    if ashape != eshape:
        hint = ""
        if len(ashape) == 2 and ashape == eshape[::-1]:
            hint = " Likely cause: the array is transposed."
        elif len(ashape) == len(eshape) + 1 or len(ashape) + 1 == len(eshape):
            hint = " Likely cause: a missing or extra axis (time or batch)."
        fail(f"{where}: {name} has shape {shape_text(ashape)}, expected "
             f"{shape_text(eshape)}.{hint}")
    if actual.dtype.str != expected.dtype.str or \
            type(actual.dtype) is not type(expected.dtype):
        fail(f"{where}: {name} has dtype {actual.dtype}, expected "
             f"{expected.dtype} (the dtype of the inputs must be preserved: "
             f"no silent upcast or downcast).")


def compare(where, name, actual, expected, cause=None, rtol=None, atol=None):
    """Check type, shape, dtype and values of one array.

    ``cause`` is called with the flat indices that differ and returns a
    sentence naming the likely cause (or ``None``).
    """
    __tracebackhide__ = True
    if expected is None:
        if actual is not None:
            fail(f"{where}: {name} should be None here (there is no bias), "
                 f"received {type_name(actual)}.")
        return
    check_type_shape_dtype(where, name, actual, expected)
    bad, worst = mismatches(actual, expected, rtol, atol)
    if not bad:
        return
    first = tuple(int(i) for i in np.unravel_index(bad[0], expected.shape)) \
        if expected.shape else ()
    msg = (f"{where}: {name} has wrong values in {len(bad)} of "
           f"{int(expected.size)} entries (largest |yours - expected| = "
           f"{worst:.3g}, first at index {first}).\n"
           f"  yours:    {fmt(actual)}\n  expected: {fmt(expected)}")
    if cause is not None:
        try:
            text = cause(bad)
        except Exception:
            text = None
        if text:
            msg += f"\n  Likely cause: {text}"
    fail(msg)


def lstm_unit_cause(H):
    """The likely cause of wrong h, c of a fused LSTM step (exercise 9): the
    hidden units that differ, and the gate blocks of the pre-activations."""
    names = ("i", "f", "g", "o")

    def cause(bad):
        return None if not bad else (
            "h and c are wrong at hidden units " +
            ", ".join(sorted({str(i % H) for i in bad})[:6]) +
            "; check the gate blocks of the pre-activations (order i, f, g, "
            f"o: {', '.join(f'{n} = a[:, {j}H:{j + 1}H]' for j, n in enumerate(names))})")
    return cause


def gate_blocks(bad, shape, axis, num_gates, names):
    """Names of the gate blocks (of size H along ``axis`` of an array of
    ``shape`` whose ``axis`` has length G*H) that contain differing entries."""
    size = shape[axis]
    H = size // num_gates
    hit = []
    for flat in bad:
        idx = np.unravel_index(flat, shape)
        g = int(idx[axis]) // H
        if names[g] not in hit:
            hit.append(names[g])
    return [n for n in names if n in hit]


def time_steps_hit(bad, shape):
    """Sorted time indices (axis 0) that contain differing entries."""
    steps = []
    for flat in bad:
        t = int(np.unravel_index(flat, shape)[0])
        if t not in steps:
            steps.append(t)
    return sorted(steps)


# the sequence types a function may return several values in
_SEQUENCES = ((tuple, "tuple"), (list, "list"))


def unpack(where, value, n, what):
    """Items of a tuple or list of length ``n``."""
    __tracebackhide__ = True
    for kind, word in _SEQUENCES:
        if isinstance(value, kind):
            if len(value) != n:
                fail(f"{where}: expected your function to return {what} "
                     f"({n} items), received a {word} of {len(value)} items.")
            return list(value)[:n]
    fail(f"{where}: expected your function to return {what}, received "
         f"{type_name(value)}: {fmt(value, 120)}")


def to_float(where, name, value):
    """A Python float from a float, a numpy floating scalar or a 0-d/size-1
    exact ndarray; anything else fails."""
    t = type(value)
    if t is float:
        return value
    if t is np.float64 or t is np.float32:
        return float(np.array(value).tolist())
    if t is np.ndarray and value.size == 1 and issubclass(value.dtype.type, np.floating):
        return float(as_plain(value)[0])
    fail(f"{where}: {name} should be a float, received {type_name(value)}: "
         f"{fmt(value, 120)}")
