"""A bank of typical mistakes per assignment, as data.

``tests/mistakes/<assignment>.py`` defines ``NOTEBOOK`` (the notebook's
name in solutions/<assignment>/), ``FULL_SCORE`` and ``MISTAKES``: a list of
:class:`Mistake` (a name, the grade_id of the solution cell it edits, the
exact text it replaces, the replacement, and the score the whole assignment
must get with that one mistake). :func:`apply` turns the solution notebook
into a submission carrying one mistake.

Every assignment of the manifest (``lstmlib.grading.assignments``) needs
a bank: tests/grading/test_exercises.py fails for one without.

Each expected score was worked out from which test cells the mistake must
fail (the reasoning is in each mistake's ``why``), then confirmed with a real
``nbgrader autograde`` run (``python -m tests.mistakes.autograde_bank`` from
the repository root).
"""

import copy
import importlib.util
from collections import namedtuple
from pathlib import Path

from lstmlib.grading.assignments import ASSIGNMENTS as MANIFEST
from tests import notebooks

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

Mistake = namedtuple("Mistake", "name cell old new expected_score why")
Mistake.__new__.__defaults__ = ("",)

#: every assignment of the manifest, in order
ASSIGNMENTS = tuple(sorted(MANIFEST))


def path(assignment):
    """Where the bank of ``assignment`` is (or must be)."""
    return HERE / f"{assignment}.py"


def available():
    """Assignments of the manifest that have a mistake bank."""
    return [a for a in ASSIGNMENTS if path(a).exists()]


def load(assignment):
    """The bank module of ``assignment`` (NOTEBOOK, FULL_SCORE, MISTAKES)."""
    if not path(assignment).exists():
        raise ValueError(f"assignment: expected one with a mistake bank "
                         f"(tests/mistakes/<assignment>.py), one of {available()}, "
                         f"received {assignment!r}")
    spec = importlib.util.spec_from_file_location(
        f"lstm_course_mistakes_{assignment}", path(assignment))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = [m.name for m in mod.MISTAKES]
    if len(set(names)) != len(names):
        raise ValueError(f"{assignment}: mistake names must be unique")
    return mod


def solution_path(assignment, root=ROOT):
    bank = load(assignment)
    return Path(root) / "solutions" / assignment / f"{bank.NOTEBOOK}.ipynb"


def apply(nb, mistake):
    """A copy of notebook ``nb`` (a dict) with ``mistake`` applied to the
    solution cell whose grade_id is ``mistake.cell``. ``mistake.old`` must
    occur exactly once in that cell, else ValueError."""
    nb = copy.deepcopy(nb)
    cells = notebooks.cells_with(nb, mistake.cell)
    if len(cells) != 1:
        raise ValueError(f"mistake {mistake.name!r}: expected one cell with "
                         f"grade_id {mistake.cell!r}, found {len(cells)}")
    cell = cells[0]
    src = notebooks.source(cell)
    n = src.count(mistake.old)
    if n != 1:
        raise ValueError(f"mistake {mistake.name!r}: the text to replace must "
                         f"occur exactly once in cell {mistake.cell!r}, found "
                         f"{n} times: {mistake.old!r}")
    new = src.replace(mistake.old, mistake.new)
    cell["source"] = new.splitlines(keepends=True)
    return nb


def read_solution(assignment, root=ROOT):
    return notebooks.load(solution_path(assignment, root))


def notebook_with(assignment, mistake, root=ROOT):
    """The solution notebook of ``assignment`` with one mistake applied."""
    return apply(read_solution(assignment, root), mistake)
