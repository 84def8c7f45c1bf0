"""The instructor's grading pipeline, end to end, through the real nbgrader CLI.

``test_tiny_course_pipeline`` drives every step on a tiny course made in a
temporary folder: CSV import, release / fetch / submit / collect through a
local exchange, autograde (sandboxed where bubblewrap works), an
idempotent rerun with a gradebook backup each time, an ungradable
submission reported by name, feedback without hidden tests, CSV export.

``test_assignment_scores`` grades, for every assignment in solutions/, on
a scratch copy of the course, in one autograde run: the full solution (full
marks), the blank student version (zero), every mistake of
tests/mistakes/<assignment>.py (the exact score the bank states) and the
hostile submissions of tests/hostile/real.py (zero for what they attack,
reported; a kernel killed in one part leaves the other parts graded).

``test_two_gradings_draw_fresh_cases`` grades one perfect submission twice
(the default command, on Dask; a run in between grades nothing, the
submission being unchanged; then ``--regrade``): different inputs (the
report's digests), full marks both times.
``test_plain_nbgrader_autograde`` and
``test_nbgrader_api_autograde_is_the_sandboxed_path`` grade through plain
``nbgrader autograde`` and nbgrader's API (the formgrader's Autograde
button): the same sandbox, the same trusted checks, the same scores.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lstmlib.grading import sandbox
from lstmlib.grading._nbext import secret_lines
from lstmlib.grading.assignments import ASSIGNMENTS
from lstmlib.grading.course import leaked_lines
from tests.hostile import real as hostile_real
from tests.hostile import tiny_course as tiny

HERE = Path(__file__).resolve().parents[1]   # tests/
REPO = HERE.parent
SANDBOX_OK, SANDBOX_WHY = sandbox.probe()
# Where bubblewrap is missing (never in CI: the sandbox tests fail there),
# the scores are still checked, without the sandbox.
UNSAFE = [] if SANDBOX_OK else ["--unsafe-no-sandbox"]


def cli(course, *args, timeout=900, check=True):
    proc = subprocess.run([sys.executable, "-m", "lstmlib.grading", *map(str, args)],
                          cwd=course, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def grades(course: Path) -> list:
    with sqlite3.connect(course / "grading" / "gradebook.db") as db:
        return db.execute(
            "SELECT s.student_id, bc.name, g.auto_score, g.manual_score, g.needs_manual_grade "
            "FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment s ON sn.assignment_id = s.id "
            "JOIN base_cell bc ON g.cell_id = bc.id ORDER BY 1, 2").fetchall()


def report(course: Path, assignment: str) -> dict:
    data = json.loads((course / "grading" / "reports" / f"{assignment}.json").read_text())
    return {r["student"]: r for r in data["results"]}


@pytest.mark.slow
def test_tiny_course_pipeline(tmp_path):
    course = tiny.make_course(tmp_path / "course")
    exchange = tmp_path / "exchange"

    bad = tmp_path / "bad.csv"
    bad.write_text("name,email\nAda,ada@example.org\n")
    proc = cli(course, "add-students", bad, check=False)
    assert proc.returncode == 1 and "csv_path" in proc.stderr and "'id'" in proc.stderr

    cli(course, "generate", "tiny")
    roster = tmp_path / "students.csv"
    roster.write_text("id,first_name,last_name,email\nalice,Alice,A,a@x.org\n"
                      "bob,Bob,B,b@x.org\ncarol,Carol,C,c@x.org\n")
    assert "3 students imported" in cli(course, "add-students", roster).stdout
    with sqlite3.connect(course / "grading" / "gradebook.db") as db:
        assert sorted(r[0] for r in db.execute("SELECT id FROM student")) == \
            ["alice", "bob", "carol"]

    # local exchange: release, each student fetches, works, submits; collect
    cli(course, "release", "tiny", "--exchange", exchange)
    answers = {"alice": dict(), "bob": dict(cube="x"), "carol": None}
    for student, body in answers.items():
        home = tmp_path / "home" / student
        cli(course, "fetch", "tiny", "--student-dir", home, "--exchange", exchange)
        path = home / "tiny" / "tiny.ipynb"
        assert path.is_file()
        if body is not None:
            nb = nbformat.read(str(path), as_version=4)
            done = tiny.answered(course, **body)
            for c in nb.cells:
                gid = c.metadata.get("nbgrader", {}).get("grade_id")
                if gid in ("square", "cube"):
                    c.source = tiny.cell(done, gid).source
            nbformat.write(nb, str(path))
        cli(course, "submit", "tiny", "--student", student, "--student-dir", home,
            "--exchange", exchange)
    cli(course, "collect", "tiny", "--exchange", exchange)
    submitted = course / "grading" / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["alice", "bob", "carol"]
    before = digest(submitted)

    cli(course, "autograde", "tiny", *UNSAFE)
    first = grades(course)
    scores = {s: r["score"] for s, r in report(course, "tiny").items()}
    assert scores == {"alice": tiny.FULL_SCORE, "bob": tiny.SQUARE_POINTS, "carol": 0.0}
    assert all(r["status"] == "graded" for r in report(course, "tiny").values())

    # rerun: same gradebook, one more backup, submissions untouched
    cli(course, "autograde", "tiny", *UNSAFE)
    assert grades(course) == first
    backups = sorted((course / "grading" / "backups").glob("gradebook-*.db"))
    assert len(backups) == 2
    with sqlite3.connect(backups[-1]) as db:   # taken before the rerun
        assert db.execute("SELECT COUNT(*) FROM grade").fetchone()[0] == len(first)
    assert digest(submitted) == before

    # a broken submission is reported by name; the others keep their grades
    dave = tiny.place_submission(course, "dave", raw=b'{"cells": [', name="tiny.ipynb")
    proc = cli(course, "autograde", "tiny", *UNSAFE, check=False)
    assert proc.returncode == 3
    assert re.search(r"dave\s+ungradable.*corrupt notebook tiny\.ipynb", proc.stdout)
    assert "NOT GRADED (1): dave" in proc.stdout
    assert {s: r["score"] for s, r in report(course, "tiny").items()} == dict(scores, dave=0.0)
    assert (dave / "tiny.ipynb").read_bytes() == b'{"cells": ['

    # feedback: produced, and free of hidden tests (nbgrader's default is not)
    cli(course, "feedback", "tiny")
    secrets = secret_lines([tiny.SECRET, 'check_close(square(np.array([[1.5, -2.0]])), '
                            '[[2.25, 4.0]], "square of a 2-d array")'])
    assert len(secrets) == 2
    for student in ("alice", "bob", "carol"):
        page = course / "grading" / "feedback" / student / "tiny" / "tiny.html"
        html = page.read_text()
        assert "square" in html and leaked_lines(html, secrets) == [], student
        from nbconvert import HTMLExporter
        autograded = course / "grading" / "autograded" / student / "tiny" / "tiny.ipynb"
        default_html, _ = HTMLExporter().from_filename(str(autograded))
        assert leaked_lines(default_html, secrets) != []
    bob_page = (course / "grading" / "feedback" / "bob" / "tiny" / "tiny.html").read_text()
    assert "expected [8.0], got [2.0]" in bob_page       # the visible test's message

    # export: scores and a status column
    out = tmp_path / "grades.csv"
    cli(course, "export", out)
    rows = {r["student_id"]: r for r in csv.DictReader(open(out))}
    assert float(rows["alice"]["score"]) == tiny.FULL_SCORE
    assert float(rows["bob"]["score"]) == tiny.SQUARE_POINTS
    assert float(rows["carol"]["score"]) == 0.0 and rows["carol"]["status"] == "graded"
    assert float(rows["dave"]["score"]) == 0.0
    assert rows["dave"]["status"].startswith("ungradable: corrupt notebook")


# ---------------------------------------------------------------------------
# the real assignments
# ---------------------------------------------------------------------------
def _assignments():
    """Every assignment of the manifest."""
    return sorted(ASSIGNMENTS)


def _bank(assignment):
    try:
        import mistakes
    except ImportError:
        return None
    if not hasattr(mistakes, "available") or assignment not in mistakes.available():
        return None
    return mistakes.load(assignment)


def _student_id(name):
    return "m-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


#: The rebind attack leaves a kernel that never answers (builtins.isinstance
#: rebound breaks ipykernel itself): the cell's timeout ends it. The course's
#: 120 s would make it the slowest submission of every assignment; the
#: solutions' own cells take a few seconds.
SCORES_CONFIG = """
c.Execute.timeout = 45
"""


def _course_with(tmp_path, assignment, extra_config=""):
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        (REPO / "nbgrader_config.py").read_text() + extra_config)
    shutil.copytree(REPO / "solutions" / assignment, course / "solutions" / assignment)
    cli(course, "generate", assignment)
    notebooks = sorted(p.stem for p in (course / "solutions" / assignment).glob("*.ipynb"))
    return course, notebooks


def _submit(course, assignment, student, files):
    folder = course / "grading" / "submitted" / student / assignment
    folder.mkdir(parents=True)
    for name, nb in files.items():
        (folder / f"{name}.ipynb").write_text(json.dumps(nb))


def test_a_temporary_folder_too_long_for_sockets_is_refused(tmp_path, monkeypatch):
    """The kernels' sockets live below the scratch folder, and a socket's
    path has at most 107 bytes: a longer temporary folder is refused before
    any grading, with what to do, instead of failing every submission."""
    import tempfile
    from lstmlib.grading.config import PipelineError
    from lstmlib.grading.course import Course
    course = tiny.make_course(tmp_path / "course")
    cli(course, "generate", "tiny")
    tiny.place_submission(course, "alice", tiny.answered(course))
    long = tmp_path / ("t" * (107 - len(str(tmp_path))))
    long.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    with pytest.raises(PipelineError, match=r"temporary folder: expected a path of at most 74 "
                                           r"bytes .* set TMPDIR to a shorter folder"):
        Course(course, log=lambda m: None).autograde("tiny", unsafe_no_sandbox=not SANDBOX_OK)
    assert list(long.iterdir()) == []
    assert not (course / "grading" / "autograded" / "alice").exists()


@pytest.mark.slow
def test_a_grading_process_killed_is_graded_again_once(tmp_path, monkeypatch):
    """The machine's fault, not the student's: the nbgrader process grading
    alice is killed once (SIGKILL, as the OOM killer does), bob's twice.
    alice is graded on a second attempt; bob is reported ungradable after
    two, with nbgrader's log kept; the report says both."""
    import signal
    import tempfile
    import threading
    import time
    from lstmlib.grading.course import Course
    course = tiny.make_course(tmp_path / "course")
    cli(course, "generate", "tiny")
    for student in ("alice", "bob"):
        tiny.place_submission(course, student, tiny.answered(course))
    # the grader's fork server and multiprocessing's own folder first, where
    # they would be anyway (they outlive this test and its folder)
    import multiprocessing.forkserver
    from lstmlib.grading.job import _grader_context
    _grader_context()
    multiprocessing.forkserver.ensure_running()
    # this test's scratch courses only, in a short path: the kernel's sockets
    # live below it, and a socket's path has at most 107 bytes
    work = Path(tempfile.mkdtemp(prefix="lsg-test-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    kills = {"0": 1, "1": 2}               # scratch folder (alice, bob) -> kills
    killed, seen, done = [], {}, threading.Event()

    def killer():
        pattern = re.compile(re.escape(str(work)) + r"/lsg-[^/]+/(\d+)/course$")
        while not done.is_set():
            for proc in Path("/proc").iterdir():
                try:
                    m = proc.name.isdigit() and pattern.match(os.readlink(proc / "cwd"))
                    if m and kills.get(m.group(1)) and int(proc.name) not in killed:
                        seen.setdefault(proc.name, time.monotonic())
                        if time.monotonic() - seen[proc.name] < 1.0:
                            continue            # once nbgrader has started its log
                        os.killpg(int(proc.name), signal.SIGKILL)
                        killed.append(int(proc.name))
                        kills[m.group(1)] -= 1
                except OSError:
                    continue
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        results = Course(course, log=lambda m: None).autograde(
            "tiny", workers=2, unsafe_no_sandbox=not SANDBOX_OK)
    finally:
        done.set()
        thread.join()
        shutil.rmtree(work, ignore_errors=True)
    alice, bob = results
    assert len(killed) == 3 and kills == {"0": 0, "1": 0}
    assert (alice.status, alice.score) == ("graded", tiny.FULL_SCORE), alice.line()
    assert any(n.startswith("graded on a second attempt (the first: ") for n in alice.notes)
    assert (bob.status, bob.score) == ("ungradable", 0.0), bob.line()
    assert any(n.startswith("a second attempt failed too") for n in bob.notes), bob.notes
    log = course / "grading" / "reports" / "logs" / "tiny" / "bob.log"
    assert "nbgrader's log: grading/reports/logs/tiny/bob.log" in bob.notes
    assert log.is_file() and "[AutogradeApp" in log.read_text()
    assert report(course, "tiny")["bob"]["notes"] == bob.notes

@pytest.mark.slow
@pytest.mark.parametrize("assignment", _assignments())
def test_assignment_scores(assignment, tmp_path):
    limits = assignment == "01_rnn_forward"       # the slow attacks: one assignment
    course, notebooks = _course_with(tmp_path, assignment, SCORES_CONFIG +
                                     (hostile_real.LIMITS_CONFIG if limits else ""))
    bank = _bank(assignment)
    expected, flags = {}, {}

    def submit(student, files):
        _submit(course, assignment, student, files)

    solution = {n: json.loads((course / "solutions" / assignment / f"{n}.ipynb").read_text())
                for n in notebooks}
    blank = {n: json.loads((course / "exercises" / assignment / f"{n}.ipynb").read_text())
             for n in notebooks}
    submit("full", solution)
    submit("blank", blank)
    expected["blank"] = 0.0
    if bank is not None:
        import mistakes
        expected["full"] = float(bank.FULL_SCORE)
        for mistake in bank.MISTAKES:
            student = _student_id(mistake.name)
            submit(student, dict(solution, **{bank.NOTEBOOK: mistakes.apply(
                solution[bank.NOTEBOOK], mistake)}))
            expected[student] = float(mistake.expected_score)
    manifest = hostile_real.assignment(assignment)
    attacks = hostile_real.attacks(assignment, limits)
    name = manifest.notebook
    for attack, build in attacks.items():
        nb, score, want = build(manifest, blank[name], solution[name])
        submit(f"x-{attack}", dict(solution, **{name: nb}) if attack == "dies"
               else dict(blank, **{name: nb}))
        expected[f"x-{attack}"], flags[f"x-{attack}"] = float(score), want
    beside = _course_beside(assignment) if limits else None
    if beside is not None:
        nb, score, want = hostile_real.beside(manifest, blank[name], solution[name], beside)
        submit("x-beside", dict(blank, **{name: nb}))
        expected["x-beside"], flags["x-beside"] = float(score), want
    if os.path.exists(hostile_real.BOMB_MARK):
        os.unlink(hostile_real.BOMB_MARK)
    try:
        proc = cli(course, "autograde", assignment, *UNSAFE, timeout=2400, check=False)
    finally:
        if beside is not None:
            shutil.rmtree(beside.parent, ignore_errors=True)
    got = report(course, assignment)
    # the autograded points (code cells); a written answer is graded by hand
    with sqlite3.connect(course / "grading" / "gradebook.db") as db:
        max_score = db.execute("SELECT SUM(gc.max_score) FROM grade_cells gc JOIN base_cell bc "
                               "ON gc.id = bc.id JOIN notebook n ON bc.notebook_id = n.id "
                               "JOIN assignment a ON n.assignment_id = a.id WHERE a.name = ? "
                               "AND gc.cell_type = 'code'", (assignment,)).fetchone()[0]
    expected.setdefault("full", float(max_score))
    assert expected["full"] == float(max_score) == manifest.points
    wrong = {s: (got[s]["status"], got[s]["score"], got[s]["reason"]) for s in expected
             if got[s]["status"] != "graded" or got[s]["score"] != expected[s]}
    logs = "".join(f"\n--- nbgrader's log of {s} (tail) ---\n{log.read_text()[-4000:]}"
                   for s in wrong for log in
                   (course / "grading" / "reports" / "logs" / assignment).glob(f"{s}.log"))
    assert not wrong, f"expected {expected}\n{proc.stdout}{logs}"
    unflagged = {s: (want, got[s]["flags"]) for s, want in flags.items()
                 if not set(want) <= set(got[s]["flags"])}
    assert not unflagged, unflagged
    # what a kernel prints while it answers a graded call stays out of the
    # graded notebook (and so of the feedback)
    if "x-prints" in expected:
        assert hostile_real.PRINT_MARK not in _printed(course, assignment, "x-prints",
                                                       graded_only=True)
    # a flag means something: the released notebook's own code raises none
    assert got["full"]["flags"] == [] and got["blank"]["flags"] == [], \
        (got["full"]["flags"], got["blank"]["flags"])
    assert not os.path.exists(hostile_real.BOMB_MARK), "something unpickled an answer"
    assert proc.returncode == 0
    # the delegating parts fail in the kernel: its edition of lstmlib does
    # not hold the reference they import (09's, judged from the source: the
    # grader refuses the import before anything runs)
    assert any("is not handed out in a graded notebook of" in m or
               "delegates to the reference implementation" in m
               for m in _failures(course, assignment, "x-delegate")), \
        _failures(course, assignment, "x-delegate")
    if limits:
        graded = {s: _failures(course, assignment, s) for s in ("x-huge", "x-slow")}
        assert all("larger than the grader accepts" in m for m in graded["x-huge"]), graded
        assert all("ran longer than" in m for m in graded["x-slow"]), graded
        # the box's limits hold for the whole box: the writes failed for want of
        # space, the children together were stopped (the kernel killed, or a
        # child's allocation refused), and the course beside was not there
        printed = {s: _printed(course, assignment, s) for s in ("x-disk", "x-memory",
                                                                  "x-beside")}
        if SANDBOX_OK:
            assert printed["x-disk"].count(": ENOSPC after") == 2, printed["x-disk"]
            assert "read 0 notebooks of the course beside" in printed["x-beside"], printed
            # a cgroup kills a child; the watchdog, the whole box (a note)
            assert re.search(r"memory-attack: [1-9] of 5 children killed", printed["x-memory"]) \
                or any("kernel" in n and ("memory" in n or "killed" in n)
                       for n in got["x-memory"]["notes"]), (printed["x-memory"],
                                                             got["x-memory"]["notes"])
    print({s: r["seconds"] for s, r in got.items()})


def _course_beside(assignment):
    """A copy of the course's solutions for ``assignment`` in a folder outside
    the usual private ones (/opt where it may be written): a box that starts
    from the machine's / would show it. None where /opt cannot be written."""
    import tempfile
    try:
        root = Path(tempfile.mkdtemp(prefix="lstmlib-beside-", dir="/opt"))
    except OSError:
        return None
    os.chmod(root, 0o755)
    shutil.copytree(REPO / "solutions" / assignment, root / "course" / "solutions" / assignment)
    for path in root.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return root / "course"


def _printed(course, assignment, student, graded_only=False):
    """What the cells (or only the graded test cells) of a student's
    autograded notebooks printed."""
    out = []
    for path in (course / "grading" / "autograded" / student / assignment).glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if graded_only and not cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                continue
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream":
                    text = o.get("text", "")
                    out.append("".join(text) if isinstance(text, list) else text)
    return "".join(out)


def _failures(course, assignment, student):
    """The error messages of the graded cells of a student's autograded notebooks."""
    out = []
    for path in (course / "grading" / "autograded" / student / assignment).glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                out += [o.get("evalue", "") for o in cell.get("outputs", [])
                        if o.get("output_type") == "error"]
    return out


@pytest.mark.slow
def test_two_gradings_draw_fresh_cases(tmp_path):
    assignment = "01_rnn_forward"
    course, notebooks = _course_with(tmp_path, assignment)
    solution = {n: json.loads((course / "solutions" / assignment / f"{n}.ipynb").read_text())
                for n in notebooks}
    _submit(course, assignment, "ada", solution)
    runs = []
    for options in ([], ["--regrade"]):        # the default: on Dask, all cores
        proc = cli(course, "autograde", assignment, *UNSAFE, *options)
        assert "1 graded, 0 ungradable" in proc.stdout, proc.stdout
        r = report(course, assignment)["ada"]
        assert r["status"] == "graded" and r["score"] == r["max_score"] == 6.0
        runs.append(r["inputs"])
        if not options:                        # unchanged: not graded again
            proc = cli(course, "autograde", assignment, *UNSAFE)
            assert "0 graded" in proc.stdout and "1 already graded" in proc.stdout, proc.stdout
            assert report(course, assignment)["ada"]["inputs"] == runs[0]
    first, second = (run["rnn_forward"] for run in runs)
    assert set(first) == set(second) == {
        "test_rnn_step_forward_visible", "test_rnn_step_forward_hidden",
        "test_rnn_forward_visible", "test_rnn_forward_hidden"}
    assert all(first[k] != second[k] for k in first), (first, second)


def _gradebook_scores(course, assignment):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course}/grading/gradebook.db") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(assignment)}


def _plain_course(tmp_path, assignment, attacks):
    """A course with the full solution, the blank notebook and ``attacks``
    submitted; the expected scores."""
    course, _ = _course_with(tmp_path, assignment, SCORES_CONFIG)
    manifest = hostile_real.assignment(assignment)
    name = manifest.notebook
    solution = json.loads((course / "solutions" / assignment / f"{name}.ipynb").read_text())
    blank = json.loads((course / "exercises" / assignment / f"{name}.ipynb").read_text())
    expected = {"full": manifest.points, "blank": 0.0}
    _submit(course, assignment, "full", {name: solution})
    _submit(course, assignment, "blank", {name: blank})
    for attack in attacks:
        nb, score, _ = hostile_real.ATTACKS[attack](manifest, blank, solution)
        _submit(course, assignment, f"x-{attack}", {name: nb})
        expected[f"x-{attack}"] = score
    return course, expected


def _nbgrader_env():
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "LSTMLIB_UNSANDBOXED_AUTOGRADE"}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOX_OK, reason=f"the sandbox cannot run here: {SANDBOX_WHY}")
@pytest.mark.parametrize("assignment", _assignments())
def test_plain_nbgrader_autograde(assignment, tmp_path):
    """Plain ``nbgrader autograde`` grades in the sandbox, through the same
    trusted checks: full marks, zero for the blank notebook and for the
    harness answered by the reference (the kernel holds none)."""
    course, expected = _plain_course(tmp_path, assignment, ["harness"])
    proc = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde",
                           assignment, "--create", "--force"], cwd=course, env=_nbgrader_env(),
                          capture_output=True, text=True, timeout=1200)
    log = proc.stdout + proc.stderr
    assert "sandbox: bubblewrap works" in log, log[-3000:]
    assert "WITHOUT the sandbox" not in log
    got = _gradebook_scores(course, assignment)
    wrong = {s: (got.get(s), e) for s, e in expected.items() if got.get(s) != e}
    assert not wrong, log[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOX_OK, reason=f"the sandbox cannot run here: {SANDBOX_WHY}")
def test_nbgrader_api_autograde_is_the_sandboxed_path(tmp_path):
    """The formgrader's Autograde button calls ``NbGraderAPI.autograde`` in
    the server's own process: it grades in the sandbox with the trusted
    checks (a perfect submission full marks, a blank one and two attacks
    zero), and the instructor's explicit opt-out grades without it."""
    assignment = "05_lstm_sequence"
    course, expected = _plain_course(tmp_path, assignment, ["harness", "reference_copy"])
    script = (
        "import json, sys\n"
        "from traitlets.config.loader import PyFileConfigLoader\n"
        "from nbgrader.apps.api import NbGraderAPI\n"
        "from nbgrader.auth import Authenticator\n"
        "from nbgrader.coursedir import CourseDirectory\n"
        "cfg = PyFileConfigLoader('nbgrader_config.py', path='.').load_config()\n"
        "coursedir = CourseDirectory(config=cfg, root='.')\n"
        "api = NbGraderAPI(coursedir, Authenticator(config=cfg), config=cfg)\n"
        "out = {s: api.autograde(sys.argv[1], s) for s in sys.argv[2:]}\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script, assignment, *expected], cwd=course,
                          env=_nbgrader_env(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    replies = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(r["success"] for r in replies.values()), {s: r.get("error") for s, r in
                                                          replies.items()}
    for student, reply in replies.items():
        assert "sandbox: bubblewrap works" in reply["log"], reply["log"][-2000:]
    got = _gradebook_scores(course, assignment)
    wrong = {s: (got.get(s), e) for s, e in expected.items() if got.get(s) != e}
    assert not wrong, proc.stdout[-3000:]
    env = dict(_nbgrader_env(), LSTMLIB_UNSANDBOXED_AUTOGRADE="1")
    proc = subprocess.run([sys.executable, "-c", script, assignment, "full"], cwd=course,
                          env=env, capture_output=True, text=True, timeout=600)
    reply = json.loads(proc.stdout.strip().splitlines()[-1])["full"]
    assert "WITHOUT the sandbox" in reply["log"] and "bubblewrap works" not in reply["log"]
    assert _gradebook_scores(course, assignment)["full"] == expected["full"]
