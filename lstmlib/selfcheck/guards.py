"""Kernel side: detect a graded function that delegates to the reference implementation.

A part scores zero when the student's function calls or imports lstmlib's
own implementation of a graded function, or PyTorch's recurrent modules
(``torch.nn.RNN``/``LSTM``/``GRU``, their ``*Cell`` versions, ``torch._VF``
and the ``torch.lstm``-style functions behind them). Two independent
detectors:

1. :func:`scan`: static inspection of the function's code objects
   (``co_names`` and ``co_consts``, recursively, nested functions included),
   of the globals, closure cells and default arguments they resolve to, and
   of the other notebook functions they call.
2. :func:`tripwires`: while the student's function runs, every binding of
   a graded function in every ``lstmlib`` module, and torch's recurrent
   modules, are replaced by tripwires that record the call (catching the
   exception the tripwire raises does not hide it).

Helpers that are not graded (``lstmlib.activations.sigmoid``, the named
tuples of caches, the step functions in a sequence assignment) stay usable.
"""

import builtins as _builtins
import sys as _sys
import types as _types



class GuardFailure(AssertionError):
    """A graded function delegates; the message says how."""


def fail(message):
    __tracebackhide__ = True
    raise GuardFailure(message)

_FunctionType = _types.FunctionType
_CodeType = _types.CodeType
_ModuleType = _types.ModuleType
_MethodType = _types.MethodType
_BuiltinFunctionType = _types.BuiltinFunctionType
_type = _builtins.type
_id = _builtins.id
_getattr = _builtins.getattr
_setattr = _builtins.setattr
_vars = _builtins.vars
_isinstance = _builtins.isinstance
_list = _builtins.list
_set = _builtins.set
_sys_modules = _sys.modules
_sys_meta_path = _sys.meta_path

# torch's recurrent machinery: attribute names on torch, torch.nn and
# torch.nn.modules.rnn
TORCH_RNN_NAMES = (
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RNNBase",
    "RNNCellBase", "_VF", "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell",
    "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "_thnn_fused_lstm_cell",
    "_thnn_fused_gru_cell",
)
_TORCH_HOLDERS = ("torch", "torch.nn", "torch.nn.modules.rnn", "torch._VF")


class DelegationError(Exception):
    """Raised by a tripwire: the reference implementation was called."""


def _lstmlib_modules():
    return [(name, mod) for name, mod in _list(_sys_modules.items())
            if _isinstance(mod, _ModuleType)
            and (name == "lstmlib" or name.startswith("lstmlib."))
            and not name.startswith(("lstmlib.grading", "lstmlib.selfcheck"))]


def forbidden_objects(names):
    """{id(obj): "module.name"} for every binding, in any lstmlib module, of a
    function, class or cell description whose name is in ``names``."""
    found = {}
    for modname, mod in _lstmlib_modules():
        try:
            items = _list(_vars(mod).items())
        except TypeError:
            continue
        for attr, value in items:
            qual = _getattr(value, "__name__", None)
            if qual in names and _getattr(value, "__module__", "") and \
                    _getattr(value, "__module__", "").startswith("lstmlib"):
                found.setdefault(_id(value), f"{value.__module__}.{qual}")
    return found


def _torch_forbidden():
    found = {}
    for holder in _TORCH_HOLDERS:
        mod = _sys_modules.get(holder)
        if mod is None:
            continue
        for attr in TORCH_RNN_NAMES:
            try:
                value = _getattr(mod, attr)
            except Exception:
                continue
            found.setdefault(_id(value), f"{holder}.{attr}")
        if holder == "torch._VF":
            found.setdefault(_id(mod), "torch._VF")
    return found


def _codes(code):
    """A code object and every code object nested in its constants."""
    out = [code]
    for const in code.co_consts:
        if _type(const) is _CodeType:
            out.extend(_codes(const))
    return out


def _is_forbidden_module_name(name, module_names):
    return name in module_names or name == "torch._VF" or \
        name.startswith("torch.nn.modules.rnn")


def scan(fn, names, module_names=()):
    """Return a list of findings (text) if ``fn`` refers to a forbidden
    object; empty when it looks like the student's own work.

    ``names``: names of the graded functions; ``module_names``: modules whose
    import inside the function is itself a finding (e.g. "lstmlib.lstm" when
    every function there is graded).
    """
    forb = forbidden_objects(names)
    forb.update(_torch_forbidden())
    findings = []
    seen = _set()
    todo = [fn]
    while todo:
        f = todo.pop()
        if _id(f) in seen:
            continue
        seen.add(_id(f))
        if _id(f) in forb:
            findings.append(f"{_getattr(f, '__name__', '?')} is {forb[_id(f)]}")
            continue
        if _type(f) is _MethodType:
            todo.append(f.__func__)
            continue
        if _type(f) is not _FunctionType:
            continue
        mod = _getattr(f, "__module__", "") or ""
        if mod.startswith("lstmlib") and not mod.startswith(("lstmlib.grading", "lstmlib.selfcheck")):
            # a function of the library itself (a helper the student may use)
            continue
        glob = f.__globals__
        values = []
        for cell in f.__closure__ or ():
            try:
                values.append(("a closure variable", cell.cell_contents))
            except ValueError:
                pass
        for d in (f.__defaults__ or ()):
            values.append(("a default argument", d))
        for d in (f.__kwdefaults__ or {}).values():
            values.append(("a default argument", d))
        for code in _codes(f.__code__):
            names_here = code.co_names
            imports_torch = False
            for n in names_here:
                if n == "torch" or n.startswith("torch."):
                    imports_torch = True
                if n in module_names or _is_forbidden_module_name(n, module_names):
                    findings.append(f"{code.co_name} imports {n}")
                if n in glob:
                    values.append((f"the global {n!r}", glob[n]))
            for c in code.co_consts:
                if _type(c) is str and (c in module_names or c == "torch._VF"
                                        or c.startswith("torch.nn.modules.rnn")):
                    findings.append(f"{code.co_name} names the module {c!r}")
            if imports_torch:
                hits = [n for n in names_here if n in TORCH_RNN_NAMES]
                if hits:
                    findings.append(f"{code.co_name} uses torch's recurrent "
                                    f"module(s) {', '.join(hits)}")
            # module attributes reached through dotted access: m.sub.func
            modules = [v for _, v in values if _isinstance(v, _ModuleType)]
            seen_mod = _set()
            while modules:
                m = modules.pop()
                if _id(m) in seen_mod:
                    continue
                seen_mod.add(_id(m))
                for n in names_here:
                    try:
                        v = _getattr(m, n)
                    except Exception:
                        continue
                    if _id(v) in forb:
                        findings.append(f"{code.co_name} uses {forb[_id(v)]} "
                                        f"(through {m.__name__}.{n})")
                    elif _isinstance(v, _ModuleType):
                        modules.append(v)
        for how, v in values:
            if _id(v) in forb:
                findings.append(f"{f.__name__} uses {forb[_id(v)]} ({how})")
            elif _type(v) in (_FunctionType, _MethodType) and (
                    _getattr(v, "__globals__", None) is glob or
                    _getattr(v, "__module__", None) in (None, "__main__")):
                todo.append(v)            # another function of the notebook
    out = []
    for text in findings:
        if text not in out:
            out.append(text)
    return out


class _Tripwire:
    """Stands in for a forbidden callable or module; records any use."""

    def __init__(self, label, log):
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_log", log)

    def _trip(self):
        log = object.__getattribute__(self, "_log")
        label = object.__getattribute__(self, "_label")
        log.append(label)
        raise DelegationError(f"{label} may not be used in a graded function")

    def __call__(self, *args, **kwargs):
        self._trip()

    def __getattr__(self, name):
        self._trip()


class _TorchBlocker:
    """A meta-path finder that refuses to import torch while a graded
    function runs (when torch was not imported before)."""

    def __init__(self, log):
        self.log = log

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            self.log.append(f"import {name}")
            raise ImportError(f"{name} may not be imported in a graded function")
        return None


class tripwires:
    """Context manager: replace every binding of the graded functions in
    lstmlib (and torch's recurrent modules) by tripwires.

    ``log`` (a list) receives a label for every use; the caller checks it
    after the student's function returns (or raises).
    """

    def __init__(self, names, wrap=None, student_globals=None, fn=None):
        self._cells = _list(_getattr(fn, "__closure__", None) or ())
        self._saved_cells = []
        self.names = names
        self.wrap = wrap or {}
        self.log = []
        self._saved = []
        self._saved_globals = []
        self._blocker = None
        self._globals = student_globals

    def __enter__(self):
        forb = forbidden_objects(self.names)
        wrappers = {}           # id(original) -> wrapper
        for modname, mod in _lstmlib_modules():
            for attr, value in _list(_vars(mod).items()):
                if _id(value) in forb:
                    self._patch(mod, attr, _Tripwire(forb[_id(value)], self.log))
                elif attr in self.wrap and callable(value) and \
                        (_getattr(value, "__module__", "") or "").startswith("lstmlib"):
                    if _id(value) not in wrappers:
                        wrappers[_id(value)] = self.wrap[attr](value, self.log)
                    self._patch(mod, attr, wrappers[_id(value)])
        if self._globals is not None:   # names the notebook imported itself
            g = self._globals
            for name, value in _list(g.items()):
                if _id(value) in forb:
                    self._saved_globals.append((name, value))
                    g[name] = _Tripwire(forb[_id(value)], self.log)
                elif _id(value) in wrappers:
                    self._saved_globals.append((name, value))
                    g[name] = wrappers[_id(value)]
        for cell in self._cells:        # and the variables it closes over
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if _id(value) in forb:
                self._saved_cells.append((cell, value))
                cell.cell_contents = _Tripwire(forb[_id(value)], self.log)
            elif _id(value) in wrappers:
                self._saved_cells.append((cell, value))
                cell.cell_contents = wrappers[_id(value)]
        if "torch" in _sys_modules:
            for holder in _TORCH_HOLDERS:
                mod = _sys_modules.get(holder)
                if mod is None or holder == "torch._VF":
                    continue
                for attr in TORCH_RNN_NAMES:
                    if attr in _vars(mod):
                        self._patch(mod, attr,
                                    _Tripwire(f"{holder}.{attr}", self.log))
        else:
            self._blocker = _TorchBlocker(self.log)
            _sys_meta_path.insert(0, self._blocker)
        return self

    def _patch(self, mod, attr, value):
        self._saved.append((mod, attr, _vars(mod)[attr]))
        _setattr(mod, attr, value)

    def __exit__(self, *exc):
        for mod, attr, value in reversed(self._saved):
            _setattr(mod, attr, value)
        self._saved = []
        for name, value in reversed(self._saved_globals):
            self._globals[name] = value
        self._saved_globals = []
        for cell, value in reversed(self._saved_cells):
            cell.cell_contents = value
        self._saved_cells = []
        if self._blocker is not None:
            try:
                _sys_meta_path.remove(self._blocker)
            except ValueError:
                pass
        return False


def require_own_function(where, fn, names, module_names=()):
    """Fail the part unless ``fn`` is a plain Python function written in the
    notebook that does not refer to the reference implementation."""
    __tracebackhide__ = True
    if _type(fn) is not _FunctionType:
        fail(f"{where}: expected the function you wrote (a Python function "
             f"defined with def), received {_type(fn).__name__}.")
    mod = _getattr(fn, "__module__", "") or ""
    if mod.startswith("lstmlib") or mod.startswith("torch"):
        fail(f"{where}: this is {mod}.{fn.__name__}, the reference "
             f"implementation, not yours. Delegating to the reference scores "
             f"zero for this part: write the computation yourself.")
    findings = scan(fn, names, module_names)
    if findings:
        fail(f"{where}: your function delegates to the reference "
             f"implementation ({'; '.join(findings[:3])}). Delegating scores "
             f"zero for this part: write the computation yourself (helpers "
             f"such as lstmlib.activations.sigmoid are fine).")


def check_log(where, log):
    __tracebackhide__ = True
    if log:
        seen = []
        for item in log:
            if item not in seen:
                seen.append(item)
        fail(f"{where}: your function used {', '.join(seen[:3])} while it ran. "
             f"Delegating to the reference implementation or to torch's "
             f"recurrent modules scores zero for this part: write the "
             f"computation yourself.")
