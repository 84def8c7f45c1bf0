"""Static resolution of a notebook's names to what they are bound to.

:class:`Resolver` reads every code cell of a notebook with :mod:`ast` and
records what each name is bound to, in the notebook's top level and in the
scope of each function it defines: an import (a module path such as
``lstmlib.lstm.lstm_forward``), a function or class of the notebook, or an
expression, followed through aliases, ``from x import y as z``, tuple
assignments, ``globals()[...] = ...`` and ``exec`` of constant strings.
:meth:`Resolver.resolve` then says what an expression may refer to, through
``importlib.import_module``, ``__import__``, ``getattr(module, "name")``,
``sys.modules[...]``, ``vars(module)[...]``, ``eval`` and names built from
string pieces (``"lstm_" + "forward"``, f-strings, ``"".join``, slicing),
which it folds without running anything (padding and blow-ups are refused).
A lookup whose name is computed at run time resolves to a ``"dyn"`` value.

What counts as delegation is not decided here (:mod:`.delegation`).
"""
from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

from .notebooks import cell_source, is_solution, parse_code

LSTMLIB_DIR = Path(__file__).resolve().parents[2]        # lstmlib/


def source_file(dotted):
    """The source file of the lstmlib module ``dotted`` (its __init__.py for
    a package), or None when ``dotted`` names no module of lstmlib."""
    parts = dotted.split(".")
    if parts[0] != "lstmlib":
        return None
    p = LSTMLIB_DIR.joinpath(*parts[1:])
    for path in (p / "__init__.py", p.with_suffix(".py")):
        if path.is_file():
            return path
    return None


class _Unknown(Exception):
    """A value that cannot be worked out statically."""


#: str methods that constant folding evaluates
STR_METHODS = {"join", "format", "replace", "lower", "upper", "strip",
                "lstrip", "rstrip", "capitalize", "title", "swapcase",
                "split", "removeprefix", "removesuffix", "casefold"}
_SAFE_BUILTINS = {"str": str, "chr": chr, "reversed": lambda s: list(reversed(s)),
                  "sorted": sorted, "list": list, "tuple": tuple, "ord": ord}


class _Binding:
    """What a name is bound to: an AST expression in a scope, an import
    (a module path), or a function/class defined in the notebook."""

    __slots__ = ("kind", "value", "cell", "scope")

    def __init__(self, kind, value, cell, scope=None):
        self.kind = kind      # "expr", "qual", "def", "unknown"
        self.value = value
        self.cell = cell
        self.scope = scope


class Scope:
    """The names bound in a notebook's top level or in one of its functions."""

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


class _Snapshot(Scope):
    """The names of a scope as they are bound at one point of the notebook."""

    def __init__(self, scope):
        super().__init__(scope.parent, scope.module)
        self.names = {k: list(v) for k, v in scope.names.items()}


def public_names(module):
    """{name: module path} that ``from module import *`` binds, for a module
    of lstmlib (read from its source; empty for other modules). Names the
    module imports point where they come from (``np`` is numpy)."""
    parts = module.split(".")
    path = source_file(module)
    if path is None:
        return {}
    is_pkg = path.name == "__init__.py"
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


class Resolver:
    """What the names of one notebook are bound to, and what its
    expressions refer to."""

    def __init__(self, nb):
        self.module = Scope()
        self.defs = {}                 # id(node) -> (node, cell, scope)
        self.cells = []                # (index, tree, is_solution)
        self.unparsed = []             # solution cells that do not parse
        self.dynamic_exec = []         # (cell, line) of exec of computed code
        self._scopes = {}              # function scopes, built once
        for i, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            tree = parse_code(cell_source(cell))
            if tree is None:
                if is_solution(cell):
                    self.unparsed.append(i)
                continue
            self.cells.append((i, tree, is_solution(cell)))
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
            tree = parse_code(text) if text is not None else None
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
        for name, qual in sorted(self._star_names(module).items()):
            scope.bind(name, _Binding("qual", qual, cell), replace)

    def _star_names(self, module):
        """{name: module path} that ``from module import *`` may bind (read
        from lstmlib's source; empty for other modules)."""
        return public_names(module)

    def _function_scope(self, node, parent):
        key = (id(node), id(parent))
        if key not in self._scopes:
            self._scopes[key] = self._build_function_scope(node, parent)
        return self._scopes[key]

    def _build_function_scope(self, node, parent):
        scope = Scope(parent, self.module)
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
            if isinstance(f, ast.Attribute) and f.attr in STR_METHODS:
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

