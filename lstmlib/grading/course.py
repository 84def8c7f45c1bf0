"""An nbgrader course folder and the instructor's steps on it.

:class:`Course` drives the real nbgrader commands, each in its own process
(:mod:`lstmlib.grading._child`): add students from a CSV file, generate the
student versions, release them to the exchange, collect submissions,
generate feedback without hidden tests (checked), export grades with a
status column. It backs up the gradebook and writes the grading report.

Autograding is not here: :mod:`lstmlib.grading.driver` grades a class on an
executor (:meth:`Course.autograde` is its in-process form), one submission
at a time per worker (:mod:`lstmlib.grading.job`), and merges each result
into the gradebook (:mod:`lstmlib.grading.merge`).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ._child import cache_alembic_head
from .config import PipelineError, load_config
from .scratch import now_tag, sqlite_copy


def check_assignment_name(assignment):
    if not isinstance(assignment, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", assignment) \
            or assignment.startswith("."):
        raise ValueError(f"assignment: expected a folder name, received {assignment!r}")


def check_student_name(student):
    if not isinstance(student, str) or not re.fullmatch(r"[A-Za-z0-9_.@-]+", student) \
            or student.startswith("."):
        raise ValueError(f"student: expected an id of letters, digits, '_', '.', '@', '-', "
                         f"received {student!r}")


class Course:
    """An nbgrader course folder (the repository, or a copy of it)."""

    def __init__(self, root=".", *, log=None):
        self.config = load_config(root)
        self.root = self.config.root
        self.log = log or (lambda msg: print(msg, file=sys.stderr))

    # ------------------------------------------------------------------ nbgrader
    def nbgrader(self, *args, cwd=None, check=True, timeout=None, extra_env=None):
        env = env_with_venv_path(os.environ)
        cmd = [sys.executable, "-m", "lstmlib.grading._child", *map(str, args)]
        if extra_env:
            env.update(extra_env)
        proc = subprocess.run(cmd, cwd=str(cwd or self.root), env=env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise PipelineError(f"{' '.join(cmd[2:])} failed (exit {proc.returncode}):\n"
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
        check_assignment_name(assignment)
        if not (self.config.source / assignment).is_dir():
            raise ValueError(f"assignment: expected a folder {self.config.source / assignment}, "
                             f"received {assignment!r}")
        self.config.grading_dir.mkdir(parents=True, exist_ok=True)
        self.nbgrader("generate_assignment", assignment, "--force")

    def release(self, assignment, exchange=None):
        """Copy the student version into the exchange (nbgrader release_assignment)."""
        check_assignment_name(assignment)
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
        check_student_name(student)
        self.nbgrader("submit", assignment, f"--student={student}",
                      *self._exchange_args(exchange), cwd=student_dir)

    def collect(self, assignment, exchange=None):
        """Collect the latest submissions from the exchange into submitted/."""
        check_assignment_name(assignment)
        self.nbgrader("collect", assignment, "--update", *self._exchange_args(exchange))

    # ------------------------------------------------------------------ gradebook
    def backup_gradebook(self) -> Path:
        """Copy the gradebook (sqlite online backup) to grading/backups/."""
        if not self.config.db_path.is_file():
            raise PipelineError(f"no gradebook at {self.config.db_path}: run "
                               "`python -m lstmlib.grading generate <assignment>` first")
        self.config.backups.mkdir(parents=True, exist_ok=True)
        dest = self.config.backups / f"gradebook-{now_tag()}.db"
        sqlite_copy(self.config.db_path, dest)
        return dest

    def notebooks_of(self, assignment) -> list:
        cache_alembic_head()
        from nbgrader.api import Gradebook, MissingEntry
        if not self.config.db_path.is_file():
            raise PipelineError(f"no gradebook at {self.config.db_path}")
        with Gradebook(self.config.db_url) as gb:
            try:
                return sorted(nb.name for nb in gb.find_assignment(assignment).notebooks)
            except MissingEntry:
                raise ValueError(f"assignment: expected one in the gradebook (run generate "
                                 f"first), received {assignment!r}") from None

    # ------------------------------------------------------------------ autograde
    def autograde(self, assignment, students=None, *, workers=None,
                  unsafe_no_sandbox=False, keep_scratch=False) -> list:
        """Grade every collected submission of `assignment` (or `students`)
        in this process, ``workers`` at a time (a thread pool), every one
        graded again: :class:`lstmlib.grading.driver.Driver` on a
        :class:`~lstmlib.grading.driver.Pool`. Returns the merged results."""
        from .driver import Driver, Pool
        pool = Pool(max(1, workers or self.config.workers))
        summary = Driver(self, executor=pool, regrade=True, progress=False,
                         unsafe_no_sandbox=unsafe_no_sandbox, keep_scratch=keep_scratch,
                         log=self.log).autograde(assignment, students)
        for student, reason in summary.failed:
            self.log(f"FAILED {student}: {reason} (graded again by the next run)")
        return summary.results

    def write_report(self, assignment, results, backup, mode):
        """grading/reports/<assignment>.json (the latest result of each
        student, merged with the previous report) and a time-stamped copy."""
        self.config.reports.mkdir(parents=True, exist_ok=True)
        latest = self.config.reports / f"{assignment}.json"
        previous = json.loads(latest.read_text()) if latest.is_file() else {"results": []}
        by_student = {r["student"]: r for r in previous.get("results", [])}
        for r in results:
            entry = dataclasses.asdict(r)
            entry.pop("scratch", None)
            entry.pop("payload", None)
            by_student[r.student] = entry
        report = {"assignment": assignment, "time": now_tag(), "sandbox": mode,
                  "backup": str(backup), "results": [by_student[k] for k in sorted(by_student)]}
        latest.write_text(json.dumps(report, indent=1))
        (self.config.reports / f"{assignment}-{now_tag()}.json").write_text(
            json.dumps(report, indent=1))

    # ------------------------------------------------------------------ feedback
    def feedback(self, assignment, students=None) -> list:
        """nbgrader generate_feedback, then check no hidden test reached the HTML."""
        from ._nbext import secret_lines
        check_assignment_name(assignment)
        args = ["generate_feedback", assignment, "--force"]
        if students:
            for s in students:
                check_student_name(s)
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
            raise PipelineError("feedback would have shown hidden tests; removed: " + "; ".join(
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


def env_with_venv_path(environ) -> dict:
    """The environment with this interpreter's bin/ first on PATH (nbgrader
    runs `alembic` from there)."""
    env = dict(environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    return env


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
