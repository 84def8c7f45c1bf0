"""The delegation analysis: which graded functions of a notebook call
lstmlib's own implementation of what the assignment asks for, or torch's
recurrent modules.

It feeds the instructor's report only: no grade depends on it. The graded
kernel runs in an allow-list bubblewrap sandbox whose edition of lstmlib
holds only what the assignment hands out, and the checks run on the
grader's side, so an answer that delegates finds nothing to delegate to
and its part fails there. The report tells the instructor who tried.

The rules are the manifest's: each assignment's ``delegation`` entry
(:class:`lstmlib.grading.assignments.Delegation`) says which lstmlib names
and modules its graded functions may not use and which keyword options of
a helper do the exercise's work; torch's recurrent machinery
(``torch.nn.LSTM``, ``GRU``, ``RNN``, their cells, ``torch._VF``...) is
delegation everywhere, and the self-check helpers are allowed everywhere.

Each graded function is followed as the notebook leaves it bound, through
the notebook functions, lambdas, decorators and default values it reaches
and the top-level statements that change it after its ``def``; names are
resolved by :class:`.resolver.Resolver`. A lookup whose name cannot be
worked out statically (``getattr(lstmlib.lstm, name)`` with ``name``
computed at run time, ``exec`` of a computed string) is reported as well:
an honest answer has no reason to do it.
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass

from ..assignments import ASSIGNMENTS
from .notebooks import (cell_source, get_assignment, graded_functions, infer_assignment,
                        load_notebook, parse_code)
from .resolver import STR_METHODS, Resolver, Scope, public_names, source_file

#: torch's recurrent machinery: any attribute path under torch naming one of
#: these, or anything under torch.nn.modules.rnn / torch._VF.
TORCH_RNN_NAMES = frozenset({
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RNNBase",
    "RNNCellBase", "_VF", "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell",
    "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "_thnn_fused_lstm_cell",
    "_thnn_fused_gru_cell", "quantized_lstm", "quantized_gru",
    "quantized_lstm_cell", "quantized_gru_cell", "quantized_rnn_tanh_cell",
    "quantized_rnn_relu_cell",
})

#: Parts of lstmlib a graded function may always use: the self-check helpers.
ALWAYS_ALLOWED = ("lstmlib.grading", "lstmlib.selfcheck", "lstmlib.kernels.performance_checks")


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


def delegation_reason(qual, assignment):
    """Why using the object at module path ``qual`` is delegation in
    ``assignment`` (text), or None when it is allowed."""
    rules = get_assignment(assignment).delegation
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
    for mod in rules.forbidden_modules:
        if qual == mod or qual.startswith(mod + "."):
            return f"{qual} (lstmlib's own code: nothing from {mod} may be used here)"
    for i in range(1, len(parts)):
        if parts[i] in rules.forbidden and \
                source_file(".".join(parts[:i + 1])) is None:
            return f"{qual} (lstmlib's own implementation)"
    return None


class _Analyzer(Resolver):
    """Scans the graded functions of one notebook for delegation."""

    def __init__(self, nb, assignment):
        self.a = get_assignment(assignment)
        self.rules = self.a.delegation
        self._mutations = None         # top-level statements that change a name
        super().__init__(nb)

    def _star_names(self, module):
        # `from lstmlib.lstm import *`: the names it may bring, the
        # forbidden ones in any case
        names = {n: f"{module}.{n}" for n in
                 set(self.rules.forbidden) | {n for n, _, _ in self.rules.forbidden_keywords}}
        names.update(public_names(module))
        if module.startswith("torch"):
            names.update({n: f"{module}.{n}" for n in TORCH_RNN_NAMES})
        return names

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
                        node.func.attr in STR_METHODS:
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
                tree = parse_code(text)
                if tree is not None:
                    inner = Scope(scope, self.module)
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
        for fn_name, kw, pos in self.rules.forbidden_keywords:
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
                    node, ast.ClassDef) else Scope(scope, self.module)
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
    graded = graded_functions(a)
    size = sum(len(cell_source(c)) for c in nb.get("cells", []) if c.get("cell_type") == "code")
    if size > MAX_CODE_CHARS:
        return {fname: [Finding(fname, f"a notebook of {size} characters of code, "
                                f"more than the {MAX_CODE_CHARS} this check reads",
                                0, -1)] for fname in graded}
    try:
        an = _Analyzer(nb, a)
        result = {}
        for fname in graded:
            findings = an.scan(fname)
            if findings:
                result[fname] = findings
    except RecursionError:
        return {fname: [Finding(fname, "code nested too deeply to check", 0, -1)]
                for fname in graded}
    return result


def delegating_functions(notebook, assignment=None):
    """{function_name: reason} for every graded function of ``notebook`` (a
    path or a notebook dict) that delegates to lstmlib's own implementation
    of a graded function or to torch's recurrent modules, for the report
    (grading does not depend on it)."""
    found = find_delegation(notebook, assignment)
    return {name: "delegates to the reference implementation: " +
            "; ".join(f.text() for f in findings[:3]) +
            (f" (and {len(findings) - 3} more)" if len(findings) > 3 else "")
            for name, findings in found.items()}

