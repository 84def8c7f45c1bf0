"""Shared test set-up: one marker per assignment, and the fixtures several
test modules need.

Imports: pyproject.toml's ``[tool.pytest.ini_options] pythonpath`` puts the
repository root (``import lstmlib`` without an install; ``tests.notebooks``,
``tests.mistakes``, ``tests.hostile``) and scripts/ (``import
synthetic_class``) on the module path; no test changes ``sys.path``.

Markers: every assignment of the manifest
(``lstmlib.grading.assignments.ASSIGNMENTS``) has a marker, its name without
the number (``05_lstm_sequence`` -> ``lstm_sequence``), registered here, and
every test whose id or parameters name the assignment carries it, so
``pytest -m lstm_sequence`` runs everything about exercise 5. A new entry of
the manifest brings its marker with it.
"""

import importlib.util
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from lstmlib.grading.assignments import ASSIGNMENTS

ROOT = Path(__file__).resolve().parents[1]


def assignment_marker(assignment):
    """``05_lstm_sequence`` -> ``lstm_sequence``."""
    return assignment.split("_", 1)[1]


def pytest_configure(config):
    for a in ASSIGNMENTS:
        config.addinivalue_line("markers", f"{assignment_marker(a)}: tests of assignment {a}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        text = item.nodeid
        params = getattr(getattr(item, "callspec", None), "params", {})
        text += " " + " ".join(str(v) for v in params.values())
        for a in ASSIGNMENTS:
            if a in text:
                item.add_marker(getattr(pytest.mark, assignment_marker(a)))


def _skip_or_fail(message):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def skip_or_fail():
    """``skip_or_fail(message)``: skip for want of a tool here; in CI (``CI``
    set), where scripts/system-deps.sh installs every tool, fail instead."""
    return _skip_or_fail


@pytest.fixture(scope="session")
def sandbox_mode():
    """Whether the grading sandbox (bubblewrap) works here, probed once:
    ``ok``, ``why`` (when it does not), ``unsafe`` (the CLI arguments that
    grade without it where it cannot run: the scores are still checked) and
    ``require()`` (skip, or fail in CI, without it)."""
    from lstmlib.grading import sandbox
    ok, why = sandbox.probe()

    def require():
        if not ok:
            _skip_or_fail(f"the grading sandbox cannot run here: {why}")

    return SimpleNamespace(ok=ok, why=why, unsafe=[] if ok else ["--unsafe-no-sandbox"],
                           require=require)


@pytest.fixture(scope="session")
def make_course(tmp_path_factory):
    """A factory of course folders in a temporary folder:
    ``make_course(assignments, generate=False)`` copies the repository's
    nbgrader_config.py and solutions/<assignment>/ of each into a new folder
    (with its empty grading/), and with ``generate`` writes their student
    versions (exercises/<assignment>/) as nbgrader's generate_assignment
    does, in this process. Returns the folder."""
    from tests import notebooks

    def make(assignments, generate=False, name="course"):
        course = tmp_path_factory.mktemp(name)
        shutil.copy(ROOT / "nbgrader_config.py", course)
        (course / "grading").mkdir(exist_ok=True)
        for a in assignments:
            shutil.copytree(ROOT / "solutions" / a, course / "solutions" / a)
        if generate:
            notebooks.generate_student_versions(assignments, course, course / "solutions")
        return course

    return make


@pytest.fixture(scope="session")
def hub_launch():
    """hub/launch.py, the course hub's launcher (``make hub``), loaded from its file."""
    spec = importlib.util.spec_from_file_location("course_hub_launch",
                                                  ROOT / "hub" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
