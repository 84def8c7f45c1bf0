"""A tiny nbgrader course used to test the grading pipeline quickly.

One assignment, ``tiny/tiny.ipynb``: a locked setup cell that captures a
tamper-resistant checker before any student code runs, two functions to
write (``square`` and ``cube``) and four graded test cells (5 points), two
of them with hidden tests. The hidden tests carry the marker
``SECRET-HIDDEN-MARKER`` so tests can look for leaks.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.notebooks import cell  # also tiny.cell(nb, grade_id) for the tests

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "tiny"
NOTEBOOK = "tiny"
FULL_SCORE = 5.0
SQUARE_POINTS = 3.0
CUBE_POINTS = 2.0
SECRET = "SECRET-HIDDEN-MARKER"

SETUP = '''\
import numpy as np


def _make_check():
    # Captured before any student code runs: reassigning np.allclose,
    # builtins or ndarray methods later does not change these references.
    _type, _nd, _tolist, _fail = type, np.ndarray, np.ndarray.tolist, AssertionError
    _isinstance, _list, _float, _len, _abs = isinstance, list, float, len, abs

    def flat(v):
        if _isinstance(v, _list):
            out = []
            for item in v:
                out += flat(item)
            return out
        return [_float(v)]

    def check_close(got, expected, name, tol=1e-9):
        if _type(got) is not _nd:
            raise _fail(f"{name}: expected numpy.ndarray, got {_type(got).__name__}")
        g, e = flat(_tolist(got)), flat(expected)
        if _len(g) != _len(e):
            raise _fail(f"{name}: expected {_len(e)} values, got {_len(g)}")
        for a, b in zip(g, e):
            if not _abs(a - b) <= tol * (1 + _abs(b)):
                raise _fail(f"{name}: expected {e}, got {g}")
    return check_close


check_close = _make_check()
'''

SQUARE = '''\
def square(x):
    """Elementwise square of a float array."""
    ### BEGIN SOLUTION
    return np.asarray(x, dtype=float) ** 2
    ### END SOLUTION
'''

CUBE = '''\
def cube(x):
    """Elementwise cube of a float array."""
    ### BEGIN SOLUTION
    return np.asarray(x, dtype=float) ** 3
    ### END SOLUTION
'''

TEST_SQUARE = 'check_close(square(np.array([1.0, 2.0, -3.0])), [1.0, 4.0, 9.0], "square")\n'
TEST_SQUARE_HIDDEN = f'''\
check_close(square(np.array([0.5])), [0.25], "square of 0.5")
### BEGIN HIDDEN TESTS
# {SECRET}
check_close(square(np.array([[1.5, -2.0]])), [[2.25, 4.0]], "square of a 2-d array")
### END HIDDEN TESTS
'''
TEST_CUBE = 'check_close(cube(np.array([2.0])), [8.0], "cube")\n'
TEST_CUBE_HIDDEN = f'''\
### BEGIN HIDDEN TESTS
# {SECRET}
check_close(cube(np.array([-1.0, 0.5])), [-1.0, 0.125], "cube hidden")
### END HIDDEN TESTS
'''


def _meta(grade_id, *, grade=False, solution=False, locked=False, points=0):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": 3, "solution": solution}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook():
    cells = [
        new_markdown_cell("# A tiny assignment\nWrite `square` and `cube`."),
        new_code_cell(SETUP, metadata=_meta("setup", locked=True)),
        new_code_cell(SQUARE, metadata=_meta("square", solution=True)),
        new_code_cell(TEST_SQUARE,
                      metadata=_meta("test_square", grade=True, locked=True, points=1)),
        new_code_cell(TEST_SQUARE_HIDDEN,
                      metadata=_meta("test_square_hidden", grade=True, locked=True, points=2)),
        new_code_cell(CUBE, metadata=_meta("cube", solution=True)),
        new_code_cell(TEST_CUBE, metadata=_meta("test_cube", grade=True, locked=True, points=1)),
        new_code_cell(TEST_CUBE_HIDDEN,
                      metadata=_meta("test_cube_hidden", grade=True, locked=True, points=1)),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def make_course(root: Path, *, cell_timeout=10, extra_config="") -> Path:
    """A course folder with the repository's nbgrader_config.py and `tiny`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = (REPO / "nbgrader_config.py").read_text()
    config += f"\nc.Execute.timeout = {cell_timeout}\n" + extra_config
    (root / "nbgrader_config.py").write_text(config)
    folder = root / "solutions" / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(source_notebook(), str(folder / f"{NOTEBOOK}.ipynb"))
    return root


def student_notebook(course: Path):
    """The generated student version (exercises/tiny/tiny.ipynb)."""
    return nbformat.read(str(Path(course) / "exercises" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"),
                         as_version=4)


def answered(course: Path, square="np.asarray(x, dtype=float) ** 2",
             cube="np.asarray(x, dtype=float) ** 3", extra_square="", extra_cells=()):
    """A student notebook with the given bodies for square and cube."""
    nb = student_notebook(course)
    cell(nb, "square").source = (f"{extra_square}\ndef square(x):\n    return {square}\n")
    cell(nb, "cube").source = f"def cube(x):\n    return {cube}\n"
    index = nb.cells.index(cell(nb, "test_cube_hidden")) + 1
    for source in extra_cells:
        nb.cells.insert(index, new_code_cell(source))
        index += 1
    return nb


def place_submission(course: Path, student: str, nb=None, raw: bytes | None = None,
                     name=f"{NOTEBOOK}.ipynb", timestamp="2026-01-01 12:00:00.000000 UTC"):
    """Put a notebook straight into grading/submitted/<student>/tiny/."""
    folder = Path(course) / "grading" / "submitted" / student / ASSIGNMENT
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if raw is not None:
        (folder / name).write_bytes(raw)
    else:
        nbformat.write(nb, str(folder / name))
    (folder / "timestamp.txt").write_text(timestamp)
    return folder
