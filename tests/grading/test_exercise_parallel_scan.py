"""Exercise 12_parallel_scan: the solution passes its graded checks, every
mistake of the bank gets the score it states (a slip in Part B or C fails
that part only; Parts B and C call the student's scan, so a slip in Part A
costs them too where their cases reach it), each slip's message names its
cause, and the student version hides the solution (that it is the one
nbgrader generates: tests/grading/test_exercises.py::test_exercises_up_to_date).
(lstmlib.mingru has nothing to reach in a graded kernel:
tests/grading/test_kernel_edition.py. The end-to-end scores with the real
nbgrader CLI: tests/grading/test_grading_pipeline.py::test_assignment_scores
and tests/mistakes/autograde_bank.py.)"""

import json
from pathlib import Path

import numpy as np
import pytest

from lstmlib.grading.assignments import find
from lstmlib.grading.checks._compare import GradingError
from lstmlib.selfcheck import checks
from tests import mistakes
from tests.notebooks import nbgrader_meta as _meta
from tests.notebooks import answer_namespace as _namespace
from tests.notebooks import source as _src

ROOT = Path(__file__).resolve().parents[2]

A = "12_parallel_scan"
SOLUTION = ROOT / "solutions" / A / "parallel_scan.ipynb"
RELEASE = ROOT / "exercises" / A / "parallel_scan.ipynb"
PARTS = ("linear_scan", "linear_scan_backward", "mingru_forward")


def _results(nb):
    """{(part, "visible" | "hidden"): None if every case passes, else the
    failure text}."""
    ns = _namespace(nb)
    checks.prepare(A)
    out = {}
    for part in PARTS:
        for which in ("visible", "hidden"):
            try:
                getattr(checks, part)(ns[part], which)
                out[part, which] = None
            except GradingError as e:
                out[part, which] = str(e)
    return out


def _score(results):
    """The points of the cells that pass, from the manifest."""
    total = 0.0
    for part in find(A).parts:
        for which, (_, points, _) in (("visible", part.visible), ("hidden", part.hidden)):
            if results[part.check, which] is None:
                total += points
    return total


def _with(cell, old, new):
    return mistakes.apply(json.loads(SOLUTION.read_text()),
                          mistakes.Mistake("slip", cell, old, new, 0.0))


def test_solution_passes_every_case():
    res = _results(json.loads(SOLUTION.read_text()))
    assert res == {(p, w): None for p in PARTS for w in ("visible", "hidden")}


BANK = mistakes.load(A)


@pytest.mark.parametrize("mistake", BANK.MISTAKES, ids=[m.name for m in BANK.MISTAKES])
def test_each_mistake_gets_its_score(mistake):
    res = _results(mistakes.apply(json.loads(SOLUTION.read_text()), mistake))
    assert res[mistake.cell, "visible"] or res[mistake.cell, "hidden"], \
        f"{mistake.name} passed every case of its part"
    if mistake.cell != "linear_scan":           # nothing else calls B or C
        assert all(text is None for (part, _), text in res.items() if part != mistake.cell)
    assert _score(res) == mistake.expected_score, res


# (the solution cell, the text replaced, the slip, what the message must say)
SLIPS = [
    ("linear_scan", "    h[0] = h[0] + a[0] * h0               # fold h0 into step 0\n", "",
     "h0 is not folded into step 0"),
    ("linear_scan", "h[0] = h[0] + a[0] * h0", "h[0] = h[0] + h0", "without a_0"),
    ("linear_scan",
     "        h[d:] = A[d:] * h[:-d] + h[d:]    # (A, h) d steps back, then (A_t, h_t)\n"
     "        A[d:] = A[d:] * A[:-d]            # after h, which reads the old A\n",
     "        A[d:] = A[d:] * A[:-d]\n        h[d:] = A[d:] * h[:-d] + h[d:]\n",
     "A is updated before h"),
    ("linear_scan", "h[d:] = A[d:] * h[:-d] + h[d:]", "h[d:] = A[:-d] * h[d:] + h[:-d]",
     "combined in the wrong order"),
    ("linear_scan", "h[d:] = A[d:] * h[:-d] + h[d:]", "h[d:] = A[:-d] * h[:-d] + h[d:]",
     "the earlier pair's product"),
    ("linear_scan", "        A[d:] = A[d:] * A[:-d]            # after h, which reads the old A\n",
     "", "A is never updated"),
    ("linear_scan", "    while d < h.shape[0]:                 # ceil(log2 T) rounds\n",
     "    for _ in range(int(np.log2(h.shape[0]))):\n", "ceil(log2 T) rounds"),
    ("linear_scan", "d *= 2", "d += 1", "grows by 1 instead of doubling"),
    ("linear_scan_backward",
     "g = linear_scan(a_next[::-1], g_out[::-1], np.zeros_like(h0))[::-1]",
     "g = linear_scan(a[::-1], g_out[::-1], np.zeros_like(h0))[::-1]",
     "a_t instead of a_{t+1}"),
    ("linear_scan_backward",
     "g = linear_scan(a_next[::-1], g_out[::-1], np.zeros_like(h0))[::-1]", "g = g_out",
     "not carried back in time"),
    ("linear_scan_backward",
     "g = linear_scan(a_next[::-1], g_out[::-1], np.zeros_like(h0))[::-1]",
     "g = linear_scan(a_next[::-1], g_out[::-1], np.zeros_like(h0))",
     "reversed time order"),
    ("linear_scan_backward", "    h_prev = np.concatenate([h0[None], h[:-1]])    # h_{t-1}\n",
     "    h_prev = h\n", "not g_t * h_t"),
    ("linear_scan_backward", "dh0 = a[0] * g[0]", "dh0 = g[0]", "dh0 = a_0 * g_0"),
    ("mingru_forward", "out = linear_scan(1 - z, z * h_tilde, h0)",
     "out = linear_scan(z, (1 - z) * h_tilde, h0)", "PyTorch's GRU convention"),
    ("mingru_forward", "h_tilde = x @ w_h.T + b_h", "h_tilde = np.tanh(x @ w_h.T + b_h)",
     "candidate goes through a tanh"),
    ("mingru_forward", "out = linear_scan(1 - z, z * h_tilde, h0)",
     "out = linear_scan(1 - z, h_tilde, h0)", "b_t = z_t * h~_t"),
    ("mingru_forward", "h_n = out[-1]", "h_n = out[0]", "not the first"),
    ("mingru_forward", "h_n = out[-1]", "h_n = h0", "not h0"),
]


@pytest.mark.parametrize("cell, old, new, text", SLIPS, ids=[s[3] for s in SLIPS])
def test_failures_name_the_likely_cause(cell, old, new, text):
    res = _results(_with(cell, old, new))
    message = res[cell, "visible"] or res[cell, "hidden"]
    assert message and "Likely cause" in message and text in message, message


def test_parts_b_and_c_point_to_the_scan():
    """A scan that is wrong in a way no hypothesis of B or C knows: their
    messages send the student back to Part A."""
    res = _results(_with("linear_scan", "d *= 2", "d += 1"))
    for part in ("linear_scan_backward", "mingru_forward"):
        assert "this part calls your linear_scan" in res[part, "visible"], res[part, "visible"]


def test_an_unknown_slip_is_told_where_the_scan_first_goes_wrong():
    """No hypothesis matches: the message names the first wrong position
    and, where it is a power of two, the round that first reaches it."""
    ns = _namespace(json.loads(SOLUTION.read_text()))

    def late(a, b, h0):
        h = ns["linear_scan"](a, b, h0)
        h[4:] = h[4:] * 1.5
        return h

    with pytest.raises(GradingError, match=r"first differs at t = 4, the first position "
                                           r"the round with offset d = 4 changes"):
        checks.linear_scan(late, "visible")

    def first(a, b, h0):
        return ns["linear_scan"](a, b, h0) - 1.0

    with pytest.raises(GradingError, match=r"h\[0\] is already wrong"):
        checks.linear_scan(first, "visible")


def test_inputs_in_place_do_not_move_the_expected_values():
    """A scan that works on a and b in place (no copies) at home: the checks
    hand every call fresh copies, so the next case and the expected values
    are untouched, and the answer is graded on its values."""
    def in_place(a, b, h0):
        b[0] = b[0] + a[0] * h0
        d = 1
        while d < b.shape[0]:
            b[d:] = a[d:] * b[:-d] + b[d:]
            a[d:] = a[d:] * a[:-d]
            d *= 2
        return b

    checks.prepare(A)
    checks.linear_scan(in_place, "visible")
    checks.linear_scan(in_place, "hidden")


def test_student_version_hides_solution_and_fails():
    student = json.loads(RELEASE.read_text())
    text = "\n".join(_src(c) for c in student["cells"])
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", '"hidden")', "A[d:] * h[:-d]"):
        assert marker not in text
    res = _results(student)
    for key, text in res.items():
        assert text is not None and "NotImplementedError" in text, (key, text)


def test_structure():
    nb = json.loads(SOLUTION.read_text())
    # the install cell (scripts/add_install_cell.py) comes first; the setup
    # cell right after it
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and not c["metadata"].get("course_install")]
    assert _meta(code[0]).get("locked") and f'checks.prepare("{A}")' in _src(code[0])
    assert "](../../book/11_beyond.md)" in _src(nb["cells"][0])
    graded = {_meta(c)["grade_id"]: _meta(c)["points"] for c in code if _meta(c).get("grade")}
    assert sum(graded.values()) == BANK.FULL_SCORE == find(A).points
    assert len([g for g in graded if g.endswith("_hidden")]) == 3
    toc = (ROOT / "_toc.yml").read_text()
    assert f"exercises/{A}/parallel_scan" in toc
    assert "12. **The parallel scan.**" in (ROOT / "book" / "exercises.md").read_text()
    assert f"/exercises/{A}/parallel_scan" in (ROOT / "book" / "11_beyond.md").read_text()


def test_the_cases_reach_far_back():
    """The hidden T=33 case of Part A: a round missing at offset 32 changes
    h[32] by more than the tolerance (the gates lie in [0.7, 1))."""
    from lstmlib.grading.checks import parallel_scan
    _, a, b, h0 = parallel_scan._scan_inputs(3002, 33, 2, 3, "float64")
    full = parallel_scan._loop(a, b, h0)
    short = parallel_scan._scan_variant(a, b, h0, "floor")
    np.testing.assert_allclose(short[:32], full[:32], rtol=1e-12)
    assert np.abs(short[32] - full[32]).max() > 1e-4

