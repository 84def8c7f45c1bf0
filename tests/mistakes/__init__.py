"""A bank of typical mistakes per assignment, as data.

``tests/mistakes/<assignment>.py`` defines ``NOTEBOOK`` (the notebook's
name in solutions/<assignment>/), ``FULL_SCORE`` and ``MISTAKES``: a list of
:class:`Mistake` (a name, the grade_id of the solution cell it edits, the
exact text it replaces, the replacement, and the score the whole assignment
must get with that one mistake). :func:`apply` turns the solution notebook
into a submission carrying one mistake.

Each expected score was worked out from which test cells the mistake must
fail (the reasoning is in each mistake's ``why``), then confirmed with a real
``nbgrader autograde`` run (``python -m tests.mistakes.autograde_bank`` or
``python tests/mistakes/autograde_bank.py``).
"""

import copy
import importlib.util
import json
import sys
from collections import namedtuple
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

Mistake = namedtuple("Mistake", "name cell old new expected_score why")
Mistake.__new__.__defaults__ = ("",)

ASSIGNMENTS = (
    "01_rnn_forward", "02_bptt", "03_gradient_norms", "04_lstm_cell",
    "05_lstm_sequence", "06_gru", "07_bidirectional", "08_training",
    "09_performance", "10_attention",
)


def available():
    """Assignments that have a mistake bank."""
    return [a for a in ASSIGNMENTS if (HERE / f"{a}.py").exists()]


def load(assignment):
    """The bank module of ``assignment`` (NOTEBOOK, FULL_SCORE, MISTAKES)."""
    path = HERE / f"{assignment}.py"
    if not path.exists():
        raise ValueError(f"assignment: expected one of {available()}, "
                         f"received {assignment!r}")
    if str(ROOT) not in sys.path:       # the banks import tests.mistakes
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(
        f"lstm_course_mistakes_{assignment}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = [m.name for m in mod.MISTAKES]
    if len(set(names)) != len(names):
        raise ValueError(f"{assignment}: mistake names must be unique")
    return mod


def solution_path(assignment, root=ROOT):
    bank = load(assignment)
    return Path(root) / "solutions" / assignment / f"{bank.NOTEBOOK}.ipynb"


def _source(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def apply(nb, mistake):
    """A copy of notebook ``nb`` (a dict) with ``mistake`` applied to the
    solution cell whose grade_id is ``mistake.cell``. ``mistake.old`` must
    occur exactly once in that cell, else ValueError."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb["cells"]
             if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == mistake.cell]
    if len(cells) != 1:
        raise ValueError(f"mistake {mistake.name!r}: expected one cell with "
                         f"grade_id {mistake.cell!r}, found {len(cells)}")
    cell = cells[0]
    src = _source(cell)
    n = src.count(mistake.old)
    if n != 1:
        raise ValueError(f"mistake {mistake.name!r}: the text to replace must "
                         f"occur exactly once in cell {mistake.cell!r}, found "
                         f"{n} times: {mistake.old!r}")
    new = src.replace(mistake.old, mistake.new)
    cell["source"] = new.splitlines(keepends=True)
    return nb


def read_solution(assignment, root=ROOT):
    with open(solution_path(assignment, root)) as f:
        return json.load(f)


def notebook_with(assignment, mistake, root=ROOT):
    """The solution notebook of ``assignment`` with one mistake applied."""
    return apply(read_solution(assignment, root), mistake)
