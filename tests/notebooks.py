"""Reading the course's notebooks in tests: cell sources, nbgrader metadata,
and the lines of a source notebook that only its solution and hidden-test
regions hold (what a student version, a website page or a feedback page
must never show)."""

import json
import re
from pathlib import Path

REGION_START = re.compile(r"###\s*BEGIN (SOLUTION|HIDDEN TESTS)")
REGION_END = re.compile(r"###\s*END (SOLUTION|HIDDEN TESTS)")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def source(cell):
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def nbgrader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_only_lines(nb, min_chars=12):
    """The stripped lines (``min_chars`` or longer, comments left out) found
    inside a solution or hidden-test region, or in a markdown solution cell,
    of the notebook ``nb`` (a dict or a path), and nowhere outside those."""
    if not isinstance(nb, dict):
        nb = load(nb)
    inside, outside = set(), set()
    for cell in nb["cells"]:
        text = source(cell)
        if cell["cell_type"] == "markdown" and nbgrader_meta(cell).get("solution"):
            inside.update(line.strip() for line in text.splitlines())
            continue
        region = False
        for line in text.splitlines():
            s = line.strip()
            if REGION_START.search(s):
                region = True
            elif REGION_END.search(s):
                region = False
            else:
                (inside if region else outside).add(s)
    return {s for s in inside - outside if len(s) >= min_chars and not s.startswith("#")}
