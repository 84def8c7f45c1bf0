"""Grading a whole class on Dask: many cores, then many machines.

``python -m lstmlib.grading autograde A`` (or ``--cluster local[:N]``)
starts a LocalCluster of N worker processes (one thread each) on
127.0.0.1, N being all cores of this machine by default; ``--scheduler
tcp://host:port`` uses an existing Dask cluster (``dask scheduler`` +
``dask worker`` by hand, dask-jobqueue on Slurm/PBS/HTCondor,
dask-kubernetes).

:class:`Dask` is the executor :class:`lstmlib.grading.driver.Driver` submits
the submissions to (its client's ``submit`` returns futures, as a
``concurrent.futures`` pool's does): the driver, its ledger, retries and
merges are the same as on a :class:`lstmlib.grading.driver.Pool`. Lost
workers and connections (``KilledWorker``, ``CommClosedError``...) are its
infrastructure errors, retried by the driver.

Workers need the course folder at the same path (a shared file system, or
the same checkout on each node): they read its config, the released
notebooks and the assignment's data files, never its gradebook or
submissions; each makes its own scratch folders.

``python -m lstmlib.grading.cluster --bench`` grades one synthetic class
sequentially, then on one plain process per core and on a LocalCluster
taking turns, in one run, and prints submissions per core-minute for each
(see :func:`bench`).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time

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


class Dask:
    """A Dask client as the driver's executor: a LocalCluster of ``cluster``
    (``local`` or ``local:N``) worker processes on 127.0.0.1, or the cluster
    whose scheduler is at ``scheduler`` (tcp://host:port...). See
    :class:`lstmlib.grading.driver.Pool` for the interface."""

    local = False        # workers make their own scratch folders

    def __init__(self, cluster="local", scheduler=None):
        if scheduler is not None and not re.fullmatch(r"(tcp|tls|inproc|ws|wss)://\S+",
                                                      str(scheduler)):
            raise ValueError(f"--scheduler: expected an address such as tcp://host:8786, "
                             f"received {scheduler!r}")
        self.workers = None if scheduler else parse_cluster(cluster)
        self.scheduler = scheduler
        self.client = None

    @property
    def infrastructure_errors(self) -> tuple:
        """Exceptions of Dask that mean the infrastructure failed, not the submission."""
        import asyncio
        import concurrent.futures

        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError
        return (KilledWorker, CommClosedError, asyncio.CancelledError,
                concurrent.futures.CancelledError, ConnectionError, TimeoutError)

    @contextlib.contextmanager
    def open(self):
        import dask
        from distributed import Client, LocalCluster
        settings = {**POLICY, **QUIET,
                    "distributed.worker.daemon": False,
                    "distributed.admin.tick.limit": "30s"}
        try:
            with dask.config.set(settings):
                if self.scheduler:
                    with Client(self.scheduler, timeout="30s") as client:
                        self.client = client
                        yield self
                else:
                    with LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                      processes=True, host="127.0.0.1",
                                      dashboard_address="127.0.0.1:0",
                                      worker_dashboard_address="127.0.0.1:0") as cluster, \
                            Client(cluster) as client:
                        self.client = client
                        yield self
        finally:
            self.client = None

    def cores(self) -> int:
        info = self.client.scheduler_info()
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def describe(self) -> str:
        return (f"cluster: {self.cores()} worker threads "
                f"({self.scheduler or 'LocalCluster on 127.0.0.1'}); "
                f"dashboard: {self.client.dashboard_link}")

    def share(self, data):
        return self.client.scatter(data, broadcast=True, hash=False)

    def submit(self, fn, *args, key=None):
        return self.client.submit(fn, *args, pure=False, key=key)

    def as_completed(self, futures):
        from distributed import as_completed
        return as_completed(futures)

    def release(self, future):
        future.release()


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

    from . import sandbox
    from .course import Course
    from .driver import Driver, gradebook_template
    from .job import grade_task
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
