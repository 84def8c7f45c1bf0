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

``scripts/bench_grading.py`` measures the grading throughput of a
LocalCluster against one plain process per core.
"""
from __future__ import annotations

import contextlib
import os
import re

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
