"""Tamper-resistant building blocks of the graded checks.

Everything a check needs from numpy and from the builtins is captured here
into module-private names when the module is imported, which the first cell
of every assignment does before any student code runs. Reassigning
``np.allclose``, ``np.isclose``, ``np.testing.*``, ``np.abs`` or even
``builtins.abs`` later changes nothing here: comparisons never go through
numpy's comparison functions at all, they convert both sides to plain
Python floats with ``ndarray.tolist`` (a method of a built-in type, which
cannot be reassigned) and compare them in pure Python.

A student's result is accepted only if ``type(x) is np.ndarray`` exactly:
subclasses (which may override ``__eq__``, ``__array_ufunc__``, ``tolist``)
and objects that merely claim equality score zero.
"""

import builtins as _builtins
import math as _math

import numpy as _numpy

# numpy, captured at import
_ndarray = _numpy.ndarray
_np_array = _numpy.array
_np_frombuffer = _numpy.frombuffer
_np_dtype = _numpy.dtype
_np_float64 = _numpy.dtype("float64")
_np_array2string = _numpy.array2string
_np_concatenate = _numpy.concatenate
_np_zeros = _numpy.zeros
_np_tanh = _numpy.tanh
_np_exp = _numpy.exp
_np_maximum = _numpy.maximum
_np_sqrt = _numpy.sqrt
_np_floating = _numpy.floating
_np_generic = _numpy.generic
_np_float64_type = _numpy.float64
_np_float32_type = _numpy.float32
_np_unravel_index = _numpy.unravel_index
_default_rng = _numpy.random.default_rng
# the builtins a check uses, captured at import
_type = _builtins.type
_isinstance = _builtins.isinstance
_issubclass = _builtins.issubclass
_len = _builtins.len
_range = _builtins.range
_abs = _builtins.abs
_max = _builtins.max
_min = _builtins.min
_float = _builtins.float
_int = _builtins.int
_str = _builtins.str
_repr = _builtins.repr
_tuple = _builtins.tuple
_list = _builtins.list
_dict = _builtins.dict
_zip = _builtins.zip
_enumerate = _builtins.enumerate
_getattr = _builtins.getattr
_hasattr = _builtins.hasattr
_callable = _builtins.callable
_sorted = _builtins.sorted
_any = _builtins.any
_all = _builtins.all
_bool = _builtins.bool
_bytes = _builtins.bytes
_AssertionError = _builtins.AssertionError
_BaseException = _builtins.BaseException
_Exception = _builtins.Exception
_tuple_len = _builtins.tuple.__len__
_tuple_getitem = _builtins.tuple.__getitem__
_list_len = _builtins.list.__len__
_list_getitem = _builtins.list.__getitem__
_isnan = _math.isnan
_isinf = _math.isinf
_str_join = _builtins.str.join
_str_startswith = _builtins.str.startswith
_ndarray_tolist = _ndarray.tolist
_ndarray_tobytes = _ndarray.tobytes
_ndarray_copy = _ndarray.copy
_ndarray_reshape = _ndarray.reshape
_ndarray_astype = _ndarray.astype
_ndarray_ravel = _ndarray.ravel

_NoneType = _type(None)
_PLAIN = (_NoneType, _bool, _int, _float, _str)


class GradingError(_AssertionError):
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
    t = _type(value)
    if t is _ndarray:
        return _Frozen("a", _ndarray_tobytes(value), _tuple(value.shape),
                       value.dtype.str)
    if t in _PLAIN:
        return _Frozen("p", value)
    if _isinstance(value, _np_generic):
        return _Frozen("s", _ndarray_tobytes(_np_array(value)), (),
                       _np_array(value).dtype.str)
    if _isinstance(value, _tuple):
        items = _tuple(freeze(v) for v in value)
        return _Frozen("t", items, cls=None if t is _tuple else t)
    if t is _list:
        return _Frozen("l", _tuple(freeze(v) for v in value))
    if t is _dict:
        return _Frozen("d", _tuple((k, freeze(v)) for k, v in value.items()))
    raise TypeError(f"cannot freeze {t.__name__}")


def thaw(frozen):
    """A fresh, writable copy of what :func:`freeze` stored."""
    k = frozen.kind
    if k == "a":
        arr = _np_frombuffer(frozen.data, dtype=_np_dtype(frozen.dtype))
        return _ndarray_copy(_ndarray_reshape(arr, frozen.shape))
    if k == "p":
        return frozen.data
    if k == "s":
        return _np_frombuffer(frozen.data, dtype=_np_dtype(frozen.dtype))[0]
    if k == "t":
        items = [thaw(v) for v in frozen.data]
        return _tuple(items) if frozen.cls is None else frozen.cls(*items)
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
    t = _type(value)
    if t.__name__ == "Unsupported" and t.__module__ == "lstmlib.grading.protocol":
        return value.type_name
    return t.__name__


def fmt(value, limit=400):
    """Short text for a value: arrays printed with numpy's captured printer,
    truncated to ``limit`` characters."""
    if _type(value) is _ndarray:
        try:
            text = _np_array2string(value, precision=5, threshold=24,
                                    edgeitems=3, max_line_width=100)
        except _Exception:
            text = "<array that cannot be printed>"
    else:
        try:
            text = _repr(value)
        except _BaseException:
            text = f"<{_type(value).__name__} object>"
    if _len(text) > limit:
        text = text[:limit] + " ..."
    return text


def shape_text(shape):
    return "(" + ", ".join(_str(s) for s in shape) + ("," if _len(shape) == 1 else "") + ")"


# ---------------------------------------------------------------------------
# Comparison: type, then shape, then dtype, then values (pure Python)

def tolerances(dtype_str):
    """(rtol, atol) for a dtype."""
    if dtype_str in ("<f4", "float32"):
        return 2e-4, 2e-5
    return 1e-6, 1e-8


def as_plain(arr):
    """A flat list of Python floats (float64 copy) of an exact ndarray."""
    return _ndarray_tolist(_ndarray_ravel(_ndarray_astype(arr, _np_float64)))


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
    for i in _range(_len(e)):
        ai = a[i]
        ei = e[i]
        if _isnan(ei):
            ok = _isnan(ai)
            d = 0.0 if ok else _float("inf")
        elif _isnan(ai) or _isinf(ai):
            ok = ai == ei
            d = 0.0 if ok else _float("inf")
        else:
            d = _abs(ai - ei)
            ok = d <= atol + rtol * _abs(ei)
        if not ok:
            bad.append(i)
            if d > worst:
                worst = d
    return bad, worst


def same_values(actual, expected, rtol=None, atol=None):
    """True when an exact ndarray equals the expected one (shape and values)."""
    if _type(actual) is not _ndarray or _type(expected) is not _ndarray:
        return False
    if _tuple(actual.shape) != _tuple(expected.shape):
        return False
    bad, _ = mismatches(actual, expected, rtol, atol)
    return _len(bad) == 0


def check_type_shape_dtype(where, name, actual, expected):
    """Raise GradingError unless ``actual`` is an exact ndarray with the
    expected shape and dtype."""
    __tracebackhide__ = True
    if _type(actual) is not _ndarray:
        hint = ""
        if _isinstance(actual, _ndarray) or \
                _getattr(actual, "note", None) == "a subclass of np.ndarray":
            hint = (" (a subclass of np.ndarray is not accepted: return a "
                    "plain array, e.g. np.asarray(value))")
        elif actual is None:
            hint = " (did you forget a return statement?)"
        elif _isinstance(actual, (_list, _tuple)):
            hint = " (convert with np.array(...))"
        fail(f"{where}: {name} should be a numpy array (type np.ndarray), "
             f"received {type_name(actual)}{hint}.")
    ashape = _tuple(actual.shape)
    eshape = _tuple(expected.shape)
    if ashape != eshape:
        hint = ""
        if _len(ashape) == 2 and ashape == eshape[::-1]:
            hint = " Likely cause: the array is transposed."
        elif _len(ashape) == _len(eshape) + 1 or _len(ashape) + 1 == _len(eshape):
            hint = " Likely cause: a missing or extra axis (time or batch)."
        fail(f"{where}: {name} has shape {shape_text(ashape)}, expected "
             f"{shape_text(eshape)}.{hint}")
    if actual.dtype.str != expected.dtype.str or \
            _type(actual.dtype) is not _type(expected.dtype):
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
    first = _tuple(_int(i) for i in _np_unravel_index(bad[0], expected.shape)) \
        if expected.shape else ()
    msg = (f"{where}: {name} has wrong values in {_len(bad)} of "
           f"{_int(expected.size)} entries (largest |yours - expected| = "
           f"{worst:.3g}, first at index {first}).\n"
           f"  yours:    {fmt(actual)}\n  expected: {fmt(expected)}")
    if cause is not None:
        try:
            text = cause(bad)
        except _Exception:
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
        idx = _np_unravel_index(flat, shape)
        g = _int(idx[axis]) // H
        if names[g] not in hit:
            hit.append(names[g])
    return [n for n in names if n in hit]


def time_steps_hit(bad, shape):
    """Sorted time indices (axis 0) that contain differing entries."""
    steps = []
    for flat in bad:
        t = _int(_np_unravel_index(flat, shape)[0])
        if t not in steps:
            steps.append(t)
    return _sorted(steps)


# the sequence types a function may return several values in, each with the
# built-in length and item methods captured above
_SEQUENCES = ((_tuple, _tuple_len, _tuple_getitem, "tuple"),
              (_list, _list_len, _list_getitem, "list"))


def unpack(where, value, n, what):
    """Items of a tuple or list of length ``n`` read through the built-in
    types' own methods (a tuple subclass cannot lie about its items)."""
    __tracebackhide__ = True
    for kind, length, item, word in _SEQUENCES:
        if _issubclass(_type(value), kind):
            if length(value) != n:
                fail(f"{where}: expected your function to return {what} "
                     f"({n} items), received a {word} of {length(value)} items.")
            return [item(value, i) for i in _range(n)]
    fail(f"{where}: expected your function to return {what}, received "
         f"{type_name(value)}: {fmt(value, 120)}")


def to_float(where, name, value):
    """A Python float from a float, a numpy floating scalar or a 0-d/size-1
    exact ndarray; anything else fails."""
    t = _type(value)
    if t is _float:
        return value
    if t is _np_float64_type or t is _np_float32_type:
        return _float(_ndarray_tolist(_np_array(value)))
    if t is _ndarray and value.size == 1 and _issubclass(value.dtype.type, _np_floating):
        return _float(as_plain(value)[0])
    fail(f"{where}: {name} should be a float, received {type_name(value)}: "
         f"{fmt(value, 120)}")
