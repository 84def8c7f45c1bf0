"""Grading a whole class on Dask: many cores, then many machines.

``python -m lstmlib.grading autograde A`` (or ``--cluster local[:N]``)
starts a LocalCluster of N worker processes (one thread each) on
127.0.0.1, N being all cores of this machine by default; ``--scheduler tcp://host:port`` uses
an existing Dask cluster (``dask scheduler`` + ``dask worker`` by hand,
dask-jobqueue on Slurm/PBS/HTCondor, dask-kubernetes).

The driver (this process, the trusted side) lists the collected
submissions, reads their files, names each job by its key
(:func:`lstmlib.grading.ledger.job_key`) and skips the jobs its ledger has
already merged. Each remaining submission is one Dask task: a worker runs
:func:`lstmlib.grading.pipeline.grade_submission` (its own scratch course
and sandbox, one submission at a time per worker thread) on the files and a
template gradebook sent with the task, and returns the result as plain data.
Only the driver writes the gradebook, through :func:`ledger.merge`.

Faults of the infrastructure (a worker killed, a node gone, a lost
connection: ``KilledWorker``, ``CommClosedError``...) are retried, at most
``retries`` times (2 by default), then listed as failed with the reason;
the next run grades them again. Faults of the submission (a timeout, memory,
a crashed kernel, wrong answers) are grades: ``grade_submission`` returns
them as an ``ungradable`` or low-scoring result, and they are never retried.

Workers need the course folder at the same path (a shared file system, or
the same checkout on each node): they read its config, the released
notebooks and the assignment's data files, never its gradebook or
submissions.

``python -m lstmlib.grading.cluster --bench`` grades one synthetic class
sequentially, then on one plain process per core and on a LocalCluster
taking turns, in one run, and prints submissions per core-minute for each
(see :func:`bench`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from . import ledger as _ledger
from . import sandbox
from .pipeline import Course, _regular_files, grade_submission

#: The scheduler's policy the driver relies on (a cluster of one's own needs
#: it too: the instructor guide lists it with :data:`QUIET`).
POLICY = {
    # a dead worker fails its task at once: the driver counts the retries
    "distributed.scheduler.allowed-failures": 0,
    # one task per worker thread at a time: never more sandboxes than cores
    "distributed.scheduler.worker-saturation": 1.0,
}

#: Dask's periodic housekeeping, slowed or switched off. A task here is
#: seconds of grading, one at a time per worker, so the defaults' fine
#: grain (an event-loop check every 20 ms, a stack sample every 10 ms, a
#: memory reading every 100 ms, in every process) buys nothing and costs
#: cores: an idle LocalCluster of 2 workers burnt 0.12 s of CPU per second
#: with the defaults and 0.015 s with these. A real cluster takes the same
#: keys in its own Dask configuration (the instructor guide lists them).
QUIET = {
    "distributed.admin.tick.interval": "1s",             # event-loop health check
    "distributed.worker.profile.enabled": False,         # the dashboard's profiler
    "distributed.worker.memory.monitor-interval": "1s",  # the sandbox limits memory
    "distributed.admin.system-monitor.interval": "5s",   # the dashboard's CPU/memory plots
    "distributed.scheduler.work-stealing": False,        # tasks are queued, never assigned early
    "distributed.scheduler.active-memory-manager.start": False,  # no data is replicated
}


def _infrastructure_errors() -> tuple:
    """Exceptions of Dask that mean the infrastructure failed, not the submission."""
    import asyncio
    import concurrent.futures
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError
    return (KilledWorker, CommClosedError, asyncio.CancelledError,
            concurrent.futures.CancelledError, ConnectionError, TimeoutError)


def parse_cluster(spec: str) -> int:
    """``local`` -> all cores; ``local:N`` -> N worker processes (1 <= N <= cores)."""
    cores = os.cpu_count() or 1
    m = re.fullmatch(r"local(?::(\d+))?", spec or "")
    if not m:
        raise ValueError(f"--cluster: expected 'local' or 'local:N', received {spec!r}")
    n = int(m.group(1)) if m.group(1) else cores
    if not 1 <= n <= cores:
        raise ValueError(f"--cluster: expected between 1 and {cores} workers (the cores of this "
                         f"machine: never more sandboxes than cores), received {n}")
    return n


# ------------------------------------------------------------------ worker side
_UID_BASE, _UID_COUNT = 61000, 999


@contextlib.contextmanager
def _uid_lease():
    """A sandbox uid no other grading job on this machine holds right now
    (a lock file per uid): two kernels never share a uid, hence never share
    its process limit or signal each other."""
    folder = Path(tempfile.gettempdir()) / "lstmlib-grading-uids"
    folder.mkdir(mode=0o700, exist_ok=True)
    start = os.getpid() % _UID_COUNT
    for i in range(_UID_COUNT):
        n = (start + i) % _UID_COUNT
        fh = open(folder / f"{n}.lock", "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        try:
            yield _UID_BASE + n
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
        return
    raise RuntimeError(f"no free sandbox uid among {_UID_COUNT}")


def grade_task(course_root, assignment, student, files, template, unsafe_no_sandbox):
    """What a Dask worker runs for one submission: returns a Result."""
    import multiprocessing
    # Dask's worker processes are daemonic; the grader starts its own
    # processes (the nbgrader process, the sandboxed kernel), which a
    # daemonic process may not. They are joined or killed before we return.
    multiprocessing.current_process().daemon = False
    start = time.monotonic()
    with _uid_lease() as uid:
        result = grade_submission(course_root, assignment, student, files=files,
                                  gradebook_template=template, uid=uid,
                                  unsafe_no_sandbox=unsafe_no_sandbox)
    result.payload["task_seconds"] = time.monotonic() - start
    result.payload["task_end"] = (os.uname().nodename, os.getpid(), time.time())
    return result


# ------------------------------------------------------------------ driver side
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
    startup_seconds: float = 0.0      # until the cluster was ready
    task_seconds: float = 0.0         # sum of the tasks' time inside the workers
    ready_at: float = 0.0             # time.time() when the cluster was up
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


class Driver:
    """Grades one assignment on a Dask cluster into the course's gradebook."""

    def __init__(self, course_root, *, cluster="local", scheduler=None, retries=2,
                 unsafe_no_sandbox=False, progress=True, log=None, on_merged=None,
                 regrade=False):
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries: expected an integer >= 0, received {retries!r}")
        if scheduler is not None and not re.fullmatch(r"(tcp|tls|inproc|ws|wss)://\S+",
                                                      str(scheduler)):
            raise ValueError(f"--scheduler: expected an address such as tcp://host:8786, "
                             f"received {scheduler!r}")
        self.course = Course(course_root, log=log)
        self.workers = None if scheduler else parse_cluster(cluster)
        self.scheduler = scheduler
        self.retries = retries
        self.unsafe = unsafe_no_sandbox
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.on_merged = on_merged
        self.regrade = regrade
        self.client = None

    # -- jobs ----------------------------------------------------------------
    def jobs(self, assignment, students=None) -> list:
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
            Course._check_student_name(student)
            root = folder / student / assignment
            files = {}
            for path in _regular_files(root):
                if os.lstat(path).st_size <= cfg.max_submission_file_bytes:
                    files[path.relative_to(root).as_posix()] = path.read_bytes()
            jobs.append(dict(
                job_key=_ledger.job_key(cfg.course_id, assignment, student, files, version),
                course=cfg.course_id, assignment=assignment, student=student,
                submitted_at=_submission_time(root), grader_version=version, files=files))
        return jobs

    # -- the cluster ---------------------------------------------------------
    @contextlib.contextmanager
    def connect(self):
        import dask
        from distributed import Client, LocalCluster
        settings = {**POLICY, **QUIET,
                    "distributed.worker.daemon": False,
                    "distributed.admin.tick.limit": "30s"}
        with dask.config.set(settings):
            if self.scheduler:
                with Client(self.scheduler, timeout="30s") as client:
                    self.client = client
                    yield client
            else:
                with LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  worker_dashboard_address="127.0.0.1:0") as cluster, \
                        Client(cluster) as client:
                    self.client = client
                    yield client
        self.client = None

    def cores(self) -> int:
        info = self.client.scheduler_info()
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    # -- a run ---------------------------------------------------------------
    def autograde(self, assignment, students=None) -> Summary:
        from distributed import as_completed
        from nbgrader.api import Gradebook
        from tqdm import tqdm
        from ._child import cache_alembic_head
        cache_alembic_head()
        course = self.course
        Course._check_assignment_name(assignment)
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
            template = gradebook_template(db_url, assignment)
            # one gradebook open for all merges: SQLAlchemy keeps its compiled
            # statements per engine, and compiling them was most of a merge
            with Gradebook(db_url) as gradebook, self.connect() as client:
                summary.cores = self.cores()
                summary.startup_seconds = time.monotonic() - start
                summary.ready_at = time.time()
                self.log(f"cluster: {summary.cores} worker threads "
                         f"({self.scheduler or 'LocalCluster on 127.0.0.1'}); "
                         f"dashboard: {client.dashboard_link}")
                template_f = client.scatter(template, broadcast=True, hash=False)
                by_future = {}
                bar = tqdm(total=len(todo), unit="sub", desc=assignment, file=sys.stderr,
                           disable=not self.progress, dynamic_ncols=True)

                def submit(job):
                    attempt = ledger.start(job["job_key"])
                    fut = client.submit(grade_task, str(course.root), assignment, job["student"],
                                        job["files"], template_f, self.unsafe, pure=False,
                                        key=f"grade-{job['student']}-{job['job_key'][:16]}-"
                                            f"{attempt}-{os.getpid()}")
                    by_future[fut] = (job, attempt)
                    return fut

                pending = as_completed([submit(j) for j in todo])
                for fut in pending:
                    job, attempt = by_future.pop(fut)
                    try:
                        result = fut.result()
                    except _infrastructure_errors() as exc:
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
                        fut.release()
                    summary.task_seconds += result.payload.get("task_seconds", result.seconds)
                    if "task_end" in result.payload:
                        host, pid, end = result.payload["task_end"]
                        summary.last_end[(host, pid)] = max(
                            end, summary.last_end.get((host, pid), 0.0))
                    merge_start = time.monotonic()
                    try:
                        outcome = _ledger.merge(course, ledger, job, result, gradebook)
                    finally:
                        gradebook.db.rollback()     # end the read transaction
                    summary.merge_seconds += time.monotonic() - merge_start
                    result.payload = {}
                    if outcome == "merged":
                        summary.results.append(result)
                        bar.set_postfix_str(f"{job['student']} {result.score:g}/"
                                            f"{result.max_score:g}", refresh=False)
                    elif outcome == "superseded":
                        summary.superseded.append(job["student"])
                    else:
                        summary.duplicates += 1
                    bar.update(1)
                    if self.on_merged is not None:
                        self.on_merged(self, summary)
                bar.close()
                del template_f
        finally:
            ledger.close()
        summary.seconds = time.monotonic() - start
        summary.driver_cpu_seconds = time.process_time() - cpu_start
        summary.results.sort(key=lambda r: r.student)
        course._write_report(assignment, summary.results, backup, mode)
        return summary


def autograde(course_root, assignment, students=None, **options) -> Summary:
    """Grade an assignment's collected submissions on a Dask cluster."""
    return Driver(course_root, **options).autograde(assignment, students)


# ------------------------------------------------------------------ benchmark
def bench(course_root, assignment, *, workers=None, unsafe_no_sandbox=False, log=print,
          sequential=True, rounds=2) -> dict:
    """Grade the collected class several times in one run and print
    submissions per core-minute for each way of grading it:

    - sequentially in this process (one submission after the other, no
      Dask), counted as one core (once, first; ``sequential=False`` skips it);
    - on ``workers`` plain processes (a process pool, no Dask), each
      grading one submission at a time: the throughput of one process per
      core, the baseline the cluster is measured against;
    - on a LocalCluster of ``workers`` processes (into the course's
      gradebook, every submission graded again: ``regrade``).

    The pool and the cluster take turns, ``rounds`` times each, in the
    order pool, cluster, cluster, pool, ... so that a machine that speeds up
    or slows down during the run (other tenants, CPU credits, caches) favours
    neither. The ratio is the cluster's total throughput over the pool's;
    each round's own ratio is printed too, with the CPU time the hypervisor
    took from this machine (steal) during each run. Use a scratch course
    (scripts/bench_cluster.py makes one)."""
    import concurrent.futures
    import multiprocessing
    from tqdm import tqdm
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: expected an integer >= 1, received {rounds!r}")
    course = Course(course_root, log=lambda m: None)
    workers = workers or parse_cluster("local")
    parse_cluster(f"local:{workers}")
    mode = sandbox.require(unsafe_no_sandbox)
    drv = Driver(course_root, cluster=f"local:{workers}", unsafe_no_sandbox=unsafe_no_sandbox,
                 progress=True, log=lambda m: None, regrade=True)
    jobs = drv.jobs(assignment)
    if not jobs:
        raise ValueError(f"assignment: expected collected submissions of {assignment!r}, found none")
    template = gradebook_template(course.config.db_url, assignment)
    log(f"{assignment}: {len(jobs)} submissions; sandbox: {mode}; CPU: {_cpu_model()}, "
        f"{os.cpu_count()} logical CPUs")
    n = len(jobs)

    def args(job):
        return (str(course.root), assignment, job["student"], job["files"], template,
                unsafe_no_sandbox)

    scores = {}                                   # (way, round) -> {student: (status, score)}
    if sequential:
        t0 = time.monotonic()
        scores["sequential", 0] = {}
        for job in tqdm(jobs, desc="sequential", unit="sub", file=sys.stderr):
            r = grade_task(*args(job))
            scores["sequential", 0][job["student"]] = (r.status, r.score)
        seq_wall = time.monotonic() - t0

    def pool_run(i):
        steal0, t0 = _cpu_steal(), time.monotonic()
        got = scores["pool", i] = {}
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn")) as pool, \
                tqdm(total=n, desc=f"{workers} processes", unit="sub", file=sys.stderr) as bar:
            for r in pool.map(grade_task, *zip(*map(args, jobs))):
                got[r.student] = (r.status, r.score)
                bar.update(1)
        wall = time.monotonic() - t0
        return dict(seconds=wall, rate=n / (workers * wall / 60),
                    steal=(_cpu_steal() - steal0) / (wall * (os.cpu_count() or 1)))

    def cluster_run(i):
        steal0 = _cpu_steal()
        summary = drv.autograde(assignment)           # regrade=True: every job again
        scores["cluster", i] = {r.student: (r.status, r.score) for r in summary.results}
        run = summary.seconds - summary.startup_seconds
        # worker core-time not spent inside a task; without the tail: each
        # worker counted until its last task ended (the idle wait for the
        # others' last tasks is no scheduling cost; the plain processes have it too)
        busy = sum(end - summary.ready_at for end in summary.last_end.values())
        busy += (summary.cores - len(summary.last_end)) * run        # workers never used
        return dict(seconds=summary.seconds, startup_seconds=summary.startup_seconds,
                    rate=summary.per_core_minute, cores=summary.cores,
                    rate_after_start=len(summary.results) / (summary.cores * run / 60),
                    overhead=(summary.cores * run - summary.task_seconds) / summary.task_seconds,
                    overhead_without_tail=(busy - summary.task_seconds) / summary.task_seconds,
                    driver_cpu_seconds=summary.driver_cpu_seconds,
                    merge_seconds=summary.merge_seconds,
                    steal=(_cpu_steal() - steal0) / (summary.seconds * (os.cpu_count() or 1)))

    runs = []                                     # (way, round, figures) in the order run
    for i in range(rounds):
        for way in (("pool", "cluster") if i % 2 == 0 else ("cluster", "pool")):
            runs.append((way, i, (pool_run if way == "pool" else cluster_run)(i)))
    pool = [f for w, _, f in runs if w == "pool"]
    clus = [f for w, _, f in runs if w == "cluster"]
    pool_rate = rounds * n / (workers * sum(f["seconds"] for f in pool) / 60)
    cl_rate = rounds * n / (sum(f["cores"] * f["seconds"] for f in clus) / 60)
    cl_rate_run = rounds * n / (sum(f["cores"] * (f["seconds"] - f["startup_seconds"])
                                    for f in clus) / 60)
    first = next(iter(scores.values()))
    out = dict(submissions=n, cores=workers, rounds=rounds, cpu=_cpu_model(),
               pool_rate=pool_rate, cluster_rate=cl_rate, cluster_rate_after_start=cl_rate_run,
               ratio=cl_rate / pool_rate, ratio_after_start=cl_rate_run / pool_rate,
               round_ratios=[c["rate"] / p["rate"] for p, c in zip(pool, clus)],
               overhead=sum(f["overhead"] for f in clus) / rounds,
               overhead_without_tail=sum(f["overhead_without_tail"] for f in clus) / rounds,
               identical=all(v == first for v in scores.values()), scores=first,
               runs=[dict(way=w, round=i, **f) for w, i, f in runs])
    if sequential:
        out.update(seq_seconds=seq_wall, seq_rate=n / (seq_wall / 60),
                   ratio_to_sequential=cl_rate / (n / (seq_wall / 60)))
        log(f"sequential: {n} submissions in {seq_wall:.1f} s on 1 core: "
            f"{out['seq_rate']:.2f} submissions per core-minute")
    for w, i, f in runs:
        what = (f"{workers} processes (no Dask)" if w == "pool" else
                f"a LocalCluster of {f['cores']} workers ({f['startup_seconds']:.1f} s starting it; "
                f"the driver: {f['driver_cpu_seconds']:.1f} s of CPU, "
                f"{f['merge_seconds']:.1f} s merging)")
        log(f"round {i + 1}, {w + ':':8} {n} submissions in {f['seconds']:.1f} s on {what}: "
            f"{f['rate']:.2f} submissions per core-minute; steal {100 * f['steal']:.1f}%")
    log("ratio cluster / one process per core, per round: " +
        ", ".join(f"{r:.3f}" for r in out["round_ratios"]))
    log(f"ratio cluster / one process per core, all rounds: {out['ratio']:.3f} "
        f"(without the cluster's start: {out['ratio_after_start']:.3f})" +
        (f"; cluster / sequential, per core: {out['ratio_to_sequential']:.3f}"
         if sequential else ""))
    log(f"engine overhead after the start: {100 * out['overhead']:.2f}% of grading time (worker "
        f"core-time not spent inside a task: scheduling, transfers, merges, the last "
        f"tasks' tail); without the tail (each worker until its last task ended): "
        f"{100 * out['overhead_without_tail']:.2f}%")
    log(f"scores identical in every run: {out['identical']}")
    return out


def _cpu_steal() -> float:
    """Seconds of CPU the hypervisor has taken from this machine, all CPUs
    together (/proc/stat's steal column); 0.0 where it cannot be read."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m lstmlib.grading.cluster",
                                description="Benchmark grading on a Dask LocalCluster.")
    p.add_argument("--bench", action="store_true", required=True)
    p.add_argument("--course", default=".")
    p.add_argument("--workers", type=int)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--unsafe-no-sandbox", action="store_true")
    p.add_argument("assignment")
    args = p.parse_args(argv)
    out = bench(args.course, args.assignment, workers=args.workers,
                unsafe_no_sandbox=args.unsafe_no_sandbox, rounds=args.rounds)
    return 0 if out["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
