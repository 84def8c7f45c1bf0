"""Grading time per submission, two versions of the course side by side.

    python tests/mistakes/grading_time_compare.py BEFORE_PYTHON BEFORE_TREE [ASSIGNMENT ...]

BEFORE_PYTHON is an interpreter whose ``lstmlib`` is the version to compare
with (a copy of the virtual environment whose editable install points at
BEFORE_TREE, a checkout of that version); this interpreter and this tree
are the other. For each assignment both versions generate it and grade the
full solution with ``python -m lstmlib.grading autograde`` (sandboxed),
alternately, so that both see the same load; prints the seconds the
pipeline reports for the one submission (wall clock) and the CPU seconds
(user + system) of the whole autograde command with every process it
started (the kernel included), and the ratios. On a shared, loaded machine
the wall clock mostly measures the load; the CPU seconds do not.
"""
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def course_for(python, tree, assignment, tmp):
    course = Path(tmp) / "course"
    course.mkdir()
    shutil.copy(Path(tree) / "nbgrader_config.py", course)
    shutil.copytree(Path(tree) / "solutions" / assignment, course / "solutions" / assignment)
    run(python, course, "generate", assignment)
    folder = course / "grading" / "submitted" / "full" / assignment
    folder.mkdir(parents=True)
    for nb in (course / "solutions" / assignment).glob("*.ipynb"):
        shutil.copy(nb, folder / nb.name)
    return course


def run(python, course, *args):
    # run in the course folder: the current folder comes first on sys.path
    r = subprocess.run([python, "-m", "lstmlib.grading", "--course", str(course), *args],
                       capture_output=True, text=True, cwd=course)
    if r.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{r.stdout}\n{r.stderr}")


def _cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def seconds(python, course, assignment):
    before = _cpu()
    run(python, course, "autograde", assignment)
    cpu = _cpu() - before
    r = json.loads((course / "grading" / "reports" / f"{assignment}.json").read_text())
    r = r["results"][0]
    if r["status"] != "graded" or r["score"] != _autograded_points(r["assignment"]):
        raise RuntimeError(f"{assignment}: {r}")
    return r["seconds"], cpu


def _autograded_points(assignment):
    """The points the grader decides (a written answer is graded by hand)."""
    from lstmlib.grading.assignments import ASSIGNMENTS
    return ASSIGNMENTS[assignment].points


def main(argv):
    before_py, before_tree, *names = argv
    names = names or sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    totals = [0.0, 0.0, 0.0, 0.0]
    print(f"{'assignment':<18} {'wall before':>11} {'after':>7} {'ratio':>6}   "
          f"{'cpu before':>10} {'after':>7} {'ratio':>6}", flush=True)
    for a in names:
        with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
            c_before = course_for(before_py, before_tree, a, t1)
            c_after = course_for(sys.executable, ROOT, a, t2)
            b, bc = seconds(before_py, c_before, a)
            f, fc = seconds(sys.executable, c_after, a)
        for i, v in enumerate((b, f, bc, fc)):
            totals[i] += v
        print(f"{a:<18} {b:11.2f} {f:7.2f} {f / b:6.2f}   {bc:10.2f} {fc:7.2f} {fc / bc:6.2f}",
              flush=True)
    b, f, bc, fc = totals
    print(f"{'total':<18} {b:11.2f} {f:7.2f} {f / b:6.2f}   {bc:10.2f} {fc:7.2f} {fc / bc:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
