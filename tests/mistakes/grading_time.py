"""Grading time per submission, measured through the instructor's CLI.

    .venv/bin/python tests/mistakes/grading_time.py [ASSIGNMENT ...] [--repeat N]

Builds a scratch course holding the given assignments (default: all of
solutions/), submits the full solution of each as one student and grades it
with ``python -m lstmlib.grading autograde`` (sandboxed); prints, per
assignment, the seconds the pipeline reports for that one submission (the
best of ``--repeat`` runs) and the total.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(course, *args):
    r = subprocess.run([sys.executable, "-m", "lstmlib.grading", "--course", str(course),
                        *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}")
    return r


def _autograded_points(assignment):
    """The points the grader decides (a written answer is graded by hand)."""
    from lstmlib.grading.assignments import ASSIGNMENTS
    return ASSIGNMENTS[assignment].points


def main(argv):
    repeat = 1
    if "--repeat" in argv:
        i = argv.index("--repeat")
        repeat = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    names = argv or sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp) / "course"
        course.mkdir()
        shutil.copy(ROOT / "nbgrader_config.py", course)
        for a in names:
            shutil.copytree(ROOT / "solutions" / a, course / "solutions" / a)
            cli(course, "generate", a)
            folder = course / "grading" / "submitted" / "full" / a
            folder.mkdir(parents=True)
            for nb in (course / "solutions" / a).glob("*.ipynb"):
                shutil.copy(nb, folder / nb.name)
            best = None
            for _ in range(repeat):
                cli(course, "autograde", a)
                report = json.loads((course / "grading" / "reports" / f"{a}.json").read_text())
                r = report["results"][0]
                if r["status"] != "graded" or r["score"] != _autograded_points(r["assignment"]):
                    raise RuntimeError(f"{a}: {r}")
                best = r["seconds"] if best is None else min(best, r["seconds"])
            total += best
            print(f"{a:<20} {best:7.2f} s  ({r['score']}/{r['max_score']})", flush=True)
    print(f"{'total':<20} {total:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
