"""Similarity of answer code: normalisation, winnowed fingerprints, pairs.

The answer code of a notebook (:func:`.notebooks.is_answer` cells) is
normalised (comments and docstrings dropped, names bound in the answer
renamed canonically in order of appearance, imports resolved to full module
paths, formatting by ``ast.unparse``), cut into token k-grams and
fingerprinted by winnowing (Schleimer, Wilkerson and Aiken 2003, the method
of MOSS), per top-level unit (each function, and the rest of the code).
Fingerprints of the code every student receives are removed by the caller
(``base``). :func:`flag_pairs` compares each submission with (a) lstmlib's
reference implementation of the functions the assignment asks for (read
from lstmlib's source, nothing imported; the manifest's
``delegation.references`` name them), (b) the course's published solution
(solutions/ is public) and (c) every other submission, and keeps the pairs
at or above the threshold, highest first, with the functions that match.
"""
from __future__ import annotations

import ast
import hashlib
import io
import tokenize
from dataclasses import dataclass, field

from .notebooks import (cell_source, get_assignment, graded_functions, is_answer,
                        load_notebook, parse_code)
from .resolver import source_file

DEFAULT_THRESHOLD = 0.6
DEFAULT_MIN_SHARED = 8
DEFAULT_K = 8
DEFAULT_WINDOW = 4


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
    tree = code if isinstance(code, ast.AST) else parse_code(code)
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
        tree = parse_code(cell_source(cell))
        if tree is not None:
            all_trees.append(tree)
        if not is_answer(cell):
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
    keep = set(graded_functions(a))
    for graded, spec in a.delegation.references:
        mod, func = spec.split(":")
        path = source_file(mod)
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


def flag_pairs(codes, ref_code, sol_code=None, threshold=DEFAULT_THRESHOLD,
               min_shared=DEFAULT_MIN_SHARED):
    """The flagged pairs (:class:`Match`), highest first: each :class:`Code` of
    ``codes`` ({student: Code}) against ``ref_code`` (the reference
    implementation) and ``sol_code`` (the published solution, or None), and
    every pair of ``codes``. A pair is flagged when its score is at least
    ``threshold`` and it shares at least ``min_shared`` fingerprints."""
    ref_units = set(ref_code.prints)
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
    return matches
