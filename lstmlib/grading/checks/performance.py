"""The checks of 09_performance (the notebook kernels.ipynb), judged from
the notebook's source.

Nothing the student's kernel says about the function decides a grade (a
kernel can rebind ``numba.core.registry.CPUDispatcher`` or hand over any
object with ``__getitem__`` and ``py_func``). Instead, for each part:

1. **The cell.** The handle gives the code cells that ran before the test
   cell (``handle.cells``: the grader's record of the notebook; at home the
   cell that defines the function). The last one that defines the graded
   function at top level is its cell; a later binding of the same name
   (``lstm_step_fused = something(lstm_step_fused)``) is refused.
2. **The static check** (:func:`graded_module`), with :mod:`ast`. Kept:
   imports of numpy, math, numba and numba.cuda (from any cell, the setup
   cell's included), the graded function and the functions of its cell it
   reaches, the cell's constant assignments. Decorators are checked, then
   removed: Part A accepts ``@njit``, ``@numba.njit`` and ``@jit`` /
   ``@numba.jit`` in nopython mode, with or without options (``parallel``,
   ``fastmath``, ``cache``, ... are accepted and ignored: the grader
   compiles with a plain ``numba.njit``, ``prange`` then runs as ``range``),
   and refuses ``forceobj=True``, ``nopython=False`` and ``looplift``;
   Part B accepts ``@cuda.jit`` for the kernel and
   ``@cuda.jit(device=True)`` for the helpers it calls. Refused anywhere in
   those functions: ``objmode`` (and every ``with``), imports, ``global``,
   nested functions and classes, defaults that are not constants, names
   other than the function's own variables, the cell's functions and
   constants, numpy, math, numba and a few builtins (``range``, ``len``,
   ``min``...), numpy's file functions (``np.load``, ``np.fromfile``,
   ``tofile``...) and every attribute that starts with ``_``.
   ``NUMBA_DISABLE_JIT`` set by the student changes nothing: the cell's
   other statements are dropped and the driver sets it to 0.
3. **The run**, in a fresh process that holds numpy, numba and llvmlite
   only (:func:`lstmlib.grading.sandbox.run_python`, no lstmlib): a
   grader-written driver (:data:`DRIVER`) executes the kept definitions,
   applies the grader's own ``numba.njit`` (Part A, helpers included) or
   ``numba.cuda.jit`` in the simulator (Part B, ``NUMBA_ENABLE_CUDASIM=1``),
   calls them on the inputs drawn here, sent on stdin as plain data
   (:mod:`lstmlib.grading.protocol`'s format, decoded by the driver's own
   copy), and prints the outputs as plain data. A function that does not
   compile in nopython mode scores the part zero with numba's message,
   shortened; the outputs are compared here with the numpy reference. One
   run answers a part's visible and hidden cases (numba's first compilation
   is most of its time); a run lasts :data:`RUN_SECONDS` at most. Where the
   box cannot be built (the instructor graded with the sandbox switched
   off), the run takes a plain process too.

The self-checks at home (``checks.fused_step`` of
:mod:`lstmlib.selfcheck.checks`) run these same functions, with a plain
``python -I`` process instead of the box.
"""
from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

from .. import protocol
from ._compare import compare, fail, lstm_unit_cause
from ._engine import _rng

# (name, B, D, H, dtype, bias scale) per case: what they test is fixed,
# the numbers are drawn at each grading
_STEP_CASES = {
    "visible": [("B=2, D=3, H=4, float64", 2, 3, 4, "float64", 1.0)],
    "hidden": [("B=1, D=1, H=1, float64", 1, 1, 1, "float64", 1.0),
               ("B=3, D=5, H=6, float32", 3, 5, 6, "float32", 1.0),
               ("B=2, D=4, H=3, zero bias, float64", 2, 4, 3, "float64", 0.0)],
}
_KERNEL_CASES = {
    "visible": [("B=4, H=8, float64", 4, 8, "float64")],
    "hidden": [("B=3, H=5 (not a multiple of the block), float64", 3, 5, "float64"),
               ("B=2, H=16, float32", 2, 16, "float32")],
}
BLOCK = (4, 8)
#: seconds one run of the driver may take (numba's import and compilation
#: included: a few seconds)
RUN_SECONDS = 60
#: the distributions the driver's process holds
DISTRIBUTIONS = ("numpy", "numba", "llvmlite")

# ---------------------------------------------------------------------------
# the static check

#: modules a graded cell may import
ALLOWED_MODULES = ("numpy", "math", "numba", "numba.cuda")
#: what the notebook's setup cell imports, known to every graded cell
_SETUP_NAMES = {"math": "math", "np": "numpy", "cuda": "numba.cuda", "njit": "numba.njit"}
#: builtins a graded function may use (what numba compiles, and the
#: exceptions a function may raise)
ALLOWED_BUILTINS = frozenset({
    "range", "len", "min", "max", "abs", "float", "int", "bool", "round", "enumerate",
    "zip", "tuple", "sum", "pow", "divmod", "complex", "print", "ValueError",
    "IndexError", "AssertionError", "ZeroDivisionError", "RuntimeError",
    "NotImplementedError", "Exception"})
#: numpy's submodules a graded function may use
_NUMPY_SUBMODULES = frozenset({"linalg", "random", "fft", "emath"})
#: what reads or writes files, loads code or reaches the function behind a
#: compiled one: refused as a name and as an attribute of anything
_FORBIDDEN_ATTRIBUTES = frozenset({
    "load", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt",
    "fromfile", "tofile", "fromregex", "memmap", "open_memmap", "DataSource", "dump",
    "dumps", "ctypes", "ctypeslib", "py_func", "objmode", "extending", "core", "misc",
    "lib", "testing", "f2py", "distutils", "tests"})
_NUMBA_TOP = frozenset({
    "njit", "jit", "prange", "literal_unroll", "cuda", "types", "typed", "float32",
    "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "intp", "boolean", "complex64", "complex128"})
_CUDA_NAMES = frozenset({
    "grid", "gridsize", "threadIdx", "blockIdx", "blockDim", "gridDim", "syncthreads",
    "syncwarp", "shared", "local", "const", "atomic", "laneid", "warpsize", "fma",
    "cbrt", "jit"})
#: options of @njit / @jit accepted (and ignored: the grader compiles with
#: its own plain numba.njit)
_NJIT_OPTIONS = frozenset({"nopython", "cache", "fastmath", "parallel", "nogil",
                           "boundscheck", "error_model", "inline", "forceinline"})
_CUDA_OPTIONS = frozenset({"device", "fastmath", "debug", "opt", "lineinfo", "cache",
                           "max_registers", "inline", "forceinline"})
#: statements refused inside a graded function (and its helpers)
_REFUSED_NODES = {
    ast.Import: "an import", ast.ImportFrom: "an import", ast.Global: "a global statement",
    ast.Nonlocal: "a nonlocal statement", ast.ClassDef: "a class", ast.Lambda: "a lambda",
    ast.FunctionDef: "a nested function", ast.AsyncFunctionDef: "a nested function",
    ast.With: "a with block (numba's objmode runs Python)", ast.AsyncWith: "a with block",
    ast.Await: "await", ast.AsyncFor: "async for"}


class Refused(Exception):
    """The cell cannot be graded as it is; the message says why."""


def _parse(source):
    """(tree, text) of a cell: its text as IPython runs it."""
    try:
        return ast.parse(source), source
    except SyntaxError:
        pass
    try:                                   # a cell with IPython magics
        from IPython.core.inputtransformer2 import TransformerManager
        text = TransformerManager().transform_cell(source)
        return ast.parse(text), text
    except Exception as exc:               # noqa: BLE001
        raise Refused(f"its cell is not valid Python ({type(exc).__name__}: {exc})") from None


def _bound_names(node):
    """Names a module-level statement binds (function bodies not entered)."""
    out = []
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(n.name)
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.append(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out += [(a.asname or a.name).split(".")[0] for a in n.names]
        todo.extend(ast.iter_child_nodes(n))
    return out


def _import_aliases(tree, aliases, foreign):
    """Record the module-level imports of ``tree`` in ``aliases`` (name ->
    dotted path): those of allowed modules bind, any other import of the same
    name unbinds it and is recorded in ``foreign`` (name -> module)."""
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    ok = a.name in ALLOWED_MODULES
                    name, path = a.asname, a.name
                else:                      # import numba.cuda binds numba
                    name = path = a.name.split(".")[0]
                    ok = name in ALLOWED_MODULES
                if ok:
                    aliases[name] = path
                    foreign.pop(name, None)
                else:
                    aliases.pop(name, None)
                    foreign[name] = a.name
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name == "objmode" and node.module and node.module.startswith("numba"):
                    raise Refused("it imports numba's objmode, which runs Python inside a "
                                  "compiled function")
                name = a.asname or a.name
                if node.level == 0 and node.module in ALLOWED_MODULES and a.name != "*":
                    aliases[name] = f"{node.module}.{a.name}"
                    foreign.pop(name, None)
                else:
                    aliases.pop(name, None)
                    foreign[name] = f"{'.' * node.level}{node.module or ''}"


def _allowed_path(path):
    """Whether a dotted path (``numpy.empty``, ``numba.cuda.grid``) may be used."""
    parts = path.split(".")
    if any(p.startswith("_") or p in _FORBIDDEN_ATTRIBUTES for p in parts):
        return False
    top = parts[0]
    if top == "math":
        return True
    if top == "numpy":
        if len(parts) > 1 and isinstance(getattr(np, parts[1], None), types.ModuleType):
            return parts[1] in _NUMPY_SUBMODULES
        return True
    if top == "numba":
        if len(parts) == 1:
            return True
        if parts[1] not in _NUMBA_TOP:
            return False
        return parts[1] != "cuda" or len(parts) == 2 or parts[2] in _CUDA_NAMES
    return False


def _resolve(node, aliases):
    """The dotted path of a Name/Attribute chain whose base is an alias of an
    allowed module, else None."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *reversed(attrs)])
    return None


def _constant(node):
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _decorator(fn, aliases, part):
    """What the function's decorator asks for: "njit", "kernel", "device" or
    None (no decorator); refused when it is anything else."""
    if not fn.decorator_list:
        return None
    if len(fn.decorator_list) > 1:
        raise Refused(f"{fn.name} has {len(fn.decorator_list)} decorators; use one")
    dec = fn.decorator_list[0]
    call = dec if isinstance(dec, ast.Call) else None
    path = _resolve(call.func if call else dec, aliases)
    text = ast.unparse(dec)
    if call is not None:
        if not all(_constant(a) for a in call.args) or \
                not all(k.arg is not None and _constant(k.value) for k in call.keywords):
            raise Refused(f"the options of @{text} must be constants")
        options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    else:
        options = {}
    if part == "A" and path in ("numba.njit", "numba.jit"):
        if options.get("forceobj") or options.get("nopython", True) is False or \
                options.get("looplift"):
            raise Refused(f"@{text} asks for object mode (forceobj=True or "
                          f"nopython=False), a Python fallback; use @njit so that "
                          f"{fn.name} compiles to machine code")
        unknown = sorted(set(options) - _NJIT_OPTIONS)
        if unknown:
            raise Refused(f"@{text}: the option {unknown[0]!r} is not one the grader "
                          f"accepts ({', '.join(sorted(_NJIT_OPTIONS))})")
        return "njit"
    if part == "B" and path == "numba.cuda.jit":
        unknown = sorted(set(options) - _CUDA_OPTIONS)
        if unknown:
            raise Refused(f"@{text}: the option {unknown[0]!r} is not one the grader "
                          f"accepts ({', '.join(sorted(_CUDA_OPTIONS))})")
        return "device" if options.get("device") else "kernel"
    want = "@njit" if part == "A" else "@cuda.jit"
    raise Refused(f"{fn.name} is decorated with @{text}; the grader accepts {want} "
                  f"(imported from numba)")


_DELEGATION = ("lstmlib", "torch")


def _delegates(fn, module, what):
    return Refused(f"{fn.name} delegates to the reference implementation: it uses {what} "
                   f"from {module}; write the computation yourself")


def _check_function(fn, aliases, functions, constants, foreign):
    """Refuse what a graded function may not do; the names of the cell's
    functions it calls."""
    args = fn.args
    for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
        if not _constant(default):
            raise Refused(f"{fn.name}: the default {ast.unparse(default)!r} is not a "
                          f"constant")
    local = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    local |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    body = ast.Module(body=fn.body, type_ignores=[])
    unwritten = any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)
                    for n in ast.walk(body))
    for node in ast.walk(body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            for m in modules:
                if m.split(".")[0] in _DELEGATION:
                    raise _delegates(fn, m, "an import")
        for kind, what in _REFUSED_NODES.items():
            if isinstance(node, kind):
                raise Refused(f"{fn.name} contains {what} (line {node.lineno}); "
                              f"a graded function may not")
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            local.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            local.add(node.name)
    calls = set()
    for node in ast.walk(body):
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in _FORBIDDEN_ATTRIBUTES:
                raise Refused(f"{fn.name} uses {ast.unparse(node)} (line {node.lineno}): a "
                              f"graded function may not read or write files, load code "
                              f"or use attributes that start with _")
            path = _resolve(node, aliases)
            base = node
            while isinstance(base, ast.Attribute):
                base = base.value
            if path is not None and not (isinstance(base, ast.Name) and base.id in local) \
                    and not _allowed_path(path):
                raise Refused(f"{fn.name} uses {ast.unparse(node)} (line {node.lineno}), "
                              f"which a graded function may not")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            name = node.id
            if name in local or name in constants:
                continue
            if name in functions:
                calls.add(name)
            elif name in aliases:
                if not _allowed_path(aliases[name]):
                    raise Refused(f"{fn.name} uses {name} ({aliases[name]}, line "
                                  f"{node.lineno}), which a graded function may not")
            elif name not in ALLOWED_BUILTINS:
                module = foreign.get(name, "")
                if module.split(".")[0] in _DELEGATION:
                    raise _delegates(fn, module, repr(name))
                if unwritten:
                    raise Refused(f"{fn.name} is not written yet (it raises "
                                  f"NotImplementedError)")
                raise Refused(
                    f"{fn.name} uses {name!r} (line {node.lineno}), which is none of its "
                    f"own variables, the functions and constants of its cell, numpy, math "
                    f"or numba: a graded function may use only those")
    return calls


def _defining_cell(cells, name):
    """(index, tree, def node) of the last cell defining ``name`` at top
    level; the trees and texts of all cells."""
    found = None
    trees, texts = [], []
    for i, source in enumerate(cells):
        try:
            tree, text = _parse(source)
        except Refused:
            tree, text = None, source
        trees.append(tree)
        texts.append(text)
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                found = (i, tree, node)
    return found, trees, texts


def graded_module(cells, name, part):
    """The graded function's cell reduced to what the driver runs.

    ``cells``: sources of the code cells that ran, in order; ``name``: the
    graded function; ``part``: "A" (Numba CPU) or "B" (CUDA). Returns
    ``(source, helpers)``: the module source (the kept definitions at their
    lines of the cell, then imports and constants) and the cell's functions
    the graded one reaches, each with what the grader compiles it as.
    Raises :class:`Refused` with the reason."""
    if part not in ("A", "B"):
        raise ValueError(f"part: expected 'A' or 'B', received {part!r}")
    if isinstance(cells, str) or not all(isinstance(c, str) for c in cells):
        raise ValueError(f"cells: expected a sequence of source strings, received "
                         f"{type(cells).__name__}")
    found, trees, texts = _defining_cell(list(cells), name)
    if found is None:
        raise Refused(f"no code cell defines {name} with a top-level def")
    index, tree, graded = found
    later = [n for n in tree.body if n.lineno > graded.end_lineno] + \
        [n for t in trees[index + 1:] if t is not None for n in t.body]
    for node in later:
        if name in _bound_names(node):
            raise Refused(f"{name} is bound again after its def (line {node.lineno} "
                          f"of {'its cell' if node in tree.body else 'a later cell'}); "
                          f"the grader grades the function the def defines")
    aliases = dict(_SETUP_NAMES)
    foreign = {}
    for t in trees[:index + 1]:
        if t is not None:
            _import_aliases(t, aliases, foreign)
    functions = {}
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                and _constant(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) for t in targets):
                for t in targets:
                    constants[t.id] = ast.unparse(node.value)
    for fname in functions:
        constants.pop(fname, None)
    for alias in list(aliases):
        if alias in functions or alias in constants:
            del aliases[alias]
    functions[name] = graded
    # the graded function and the cell's functions it reaches
    kinds = {}
    todo = [name]
    while todo:
        fname = todo.pop()
        if fname in kinds:
            continue
        fn = functions[fname]
        calls = _check_function(fn, aliases, functions, constants, foreign)
        kind = _decorator(fn, aliases, part)
        if fname == name:
            if kind is None:
                raise Refused(f"{name} has no decorator: decorate it with "
                              f"{'@njit' if part == 'A' else '@cuda.jit'}")
            if part == "B" and kind != "kernel":
                raise Refused(f"{name} is a device function (device=True); the grader "
                              f"launches it as a kernel: decorate it with @cuda.jit")
        elif part == "B" and kind != "device":
            raise Refused(f"{fname}, called by {name}, must be a device function: "
                          f"decorate it with @cuda.jit(device=True)")
        kinds[fname] = kind or "njit"
        todo.extend(calls)
    source_lines = texts[index].splitlines()
    lines = [""] * len(source_lines)
    for fname in kinds:
        fn = functions[fname]
        for k in range(fn.lineno, fn.end_lineno + 1):
            lines[k - 1] = source_lines[k - 1]
    tail = []
    for alias, path in sorted(aliases.items()):
        if path in ALLOWED_MODULES:
            tail.append(f"import {path} as {alias}")
        else:
            module, _, attr = path.rpartition(".")
            tail.append(f"from {module} import {attr} as {alias}")
    tail += [f"{k} = {v}" for k, v in constants.items()]
    source = "\n".join(lines + tail) + "\n"
    ast.parse(source)                      # what the driver runs is valid Python
    helpers = {f: k for f, k in kinds.items() if f != name}
    return source, helpers


# ---------------------------------------------------------------------------
# the driver, run in a fresh process without lstmlib

_DRIVER = r'''
import linecache, math, os, sys


def _message(exc, limit, numba=False):
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    if numba:                  # numba repeats the place for every pass: once is enough
        during = [i for i, ln in enumerate(lines) if ln.startswith("During:")]
        if during:
            lines = lines[:during[0] + 1]
    text = "\n".join(lines)
    if len(text) > limit:
        text = text[:limit] + " ..."
    return f"{type(exc).__name__}: {text}"


def _grade(req):
    import numba
    from numba import cuda
    from numba.core.errors import NumbaError
    source, name = req["source"], req["function"]
    file = "<your cell>"
    linecache.cache[file] = (len(source), None, source.splitlines(True), file)
    ns = {"__name__": "graded_cell"}
    try:
        exec(compile(source, file, "exec"), ns)
    except Exception as exc:
        return {"setup": _message(exc, 600)}
    if req["part"] == "A":
        for f in [*req["helpers"], name]:
            ns[f] = numba.njit(ns[f])
    else:
        for f in req["helpers"]:
            ns[f] = cuda.jit(device=True)(ns[f])
        ns[name] = cuda.jit(ns[name])
    fn = ns[name]
    results = []
    for args in req["cases"]:
        if results and "compile" in results[-1]:
            results.append(results[-1])        # it will not compile for these either
            continue
        try:
            if req["part"] == "A":
                out = fn(*args)
            else:
                a, c_prev = args
                block = tuple(req["block"])
                B, H = c_prev.shape
                h, c = np.zeros_like(c_prev), np.zeros_like(c_prev)
                grid = (-(-B // block[0]), -(-H // block[1]))
                fn[grid, block](a, c_prev, h, c)
                out = (h, c)
        except NumbaError as exc:
            results.append({"compile": _message(exc, 900, numba=True)})
            continue
        except Exception as exc:
            results.append({"raised": _message(exc, 400)})
            continue
        if req["part"] == "A" and not fn.nopython_signatures:
            results.append({"compile": "no nopython signature"})
            continue
        results.append({"ok": out})
    return {"results": results}


out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)                  # what the student's code prints goes to stderr
sys.stdout = sys.stderr
import numpy as np
request = loads(sys.stdin.read())
os.environ["NUMBA_DISABLE_JIT"] = "0"
if request["part"] == "B":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
else:
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
out.write(dumps(_grade(request)) + "\n")
out.flush()
'''

#: the driver's source: the kernel side's plain-data codec
#: (lstmlib/selfcheck/_codec.py, which needs numpy only) followed by the
#: driver itself
DRIVER = (Path(__file__).resolve().parents[2] / "selfcheck" / "_codec.py").read_text() \
    + _DRIVER


def _fallback_run_python(code, stdin=b"", *, distributions=("numpy",), python_path=(),
                         limits=None, timeout=60):
    """``sys.executable -I -c code`` with a clean environment (no box)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-I", "-c", code], input=stdin,
                          capture_output=True, timeout=timeout, env=env)


def _runner(boxed):
    if not boxed:
        return _fallback_run_python
    from ..sandbox import run_python
    return run_python


def run_driver(request, boxed=True):
    """Run :data:`DRIVER` on ``request`` (plain data); its decoded answer,
    or ``{"lost": why}``. ``boxed``: in the grading sandbox (else a plain
    ``python -I``)."""
    stdin = protocol.dumps(request).encode()
    run = _runner(boxed)
    try:
        proc = run(DRIVER, stdin, distributions=DISTRIBUTIONS, timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        return {"lost": f"compiling and running your function took longer than "
                        f"{RUN_SECONDS} s"}
    except Exception as exc:               # noqa: BLE001 (the box could not start)
        from ..sandbox import SandboxUnavailable
        if not isinstance(exc, SandboxUnavailable):
            raise
        proc = _fallback_run_python(DRIVER, stdin, timeout=RUN_SECONDS)
    lines = (proc.stdout or b"").decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        # stderr holds what the student's code printed (the grader's inputs,
        # perhaps): only the box's own account of the end is shown
        err = (proc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        why = next((ln[:300] for ln in reversed(err) if ln.startswith("[sandbox]")),
                   f"killed by signal {-proc.returncode}" if proc.returncode < 0 else
                   f"killed by signal {proc.returncode - 128}" if proc.returncode > 128
                   else f"exit status {proc.returncode}")
        return {"lost": f"the grader's run of your function ended without an answer "
                        f"({why})"}
    try:
        return protocol.loads(lines[-1])
    except protocol.ProtocolError as exc:
        return {"lost": f"the grader could not read the answer ({exc})"}


# ---------------------------------------------------------------------------
# the parts

def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _step_case(seed, B, D, H, dt, bscale):
    from ...lstm import lstm_step_forward
    rng = _rng(seed)
    x = rng.standard_normal((B, D)).astype(dt)
    h = rng.standard_normal((B, H)).astype(dt)
    c = rng.standard_normal((B, H)).astype(dt)
    w_ih = (0.6 * rng.standard_normal((4 * H, D))).astype(dt)
    w_hh = (0.6 * rng.standard_normal((4 * H, H))).astype(dt)
    b_ih = (bscale * rng.standard_normal(4 * H)).astype(dt)
    b_hh = (bscale * rng.standard_normal(4 * H)).astype(dt)
    (h1, c1), _ = lstm_step_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
    args = (x, h, c, np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih + b_hh)
    return args, (h1, c1)


def _kernel_case(seed, B, H, dt):
    rng = _rng(seed)
    a = (1.5 * rng.standard_normal((B, 4 * H))).astype(dt)
    c_prev = rng.standard_normal((B, H)).astype(dt)
    i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (a, c_prev), (h.astype(dt), c.astype(dt))


def _kernel_raised(where, msg):
    hint = ""
    if "index" in msg.lower() and "bounds" in msg.lower():
        hint = (" Likely cause: threads outside the (B, H) array: "
                "the grid is rounded up to whole blocks, so return "
                "early when b >= B or k >= H.")
    return f"{where}: the kernel raised {msg}{hint}"


def _pair(where, out, what="(h, c)"):
    if not isinstance(out, tuple) or len(out) != 2:
        fail(f"{where}: expected the tuple {what}, received "
             f"{getattr(out, 'type_name', type(out).__name__)}")
    return out


def _cells(handle, where):
    cells = getattr(handle, "cells", None)
    if cells is None:
        fail(f"{where}: the grader has no source for {handle.name}: define it in a "
             f"cell of the notebook")
    return [c for c in cells if isinstance(c, str)]


#: the driver's last answers: one run answers the visible and the hidden
#: cases of a part (numba's first compilation dominates the run's time), the
#: second test cell takes its results from here when the cell, the cases and
#: the grading's seed are unchanged
_ANSWERS = {}


def _judge(handle, which, part, where, name, cases, extra=None):
    """Static check, then the driver on the cases of ``which``
    (``cases``: {"visible": [...], "hidden": [...]}): their results."""
    if which not in ("visible", "hidden"):
        fail(f"which: expected 'visible' or 'hidden', received {which!r}")
    try:
        source, helpers = graded_module(_cells(handle, where), name, part)
    except Refused as exc:
        fail(f"{where}: {exc}. This part scores zero.")
    boxed = not getattr(handle, "at_home", False)
    request = {"where": where, "part": part, "function": name, "source": source,
               "helpers": sorted(helpers), "cases": cases["visible"] + cases["hidden"],
               **(extra or {})}
    key = hashlib.sha256(protocol.dumps(dict(request, boxed=boxed)).encode()).hexdigest()
    answer = _ANSWERS.pop(key, None)
    if answer is None:
        answer = run_driver(request, boxed=boxed)
        _ANSWERS.clear()
        _ANSWERS[key] = answer
    if not isinstance(answer, dict):
        fail(f"{where}: the grader could not read the answer")
    if "lost" in answer:
        fail(f"{where}: {answer['lost']}")
    if "setup" in answer:
        fail(f"{where}: your cell's definitions could not be run: {answer['setup']}")
    results = answer.get("results")
    if not isinstance(results, list):
        fail(f"{where}: the grader could not read the answer")
    n = len(cases["visible"])
    return results[:n] if which == "visible" else results[n:]


def prepare():
    """Nothing to draw ahead: each check draws its cases when it runs (one
    run of the driver answers a part's visible and hidden cases)."""


def fused_step(handle, which="visible"):
    """Part A: the fused Numba CPU LSTM step."""
    where = "Part A (lstm_step_fused)"
    every = {w: [(name, *_step_case(4000 + 10 * k + (w == "hidden"), B, D, H, dt, bscale))
                 for k, (name, B, D, H, dt, bscale) in enumerate(cases)]
             for w, cases in _STEP_CASES.items()}
    results = _judge(handle, which, "A", where, "lstm_step_fused",
                     {w: [list(args) for _, args, _ in d] for w, d in every.items()})
    drawn = every[which]
    for (name, _args, (h_exp, c_exp)), res in zip(drawn, results):
        w = f"{where}, case {name}"
        if "compile" in res:
            fail(f"{where}: lstm_step_fused does not compile in nopython mode, so it "
                 f"scores zero. Numba says:\n{res['compile']}")
        if "raised" in res:
            fail(f"{w}: your function raised {res['raised']}")
        out = _pair(w, res.get("ok"))
        H = h_exp.shape[1]
        compare(w, "h", out[0], h_exp, lstm_unit_cause(H))
        compare(w, "c", out[1], c_exp, lstm_unit_cause(H))
    if len(results) < len(drawn):
        fail(f"{where}: the grader received {len(results)} answers for {len(drawn)} cases")


def gates_kernel(handle, which="visible"):
    """Part B: the CUDA gate kernel, launched in numba's simulator."""
    where = "Part B (lstm_gates_kernel)"
    every = {w: [(name, *_kernel_case(4100 + 10 * k + (w == "hidden"), B, H, dt))
                 for k, (name, B, H, dt) in enumerate(cases)]
             for w, cases in _KERNEL_CASES.items()}
    results = _judge(handle, which, "B", where, "lstm_gates_kernel",
                     {w: [list(args) for _, args, _ in d] for w, d in every.items()},
                     {"block": list(BLOCK)})
    drawn = every[which]
    for (name, _args, (h_exp, c_exp)), res in zip(drawn, results):
        w = f"{where}, case {name}"
        if "compile" in res:
            fail(f"{where}: lstm_gates_kernel does not compile as a CUDA kernel. "
                 f"Numba says:\n{res['compile']}")
        if "raised" in res:
            fail(_kernel_raised(w, res["raised"]))
        h, c = _pair(w, res.get("ok"))
        H = h_exp.shape[1]
        compare(w, "h", h, h_exp, lstm_unit_cause(H))
        compare(w, "c", c, c_exp, lstm_unit_cause(H))
    if len(results) < len(drawn):
        fail(f"{where}: the grader received {len(results)} answers for {len(drawn)} cases")


__all__ = ["fused_step", "gates_kernel", "graded_module", "run_driver", "BLOCK",
           "Refused"]
