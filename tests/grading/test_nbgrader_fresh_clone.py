"""nbgrader's own commands work in a fresh clone of the course.

A fresh clone has no grading/ folder (git ignores it); nbgrader opens the
sqlite gradebook grading/gradebook.db and, when the folder is missing,
fails with a misleading "error accessing the nbgrader database ... run
nbgrader db upgrade". nbgrader_config.py creates the folder when it loads,
and puts the bin folder of nbgrader's own environment on PATH (nbgrader runs
its `alembic` command, absent from PATH when .venv is not activated).
This runs the real ``nbgrader generate_assignment`` in a real ``git clone``.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _nbgrader():
    exe = Path(sys.executable).parent / "nbgrader"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nbgrader"]


@pytest.fixture
def clone(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("the course folder is not a git checkout: nothing to clone")
    dest = tmp_path / "course"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True,
                   timeout=120)
    # the working copy's config, so that an uncommitted edit is tested too
    shutil.copy(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


@pytest.mark.slow
def test_generate_assignment_in_a_fresh_clone(clone):
    assert not (clone / "grading").exists()          # as git leaves it
    released = clone / "exercises" / "04_lstm_cell" / "lstm_cell.ipynb"
    # deleted as git deletes it: the emptied folder goes too (with the folder
    # still there nbgrader skips the assignment: "Skipping existing")
    subprocess.run(["git", "rm", "--quiet", str(released.relative_to(clone))],
                   cwd=clone, check=True, timeout=60)
    assert not released.parent.exists()
    # .venv/bin/nbgrader called without activating .venv: its bin folder is
    # not on PATH (nbgrader runs the `alembic` command from there)
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != Path(venv_bin).resolve())
    run = subprocess.run(_nbgrader() + ["generate_assignment", "04_lstm_cell"],
                         cwd=clone, capture_output=True, text=True, timeout=300,
                         env=env)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "db upgrade" not in out and "error accessing" not in out.lower(), out
    assert (clone / "grading" / "gradebook.db").is_file()
    # the student version is back: solutions cleared, hidden tests removed,
    # every graded cell of the source present
    nb = json.loads(released.read_text())
    text = json.dumps(nb)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert "raise NotImplementedError()" in text

    def ids(notebook):
        return [c["metadata"]["nbgrader"]["grade_id"] for c in notebook["cells"]
                if "nbgrader" in c.get("metadata", {})]

    source = json.loads((clone / "solutions" / "04_lstm_cell" /
                         "lstm_cell.ipynb").read_text())
    assert ids(nb) == ids(source)
    # and the gradebook knows the assignment
    listed = subprocess.run(_nbgrader() + ["db", "assignment", "list"], cwd=clone,
                            capture_output=True, text=True, timeout=300, env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "04_lstm_cell" in listed.stdout + listed.stderr
