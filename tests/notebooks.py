"""The one set of notebook helpers of the tests: reading the course's
notebooks (cell sources, nbgrader metadata), finding and replacing a cell by
its grade_id, the lines of a source notebook that only its solution and
hidden-test regions hold (what a student version, a website page or a
feedback page must never show), and the student versions nbgrader generates
from solutions/, made in this process.

A notebook is a dict as ``json.load`` returns it or an nbformat
``NotebookNode`` (a dict too): every helper takes either.
"""

import copy
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REGION_START = re.compile(r"###\s*BEGIN (SOLUTION|HIDDEN TESTS)")
REGION_END = re.compile(r"###\s*END (SOLUTION|HIDDEN TESTS)")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def source(cell):
    """The cell's source as one string (nbformat may store a list of lines)."""
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def nbgrader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell):
    return nbgrader_meta(cell).get("grade_id")


def cells_with(nb, grade_id_):
    """Every cell of ``nb`` whose grade_id is ``grade_id_``."""
    return [c for c in nb["cells"] if grade_id(c) == grade_id_]


def cell(nb, grade_id_):
    """The one cell of ``nb`` whose grade_id is ``grade_id_``; KeyError
    (naming the grade_id and how many were found) unless there is exactly one."""
    found = cells_with(nb, grade_id_)
    if len(found) != 1:
        raise KeyError(f"expected one cell with grade_id {grade_id_!r}, found {len(found)}")
    return found[0]


def set_source(nb, grade_id_, text):
    """Replace the source of the cell ``grade_id_`` of ``nb`` (in place)."""
    cell(nb, grade_id_)["source"] = text
    return nb


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def replaced(nb, grade_id_, text):
    """A copy of ``nb`` whose cell ``grade_id_`` holds ``text``."""
    return set_source(copy.deepcopy(nb), grade_id_, text)


def appended(nb, text, solution=False):
    """A copy of ``nb`` with a code cell holding ``text`` at its end: a
    student's own cell, or (``solution``) one that nbgrader grades as a
    solution cell."""
    nb = copy.deepcopy(nb)
    meta = {"nbgrader": {"solution": True, "grade": False, "locked": False,
                         "grade_id": f"extra_{len(nb['cells'])}",
                         "schema_version": 3}} if solution else {}
    nb["cells"].append({"cell_type": "code", "metadata": meta, "source": text,
                        "outputs": [], "execution_count": None})
    return nb


def answer_namespace(nb):
    """The namespace of notebook ``nb`` (a dict) after its setup cell and
    its answer (solution) cells, run in order in a fresh namespace."""
    ns = {}
    for c in nb["cells"]:
        m = nbgrader_meta(c)
        if c["cell_type"] == "code" and (m.get("solution") or m.get("grade_id") == "setup"):
            exec(compile(source(c), f"<{m.get('grade_id')}>", "exec"), ns)
    return ns


def solution_only_lines(nb, min_chars=12):
    """The stripped lines (``min_chars`` or longer, comments left out) found
    inside a solution or hidden-test region, or in a markdown solution cell,
    of the notebook ``nb`` (a dict or a path), and nowhere outside those."""
    if not isinstance(nb, dict):
        nb = load(nb)
    inside, outside = set(), set()
    for c in nb["cells"]:
        text = source(c)
        if c["cell_type"] == "markdown" and nbgrader_meta(c).get("solution"):
            inside.update(line.strip() for line in text.splitlines())
            continue
        region = False
        for line in text.splitlines():
            s = line.strip()
            if REGION_START.search(s):
                region = True
            elif REGION_END.search(s):
                region = False
            else:
                (inside if region else outside).add(s)
    return {s for s in inside - outside if len(s) >= min_chars and not s.startswith("#")}


# ---------------------------------------------------------------------------
# the student versions, generated in this process


def generate_student_versions(assignments, dest, solutions=ROOT / "solutions"):
    """Run nbgrader's generate_assignment for each of ``assignments`` in this
    process (its converter, with the course's nbgrader_config.py), from
    ``solutions`` into ``dest``/exercises; returns that folder.

    What ``nbgrader generate_assignment --no-db`` does, without a
    subprocess and without the gradebook (the student version is the same;
    the gradebook only records the cells). About 0.03 s per assignment
    instead of seconds per CLI call."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    dest = Path(dest)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    config.CourseDirectory.root = str(dest)
    config.CourseDirectory.source_directory = str(Path(solutions).resolve())
    config.CourseDirectory.release_directory = "exercises"
    config.CourseDirectory.db_url = f"sqlite:///{dest / 'unused-gradebook.db'}"
    config.GenerateAssignment.no_database = True
    config.SaveCells.enabled = False
    for assignment in assignments:
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id = assignment
        app = GenerateAssignment(coursedir=coursedir, config=config)
        app.force = True
        app.start()
    return dest / "exercises"


def comparable(nb):
    """What must agree between two student versions of a notebook: the
    kernel, and each cell's type, source and metadata (nbgrader's, with
    its checksums, and the course's own keys); not outputs or ids."""
    return {"kernelspec": nb.get("metadata", {}).get("kernelspec"),
            "cells": [(c["cell_type"], source(c), c.get("metadata", {}))
                      for c in nb["cells"]]}
