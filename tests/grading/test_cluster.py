"""Grading a class on Dask (lstmlib.grading.driver on cluster.Dask) and its job ledger.

The slow tests grade a synthetic class of 01_rnn_forward (the full solution,
the blank notebook and every mistake of tests/mistakes/, in turn) on a
LocalCluster of 2 worker processes, and compare every cell's score with a
sequential run of the one-machine pipeline (``autograde --workers 1``) on an
identical copy of the course:

- same scores, cell by cell; a second run grades nothing;
- a worker SIGKILLed mid-run: its submission is graded again, no grade lost
  or doubled, same scores;
- the driver SIGKILLed mid-run and started again: jobs merged before the
  kill are not graded again, the rest are, same scores;
- a newer submission replaces the merged grade; an older one's late result
  is dropped.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synthetic_class  # scripts/, on pytest's pythonpath

from lstmlib.grading import ledger as L
from lstmlib.grading import sandbox
from lstmlib.grading.cluster import POLICY, QUIET, parse_cluster
from lstmlib.grading.course import Course
from lstmlib.grading.driver import Driver
from lstmlib.grading.merge import merge

# one pytest-xdist worker: the class and its sequential grading are made once
pytestmark = pytest.mark.xdist_group("cluster")

HERE = Path(__file__).resolve().parents[1]   # tests/
REPO = HERE.parent

ASSIGNMENT = "01_rnn_forward"
STUDENTS = 20
SANDBOX_OK, SANDBOX_WHY = sandbox.probe()
UNSAFE = [] if SANDBOX_OK else ["--unsafe-no-sandbox"]


def cli(course, *args, timeout=900, check=True):
    proc = subprocess.run([sys.executable, "-m", "lstmlib.grading", *map(str, args)],
                          cwd=course, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode not in (0, 3):
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def cell_scores(course: Path) -> dict:
    """{(student, cell): auto_score} from the course's sqlite gradebook."""
    with sqlite3.connect(course / "grading" / "gradebook.db") as db:
        rows = db.execute(
            "SELECT s.student_id, bc.name, g.auto_score FROM grade g "
            "JOIN submitted_notebook sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment s ON sn.assignment_id = s.id "
            "JOIN base_cell bc ON g.cell_id = bc.id").fetchall()
    out = {}
    for student, cell, score in rows:
        assert (student, cell) not in out, f"duplicate grade {student} {cell}"
        out[student, cell] = score
    return out


def totals(scores: dict) -> dict:
    out = {}
    for (student, _), s in scores.items():
        out[student] = out.get(student, 0.0) + (s or 0.0)
    return out


def ledger_rows(course: Path) -> list:
    with sqlite3.connect(course / "grading" / "gradebook.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM {L.TABLE}")]


# ---------------------------------------------------------------------- fast
def test_parse_cluster_refuses_bad_specs():
    cores = os.cpu_count()
    assert parse_cluster("local") == cores
    assert parse_cluster("local:1") == 1
    for bad in ("local:0", f"local:{cores + 1}", "remote", "local:x", ""):
        with pytest.raises(ValueError, match="--cluster"):
            parse_cluster(bad)


def test_the_guide_gives_a_cluster_the_drivers_settings():
    """The YAML the instructor guide gives for a cluster of one's own holds
    exactly the settings the driver gives its LocalCluster."""
    import re
    import yaml
    guide = (REPO / "book" / "instructor_guide.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "distributed:" in b]
    assert len(blocks) == 1, blocks

    def flat(tree, prefix=""):
        out = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[prefix + key] = value
        return out
    assert flat(yaml.safe_load(blocks[0])) == {**POLICY, **QUIET}


def test_job_key_names_everything_that_decides_a_grade():
    files = {"a.ipynb": b"{}", "data/x.npy": b"\x00\x01"}
    base = L.job_key("c", "A", "ann", files, "v1")
    assert base == L.job_key("c", "A", "ann", dict(reversed(list(files.items()))), "v1")
    changed = [L.job_key("c", "A", "bob", files, "v1"),
               L.job_key("c", "B", "ann", files, "v1"),
               L.job_key("d", "A", "ann", files, "v1"),
               L.job_key("c", "A", "ann", files, "v2"),
               L.job_key("c", "A", "ann", {**files, "a.ipynb": b"{ }"}, "v1"),
               L.job_key("c", "A", "ann", {"a.ipynb": b"{}"}, "v1"),
               # moving bytes between the name and the content changes the key
               L.job_key("c", "A", "ann", {"a.ipynb": b"{}", "data/x.np": b"y\x00\x01"}, "v1")]
    assert len({base, *changed}) == len(changed) + 1
    with pytest.raises(ValueError, match=r"files\['a'\]"):
        L.job_key("c", "A", "ann", {"a": "text"}, "v1")


def test_ledger_states(tmp_path):
    db = tmp_path / "gb.db"
    sqlite3.connect(db).close()
    led = L.Ledger(f"sqlite:///{db}")
    job = dict(job_key="k1", course="c", assignment="A", student="ann",
               submitted_at="2026-01-01T00:00:00.000000", grader_version="v")
    assert led.plan([job]) == [job]
    assert led.start("k1") == 1 and led.get("k1")["state"] == "running"
    led.retrying("k1", "KilledWorker: gone")
    assert led.start("k1") == 2
    led.fail("k1", "KilledWorker: gone again")
    assert led.plan([job]) == [job]              # failed: graded again next run
    assert led.get("k1")["attempts"] == 2

    class R:
        status, score, max_score, reason, seconds = "graded", 3.0, 6.0, "", 1.0
    led.done("k1", R)
    assert led.plan([job]) == []                 # done: never again
    assert led.newest_done("A", "ann") == job["submitted_at"]
    assert led.newest_done("A", "ann", other_than="k1") is None
    with sqlite3.connect(db) as conn:            # the gradebook is in WAL mode now
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(KeyError, match="is not in the ledger"):
        led.fail("nope", "x")
    with pytest.raises(ValueError, match="db_url"):
        L.Ledger("mysql://x")
    led.close()


def test_driver_refuses_bad_options(tmp_path):
    with pytest.raises(ValueError, match="--scheduler"):
        Driver(REPO, scheduler="http://host:80")
    with pytest.raises(ValueError, match="retries"):
        Driver(REPO, retries=-1)
    proc = cli(REPO, "autograde", ASSIGNMENT, "--cluster", "local:0", check=False)
    assert proc.returncode == 1 and "--cluster" in proc.stderr
    # the in-process pool (--workers, --keep-scratch) does not mix with Dask's options
    for dask_option in (["--cluster", "local:1"], ["--regrade"],
                        ["--scheduler", "tcp://127.0.0.1:1"]):
        for pool_option in (["--workers", "1"], ["--keep-scratch"]):
            proc = cli(REPO, "autograde", ASSIGNMENT, *pool_option, *dask_option, check=False)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert "--workers/--keep-scratch: expected without --cluster" in proc.stderr


# ---------------------------------------------------------------------- slow
@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The synthetic class, submitted, not graded yet; and its expected totals."""
    root = tmp_path_factory.mktemp("class") / "course"
    expected = synthetic_class.make_class(root, ASSIGNMENT, STUDENTS)
    return root, expected


@pytest.fixture(scope="module")
def sequential(pristine, tmp_path_factory):
    """The one-machine pipeline, one submission at a time: the oracle."""
    root, expected = pristine
    course = tmp_path_factory.mktemp("seq") / "course"
    shutil.copytree(root, course)
    cli(course, "autograde", ASSIGNMENT, "--workers", "1", *UNSAFE, timeout=1800)
    scores = cell_scores(course)
    # the oracle itself agrees with the mistake bank
    assert totals(scores) == {s: e[1] for s, e in expected.items()}
    return scores


def copy_of(pristine, tmp_path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(pristine[0], course)
    return course


@pytest.mark.slow
def test_cluster_grades_like_sequential_and_only_once(pristine, sequential, tmp_path):
    course = copy_of(pristine, tmp_path)
    proc = cli(course, "autograde", ASSIGNMENT, "--cluster", "local:2", *UNSAFE, timeout=1800)
    assert cell_scores(course) == sequential, proc.stdout + proc.stderr
    rows = ledger_rows(course)
    assert len(rows) == STUDENTS and all(r["state"] == "done" and r["attempts"] == 1
                                         for r in rows)
    assert f"{STUDENTS} graded" in proc.stdout and "per core-minute" in proc.stdout
    assert "sub/s" in proc.stderr or "s/sub" in proc.stderr          # tqdm: rate and ETA
    report = json.loads((course / "grading" / "reports" / f"{ASSIGNMENT}.json").read_text())
    assert len(report["results"]) == STUDENTS
    graded = sorted((course / "grading" / "autograded").glob(f"*/{ASSIGNMENT}/*.ipynb"))
    assert len(graded) == STUDENTS

    # unchanged submissions: nothing graded again
    proc = cli(course, "autograde", ASSIGNMENT, "--cluster", "local:2", *UNSAFE)
    assert "0 graded" in proc.stdout and f"{STUDENTS} already graded" in proc.stdout
    assert "cluster:" not in proc.stderr                  # no cluster even started
    assert cell_scores(course) == sequential
    assert [r["attempts"] for r in ledger_rows(course)] == [1] * STUDENTS

    # one student resubmits (the blank notebook over the full solution): only
    # that submission is graded, and its new score replaces the old one
    expected = pristine[1]
    full = next(s for s, (label, _) in expected.items() if label == "full")
    blank = json.loads((course / "exercises" / ASSIGNMENT / "rnn_forward.ipynb").read_text())
    synthetic_class.submit(course, ASSIGNMENT, full, "rnn_forward", blank,
                           dt.datetime(2026, 2, 1, 12, 0))
    proc = cli(course, "autograde", ASSIGNMENT, "--cluster", "local:1", *UNSAFE)
    assert "1 graded" in proc.stdout and f"{STUDENTS - 1} already graded" in proc.stdout
    now = cell_scores(course)
    assert totals(now)[full] == 0.0
    assert {k: v for k, v in now.items() if k[0] != full} == \
        {k: v for k, v in sequential.items() if k[0] != full}


@pytest.mark.slow
def test_worker_killed_mid_run(pristine, sequential, tmp_path):
    course = copy_of(pristine, tmp_path)
    killed, configs = [], {}
    kill = _killer(killed)

    def kill_then_read_settings(driver, summary):
        kill(driver, summary)
        configs.update(driver.client.run(_housekeeping, on_error="ignore"))
    drv = Driver(course, cluster="local:2", unsafe_no_sandbox=not SANDBOX_OK,
                 progress=False, on_merged=kill_then_read_settings)
    summary = drv.autograde(ASSIGNMENT)
    assert killed, "no worker was busy to kill"
    # the workers (read after each merge: those the nanny starts after a
    # kill too) ran with the driver's quiet housekeeping settings
    assert len(configs) >= 2 and all(c == QUIET for c in configs.values()), configs
    assert summary.retried >= 1 and not summary.failed, summary.lines()
    assert len(summary.results) == STUDENTS and summary.duplicates == 0
    assert cell_scores(course) == sequential
    rows = ledger_rows(course)
    assert all(r["state"] == "done" for r in rows)
    assert max(r["attempts"] for r in rows) == 2


def _housekeeping() -> dict:
    """On a worker: its values of the settings the driver quietens."""
    import dask
    return {key: dask.config.get(key) for key in QUIET}


def _killer(killed):
    """An on_merged hook that kills, once, a worker busy grading."""
    def kill_one_worker(driver, summary):
        if killed or len(summary.results) < 2:
            return
        client = driver.client
        busy = [addr for addr, keys in client.processing().items() if keys]
        if not busy:
            return
        pids = client.run(os.getpid, workers=[busy[0]])
        killed.append((busy[0], client.processing()[busy[0]]))
        os.kill(pids[busy[0]], signal.SIGKILL)
    return kill_one_worker


@pytest.mark.slow
def test_retries_run_out_then_a_rerun_grades_what_failed(pristine, sequential, tmp_path):
    """With no retries left, the submission whose worker died is listed as
    failed with Dask's reason, not graded and not scored; the next run grades
    only what failed and the gradebook ends as the sequential one."""
    course = copy_of(pristine, tmp_path)
    killed = []
    drv = Driver(course, cluster="local:2", retries=0, unsafe_no_sandbox=not SANDBOX_OK,
                 progress=False, on_merged=_killer(killed))
    summary = drv.autograde(ASSIGNMENT)
    assert killed, "no worker was busy to kill"
    assert summary.failed and summary.retried == 0, summary.lines()
    assert all(reason.startswith(("KilledWorker", "CommClosedError", "CancelledError"))
               for _, reason in summary.failed), summary.failed
    failed = {student for student, _ in summary.failed}
    assert len(summary.results) + len(failed) == STUDENTS
    rows = ledger_rows(course)
    assert {r["student"] for r in rows if r["state"] == "failed"} == failed
    assert all(r["attempts"] == 1 for r in rows if r["student"] in failed)
    assert not failed & {student for student, _ in cell_scores(course)}
    again = Driver(course, cluster="local:2", unsafe_no_sandbox=not SANDBOX_OK,
                   progress=False).autograde(ASSIGNMENT)
    assert again.skipped == STUDENTS - len(failed) and not again.failed, again.lines()
    assert {r.student for r in again.results} == failed
    assert cell_scores(course) == sequential
    assert all(r["state"] == "done" for r in ledger_rows(course))


@pytest.mark.slow
def test_driver_killed_and_restarted(pristine, sequential, tmp_path):
    course = copy_of(pristine, tmp_path)
    cmd = [sys.executable, "-m", "lstmlib.grading", "autograde", ASSIGNMENT,
           "--cluster", "local:2", *UNSAFE]
    proc = subprocess.Popen(cmd, cwd=course, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    db = course / "grading" / "gradebook.db"
    done_before = []
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                    done_before = conn.execute(
                        f"SELECT job_key FROM {L.TABLE} WHERE state = 'done'").fetchall()
            except sqlite3.OperationalError:          # the ledger table not made yet
                continue
            if len(done_before) >= 4:
                os.killpg(proc.pid, signal.SIGKILL)   # the driver and its cluster
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 4 <= len(done_before) < STUDENTS, "the run ended before it could be killed"
    with sqlite3.connect(db) as conn:
        done_before = {k for (k,) in conn.execute(
            f"SELECT job_key FROM {L.TABLE} WHERE state = 'done'")}

    out = cli(course, "autograde", ASSIGNMENT, "--cluster", "local:2", *UNSAFE, timeout=1800)
    assert f"{len(done_before)} already graded" in out.stdout, out.stdout
    assert f"{STUDENTS - len(done_before)} graded" in out.stdout, out.stdout
    rows = {r["job_key"]: r for r in ledger_rows(course)}
    assert all(rows[k]["attempts"] == 1 for k in done_before)     # not graded again
    assert all(r["state"] == "done" for r in rows.values())
    assert cell_scores(course) == sequential


@pytest.mark.slow
def test_older_submission_result_is_dropped(pristine, tmp_path):
    """A result for a submission older than the one already merged (a late
    duplicate delivery) changes nothing."""
    from lstmlib.grading.driver import gradebook_template
    from lstmlib.grading.job import grade_task
    course_dir = copy_of(pristine, tmp_path)
    course = Course(course_dir)
    drv = Driver(course_dir, unsafe_no_sandbox=not SANDBOX_OK)
    expected = pristine[1]
    full = next(s for s, (label, _) in expected.items() if label == "full")
    old_job = next(j for j in drv.jobs(ASSIGNMENT) if j["student"] == full)
    template = gradebook_template(course.config.db_url, ASSIGNMENT)
    old_result = grade_task(str(course_dir), ASSIGNMENT, full, old_job["files"], template,
                            not SANDBOX_OK)
    assert old_result.score == 6.0
    # the student resubmits a blank notebook later; it is graded and merged
    blank = json.loads((course_dir / "exercises" / ASSIGNMENT / "rnn_forward.ipynb").read_text())
    synthetic_class.submit(course_dir, ASSIGNMENT, full, "rnn_forward", blank,
                           dt.datetime(2026, 3, 1))
    drv.autograde(ASSIGNMENT, [full])
    assert totals(cell_scores(course_dir))[full] == 0.0
    led = L.Ledger(course.config.db_url)
    try:
        assert led.plan([{k: v for k, v in old_job.items() if k != "files"}])
        assert merge(course, led, old_job, old_result) == "superseded"
        assert led.get(old_job["job_key"])["state"] == "superseded"
        # merging the newer job's result again is a duplicate: dropped
        new_job = next(j for j in drv.jobs(ASSIGNMENT) if j["student"] == full)
        assert merge(course, led, new_job, old_result) == "duplicate"
    finally:
        led.close()
    assert totals(cell_scores(course_dir))[full] == 0.0
