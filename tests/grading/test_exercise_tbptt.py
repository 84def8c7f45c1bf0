"""Exercise 11_tbptt: the solution passes its graded checks, every mistake of
the bank fails the part it should with the likely cause named, the student
version hides the solution (that it is the one nbgrader generates:
tests/grading/test_exercises.py::test_exercises_up_to_date). (Delegation
to lstmlib.tbptt has nothing to reach in a graded kernel:
tests/grading/test_kernel_edition.py.) (The end-to-end scores with the real
nbgrader CLI: tests/grading/test_grading_pipeline.py::test_assignment_scores
and tests/mistakes/autograde_bank.py.)"""

import json
from pathlib import Path

import numpy as np
import pytest

from lstmlib.grading.checks._compare import GradingError
from lstmlib.selfcheck import checks
from tests import mistakes
from tests.notebooks import nbgrader_meta as _meta
from tests.notebooks import answer_namespace as _namespace
from tests.notebooks import source as _src

ROOT = Path(__file__).resolve().parents[2]

A = "11_tbptt"
PARTS = ("tbptt_windows", "truncated_bptt")
POINTS = {"tbptt_windows": (1.0, 1.0), "truncated_bptt": (1.0, 2.0)}   # visible, hidden
SOLUTION = ROOT / "solutions" / A / "tbptt.ipynb"
RELEASE = ROOT / "exercises" / A / "tbptt.ipynb"


def _results(nb):
    """{part: {which: None if every case passes else the failure text}}."""
    ns = _namespace(nb)
    out = {}
    for part in PARTS:
        out[part] = {}
        for which in ("visible", "hidden"):
            try:
                getattr(checks, part)(ns[part], which)
                out[part][which] = None
            except GradingError as e:
                out[part][which] = str(e)
    return out


def _score(results):
    return sum(POINTS[part][i] for part, r in results.items()
               for i, which in enumerate(("visible", "hidden")) if r[which] is None)


def test_solution_passes_every_case():
    res = _results(json.loads(SOLUTION.read_text()))
    assert res == {p: {"visible": None, "hidden": None} for p in PARTS}


BANK = mistakes.load(A)


@pytest.mark.parametrize("mistake", BANK.MISTAKES, ids=[m.name for m in BANK.MISTAKES])
def test_each_mistake_fails_its_part_only(mistake):
    res = _results(mistakes.apply(json.loads(SOLUTION.read_text()), mistake))
    assert any(res[mistake.cell].values()), f"{mistake.name} passed every case"
    other = (set(PARTS) - {mistake.cell}).pop()
    assert res[other] == {"visible": None, "hidden": None}
    assert _score(res) == mistake.expected_score


@pytest.mark.parametrize("mode,text", [
    ("windows start at the chunk's first step", "k2 steps back from stop"),
    ("window start not clipped at step 0", "starts before step 0"),
    ("last, shorter chunk dropped", "last, shorter chunk is missing"),
    ("last window measured from loss_start", "not loss_start - (k2 - k1)"),
    ("state reset to zero at each window", "reset to zero at each window instead of carried"),
    ("gradient not cut", "gradient was not cut"),
    ("loss of the overlap counted twice", "counted twice"),
    ("state taken where the previous window stopped", "where the previous one stopped"),
    ("float64 window gradient for float32 inputs", "expected dtype float32"),
])
def test_failures_name_the_likely_cause(mode, text):
    m = next(m for m in BANK.MISTAKES if m.name == mode)
    res = _results(mistakes.apply(json.loads(SOLUTION.read_text()), m))
    failed = [t for t in res[m.cell].values() if t is not None]
    assert failed and text in failed[0], failed
    if mode != "float64 window gradient for float32 inputs":   # the student's own error
        assert "Likely cause" in failed[0], failed[0]


def test_nonlinearity_ignored_is_named_in_the_relu_case():
    """Not in the bank (its score is that of any slip the hidden cases
    catch): a window forward without the nonlinearity fails the hidden ReLU
    case only, and the message says so."""
    nb = json.loads(SOLUTION.read_text())
    for old in ("b_ih, b_hh, nonlinearity)",
                "b_ih, b_hh,\n                                  nonlinearity)"):
        nb = mistakes.apply(nb, mistakes.Mistake("tanh always", "truncated_bptt", old,
                                                 "b_ih, b_hh)", 3.0))
    res = _results(nb)
    assert res["truncated_bptt"]["visible"] is None
    text = res["truncated_bptt"]["hidden"]
    assert "ReLU" in text.splitlines()[0] and "nonlinearity is ignored" in text, text


def test_windows_answer_must_be_tuples_of_ints():
    """A windows answer of another shape fails with what was expected."""
    bad = {"None": lambda T, k1, k2: None,
           "floats": lambda T, k1, k2: [(0.0, 0.0, float(min(k1, T)))],
           "pairs": lambda T, k1, k2: [(0, min(k1, T))]}
    for name, fn in bad.items():
        with pytest.raises(GradingError, match="a list of \\(start, loss_start, stop\\) "
                                               "tuples of ints") as info:
            checks.tbptt_windows(fn, "visible")
        assert name != "None" or "forget a return" in str(info.value)
    # numpy ints and lists of lists are ints and tuples enough
    ref = _namespace(json.loads(SOLUTION.read_text()))["tbptt_windows"]
    checks.tbptt_windows(lambda T, k1, k2: [list(np.array(w)) for w in ref(T, k1, k2)],
                         "hidden")


def test_uncut_case_equals_full_bptt():
    """The hidden case with k2 >= T expects full BPTT's gradients: one
    rnn_backward over the whole sequence, computed here apart from
    lstmlib.tbptt."""
    from lstmlib.grading import checks as trusted
    from lstmlib.grading.checks import _engine
    from lstmlib.grading.checks._compare import thaw
    from lstmlib.rnn import rnn_backward, rnn_forward
    trusted.prepare(A)
    case = next(c for c in _engine._PARTS["truncated_bptt"].cases["hidden"]
                if "full BPTT" in c.name)
    x, h0, w_ih, w_hh, b_ih, b_hh, d_out, windows = thaw(case.args)
    assert all(w[0] == 0 for w in windows) and len(windows) > 1
    _, _, cache = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh)
    g = rnn_backward(d_out, None, cache)
    expected = thaw(case.expected)
    np.testing.assert_allclose(expected[0], g.dw_ih, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(expected[1], g.dw_hh, rtol=1e-12, atol=1e-14)
    assert expected[2] is None and expected[3] is None


def test_student_version_hides_solution_and_fails():
    student = json.loads(RELEASE.read_text())
    text = "\n".join(_src(c) for c in student["cells"])
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", '"hidden")',
                   "max(0, stop - k2)", "full.hs[start - 1]"):
        assert marker not in text
    res = _results(student)
    for part, r in res.items():
        for which, text in r.items():
            assert text is not None and "NotImplementedError" in text, (part, which, text)


def test_structure():
    nb = json.loads(SOLUTION.read_text())
    # the install cell (scripts/add_install_cell.py) comes first; the setup
    # cell right after it
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and not c["metadata"].get("course_install")]
    assert _meta(code[0]).get("locked") and 'checks.prepare("11_tbptt")' in _src(code[0])
    assert "](../../book/09_practice.md)" in _src(nb["cells"][0])
    graded = {_meta(c)["grade_id"]: _meta(c)["points"] for c in code if _meta(c).get("grade")}
    assert sum(graded.values()) == BANK.FULL_SCORE
    assert len([g for g in graded if g.endswith("_hidden")]) == 2
    toc = (ROOT / "_toc.yml").read_text()
    assert "exercises/11_tbptt/tbptt" in toc
    assert "11. **Truncated BPTT.**" in (ROOT / "book" / "exercises.md").read_text()
    assert "exercises/11_tbptt/tbptt" in (ROOT / "book" / "09_practice.md").read_text()

