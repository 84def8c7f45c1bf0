"""A synthetic class for grading tests and benchmarks.

    .venv/bin/python scripts/synthetic_class.py DEST [--assignment 01_rnn_forward] [--students 40]

Makes a course folder DEST (this repository's nbgrader_config.py and the
assignment's source notebooks), generates the assignment (gradebook and
student version), and fills grading/submitted/ with ``students``
submissions, each with nbgrader's timestamp.txt: the full solution, the
blank student version and every entry of the assignment's mistake bank
(tests/mistakes/), in turn. :func:`make_class` returns the expected score
of each student, as the mistake bank states it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def generate(course: Path, assignment: str):
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([sys.executable, "-m", "lstmlib.grading", "generate", assignment],
                          cwd=course, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"generate {assignment} failed:\n{proc.stdout}\n{proc.stderr}")


def variants(course: Path, assignment: str) -> list:
    """(label, notebook dict, expected score) for the full solution, the
    blank notebook and each mistake of the bank."""
    from tests import mistakes
    bank = mistakes.load(assignment)
    solution = json.loads((course / "solutions" / assignment /
                           f"{bank.NOTEBOOK}.ipynb").read_text())
    blank = json.loads((course / "exercises" / assignment / f"{bank.NOTEBOOK}.ipynb").read_text())
    out = [("full", solution, float(bank.FULL_SCORE)), ("blank", blank, 0.0)]
    out += [(m.name, mistakes.apply(solution, m), float(m.expected_score))
            for m in bank.MISTAKES]
    return out


def submit(course: Path, assignment: str, student: str, notebook: str, nb: dict,
           when: dt.datetime):
    folder = course / "grading" / "submitted" / student / assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / f"{notebook}.ipynb").write_text(json.dumps(nb))
    # nbgrader's own format (collect writes it so)
    (folder / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))


def make_class(dest, assignment="01_rnn_forward", students=40, *, db_url=None) -> dict:
    """Build the course and its submissions; returns {student: (label, expected score)}."""
    from tests import mistakes
    dest = Path(dest)
    if not isinstance(students, int) or students < 1:
        raise ValueError(f"students: expected an integer >= 1, received {students!r}")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"dest: expected a new or empty folder, received {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    config = (ROOT / "nbgrader_config.py").read_text()
    if db_url:
        config += f"\nc.CourseDirectory.db_url = {db_url!r}\n"
    (dest / "nbgrader_config.py").write_text(config)
    shutil.copytree(ROOT / "solutions" / assignment, dest / "solutions" / assignment)
    (dest / "grading").mkdir(exist_ok=True)
    generate(dest, assignment)
    bank = mistakes.load(assignment)
    kinds = variants(dest, assignment)
    start = dt.datetime(2026, 1, 5, 9, 0, 0)
    expected = {}
    for i in range(students):
        label, nb, score = kinds[i % len(kinds)]
        student = f"s{i:04d}"
        submit(dest, assignment, student, bank.NOTEBOOK, nb, start + dt.timedelta(minutes=i))
        expected[student] = (label, score)
    return expected


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dest")
    p.add_argument("--assignment", default="01_rnn_forward")
    p.add_argument("--students", type=int, default=40)
    args = p.parse_args(argv)
    expected = make_class(args.dest, args.assignment, args.students)
    print(f"{len(expected)} submissions of {args.assignment} in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
