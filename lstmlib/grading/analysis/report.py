"""The similarity and delegation report of an assignment, and its command.

:func:`similarity_report` reads every submission of an assignment (as
JSON; nothing runs), lists the graded functions that delegate
(:mod:`.delegation`) and the pairs whose answer code is too alike
(:mod:`.similarity`): with lstmlib's reference implementation, with the
published solution, with another submission. The code every student
received (the released notebook, and the skeleton of the published
solution) is not counted. :func:`write_report` writes it as
``<assignment>-similarity.csv``, ``.md`` and ``.html``.

The report is for the instructor: no grade depends on it (the graded
kernel's edition of lstmlib holds nothing to delegate to; see
:mod:`.delegation`). It points at notebooks to read.

Command line: ``python -m lstmlib.grading similarity <assignment>`` from
the course folder (or ``python -m lstmlib.grading.analysis <assignment>``,
the same options).
"""
from __future__ import annotations

import argparse
import csv
import html
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .delegation import delegating_functions
from .notebooks import get_assignment, graded_functions, load_notebook, notebook_file, skeleton
from .similarity import (DEFAULT_K, DEFAULT_MIN_SHARED, DEFAULT_THRESHOLD, DEFAULT_WINDOW,
                         answer_code, flag_pairs, reference_code)


@dataclass
class Report:
    """The report of one assignment."""

    assignment: str
    threshold: float
    matches: list            # flagged Match objects, sorted
    delegation: dict         # student -> {function: reason}
    submissions: list        # student ids
    problems: list           # (student, text)
    files: list = field(default_factory=list)


def similarity_report(assignment, submissions, solution=None, threshold=DEFAULT_THRESHOLD,
                      min_shared=DEFAULT_MIN_SHARED, k=DEFAULT_K, window=DEFAULT_WINDOW,
                      released=None, progress=False):
    """Compare every submission with the reference implementation, the
    published solution and every other submission.

    ``submissions``: {student id: notebook (path or dict)}. ``solution``:
    the source notebook (solutions/<assignment>/...), or None. ``released``:
    the student version, if any (its code is not counted); the skeleton is
    also derived from ``solution``. A pair is flagged when its score is at
    least ``threshold`` and it shares at least ``min_shared`` fingerprints.
    """
    a = get_assignment(assignment)
    if not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a number in (0, 1], received {threshold!r}")
    if not isinstance(min_shared, int) or min_shared < 1:
        raise ValueError(f"min_shared: expected a positive integer, received {min_shared!r}")
    if not isinstance(submissions, dict):
        raise ValueError(f"submissions: expected a dict {{student: notebook}}, "
                         f"received {type(submissions).__name__}")
    keep = set(graded_functions(a))
    base = set()
    sol_code = None
    if solution is not None:
        sol_nb = load_notebook(solution)
        base |= answer_code(skeleton(sol_nb), keep=keep, k=k, window=window).all_prints()
    if released is not None:
        base |= answer_code(released, keep=keep, k=k, window=window).all_prints()
    if solution is not None:
        sol_code = answer_code(sol_nb, "published solution", keep, k, window, base)
    ref_code = reference_code(a, k, window, base)

    codes, delegation, problems = {}, {}, []
    items = sorted(submissions.items())
    iterator = items
    if progress:
        from tqdm import tqdm
        iterator = tqdm(items, desc=f"{a.name}: reading submissions", unit="nb",
                        file=sys.stderr)
    for student, nb in iterator:
        try:
            nbd = load_notebook(nb)
        except ValueError as exc:
            problems.append((student, str(exc)))
            continue
        try:
            found = delegating_functions(nbd, a.name)
        except Exception as exc:        # a notebook the analysis cannot read
            problems.append((student, f"delegation check failed: {exc}"))
            found = {}
        if found:
            delegation[student] = found
        try:
            code = answer_code(nbd, student, keep, k, window, base)
        except Exception as exc:        # report it; the rest of the class goes on
            problems.append((student, f"answer code could not be normalised: "
                             f"{type(exc).__name__}: {exc}"))
            continue
        if code.unparsed:
            problems.append((student, f"answer cell(s) {code.unparsed} do not "
                             f"parse as Python: not compared"))
        codes[student] = code

    matches = flag_pairs(codes, ref_code, sol_code, threshold, min_shared)
    return Report(a.name, threshold, matches, delegation, sorted(submissions), problems)


_HEADER = ["kind", "student", "other", "score", "shared", "reason"]


def _rows(report):
    rows = [m.row() for m in report.matches]
    for student in sorted(report.delegation):
        for fn, reason in sorted(report.delegation[student].items()):
            rows.append(["delegation", student, fn, "", "", reason])
    for student, text in report.problems:
        rows.append(["not compared", student, "", "", "", text])
    return rows


def write_report(report, out_dir):
    """Write <assignment>-similarity.csv, .md and .html in ``out_dir``;
    returns the paths. An earlier report of the same assignment is moved
    aside (…-similarity.previous.*) rather than overwritten."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _rows(report)
    stem = f"{report.assignment}-similarity"
    paths = []
    for ext in ("csv", "md", "html"):
        p = out_dir / f"{stem}.{ext}"
        if p.exists():
            p.replace(out_dir / f"{stem}.previous.{ext}")
        paths.append(p)
    with open(paths[0], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_HEADER)
        w.writerows(rows)
    title = (f"Similarity and delegation report: {report.assignment} "
             f"({len(report.submissions)} submissions, threshold "
             f"{report.threshold:.2f})")
    md = [f"# {title}", "",
          f"Flagged pairs: {len(report.matches)}; notebooks with delegating "
          f"functions: {len(report.delegation)}.", "",
          "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in rows:
        md.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ")
                                    for c in r) + " |")
    paths[1].write_text("\n".join(md) + "\n", encoding="utf-8")
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n"
                   for r in rows)
    paths[2].write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><tr>" +
        "".join(f"<th>{h}</th>" for h in _HEADER) + "</tr>\n" + body +
        "</table></body></html>\n", encoding="utf-8")
    report.files = paths
    return paths


# ---------------------------------------------------------------------------
# Command line: python -m lstmlib.grading similarity <assignment>

def add_arguments(parser):
    """The options of the ``similarity`` subcommand."""
    parser.add_argument("assignment")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"flag pairs at or above this score, 0-1 "
                             f"(default {DEFAULT_THRESHOLD})")
    parser.add_argument("--min-shared", type=int, default=DEFAULT_MIN_SHARED,
                        help="fingerprints a flagged pair must share "
                             f"(default {DEFAULT_MIN_SHARED})")
    parser.add_argument("--from", dest="source", choices=("submitted", "autograded"),
                        default="submitted",
                        help="read grading/submitted/ (default) or grading/autograded/")
    parser.add_argument("--out", help="report folder (default grading/reports)")


def _source_dir(course):
    env = os.environ.get("LSTMLIB_GRADING_SOURCE")
    return Path(env) if env else course / "solutions"


def collect_submissions(course, assignment, source="submitted"):
    """{student: notebook path} under grading/<source>/<student>/<assignment>/."""
    a = get_assignment(assignment)
    root = Path(course) / "grading" / source
    if not root.is_dir():
        raise ValueError(f"course: expected submissions in {root}, found no such "
                         f"folder (collect the assignment first)")
    subs = {}
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        nb = student_dir / a.name / notebook_file(a)
        if nb.is_file():
            subs[student_dir.name] = nb
        else:
            others = sorted((student_dir / a.name).glob("*.ipynb")) \
                if (student_dir / a.name).is_dir() else []
            if len(others) == 1:
                subs[student_dir.name] = others[0]
    return subs


def run_command(args):
    """The ``similarity`` subcommand; returns the exit status."""
    course = Path(args.course).resolve()
    a = get_assignment(args.assignment)
    subs = collect_submissions(course, a.name, args.source)
    if not subs:
        raise ValueError(f"assignment: no submissions of {a.name} under "
                         f"{course / 'grading' / args.source}")
    sol = _source_dir(course) / a.name / notebook_file(a)
    rel = course / "exercises" / a.name / notebook_file(a)
    report = similarity_report(a.name, subs, sol if sol.is_file() else None,
                               threshold=args.threshold, min_shared=args.min_shared,
                               released=rel if rel.is_file() else None,
                               progress=True)
    out = Path(args.out) if args.out else course / "grading" / "reports"
    paths = write_report(report, out)
    print(f"{a.name}: {len(report.submissions)} submissions, "
          f"{len(report.matches)} flagged pairs, "
          f"{len(report.delegation)} notebooks with delegating functions")
    for m in report.matches:
        print(f"  {m.score:5.0%}  {m.kind:9s} {m.student} ~ {m.other}: {m.reason}")
    for student in sorted(report.delegation):
        for fn, reason in sorted(report.delegation[student].items()):
            print(f"  delegation {student}: {fn}: {reason}")
    for student, text in report.problems:
        print(f"  not compared {student}: {text}")
    print("report: " + ", ".join(str(p) for p in paths))
    return 0


def main(argv=None):
    """``python -m lstmlib.grading.analysis`` (same as the subcommand)."""
    p = argparse.ArgumentParser(prog="python -m lstmlib.grading similarity")
    p.add_argument("--course", default=".")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_command(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
