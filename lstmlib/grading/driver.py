"""The one grading driver: a class's submissions sent to an executor.

The driver (this process, the trusted side) lists the collected
submissions, reads their files, names each job by its key
(:func:`lstmlib.grading.ledger.job_key`) and skips the jobs its ledger has
already merged (``regrade`` grades them again). Each remaining submission is
one task, submitted to an *executor*: a worker runs
:func:`lstmlib.grading.job.grade_task` (its own scratch course and sandbox,
one submission at a time per worker) on the files and a template gradebook
sent with the task, and returns the result as plain data. Only the driver
writes the gradebook, through :func:`lstmlib.grading.merge.merge`, then the
report.

Executors, all with the same interface (``submit`` returns a future):

- :class:`Pool`: a ``concurrent.futures`` pool of threads (the default: in
  this process, ``python -m lstmlib.grading autograde --workers N``) or of
  processes, on this machine, for a small class;
- :class:`lstmlib.grading.cluster.Dask`: a Dask client, on a LocalCluster of
  this machine's cores (the command's default) or an existing cluster of
  many machines.

Faults of the infrastructure (a worker killed, a node gone, a lost
connection: the executor's ``infrastructure_errors``) are retried, at most
``retries`` times (2 by default), then listed as failed with the reason;
the next run grades them again. Faults of the submission (a timeout,
memory, a crashed kernel, wrong answers) are grades: the task returns them
as an ``ungradable`` or low-scoring result, and they are never retried.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import ledger as _ledger
from . import sandbox
from .course import Course, check_assignment_name, check_student_name
from .job import grade_task
from .merge import merge
from .scratch import regular_files, scratch_root


# ---------------------------------------------------------------- executors
class _Completed:
    """Futures of ``concurrent.futures`` in the order they finish; more can
    be added while iterating (as Dask's ``as_completed`` allows)."""

    def __init__(self, futures):
        self.pending = set(futures)

    def add(self, future):
        self.pending.add(future)

    def __iter__(self):
        while self.pending:
            done, _ = concurrent.futures.wait(self.pending,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                self.pending.discard(future)
                yield future


class Pool:
    """A ``concurrent.futures`` executor on this machine: ``workers``
    threads of this process (``processes=False``) or worker processes.

    The interface the driver needs of an executor: ``open()`` (a context
    manager), ``cores()``, ``describe()``, ``share(data)`` (data sent to
    every worker once), ``submit(fn, *args, key=...)`` returning a future,
    ``as_completed(futures)`` (more may be added while iterating),
    ``release(future)``, ``infrastructure_errors`` and ``local`` (whether
    the workers share this machine's folders: the driver then makes the
    scratch folders, one private root for the run)."""

    local = True
    client = None
    infrastructure_errors = (concurrent.futures.BrokenExecutor,
                             concurrent.futures.CancelledError)

    def __init__(self, workers=None, *, processes=False):
        workers = workers or max(1, os.cpu_count() or 1)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers: expected an integer >= 1, received {workers!r}")
        self.workers = workers
        self.processes = bool(processes)
        self._pool = None

    def _start(self):
        if self.processes:
            import multiprocessing
            return concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
        return concurrent.futures.ThreadPoolExecutor(self.workers,
                                                     thread_name_prefix="grade")

    @contextlib.contextmanager
    def open(self):
        self._pool = self._start()
        try:
            yield self
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def cores(self) -> int:
        return self.workers

    def describe(self) -> str:
        return (f"pool: {self.workers} "
                f"{'worker processes' if self.processes else 'threads in this process'}")

    def share(self, data):
        return data

    def submit(self, fn, *args, key=None):
        try:
            return self._pool.submit(fn, *args)
        except concurrent.futures.BrokenExecutor:
            # a worker process died and broke the pool: a fresh one for the retries
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(fn, *args)

    def as_completed(self, futures):
        return _Completed(futures)

    def release(self, future):
        pass


# ---------------------------------------------------------------- the driver
def gradebook_template(db_url: str, assignment: str) -> bytes:
    """A fresh sqlite gradebook holding the course's assignments, notebooks
    and cells but no student and no submission: what a worker's scratch
    course needs, the same bytes from a sqlite or a PostgreSQL gradebook."""
    import sqlalchemy as sa
    from nbgrader.api import Base, Gradebook

    from ._child import cache_alembic_head
    cache_alembic_head()
    # everything but students, their submissions, grades and comments
    private = {"student", "submitted_assignment", "submitted_notebook", "grade", "comment",
               "alembic_version"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.db"
        with Gradebook(f"sqlite:///{path}"):
            pass                                  # schema + alembic version
        src = _ledger.engine_for(db_url)
        dst = sa.create_engine(f"sqlite:///{path}")
        try:
            with src.connect() as s, dst.begin() as d:
                a = Base.metadata.tables["assignment"]
                if s.execute(a.select().where(a.c.name == assignment)).first() is None:
                    raise ValueError(f"assignment: expected one in the gradebook (run generate "
                                     f"first), received {assignment!r}")
                tables = [t for t in Base.metadata.sorted_tables if t.name not in private]
                for table in reversed(tables):        # Gradebook() made a default course
                    d.execute(table.delete())
                for table in tables:
                    rows = [dict(r) for r in s.execute(table.select()).mappings()]
                    if rows:
                        d.execute(table.insert(), rows)
        finally:
            src.dispose()
            dst.dispose()
        return path.read_bytes()


def _submission_time(folder: Path) -> str | None:
    """nbgrader's timestamp.txt of a collected submission, as UTC ISO text."""
    stamp = folder / "timestamp.txt"
    if not stamp.is_file():
        return None
    from nbgrader.utils import parse_utc
    try:
        return _ledger.utc_iso(parse_utc(stamp.read_text().strip()))
    except Exception:
        return None


@dataclasses.dataclass
class Summary:
    assignment: str
    cores: int
    results: list = dataclasses.field(default_factory=list)     # merged Results
    skipped: int = 0                  # already merged by an earlier run
    superseded: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)      # (student, reason)
    retried: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0      # until the executor was ready
    task_seconds: float = 0.0         # sum of the tasks' time inside the workers
    ready_at: float = 0.0             # time.time() when the executor was up
    #: (host, pid) of each worker process -> time.time() its last task ended
    last_end: dict = dataclasses.field(default_factory=dict)
    merge_seconds: float = 0.0        # the driver's time merging results
    driver_cpu_seconds: float = 0.0   # the driver process's CPU time (scheduler included)

    @property
    def graded(self):
        return [r for r in self.results if r.status == "graded"]

    @property
    def ungradable(self):
        return [r for r in self.results if r.status != "graded"]

    @property
    def per_core_minute(self) -> float:
        done = len(self.results)
        return done / (self.cores * self.seconds / 60) if self.seconds > 0 else 0.0

    def lines(self) -> list:
        out = [f"{self.assignment}: {len(self.graded)} graded, {len(self.ungradable)} ungradable, "
               f"{len(self.failed)} failed, {self.retried} retried, {self.skipped} already "
               f"graded (skipped), {len(self.superseded)} superseded; {self.seconds:.1f} s on "
               f"{self.cores} cores, {self.per_core_minute:.2f} submissions per core-minute"]
        for r in self.ungradable:
            out.append(f"  ungradable {r.student}: {r.reason}")
        for student, reason in self.failed:
            out.append(f"  FAILED {student}: {reason} (graded again by the next run)")
        for student in self.superseded:
            out.append(f"  superseded {student}: a newer submission was merged first")
        return out


def _executor(executor, cluster, scheduler):
    if executor is not None:
        if cluster is not None or scheduler is not None:
            raise ValueError("executor: expected without cluster and scheduler, received both")
        return executor
    from .cluster import Dask
    return Dask(cluster=cluster or "local", scheduler=scheduler)


class Driver:
    """Grades one assignment on an executor into the course's gradebook.

    ``executor``: a :class:`Pool` or :class:`lstmlib.grading.cluster.Dask`;
    without it, ``cluster`` (``local[:N]``) or ``scheduler`` (an address)
    name a Dask one. ``course``: a :class:`Course` or its folder.
    ``on_merged(driver, summary)`` is called after each merge."""

    def __init__(self, course, *, executor=None, cluster=None, scheduler=None, retries=2,
                 unsafe_no_sandbox=False, progress=True, log=None, on_merged=None,
                 regrade=False, keep_scratch=False):
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries: expected an integer >= 0, received {retries!r}")
        self.executor = _executor(executor, cluster, scheduler)
        if keep_scratch and not self.executor.local:
            raise ValueError("keep_scratch: expected an executor on this machine (a Pool)")
        self.course = course if isinstance(course, Course) else Course(course, log=log)
        self.retries = retries
        self.unsafe = unsafe_no_sandbox
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.on_merged = on_merged
        self.regrade = regrade
        self.keep_scratch = keep_scratch

    @property
    def client(self):
        """The Dask client of a run on Dask (None otherwise), for hooks."""
        return self.executor.client

    # -- jobs ----------------------------------------------------------------
    def jobs(self, assignment, students=None) -> list:
        """The collected submissions of ``assignment`` (or of ``students``),
        each a dict with its job key, the ledger's fields and its files."""
        check_assignment_name(assignment)
        for student in students or ():
            check_student_name(student)
        cfg = self.course.config
        folder = cfg.submitted
        found = sorted(p.name for p in folder.iterdir()
                       if (p / assignment).is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []
        if students:
            missing = sorted(set(students) - set(found))
            if missing:
                raise ValueError(f"students: expected students with a collected submission "
                                 f"of {assignment}, received {missing}")
            found = [s for s in found if s in students]
        version = _ledger.grader_version(cfg.source / assignment)
        jobs = []
        for student in found:
            check_student_name(student)
            root = folder / student / assignment
            files = {}
            for path in regular_files(root):
                if os.lstat(path).st_size <= cfg.max_submission_file_bytes:
                    files[path.relative_to(root).as_posix()] = path.read_bytes()
            jobs.append(dict(
                job_key=_ledger.job_key(cfg.course_id, assignment, student, files, version),
                course=cfg.course_id, assignment=assignment, student=student,
                submitted_at=_submission_time(root), grader_version=version, files=files))
        return jobs

    # -- a run ---------------------------------------------------------------
    def autograde(self, assignment, students=None) -> Summary:
        from nbgrader.api import Gradebook

        from ._child import cache_alembic_head
        cache_alembic_head()
        course = self.course
        check_assignment_name(assignment)
        mode = sandbox.require(self.unsafe)
        self.log(f"sandbox: {mode}")
        db_url = course.config.db_url
        if db_url.startswith("sqlite:///"):
            backup = course.backup_gradebook()
            self.log(f"gradebook backed up to {backup}")
        else:
            backup = "(PostgreSQL: back it up with pg_dump)"
        ledger = _ledger.Ledger(db_url)
        start, cpu_start = time.monotonic(), time.process_time()
        work_root = None
        try:
            jobs = self.jobs(assignment, students)
            todo = ledger.plan([{k: v for k, v in j.items() if k != "files"} for j in jobs],
                               regrade=self.regrade)
            keys = {j["job_key"] for j in todo}
            todo = [j for j in jobs if j["job_key"] in keys]
            summary = Summary(assignment, cores=1)
            summary.skipped = len(jobs) - len(todo)
            if summary.skipped:
                self.log(f"{summary.skipped} submissions already graded (unchanged): skipped")
            if not todo:
                summary.seconds = time.monotonic() - start
                return summary
            if self.executor.local:
                # one private folder for the run's scratch courses, refused
                # before any grading where the kernels' sockets would not fit
                work_root = scratch_root()
                os.chmod(work_root, 0o711)
            template = gradebook_template(db_url, assignment)
            # one gradebook open for all merges: SQLAlchemy keeps its compiled
            # statements per engine, and compiling them was most of a merge
            with Gradebook(db_url) as gradebook, self.executor.open() as ex:
                self._run(ex, ledger, gradebook, todo, template, work_root, summary,
                          start)
        finally:
            ledger.close()
            if work_root is not None and not self.keep_scratch:
                shutil.rmtree(work_root, ignore_errors=True)
        summary.seconds = time.monotonic() - start
        summary.driver_cpu_seconds = time.process_time() - cpu_start
        summary.results.sort(key=lambda r: r.student)
        course.write_report(assignment, summary.results, backup, mode)
        return summary

    def _run(self, ex, ledger, gradebook, todo, template, work_root, summary, start):
        from tqdm import tqdm
        assignment = summary.assignment
        summary.cores = ex.cores()
        summary.startup_seconds = time.monotonic() - start
        summary.ready_at = time.time()
        self.log(ex.describe())
        shared = ex.share(template)
        scratch = {j["job_key"]: (None if work_root is None else str(work_root / str(n)))
                   for n, j in enumerate(todo)}
        by_future = {}
        bar = tqdm(total=len(todo), unit="sub", desc=assignment, file=sys.stderr,
                   disable=not self.progress, dynamic_ncols=True)

        def submit(job):
            attempt = ledger.start(job["job_key"])
            folder = scratch[job["job_key"]]
            if folder is not None and attempt > 1:
                folder = f"{folder}-{attempt}"
            fut = ex.submit(grade_task, str(self.course.root), assignment, job["student"],
                            job["files"], shared, self.unsafe, folder, self.keep_scratch,
                            key=f"grade-{job['student']}-{job['job_key'][:16]}-"
                                f"{attempt}-{os.getpid()}")
            by_future[fut] = (job, attempt)
            return fut

        pending = ex.as_completed([submit(j) for j in todo])
        for fut in pending:
            job, attempt = by_future.pop(fut)
            try:
                result = fut.result()
            except ex.infrastructure_errors as exc:
                reason = f"{type(exc).__name__}: {exc}"[:500]
                if attempt <= self.retries:
                    summary.retried += 1
                    ledger.retrying(job["job_key"], reason)
                    self.log(f"{job['student']}: {reason}; retrying "
                             f"({attempt}/{self.retries})")
                    pending.add(submit(job))
                else:
                    ledger.fail(job["job_key"], reason)
                    summary.failed.append((job["student"], reason))
                    bar.update(1)
                continue
            except Exception as exc:       # the grader itself broke: not a grade
                reason = f"grader error: {type(exc).__name__}: {exc}"[:500]
                ledger.fail(job["job_key"], reason)
                summary.failed.append((job["student"], reason))
                bar.update(1)
                continue
            finally:
                ex.release(fut)
            summary.task_seconds += result.payload.get("task_seconds", result.seconds)
            if "task_end" in result.payload:
                host, pid, end = result.payload["task_end"]
                summary.last_end[(host, pid)] = max(end, summary.last_end.get((host, pid), 0.0))
            merge_start = time.monotonic()
            try:
                outcome = merge(self.course, ledger, job, result, gradebook)
            finally:
                gradebook.db.rollback()     # end the read transaction
            summary.merge_seconds += time.monotonic() - merge_start
            result.payload = {}
            if outcome == "merged":
                summary.results.append(result)
                bar.set_postfix_str(f"{job['student']} {result.score:g}/"
                                    f"{result.max_score:g}", refresh=False)
                if not self.progress:
                    self.log(result.line())
            elif outcome == "superseded":
                summary.superseded.append(job["student"])
            else:
                summary.duplicates += 1
            bar.update(1)
            if self.on_merged is not None:
                self.on_merged(self, summary)
        bar.close()
        shared = None     # a Dask future: released before the client closes


def autograde(course_root, assignment, students=None, **options) -> Summary:
    """Grade an assignment's collected submissions with a :class:`Driver`
    (``options``: its keywords; by default on a Dask LocalCluster)."""
    return Driver(course_root, **options).autograde(assignment, students)
