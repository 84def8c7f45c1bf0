"""A corpus of hostile (and broken) submissions for the tiny assignment.

Each :class:`Attack` builds one submission from the generated student
notebook of :mod:`tiny_course` and says what grading must make of it:
``score`` is the exact score it must get (zero, or its honest share: the
points its genuine answers earn) or ``None`` when it must be reported as
ungradable, with ``reason`` a fragment of the reported reason.

The paths an attacker would aim at (the course folder, the gradebook, the
other students' submissions, a file outside the course) are filled in at
build time from :class:`Targets`.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nbformat

from tests.notebooks import grade_id
from . import tiny_course as tiny

OK_SQUARE = "np.asarray(x, dtype=float) ** 2"
OK_CUBE = "np.asarray(x, dtype=float) ** 3"
#: An environment variable set in the grader's environment that must never
#: reach a graded kernel.
ENV_SECRET_NAME = "LSTMLIB_GRADER_SECRET"
ENV_SECRET_VALUE = "grader-env-secret-7f3a"


@dataclasses.dataclass
class Targets:
    course: Path
    outside: Path          # a file outside the course the attacker tries to change
    repo: Path = tiny.REPO


@dataclasses.dataclass
class Attack:
    name: str
    what: str
    build: object            # Targets -> dict(nb=..., raw=..., name=...)
    score: float | None      # exact expected score; None: ungradable
    reason: str = ""         # fragment of the reason (ungradable) or of a note
    forbid: tuple = ()       # strings that must not appear in any output


def _nb(t, square=OK_SQUARE, cube=OK_CUBE, extra_square="", cells=()):
    return {"nb": tiny.answered(t.course, square=square, cube=cube,
                                extra_square=extra_square, extra_cells=cells)}


def _honest(t):
    return tiny.answered(t.course)


def _raw(nb):
    return nbformat.writes(nb).encode()


PATCH_CHECKS = '''\
import numpy.testing
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: np.True_
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
np.testing.assert_array_equal = lambda *a, **k: None
np.testing.assert_array_almost_equal = lambda *a, **k: None
import builtins
builtins.abs = lambda v: 0.0
'''

LIAR = '''\
class Liar:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __array__(self, *a, **k): return np.zeros(3)
    def tolist(self): return [1.0, 4.0, 9.0]
'''

SUBCLASS = '''\
class Sneaky(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
    def __ne__(self, other): return np.zeros(np.shape(other), dtype=bool)
    def tolist(self): return [1.0, 4.0, 9.0]
    def __array_ufunc__(self, *a, **k): return np.ones(1, dtype=bool)
'''


def read_hidden(t):
    code = f'''\
import glob, os, sqlite3
found = []
for pattern in ["{t.course}/solutions/*/*.ipynb", "{t.course}/**/*.ipynb",
                "{t.repo}/solutions/*/*.ipynb", "../../../gradebook.db",
                "../../../source/*/*", "/tmp/*/*/course/gradebook.db"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            found.append(open(path, errors="replace").read())
        except OSError as exc:
            print("denied", path, exc)
for db in ["{t.course}/grading/gradebook.db", "../../../gradebook.db"]:
    try:
        rows = sqlite3.connect(db).execute("SELECT source FROM source_cell").fetchall()
        found += [r[0] for r in rows]
    except Exception as exc:
        print("no gradebook", db, type(exc).__name__)
print("".join(found)[:100000])
print("files found:", len(found))
'''
    return _nb(t, cells=[code])


def rewrite_files(t):
    code = f'''\
import glob, os
targets = (glob.glob("{t.course}/grading/submitted/*/tiny/*.ipynb")
           + glob.glob("{t.course}/solutions/*/*.ipynb")
           + glob.glob("{t.course}/exercises/*/*.ipynb")
           + ["{t.course}/nbgrader_config.py", "{t.course}/grading/gradebook.db",
              "{t.outside}", "../../honest_a/tiny/tiny.ipynb",
              "../../../submitted/honest_a/tiny/tiny.ipynb"])
for path in targets:
    try:
        with open(path, "w") as fh:
            fh.write("pwned")
        print("WROTE", path)
    except OSError as exc:
        print("denied", path, type(exc).__name__)
try:
    os.makedirs("{t.course}/grading/submitted/mallory/tiny")
    print("WROTE a fake submission")
except OSError as exc:
    print("denied mkdir", type(exc).__name__)
'''
    return _nb(t, cells=[code])


def sqlite_zero(t):
    code = f'''\
import sqlite3
for db in ["{t.course}/grading/gradebook.db", "../../../gradebook.db",
           "../../../../gradebook.db", "gradebook.db"]:
    try:
        con = sqlite3.connect(db)
        con.execute("UPDATE grade SET manual_score = 0, auto_score = 0")
        con.commit()
        print("UPD" + "ATED", db)
    except Exception as exc:
        print("denied", db, type(exc).__name__, exc)
'''
    return _nb(t, cells=[code])


def symlink_output(t):
    code = f'''\
import os
for name, target in [("tiny.ipynb", "{t.course}/solutions/tiny/tiny.ipynb"),
                     ("timestamp.txt", "{t.outside}")]:
    try:
        if os.path.lexists(name):
            os.remove(name)
        os.symlink(target, name)
        print("linked", name)
    except OSError as exc:
        print("denied", name, exc)
'''
    return _nb(t, cells=[code])


FORK_BOMB = '''\
import os, time
n = 0
for _ in range(10000):
    try:
        pid = os.fork()
    except OSError as exc:
        print("fork refused after", n, "children:", exc)
        break
    if pid == 0:
        time.sleep(20)
        os._exit(0)
    n += 1
print("children:", n)
'''

NETWORK = '''\
import socket, urllib.request
for host, port in [("1.1.1.1", 53), ("8.8.8.8", 443), ("127.0.0.1", 22)]:
    try:
        socket.create_connection((host, port), timeout=3)
        print("CONN" + "ECTED", host, port)
    except OSError as exc:
        print("no network", host, port, exc)
try:
    urllib.request.urlopen("http://example.com", timeout=3)
    print("CONN" + "ECTED http")
except Exception as exc:
    print("no http", type(exc).__name__)
'''

MEMORY_BOMB = '''\
def bomb():
    try:
        np.ones(10**11)
    except MemoryError:
        print("refused 800 GB")
    chunks = []
    while True:
        chunks.append(bytearray(1 << 27))
bomb()
'''

BIG_FILE = '''\
with open("big.bin", "wb") as fh:
    for _ in range(40):
        fh.write(b"0" * (1 << 23))
print("BIG FILE " + "WRITTEN")
'''

ENV_LEAK = f'''\
import os
print(sorted(os.environ))
print(os.environ.get("{ENV_SECRET_NAME}", "no secret"))
'''


def deleted_cells(t):
    nb = _honest(t)
    nb.cells = [c for c in nb.cells
                if grade_id(c) not in ("test_square_hidden", "test_cube", "test_cube_hidden")]
    return {"nb": nb}


def reordered(t):
    nb = _honest(t)
    moved = [tiny.cell(nb, "test_cube"), tiny.cell(nb, "test_cube_hidden")]
    rest = [c for c in nb.cells if c not in moved]
    at = rest.index(tiny.cell(nb, "cube"))
    nb.cells = rest[:at] + moved + rest[at:]
    return {"nb": nb}


def metadata_edited(t):
    nb = tiny.answered(t.course, square="np.asarray(x, dtype=float) * 2")
    tiny.cell(nb, "test_square").metadata["nbgrader"]["points"] = 100
    hidden = tiny.cell(nb, "test_square_hidden")
    hidden.metadata["nbgrader"]["grade_id"] = "free_points"
    hidden.source = "pass\n"
    cube = tiny.cell(nb, "test_cube")
    cube.metadata["nbgrader"]["locked"] = False
    cube.source = "pass\n"
    tiny.cell(nb, "test_cube_hidden").metadata["nbgrader"]["points"] = 50
    return {"nb": nb}


def renamed(t):
    return {"nb": _honest(t), "name": "tiny (final).ipynb"}


def corrupt(t):
    return {"raw": b'{"cells": [{"cell_type": "code", "source": "import os" ,,, \x00\xff'}


def truncated(t):
    raw = _raw(_honest(t))
    return {"raw": raw[: len(raw) // 2]}


WRONG = "np.zeros(np.shape(x))"

ATTACKS = [
    Attack("patch-numpy-checks", "reassign np.allclose/isclose/array_equal, np.testing.*, "
           "builtins.abs; wrong square", lambda t: _nb(t, square=WRONG, extra_square=PATCH_CHECKS),
           tiny.CUBE_POINTS),
    Attack("eq-always-true", "square returns an object whose __eq__ is always true",
           lambda t: _nb(t, square="Liar()", extra_square=LIAR), tiny.CUBE_POINTS),
    Attack("ndarray-subclass", "square returns a lying ndarray subclass",
           lambda t: _nb(t, square="np.zeros(np.shape(x)).view(Sneaky)", extra_square=SUBCLASS),
           tiny.CUBE_POINTS),
    Attack("read-hidden-tests", "read solutions/, the gradebook, the scratch source",
           read_hidden, tiny.FULL_SCORE, forbid=(tiny.SECRET, "BEGIN HIDDEN TESTS")),
    Attack("rewrite-files", "overwrite other submissions, sources, config, gradebook, "
           "a file outside the course", rewrite_files, tiny.FULL_SCORE),
    Attack("sqlite-zero-gradebook", "UPDATE grade SET manual_score = 0 on every gradebook "
           "it can guess", sqlite_zero, tiny.FULL_SCORE, forbid=("UPDATED",)),
    Attack("symlink-output", "symlink the output notebook name to the source notebook",
           symlink_output, tiny.FULL_SCORE),
    Attack("infinite-loop", "while True: pass", lambda t: _nb(t, cells=["while True:\n    pass\n"]),
           tiny.FULL_SCORE),
    Attack("sys-exit", "sys.exit(3)", lambda t: _nb(t, cells=["import sys\nsys.exit(3)\n"]),
           tiny.FULL_SCORE),
    # a kernel that dies after the tests: restarted, the tests keep their points
    Attack("os-exit", "os._exit(0) kills the kernel",
           lambda t: _nb(t, cells=["import os\nos._exit(0)\n"]), tiny.FULL_SCORE,
           reason="kernel died"),
    Attack("kernel-sigkill", "os.kill(os.getpid(), 9)",
           lambda t: _nb(t, cells=["import os\nos.kill(os.getpid(), 9)\n"]), tiny.FULL_SCORE,
           reason="SIGKILL"),
    Attack("segfault", "ctypes.string_at(0)",
           lambda t: _nb(t, cells=["import ctypes\nctypes.string_at(0)\n"]), tiny.FULL_SCORE,
           reason="segmentation fault"),
    Attack("memory-bomb", "allocate until the address-space limit",
           lambda t: _nb(t, cells=[MEMORY_BOMB]), tiny.FULL_SCORE),
    Attack("output-flood-lines", "two million printed lines",
           lambda t: _nb(t, cells=["for i in range(2_000_000):\n    print(i)\n"]),
           tiny.FULL_SCORE, reason="output over the limit"),
    Attack("output-one-30MB-line", "square prints a single 30 MB line on every call",
           lambda t: _nb(t, square="(print('x' * 30_000_000), " + OK_SQUARE + ")[1]"),
           tiny.CUBE_POINTS, reason="output over the limit"),
    Attack("fork-bomb", "fork until refused", lambda t: _nb(t, cells=[FORK_BOMB]),
           tiny.FULL_SCORE),
    Attack("network", "connect to the internet and to localhost",
           lambda t: _nb(t, cells=[NETWORK]), tiny.FULL_SCORE, forbid=("CONNECTED",)),
    Attack("big-file", "write a 320 MB file", lambda t: _nb(t, cells=[BIG_FILE]),
           tiny.FULL_SCORE, forbid=("BIG FILE WRITTEN",)),
    Attack("env-leak", "print the grader's environment",
           lambda t: _nb(t, cells=[ENV_LEAK]), tiny.FULL_SCORE, forbid=(ENV_SECRET_VALUE,)),
    Attack("corrupt-json", "not JSON at all", corrupt, None, reason="corrupt notebook"),
    Attack("truncated-json", "the honest notebook cut in half", truncated, None,
           reason="corrupt notebook"),
    Attack("renamed-notebook", "honest notebook saved under another name", renamed,
           tiny.FULL_SCORE, reason="renamed"),
    Attack("cells-deleted", "test cells deleted (honest answers)", deleted_cells,
           tiny.FULL_SCORE, reason="deleted cell"),
    Attack("cells-reordered", "cube's tests moved above cube", reordered,
           tiny.SQUARE_POINTS, reason="reordered"),
    Attack("metadata-edited", "points raised, grade_id renamed, test unlocked and emptied; "
           "wrong square", metadata_edited, tiny.CUBE_POINTS,
           reason="metadata of cell test_square"),
    Attack("suppress-errors", "patch showtraceback and sys.excepthook; wrong square",
           lambda t: _nb(t, square=WRONG, extra_square=(
               "import sys\nget_ipython().showtraceback = lambda *a, **k: None\n"
               "get_ipython()._showtraceback = lambda *a, **k: None\n"
               "sys.excepthook = lambda *a: None\n")), tiny.CUBE_POINTS),
    Attack("skip-tests-transformer", "an IPython input transformer turns every test into "
           "`pass`; wrong square",
           lambda t: _nb(t, square=WRONG, extra_square=(
               "get_ipython().input_transformers_cleanup.append(\n"
               "    lambda lines: ['pass\\n'] if 'check_close' in ''.join(lines) else lines)\n")),
           0.0),
]


def write_submission(t: Targets, student: str, attack: Attack) -> Path:
    spec = attack.build(t)
    return tiny.place_submission(t.course, student, nb=spec.get("nb"), raw=spec.get("raw"),
                                 name=spec.get("name", f"{tiny.NOTEBOOK}.ipynb"))


def outputs_text(nb_path: Path) -> str:
    """All output text of an executed notebook (not the sources)."""
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            parts.append(json.dumps({k: v for k, v in o.items() if k != "metadata"}))
    return "\n".join(parts)
