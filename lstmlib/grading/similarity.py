"""Delegation and similarity report: static analysis on the grader's side.

Nothing here runs a submission: notebooks are read as JSON and their answer
cells parsed with :mod:`ast`. This module belongs to the trusted side of the
grading boundary and imports only the standard library, tqdm for a
progress bar and the manifest of the assignments (:mod:`.assignments`,
plain data); it never imports the modules that run inside a student's
kernel (:mod:`lstmlib.selfcheck`).

Two tools:

* :func:`delegating_functions` / :func:`find_delegation`: which graded
  functions of a notebook call lstmlib's own implementation of a graded
  function or torch's recurrent modules (``torch.nn.LSTM``, ``GRU``,
  ``RNN``, their cells, ``torch._VF``...), directly or through aliases,
  ``from x import y as z``, ``importlib.import_module``, ``__import__``,
  ``getattr(module, "name")``, ``sys.modules[...]``, ``vars(module)[...]``,
  ``eval``/``exec`` of strings and names built from string pieces
  (``"lstm_" + "forward"``, f-strings, ``"".join``, slicing). Grading
  does not depend on it (a graded kernel's edition of lstmlib holds no
  reference to delegate to, so such a part fails in the kernel); the
  report tells the instructor who tried. A lookup whose name cannot be worked out
  statically (``getattr(lstmlib.lstm, name)`` with ``name`` computed at run
  time, ``exec`` of a computed string) is reported as well: an honest
  answer has no reason to do it.

* :func:`similarity_report`: for every submission of an assignment, the
  answer code (the nbgrader solution cells and any cell nbgrader neither
  locks nor grades, such as cells the student added) is normalised (comments and
  docstrings dropped, names bound in the answer renamed canonically in order
  of appearance, imports resolved to full module paths, formatting by
  ``ast.unparse``), cut into token k-grams and fingerprinted by winnowing
  (Schleimer, Wilkerson and Aiken 2003, the method of MOSS). Fingerprints of
  the code every student receives (the released skeleton) are removed. Each
  submission is compared with (a) lstmlib's reference implementation of the
  functions the assignment asks for, (b) the course's published solution
  (solutions/ is public) and (c) every other submission. Pairs at or above
  the threshold are listed, highest first, with the functions that match.

Command line: ``python -m lstmlib.grading similarity <assignment>``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import csv
import hashlib
import html
import io
import json
import os
import re
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent        # lstmlib/

# ---------------------------------------------------------------------------
# What each assignment grades, and what counts as delegation

# torch's recurrent machinery: any attribute path under torch naming one of
# these, or anything under torch.nn.modules.rnn / torch._VF.
TORCH_RNN_NAMES = frozenset({
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RNNBase",
    "RNNCellBase", "_VF", "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell",
    "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "_thnn_fused_lstm_cell",
    "_thnn_fused_gru_cell", "quantized_lstm", "quantized_gru",
    "quantized_lstm_cell", "quantized_gru_cell", "quantized_rnn_tanh_cell",
    "quantized_rnn_relu_cell",
})

# Parts of lstmlib a graded function may always use: the self-check helpers.
ALWAYS_ALLOWED = ("lstmlib.grading", "lstmlib.selfcheck", "lstmlib.kernels.performance_checks")

# Cell machinery that runs a whole recurrent layer: delegation wherever the
# layer is what the assignment asks for.
_LAYER_MACHINERY = ("RecurrentLayer", "get_cell", "_cell_forward",
                    "_cell_backward", "from_torch")


@dataclass(frozen=True)
class Assignment:
    """One assignment as the static analysis sees it.

    ``graded``: the functions the parts grade (the ``def`` of each skeleton
    cell). ``forbidden``: names of lstmlib objects a graded function may not
    use (matched against every component of an attribute path under
    lstmlib that is not a module). ``forbidden_modules``: lstmlib modules
    none of whose contents may be used. ``forbidden_keywords``: calls of an
    allowed helper that become delegation with a keyword (``lstm_forward(...,
    reverse=True)`` does the reversal exercise 7 asks for). ``references``:
    for each graded function, the lstmlib functions ("module.path:function")
    that implement it, for the similarity report.
    """

    name: str
    notebook: str
    graded: tuple
    forbidden: frozenset
    forbidden_modules: tuple = ("lstmlib.kernels",)
    forbidden_keywords: tuple = ()   # ((function, keyword, its position), ...)
    references: tuple = ()                  # ((graded name, "mod:func"), ...)


def _a(name, graded, forbidden, **kw):
    """The analysis' view of the manifest's assignment ``name``: its
    notebook comes from the manifest (lstmlib.grading.assignments), and each
    graded function must be one the manifest's parts hand to their checks."""
    from .assignments import find
    manifest = find(name)
    handed = {f for part in manifest.parts for f in part.functions}
    if not set(graded) <= handed:
        raise ValueError(f"graded: expected functions of {name}'s parts {sorted(handed)}, "
                         f"received {sorted(set(graded) - handed)}")
    return Assignment(name, f"{manifest.notebook}.ipynb", tuple(graded), frozenset(forbidden),
                      **kw)


ASSIGNMENTS = {a.name: a for a in [
    _a("01_rnn_forward",
       ["rnn_step_forward", "rnn_forward"],
       ["rnn_step_forward", "rnn_forward", "rnn_step_backward", "rnn_backward",
        "RNN", "RNN_CELL", *_LAYER_MACHINERY],
       references=(("rnn_step_forward", "lstmlib.rnn:rnn_step_forward"),
                   ("rnn_forward", "lstmlib.rnn:rnn_forward"))),
    _a("02_bptt",
       ["rnn_step_backward", "rnn_backward", "numerical_gradient"],
       ["rnn_step_backward", "rnn_backward", "numerical_gradient",
        "check_layer_gradients", "_activation_grad", "RNN", "RNN_CELL",
        *_LAYER_MACHINERY],
       references=(("rnn_step_backward", "lstmlib.rnn:rnn_step_backward"),
                   ("rnn_backward", "lstmlib.rnn:rnn_backward"),
                   ("numerical_gradient", "lstmlib.gradcheck:numerical_gradient"))),
    _a("03_gradient_norms",
       ["input_gradient_norms", "set_forget_bias", "gradient_ratio"],
       ["input_gradient_norms"],
       references=(("input_gradient_norms",
                    "lstmlib.analysis:input_gradient_norms"),)),
    _a("04_lstm_cell",
       ["lstm_step_forward", "lstm_step_backward"],
       ["lstm_step_forward", "lstm_step_backward", "lstm_forward",
        "lstm_backward", "_local_derivatives", "LSTM", "LSTM_CELL",
        *_LAYER_MACHINERY],
       references=(("lstm_step_forward", "lstmlib.lstm:lstm_step_forward"),
                   ("lstm_step_backward", "lstmlib.lstm:lstm_step_backward"))),
    _a("05_lstm_sequence",
       ["lstm_forward", "lstm_backward"],
       ["lstm_forward", "lstm_backward", "_local_derivatives", "LSTM",
        "LSTM_CELL", *_LAYER_MACHINERY],
       forbidden_modules=("lstmlib.kernels", "lstmlib.bidirectional"),
       references=(("lstm_forward", "lstmlib.lstm:lstm_forward"),
                   ("lstm_backward", "lstmlib.lstm:lstm_backward"))),
    _a("06_gru",
       ["gru_step_forward", "gru_step_backward"],
       ["gru_step_forward", "gru_step_backward", "gru_forward",
        "gru_backward", "GRU", "GRU_CELL", *_LAYER_MACHINERY],
       references=(("gru_step_forward", "lstmlib.gru:gru_step_forward"),
                   ("gru_step_backward", "lstmlib.gru:gru_step_backward"))),
    _a("07_bidirectional",
       ["reverse_padded", "bidirectional_lstm"],
       ["bidirectional_forward", "bidirectional_backward", "LSTM", "GRU",
        "RNN", *_LAYER_MACHINERY],
       forbidden_modules=("lstmlib.kernels", "lstmlib.bidirectional"),
       forbidden_keywords=(("lstm_forward", "reverse", 8),),
       references=(("bidirectional_lstm",
                    "lstmlib.bidirectional:bidirectional_forward"),)),
    _a("08_training",
       ["mse", "clip_grad_norm", "train_step", "build_model"],
       ["mse", "clip_grad_norm", "global_norm", "train"],
       references=(("mse", "lstmlib.losses:mse"),
                   ("clip_grad_norm", "lstmlib.optim:clip_grad_norm"),
                   ("clip_grad_norm", "lstmlib.optim:global_norm"))),
    _a("09_performance",
       ["lstm_step_fused", "lstm_gates_kernel"],
       # nothing of lstmlib's (its kernels included) belongs in a kernel the
       # student compiles; the self-check helpers stay allowed
       ["lstm_step_forward", "lstm_forward"],
       forbidden_modules=("lstmlib",),
       references=(("lstm_step_fused",
                    "lstmlib.kernels.numba_cpu:lstm_gates_forward"),
                   ("lstm_step_fused",
                    "lstmlib.kernels.numba_cpu:_lstm_forward_row"),
                   ("lstm_gates_kernel",
                    "lstmlib.kernels.cuda:lstm_gates_kernel"),
                   ("lstm_gates_kernel", "lstmlib.kernels.cuda:_lstm_update"))),
    _a("10_attention",
       ["attention_forward", "attention_backward"],
       ["attention_forward", "attention_backward", "softmax"],
       references=(("attention_forward", "lstmlib.attention:attention_forward"),
                   ("attention_backward", "lstmlib.attention:attention_backward"))),
]}


def get_assignment(name):
    """The :class:`Assignment` called ``name`` (ValueError otherwise)."""
    if isinstance(name, Assignment):
        return name
    if name not in ASSIGNMENTS:
        raise ValueError(f"assignment: expected one of {sorted(ASSIGNMENTS)}, "
                         f"received {name!r}")
    return ASSIGNMENTS[name]


# ---------------------------------------------------------------------------
# Notebooks

def _source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def load_notebook(notebook):
    """A notebook as a dict, from a dict or a path (ValueError if neither)."""
    if isinstance(notebook, dict):
        return notebook
    if isinstance(notebook, (str, os.PathLike)):
        path = Path(notebook)
        if not path.is_file():
            raise ValueError(f"notebook: expected an .ipynb file, received "
                             f"{str(path)!r} (no such file)")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"notebook: {str(path)!r} is not a notebook "
                             f"(JSON expected): {exc}") from None
    raise ValueError(f"notebook: expected a path or a notebook dict, "
                     f"received {type(notebook).__name__}")


def _is_answer(cell):
    """A code cell that may hold the student's code: a solution cell, or
    any cell nbgrader does not lock or grade (cells the student added,
    try-it cells; what every student received is removed as base code)."""
    md = cell.get("metadata", {}).get("nbgrader", {})
    if cell.get("cell_type") != "code":
        return False
    return bool(md.get("solution")) or not (md.get("grade") or md.get("locked"))


def _is_solution(cell):
    md = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(md.get("solution"))


_MAGIC = re.compile(r"^\s*(%|!)")


def _parse(src):
    """The module of a cell's source (IPython magics dropped), or None."""
    lines = ["" if _MAGIC.match(line) else line for line in src.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def infer_assignment(nb, path=None):
    """The assignment of a notebook: from its ``checks.prepare("...")``
    call, else from its path (…/<assignment>/<notebook>.ipynb or the
    notebook's file name). None when none fits."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        m = re.search(r"checks\.prepare\(\s*['\"]([0-9A-Za-z_]+)['\"]", _source(cell))
        if m and m.group(1) in ASSIGNMENTS:
            return m.group(1)
    if path is not None:
        path = Path(path)
        for part in reversed(path.parts[:-1]):
            if part in ASSIGNMENTS:
                return part
        for a in ASSIGNMENTS.values():
            if path.name == a.notebook:
                return a.name
    return None


# ---------------------------------------------------------------------------
# Static resolution of names to module paths

class _Unknown(Exception):
    pass


_STR_METHODS = {"join", "format", "replace", "lower", "upper", "strip",
                "lstrip", "rstrip", "capitalize", "title", "swapcase",
                "split", "removeprefix", "removesuffix", "casefold"}
_SAFE_BUILTINS = {"str": str, "chr": chr, "reversed": lambda s: list(reversed(s)),
                  "sorted": sorted, "list": list, "tuple": tuple, "ord": ord}


@dataclass
class Finding:
    """One reason a graded function counts as delegating."""

    function: str        # the graded function
    what: str            # what it uses: "lstmlib.lstm.lstm_forward", ...
    line: int            # line in its cell
    cell: int            # index of the cell in the notebook
    via: str = ""        # "through helper f" when reached through another function

    def text(self):
        where = [f"cell {self.cell}"] if self.cell >= 0 else []
        if self.line:
            where.append(f"line {self.line}")
        if self.via:
            where.append(self.via)
        lead = "" if self.what.startswith(f"{self.function} ") else \
            f"{self.function} uses "
        return f"{lead}{self.what}" + (f" ({', '.join(where)})" if where else "")


class _Binding:
    """What a name is bound to: an AST expression in a scope, an import
    (a module path), or a function/class defined in the notebook."""

    __slots__ = ("kind", "value", "cell", "scope")

    def __init__(self, kind, value, cell, scope=None):
        self.kind = kind      # "expr", "qual", "def", "unknown"
        self.value = value
        self.cell = cell
        self.scope = scope


class _Scope:
    def __init__(self, parent=None, module=None):
        self.parent = parent
        self.names = {}               # name -> list[_Binding]
        self.module = module if module is not None else self
        self.globals_declared = set()

    def bind(self, name, binding, replace=False):
        if name in self.globals_declared:
            self.module.bind(name, binding, replace)
            return
        if replace:
            self.names[name] = [binding]
        else:
            self.names.setdefault(name, []).append(binding)

    def lookup(self, name):
        s = self
        while s is not None:
            if name in s.names:
                return s.names[name]
            s = s.parent
        if hasattr(builtins, name):
            return [_Binding("qual", f"builtins.{name}", -1)]
        return []


class _Snapshot(_Scope):
    """The names of a scope as they are bound at one point of the notebook."""

    def __init__(self, scope):
        super().__init__(scope.parent, scope.module)
        self.names = {k: list(v) for k, v in scope.names.items()}


def _module_exists(dotted):
    """Whether ``dotted`` (lstmlib.something) names a module of lstmlib."""
    parts = dotted.split(".")
    if parts[0] != "lstmlib":
        return False
    p = PACKAGE_DIR.joinpath(*parts[1:])
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _public_names(module):
    """{name: module path} that ``from module import *`` binds, for a module
    of lstmlib (read from its source; empty for other modules). Names the
    module imports point where they come from (``np`` is numpy)."""
    parts = module.split(".")
    if parts[0] != "lstmlib":
        return {}
    p = PACKAGE_DIR.joinpath(*parts[1:])
    is_pkg = (p / "__init__.py").is_file()
    path = p / "__init__.py" if is_pkg else p.with_suffix(".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    package = parts if is_pkg else parts[:-1]
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = f"{module}.{node.name}"
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names[n.id] = f"{module}.{n.id}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname \
                    else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[:len(package) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                if a.name != "*":
                    names[a.asname or a.name] = f"{base}.{a.name}"
    return {n: q for n, q in names.items() if not n.startswith("_")}


def delegation_reason(qual, assignment):
    """Why using the object at module path ``qual`` is delegation in
    ``assignment`` (text), or None when it is allowed."""
    a = get_assignment(assignment)
    parts = qual.split(".")
    if parts[0] == "torch":
        if qual.startswith("torch.nn.modules.rnn") or any(
                p in TORCH_RNN_NAMES for p in parts[1:]):
            return f"{qual} (torch's recurrent implementation)"
        return None
    if parts[0] != "lstmlib":
        return None
    if any(qual == p or qual.startswith(p + ".") for p in ALWAYS_ALLOWED):
        return None
    for mod in a.forbidden_modules:
        if qual == mod or qual.startswith(mod + "."):
            return f"{qual} (lstmlib's own code: nothing from {mod} may be used here)"
    for i in range(1, len(parts)):
        if parts[i] in a.forbidden and not _module_exists(".".join(parts[:i + 1])):
            return f"{qual} (lstmlib's own implementation)"
    return None


class _Analyzer:
    """Resolves the names of one notebook and scans its graded functions."""

    def __init__(self, nb, assignment):
        self.a = get_assignment(assignment)
        self.module = _Scope()
        self.defs = {}                 # id(node) -> (node, cell, scope)
        self.cells = []                # (index, tree, is_solution)
        self.unparsed = []             # solution cells that do not parse
        self.dynamic_exec = []         # (cell, line) of exec of computed code
        self._scopes = {}              # function scopes, built once
        self._mutations = None         # top-level statements that change a name
        for i, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            tree = _parse(_source(cell))
            if tree is None:
                if _is_solution(cell):
                    self.unparsed.append(i)
                continue
            self.cells.append((i, tree, _is_solution(cell)))
            self._bind_block(tree.body, self.module, i, module_level=True)

    # -- bindings -----------------------------------------------------------
    def _bind_block(self, body, scope, cell, module_level=False):
        for stmt in body:
            self._bind_stmt(stmt, scope, cell, module_level)

    def _bind_target(self, target, value, scope, cell, replace, vscope=None):
        # vscope: where ``value`` is resolved. At the notebook's top level,
        # a snapshot of the names bound so far (`_impl = lstm_forward` keeps
        # what lstm_forward was then, even if a def replaces it later).
        if vscope is None:
            vscope = _Snapshot(scope) if scope is self.module else scope
        if isinstance(target, ast.Name):
            scope.bind(target.id, _Binding("expr", value, cell, vscope), replace)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for j, elt in enumerate(target.elts):
                sub = value.elts[j] if isinstance(value, (ast.Tuple, ast.List)) \
                    and len(value.elts) == len(target.elts) else None
                if isinstance(elt, ast.Starred):
                    elt = elt.value
                    sub = None
                if sub is None:
                    self._bind_unknown(elt, scope, cell, replace)
                else:
                    self._bind_target(elt, sub, scope, cell, replace, vscope)
        elif isinstance(target, ast.Subscript):
            # globals()["name"] = value ; vars(module)... are not followed
            base = target.value
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) \
                    and base.func.id == "globals":
                try:
                    key = self._const(target.slice, scope)
                except _Unknown:
                    return
                if isinstance(key, str):
                    self.module.bind(key, _Binding("expr", value, cell, vscope), replace)

    def _bind_unknown(self, target, scope, cell, replace):
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                scope.bind(node.id, _Binding("unknown", None, cell, scope), replace)

    def _bind_stmt(self, stmt, scope, cell, module_level):
        replace = module_level        # at module level the last binding wins
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.defs[id(stmt)] = (stmt, cell, scope)
            scope.bind(stmt.name, _Binding("def", stmt, cell, scope), replace)
            return
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    scope.bind(alias.asname, _Binding("qual", alias.name, cell), replace)
                else:
                    top = alias.name.split(".")[0]
                    scope.bind(top, _Binding("qual", top, cell), replace)
            return
        if isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                return
            for alias in stmt.names:
                if alias.name == "*":
                    self._bind_star(stmt.module, scope, cell, replace)
                    continue
                scope.bind(alias.asname or alias.name,
                           _Binding("qual", f"{stmt.module}.{alias.name}", cell),
                           replace)
            return
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                self._bind_target(t, stmt.value, scope, cell, replace)
            return
        if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                self._bind_target(stmt.target, stmt.value, scope, cell, replace)
            elif isinstance(stmt, ast.AugAssign):
                self._bind_unknown(stmt.target, scope, cell, False)
            return
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and \
                isinstance(stmt.value.func, ast.Name) and \
                stmt.value.func.id in ("exec", "eval") and stmt.value.args:
            text = self._strings(stmt.value.args[0], scope)
            tree = _parse(text) if text is not None else None
            if tree is not None:        # exec("def rnn_forward(...): ...")
                self._bind_block(tree.body, scope, cell, module_level)
            elif module_level:
                self.dynamic_exec.append((cell, stmt.lineno))
            return
        if isinstance(stmt, (ast.Global, ast.Nonlocal)):
            if isinstance(stmt, ast.Global):
                scope.globals_declared.update(stmt.names)
            return
        if isinstance(stmt, (ast.For, ast.AsyncFor)):
            self._bind_unknown(stmt.target, scope, cell, False)
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self._bind_unknown(item.optional_vars, scope, cell, False)
        if isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            for h in stmt.handlers:
                if h.name:
                    scope.bind(h.name, _Binding("unknown", None, cell), False)
                self._bind_block(h.body, scope, cell, module_level)
        for fld in ("body", "orelse", "finalbody"):
            block = getattr(stmt, fld, None)
            if isinstance(block, list):
                self._bind_block(block, scope, cell, module_level)
        if isinstance(stmt, ast.Match):
            for case in stmt.cases:
                self._bind_block(case.body, scope, cell, module_level)
        # walrus targets anywhere in the statement (inside functions they
        # are bound by _bind_stmt_deep)
        for node in (ast.walk(stmt) if module_level else ()):
            if isinstance(node, ast.NamedExpr):
                scope.bind(node.target.id, _Binding("expr", node.value, cell, scope), False)

    def _bind_star(self, module, scope, cell, replace):
        # `from lstmlib.lstm import *`: bind the names it may bring (read
        # from lstmlib's source), the forbidden ones in any case
        names = {n: f"{module}.{n}" for n in
                 set(self.a.forbidden) | {n for n, _, _ in self.a.forbidden_keywords}}
        names.update(_public_names(module))
        if module.startswith("torch"):
            names.update({n: f"{module}.{n}" for n in TORCH_RNN_NAMES})
        for name, qual in sorted(names.items()):
            scope.bind(name, _Binding("qual", qual, cell), replace)

    def _function_scope(self, node, parent):
        key = (id(node), id(parent))
        if key not in self._scopes:
            self._scopes[key] = self._build_function_scope(node, parent)
        return self._scopes[key]

    def _build_function_scope(self, node, parent):
        scope = _Scope(parent, self.module)
        args = node.args
        for arg in args.posonlyargs + args.args + args.kwonlyargs + \
                [x for x in (args.vararg, args.kwarg) if x]:
            scope.bind(arg.arg, _Binding("unknown", None, -1))
        body = node.body if isinstance(node.body, list) else []
        # flow-insensitive: every binding anywhere in the body (nested
        # functions, lambdas and comprehensions share this scope)
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, (ast.Global,)):
                    scope.globals_declared.update(sub.names)
        for stmt in body:
            self._bind_stmt_deep(stmt, scope)
        return scope

    def _bind_stmt_deep(self, stmt, scope):
        cell = -1
        for sub in ast.walk(stmt):
            if isinstance(sub, ast.stmt) and not isinstance(
                    sub, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With,
                          ast.AsyncWith, ast.Try)):
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef,
                                    ast.ClassDef)):
                    scope.bind(sub.name, _Binding("def", sub, cell, scope))
                    self.defs[id(sub)] = (sub, cell, scope)
                else:
                    self._bind_stmt(sub, scope, cell, False)
            elif isinstance(sub, (ast.For, ast.AsyncFor)):
                self._bind_unknown(sub.target, scope, cell, False)
            elif isinstance(sub, (ast.With, ast.AsyncWith)):
                for item in sub.items:
                    if item.optional_vars is not None:
                        self._bind_unknown(item.optional_vars, scope, cell, False)
            elif isinstance(sub, ast.comprehension):
                self._bind_unknown(sub.target, scope, cell, False)
            elif isinstance(sub, ast.NamedExpr):
                scope.bind(sub.target.id, _Binding("expr", sub.value, cell, scope))
            elif isinstance(sub, ast.Lambda):
                for arg in sub.args.args + sub.args.kwonlyargs + sub.args.posonlyargs:
                    scope.bind(arg.arg, _Binding("unknown", None, cell))
            elif isinstance(sub, ast.ExceptHandler) and sub.name:
                scope.bind(sub.name, _Binding("unknown", None, cell))

    # -- constant folding of strings -----------------------------------------
    def _const(self, node, scope, depth=0):
        if depth > 20:
            raise _Unknown
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            binds = scope.lookup(node.id)
            if len(binds) == 1 and binds[0].kind == "expr":
                return self._const(binds[0].value, binds[0].scope or scope, depth + 1)
            raise _Unknown
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._const(e, scope, depth + 1) for e in node.elts]
        if isinstance(node, ast.BinOp):
            left = self._const(node.left, scope, depth + 1)
            right = self._const(node.right, scope, depth + 1)
            try:
                if isinstance(node.op, ast.Add):
                    if isinstance(left, (str, list)) and len(left) + len(right) > 10_000:
                        raise _Unknown
                    return left + right
                if isinstance(node.op, ast.Mult) and (
                        not isinstance(left, int) or not isinstance(right, int)):
                    n = left if isinstance(left, int) else right
                    seq_ = right if isinstance(left, int) else left
                    if not isinstance(n, int) or n * len(seq_) > 10_000:
                        raise _Unknown
                    return left * right
                if isinstance(node.op, ast.Mod) and isinstance(left, str) and \
                        not re.search(r"%[^a-zA-Z%]*[0-9*]", left):
                    return left % (tuple(right) if isinstance(right, list) else right)
            except (TypeError, ValueError):
                raise _Unknown from None
            raise _Unknown
        if isinstance(node, ast.JoinedStr):
            out = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    out.append(str(v.value))
                elif isinstance(v, ast.FormattedValue):
                    out.append(str(self._const(v.value, scope, depth + 1)))
                else:
                    raise _Unknown
            return "".join(out)
        if isinstance(node, ast.Subscript):
            base = self._const(node.value, scope, depth + 1)
            sl = node.slice
            try:
                if isinstance(sl, ast.Slice):
                    parts = [None if p is None else self._const(p, scope, depth + 1)
                             for p in (sl.lower, sl.upper, sl.step)]
                    return base[slice(*parts)]
                return base[self._const(sl, scope, depth + 1)]
            except (TypeError, IndexError, KeyError, ValueError):
                raise _Unknown from None
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in _STR_METHODS:
                obj = self._const(f.value, scope, depth + 1)
                if not isinstance(obj, str):
                    raise _Unknown
                args = [self._const(x, scope, depth + 1) for x in node.args]
                if f.attr == "format" and re.search(r"\{[^}]*[:!]", obj) or \
                        f.attr == "replace" and len(obj) * max(
                            [1] + [len(x) for x in args if isinstance(x, str)]) > 100_000:
                    raise _Unknown          # no padding or blow-up to evaluate
                try:
                    return getattr(obj, f.attr)(*args)
                except (TypeError, ValueError, IndexError, KeyError):
                    raise _Unknown from None
            binds = scope.lookup(f.id) if isinstance(f, ast.Name) else []
            if isinstance(f, ast.Name) and f.id in _SAFE_BUILTINS and \
                    len(binds) == 1 and binds[0].kind == "qual" and \
                    binds[0].value == f"builtins.{f.id}":
                args = [self._const(x, scope, depth + 1) for x in node.args]
                try:
                    return _SAFE_BUILTINS[f.id](*args)
                except (TypeError, ValueError):
                    raise _Unknown from None
        raise _Unknown

    def _const_checked(self, node, scope):
        v = self._const(node, scope)
        if isinstance(v, (str, list)) and len(v) > 10_000:
            raise _Unknown
        return v

    def _strings(self, node, scope):
        try:
            v = self._const_checked(node, scope)
        except (_Unknown, RecursionError, MemoryError, OverflowError):
            return None
        return v if isinstance(v, str) else None

    # -- resolution to module paths -----------------------------------------
    def resolve(self, node, scope, depth=0, seen=None):
        """A set of values: ("qual", path), ("def", node), ("dyn", text),
        ("globals", None)."""
        if depth > 25:
            return set()
        seen = seen if seen is not None else set()
        out = set()
        if isinstance(node, ast.Name):
            for b in scope.lookup(node.id):
                key = (id(b), node.id)
                if key in seen:
                    continue
                seen.add(key)
                if b.kind == "qual":
                    out.add(("qual", b.value))
                elif b.kind == "def":
                    out.add(("def", id(b.value)))
                elif b.kind == "expr":
                    out |= self.resolve(b.value, b.scope or scope, depth + 1, seen)
            return out
        if isinstance(node, ast.Attribute):
            for kind, v in self.resolve(node.value, scope, depth + 1, seen):
                if kind == "qual":
                    out.add(("qual", f"{v}.{node.attr}"))
                elif kind == "dyn":
                    out.add((kind, v))
            return out
        if isinstance(node, ast.Subscript):
            base = self.resolve(node.value, scope, depth + 1, seen)
            key = self._strings(node.slice, scope)
            for kind, v in base:
                if kind == "qual" and v in ("sys.modules", "builtins.__dict__") \
                        or kind == "qual" and v.endswith(".__dict__"):
                    if key is None:
                        out.add(("dyn", f"{v}[<computed>]"))
                    elif v == "sys.modules":
                        out.add(("qual", key))
                    else:
                        out.add(("qual", f"{v[:-len('.__dict__')]}.{key}"))
                elif kind == "globals":
                    if key is None:
                        out.add(("dyn", "globals()[<computed>]"))
                    else:
                        out |= self.resolve(ast.Name(key, ast.Load()), self.module,
                                            depth + 1, seen)
            return out
        if isinstance(node, ast.Call):
            return self._resolve_call(node, scope, depth, seen)
        if isinstance(node, ast.NamedExpr):
            return self.resolve(node.value, scope, depth + 1, seen)
        if isinstance(node, (ast.IfExp,)):
            return self.resolve(node.body, scope, depth + 1, seen) | \
                self.resolve(node.orelse, scope, depth + 1, seen)
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                out |= self.resolve(v, scope, depth + 1, seen)
            return out
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for v in node.elts:
                out |= self.resolve(v, scope, depth + 1, seen)
            return out
        if isinstance(node, ast.Dict):
            for v in node.values:
                out |= self.resolve(v, scope, depth + 1, seen)
            return out
        if isinstance(node, ast.Lambda):
            out.add(("lambda", id(node)))
            self.defs.setdefault(id(node), (node, -1, scope))
            return out
        return out

    def _resolve_call(self, node, scope, depth, seen):
        out = set()
        funcs = self.resolve(node.func, scope, depth + 1, seen)
        quals = {v for k, v in funcs if k == "qual"}
        args = node.args
        if "builtins.getattr" in quals and len(args) >= 2:
            name = self._strings(args[1], scope)
            for kind, v in self.resolve(args[0], scope, depth + 1, seen):
                if kind == "qual":
                    out.add(("qual", f"{v}.{name}") if name is not None
                            else ("dyn", f"getattr({v}, <computed>)"))
                elif kind == "globals" and name is not None:
                    out |= self.resolve(ast.Name(name, ast.Load()), self.module,
                                        depth + 1, seen)
        if quals & {"importlib.import_module", "builtins.__import__",
                    "importlib.__import__"} and args:
            name = self._strings(args[0], scope)
            if name is None:
                out.add(("dyn", "a module imported by a computed name"))
            elif "importlib.import_module" in quals:
                out.add(("qual", name))
            else:
                fromlist = args[3] if len(args) > 3 else next(
                    (k.value for k in node.keywords if k.arg == "fromlist"), None)
                has_from = fromlist is not None and not (
                    isinstance(fromlist, ast.Constant) and not fromlist.value) and not (
                    isinstance(fromlist, (ast.List, ast.Tuple)) and not fromlist.elts)
                out.add(("qual", name if has_from else name.split(".")[0]))
        if "builtins.vars" in quals:
            if args:
                for kind, v in self.resolve(args[0], scope, depth + 1, seen):
                    if kind == "qual":
                        out.add(("qual", f"{v}.__dict__"))
            else:
                out.add(("globals", None))
        if quals & {"builtins.globals", "builtins.locals"}:
            out.add(("globals", None))
        if "builtins.eval" in quals and args:
            text = self._strings(args[0], scope)
            if text is not None:
                try:
                    expr = ast.parse(text.strip(), mode="eval").body
                    out |= self.resolve(expr, scope, depth + 1, seen)
                except SyntaxError:
                    pass
        if "operator.attrgetter" in quals and args:
            name = self._strings(args[0], scope)
            if name is not None:
                out.add(("attrgetter", name))
        for kind, v in funcs:
            if kind == "attrgetter" and args:
                for k2, base in self.resolve(args[0], scope, depth + 1, seen):
                    if k2 == "qual":
                        out.add(("qual", f"{base}.{v}"))
        if quals & {"functools.partial", "functools.wraps", "builtins.staticmethod",
                    "builtins.classmethod", "numba.njit", "numba.jit",
                    "numba.cuda.jit"} and args:
            out |= self.resolve(args[0], scope, depth + 1, seen)
        # a call of a class/function returns something unknown; a wrapped
        # reference (njit(lstmlib....)) is still found by the walk
        return out

    # -- scanning --------------------------------------------------------------
    def _walk_expr_findings(self, root, scope, fname, cell, via, todo, out):
        """Findings in the code under ``root`` (a function, lambda or
        expression) resolved in ``scope``; notebook functions it refers to
        are appended to ``todo``."""
        for node in ast.walk(root):
            line = getattr(node, "lineno", 0)
            values = set()
            if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)) and \
                    isinstance(getattr(node, "ctx", ast.Load()), ast.Load):
                values = self.resolve(node, scope)
            elif isinstance(node, ast.Call):
                values = self.resolve(node, scope)
                self._call_findings(node, scope, fname, cell, via, out)
                if isinstance(node.func, ast.Attribute) and \
                        node.func.attr in _STR_METHODS:
                    s = self._strings(node, scope)
                    if s is not None:
                        self._string_findings(s, fname, cell, line, via, out)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                mod = getattr(node, "module", None)
                for alias in node.names:
                    q = f"{mod}.{alias.name}" if isinstance(node, ast.ImportFrom) \
                        else alias.name
                    if isinstance(node, ast.ImportFrom) and node.level:
                        continue
                    if alias.name == "*":
                        q = mod
                    values.add(("qual", q))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self._string_findings(node.value, fname, cell, line, via, out)
            elif isinstance(node, (ast.BinOp, ast.JoinedStr)):
                s = self._strings(node, scope)
                if s is not None:
                    self._string_findings(s, fname, cell, line, via, out)
            for kind, v in values:
                if kind == "qual":
                    reason = delegation_reason(v, self.a)
                    if reason:
                        out.append(Finding(fname, reason, line, cell, via))
                elif kind == "dyn":
                    out.append(Finding(fname, f"{v}, which cannot be checked "
                                       f"statically", line, cell, via))
                elif kind in ("def", "lambda"):
                    todo.append(v)

    def _call_findings(self, node, scope, fname, cell, via, out):
        funcs = self.resolve(node.func, scope)
        quals = {v for k, v in funcs if k == "qual"}
        line = node.lineno
        if quals & {"builtins.exec", "builtins.eval", "builtins.compile"} and node.args:
            text = self._strings(node.args[0], scope)
            if text is None:
                out.append(Finding(fname, "code built at run time (eval/exec/"
                                   "compile of a computed string)", line, cell, via))
            else:
                tree = _parse(text)
                if tree is not None:
                    inner = _Scope(scope, self.module)
                    self._bind_block(tree.body, inner, cell)
                    todo = []
                    self._walk_expr_findings(tree, inner, fname, cell,
                                             via or "through exec/eval", todo, out)
        args = list(node.args)
        if "functools.partial" in quals and args:     # partial(f, reverse=True)
            quals = quals | {v for k, v in self.resolve(args[0], scope) if k == "qual"}
            args = args[1:]

        def falsy(expr):
            return isinstance(expr, ast.Constant) and not expr.value
        for fn_name, kw, pos in self.a.forbidden_keywords:
            if not any(q.split(".")[-1] == fn_name and q.startswith("lstmlib")
                       for q in quals):
                continue
            for k in node.keywords:
                if k.arg == kw and not falsy(k.value):
                    out.append(Finding(fname, f"{fn_name}(..., {kw}=...), "
                                       f"lstmlib's own {kw} option", line, cell, via))
                elif k.arg is None:
                    out.append(Finding(fname, f"{fn_name}(..., **options): "
                                       f"the {kw} option cannot be checked",
                                       line, cell, via))
            starred = [i for i, a in enumerate(args) if isinstance(a, ast.Starred)]
            if not starred and len(args) > pos and not falsy(args[pos]):
                out.append(Finding(fname, f"{fn_name}(...) with {kw} given by "
                                   f"position, lstmlib's own {kw} option", line,
                                   cell, via))
            elif starred and len(args) - starred[-1] - 1 >= 2 and not falsy(args[-1]):
                out.append(Finding(fname, f"{fn_name}(*...) with trailing positional "
                                   f"arguments: the {kw} option cannot be "
                                   f"checked", line, cell, via))

    def _string_findings(self, s, fname, cell, line, via, out):
        s = s.strip()
        if not re.fullmatch(r"[A-Za-z_][\w.]*", s or "-"):
            return
        if s.startswith(("lstmlib", "torch")):
            reason = delegation_reason(s, self.a)
            if reason:
                out.append(Finding(fname, f"the name {s!r}: {reason}", line, cell, via))

    def scan(self, fname):
        """Findings for the graded function ``fname`` as the notebook leaves
        it bound (the grader calls it by that name)."""
        binds = self.module.names.get(fname, [])
        out = []
        todo = []
        seen = set()
        for b in binds:
            if b.kind == "qual":
                reason = delegation_reason(b.value, self.a)
                if reason:
                    out.append(Finding(fname, f"{fname} is bound to {reason}",
                                       0, b.cell))
            elif b.kind == "def":
                todo.append((id(b.value), ""))
            elif b.kind == "expr":
                tmp = []
                self._walk_expr_findings(b.value, b.scope or self.module, fname,
                                         b.cell, "", tmp, out)
                todo.extend((t, "") for t in tmp)
        for cell, line in self.dynamic_exec:
            out.append(Finding(fname, "code built at run time (exec of a "
                               "computed string at the notebook's top level, "
                               "which may redefine it)", line, cell))
        # top-level statements that change the function after its def
        # (rnn_forward.__code__ = ..., setattr(rnn_forward, ...), ...)
        if self._mutations is None:
            self._mutations = [
                (cell, stmt, _mutated_names(stmt))
                for cell, tree, _ in self.cells for stmt in tree.body
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef,
                                         ast.ClassDef, ast.Import, ast.ImportFrom))]
        for cell, stmt, names in self._mutations:
            if fname in names:
                tmp = []
                self._walk_expr_findings(stmt, self.module, fname, cell,
                                         "in a top-level statement that "
                                         "refers to it", tmp, out)
        while todo:
            key, via = todo.pop()
            if key in seen or key not in self.defs:
                continue
            seen.add(key)
            node, cell, scope = self.defs[key]
            name = getattr(node, "name", "<lambda>")
            here = via if via or name == fname else f"through {name}"
            inner_todo = []
            if isinstance(node, ast.Lambda):
                self._walk_expr_findings(node.body, scope, fname, cell, here,
                                         inner_todo, out)
            else:
                fscope = self._function_scope(node, scope) if not isinstance(
                    node, ast.ClassDef) else _Scope(scope, self.module)
                if isinstance(node, ast.ClassDef):
                    self._bind_block(node.body, fscope, cell)
                # decorators, defaults and bases run in the enclosing scope
                outer = node.decorator_list + (node.bases if isinstance(
                    node, ast.ClassDef) else node.args.defaults +
                    [d for d in node.args.kw_defaults if d is not None])
                for expr in outer:
                    self._walk_expr_findings(expr, scope, fname, cell, here,
                                             inner_todo, out)
                for stmt in node.body:
                    self._walk_expr_findings(stmt, fscope, fname, cell, here,
                                             inner_todo, out)
            todo.extend((t, here) for t in inner_todo)
        # one finding per (what, line, via)
        unique, keys = [], set()
        for f in out:
            k = (f.what, f.line, f.cell, f.via)
            if k not in keys:
                keys.add(k)
                unique.append(f)
        # drop a finding when a longer path of the same line says more
        final = []
        for f in unique:
            q = f.what.split(" ")[0]
            longer = any(g is not f and g.line == f.line and g.cell == f.cell
                         and g.what.split(" ")[0].startswith(q + ".")
                         for g in unique)
            if not longer:
                final.append(f)
        return final


def _mutated_names(stmt):
    """Names of functions a top-level statement changes in place:
    ``f.__code__ = ...``, ``setattr(f, ...)``, ``globals().update(f=...)``,
    ``vars()["f"] = ...``."""
    out = set()

    def add(n):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.add(n.value)
    for node in ast.walk(stmt):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, (ast.Attribute, ast.Subscript)):
                    add(sub.value)
                    if isinstance(sub, ast.Subscript):
                        add(sub.slice)
        if isinstance(node, ast.Call):
            f = node.func
            fn = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if fn in ("setattr", "update", "__setattr__", "__setitem__",
                      "setdefault"):
                for a in node.args:
                    add(a)
                out.update(k.arg for k in node.keywords if k.arg)
    return out


MAX_CODE_CHARS = 1_000_000      # code in one notebook; far above any answer


def find_delegation(notebook, assignment=None, path=None):
    """{graded function: [Finding, ...]} for every graded function of the
    notebook that delegates (absent functions are absent)."""
    nb = load_notebook(notebook)
    if path is None and isinstance(notebook, (str, os.PathLike)):
        path = notebook
    if assignment is None:
        assignment = infer_assignment(nb, path)
        if assignment is None:
            raise ValueError("assignment: could not tell the assignment of this "
                             "notebook (no checks.prepare call, no assignment "
                             f"folder in its path); pass one of {sorted(ASSIGNMENTS)}")
    a = get_assignment(assignment)
    size = sum(len(_source(c)) for c in nb.get("cells", []) if c.get("cell_type") == "code")
    if size > MAX_CODE_CHARS:
        return {fname: [Finding(fname, f"a notebook of {size} characters of code, "
                                f"more than the {MAX_CODE_CHARS} this check reads",
                                0, -1)] for fname in a.graded}
    try:
        an = _Analyzer(nb, a)
        result = {}
        for fname in a.graded:
            findings = an.scan(fname)
            if findings:
                result[fname] = findings
    except RecursionError:
        return {fname: [Finding(fname, "code nested too deeply to check", 0, -1)]
                for fname in a.graded}
    return result


def delegating_functions(notebook, assignment=None):
    """{function_name: reason} for every graded function of ``notebook`` (a
    path or a notebook dict) that delegates to lstmlib's own implementation
    of a graded function or to torch's recurrent modules. The grader scores
    the parts that grade these functions zero and shows the reason."""
    found = find_delegation(notebook, assignment)
    return {name: "delegates to the reference implementation: " +
            "; ".join(f.text() for f in findings[:3]) +
            (f" (and {len(findings) - 3} more)" if len(findings) > 3 else "")
            for name, findings in found.items()}


# ---------------------------------------------------------------------------
# Normalisation and fingerprints

class _Normaliser(ast.NodeTransformer):
    """Drops docstrings and renames the names bound in the code (arguments,
    variables, helper functions) canonically, in order of appearance; names
    it does not bind (np, sigmoid, the graded function names) are kept, and
    imported names are replaced by their full module path."""

    def __init__(self, keep=(), imports=None):
        self.keep = set(keep)
        self.imports = imports or {}
        self.stack = [{}]

    def _bound(self, node):
        names = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            names += [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            names += [x.arg for x in (a.vararg, a.kwarg) if x]
        body = node.body if isinstance(node.body, list) else [node.body]
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.append(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef,
                                      ast.ClassDef)) and sub is not node:
                    names.append(sub.name)
                elif isinstance(sub, ast.arg):
                    names.append(sub.arg)
                elif isinstance(sub, ast.ExceptHandler) and sub.name:
                    names.append(sub.name)
        seen = []
        for n in names:
            if n not in seen and n not in self.keep:
                seen.append(n)
        return seen

    def _enter(self, node, prefix):
        mapping = dict(self.stack[-1])
        for n in self._bound(node):
            mapping[n] = f"{prefix}{sum(1 for v in mapping.values() if v.startswith(prefix))}"
        self.stack.append(mapping)

    @staticmethod
    def _strip_doc(body):
        out = [s for s in body if not (isinstance(s, ast.Expr) and
                                       isinstance(s.value, ast.Constant) and
                                       isinstance(s.value.value, str))]
        return out or [ast.Pass()]

    def visit_Module(self, node):
        node.body = self._strip_doc(node.body)
        self._enter(node, "g")
        self.generic_visit(node)
        self.stack.pop()
        return node

    def visit_FunctionDef(self, node):
        node.body = self._strip_doc(node.body)
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        if node.name in self.stack[-1]:
            node.name = self.stack[-1][node.name]
        node.returns = None
        self._enter(node, "v")
        node.args = self.visit(node.args)
        node.body = [b for b in (self.visit(s) for s in node.body)
                     if b is not None] or [ast.Pass()]
        self.stack.pop()
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.body = self._strip_doc(node.body)
        if node.name in self.stack[-1]:
            node.name = self.stack[-1][node.name]
        self.generic_visit(node)
        return node

    def visit_Lambda(self, node):
        self._enter(node, "v")
        self.generic_visit(node)
        self.stack.pop()
        return node

    def visit_arg(self, node):
        node.arg = self.stack[-1].get(node.arg, node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node):
        if node.id in self.stack[-1]:
            node.id = self.stack[-1][node.id]
        elif node.id in self.imports:
            return ast.copy_location(_dotted(self.imports[node.id], node.ctx), node)
        return node

    def visit_Import(self, node):
        return None

    def visit_ImportFrom(self, node):
        return None

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return self.generic_visit(node)


def _dotted(path, ctx):
    parts = path.split(".")
    node = ast.Name(parts[0], ast.Load())
    for p in parts[1:]:
        node = ast.Attribute(node, p, ast.Load())
    node.ctx = ctx
    return node


def _imports_of(trees):
    """{local name: full module path} for the imports in ``trees``."""
    out = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        out[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                for a in node.names:
                    if a.name != "*":
                        out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def normalise(code, keep=(), imports=None):
    """Canonical text of ``code`` (a string or a module AST): no comments,
    no docstrings, bound names renamed in order of appearance, imported names
    written as full module paths, formatted by ``ast.unparse``. Names in
    ``keep`` are not renamed. ValueError if the code does not parse."""
    tree = code if isinstance(code, ast.AST) else _parse(code)
    if tree is None:
        raise ValueError("code: expected Python source, received text that "
                         "does not parse")
    imports = dict(imports or {})
    imports.update(_imports_of([tree]))
    for k in keep:
        imports.pop(k, None)
    tree = _Normaliser(keep, imports).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


def tokens(text):
    """The token strings of normalised code (layout tokens kept as markers)."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.ENCODING, tokenize.ENDMARKER, tokenize.NL,
                            tokenize.COMMENT):
                continue
            if tok.type == tokenize.NEWLINE:
                out.append(";")
            elif tok.type == tokenize.INDENT:
                out.append("{")
            elif tok.type == tokenize.DEDENT:
                out.append("}")
            else:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError):
        out = text.split()
    return out


def fingerprints(toks, k=8, window=4):
    """Winnowed fingerprints of the k-grams of ``toks``: the smallest hash
    of every ``window`` consecutive k-gram hashes (rightmost on ties)."""
    if k < 1 or window < 1:
        raise ValueError(f"k, window: expected positive integers, received "
                         f"k={k!r}, window={window!r}")
    hashes = []
    for i in range(len(toks) - k + 1):
        gram = "\x1f".join(toks[i:i + k]).encode()
        hashes.append(int.from_bytes(hashlib.blake2b(gram, digest_size=8).digest(),
                                     "big"))
    if not hashes:
        return set()
    if len(hashes) <= window:
        return {min(hashes)}
    out = set()
    for i in range(len(hashes) - window + 1):
        win = hashes[i:i + window]
        m = min(win)
        out.add(m)
    return out


@dataclass
class Code:
    """The answer code of one notebook, normalised, per top-level unit
    (each function defined in a solution cell, and "<module>" for the
    rest), with its fingerprints."""

    label: str
    units: dict = field(default_factory=dict)        # unit -> normalised text
    prints: dict = field(default_factory=dict)       # unit -> set of hashes
    unparsed: list = field(default_factory=list)

    def all_prints(self, units=None):
        out = set()
        for u, p in self.prints.items():
            if units is None or u in units:
                out |= p
        return out


def _split_units(trees, keep):
    """{unit name: module AST} from the solution cells' trees."""
    units = {}
    rest = []
    for tree in trees:
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef,
                                 ast.ClassDef)):
                units.setdefault(stmt.name, []).append(stmt)
            elif not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                rest.append(stmt)
    out = {name: ast.Module(body=body, type_ignores=[]) for name, body in units.items()}
    if rest:
        out["<module>"] = ast.Module(body=rest, type_ignores=[])
    return out


def answer_code(notebook, label="", keep=(), k=8, window=4, base=frozenset()):
    """The :class:`Code` of a notebook's answer cells (solution cells and
    cells nbgrader neither locks nor grades). ``keep``: names
    not renamed (the graded functions); ``base``: fingerprints to ignore."""
    nb = load_notebook(notebook)
    trees, unparsed, all_trees = [], [], []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        tree = _parse(_source(cell))
        if tree is not None:
            all_trees.append(tree)
        if not _is_answer(cell):
            continue
        if tree is None:
            unparsed.append(i)
            continue
        trees.append(tree)
    imports = _imports_of(all_trees)
    code = Code(label, unparsed=unparsed)
    keep = set(keep)
    # helper functions the student defines are renamed; graded ones kept
    for name, tree in _split_units(trees, keep).items():
        try:
            text = normalise(tree, keep=keep, imports=imports)
        except RecursionError:
            code.unparsed.append(name)
            continue
        code.units[name] = text
        code.prints[name] = fingerprints(tokens(text), k, window) - set(base)
    return code


def reference_code(assignment, k=8, window=4, base=frozenset()):
    """The :class:`Code` of lstmlib's reference implementation of the
    functions ``assignment`` asks for, read from lstmlib's source files
    (nothing is imported). Units are named after the graded function."""
    a = get_assignment(assignment)
    code = Code("lstmlib (reference implementation)")
    keep = set(a.graded)
    for graded, spec in a.references:
        mod, func = spec.split(":")
        path = PACKAGE_DIR.joinpath(*mod.split(".")[1:]).with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = _imports_of([tree])
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.name == func:
                node = ast.parse(ast.unparse(node)).body[0]
                node.name = graded
                text = normalise(ast.Module(body=[node], type_ignores=[]),
                                 keep=keep, imports=imports)
                prev = code.units.get(graded)
                code.units[graded] = text if prev is None else prev + "\n" + text
                code.prints[graded] = code.prints.get(graded, set()) | (
                    fingerprints(tokens(text), k, window) - set(base))
    return code


def _skeleton(nb):
    """The student version of a source notebook's solution cells: every
    ### BEGIN SOLUTION ... ### END SOLUTION region replaced as nbgrader does."""
    nb = json.loads(json.dumps(nb))
    for cell in nb.get("cells", []):
        if not _is_solution(cell):
            continue
        out, inside = [], False
        for line in _source(cell).splitlines():
            if re.match(r"\s*#+\s*BEGIN SOLUTION", line):
                inside = True
                indent = line[:len(line) - len(line.lstrip())]
                out.append(f"{indent}raise NotImplementedError()")
                continue
            if re.match(r"\s*#+\s*END SOLUTION", line):
                inside = False
                continue
            if not inside:
                out.append(line)
        cell["source"] = "\n".join(out)
    return nb


# ---------------------------------------------------------------------------
# The report

DEFAULT_THRESHOLD = 0.6
DEFAULT_MIN_SHARED = 8
DEFAULT_K = 8
DEFAULT_WINDOW = 4


@dataclass
class Match:
    """A flagged (or scored) pair."""

    kind: str          # "reference", "solution", "student", "delegation"
    student: str
    other: str
    score: float       # 0..1
    shared: int        # shared fingerprints
    reason: str

    def row(self):
        return [self.kind, self.student, self.other, f"{self.score:.2f}",
                str(self.shared), self.reason]


def _score(a, b, mode):
    """(score, shared) of fingerprint sets: ``mode`` "a" scores the share of
    ``a`` found in ``b``, "min" the share of the smaller set."""
    shared = len(a & b)
    if mode == "a":
        denom = len(a)
    else:
        denom = min(len(a), len(b))
    return (shared / denom if denom else 0.0), shared


def _unit_detail(code_a, code_b, mode, units=None):
    parts = []
    for u in sorted(code_a.prints):
        if units is not None and u not in units:
            continue
        pa = code_a.prints[u]
        pb = code_b.all_prints() if u not in code_b.prints else code_b.prints[u]
        if not pa:
            continue
        s, n = _score(pa, pb, mode)
        if n:
            parts.append((s, u))
    parts.sort(reverse=True)
    return ", ".join(f"{u} {s:.0%}" for s, u in parts[:4])


@dataclass
class Report:
    assignment: str
    threshold: float
    matches: list            # flagged Match objects, sorted
    delegation: dict         # student -> {function: reason}
    submissions: list        # student ids
    problems: list           # (student, text)
    files: list = field(default_factory=list)


def similarity_report(assignment, submissions, solution=None, threshold=DEFAULT_THRESHOLD,
                      min_shared=DEFAULT_MIN_SHARED, k=DEFAULT_K, window=DEFAULT_WINDOW,
                      released=None, progress=False):
    """Compare every submission with the reference implementation, the
    published solution and every other submission.

    ``submissions``: {student id: notebook (path or dict)}. ``solution``:
    the source notebook (solutions/<assignment>/...), or None. ``released``:
    the student version, if any (its code is not counted); the skeleton is
    also derived from ``solution``. A pair is flagged when its score is at
    least ``threshold`` and it shares at least ``min_shared`` fingerprints.
    """
    a = get_assignment(assignment)
    if not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a number in (0, 1], received {threshold!r}")
    if not isinstance(min_shared, int) or min_shared < 1:
        raise ValueError(f"min_shared: expected a positive integer, received {min_shared!r}")
    if not isinstance(submissions, dict):
        raise ValueError(f"submissions: expected a dict {{student: notebook}}, "
                         f"received {type(submissions).__name__}")
    keep = set(a.graded)
    base = set()
    sol_code = None
    if solution is not None:
        sol_nb = load_notebook(solution)
        base |= answer_code(_skeleton(sol_nb), keep=keep, k=k, window=window).all_prints()
    if released is not None:
        base |= answer_code(released, keep=keep, k=k, window=window).all_prints()
    if solution is not None:
        sol_code = answer_code(sol_nb, "published solution", keep, k, window, base)
    ref_code = reference_code(a, k, window, base)
    ref_units = set(ref_code.prints)

    codes, delegation, problems = {}, {}, []
    items = sorted(submissions.items())
    iterator = items
    if progress:
        from tqdm import tqdm
        iterator = tqdm(items, desc=f"{a.name}: reading submissions", unit="nb",
                        file=sys.stderr)
    for student, nb in iterator:
        try:
            nbd = load_notebook(nb)
        except ValueError as exc:
            problems.append((student, str(exc)))
            continue
        try:
            found = delegating_functions(nbd, a.name)
        except Exception as exc:        # a notebook the analysis cannot read
            problems.append((student, f"delegation check failed: {exc}"))
            found = {}
        if found:
            delegation[student] = found
        try:
            code = answer_code(nbd, student, keep, k, window, base)
        except Exception as exc:        # report it; the rest of the class goes on
            problems.append((student, f"answer code could not be normalised: "
                             f"{type(exc).__name__}: {exc}"))
            continue
        if code.unparsed:
            problems.append((student, f"answer cell(s) {code.unparsed} do not "
                             f"parse as Python: not compared"))
        codes[student] = code

    matches = []
    for student, code in codes.items():
        mine = code.all_prints()
        if not mine:
            continue
        # (a) the reference implementation
        own = code.all_prints(ref_units)
        if own:
            s, n = _score(own, ref_code.all_prints(), "a")
            if s >= threshold and n >= min_shared:
                matches.append(Match("reference", student, ref_code.label, s, n,
                                     "answer code matches lstmlib's source: " +
                                     _unit_detail(code, ref_code, "a", ref_units)))
        # (b) the published solution
        if sol_code is not None and sol_code.all_prints():
            s, n = _score(mine, sol_code.all_prints(), "a")
            if s >= threshold and n >= min_shared:
                matches.append(Match("solution", student, sol_code.label, s, n,
                                     "answer code matches the published solution: " +
                                     _unit_detail(code, sol_code, "a")))
    # (c) every other submission
    names = sorted(codes)
    for i, s1 in enumerate(names):
        p1 = codes[s1].all_prints()
        for s2 in names[i + 1:]:
            p2 = codes[s2].all_prints()
            if not p1 or not p2:
                continue
            s, n = _score(p1, p2, "min")
            if s >= threshold and n >= min_shared:
                matches.append(Match("student", s1, s2, s, n,
                                     "shared answer code: " +
                                     _unit_detail(codes[s1], codes[s2], "min")))
    matches.sort(key=lambda m: (-m.score, -m.shared, m.kind, m.student, m.other))
    return Report(a.name, threshold, matches, delegation, sorted(submissions), problems)


_HEADER = ["kind", "student", "other", "score", "shared", "reason"]


def _rows(report):
    rows = [m.row() for m in report.matches]
    for student in sorted(report.delegation):
        for fn, reason in sorted(report.delegation[student].items()):
            rows.append(["delegation", student, fn, "", "", reason])
    for student, text in report.problems:
        rows.append(["not compared", student, "", "", "", text])
    return rows


def write_report(report, out_dir):
    """Write <assignment>-similarity.csv, .md and .html in ``out_dir``;
    returns the paths. An earlier report of the same assignment is moved
    aside (…-similarity.previous.*) rather than overwritten."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _rows(report)
    stem = f"{report.assignment}-similarity"
    paths = []
    for ext in ("csv", "md", "html"):
        p = out_dir / f"{stem}.{ext}"
        if p.exists():
            p.replace(out_dir / f"{stem}.previous.{ext}")
        paths.append(p)
    with open(paths[0], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_HEADER)
        w.writerows(rows)
    title = (f"Similarity and delegation report: {report.assignment} "
             f"({len(report.submissions)} submissions, threshold "
             f"{report.threshold:.2f})")
    md = [f"# {title}", "",
          f"Flagged pairs: {len(report.matches)}; notebooks with delegating "
          f"functions: {len(report.delegation)}.", "",
          "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in rows:
        md.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ")
                                    for c in r) + " |")
    paths[1].write_text("\n".join(md) + "\n", encoding="utf-8")
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n"
                   for r in rows)
    paths[2].write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><tr>" +
        "".join(f"<th>{h}</th>" for h in _HEADER) + "</tr>\n" + body +
        "</table></body></html>\n", encoding="utf-8")
    report.files = paths
    return paths


# ---------------------------------------------------------------------------
# Command line: python -m lstmlib.grading similarity <assignment>

def add_arguments(parser):
    """The options of the ``similarity`` subcommand."""
    parser.add_argument("assignment")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"flag pairs at or above this score, 0-1 "
                             f"(default {DEFAULT_THRESHOLD})")
    parser.add_argument("--min-shared", type=int, default=DEFAULT_MIN_SHARED,
                        help="fingerprints a flagged pair must share "
                             f"(default {DEFAULT_MIN_SHARED})")
    parser.add_argument("--from", dest="source", choices=("submitted", "autograded"),
                        default="submitted",
                        help="read grading/submitted/ (default) or grading/autograded/")
    parser.add_argument("--out", help="report folder (default grading/reports)")


def _source_dir(course):
    env = os.environ.get("LSTMLIB_GRADING_SOURCE")
    return Path(env) if env else course / "solutions"


def collect_submissions(course, assignment, source="submitted"):
    """{student: notebook path} under grading/<source>/<student>/<assignment>/."""
    a = get_assignment(assignment)
    root = Path(course) / "grading" / source
    if not root.is_dir():
        raise ValueError(f"course: expected submissions in {root}, found no such "
                         f"folder (collect the assignment first)")
    subs = {}
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        nb = student_dir / a.name / a.notebook
        if nb.is_file():
            subs[student_dir.name] = nb
        else:
            others = sorted((student_dir / a.name).glob("*.ipynb")) \
                if (student_dir / a.name).is_dir() else []
            if len(others) == 1:
                subs[student_dir.name] = others[0]
    return subs


def run_command(args):
    """The ``similarity`` subcommand; returns the exit status."""
    course = Path(args.course).resolve()
    a = get_assignment(args.assignment)
    subs = collect_submissions(course, a.name, args.source)
    if not subs:
        raise ValueError(f"assignment: no submissions of {a.name} under "
                         f"{course / 'grading' / args.source}")
    sol = _source_dir(course) / a.name / a.notebook
    rel = course / "exercises" / a.name / a.notebook
    report = similarity_report(a.name, subs, sol if sol.is_file() else None,
                               threshold=args.threshold, min_shared=args.min_shared,
                               released=rel if rel.is_file() else None,
                               progress=True)
    out = Path(args.out) if args.out else course / "grading" / "reports"
    paths = write_report(report, out)
    print(f"{a.name}: {len(report.submissions)} submissions, "
          f"{len(report.matches)} flagged pairs, "
          f"{len(report.delegation)} notebooks with delegating functions")
    for m in report.matches:
        print(f"  {m.score:5.0%}  {m.kind:9s} {m.student} ~ {m.other}: {m.reason}")
    for student in sorted(report.delegation):
        for fn, reason in sorted(report.delegation[student].items()):
            print(f"  delegation {student}: {fn}: {reason}")
    for student, text in report.problems:
        print(f"  not compared {student}: {text}")
    print("report: " + ", ".join(str(p) for p in paths))
    return 0


def main(argv=None):
    """``python -m lstmlib.grading.similarity`` (same as the subcommand)."""
    p = argparse.ArgumentParser(prog="python -m lstmlib.grading similarity")
    p.add_argument("--course", default=".")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_command(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
