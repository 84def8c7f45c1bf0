"""Benchmark: one synthetic class graded sequentially, on N processes and on Dask.

    .venv/bin/python scripts/bench_cluster.py [--students 40] [--workers N]
        [--assignment 01_rnn_forward] [--json out.json] [--no-sequential] [--rounds 2]

Builds the class in a temporary course (scripts/synthetic_class.py), then
runs :func:`lstmlib.grading.cluster.bench`: the same submissions graded one
after the other in one process, then on N plain processes (one per core, no
Dask) and on a LocalCluster of N worker processes, taking turns (pool,
cluster, cluster, pool, ...: ``--rounds`` of each); prints submissions per
core-minute for each run, the cluster's ratios and the engine's overhead.
A benchmark, not a test: run it on a quiet machine and quote the CPU model it
prints. Exit status 1 if two runs' scores differ, or differ from the scores
the mistake bank states.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_class  # noqa: E402

from lstmlib.grading import cluster, sandbox  # noqa: E402


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
        out = cluster.bench(Path(tmp) / "course", args.assignment, workers=args.workers,
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
