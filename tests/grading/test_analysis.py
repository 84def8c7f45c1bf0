"""The static delegation check and the similarity report
(lstmlib.grading.analysis), on the course's real notebooks.

No kernel runs here: the module reads notebooks and parses their answer
cells. Delegating answers are built from the published solutions by
replacing one graded function with an attack; honest answers are the
published solutions, the released (blank) exercises, every entry of the
mistake bank that is not a delegation, and independently written correct
implementations.
"""

import ast
import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lstmlib.grading import assignments
from lstmlib.grading.analysis import delegation, notebooks, resolver, similarity
from lstmlib.grading.analysis import report as rep
from tests.mistakes import apply, load
from tests.notebooks import appended as add_cell
from tests.notebooks import cell as cell_of
from tests.notebooks import replaced as with_cell
from tests.notebooks import source as _src

ROOT = Path(__file__).resolve().parents[2]


def solution_nb(assignment):
    return json.loads((ROOT / "solutions" / assignment /
                       notebooks.notebook_file(assignment)).read_text())


def released_nb(assignment):
    return json.loads((ROOT / "exercises" / assignment /
                       notebooks.notebook_file(assignment)).read_text())


def signature(nb, fn):
    """(decorators, parameters, positional argument names) of the skeleton's
    def of ``fn``."""
    node = next(n for n in ast.walk(ast.parse(_src(cell_of(nb, fn))))
                if isinstance(n, ast.FunctionDef) and n.name == fn)
    decos = "".join(f"@{ast.unparse(d)}\n" for d in node.decorator_list)
    return decos, ast.unparse(node.args), ", ".join(a.arg for a in node.args.args)


# ---------------------------------------------------------------------------
# Delegation: attacks of many forms on assignments 1, 4, 6 and 9

# (assignment, graded function) -> (lstmlib module, function it delegates to)
TARGETS = {
    ("01_rnn_forward", "rnn_step_forward"): ("lstmlib.rnn", "rnn_step_forward"),
    ("01_rnn_forward", "rnn_forward"): ("lstmlib.rnn", "rnn_forward"),
    ("04_lstm_cell", "lstm_step_forward"): ("lstmlib.lstm", "lstm_step_forward"),
    ("04_lstm_cell", "lstm_step_backward"): ("lstmlib.lstm", "lstm_step_backward"),
    ("06_gru", "gru_step_forward"): ("lstmlib.gru", "gru_step_forward"),
    ("06_gru", "gru_step_backward"): ("lstmlib.gru", "gru_step_backward"),
    ("09_performance", "lstm_step_fused"): ("lstmlib.kernels.numba_cpu",
                                            "lstm_gates_forward"),
    ("09_performance", "lstm_gates_kernel"): ("lstmlib.kernels.cuda",
                                              "lstm_gates_kernel"),
}

# Each attack replaces the graded function's cell. {fn}: the graded name,
# {mod}/{ref}: where the reference lives, {ref_a}+{ref_b} == {ref},
# {params}/{args}: the skeleton's parameters, {deco}: its decorators.
ATTACKS = {
    "direct": """
{deco}def {fn}({params}):
    import {mod}
    return {mod}.{ref}({args})
""",
    "from-import alias": """
from {mod} import {ref} as my_helper

{deco}def {fn}({params}):
    return my_helper({args})
""",
    "module alias in the function": """
{deco}def {fn}({params}):
    import {mod} as tools
    impl = tools.{ref}
    return impl({args})
""",
    "importlib with a built name": """
import importlib

{deco}def {fn}({params}):
    m = importlib.import_module("{mod_a}" + "{mod_b}")
    return m.{ref}({args})
""",
    "getattr with a built name": """
import {mod}

{deco}def {fn}({params}):
    f = getattr({mod}, "{ref_a}" + "{ref_b}")
    return f({args})
""",
    "__import__ with fromlist": """
{deco}def {fn}({params}):
    return __import__("{mod}", fromlist=["x"]).{ref}({args})
""",
    "__import__ of the top package": """
{deco}def {fn}({params}):
    top = __import__("lstmlib")
    return top.{mod_tail}.{ref}({args})
""",
    "sys.modules": """
import sys
import {mod}

{deco}def {fn}({params}):
    return sys.modules["{mod}"].{ref}({args})
""",
    "eval of a string": """
import {mod}

{deco}def {fn}({params}):
    return eval("{mod}." + "{ref}")({args})
""",
    "vars() of the module": """
import {mod} as m

{deco}def {fn}({params}):
    return vars(m)["{ref}"]({args})
""",
    "f-string and join": """
import {mod} as m

{deco}def {fn}({params}):
    part = "{ref_a}"
    name = "".join([f"{{part}}", "{ref_b}"])
    return getattr(m, name)({args})
""",
    "reversed string": """
import {mod} as m

{deco}def {fn}({params}):
    return getattr(m, "{ref_rev}"[::-1])({args})
""",
    "through a helper of the notebook": """
def _compute(*a):
    from {mod} import {ref}
    return {ref}(*a)

{deco}def {fn}({params}):
    return _compute({args})
""",
    "module-level alias": """
import {mod}
_impl = {mod}.{ref}

{deco}def {fn}({params}):
    return _impl({args})
""",
    "rebound after the def": """
{deco}def {fn}({params}):
    raise NotImplementedError()

import {mod}
{fn} = {mod}.{ref}
""",
    "code object swapped": """
{deco}def {fn}({params}):
    raise NotImplementedError()

import {mod} as _m
{fn}.__code__ = getattr(_m.{ref}, "py_func", _m.{ref}).__code__
""",
    "default argument": """
import {mod}

{deco}def {fn}({params}, _ref={mod}.{ref}):
    return _ref({args})
""",
    "getattr with a name computed at run time": """
import {mod} as m

{deco}def {fn}({params}):
    import os
    return getattr(m, os.environ.get("X", "nothing"))({args})
""",
    "exec of a string": """
{deco}def {fn}({params}):
    scope = {{}}
    exec("from {mod} import {ref} as r", scope)
    return scope["r"]({args})
""",
    "exec at the top level": """
exec("from {mod} import {ref} as {fn}")
""",
    "import in place of the def": """
from {mod} import {ref} as {fn}
""",
    "star import": """
from {mod} import *
_impl = {ref}

{deco}def {fn}({params}):
    return _impl({args})
""",
    "operator.attrgetter": """
import operator
import lstmlib

{deco}def {fn}({params}):
    return operator.attrgetter("{mod_tail}.{ref}")(lstmlib)({args})
""",
    "a class of the notebook": """
import {mod}

class _Impl:
    run = staticmethod({mod}.{ref})

{deco}def {fn}({params}):
    return _Impl.run({args})
""",
}

TORCH_ATTACKS = {
    "torch.nn.LSTMCell": """
import torch

def {fn}({params}):
    cell = torch.nn.LSTMCell(1, 1)
    return cell
""",
    "from torch import nn as alias": """
from torch import nn as tnn

def {fn}({params}):
    return tnn.GRUCell(1, 1)
""",
    "torch._VF": """
import torch

def {fn}({params}):
    return torch._VF.lstm_cell
""",
    "getattr on torch.nn with a built name": """
import torch.nn

def {fn}({params}):
    return getattr(torch.nn, "RN" + "NCell")(1, 1)
""",
    "importlib torch.nn.modules.rnn": """
import importlib

def {fn}({params}):
    return importlib.import_module("torch.nn.modules." + "rnn").LSTM
""",
}


def _fill(template, assignment, fn):
    nb = solution_nb(assignment)
    mod, ref = TARGETS[(assignment, fn)]
    deco, params, args = signature(nb, fn)
    h = len(ref) // 2
    m = len("lstmlib.")
    return template.format(fn=fn, mod=mod, ref=ref, ref_a=ref[:h], ref_b=ref[h:],
                           ref_rev=ref[::-1], mod_a=mod[:m], mod_b=mod[m:],
                           mod_tail=mod[m:], params=params, args=args, deco=deco)


@pytest.mark.parametrize("assignment", sorted(assignments.ASSIGNMENTS))
def test_the_delegation_rules_come_from_the_manifest_and_fit_its_parts(assignment):
    """Every assignment's manifest entry carries its delegation rules; the
    references name graded functions of its parts and functions defined
    in lstmlib's source."""
    a = assignments.find(assignment)
    rules = a.delegation
    graded = notebooks.graded_functions(a)
    assert rules.forbidden and rules.references, assignment
    assert {g for g, _ in rules.references} <= set(graded), rules.references
    for _graded, ref in rules.references:
        module, function = ref.split(":")
        path = resolver.source_file(module)
        assert path is not None, ref
        assert any(isinstance(n, ast.FunctionDef) and n.name == function
                   for n in ast.parse(path.read_text()).body), ref
    # a keyword option: the position of that argument in lstmlib's function
    defs = {n.name: n for path in sorted((ROOT / "lstmlib").glob("*.py"))
            for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
    for function, keyword, position in rules.forbidden_keywords:
        params = [arg.arg for arg in defs[function].args.args]
        assert params.index(keyword) == position, (function, keyword, params)


def test_no_assignment_is_named_in_the_analysis():
    """An assignment's name is written once, in the manifest: the analysis
    reads its rules from there."""
    names = set(assignments.ASSIGNMENTS)
    for path in sorted((ROOT / "lstmlib" / "grading" / "analysis").glob("*.py")):
        text = path.read_text()
        assert not [n for n in names if f'"{n}"' in text or f"'{n}'" in text], path


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("target", sorted(TARGETS), ids=lambda t: f"{t[0]}-{t[1]}")
def test_delegation_is_detected_and_only_there(target, attack):
    assignment, fn = target
    nb = with_cell(solution_nb(assignment), fn, _fill(ATTACKS[attack], assignment, fn))
    found = delegation.delegating_functions(nb, assignment)
    assert fn in found, f"{attack} not detected in {assignment}.{fn}"
    assert found[fn].startswith("delegates to the reference implementation")
    if attack == "star import":       # it also rebinds every other name
        found = {k: v for k, v in found.items() if " is bound to " not in v}
    assert_only_callers_flagged(nb, assignment, fn, found)


def calls(assignment, caller, callee):
    """Whether the solution's ``caller`` calls ``callee`` by name."""
    tree = ast.parse(_src(cell_of(solution_nb(assignment), caller)))
    return any(isinstance(n, ast.Name) and n.id == callee for n in ast.walk(tree))


def assert_only_callers_flagged(nb, assignment, fn, found):
    """The other graded functions are honest: flagged only when they call
    the attacked one (Part B calling Part A's function)."""
    for other in found:
        if other != fn:
            assert calls(assignment, other, fn), (other, found[other])


@pytest.mark.parametrize("attack", sorted(TORCH_ATTACKS))
@pytest.mark.parametrize("target", [("01_rnn_forward", "rnn_step_forward"),
                                    ("04_lstm_cell", "lstm_step_backward"),
                                    ("06_gru", "gru_step_forward")],
                         ids=lambda t: f"{t[0]}-{t[1]}")
def test_torch_recurrent_modules_are_delegation(target, attack):
    assignment, fn = target
    nb = with_cell(solution_nb(assignment), fn, _fill(TORCH_ATTACKS[attack], assignment, fn))
    found = delegation.delegating_functions(nb, assignment)
    assert fn in found and "torch" in found[fn]
    assert_only_callers_flagged(nb, assignment, fn, found)


def test_findings_name_what_and_where():
    nb = with_cell(solution_nb("04_lstm_cell"), "lstm_step_backward",
                   _fill(ATTACKS["through a helper of the notebook"], "04_lstm_cell",
                         "lstm_step_backward"))
    cell_index = next(i for i, c in enumerate(nb["cells"])
                      if c["metadata"].get("nbgrader", {}).get("grade_id")
                      == "lstm_step_backward")
    findings = delegation.find_delegation(nb, "04_lstm_cell")["lstm_step_backward"]
    hits = {(f.cell, f.line, f.via) for f in findings
            if f.what.startswith("lstmlib.lstm.lstm_step_backward")}
    # the import (line 3) and the call (line 4) inside the helper
    assert hits == {(cell_index, 3, "through _compute"),
                    (cell_index, 4, "through _compute")}, findings


@pytest.mark.parametrize("assignment", sorted(assignments.ASSIGNMENTS))
def test_honest_notebooks_are_not_flagged(assignment):
    """Published solutions (which use the allowed helpers: sigmoid, the step
    functions in 05, lstm_forward in 07, lstmlib's layers in 08), the blank
    released notebooks and every non-delegating entry of the mistake bank."""
    sol = solution_nb(assignment)
    assert delegation.delegating_functions(sol, assignment) == {}
    assert delegation.delegating_functions(released_nb(assignment), assignment) == {}
    bank = load(assignment)
    for m in bank.MISTAKES:
        found = delegation.delegating_functions(apply(sol, m), assignment)
        if "delegat" in m.name:
            assert found, m.name
        else:
            assert found == {}, (m.name, found)


def test_the_mistake_banks_delegations_are_found():
    nb = apply(solution_nb("07_bidirectional"),
               next(m for m in load("07_bidirectional").MISTAKES if "delegat" in m.name))
    found = delegation.delegating_functions(nb, "07_bidirectional")
    assert list(found) == ["bidirectional_lstm"] and "reverse" in found["bidirectional_lstm"]


REVERSE_07 = {
    "keyword": "lstm_forward(x, *state_b, *weights_b, lengths=lengths, reverse=True)",
    "keyword from a variable": "lstm_forward(x, *state_b, *weights_b, "
                               "lengths=lengths, reverse=backwards)",
    "position": "lstm_forward(x, h_b, c_b, w_ih, w_hh, b_ih, b_hh, lengths, True)",
    "position after unpacking": "lstm_forward(x, *state_b, *weights_b, lengths, True)",
    "functools.partial": "functools.partial(lstm_forward, reverse=True)("
                         "x, *state_b, *weights_b, lengths=lengths)",
    "**options": "lstm_forward(x, *state_b, *weights_b, **{'reverse': True})",
}


@pytest.mark.parametrize("form", sorted(REVERSE_07))
def test_exercise_7_reverse_option_is_delegation(form):
    """lstm_forward is a helper in exercise 7, but its reverse option does
    the reversal the exercise asks for, in any spelling."""
    src = f"""import functools

def bidirectional_lstm(x, lengths, state_f, state_b, weights_f, weights_b):
    backwards = True
    h_b, c_b = state_b
    w_ih, w_hh, b_ih, b_hh = weights_b
    out_f, state_n_f, _ = lstm_forward(x, *state_f, *weights_f, lengths=lengths)
    out_b, state_n_b, _ = {REVERSE_07[form]}
    out = np.concatenate([out_f, out_b], axis=2)
    return out, state_n_f, state_n_b
"""
    nb = with_cell(solution_nb("07_bidirectional"), "bidirectional_lstm", src)
    found = delegation.delegating_functions(nb, "07_bidirectional")
    assert list(found) == ["bidirectional_lstm"], (form, found)
    assert "reverse" in found["bidirectional_lstm"]
    # the honest spellings of the same call are not flagged
    for honest in ("lstm_forward(x, *state_b, *weights_b, lengths=lengths, reverse=False)",
                   "lstm_forward(x, *state_b, *weights_b, lengths)",
                   "lstm_forward(x, h_b, c_b, w_ih, w_hh, b_ih, b_hh, lengths)"):
        ok = with_cell(nb, "bidirectional_lstm", src.replace(REVERSE_07[form], honest))
        assert delegation.delegating_functions(ok, "07_bidirectional") == {}, honest


def test_honest_lookalikes_are_not_flagged():
    """Names that only look like the reference: a local variable called
    lstm_step_backward, the string "lstm_step_forward" in a message, a
    comparison with lstmlib in a separate try-it cell."""
    nb = solution_nb("04_lstm_cell")
    src = _src(cell_of(nb, "lstm_step_forward")).replace(
        "    H = h_prev.shape[1]\n",
        "    H = h_prev.shape[1]\n    lstm_step_backward = 'lstm_step_forward'\n"
        "    assert lstm_step_backward\n")
    nb = with_cell(nb, "lstm_step_forward", src)
    nb = add_cell(nb, "from lstmlib.lstm import lstm_step_forward as ref\n"
                      "import numpy as np\nx = np.ones((1, 1))\n")
    assert delegation.delegating_functions(nb, "04_lstm_cell") == {}


def test_assignment_is_inferred_and_bad_input_is_named(tmp_path):
    path = ROOT / "solutions" / "09_performance" / "kernels.ipynb"
    assert delegation.delegating_functions(path) == {}        # from the file name
    nb = with_cell(solution_nb("01_rnn_forward"), "rnn_forward",
                   _fill(ATTACKS["direct"], "01_rnn_forward", "rnn_forward"))
    assert list(delegation.delegating_functions(nb)) == ["rnn_forward"]   # checks.prepare
    with pytest.raises(ValueError, match="assignment: expected one of"):
        delegation.delegating_functions(nb, "10_transformers")
    bad = tmp_path / "x.ipynb"
    bad.write_text("not json")
    with pytest.raises(ValueError, match="notebook: .* is not a notebook"):
        delegation.delegating_functions(bad, "01_rnn_forward")
    with pytest.raises(ValueError, match="notebook: expected an .ipynb file"):
        delegation.delegating_functions(tmp_path / "missing.ipynb", "01_rnn_forward")


def test_hostile_notebooks_do_not_stall_the_check():
    """String folding refuses padding and blow-ups instead of evaluating
    them; oversized or too deeply nested code is reported, not read."""
    an = delegation._Analyzer({"cells": []}, "01_rnn_forward")
    scope = an.module
    for expr in ('"{:>200000}".format("x")', '"%200000s" % "x"',
                 '("a" * 1000) * 1000', '("ab" * 5000).replace("a", "a" * 100)'):
        assert an._strings(ast.parse(expr, mode="eval").body, scope) is None, expr
    assert an._strings(ast.parse('"lstm_" + "forward"', mode="eval").body,
                       scope) == "lstm_forward"
    nb = solution_nb("01_rnn_forward")
    big = add_cell(nb, "x = 1\n" * (delegation.MAX_CODE_CHARS // 6 + 1))
    found = delegation.delegating_functions(big, "01_rnn_forward")
    assert set(found) == {"rnn_step_forward", "rnn_forward"}
    assert "more than the" in found["rnn_forward"]
    deep = add_cell(nb, "y = x" + ".a" * 200_000 + "\n", solution=True)
    assert delegation.delegating_functions(deep, "01_rnn_forward") == {}
    report = rep.similarity_report("01_rnn_forward", {"zed": deep, "amy": nb},
                                   solution=nb)
    # the cell is reported as not read; the rest of zed's answer is compared
    assert report.problems == [("zed", f"answer cell(s) [{len(nb['cells'])}] "
                                       f"do not parse as Python: not compared")]
    assert ("student", "amy", "zed") in _pairs(report)


def _imports(path) -> set:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    return imported


ANALYSIS = ROOT / "lstmlib" / "grading" / "analysis"


@pytest.mark.parametrize("module", sorted(p.name for p in ANALYSIS.glob("*.py")))
def test_the_analysis_imports_nothing_from_the_kernel_side(module):
    """Each module of the analysis imports the standard library, tqdm and,
    of lstmlib, only its siblings and the manifest of the assignments,
    which imports the standard library alone."""
    kernel_side = {"lstmlib", "numpy", "torch", "numba"}
    siblings = {f".{p.stem}" for p in ANALYSIS.glob("*.py")}
    imported = _imports(ANALYSIS / module)
    assert {i for i in imported if i.startswith(".")} <= siblings | {"..assignments"}, imported
    assert not {i.split(".")[0] for i in imported} & kernel_side, imported
    manifest = _imports(ROOT / "lstmlib" / "grading" / "assignments.py")
    assert manifest <= set(sys.stdlib_module_names) | {"__future__"}, manifest


# ---------------------------------------------------------------------------
# Similarity: honest independent answers, copies of the solution, of the
# reference and of another student

HONEST_01 = {
    "ana": {
        "rnn_step_forward": '''
def rnn_step_forward(x, h_prev, w_ih, w_hh, b_ih=None, b_hh=None,
                     nonlinearity="tanh"):
    """h = phi(x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh)."""
    z = np.dot(x, w_ih.T) + np.dot(h_prev, w_hh.T)
    for bias in (b_ih, b_hh):
        if bias is not None:
            z = z + bias
    if nonlinearity == "relu":
        h = np.where(z > 0, z, np.zeros_like(z))
    else:
        h = np.tanh(z)
    cache = (x, h_prev, h)
    return h, cache
''',
        "rnn_forward": '''
def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """x (T, B, D), h0 (B, H) -> out (T, B, H), h_n (B, H), cache."""
    hidden = []
    caches = []
    state = h0
    for x_t in x:
        state, step_cache = rnn_step_forward(x_t, state, w_ih, w_hh, b_ih,
                                             b_hh, nonlinearity)
        hidden.append(state)
        caches.append(step_cache)
    out = np.stack(hidden, axis=0).astype(h0.dtype, copy=False)
    h_n = state
    return out, h_n, caches
'''},
    "ben": {
        "rnn_step_forward": '''
def rnn_step_forward(x, h_prev, w_ih, w_hh, b_ih=None, b_hh=None,
                     nonlinearity="tanh"):
    """h = phi(x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh)."""
    pre = np.einsum("bd,hd->bh", x, w_ih)
    if b_ih is not None:
        pre += b_ih
    pre += np.einsum("bk,hk->bh", h_prev, w_hh)
    if b_hh is not None:
        pre += b_hh
    h = np.tanh(pre) if nonlinearity == "tanh" else pre * (pre > 0)
    cache = (x, h_prev, h)
    return h, cache
''',
        "rnn_forward": '''
def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """x (T, B, D), h0 (B, H) -> out (T, B, H), h_n (B, H), cache."""
    steps = x.shape[0]
    out = np.empty((steps,) + h0.shape, dtype=h0.dtype)
    caches = [None] * steps
    prev = h0
    t = 0
    while t < steps:
        out[t], caches[t] = rnn_step_forward(x[t], prev, w_ih, w_hh, b_ih,
                                             b_hh, nonlinearity)
        prev = out[t]
        t += 1
    h_n = prev.copy()
    return out, h_n, caches
'''},
}

HONEST_04 = {
    "ana": {
        "lstm_step_forward": """
def lstm_step_forward(x, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    \"\"\"x (B, D), h_prev and c_prev (B, H) -> (h, c), cache.\"\"\"
    z = np.dot(x, w_ih.T) + np.dot(h_prev, w_hh.T)
    for bias in (b_ih, b_hh):
        if bias is not None:
            z = z + bias
    blocks = np.split(z, 4, axis=1)
    i, f, o = (1.0 / (1.0 + np.exp(-blocks[k])) for k in (0, 1, 3))
    g = np.tanh(blocks[2])
    c = c_prev * f + g * i
    tanh_c = np.tanh(c)
    h = tanh_c * o
    cache = LSTMStepCache(x, h_prev, c_prev, i, f, g, o, c, tanh_c,
                          w_ih, w_hh, b_ih is not None)
    return (h, c), cache
""",
        "lstm_step_backward": """
def lstm_step_backward(dh, dc, cache):
    \"\"\"dh, dc (B, H) -> (dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh).\"\"\"
    x, h_prev, c_prev, i, f, g, o, c, tanh_c, w_ih, w_hh, has_bias = cache
    d_o = dh * tanh_c
    d_c = dc + dh * o * (1 - tanh_c * tanh_c)
    pieces = [d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f),
              d_c * i * (1 - g * g), d_o * o * (1 - o)]
    d_a = np.hstack(pieces)
    dx = np.dot(d_a, w_ih)
    dh_prev = np.dot(d_a, w_hh)
    dc_prev = f * d_c
    dw_ih = np.dot(d_a.T, x)
    dw_hh = np.dot(d_a.T, h_prev)
    db_ih = d_a.sum(0) if has_bias else None
    db_hh = None if db_ih is None else db_ih.copy()
    return dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh
"""},
    "ben": {
        "lstm_step_forward": """
def lstm_step_forward(x, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    \"\"\"x (B, D), h_prev and c_prev (B, H) -> (h, c), cache.\"\"\"
    H = h_prev.shape[1]
    pre_x = x @ w_ih.T
    pre_h = h_prev @ w_hh.T
    if b_ih is not None:
        pre_x += b_ih
        pre_h += b_hh
    a = pre_x + pre_h
    gates = {}
    for k, name in enumerate("ifgo"):
        block = a[:, k * H:(k + 1) * H]
        gates[name] = np.tanh(block) if name == "g" else sigmoid(block)
    i, f, g, o = gates["i"], gates["f"], gates["g"], gates["o"]
    c = np.add(np.multiply(f, c_prev), np.multiply(i, g))
    tanh_c = np.tanh(c)
    h = np.multiply(o, tanh_c)
    cache = LSTMStepCache(x, h_prev, c_prev, i, f, g, o, c, tanh_c,
                          w_ih, w_hh, b_ih is not None)
    return (h, c), cache
""",
        "lstm_step_backward": """
def lstm_step_backward(dh, dc, cache):
    \"\"\"dh, dc (B, H) -> (dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh).\"\"\"
    x, h_prev, c_prev, i, f, g, o, c, tanh_c, w_ih, w_hh, has_bias = cache
    H = dh.shape[1]
    dc_total = dc + dh * o * (1.0 - np.square(tanh_c))
    pre_grads = np.empty((dh.shape[0], 4 * H), dtype=dh.dtype)
    pre_grads[:, :H] = dc_total * g * i * (1.0 - i)
    pre_grads[:, H:2 * H] = dc_total * c_prev * f * (1.0 - f)
    pre_grads[:, 2 * H:3 * H] = dc_total * i * (1.0 - np.square(g))
    pre_grads[:, 3 * H:] = dh * tanh_c * o * (1.0 - o)
    dx = pre_grads @ w_ih
    dh_prev = pre_grads @ w_hh
    dc_prev = dc_total * f
    dw_ih = np.einsum("bk,bd->kd", pre_grads, x)
    dw_hh = np.einsum("bk,bh->kh", pre_grads, h_prev)
    db_ih = db_hh = None
    if has_bias:
        db_ih = pre_grads.sum(axis=0)
        db_hh = db_ih.copy()
    return dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh
"""},
}

HONEST = {"01_rnn_forward": HONEST_01, "04_lstm_cell": HONEST_04}
REFERENCE_MODULE = {"01_rnn_forward": "lstmlib.rnn", "04_lstm_cell": "lstmlib.lstm"}


def submission(assignment, answers):
    """The solution notebook with each graded cell replaced by ``answers``."""
    nb = solution_nb(assignment)
    for fn, src in answers.items():
        nb = with_cell(nb, fn, src)
    return nb


class _Renamer(ast.NodeTransformer):
    """Renames every local variable and parameter: a disguised copy."""

    def __init__(self, keep):
        self.keep = keep

    def visit_Name(self, node):
        if node.id not in self.keep and not node.id[0].isupper():
            node.id = f"my_{node.id}_var"
        return node

    def visit_arg(self, node):
        node.arg = f"my_{node.arg}_var"
        return node


def disguise(src, keep):
    """Renamed locals, reformatted (ast.unparse), comments added."""
    tree = _Renamer(set(keep))
    text = ast.unparse(tree.visit(ast.parse(src)))
    lines = []
    for i, line in enumerate(text.splitlines()):
        lines.append(line + ("  # my own work" if i % 3 == 1 else ""))
        if i % 4 == 2:
            lines.append("")
    return "\n".join(lines) + "\n"


def reference_source(module, fn):
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn)
    return ast.unparse(node)


KEEP = {"np", "seq", "_check_nonlinearity", "range", "sigmoid", "RNNStepCache",
        "RNNCache", "LSTMStepCache", "LSTMStepGrads", "None", "dict", "enumerate"}


def class_of(assignment):
    """A class of six: two honest students (ana, ben), a disguised copy of
    ana (cara), the published solution (dan), a disguised copy of lstmlib's
    source (eve) and a blank notebook (fay)."""
    sol = solution_nb(assignment)
    honest = HONEST[assignment]
    keep = KEEP | set(notebooks.graded_functions(assignment))
    subs = {name: submission(assignment, answers) for name, answers in honest.items()}
    # cara copies ana's answers with every name changed and new layout
    subs["cara"] = submission(assignment, {
        fn: disguise(src, keep) for fn, src in honest["ana"].items()})
    # dan hands in the published solution as it is
    subs["dan"] = copy.deepcopy(sol)
    # eve copies lstmlib's own source, renamed and reformatted
    subs["eve"] = submission(assignment, {
        fn: disguise(reference_source(REFERENCE_MODULE[assignment], fn), keep)
        for fn in notebooks.graded_functions(assignment)})
    # fay hands in the blank notebook
    subs["fay"] = released_nb(assignment)
    return sol, subs


def class_01():
    return class_of("01_rnn_forward")


def _pairs(report):
    return {(m.kind, m.student, m.other) for m in report.matches}


def _run_answers(assignment, answers):
    """The graded functions of ``answers``, defined as the notebook's first
    cell would define them."""
    import numpy as np
    from lstmlib.activations import sigmoid
    from lstmlib.lstm import LSTMStepCache
    ns = {"np": np, "sigmoid": sigmoid, "LSTMStepCache": LSTMStepCache}
    for src in answers.values():
        exec(compile(src, f"<{assignment}>", "exec"), ns)
    return ns


@pytest.mark.parametrize("student", ["ana", "ben"])
@pytest.mark.parametrize("assignment", sorted(HONEST))
def test_the_honest_answers_are_correct(assignment, student):
    """The premise of the no-false-positive tests: these answers are right
    (same values as lstmlib's reference, with and without biases, float32)."""
    import numpy as np
    from lstmlib import lstm, rnn
    ns = _run_answers(assignment, HONEST[assignment][student])
    rng = np.random.default_rng(7)
    for bias in (True, False):
        for dt in ("float64", "float32"):
            def r(*shape):
                return rng.standard_normal(shape).astype(dt)
            B, D, H, T = 3, 4, 5, 6
            if assignment == "01_rnn_forward":
                w = (r(H, D), r(H, H)) + ((r(H), r(H)) if bias else (None, None))
                for nl in ("tanh", "relu"):
                    got, _ = ns["rnn_step_forward"](r(B, D), r(B, H), *w, nl)
                    x, h0 = r(T, B, D), r(B, H)
                    out, h_n, _ = ns["rnn_forward"](x, h0, *w, nl)
                    ref_out, ref_h, _ = rnn.rnn_forward(x, h0, *w, nl)
                    np.testing.assert_allclose(out, ref_out, rtol=1e-4, atol=1e-5)
                    np.testing.assert_allclose(h_n, ref_h, rtol=1e-4, atol=1e-5)
                    assert out.dtype == ref_out.dtype
            else:
                w = (r(4 * H, D), r(4 * H, H)) + (
                    (r(4 * H), r(4 * H)) if bias else (None, None))
                x, h, c = r(B, D), r(B, H), r(B, H)
                (h1, c1), cache = ns["lstm_step_forward"](x, h, c, *w)
                (rh, rc), rcache = lstm.lstm_step_forward(x, h, c, *w)
                np.testing.assert_allclose(h1, rh, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(c1, rc, rtol=1e-4, atol=1e-5)
                dh, dc = r(B, H), r(B, H)
                got = ns["lstm_step_backward"](dh, dc, rcache)
                ref = lstm.lstm_step_backward(dh, dc, rcache)
                for g, e in zip(got, ref):
                    if e is None:
                        assert g is None
                    else:
                        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-4)
                        assert g.dtype == e.dtype


@pytest.mark.parametrize("assignment", sorted(HONEST))
def test_similarity_flags_the_copies_and_only_them(assignment):
    sol, subs = class_of(assignment)
    report = rep.similarity_report(assignment, subs, solution=sol,
                                   released=released_nb(assignment))
    expected = {
        ("student", "ana", "cara"),                             # shared code
        ("solution", "dan", "published solution"),             # the solution
        ("reference", "eve", "lstmlib (reference implementation)"),  # lstmlib
    }
    assert _pairs(report) == expected, \
        [(m.kind, m.student, m.other, round(m.score, 2)) for m in report.matches]
    scores = [m.score for m in report.matches]
    assert scores == sorted(scores, reverse=True)
    by = {(m.kind, m.student): m for m in report.matches}
    for fn in notebooks.graded_functions(assignment):
        assert f"{fn} 100%" in by[("student", "ana")].reason
    assert report.delegation == {}


@pytest.mark.parametrize("assignment", sorted(HONEST))
def test_honest_answers_score_well_below_the_threshold(assignment):
    """The margin, not only the verdict: two independent correct answers,
    and each of them against the published solution and the reference."""
    sol, subs = class_of(assignment)
    report = rep.similarity_report(assignment, subs, solution=sol,
                                   threshold=0.01, min_shared=1,
                                   released=released_nb(assignment))
    honest = {"ana", "ben"}
    worst = max((m.score for m in report.matches
                 if m.student in honest and m.other in honest | {
                     "published solution", "lstmlib (reference implementation)"}),
                default=0.0)
    assert worst < similarity.DEFAULT_THRESHOLD / 2, worst


def test_code_moved_to_an_added_cell_is_compared_too():
    """Answers are not only in the solution cells: a student may add cells
    (the grader calls the function by name, wherever it was defined)."""
    sol, subs = class_of("04_lstm_cell")
    moved = released_nb("04_lstm_cell")
    for src in HONEST_04["ana"].values():
        moved = add_cell(moved, disguise(src, KEEP | {"lstm_step_forward",
                                                      "lstm_step_backward"}))
    report = rep.similarity_report("04_lstm_cell", {"ana": subs["ana"], "gil": moved,
                                                    "ben": subs["ben"]},
                                   solution=sol, released=released_nb("04_lstm_cell"))
    assert _pairs(report) == {("student", "ana", "gil")}


def test_a_lower_threshold_flags_more_and_bad_thresholds_are_named():
    sol, subs = class_01()
    strict = rep.similarity_report("01_rnn_forward", subs, solution=sol)
    loose = rep.similarity_report("01_rnn_forward", subs, solution=sol,
                                  threshold=0.05, min_shared=1)
    assert _pairs(strict) < _pairs(loose)
    for bad in (0, 1.5, "0.5"):
        with pytest.raises(ValueError, match="threshold: expected a number in"):
            rep.similarity_report("01_rnn_forward", subs, threshold=bad)


def test_report_lists_delegation_too():
    sol = solution_nb("04_lstm_cell")
    subs = {"gus": with_cell(sol, "lstm_step_backward",
                             _fill(ATTACKS["getattr with a built name"],
                                   "04_lstm_cell", "lstm_step_backward")),
            "hal": released_nb("04_lstm_cell")}
    report = rep.similarity_report("04_lstm_cell", subs, solution=sol)
    assert list(report.delegation) == ["gus"]
    assert list(report.delegation["gus"]) == ["lstm_step_backward"]


def test_normalisation_ignores_names_comments_and_layout():
    a = "def f(x, y):\n    '''doc'''\n    total = x + y  # sum\n    return total * 2\n"
    b = "def f(a,\n      b):\n    s = (a +\n         b)\n\n    return s*2\n"
    c = "def f(x, y):\n    return (x - y) * 2\n"
    assert similarity.normalise(a, keep={"f"}) == similarity.normalise(b, keep={"f"})
    assert similarity.normalise(a, keep={"f"}) != similarity.normalise(c, keep={"f"})
    with pytest.raises(ValueError, match="code: expected Python source"):
        similarity.normalise("def (:")


# ---------------------------------------------------------------------------
# The command line, end to end, on a small class

def test_cli_end_to_end(tmp_path):
    sol, subs = class_01()
    course = tmp_path / "course"
    (course / "solutions" / "01_rnn_forward").mkdir(parents=True)
    (course / "solutions" / "01_rnn_forward" / "rnn_forward.ipynb").write_text(
        json.dumps(sol))
    (course / "exercises" / "01_rnn_forward").mkdir(parents=True)
    (course / "exercises" / "01_rnn_forward" / "rnn_forward.ipynb").write_text(
        json.dumps(released_nb("01_rnn_forward")))
    subs["gus"] = with_cell(sol, "rnn_forward",
                            _fill(ATTACKS["importlib with a built name"],
                                  "01_rnn_forward", "rnn_forward"))
    for student, nb in subs.items():
        d = course / "grading" / "submitted" / student / "01_rnn_forward"
        d.mkdir(parents=True)
        (d / "rnn_forward.ipynb").write_text(json.dumps(nb))
    cmd = [sys.executable, "-m", "lstmlib.grading", "--course", str(course),
           "similarity", "01_rnn_forward"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "7 submissions" in run.stdout
    reports = course / "grading" / "reports"
    with open(reports / "01_rnn_forward-similarity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    flagged = {(r["kind"], r["student"], r["other"]) for r in rows}
    assert ("student", "ana", "cara") in flagged
    assert ("solution", "dan", "published solution") in flagged
    assert ("reference", "eve", "lstmlib (reference implementation)") in flagged
    assert ("delegation", "gus", "rnn_forward") in flagged
    assert not any("ben" in (r["student"], r["other"]) for r in rows)
    assert not any("fay" in (r["student"], r["other"]) for r in rows)
    md = (reports / "01_rnn_forward-similarity.md").read_text()
    assert "| student | ana | cara |" in md
    assert "<td>cara</td>" in (reports / "01_rnn_forward-similarity.html").read_text()
    # a second run keeps the first report aside instead of overwriting it
    run2 = subprocess.run(cmd + ["--threshold", "0.99"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert run2.returncode == 0, run2.stderr
    with open(reports / "01_rnn_forward-similarity.previous.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    # bad input: an unknown assignment, a course with no submissions
    bad = subprocess.run(cmd[:-1] + ["10_transformers"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 1 and "assignment: expected one of" in bad.stderr
    empty = subprocess.run([sys.executable, "-m", "lstmlib.grading", "--course",
                            str(tmp_path), "similarity", "01_rnn_forward"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert empty.returncode == 1 and "expected submissions in" in empty.stderr


@pytest.mark.parametrize("assignment", sorted(assignments.ASSIGNMENTS))
def test_report_on_every_assignment(tmp_path, assignment, capsys):
    """The command (in-process) on each real assignment: a student handing
    in the published solution is listed, a blank notebook and an answer with
    one typical mistake of the bank beside it are read without error; a
    delegating answer of the bank is listed as delegation."""
    nb_file = notebooks.notebook_file(assignment)
    sol = solution_nb(assignment)
    bank = load(assignment)
    honest_mistake = next(m for m in bank.MISTAKES if "delegat" not in m.name)
    subs = {"copier": sol, "blank": released_nb(assignment),
            "mistaken": apply(sol, honest_mistake)}
    delegating = [m for m in bank.MISTAKES if "delegat" in m.name]
    if delegating:
        subs["delegator"] = apply(sol, delegating[0])
    for student, nb in subs.items():
        d = tmp_path / "grading" / "autograded" / student / assignment
        d.mkdir(parents=True)
        (d / nb_file).write_text(json.dumps(nb))
    (tmp_path / "solutions" / assignment).mkdir(parents=True)
    (tmp_path / "solutions" / assignment / nb_file).write_text(json.dumps(sol))
    rc = rep.main(["--course", str(tmp_path), assignment, "--from", "autograded"])
    out = capsys.readouterr().out
    assert rc == 0, out
    with open(tmp_path / "grading" / "reports" / f"{assignment}-similarity.csv",
              newline="") as fh:
        rows = list(csv.DictReader(fh))
    kinds = {(r["kind"], r["student"]) for r in rows}
    assert ("solution", "copier") in kinds
    assert not any(r["student"] == "blank" or r["other"] == "blank" for r in rows)
    assert not any(r["kind"] in ("delegation", "not compared") and
                   r["student"] in ("copier", "mistaken", "blank") for r in rows)
    if delegating:
        assert ("delegation", "delegator") in kinds
