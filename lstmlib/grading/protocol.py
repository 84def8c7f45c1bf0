"""What crosses the boundary between the grader and a graded kernel.

Only plain data crosses it, as JSON text, never pickle: ``None``, booleans,
integers, floats, strings, numpy arrays and scalars of a numeric or boolean
dtype (raw bytes in base64 with their dtype and shape), and tuples, lists,
named tuples and string-keyed dicts of these. :func:`encode` writes the
grader's inputs; :func:`decode` reads what the kernel sent back and refuses
everything else: a value the kernel could not describe as plain data comes
back as an :class:`Unsupported` marker naming its type, which every check
treats as a wrong-type answer.

The kernel side has its own copy of the format (``lstmlib.selfcheck._codec``);
this module never imports it.
"""
from __future__ import annotations

import base64
import json

import numpy as np

#: dtype kinds that may cross: bool, signed and unsigned ints, floats, complex
_KINDS = "biufc"
MAX_DEPTH = 16
MAX_ITEMS = 100_000


class ProtocolError(ValueError):
    """What the kernel sent is not plain data in the expected format."""


class Unsupported:
    """Stands for a value that is not plain data (an object with its own
    ``__eq__``, an ndarray subclass, a function...): only its type's name
    crossed the boundary."""

    __slots__ = ("type_name", "note")

    def __init__(self, type_name, note=""):
        self.type_name = str(type_name)[:200]
        self.note = str(note)[:200]

    def __repr__(self):
        return f"<{self.type_name} object: not plain data>"


def _float(value):
    return {"f": float(value).hex()}


def encode(value, _depth=0):
    """The JSON-ready form of a plain value (the grader's inputs)."""
    if _depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is int:
        return value
    if t is float:
        return _float(value)
    if t is str:
        return {"s": value}
    if t is np.ndarray:
        if value.dtype.kind not in _KINDS:
            raise ProtocolError(f"arrays of dtype {value.dtype} do not cross")
        arr = np.ascontiguousarray(value)
        return {"a": base64.b64encode(arr.tobytes()).decode("ascii"),
                "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(value, np.generic) and value.dtype.kind in _KINDS:
        arr = np.asarray(value)
        return {"n": base64.b64encode(arr.tobytes()).decode("ascii"), "dtype": arr.dtype.str}
    if isinstance(value, tuple):
        items = [encode(v, _depth + 1) for v in value]
        if t is tuple:
            return {"t": items}
        return {"t": items, "nt": f"{t.__module__}.{t.__qualname__}"}
    if t is list:
        return {"l": [encode(v, _depth + 1) for v in value]}
    if t is dict:
        if not all(type(k) is str for k in value):
            raise ProtocolError("dicts cross with string keys only")
        return {"d": [[k, encode(v, _depth + 1)] for k, v in value.items()]}
    raise ProtocolError(f"a {t.__name__} is not plain data")


def dumps(value) -> str:
    return json.dumps(encode(value), separators=(",", ":"))


class _Budget:
    def __init__(self):
        self.items = 0

    def tick(self):
        self.items += 1
        if self.items > MAX_ITEMS:
            raise ProtocolError(f"more than {MAX_ITEMS} values")


def _dtype(text):
    if not isinstance(text, str) or len(text) > 8:
        raise ProtocolError(f"bad dtype {text!r}")
    try:
        dt = np.dtype(text)
    except TypeError:
        raise ProtocolError(f"bad dtype {text!r}") from None
    if dt.kind not in _KINDS or dt.hasobject or dt.fields is not None or dt.subdtype:
        raise ProtocolError(f"dtype {text!r} does not cross")
    return dt


def _bytes(text):
    if not isinstance(text, str):
        raise ProtocolError("array data must be base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ProtocolError("array data is not base64") from None


def decode(data, _depth=0, _budget=None):
    """A plain value from its JSON-ready form (what a kernel sent back)."""
    budget = _budget or _Budget()
    budget.tick()
    if _depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    t = type(data)
    if data is None or t is bool or t is int:
        return data
    if t is not dict or len(data) == 0:
        raise ProtocolError(f"unexpected {t.__name__} in the answer")
    if "f" in data:
        try:
            return float.fromhex(data["f"])
        except (TypeError, ValueError):
            raise ProtocolError("bad float") from None
    if "s" in data:
        if type(data["s"]) is not str:
            raise ProtocolError("bad string")
        return data["s"]
    if "a" in data:
        dt = _dtype(data.get("dtype"))
        shape = data.get("shape")
        if type(shape) is not list or len(shape) > 32 or \
                not all(type(s) is int and 0 <= s for s in shape):
            raise ProtocolError("bad array shape")
        raw = _bytes(data["a"])
        size = 1
        for s in shape:
            size *= s
        if size * dt.itemsize != len(raw):
            raise ProtocolError("array data does not match its shape and dtype")
        return np.frombuffer(raw, dtype=dt).reshape(shape).copy()
    if "n" in data:
        dt = _dtype(data.get("dtype"))
        raw = _bytes(data["n"])
        if len(raw) != dt.itemsize:
            raise ProtocolError("bad scalar")
        return np.frombuffer(raw, dtype=dt)[0]
    if "t" in data or "l" in data:
        items = data.get("t", data.get("l"))
        if type(items) is not list:
            raise ProtocolError("bad sequence")
        values = [decode(v, _depth + 1, budget) for v in items]
        return tuple(values) if "t" in data else values
    if "d" in data:
        pairs = data["d"]
        if type(pairs) is not list:
            raise ProtocolError("bad dict")
        out = {}
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise ProtocolError("bad dict entry")
            out[pair[0]] = decode(pair[1], _depth + 1, budget)
        return out
    if "x" in data:
        return Unsupported(data["x"] if isinstance(data["x"], str) else "object",
                           data.get("note", "") if isinstance(data.get("note", ""), str) else "")
    raise ProtocolError("unknown value kind")


def loads(text: str):
    """Decode a kernel's answer: JSON (no NaN/Infinity literals) then
    :func:`decode`."""
    def constant(name):
        raise ProtocolError(f"bare {name} in the answer")
    try:
        data = json.loads(text, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"the answer is not valid JSON ({type(exc).__name__})") from None
    try:
        return decode(data)
    except RecursionError:
        raise ProtocolError("value nested too deeply") from None
