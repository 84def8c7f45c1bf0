"""A course whose gradebook is on PostgreSQL (nbgrader's db_url), graded on Dask.

The test starts a real PostgreSQL server of its own on 127.0.0.1 (Debian's
postgresql, installed by scripts/system-deps.sh; as root it runs the server
as the ``postgres`` user, since initdb refuses root), generates the
assignment into it, grades a small synthetic class with ``autograde
--cluster local:2`` and reads the scores back from PostgreSQL.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import synthetic_class  # scripts/, on pytest's pythonpath

from lstmlib.grading import ledger as L

# one pytest-xdist worker: one PostgreSQL server for the module
pytestmark = pytest.mark.xdist_group("postgres")

HERE = Path(__file__).resolve().parents[1]   # tests/
REPO = HERE.parent

ASSIGNMENT = "01_rnn_forward"


def _bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres(skip_or_fail):
    """A throwaway PostgreSQL server on loopback; yields its db_url."""
    bindir = _bindir()
    if bindir is None:
        skip_or_fail("PostgreSQL is not installed here (scripts/system-deps.sh installs it; "
                     "Debian: apt-get install postgresql)")
    as_root = os.geteuid() == 0
    prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] \
        if as_root else []
    home = Path(tempfile.mkdtemp(prefix="lstmlib-pg-"))
    data = home / "data"
    if as_root:
        shutil.chown(home, "postgres", "postgres")
    port = _free_port()

    def run(*args, check=True):
        proc = subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True,
                              timeout=120, cwd=home)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    run(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "grader", "-E", "UTF8")
    run(f"{bindir}/pg_ctl", "-D", data, "-l", home / "server.log", "-w", "-t", "60",
        "-o", f"-h 127.0.0.1 -p {port} -k {home} -F", "start")
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", port, "-U", "grader", "gradebook")
        yield f"postgresql+psycopg://grader@127.0.0.1:{port}/gradebook"
    finally:
        run(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_postgres_gradebook_end_to_end(postgres, tmp_path, sandbox_mode):
    import sqlalchemy as sa
    from nbgrader.api import Gradebook
    course = tmp_path / "course"
    expected = synthetic_class.make_class(course, ASSIGNMENT, 6, db_url=postgres)
    assert not (course / "grading" / "gradebook.db").exists()     # nothing in sqlite

    def scores():
        with Gradebook(postgres) as gb:
            return {s.student.id: float(s.score) for s in gb.assignment_submissions(ASSIGNMENT)}

    proc = subprocess.run([sys.executable, "-m", "lstmlib.grading", "autograde", ASSIGNMENT,
                           "--cluster", "local:2", *sandbox_mode.unsafe], cwd=course,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert scores() == {s: e[1] for s, e in expected.items()}, proc.stdout
    assert not (course / "grading" / "gradebook.db").exists()
    engine = sa.create_engine(postgres)
    try:
        with engine.connect() as conn:
            states = conn.execute(sa.text(
                f"SELECT state, attempts FROM {L.TABLE}")).fetchall()
    finally:
        engine.dispose()
    assert sorted(states) == [("done", 1)] * 6

    # a second run grades nothing
    proc = subprocess.run([sys.executable, "-m", "lstmlib.grading", "autograde", ASSIGNMENT,
                           "--cluster", "local:2", *sandbox_mode.unsafe], cwd=course,
                          capture_output=True, text=True, timeout=600)
    assert "0 graded" in proc.stdout and "6 already graded" in proc.stdout, proc.stdout
    assert scores() == {s: e[1] for s, e in expected.items()}
