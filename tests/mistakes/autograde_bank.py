"""Autograde the mistake bank with the real nbgrader CLI on a scratch course.

    .venv/bin/python -m tests.mistakes.autograde_bank [ASSIGNMENT ...] [--time]

(from the repository root: ``-m`` puts it on the module path, so that
``tests.mistakes`` imports).

For each assignment: a student with the full solution, one with the blank
student version, and one per mistake; prints each score beside the expected
one and exits non-zero on any difference. ``--time`` first autogrades the
full solution alone and prints the wall time of that one autograde;
``--only-time`` does only that.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mistakes import ROOT, available, load, notebook_with, read_solution

BIN = Path(sys.executable).parent
NBGRADER = [str(BIN / "nbgrader")]
# nbgrader runs `alembic` (from the venv) when it creates a gradebook
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
# the notebooks of the bank are the course's own: grading them without the
# sandbox (plain nbgrader autograde refuses otherwise) is safe
ENV["LSTMLIB_UNSANDBOXED_AUTOGRADE"] = "1"


def run(args, cwd):
    r = subprocess.run(NBGRADER + args, cwd=cwd, capture_output=True, text=True,
                       env=ENV)
    if r.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def make_course(tmp, assignments):
    course = Path(tmp) / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    (course / "grading").mkdir()
    for a in assignments:
        shutil.copytree(ROOT / "solutions" / a, course / "solutions" / a)
        run(["generate_assignment", a, "--force"], course)
    return course


def add_students(course, ids):
    csv = course / "students.csv"
    csv.write_text("id\n" + "".join(f"{i}\n" for i in ids))
    run(["db", "student", "import", str(csv)], course)


def submit(course, student, assignment, notebook_name, nb):
    d = course / "grading" / "submitted" / student / assignment
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"{notebook_name}.ipynb", "w") as f:
        json.dump(nb, f)


def scores(course, assignment):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course}/grading/gradebook.db") as gb:
        out = {}
        for sub in gb.assignment_submissions(assignment):
            failed = [g.cell.name for nb in sub.notebooks for g in nb.grades
                      if g.max_score > 0 and (g.score or 0) < g.max_score]
            out[sub.student.id] = (sub.score, sorted(failed))
        return out


def main(argv):
    only_time = "--only-time" in argv
    timing = "--time" in argv or only_time
    names = [a for a in argv if not a.startswith("--")] or available()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(tmp, names)
        most = max(len(load(a).MISTAKES) for a in names)
        add_students(course, ["full", "blank"] + [f"m{i:02d}" for i in range(most)])
        for a in names:
            bank = load(a)
            submit(course, "full", a, bank.NOTEBOOK, read_solution(a))
            if timing:
                t0 = time.perf_counter()
                run(["autograde", a, "--student", "full", "--force"], course)
                print(f"{a}: autograde of one submission took "
                      f"{time.perf_counter() - t0:.1f} s")
                if only_time:
                    score, failed = scores(course, a)["full"]
                    print(f"  full solution: {score} of {bank.FULL_SCORE}")
                    ok = ok and score == bank.FULL_SCORE
                    continue
            with open(course / "exercises" / a / f"{bank.NOTEBOOK}.ipynb") as f:
                submit(course, "blank", a, bank.NOTEBOOK, json.load(f))
            expected = {"full": bank.FULL_SCORE, "blank": 0.0}
            for i, m in enumerate(bank.MISTAKES):
                sid = f"m{i:02d}"
                submit(course, sid, a, bank.NOTEBOOK, notebook_with(a, m))
                expected[sid] = m.expected_score
            t0 = time.perf_counter()
            run(["autograde", a, "--force"], course)
            took = time.perf_counter() - t0
            got = scores(course, a)
            print(f"\n{a}: {len(expected)} submissions autograded in {took:.1f} s")
            labels = {"full": "full solution", "blank": "blank"}
            labels.update({f"m{i:02d}": m.name for i, m in enumerate(bank.MISTAKES)})
            for sid, exp in expected.items():
                score, failed = got.get(sid, (None, []))
                flag = "ok " if score is not None and abs(score - exp) < 1e-9 else "BAD"
                if flag == "BAD":
                    ok = False
                print(f"  {flag} {labels[sid]:<48} expected {exp:>5} got {score}  "
                      f"failed: {', '.join(failed) or '-'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
