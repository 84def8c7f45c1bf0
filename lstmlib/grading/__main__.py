"""The instructor's command line: ``python -m lstmlib.grading <command>``.

Run it from the course folder (the one holding nbgrader_config.py) or pass
``--course PATH``. Commands, in the order of a term::

    add-students students.csv          # id,first_name,last_name,email
    generate 01_rnn_forward            # solutions/ -> exercises/ + gradebook
    release 01_rnn_forward             # exercises/ -> exchange
    fetch 01_rnn_forward --student-dir DIR          (student side)
    submit 01_rnn_forward --student ID --student-dir DIR   (student side)
    collect 01_rnn_forward             # exchange -> grading/submitted/
    autograde 01_rnn_forward           # sandboxed, on Dask with all cores; a report
    autograde 01_rnn_forward --cluster local:N      # on N worker processes
    autograde 01_rnn_forward --scheduler tcp://host:8786   # on an existing Dask cluster
    autograde 01_rnn_forward --regrade # grade unchanged submissions again too
    autograde 01_rnn_forward --workers N   # in this process, N at a time (no Dask)
    feedback 01_rnn_forward            # HTML without hidden tests
    release-feedback 01_rnn_forward
    export grades.csv                  # scores + a status column
    sandbox-check                      # can this machine build the sandbox?
    similarity 01_rnn_forward          # delegation + similarity report
"""
from __future__ import annotations

import argparse
import sys

from . import sandbox
from .config import PipelineError
from .course import Course


def _parser():
    p = argparse.ArgumentParser(prog="python -m lstmlib.grading",
                                description="Grade the course's nbgrader assignments.")
    p.add_argument("--course", default=".", help="course folder (with nbgrader_config.py)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("add-students", help="import students from a CSV file")
    s.add_argument("csv")
    for name, text in [("generate", "generate the student version and the gradebook entry"),
                       ("collect", "collect submissions from the exchange")]:
        s = sub.add_parser(name, help=text)
        s.add_argument("assignment")
        if name == "collect":
            s.add_argument("--exchange", help="exchange folder (default: Exchange.root)")
    s = sub.add_parser("release", help="release to the exchange")
    s.add_argument("assignment")
    s.add_argument("--exchange")
    s = sub.add_parser("fetch", help="student side: fetch a released assignment")
    s.add_argument("assignment")
    s.add_argument("--student-dir", required=True)
    s.add_argument("--exchange")
    s = sub.add_parser("submit", help="student side: submit an assignment")
    s.add_argument("assignment")
    s.add_argument("--student", required=True)
    s.add_argument("--student-dir", required=True)
    s.add_argument("--exchange")
    s = sub.add_parser("autograde", help="grade collected submissions in the sandbox")
    s.add_argument("assignment")
    s.add_argument("--student", action="append", help="only this student (repeatable)")
    s.add_argument("--workers", type=int,
                   help="grade in this process (a thread pool), N submissions at once, "
                        "without Dask (every submission graded again)")
    s.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade without the sandbox (trusted notebooks only)")
    s.add_argument("--keep-scratch", action="store_true",
                   help="keep the per-submission scratch folders (debugging; in this "
                        "process, without Dask)")
    s.add_argument("--cluster", metavar="local[:N]", nargs="?", const="local",
                   help="grade on a Dask LocalCluster of N worker processes on 127.0.0.1 "
                        "(the default, with all cores); resumable, skips submissions "
                        "already graded")
    s.add_argument("--regrade", action="store_true",
                   help="on Dask: grade again the submissions already graded unchanged")
    s.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="grade on an existing Dask cluster (see the instructor guide)")
    s.add_argument("--retries", type=int, default=2,
                   help="retries of a submission whose worker was lost "
                        "(default 2)")
    s = sub.add_parser("feedback", help="generate feedback HTML (no hidden tests)")
    s.add_argument("assignment")
    s.add_argument("--student", action="append")
    s = sub.add_parser("release-feedback", help="put feedback in the exchange")
    s.add_argument("assignment")
    s.add_argument("--exchange")
    s = sub.add_parser("export", help="export grades to CSV")
    s.add_argument("csv", nargs="?", default="grading/grades.csv")
    sub.add_parser("sandbox-check", help="say whether the sandbox works here")
    from .analysis import report
    report.add_arguments(sub.add_parser(
        "similarity", help="similarity and delegation report of an assignment"))
    return p


def _print_results(results) -> int:
    for r in results:
        print(r.line())
    bad = [r.student for r in results if r.status != "graded"]
    if bad:
        print(f"\nNOT GRADED ({len(bad)}): {', '.join(bad)} (reasons above; "
              "recorded as 0 with status 'ungradable' in the export)")
    return 3 if bad else 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "similarity":
        from .analysis import report
        try:
            return report.run_command(args)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.command == "sandbox-check":
        ok, reason = sandbox.probe()
        print(("OK: " if ok else "UNAVAILABLE: ") + reason)
        return 0 if ok else 1
    try:
        course = Course(args.course)
        cmd = args.command
        if cmd == "add-students":
            print(f"{course.add_students(args.csv)} students imported")
        elif cmd == "generate":
            course.generate(args.assignment)
        elif cmd == "release":
            course.release(args.assignment, args.exchange)
        elif cmd == "fetch":
            print(course.fetch(args.assignment, args.student_dir, args.exchange))
        elif cmd == "submit":
            course.submit(args.assignment, args.student, args.student_dir, args.exchange)
        elif cmd == "collect":
            course.collect(args.assignment, args.exchange)
        elif cmd == "autograde":
            from .driver import Driver, Pool
            if args.workers or args.keep_scratch:
                if args.cluster or args.scheduler or args.regrade:
                    raise ValueError("--workers/--keep-scratch: expected without --cluster, "
                                     "--scheduler and --regrade (they grade in this process)")
                # a thread pool in this process; every submission graded again
                options = dict(executor=Pool(args.workers or course.config.workers),
                               regrade=True, keep_scratch=args.keep_scratch)
            else:
                if args.cluster and args.scheduler:
                    raise ValueError("--cluster and --scheduler: expected one of them, "
                                     "received both")
                options = dict(cluster=None if args.scheduler else args.cluster or "local",
                               scheduler=args.scheduler, regrade=args.regrade)
            summary = Driver(course, retries=args.retries,
                             unsafe_no_sandbox=args.unsafe_no_sandbox, **options) \
                .autograde(args.assignment, args.student)
            code = _print_results(summary.results)
            print("\n" + "\n".join(summary.lines()))
            return 3 if code or summary.failed else 0
        elif cmd == "feedback":
            pages = course.feedback(args.assignment, args.student)
            print(f"{len(pages)} feedback pages, checked free of hidden tests")
        elif cmd == "release-feedback":
            course.release_feedback(args.assignment, args.exchange)
        elif cmd == "export":
            print(course.export(args.csv))
    except sandbox.SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PipelineError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
