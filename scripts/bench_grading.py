"""Benchmark: one synthetic class graded sequentially, on N processes and on Dask.

    .venv/bin/python scripts/bench_grading.py [--students 40] [--workers N]
        [--assignment 01_rnn_forward] [--json out.json] [--no-sequential] [--rounds 2]

Builds the class in a temporary course (scripts/synthetic_class.py), then
runs :func:`bench`: the same submissions graded one after the other in one
process, then on N plain processes (one per core, no Dask) and through the
grading driver on a LocalCluster of N worker processes, taking turns (pool,
cluster, cluster, pool, ...: ``--rounds`` of each); prints submissions per
core-minute for each run, the cluster's ratios and the engine's overhead.
A benchmark, not a test: run it on a quiet machine and quote the CPU model it
prints. Exit status 1 if two runs' scores differ, or differ from the scores
the mistake bank states.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_class  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lstmlib.grading import sandbox  # noqa: E402
from lstmlib.grading.cluster import parse_cluster  # noqa: E402
from lstmlib.grading.course import Course  # noqa: E402
from lstmlib.grading.driver import Driver, gradebook_template  # noqa: E402
from lstmlib.grading.job import grade_task  # noqa: E402


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
    (:func:`main` makes one)."""
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
        raise ValueError(f"assignment: expected collected submissions of {assignment!r}, "
                         "found none")
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
                f"a LocalCluster of {f['cores']} workers "
                f"({f['startup_seconds']:.1f} s starting it; "
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=40)
    p.add_argument("--workers", type=int)
    p.add_argument("--assignment", default="01_rnn_forward")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--unsafe-no-sandbox", action="store_true")
    p.add_argument("--no-sequential", action="store_true",
                   help="skip the one-process run (the ratio is to the process pool)")
    p.add_argument("--rounds", type=int, default=2,
                   help="runs of the pool and of the cluster, in turns (default 2)")
    args = p.parse_args(argv)
    if not args.unsafe_no_sandbox:
        sandbox.require()
    with tempfile.TemporaryDirectory(prefix="lstmlib-bench-") as tmp:
        expected = synthetic_class.make_class(Path(tmp) / "course", args.assignment,
                                              args.students)
        out = bench(Path(tmp) / "course", args.assignment, workers=args.workers,
                    unsafe_no_sandbox=args.unsafe_no_sandbox,
                    sequential=not args.no_sequential, rounds=args.rounds)
    wrong = {student: (label, score, out["scores"].get(student))
             for student, (label, score) in expected.items()
             if out["scores"].get(student) != ("graded", score)}
    print(f"scores as the mistake bank states them: {len(expected) - len(wrong)} of "
          f"{len(expected)}" + "".join(f"\n  {s} ({label}): expected {score:g}, got {got}"
                                        for s, (label, score, got) in sorted(wrong.items())))
    out["as_expected"] = not wrong
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0 if out["identical"] and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
