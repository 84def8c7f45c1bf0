"""Writing a graded submission into the course: only the driver does.

:func:`merge_result` sets (never adds) one :class:`~lstmlib.grading.job.Result`'s
scores and comments in the real gradebook and swaps its graded notebooks
into ``autograded/``; an ungradable one removes the submission's scores and
keeps nbgrader's log in ``reports/logs/``. :func:`merge` does it once per
job of the ledger (:mod:`lstmlib.grading.ledger`): a result delivered
twice (a lost worker's task run again) or one for a submission older than
the one already merged changes nothing.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from . import ledger as _ledger
from ._child import cache_alembic_head
from .course import check_assignment_name, check_student_name
from .scratch import mkdirs


def merge(course, ledger, job: dict, result, gradebook=None) -> str:
    """Merge one delivered result, idempotently. Returns what happened:
    ``merged``, ``duplicate`` (its job is already done: dropped) or
    ``superseded`` (a newer submission of the student is already merged, in
    the ledger or the gradebook: dropped). ``gradebook``: an open nbgrader
    Gradebook of the course to merge through (else one is opened)."""
    key = job["job_key"]
    row = ledger.get(key)
    if row is None:
        raise KeyError(f"job {key[:12]}... is not in the ledger")
    if row["state"] == "done":
        return "duplicate"
    if row["state"] == "superseded":
        return "superseded"
    mine = job.get("submitted_at")
    newer = ledger.newest_done(result.assignment, result.student, other_than=key)
    if mine and newer and newer > mine:
        ledger.superseded(key, newer)
        return "superseded"
    in_book = _gradebook_timestamp(course, result.assignment, result.student, gradebook)
    if mine and in_book and in_book > mine:
        ledger.superseded(key, in_book)
        return "superseded"
    merge_result(course, result, gradebook)
    ledger.done(key, result)
    return "merged"


def _gradebook_timestamp(course, assignment, student, gradebook=None) -> str | None:
    from nbgrader.api import Gradebook, MissingEntry
    with contextlib.nullcontext(gradebook) if gradebook is not None else \
            Gradebook(course.config.db_url) as gb:
        try:
            stamp = gb.find_submission(assignment, student).timestamp
        except MissingEntry:
            return None
    return _ledger.utc_iso(stamp) if stamp else None


def merge_result(course, result, gradebook=None):
    """Set (never add) one result's scores in the gradebook and put its graded
    notebooks in autograded/ (replacing the previous ones). Running it twice
    with the same result leaves the same gradebook and files."""
    from nbgrader.api import Gradebook, MissingEntry
    cache_alembic_head()
    student, assignment = result.student, result.assignment
    check_assignment_name(assignment)
    check_student_name(student)
    dest = course.config.autograded / student / assignment
    files = result.payload.get("files", {}) if result.status == "graded" else {}
    if result.status == "graded":   # new files first, then swap them in
        staging = Path(tempfile.mkdtemp(prefix=f".{student}-", dir=mkdirs(dest.parent)))
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
            keep_log(course, result, result.payload.get("log", "").encode())
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


def keep_log(course, result, log: bytes, keep=65536):
    """An ungradable submission's nbgrader log (its tail) kept in
    reports/logs/<assignment>/<student>.log, named in the result's notes."""
    if not log:
        return
    path = mkdirs(course.config.reports / "logs" / result.assignment) / f"{result.student}.log"
    path.write_bytes(log[-keep:])
    root = course.config.root
    note = f"nbgrader's log: {path.relative_to(root) if path.is_relative_to(root) else path}"
    if note not in result.notes:
        result.notes.append(note)
