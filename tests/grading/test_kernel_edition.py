"""The kernel editions of lstmlib (lstmlib.grading.kernel_edition).

Each assignment's edition is built into a temporary folder and imported in
a fresh ``python -I`` with only that folder ahead of the virtualenv's
site-packages (the editable install of lstmlib must not leak in): the
released notebook's imports and cells run there, the solution's cells run
there and answer the grader's checks through the kernel's harness, every
graded reference (and lstmlib.grading, lstmlib.kernels, torch) is refused
with a message naming the assignment, and what is handed out computes
exactly what the real package computes.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import lstmlib
from lstmlib.grading import assignments as manifest
from lstmlib.grading import kernel_edition

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(manifest.ASSIGNMENTS)


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    base = tmp_path_factory.mktemp("editions")
    return {a: kernel_edition.build(a, base / a) for a in NAMES}


def _python(code, edition, stdin=None, timeout=120, **kw):
    """``code`` in a fresh isolated Python whose path starts with ``edition``."""
    prelude = (f"import sys\nsys.path.insert(0, {os.fspath(edition)!r})\n"
               "import lstmlib\n"
               f"assert lstmlib.__file__.startswith({os.fspath(edition)!r}), lstmlib.__file__\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NUMBA"))}
    env.update(MPLBACKEND="Agg", NUMBA_ENABLE_CUDASIM="1")
    return subprocess.run([sys.executable, "-I", "-c", prelude + code], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=edition, **kw)


def _cells(assignment, folder):
    a = manifest.ASSIGNMENTS[assignment]
    nb = json.loads((ROOT / folder / assignment / f"{a.notebook}.ipynb").read_text())
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = cell["source"]
        out.append(("".join(src) if isinstance(src, list) else src,
                    cell.get("metadata", {}).get("nbgrader", {})))
    return out


# ---------------------------------------------------------------------------
# what the released notebook imports and uses is there

RUN_CELLS = '''
import json
ok, missing = 0, []
ns = {"__name__": "__main__"}
for src, imports in json.loads(sys.stdin.read()):
    for stmt in imports:            # every import statement, at any depth
        exec(stmt, {})
        ok += 1
    try:
        exec(compile(src, "<cell>", "exec"), ns)
    except (NotImplementedError, NameError) as exc:    # a blank answer, what uses one
        missing.append(repr(exc))
print(json.dumps({"imports": ok, "blank": missing}))
'''


def _imports(src):
    return [ast.unparse(n) for n in ast.walk(ast.parse(src))
            if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("assignment", NAMES)
def test_the_released_notebook_runs_on_its_edition(editions, assignment):
    """Every import statement of the released notebook succeeds and each of its
    cells that is not a test runs (a blank answer may raise
    NotImplementedError, a cell using it NameError; nothing else)."""
    cells = [(src, _imports(src)) for src, meta in _cells(assignment, "exercises")
             if not meta.get("grade")]
    proc = _python(RUN_CELLS, editions[assignment], stdin=json.dumps(cells))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["imports"] >= 2, report          # lstmlib and the set-up's
    for blank in report["blank"]:
        assert "NotImplementedError" in blank or "is not defined" in blank, blank


# ---------------------------------------------------------------------------
# the solution, run on the edition, passes the grader's checks through the
# kernel's harness (the named tuples the grader sends, the layers and models
# the recipes build, all from the edition)

KERNEL = '''
import json, os
from lstmlib.selfcheck import _codec, _harness
answers = os.fdopen(os.dup(1), "w")
sys.stdout = sys.stderr                 # what the cells print stays off the pipe
ns = {"__name__": "__main__"}
for src in json.loads(sys.stdin.readline()):
    exec(compile(src, "<cell>", "exec"), ns)
answers.write("ready\\n")
answers.flush()
for line in sys.stdin:
    request = json.loads(line)
    request["payload"] = _codec.decode(request["payload"])
    answers.write(json.dumps(_harness.answer(ns, request)) + "\\n")
    answers.flush()
'''


class _EditionKernel:
    """A process holding only the edition, running the solution's cells and
    answering the grader's requests as a graded kernel does."""

    def __init__(self, assignment, edition):
        prelude = (f"import sys\nsys.path.insert(0, {os.fspath(edition)!r})\n"
                   "import lstmlib\n"
                   f"assert lstmlib.__file__.startswith({os.fspath(edition)!r})\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["MPLBACKEND"] = "Agg"
        self.err = open(Path(edition) / "kernel.err", "w+")
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", prelude + KERNEL],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, env=env, cwd=edition)
        # a kernel that hangs is killed: its answers end, the test fails
        self.watchdog = threading.Timer(180, self.proc.kill)
        self.watchdog.start()
        cells = [src for src, meta in _cells(assignment, "solutions") if not meta.get("grade")]
        self.proc.stdin.write(json.dumps(cells) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ready", self.stderr()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()[-3000:]

    def handle(self, name):
        kernel = self

        class Handle:
            def __init__(self):
                self.name = name

            def ask(self, request):
                request = {k: v for k, v in request.items() if k != "_handles"}
                kernel.proc.stdin.write(json.dumps(request) + "\n")
                kernel.proc.stdin.flush()
                line = kernel.proc.stdout.readline()
                assert line, kernel.stderr()
                return json.loads(line)
        return Handle()

    def close(self):
        self.watchdog.cancel()
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.err.close()


@pytest.mark.parametrize("assignment", sorted(set(NAMES) - {"09_performance"}))
def test_the_solution_passes_on_its_edition(editions, assignment):
    from lstmlib.grading import checks as trusted
    a = manifest.ASSIGNMENTS[assignment]
    kernel = _EditionKernel(assignment, editions[assignment])
    try:
        trusted.prepare(assignment, salt=3)
        for part in a.parts:
            check = trusted.check_function(assignment, part)
            for which in ("visible", "hidden"):
                check(*[kernel.handle(f) for f in part.functions], which)
    finally:
        trusted.prepare(assignment)
        kernel.close()


# ---------------------------------------------------------------------------
# what the grade depends on is not there, and says so

#: what a graded notebook may try, beyond what the manifest (its parts, its
#: withheld references and its delegation rules' references) lists for each assignment
REFUSED = {
    "01_rnn_forward": ["from lstmlib.rnn import rnn_forward", "from lstmlib import rnn_forward",
                       "import lstmlib.layers"],
    "02_bptt": ["from lstmlib.rnn import rnn_backward",
                "from lstmlib.gradcheck import numerical_gradient"],
    "03_gradient_norms": ["import lstmlib.analysis", "from lstmlib import analysis"],
    "04_lstm_cell": ["from lstmlib.lstm import lstm_step_forward",
                     "from lstmlib.lstm import lstm_step_backward"],
    "05_lstm_sequence": ["from lstmlib.lstm import lstm_forward",
                         "from lstmlib.lstm import lstm_backward", "from lstmlib import LSTM"],
    "06_gru": ["from lstmlib.gru import gru_step_forward", "from lstmlib.gru import gru_forward"],
    "07_bidirectional": ["from lstmlib.bidirectional import bidirectional_forward",
                         "from lstmlib import LSTM"],
    "08_training": ["from lstmlib.losses import mse", "from lstmlib.optim import clip_grad_norm",
                    "from lstmlib import clip_grad_norm", "import lstmlib.train"],
    "09_performance": ["from lstmlib.kernels import numba_cpu", "import lstmlib.kernels.cuda",
                       "from lstmlib.kernels import get_cell"],
    "10_attention": ["from lstmlib.attention import attention_forward",
                     "from lstmlib.attention import softmax", "import lstmlib.seq2seq"],
    "11_tbptt": ["from lstmlib.tbptt import tbptt_chunks", "from lstmlib import tbptt_chunks",
                 "from lstmlib import train_tbptt", "import lstmlib.tbptt",
                 "from lstmlib import SequenceModel", "import lstmlib.layers"],
    "12_parallel_scan": ["from lstmlib.mingru import linear_scan_sequential",
                         "from lstmlib.mingru import mingru_backward", "import lstmlib.mingru"],
}
EVERYWHERE = ["import lstmlib.grading", "from lstmlib.grading import checks",
              "import lstmlib.kernels.numba_cpu", "import lstmlib.interop",
              "import lstmlib.bench", "import lstmlib.selfcheck.guards", "import torch",
              "import torch.nn"]


@functools.lru_cache(maxsize=None)
def _definitions():
    """{name: [module, ...]} of every top-level def and class in lstmlib."""
    out = {}
    for path in sorted((ROOT / "lstmlib").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for stmt in ast.parse(path.read_text()).body:
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                out.setdefault(stmt.name, []).append(module)
    return out


def _defined_in(name):
    """(module, name) for every top-level definition of ``name`` in lstmlib."""
    return [(m, name) for m in _definitions().get(name, [])]


def _refused_statements(assignment):
    a = manifest.ASSIGNMENTS[assignment]
    stmts = REFUSED[assignment] + EVERYWHERE
    for _graded, ref in a.delegation.references:
        module, function = ref.split(":")
        stmts.append(f"from {module} import {function}")
    for part in a.parts:
        for fn in part.functions:
            stmts += [f"from {m} import {n}" for m, n in _defined_in(fn)
                      if not m.startswith("lstmlib.grading")]
    for w in a.withheld:
        module, _, name = w.rpartition(".")
        stmts.append(f"from {module} import {name}")
    return sorted(set(stmts))


TRY = '''
import json
out = {}
for stmt in json.loads(sys.stdin.read()):
    try:
        exec(stmt, {})
        out[stmt] = None
    except ImportError as exc:
        out[stmt] = str(exc)
print(json.dumps(out))
'''


@pytest.mark.parametrize("assignment", NAMES)
def test_graded_references_are_refused_with_a_message(editions, assignment):
    stmts = _refused_statements(assignment)
    proc = _python(TRY, editions[assignment], stdin=json.dumps(stmts))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    imported = [s for s, msg in got.items() if msg is None]
    assert not imported, f"importable in the edition of {assignment}: {imported}"
    for stmt, msg in got.items():
        if "torch" in stmt:
            assert msg.startswith("torch") and \
                f"is not available in a graded notebook of {assignment}" in msg, (stmt, msg)
        else:
            assert f"is not handed out in a graded notebook of {assignment}" in msg \
                and "at home the whole package is available" in msg, (stmt, msg)


ATTACKS = '''
import importlib, json
out = {}
def attempt(label, fn):
    try:
        fn()
        out[label] = None
    except (ImportError, AttributeError) as exc:
        out[label] = [type(exc).__name__, str(exc)]
attempt("an alias bound at import", lambda: exec("from MODULE import NAME as f", {}))
attempt("a module's attribute", lambda: importlib.import_module("MODULE").NAME)
attempt("dotted from the package", lambda: eval("lstmlib.MODULE_TAIL.NAME", {"lstmlib": lstmlib}))
attempt("getattr of a built name", lambda: getattr(
    importlib.import_module("lstm" + "lib.MODULE_TAIL"), "NAME"[:3] + "NAME"[3:]))
attempt("__import__", lambda: getattr(__import__("MODULE", fromlist=["x"]), "NAME"))
attempt("through the package", lambda: lstmlib.NAME)
attempt("OTHER", lambda: importlib.import_module("MODULE").OTHER)
attempt("torch", lambda: importlib.import_module("torch").nn.LSTMCell)
print(json.dumps(out))
'''


@pytest.mark.parametrize("assignment, module, name, other", [
    ("04_lstm_cell", "lstmlib.lstm", "lstm_step_forward", "lstm_step_backward"),
    ("10_attention", "lstmlib.attention", "attention_forward", "softmax"),
])
def test_delegation_has_nothing_to_reach(editions, assignment, module, name, other):
    """A graded function reached the ways the kernel's old guards had to look
    for (an alias, an attribute, a name built at run time, __import__, the
    package, a helper of the reference, torch): each fails in the edition,
    with the message."""
    code = (ATTACKS.replace("MODULE_TAIL", module.partition(".")[2])
            .replace("MODULE", module).replace("OTHER", other).replace("NAME", name))
    proc = _python(code, editions[assignment])
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert len(got) == 8 and all(got.values()), got
    for label, (kind, message) in got.items():
        if kind == "AttributeError":        # as at home: not a package-level name
            assert label == "through the package" and not hasattr(lstmlib, name), got
        else:
            assert f"graded notebook of {assignment}" in message, got


# ---------------------------------------------------------------------------
# what is handed out computes what the real package computes

SAME = {
    "02_bptt": '''
from lstmlib.rnn import rnn_forward, rnn_step_forward
from lstmlib.gradcheck import rel_error
x, h0 = rng.standard_normal((5, 3, 4)), rng.standard_normal((3, 6))
w = (rng.standard_normal((6, 4)), rng.standard_normal((6, 6)),
     rng.standard_normal(6), rng.standard_normal(6))
keep("seq", rnn_forward(x, h0, *w, lengths=np.array([5, 2, 4])))
keep("relu", rnn_forward(x, h0, *w, nonlinearity="relu"))
keep("step", rnn_step_forward(x[0], h0, *w))
keep("rel", rel_error(x, x + 1e-7))
''',
    "03_gradient_norms": '''
for layer in (lstmlib.LSTM(4, 6, rng=np.random.default_rng(1)),
              lstmlib.RNN(4, 6, nonlinearity="relu", rng=np.random.default_rng(2))):
    x = rng.standard_normal((5, 3, 4))
    out, state = layer.forward(x)
    keep(type(layer).__name__ + ".forward", (out, state))
    keep(type(layer).__name__ + ".backward", layer.backward(rng.standard_normal(out.shape)))
    keep(type(layer).__name__ + ".grads", layer.grads)
''',
    "04_lstm_cell": '''
from lstmlib.activations import sigmoid
from lstmlib.gradcheck import numerical_gradient, rel_error
from lstmlib.lstm import LSTMStepCache
x = rng.standard_normal((3, 4))
keep("sigmoid", sigmoid(x))
keep("numgrad", numerical_gradient(lambda: np.tanh(x) ** 2, x, rng.standard_normal((3, 4))))
keep("cache", LSTMStepCache._fields)
''',
    "05_lstm_sequence": '''
from lstmlib.lstm import lstm_step_backward, lstm_step_forward
x, h, c = (rng.standard_normal((3, 4)), rng.standard_normal((3, 5)),
           rng.standard_normal((3, 5)))
w = (rng.standard_normal((20, 4)), rng.standard_normal((20, 5)),
     rng.standard_normal(20), rng.standard_normal(20))
(h1, c1), cache = lstm_step_forward(x, h, c, *w)
keep("forward", ((h1, c1), cache))
keep("backward", lstm_step_backward(rng.standard_normal((3, 5)),
                                    rng.standard_normal((3, 5)), cache))
keep("float32", lstm_step_forward(*(a.astype(np.float32) for a in (x, h, c, *w))))
''',
    "06_gru": '''
from lstmlib.activations import sigmoid
from lstmlib.gru import GRUStepCache
keep("sigmoid", sigmoid(rng.standard_normal((3, 4)) * 30))
keep("cache", GRUStepCache._fields)
''',
    "07_bidirectional": '''
from lstmlib.lstm import lstm_forward
x, h, c = (rng.standard_normal((6, 3, 4)), rng.standard_normal((3, 5)),
           rng.standard_normal((3, 5)))
w = (rng.standard_normal((20, 4)), rng.standard_normal((20, 5)),
     rng.standard_normal(20), rng.standard_normal(20))
keep("padded", lstm_forward(x, h, c, *w, lengths=np.array([6, 2, 4])))
keep("no bias", lstm_forward(x, h, c, w[0], w[1]))
''',
    "08_training": '''
from lstmlib import optim
from lstmlib.data import adding_problem
x, y = adding_problem(4, 7, rng)
keep("data", (x, y))
for kind in ("LSTM", "GRU", "RNN"):
    r = np.random.default_rng(5)
    model = lstmlib.SequenceModel(getattr(lstmlib, kind)(2, 6, rng=r), lstmlib.Linear(6, 1, rng=r))
    for opt in (optim.Adam(model.params, lr=0.01), lstmlib.SGD(model.params, lr=0.1)):
        pred = model.forward(x)
        keep(kind + ".forward", pred)
        keep(kind + ".backward", model.backward(pred - y))
        opt.step(model.grads)
        keep(kind + ".params", model.params)
''',
    "09_performance": '''
from lstmlib.lstm import lstm_step_forward
x, h, c = (rng.standard_normal((2, 3)), rng.standard_normal((2, 4)),
           rng.standard_normal((2, 4)))
w = (rng.standard_normal((16, 3)), rng.standard_normal((16, 4)),
     rng.standard_normal(16), rng.standard_normal(16))
keep("step", lstm_step_forward(x, h, c, *w))
''',
    "10_attention": '''
from lstmlib.attention import AttentionCache
keep("cache", AttentionCache._fields)
''',
    "11_tbptt": '''
from lstmlib.rnn import rnn_backward, rnn_forward
x, h0 = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 4))
w = (rng.standard_normal((4, 3)), rng.standard_normal((4, 4)),
     rng.standard_normal(4), rng.standard_normal(4))
out, h_n, cache = rnn_forward(x[2:], h0, *w, nonlinearity="relu")
keep("forward", (out, h_n))
keep("backward", rnn_backward(rng.standard_normal((4, 2, 4)), None, cache))
''',
    "12_parallel_scan": '''
from lstmlib.activations import sigmoid
keep("sigmoid", sigmoid(rng.standard_normal((3, 4)).astype(np.float32)))
''',
}
COMPUTE = '''
import numpy as np
import lstmlib
rng = np.random.default_rng(0)
result = {}
def keep(label, value):
    if isinstance(value, dict):
        for k in sorted(value):
            keep(f"{label}.{k}", value[k])
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            keep(f"{label}[{i}]", v)
    elif value is not None:
        result[label] = np.asarray(value)
'''


def _compute(code):
    ns = {}
    exec(COMPUTE + code, ns)
    return ns["result"]


@pytest.mark.parametrize("assignment", sorted(SAME))
def test_what_is_handed_out_computes_what_the_package_computes(editions, assignment,
                                                               tmp_path):
    out = tmp_path / "edition.npz"
    proc = _python(COMPUTE + textwrap.dedent(SAME[assignment])
                   + f"\nnp.savez({os.fspath(out)!r}, **result)\n", editions[assignment])
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = _compute(textwrap.dedent(SAME[assignment]))       # the real package
    with np.load(out) as got:
        assert sorted(got.files) == sorted(expected)
        for k in expected:
            assert got[k].dtype == expected[k].dtype, k
            np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_lstm_forward_of_exercise_7_takes_no_reverse(editions, tmp_path):
    """With reverse=True lstm_forward would compute the backward direction
    exercise 7 asks for: the edition's has no such argument, and without it
    returns what the real one returns with reverse=False."""
    code = '''
from lstmlib.lstm import lstm_forward
import inspect
x, h, c = (rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 4)),
           rng.standard_normal((2, 4)))
w = (rng.standard_normal((16, 3)), rng.standard_normal((16, 4)),
     rng.standard_normal(16), rng.standard_normal(16))
refused = []
for call in (lambda: lstm_forward(x, h, c, *w, reverse=True),
             lambda: lstm_forward(x, h, c, *w, None, True),
             lambda: lstm_forward(x, h, c, *w, reverse=False)):
    try:
        call()
    except TypeError as exc:
        refused.append(str(exc))
assert len(refused) == 3, refused
assert "reverse" not in inspect.signature(lstm_forward).parameters
keep("forward", lstm_forward(x, h, c, *w, lengths=np.array([5, 3])))
'''
    out = tmp_path / "edition.npz"
    proc = _python(COMPUTE + code + f"\nnp.savez({os.fspath(out)!r}, **result)\n",
                   editions["07_bidirectional"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    from lstmlib.lstm import lstm_forward
    rng = np.random.default_rng(0)
    x, h, c = (rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 4)),
               rng.standard_normal((2, 4)))
    w = (rng.standard_normal((16, 3)), rng.standard_normal((16, 4)),
         rng.standard_normal(16), rng.standard_normal(16))
    out_ref, (h_ref, c_ref), cache = lstm_forward(x, h, c, *w, lengths=np.array([5, 3]))
    with np.load(out) as got:
        np.testing.assert_array_equal(got["forward[0]"], out_ref)
        np.testing.assert_array_equal(got["forward[1][0]"], h_ref)
        np.testing.assert_array_equal(got["forward[1][1]"], c_ref)
        np.testing.assert_array_equal(got["forward[2][6]"], cache.tanh_cs)
        assert not got["forward[2][11]"] and not cache.reverse


# ---------------------------------------------------------------------------
# a wrong manifest fails when the edition is built

def _with(monkeypatch, assignment, **changes):
    a = dataclasses.replace(manifest.ASSIGNMENTS[assignment], **changes)
    monkeypatch.setitem(manifest.ASSIGNMENTS, assignment, a)


@pytest.mark.parametrize("assignment, changes, names", [
    # a graded reference handed out as such
    ("05_lstm_sequence", {"hands_out": {"lstmlib.lstm": ("lstm_step_forward", "lstm_forward")}},
     ["lstmlib.lstm.lstm_forward", "grades"]),
    # one whose closure holds a graded reference (the cell calls lstm_forward)
    ("05_lstm_sequence", {"hands_out": {"lstmlib.lstm": ("LSTMCache", "_cell_forward")}},
     ["lstmlib.lstm._cell_forward", "lstmlib.lstm.lstm_forward", "grades"]),
    ("05_lstm_sequence", {"hands_out": {"lstmlib.lstm": ("CELL",)}},
     ["lstmlib.lstm.CELL", "05_lstm_sequence withholds it"]),
    ("05_lstm_sequence", {"hands_out": {"lstmlib": ("LSTM",)}},
     ["lstmlib.LSTM", "lstmlib.layers.LSTM", "lstmlib.bidirectional"]),
    # what the assignment withholds
    ("08_training", {"hands_out": {"lstmlib": ("SequenceModel", "train")}},
     ["lstmlib.train", "08_training withholds it"]),
    ("08_training", {"hands_out": {"lstmlib.tbptt": ("train_tbptt",)}},
     ["lstmlib.tbptt", "withholds"]),
    # what no graded kernel holds
    ("03_gradient_norms", {"hands_out": {"lstmlib": ("LSTM",), "lstmlib.analysis":
                                         ("input_gradient_norms",)}},
     ["lstmlib.analysis.input_gradient_norms", "no graded kernel holds"]),
    ("01_rnn_forward", {"hands_out": {"lstmlib": ("from_torch",)}},
     ["lstmlib.from_torch", "lstmlib.interop", "no graded kernel holds"]),
    ("01_rnn_forward", {"hands_out": {"lstmlib.kernels.numba_cpu": ("lstm_gates_forward",)}},
     ["lstmlib.kernels", "no graded kernel holds"]),
])
def test_a_manifest_handing_out_a_reference_is_refused(monkeypatch, tmp_path, assignment,
                                                       changes, names):
    _with(monkeypatch, assignment, **changes)
    with pytest.raises(ValueError, match="hands_out of") as e:
        kernel_edition.build(assignment, tmp_path / "edition")
    for name in names:
        assert name in str(e.value), str(e.value)
    assert not (tmp_path / "edition" / "lstmlib").exists()


@pytest.mark.parametrize("changes, match", [
    ({"hands_out": {"lstmlib.lstm": ("no_such_name",)}}, "has no top-level name 'no_such_name'"),
    ({"hands_out": {"lstmlib.no_such_module": ("x",)}}, "no such module"),
    ({"hands_out": {"lstmlib.lstm": "lstm_step_forward"}}, "expected a tuple of names"),
    ({"pins": {"lstmlib.lstm.step_cache": {"t": 0}}},
     "expected functions it hands out"),
    ({"pins": {"lstmlib.lstm.lstm_step_forward": {"no_such_argument": 1}}},
     "expected an argument of lstm_step_forward"),
])
def test_a_malformed_manifest_entry_is_refused(monkeypatch, tmp_path, changes, match):
    _with(monkeypatch, "05_lstm_sequence", **changes)
    with pytest.raises(ValueError, match=match):
        kernel_edition.build("05_lstm_sequence", tmp_path / "edition")


def test_an_edition_whose_code_passes_a_pinned_argument_is_refused(monkeypatch, tmp_path):
    """The LSTM cell's _cell_forward calls lstm_forward(..., reverse=reverse):
    handed out beside 07's pinned lstm_forward, it would raise a TypeError in
    the student's kernel; the build says so instead."""
    _with(monkeypatch, "07_bidirectional",
          hands_out={"lstmlib.lstm": ("lstm_forward", "_cell_forward")})
    with pytest.raises(ValueError, match="passes reverse to lstmlib.lstm.lstm_forward, "
                                         "whose edition has no reverse"):
        kernel_edition.build("07_bidirectional", tmp_path / "edition")


# ---------------------------------------------------------------------------
# the folder: deterministic, reused, never written over something else

def test_build_is_deterministic_and_reuses_its_folder(tmp_path):
    first = kernel_edition.build("08_training", tmp_path / "a")
    second = kernel_edition.build("08_training", tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    stamp = json.loads((first / kernel_edition.MARKER).read_text())
    assert stamp["assignment"] == "08_training"
    assert stamp["sha256"] == kernel_edition.digest(kernel_edition.edition_files("08_training"))
    # the same edition again: the folder is kept as it is
    model = first / "lstmlib" / "model.py"
    written = model.stat().st_mtime_ns
    assert kernel_edition.build("08_training", first) == first
    assert model.stat().st_mtime_ns == written
    # unless what it holds changed: a file planted or changed is not kept
    planted = first / "lstmlib" / "losses.py"
    planted.write_text("def mse(pred, target):\n    return 0.0\n")
    model.write_text(model.read_text() + "\nLEAK = 1\n")
    kernel_edition.build("08_training", first)
    assert not planted.exists() and "LEAK" not in model.read_text()
    # another assignment's edition replaces it
    kernel_edition.build("05_lstm_sequence", first)
    assert not model.exists()
    assert json.loads((first / kernel_edition.MARKER).read_text())["assignment"] == \
        "05_lstm_sequence"


def test_build_refuses_a_folder_holding_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="dest: expected an empty folder or an edition"):
        kernel_edition.build("01_rnn_forward", tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "lstmlib").exists()
    with pytest.raises(ValueError, match="assignment: expected one of"):
        kernel_edition.build("11_nothing", tmp_path / "new")


def test_packages_each_kernel_needs():
    for a in NAMES:
        got = kernel_edition.packages(a)
        assert got[0] == "numpy" and "torch" not in got and len(set(got)) == len(got)
    assert "matplotlib" in kernel_edition.packages("03_gradient_norms")
    assert "numba" in kernel_edition.packages("09_performance")
    assert kernel_edition.packages("05_lstm_sequence") == ("numpy",)


def test_the_edition_holds_no_torch_and_no_grader(editions):
    """No file of any edition imports torch or the grader's side."""
    for a, folder in editions.items():
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [n.name for n in node.names]
                elif isinstance(node, ast.ImportFrom):
                    mods = [("." * node.level) + (node.module or "")]
                else:
                    continue
                for m in mods:
                    assert not m.startswith("torch") and "grading" not in m, (a, path, m)


# ---------------------------------------------------------------------------
# the same, inside the real grading sandbox: what the box holds, not a hook

IN_THE_BOX = '''
import importlib, json, os, sys
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"        # no GPU here: 09's launches simulated
cells, refused = json.loads(sys.stdin.read())
ok, missing = 0, []
ns = {"__name__": "__main__"}
for src, imports in cells:
    for stmt in imports:
        exec(stmt, {})
        ok += 1
    try:
        exec(compile(src, "<cell>", "exec"), ns)
    except (NotImplementedError, NameError) as exc:
        missing.append(repr(exc))
imported = []
for stmt in refused:
    try:
        exec(stmt, {})
        imported.append(stmt)
    except ImportError:
        pass
# without the edition's import hook, torch and the grader are still absent
sys.meta_path[:] = [f for f in sys.meta_path
                    if type(f).__module__.startswith(("_frozen", "importlib"))]
for name in ("torch", "lstmlib.grading", "lstmlib.analysis", "lstmlib.kernels"):
    sys.modules.pop(name, None)
    try:
        importlib.import_module(name)
        imported.append(name + " (no hook)")
    except ImportError:
        pass
print(json.dumps({"imports": ok, "blank": missing, "imported": imported,
                  "lstmlib": sorted(os.listdir(os.path.dirname(
                      importlib.import_module("lstmlib").__file__))),
                  "course": sorted(os.listdir(TREE)) if os.path.isdir(TREE) else None}))
'''


@pytest.mark.parametrize("assignment", NAMES)
def test_inside_its_sandbox(assignment, tmp_path):
    """In the box a graded kernel of ``assignment`` runs in: every import of
    the released notebook succeeds and its cells run; the graded references,
    lstmlib.grading and torch fail to import, the import hook removed too
    (they are not in the box); the repository is not there."""
    from lstmlib.grading import sandbox
    ok, why = sandbox.probe()
    if not ok:
        pytest.skip(f"the sandbox cannot run here: {why}")
    dest = tmp_path / "edition"
    python_path, distributions = sandbox.kernel_contents(assignment, dest)
    os.chmod(tmp_path, 0o755)
    cells = [(src, _imports(src)) for src, meta in _cells(assignment, "exercises")
             if not meta.get("grade")]
    stdin = json.dumps([cells, _refused_statements(assignment)]).encode()
    proc = sandbox.run_python(IN_THE_BOX.replace("TREE", repr(str(ROOT))), stdin,
                              distributions=distributions, python_path=python_path,
                              timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert report["imports"] >= 2, report
    assert report["imported"] == [], report["imported"]
    # the package the kernel imports is the edition, file for file
    assert report["lstmlib"] == sorted(os.listdir(dest / "lstmlib")), report["lstmlib"]
    assert "grading" not in report["lstmlib"]
    # of the repository, only the virtualenv's parts the box maps (at their paths)
    assert report["course"] in (None, [".venv"]), report["course"]
    for blank in report["blank"]:
        assert "NotImplementedError" in blank or "is not defined" in blank, blank
