"""Reading the student's code out of a notebook, as JSON and :mod:`ast`.

Nothing here runs a notebook's code. A notebook is loaded as a dict, its
code cells are parsed (IPython magics dropped), and the cells that may hold
the student's own code are told apart from the ones every student received:
the nbgrader solution cells and any cell nbgrader neither locks nor grades
(cells the student added, try-it cells). :func:`skeleton` rebuilds the
released student version of a source notebook, whose code the similarity
report does not count.

The assignment a notebook belongs to, and what it grades, come from the
manifest (:mod:`lstmlib.grading.assignments`).
"""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

from ..assignments import ASSIGNMENTS, Assignment, find


def get_assignment(name):
    """The manifest's :class:`~lstmlib.grading.assignments.Assignment`
    called ``name`` (or ``name`` itself when it is one; ValueError otherwise)."""
    return name if isinstance(name, Assignment) else find(name)


def graded_functions(assignment):
    """The notebook functions the parts of ``assignment`` hand to their
    checks, in the order of the parts."""
    a = get_assignment(assignment)
    return tuple(dict.fromkeys(f for part in a.parts for f in part.functions))


def notebook_file(assignment):
    """The file name of the assignment's notebook (``rnn_forward.ipynb``)."""
    return f"{get_assignment(assignment).notebook}.ipynb"


def cell_source(cell):
    """A cell's source as one string."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def load_notebook(notebook):
    """A notebook as a dict, from a dict or a path (ValueError if neither)."""
    if isinstance(notebook, dict):
        return notebook
    if isinstance(notebook, (str, os.PathLike)):
        path = Path(notebook)
        if not path.is_file():
            raise ValueError(f"notebook: expected an .ipynb file, received "
                             f"{str(path)!r} (no such file)")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"notebook: {str(path)!r} is not a notebook "
                             f"(JSON expected): {exc}") from None
    raise ValueError(f"notebook: expected a path or a notebook dict, "
                     f"received {type(notebook).__name__}")


def is_answer(cell):
    """A code cell that may hold the student's code: a solution cell, or
    any cell nbgrader does not lock or grade (cells the student added,
    try-it cells; what every student received is removed as base code)."""
    md = cell.get("metadata", {}).get("nbgrader", {})
    if cell.get("cell_type") != "code":
        return False
    return bool(md.get("solution")) or not (md.get("grade") or md.get("locked"))


def is_solution(cell):
    """An nbgrader solution cell (the student writes its code)."""
    md = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(md.get("solution"))


_MAGIC = re.compile(r"^\s*(%|!)")


def parse_code(src):
    """The module of a cell's source (IPython magics dropped), or None."""
    lines = ["" if _MAGIC.match(line) else line for line in src.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def infer_assignment(nb, path=None):
    """The assignment of a notebook: from its ``checks.prepare("...")``
    call, else from its path (…/<assignment>/<notebook>.ipynb or the
    notebook's file name). None when none fits."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        m = re.search(r"checks\.prepare\(\s*['\"]([0-9A-Za-z_]+)['\"]", cell_source(cell))
        if m and m.group(1) in ASSIGNMENTS:
            return m.group(1)
    if path is not None:
        path = Path(path)
        for part in reversed(path.parts[:-1]):
            if part in ASSIGNMENTS:
                return part
        for a in ASSIGNMENTS.values():
            if path.name == notebook_file(a):
                return a.name
    return None


def skeleton(nb):
    """The student version of a source notebook's solution cells: every
    ### BEGIN SOLUTION ... ### END SOLUTION region replaced as nbgrader does."""
    nb = json.loads(json.dumps(nb))
    for cell in nb.get("cells", []):
        if not is_solution(cell):
            continue
        out, inside = [], False
        for line in cell_source(cell).splitlines():
            if re.match(r"\s*#+\s*BEGIN SOLUTION", line):
                inside = True
                indent = line[:len(line) - len(line.lstrip())]
                out.append(f"{indent}raise NotImplementedError()")
                continue
            if re.match(r"\s*#+\s*END SOLUTION", line):
                inside = False
                continue
            if not inside:
                out.append(line)
        cell["source"] = "\n".join(out)
    return nb
