"""Exercise 10_attention: the solution passes its graded checks, every
mistake of the bank fails the part it should with the likely cause named,
the student version hides the solution (that it is the one nbgrader
generates: tests/grading/test_exercises.py::test_exercises_up_to_date).
(Delegation to lstmlib's attention has nothing to reach in a graded kernel:
tests/grading/test_kernel_edition.py.) (The end-to-end scores with
the real nbgrader CLI: tests/grading/test_grading_pipeline.py::test_assignment_scores
and tests/mistakes/autograde_bank.py.)"""

import json
from pathlib import Path

import pytest

from lstmlib.grading.checks._compare import GradingError
from lstmlib.selfcheck import checks
from tests import mistakes
from tests.notebooks import nbgrader_meta as _meta
from tests.notebooks import answer_namespace as _namespace
from tests.notebooks import source as _src

ROOT = Path(__file__).resolve().parents[2]
A = "10_attention"
SOLUTION = ROOT / "solutions" / A / "attention.ipynb"
RELEASE = ROOT / "exercises" / A / "attention.ipynb"


def _part_results(nb):
    """{part: None if every case passes else the failure text}, visible and
    hidden cases together."""
    ns = _namespace(nb)
    out = {}
    for part in ("attention_forward", "attention_backward"):
        try:
            for which in ("visible", "hidden"):
                getattr(checks, part)(ns[part], which)
            out[part] = None
        except GradingError as e:
            out[part] = str(e)
    return out


def test_solution_passes_every_case():
    assert _part_results(json.loads(SOLUTION.read_text())) == {
        "attention_forward": None, "attention_backward": None}


BANK = mistakes.load(A)


@pytest.mark.parametrize("mistake", BANK.MISTAKES, ids=[m.name for m in BANK.MISTAKES])
def test_each_mistake_fails_its_part_only(mistake):
    nb = mistakes.apply(json.loads(SOLUTION.read_text()), mistake)
    res = _part_results(nb)
    assert res[mistake.cell] is not None, f"{mistake.name} passed every case"
    other = ({"attention_forward", "attention_backward"} - {mistake.cell}).pop()
    assert res[other] is None
    # the score the bank states: 3 points per part, 1 of them visible
    ns = _namespace(nb)
    try:
        getattr(checks, mistake.cell)(ns[mistake.cell], "visible")
        visible_ok = True
    except GradingError:
        visible_ok = False
    assert mistake.expected_score == 3.0 + (1.0 if visible_ok else 0.0)


@pytest.mark.parametrize("mode,text", [
    ("softmax over the batch axis", "over the batch"),
    ("padding zeroed after the softmax (weights do not sum to 1)", "after the softmax"),
    ("tanh missing", "tanh is missing"),
    ("softmax Jacobian without its sum term", "second term"),
    ("dkeys misses the direct path alpha * dcontext", "direct path"),
    ("tanh derivative 1 - u", "1 - u**2"),
])
def test_failures_name_the_likely_cause(mode, text):
    m = next(m for m in BANK.MISTAKES if m.name == mode)
    res = _part_results(mistakes.apply(json.loads(SOLUTION.read_text()), m))
    assert "Likely cause" in res[m.cell] and text in res[m.cell], res[m.cell]


def test_student_version_hides_solution_and_fails():
    student = json.loads(RELEASE.read_text())
    text = "\n".join(_src(c) for c in student["cells"])
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", '"hidden")',
                   "np.tanh(query"):
        assert marker not in text
    res = _part_results(student)
    for part, text in res.items():
        assert text is not None and "NotImplementedError" in text, (part, text)


def test_structure():
    nb = json.loads(SOLUTION.read_text())
    # the install cell (scripts/add_install_cell.py) comes first; the setup
    # cell right after it
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and not c["metadata"].get("course_install")]
    assert _meta(code[0]).get("locked") and 'checks.prepare("10_attention")' in _src(code[0])
    assert "](../../book/10_seq2seq_attention.md)" in _src(nb["cells"][0])
    graded = {_meta(c)["grade_id"]: _meta(c)["points"] for c in code if _meta(c).get("grade")}
    assert sum(graded.values()) == BANK.FULL_SCORE
    assert len([g for g in graded if g.endswith("_hidden")]) == 2
    toc = (ROOT / "_toc.yml").read_text()
    assert "exercises/10_attention/attention" in toc
    # the exercises page's table comes from the manifest (tests/book/test_website.py)
    from lstmlib.grading.assignments import ASSIGNMENTS
    assert ASSIGNMENTS["10_attention"].points == BANK.FULL_SCORE

