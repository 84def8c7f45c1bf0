"""The instructor's grading pipeline around the real nbgrader commands.

Steps (each is a method of :class:`Course` and a command of
``python -m lstmlib.grading``): add students from a CSV file, generate the
student versions, release them to the exchange, collect submissions,
autograde (sandboxed), generate feedback without hidden tests, export
grades.

Autograding never runs a student's code in the course folder. For every
submission it builds a scratch course in a private temporary folder (a
copy of the submission, of the gradebook, and of the assignment's data
files), runs ``nbgrader autograde`` there in its own process with a
wall-clock limit, its kernel boxed by :mod:`lstmlib.grading.sandbox`, and
then, from this (trusted) process, copies the scores into the real
gradebook and the executed notebook into ``autograded/``. nbgrader
restores the test cells (hidden tests included) from the gradebook copy in
the scratch course; the graded test cells of the manifest are then decided
in that nbgrader process, not in the kernel (:mod:`lstmlib.grading.trusted`):
the kernel only calls the student's functions on inputs drawn afresh for
the grading and sends back what they return. Submissions
that cannot be graded are reported by name with the reason; the rest of
the class is graded. The gradebook is backed up before each run, the
submissions are only ever read, and a rerun gives the same gradebook.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from . import sandbox
from . import _child
from ._child import cache_alembic_head

CONFIG_NAME = "nbgrader_config.py"

#: Review flags: a pattern in the lines a student wrote (lines of the released
#: notebook, such as its install cell's subprocess call, never raise one).
SUSPICIOUS = {
    "get_ipython": r"\bget_ipython\b",
    "IPython internals": r"\bIPython\b|showtraceback|input_transformers|run_cell",
    "excepthook": r"excepthook",
    "tracing hooks": r"\bsettrace\b|\bsetprofile\b",
    "ctypes": r"\bctypes\b",
    "builtins": r"\b__builtins__\b|\bbuiltins\b",
    "patching numpy checks": r"\bnp\.(allclose|isclose|array_equal|testing)\s*=|numpy\.(allclose|isclose|testing)\s*=",
    "__eq__ override": r"def\s+__eq__",
    "ndarray subclass": r"class\s+\w+\s*\(\s*(np|numpy)\.ndarray",
    "process control": r"\bos\.(_exit|kill|fork|system|exec\w*)\b|\bsubprocess\b|\bsys\.exit\b",
    "network": r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b",
    "sys.modules": r"\bsys\.modules\b",
    "frame inspection": r"\binspect\b|\bsys\._getframe\b|\bgc\.get_referrers\b",
    "file access": r"\bopen\s*\(|\bos\.(remove|unlink|rename|replace|chmod)\b|\bshutil\b|\bsqlite3\b",
    "self-check harness": r"\b_harness\b|\b_codec\b|selfcheck\.\w+\.\w+\s*=",
    "numba internals": r"\bnumba\.core\b|\bCPUDispatcher\b|\bnumba\.\w+\s*=",
    "code objects": r"__code__|\bFunctionType\b|\bCodeType\b|__globals__|__closure__",
    "dynamic import": r"\bimportlib\b|\b__import__\b",
}


def _now_tag() -> str:
    return _dt.datetime.now().strftime("%Y%m%dT%H%M%S.%f")


def _regular_files(root: Path):
    """Regular files under root, never following symlinks."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames
                       if stat.S_ISDIR(os.lstat(os.path.join(dirpath, d)).st_mode)]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                yield Path(path)


def _copy_regular(src: Path, dst: Path, *, exclude=lambda rel: False, max_bytes=None):
    """Copy the regular files of src into dst; return skipped relative paths."""
    skipped = []
    src = Path(src)
    if os.path.isdir(src):
        for path in _regular_files(src):
            rel = path.relative_to(src)
            if exclude(rel):
                continue
            if max_bytes is not None and os.lstat(path).st_size > max_bytes:
                skipped.append(str(rel))
                continue
            target = Path(dst) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target, follow_symlinks=False)
    return skipped


@dataclasses.dataclass
class CourseConfig:
    root: Path
    config_file: Path
    course_id: str
    source: Path
    release: Path
    submitted: Path
    autograded: Path
    feedback: Path
    db_path: Path
    exchange: Path
    cell_timeout: int
    wall_seconds: int
    limits: sandbox.Limits
    max_cell_output_bytes: int
    max_notebook_output_bytes: int
    max_submission_file_bytes: int
    workers: int
    gradebook_url: str = ""     # a PostgreSQL db_url (else the sqlite db_path)
    call_seconds: int = 60

    @property
    def db_url(self) -> str:
        return self.gradebook_url or f"sqlite:///{self.db_path}"

    @property
    def grading_dir(self) -> Path:
        return self.db_path.parent

    @property
    def reports(self) -> Path:
        return self.grading_dir / "reports"

    @property
    def backups(self) -> Path:
        return self.grading_dir / "backups"


def load_config(root) -> CourseConfig:
    """Read nbgrader_config.py (and its GradingSandbox section) from root."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root).resolve()
    config_file = root / CONFIG_NAME
    if not config_file.is_file():
        raise ValueError(f"root: expected a course folder containing {CONFIG_NAME}, "
                         f"received {root}")
    cfg = PyFileConfigLoader(CONFIG_NAME, path=str(root)).load_config()
    cd = cfg.get("CourseDirectory", {})
    sb = cfg.get("GradingSandbox", {})

    def path(value, default):
        value = value if isinstance(value, str) and value else default
        return (root / value).resolve() if not os.path.isabs(value) else Path(value).resolve()

    db_url = cd.get("db_url", "sqlite:///gradebook.db")
    if not isinstance(db_url, str) or not db_url.startswith(("sqlite:///", "postgresql")):
        raise ValueError(f"CourseDirectory.db_url: expected a sqlite:/// or postgresql:// URL, "
                         f"received {db_url!r}")
    gradebook_url = "" if db_url.startswith("sqlite:///") else db_url
    if gradebook_url:   # reports and backups go next to the submissions
        db_url = "sqlite:///" + os.path.join(
            os.path.dirname(cd.get("submitted_directory") or "submitted") or ".", "gradebook.db")
    limits = sandbox.Limits(**{f.name: int(sb[f.name]) for f in dataclasses.fields(sandbox.Limits)
                               if f.name in sb})
    execute = cfg.get("Execute", {})
    exchange = cfg.get("Exchange", {}).get("root", "/srv/nbgrader/exchange")
    return CourseConfig(
        root=root, config_file=config_file,
        course_id=str(cd.get("course_id", "course")),
        source=path(cd.get("source_directory"), "source"),
        release=path(cd.get("release_directory"), "release"),
        submitted=path(cd.get("submitted_directory"), "submitted"),
        autograded=path(cd.get("autograded_directory"), "autograded"),
        feedback=path(cd.get("feedback_directory"), "feedback"),
        db_path=path(db_url[len("sqlite:///"):], "gradebook.db"),
        exchange=path(exchange if isinstance(exchange, str) else None, "/srv/nbgrader/exchange"),
        cell_timeout=int(execute.get("timeout", 30) or 30),
        wall_seconds=int(sb.get("wall_seconds", 600)),
        limits=limits,
        max_cell_output_bytes=int(sb.get("max_cell_output_bytes", 1 << 20)),
        max_notebook_output_bytes=int(sb.get("max_notebook_output_bytes", 8 << 20)),
        max_submission_file_bytes=int(sb.get("max_submission_file_bytes", 50 << 20)),
        workers=int(sb.get("workers", max(1, min(4, os.cpu_count() or 1)))),
        gradebook_url=gradebook_url,
        call_seconds=int(sb.get("call_seconds", 60)),
    )


@dataclasses.dataclass
class Result:
    """One submission's outcome, as shown in the instructor's report."""

    student: str
    assignment: str
    status: str                 # "graded" | "ungradable"
    score: float = 0.0
    max_score: float = 0.0
    reason: str = ""
    notes: list = dataclasses.field(default_factory=list)
    flags: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    scratch: str = ""
    payload: dict = dataclasses.field(default_factory=dict)   # see grade_submission
    #: {notebook: {grade_id: digest of the inputs the grader sent}}: the
    #: cases are drawn afresh at each grading, so two gradings differ here
    inputs: dict = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        head = f"{self.student:<20} {self.status:<11} {self.score:6.2f}/{self.max_score:<6.2f}"
        tail = [self.reason] if self.reason else []
        tail += self.notes
        if self.flags:
            tail.append("review: " + ", ".join(self.flags))
        return head + (" " + "; ".join(tail) if tail else "")


class GradingError(RuntimeError):
    pass


class Course:
    """An nbgrader course folder (the repository, or a copy of it)."""

    def __init__(self, root=".", *, log=None):
        self.config = load_config(root)
        self.root = self.config.root
        self.log = log or (lambda msg: print(msg, file=sys.stderr))

    # ------------------------------------------------------------------ nbgrader
    def nbgrader(self, *args, cwd=None, check=True, timeout=None, extra_env=None):
        env = _env_with_venv_path(os.environ)
        cmd = [sys.executable, "-m", "lstmlib.grading._child", *map(str, args)]
        if extra_env:
            env.update(extra_env)
        proc = subprocess.run(cmd, cwd=str(cwd or self.root), env=env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise GradingError(f"{' '.join(cmd[2:])} failed (exit {proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return proc

    def _exchange_args(self, exchange=None):
        root = Path(exchange).resolve() if exchange else self.config.exchange
        return [f"--Exchange.root={root}", f"--CourseDirectory.course_id={self.config.course_id}"]

    # ------------------------------------------------------------------ students
    def add_students(self, csv_path) -> int:
        """Import students from a CSV with columns id[,first_name,last_name,email]."""
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise ValueError(f"csv_path: expected an existing CSV file, received {csv_path}")
        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
        if "id" not in header:
            raise ValueError(f"csv_path: expected a header with an 'id' column "
                             f"(id,first_name,last_name,email), received {header}")
        for n, row in enumerate(rows, start=2):
            if not re.fullmatch(r"[A-Za-z0-9_.@-]+", row.get("id") or ""):
                raise ValueError(f"csv_path: line {n}: expected a student id of letters, "
                                 f"digits, '_', '.', '@' or '-', received {row.get('id')!r}")
        self.nbgrader("db", "student", "import", csv_path.resolve())
        return len(rows)

    def students(self) -> list:
        from nbgrader.api import Gradebook
        with Gradebook(self.config.db_url) as gb:
            return sorted(s.id for s in gb.students)

    # ------------------------------------------------------------------ release
    def generate(self, assignment):
        """Source notebooks -> student versions (release folder) + gradebook."""
        self._check_assignment_name(assignment)
        if not (self.config.source / assignment).is_dir():
            raise ValueError(f"assignment: expected a folder {self.config.source / assignment}, "
                             f"received {assignment!r}")
        self.config.grading_dir.mkdir(parents=True, exist_ok=True)
        self.nbgrader("generate_assignment", assignment, "--force")

    def release(self, assignment, exchange=None):
        """Copy the student version into the exchange (nbgrader release_assignment)."""
        self._check_assignment_name(assignment)
        root = Path(exchange).resolve() if exchange else self.config.exchange
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o777)
        self.nbgrader("release_assignment", assignment, "--force", *self._exchange_args(root))

    def fetch(self, assignment, student_dir, exchange=None):
        """Student side: fetch a released assignment into student_dir."""
        Path(student_dir).mkdir(parents=True, exist_ok=True)
        self.nbgrader("fetch_assignment", assignment, *self._exchange_args(exchange),
                      cwd=student_dir)
        return Path(student_dir) / assignment

    def submit(self, assignment, student, student_dir, exchange=None):
        """Student side: submit student_dir/<assignment> as `student`."""
        self._check_student_name(student)
        self.nbgrader("submit", assignment, f"--student={student}",
                      *self._exchange_args(exchange), cwd=student_dir)

    def collect(self, assignment, exchange=None):
        """Collect the latest submissions from the exchange into submitted/."""
        self._check_assignment_name(assignment)
        self.nbgrader("collect", assignment, "--update", *self._exchange_args(exchange))

    @staticmethod
    def _check_assignment_name(assignment):
        if not isinstance(assignment, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", assignment) \
                or assignment.startswith("."):
            raise ValueError(f"assignment: expected a folder name, received {assignment!r}")

    @staticmethod
    def _check_student_name(student):
        if not isinstance(student, str) or not re.fullmatch(r"[A-Za-z0-9_.@-]+", student) \
                or student.startswith("."):
            raise ValueError(f"student: expected an id of letters, digits, '_', '.', '@', '-', "
                             f"received {student!r}")

    # ------------------------------------------------------------------ gradebook
    def backup_gradebook(self) -> Path:
        """Copy the gradebook (sqlite online backup) to grading/backups/."""
        if not self.config.db_path.is_file():
            raise GradingError(f"no gradebook at {self.config.db_path}: run "
                               "`python -m lstmlib.grading generate <assignment>` first")
        self.config.backups.mkdir(parents=True, exist_ok=True)
        dest = self.config.backups / f"gradebook-{_now_tag()}.db"
        _sqlite_copy(self.config.db_path, dest)
        return dest

    def notebooks_of(self, assignment) -> list:
        cache_alembic_head()
        from nbgrader.api import Gradebook, MissingEntry
        if not self.config.db_path.is_file():
            raise GradingError(f"no gradebook at {self.config.db_path}")
        with Gradebook(self.config.db_url) as gb:
            try:
                return sorted(nb.name for nb in gb.find_assignment(assignment).notebooks)
            except MissingEntry:
                raise ValueError(f"assignment: expected one in the gradebook (run generate "
                                 f"first), received {assignment!r}") from None

    # ------------------------------------------------------------------ autograde
    def autograde(self, assignment, students=None, *, workers=None,
                  unsafe_no_sandbox=False, keep_scratch=False) -> list:
        """Grade every collected submission of `assignment` (or `students`)."""
        self._check_assignment_name(assignment)
        mode = sandbox.require(unsafe_no_sandbox)
        sandboxed = not mode.startswith("UNSANDBOXED")
        self.log(f"sandbox: {mode}")
        notebooks = self.notebooks_of(assignment)
        folder = self.config.submitted
        found = sorted(p.name for p in folder.iterdir()
                       if (p / assignment).is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []
        if students:
            for s in students:
                self._check_student_name(s)
            missing = [s for s in students if s not in found]
            if missing:
                raise ValueError(f"students: expected students with a collected submission of "
                                 f"{assignment}, received {missing}")
            found = [s for s in found if s in students]
        backup = self.backup_gradebook()
        self.log(f"gradebook backed up to {backup}")
        results = []
        work_root = _scratch_root()
        os.chmod(work_root, 0o711)
        try:
            jobs = {}
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=max(1, workers or self.config.workers)) as pool:
                for n, student in enumerate(found):
                    job = _Job(self, assignment, student, notebooks, work_root / str(n),
                               uid=61000 + n % 1000, sandboxed=sandboxed)
                    jobs[pool.submit(job.run)] = job
                for future in concurrent.futures.as_completed(jobs):
                    job = jobs[future]
                    try:
                        result = future.result()
                    except Exception as exc:  # a bug or I/O error: report, keep going
                        result = Result(job.student, assignment, "ungradable",
                                        reason=f"grader error: {type(exc).__name__}: {exc}")
                    self._merge(job, result)
                    self.log(result.line())
                    results.append(result)
        finally:
            if not keep_scratch:
                shutil.rmtree(work_root, ignore_errors=True)
        results.sort(key=lambda r: r.student)
        self._write_report(assignment, results, backup, mode)
        return results

    def _merge(self, job, result):
        """Copy one scratch outcome into the real gradebook and autograded/:
        the same merge as a Dask worker's result gets (:func:`_merge_result`)."""
        result.payload = _payload(job, result)
        _merge_result(self, result)
        result.payload = {}

    def merge_result(self, result, gradebook=None) -> "Result":
        """Write one :func:`grade_submission` Result into the real gradebook
        (through ``gradebook``, an open nbgrader Gradebook of this course,
        when given: one open gradebook for many merges keeps SQLAlchemy's
        compiled statements, most of a merge's cost)."""
        return _merge_result(self, result, gradebook)

    def _write_report(self, assignment, results, backup, mode):
        self.config.reports.mkdir(parents=True, exist_ok=True)
        latest = self.config.reports / f"{assignment}.json"
        previous = json.loads(latest.read_text()) if latest.is_file() else {"results": []}
        by_student = {r["student"]: r for r in previous.get("results", [])}
        for r in results:
            entry = dataclasses.asdict(r)
            entry.pop("scratch", None)
            entry.pop("payload", None)
            by_student[r.student] = entry
        report = {"assignment": assignment, "time": _now_tag(), "sandbox": mode,
                  "backup": str(backup), "results": [by_student[k] for k in sorted(by_student)]}
        latest.write_text(json.dumps(report, indent=1))
        (self.config.reports / f"{assignment}-{_now_tag()}.json").write_text(
            json.dumps(report, indent=1))

    # ------------------------------------------------------------------ feedback
    def feedback(self, assignment, students=None) -> list:
        """nbgrader generate_feedback, then check no hidden test reached the HTML."""
        from ._nbext import secret_lines
        self._check_assignment_name(assignment)
        args = ["generate_feedback", assignment, "--force"]
        if students:
            for s in students:
                self._check_student_name(s)
            args.append("--CourseDirectory.student_id=" + (students[0] if len(students) == 1
                                                             else "+".join(students)))
        self.nbgrader(*args)
        secrets = secret_lines(hidden_test_lines(self, assignment))
        pages, leaks = [], []
        for page in sorted(self.config.feedback.glob(f"*/{assignment}/*.html")):
            if students and page.parent.parent.name not in students:
                continue
            found = leaked_lines(page.read_text(errors="replace"), secrets)
            if found:
                leaks.append((page, found))
                page.unlink()
            else:
                pages.append(page)
        if leaks:
            raise GradingError("feedback would have shown hidden tests; removed: " + "; ".join(
                f"{p} ({len(f)} lines)" for p, f in leaks))
        return pages

    def release_feedback(self, assignment, exchange=None):
        self.nbgrader("release_feedback", assignment, *self._exchange_args(exchange))

    # ------------------------------------------------------------------ export
    def export(self, csv_path) -> Path:
        """nbgrader export + a status column (graded / ungradable: reason / ...)."""
        csv_path = Path(csv_path).resolve()
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "grades.csv"
            self.nbgrader("export", f"--to={raw}")
            with open(raw, newline="") as fh:
                reader = csv.DictReader(fh)
                fields = list(reader.fieldnames or [])
                rows = list(reader)
        status = {}
        for report in self.config.reports.glob("*.json"):
            if re.search(r"-\d{8}T", report.name):
                continue
            data = json.loads(report.read_text())
            for r in data.get("results", []):
                text = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
                status[(data["assignment"], r["student"])] = text
        for row in rows:
            key = (row.get("assignment"), row.get("student_id"))
            row["status"] = status.get(key, "not submitted" if not row.get("timestamp")
                                       else "graded outside the pipeline")
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields + ["status"])
            writer.writeheader()
            writer.writerows(rows)
        return csv_path


def _env_with_venv_path(environ) -> dict:
    """The environment with this interpreter's bin/ first on PATH (nbgrader
    runs `alembic` from there)."""
    env = dict(environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    return env


def _sqlite_copy(src: Path, dest: Path):
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as source, \
            sqlite3.connect(dest) as target:
        source.backup(target)


def hidden_test_lines(course: Course, assignment) -> list:
    """Every line inside a BEGIN/END HIDDEN TESTS region of the assignment."""
    from nbgrader.api import Gradebook
    from ._nbext import hidden_regions
    lines = []
    with Gradebook(course.config.db_url) as gb:
        for nb in gb.find_assignment(assignment).notebooks:
            for cell in nb.source_cells:
                lines += hidden_regions(cell.source)[1]
    return lines


def leaked_lines(html: str, secrets) -> list:
    """The secrets (whitespace-free hidden lines) present in an HTML page's text."""
    import html as _html
    text = re.sub(r"<[^>]+>", "", html)
    text = re.sub(r"\s+", "", _html.unescape(text))
    return sorted(s for s in secrets if s in text)


# ---------------------------------------------------------------------- one job
_SCRATCH_CONFIG = '''\
# Written by lstmlib.grading for one submission's scratch course.
c = get_config()
load_subconfig({real_config!r})
c.CourseDirectory.root = {course!r}
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = {db_url!r}
c.Autograde.create_student = True
c.Autograde.autograde_preprocessors = [
    "lstmlib.grading.trusted.TrustedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata"]
c.OverwriteCells.add_missing_cells = True
c.Execute.timeout = {cell_timeout!r}
c.Execute.startup_timeout = 120
c.TrustedExecute.box_dir = {box_dir!r}
c.TrustedExecute.box_uid = {box_uid!r}
c.TrustedExecute.unsandboxed = {unsandboxed!r}
c.GuardedExecute.status_file = {status_file!r}
c.GuardedExecute.max_cell_output_bytes = {max_cell!r}
c.GuardedExecute.max_notebook_output_bytes = {max_nb!r}
c.TrustedExecute.call_timeout = {call_timeout!r}
c.TrustedExecute.exit_file = {exit_file!r}
c.TrustedExecute.inputs_file = {inputs_file!r}
'''

_LOG_NOTES = [
    (re.compile(r"Attribute '((?!checksum)\w+)' for cell (\S+) has changed"),
     lambda m: f"edited {m.group(1)} of cell {m.group(2)} (restored)"),
    (re.compile(r"Missing grade cell (\S+) encountered"),
     lambda m: f"deleted cell {m.group(1)} (restored)"),
    (re.compile(r"Cell '(\S+)' does not exist in the database"),
     lambda m: f"unknown cell id {m.group(1)} (ignored)"),
    (re.compile(r"Skipping unknown notebook: (\S+)"),
     lambda m: f"extra notebook {os.path.basename(m.group(1))} (ignored)"),
]


class _Job:
    """Grade one submission in its own scratch course."""

    def __init__(self, course: Course, assignment, student, notebooks, scratch: Path,
                 *, uid, sandboxed):
        self.owner = course
        self.cfg = course.config
        self.assignment = assignment
        self.student = student
        self.notebooks = notebooks
        self.scratch = scratch
        self.course = scratch / "course"
        self.uid = uid
        self.sandboxed = sandboxed
        self._attempts = 0
        self._retry = False

    def _clear_attempt(self):
        """Forget what the nbgrader process of a failed attempt wrote (its
        log is kept beside as autograde-<n>.log)."""
        for name in ("status.jsonl", "inputs.jsonl", "exit.json"):
            (self.scratch / name).unlink(missing_ok=True)
        log = self.scratch / "autograde.log"
        if log.is_file():
            os.replace(log, self.scratch / f"autograde-{self._attempts}.log")
        shutil.rmtree(self.course / "autograded", ignore_errors=True)

    def run(self) -> Result:
        start = time.monotonic()
        result = Result(self.student, self.assignment, "ungradable", scratch=str(self.scratch))
        try:
            problem = self._prepare(result)
            if problem:
                result.reason = problem
            else:
                notes = list(result.notes)
                self._autograde(result)
                if result.status != "graded" and self._retry:
                    # the nbgrader process itself failed (not the time limit;
                    # the kernel's failures are handled inside nbgrader): it may
                    # be the machine's fault, so one more attempt from a clean
                    # slate decides
                    first = result.reason
                    self._clear_attempt()
                    result.notes[:] = notes
                    result.reason = ""
                    self._autograde(result)
                    result.notes.append(
                        f"graded on a second attempt (the first: {first})"
                        if result.status == "graded" else
                        f"a second attempt failed too (the first: {first})")
        finally:
            result.seconds = round(time.monotonic() - start, 2)
        return result

    # -- preparation (trusted, reads the submission only) -------------------
    def _prepare(self, result) -> str:
        import nbformat
        src = self.cfg.submitted / self.student / self.assignment
        sub = self.course / "submitted" / self.student / self.assignment
        sub.mkdir(parents=True)
        skipped = _copy_regular(src, sub, max_bytes=self.cfg.max_submission_file_bytes)
        if skipped:
            result.notes.append("files over the size limit not copied: " + ", ".join(skipped))
        present = sorted(p.stem for p in sub.glob("*.ipynb"))
        missing = [nb for nb in self.notebooks if nb not in present]
        unknown = [nb for nb in present if nb not in self.notebooks]
        if len(missing) == 1 and len(unknown) == 1:
            os.replace(sub / f"{unknown[0]}.ipynb", sub / f"{missing[0]}.ipynb")
            result.notes.append(f"notebook renamed to {unknown[0]}.ipynb: graded as "
                                f"{missing[0]}.ipynb")
            missing, unknown = [], []
        if len(missing) == len(self.notebooks):
            return ("no notebook to grade: expected " +
                    ", ".join(f"{m}.ipynb" for m in missing) +
                    (f", found {', '.join(u + '.ipynb' for u in unknown)}" if unknown else ""))
        for m in missing:
            result.notes.append(f"notebook {m}.ipynb missing (scored 0)")
        for name in self.notebooks:
            path = sub / f"{name}.ipynb"
            if not path.exists():
                continue
            try:
                nb = nbformat.read(str(path), as_version=4)
                nbformat.validate(nb)
            except Exception as exc:  # JSON or schema errors
                msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                return f"corrupt notebook {name}.ipynb: {type(exc).__name__}: {msg}"
            self._review(nb, name, result)
            if self._restore_metadata(nb, name, result):
                nbformat.write(nb, str(path))
        # the gradebook copy, the assignment's data files, the config
        _sqlite_copy(self.cfg.db_path, self.course / "gradebook.db")
        _copy_regular(self.cfg.source / self.assignment, self.course / "source" / self.assignment,
                      exclude=lambda rel: rel.suffix == ".ipynb")
        for sub_dir in ("rt", "kernel", "share", "cfg", "data"):
            (self.scratch / sub_dir).mkdir(parents=True, exist_ok=True)
        (self.course / "nbgrader_config.py").write_text(_SCRATCH_CONFIG.format(
            real_config=str(self.cfg.config_file), course=str(self.course),
            course_id=self.cfg.course_id, db_url=f"sqlite:///{self.course / 'gradebook.db'}",
            cell_timeout=self.cfg.cell_timeout, box_dir=str(self.scratch),
            box_uid=self.uid, unsandboxed=not self.sandboxed,
            status_file=str(self.scratch / "status.jsonl"),
            max_cell=self.cfg.max_cell_output_bytes, max_nb=self.cfg.max_notebook_output_bytes,
            call_timeout=self.cfg.call_seconds, exit_file=str(self.scratch / "exit.json"),
            inputs_file=str(self.scratch / "inputs.jsonl")))
        return ""

    def _restore_metadata(self, nb, name, result) -> bool:
        """Put back the nbgrader metadata of the student version (points,
        grade_id, locked...); drop it from cells with an unknown grade_id."""
        import copy
        import nbformat
        release = self.cfg.release / self.assignment / f"{name}.ipynb"
        if not release.is_file():
            return False
        ref = {}
        for c in nbformat.read(str(release), as_version=4).cells:
            meta = c.metadata.get("nbgrader")
            if meta and meta.get("grade_id"):
                ref[meta["grade_id"]] = meta
        changed = False
        for c in nb.cells:
            meta = c.metadata.get("nbgrader")
            if meta is None:
                continue
            gid = meta.get("grade_id") if isinstance(meta, dict) else None
            if gid in ref:
                if meta != ref[gid]:
                    c.metadata["nbgrader"] = copy.deepcopy(ref[gid])
                    result.notes.append(f"edited nbgrader metadata of cell {gid} (restored)")
                    changed = True
            else:
                del c.metadata["nbgrader"]
                result.notes.append(f"unknown cell id {gid} (its nbgrader metadata removed)")
                changed = True
        return changed

    def _review(self, nb, name, result):
        """Flag student-editable code that touches the grader's machinery:
        the lines the student wrote, not those the released notebook has."""
        import nbformat
        release = self.cfg.release / self.assignment / f"{name}.ipynb"
        ref = None
        if release.is_file():
            try:
                ref = nbformat.read(str(release), as_version=4)
            except Exception:
                ref = None
        released = {line.strip() for c in (ref.cells if ref else ())
                    if c.cell_type == "code" for line in c.source.splitlines()}
        text = "\n".join(line for c in nb.cells if c.cell_type == "code"
                         and not c.metadata.get("nbgrader", {}).get("locked", False)
                         for line in c.source.splitlines() if line.strip() not in released)
        for label, pattern in SUSPICIOUS.items():
            if re.search(pattern, text) and label not in result.flags:
                result.flags.append(label)
        if ref is not None:
            order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in ref.cells]
            order = [g for g in order if g]
            got = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
            got = [g for g in got if g in order]
            if got != sorted(got, key=order.index):
                result.notes.append(f"cells of {name}.ipynb reordered (graded as submitted)")

    # -- the nbgrader process (untrusted notebook, boxed kernel) --------------
    def _autograde(self, result):
        env = {k: v for k, v in _env_with_venv_path(os.environ).items()
               if not k.startswith(("JUPYTER", "JPY_"))}
        env.update(JUPYTER_PATH=str(self.scratch / "share"),
                   JUPYTER_RUNTIME_DIR=str(self.scratch / "rt"),
                   JUPYTER_CONFIG_DIR=str(self.scratch / "cfg"),
                   JUPYTER_DATA_DIR=str(self.scratch / "data"),
                   JUPYTER_PLATFORM_DIRS="1", PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "lstmlib.grading._child", "autograde", self.assignment,
               f"--student={self.student}", "--force"]
        log_path = self.scratch / "autograde.log"
        self._attempts += 1
        timed_out = False
        proc = _grader_context().Process(
            target=_child.run, args=(str(self.course), env, cmd[3:], str(log_path),
                                     {"RLIMIT_AS": 8 << 30, "RLIMIT_CORE": 0}))
        proc.start()
        proc.join(timeout=self.cfg.wall_seconds)
        if proc.is_alive():
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            proc.join()
        proc.returncode = proc.exitcode
        log_text = log_path.read_text(errors="replace")
        for pattern, describe in _LOG_NOTES:
            for m in pattern.finditer(log_text):
                note = describe(m)
                if note not in result.notes:
                    result.notes.append(note)
        statuses = []
        status_file = self.scratch / "status.jsonl"
        if status_file.is_file():
            statuses = [json.loads(line) for line in status_file.read_text().splitlines() if line]
        inputs_file = self.scratch / "inputs.jsonl"
        if inputs_file.is_file():
            for line in inputs_file.read_text().splitlines():
                if line:
                    entry = json.loads(line)
                    result.inputs[entry["notebook"]] = entry["cells"]
        for st in statuses:
            for event in st.get("events", []):
                note = f"{st['notebook']}.ipynb: {event}"
                if note not in result.notes:
                    result.notes.append(note)
            truncated = [c["grade_id"] or f"#{c['index']}" for c in st["cells"]
                         if c["output_truncated"]]
            if truncated:
                result.notes.append(f"output over the limit in {st['notebook']}: "
                                    + ", ".join(truncated))
        outputs = [self.course / "autograded" / self.student / self.assignment / f"{nb}.ipynb"
                   for nb in self.notebooks
                   if (self.course / "submitted" / self.student / self.assignment /
                       f"{nb}.ipynb").exists()]
        self._retry = False
        if timed_out:
            result.reason = (f"wall-clock limit of {self.cfg.wall_seconds} s for the "
                             "submission exceeded")
        elif proc.returncode != 0 or not all(p.is_file() for p in outputs):
            result.reason = self._failure_reason(log_text, statuses, proc.returncode)
            self._retry = self._attempts < 2
        else:
            result.status = "graded"

    def _failure_reason(self, log_text, statuses, returncode):
        died = next((st for st in statuses if st.get("died")), None)
        exit_info = {}
        if (self.scratch / "exit.json").is_file():
            try:
                exit_info = json.loads((self.scratch / "exit.json").read_text())
            except ValueError:
                pass
        parts = []
        if died:
            d = died["died"]
            where = f" in cell {d.get('grade_id') or '#' + str(d.get('cell_index'))}" \
                if d.get("cell_index") is not None else ""
            parts.append(f"{d['error']}{where} of {died['notebook']}.ipynb: "
                         f"{d.get('message', '')[:200]}")
        # the kernel's end says why only if it ended abnormally: a kernel shut
        # down cleanly (status 0) after nbgrader itself failed explains nothing
        if exit_info.get("reason") and exit_info.get("returncode", 1) != 0:
            parts.append(exit_info["reason"])
        if not died:
            # a traceback's last line; the name may be qualified, the message empty
            errors = re.findall(r"^((?:\w+\.)*\w+(?:Error|Exception|Exit))(?:: (.*))?$",
                                log_text, re.M)
            if errors:
                name, message = errors[-1]
                parts.append(f"{name.rpartition('.')[2]}: {message[:200]}" if message
                             else name.rpartition(".")[2])
            else:   # nbgrader's own words: its last ERROR line
                logged = re.findall(r"^\[\w+ \| ERROR\] (.+)$", log_text, re.M)
                if logged:
                    parts.append(f"nbgrader: {logged[-1][:200]}")
        if not parts:
            parts.append(exit_info.get("reason") or
                         f"nbgrader autograde exited with status {returncode}")
        return "; ".join(parts)


_CONTEXT = None


def _grader_context():
    """A fork server with nbgrader preloaded: each submission's grading
    process is a fresh fork of it (its own process, no import cost)."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["lstmlib.grading._child_preload"])
        _CONTEXT = ctx
    return _CONTEXT


# ---------------------------------------------------------------------- seam
# One submission graded apart from the course (grade_submission, run by a
# worker anywhere) and its result written into the gradebook by the one
# trusted driver (Course.merge_result). lstmlib.grading.cluster drives these.

def grade_submission(course_root, assignment, student, *, files=None, gradebook_template=None,
                     unsafe_no_sandbox=False, uid=61000, work_dir=None, log_bytes=65536) -> Result:
    """Grade one submission in its own scratch course and sandbox.

    Writes nothing into the course: the course folder is only read (its
    config, source data files and released notebooks). ``files`` (relative
    path -> bytes) is the submission; without it the files are read from the
    course's submitted folder. ``gradebook_template`` (bytes of a sqlite
    gradebook holding the assignment) replaces the course gradebook, so a
    worker never opens it. Returns a picklable :class:`Result` whose
    ``payload`` holds what :meth:`Course.merge_result` needs: the submission
    timestamp, per notebook the late penalty, every cell's auto score and
    comment, the graded notebook files (bytes) and the tail of nbgrader's log.
    """
    course = Course(course_root, log=lambda msg: None)
    Course._check_assignment_name(assignment)
    Course._check_student_name(student)
    mode = sandbox.require(unsafe_no_sandbox)
    work = _scratch_root(work_dir)
    os.chmod(work, 0o711)
    try:
        cfg = course.config
        changes = {}
        if files is not None:
            staging = work / "submitted"
            for rel, data in files.items():
                target = (staging / student / assignment / rel).resolve()
                if not str(target).startswith(str(staging.resolve()) + os.sep):
                    raise ValueError(f"files: expected relative paths inside the submission, "
                                     f"received {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            (staging / student / assignment).mkdir(parents=True, exist_ok=True)
            changes["submitted"] = staging
        if gradebook_template is not None:
            (work / "template").mkdir()
            (work / "template" / "gradebook.db").write_bytes(gradebook_template)
            changes.update(db_path=work / "template" / "gradebook.db", gradebook_url="")
        course.config = dataclasses.replace(cfg, **changes)
        notebooks = course.notebooks_of(assignment)
        job = _Job(course, assignment, student, notebooks, work / "job", uid=uid,
                   sandboxed=not mode.startswith("UNSANDBOXED"))
        result = job.run()
        result.payload = _payload(job, result, log_bytes)
        result.scratch = ""
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _payload(job, result, log_bytes=65536) -> dict:
    """What :func:`_merge_result` needs of a finished job's scratch course:
    the tail of nbgrader's log and, for a graded submission, its timestamp,
    per notebook the late penalty, every cell's auto score and comment, and
    the graded notebook files (bytes). Sets the result's score from the
    scratch gradebook."""
    payload = {"timestamp": None, "notebooks": [], "files": {}, "log": ""}
    log_path = job.scratch / "autograde.log"
    if log_path.is_file():
        payload["log"] = log_path.read_bytes()[-log_bytes:].decode(errors="replace")
    if result.status == "graded":
        from nbgrader.api import Gradebook
        with Gradebook(f"sqlite:///{job.course / 'gradebook.db'}") as sgb:
            ssub = sgb.find_submission(job.assignment, job.student)
            payload["timestamp"] = ssub.timestamp.isoformat() if ssub.timestamp else None
            for snb in ssub.notebooks:
                payload["notebooks"].append({
                    "name": snb.name, "late_submission_penalty": snb.late_submission_penalty,
                    "grades": [(g.name, g.auto_score) for g in snb.grades],
                    "comments": [(c.name, c.auto_comment) for c in snb.comments]})
            result.score, result.max_score = float(ssub.score), float(ssub.max_score)
        graded = job.course / "autograded" / job.student / job.assignment
        payload["files"] = {p.relative_to(graded).as_posix(): p.read_bytes()
                            for p in _regular_files(graded)} if graded.is_dir() else {}
    return payload


def _merge_result(course: Course, result: Result, gradebook=None) -> Result:
    """Set (never add) one result's scores in the gradebook and put its graded
    notebooks in autograded/ (replacing the previous ones). Running it twice
    with the same result leaves the same gradebook and files."""
    from nbgrader.api import Gradebook, MissingEntry
    cache_alembic_head()
    student, assignment = result.student, result.assignment
    Course._check_assignment_name(assignment)
    Course._check_student_name(student)
    dest = course.config.autograded / student / assignment
    files = result.payload.get("files", {}) if result.status == "graded" else {}
    if result.status == "graded":   # new files first, then swap them in
        staging = Path(tempfile.mkdtemp(prefix=f".{student}-", dir=_mkdirs(dest.parent)))
        for rel, data in files.items():
            target = (staging / rel).resolve()
            if not str(target).startswith(str(staging.resolve()) + os.sep):
                raise ValueError(f"result: graded file outside the submission: {rel!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    with contextlib.nullcontext(gradebook) if gradebook is not None else \
            Gradebook(course.config.db_url) as gb, warnings.catch_warnings():
        # nbgrader's add_submission sets back-references before adding the
        # new rows, and SQLAlchemy warns about it on the instructor's
        # terminal ("Object of type <SubmittedAssignment> not in session");
        # the rows are added and committed all the same
        warnings.filterwarnings("ignore", message=r"Object of type <Submitted",
                                module=r"nbgrader\.api")
        gb.update_or_create_student(student)
        if result.status != "graded":
            _keep_log(course, result, result.payload.get("log", "").encode())
            try:
                gb.remove_submission(assignment, student)
            except MissingEntry:
                pass
            if dest.exists():
                shutil.rmtree(dest)
            result.score = 0.0
            result.max_score = float(gb.find_assignment(assignment).max_score)
            return result
        stamp = result.payload.get("timestamp")
        gb.update_or_create_submission(
            assignment, student,
            timestamp=_dt.datetime.fromisoformat(stamp) if stamp else None)
        for snb in result.payload["notebooks"]:
            rnb = gb.find_submission_notebook(snb["name"], assignment, student)
            rnb.late_submission_penalty = snb["late_submission_penalty"]
            for name, auto_score in snb["grades"]:
                grade = gb.find_grade(name, snb["name"], assignment, student)
                grade.auto_score = auto_score
                grade.needs_manual_grade = (grade.manual_score is not None
                                            or auto_score is None)
            for name, auto_comment in snb["comments"]:
                gb.find_comment(name, snb["name"], assignment, student).auto_comment = \
                    auto_comment
        gb.db.commit()
        sub = gb.find_submission(assignment, student)
        result.score, result.max_score = float(sub.score), float(sub.max_score)
    old = dest.with_name(f".{student}-old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(staging, dest)
    shutil.rmtree(old, ignore_errors=True)
    return result


#: A Unix socket's path holds at most 107 bytes; each kernel's sockets are
#: <scratch root>/<n>/rt/k-<port>, up to 20 bytes below the root.
_SOCKET_PATH_MAX, _BELOW_ROOT = 107, 20


def _scratch_root(parent=None) -> Path:
    """A new private folder for the scratch courses, in ``parent`` or the
    temporary folder; refused, before any grading, where its path leaves
    no room for the kernels' sockets."""
    root = Path(tempfile.mkdtemp(prefix="lsg-", dir=parent))
    if len(os.fsencode(root)) + _BELOW_ROOT > _SOCKET_PATH_MAX:
        shutil.rmtree(root, ignore_errors=True)
        raise GradingError(
            f"temporary folder: expected a path of at most "
            f"{_SOCKET_PATH_MAX - _BELOW_ROOT - len('/lsg-xxxxxxxx')} bytes (the kernels' "
            f"sockets live below it), received {root.parent} "
            f"({len(os.fsencode(root.parent))} bytes); set TMPDIR to a shorter folder")
    return root


def _keep_log(course: Course, result: Result, log: bytes, keep=65536):
    """An ungradable submission's nbgrader log (its tail) kept in
    reports/logs/<assignment>/<student>.log, named in the result's notes."""
    if not log:
        return
    path = _mkdirs(course.config.reports / "logs" / result.assignment) / f"{result.student}.log"
    path.write_bytes(log[-keep:])
    root = course.config.root
    note = f"nbgrader's log: {path.relative_to(root) if path.is_relative_to(root) else path}"
    if note not in result.notes:
        result.notes.append(note)


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
