"""Exercise 09_performance judged from its source (lstmlib.grading.checks.performance).

The grader reads the cell that defines each graded function, checks it
statically, then compiles it with its own Numba (or the CUDA simulator) in
a fresh process holding numpy, numba and llvmlite only. Here: what the
static check accepts and refuses (instant), the solution graded through the
real sandbox (``run_python``, bubblewrap) with full marks, a function that
Numba cannot compile scoring zero with Numba's message, the self-check at
home (the function's cell found through ``linecache``), and the hostile
builders of tests/hostile/real.py for 09 scoring zero. The mistake bank
keeps its scores (slow: one compilation per mistake); the end-to-end
scores through the instructor's CLI are in
tests/grading/test_grading_pipeline.py::test_assignment_scores.
"""

import copy
from pathlib import Path

import pytest

from lstmlib.grading import assignments, checks, sandbox
from lstmlib.grading.checks import performance as kernel_parts
from lstmlib.grading.checks._compare import GradingError
from tests import mistakes
from tests.hostile import real as hostile_real
from tests.notebooks import cell as _notebook_cell
from tests.notebooks import load as _load
from tests.notebooks import nbgrader_meta as _meta
from tests.notebooks import source as _src

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.performance

A = "09_performance"
SOLUTION = ROOT / "solutions" / A / "kernels.ipynb"
RELEASE = ROOT / "exercises" / A / "kernels.ipynb"
SANDBOX_OK, _ = sandbox.probe()


def _cell(nb, grade_id):
    return _src(_notebook_cell(nb, grade_id))


SOL = _load(SOLUTION)
STEP = _cell(SOL, "lstm_step_fused")
KERNEL = _cell(SOL, "lstm_gates_kernel")
SETUP = _cell(SOL, "setup")


class Handle:
    """What trusted.py hands a check: the function's name and the sources of
    the code cells that ran before the test cell. ``at_home``: the plain
    process of the self-checks instead of the box."""

    def __init__(self, name, cells, at_home=not SANDBOX_OK):
        self.name = name
        self.cells = tuple(cells)
        self.at_home = at_home


def _before(nb, grade_id):
    """The code cells (not test cells) before test cell ``grade_id``, as
    trusted.py records them."""
    out = []
    for c in nb["cells"]:
        if _meta(c).get("grade_id") == grade_id:
            return out
        if c["cell_type"] == "code" and not _meta(c).get("grade"):
            out.append(_src(c))
    raise ValueError(grade_id)


def score(nb, salt=7, at_home=not SANDBOX_OK, parts="AB"):
    """The points the grader's checks give notebook ``nb`` (a dict) in
    ``parts``, and the message of every failed test cell."""
    a = assignments.ASSIGNMENTS[A]
    checks.prepare(A, salt=salt)
    total, failed = 0.0, {}
    try:
        for part in a.parts:
            if part.letter not in parts:
                continue
            check = checks.check_function(A, part)
            for which, (gid, points, _) in (("visible", part.visible),
                                            ("hidden", part.hidden)):
                handles = [Handle(f, _before(nb, gid), at_home) for f in part.functions]
                try:
                    check(*handles, which)
                except AssertionError as exc:
                    failed[gid] = str(exc)
                else:
                    total += points
    finally:
        checks.prepare(A)
    return total, failed


def _refused(cells, name, part, match):
    with pytest.raises(kernel_parts.Refused, match=match):
        kernel_parts.graded_module([SETUP, *cells], name, part)


# ---------------------------------------------------------------------------
# the static check

def test_the_solution_reduces_to_its_definitions_and_the_allowed_imports():
    source, helpers = kernel_parts.graded_module([SETUP, STEP], "lstm_step_fused", "A")
    assert helpers == {}
    assert "@njit" not in source and "def lstm_step_fused(" in source
    assert "lstmlib" not in source and "os.environ" not in source
    # the definition stays at its lines of the cell (numba's messages name them)
    lines = source.splitlines()
    k = next(i for i, ln in enumerate(STEP.splitlines()) if ln.startswith("def "))
    assert lines[k] == STEP.splitlines()[k]
    assert "import numpy as np" in lines and "from numba import njit as njit" in lines
    source, _ = kernel_parts.graded_module([SETUP, KERNEL], "lstm_gates_kernel", "B")
    assert "@cuda.jit" not in source and "def lstm_gates_kernel(" in source


ACCEPTED_A = {
    "@numba.njit": STEP.replace("@njit\n", "import numba\n\n\n@numba.njit\n"),
    "@jit(nopython=True)": STEP.replace("@njit\n", "from numba import jit\n\n\n"
                                                   "@jit(nopython=True)\n"),
    "@njit(parallel=True, fastmath=True) with prange":
        STEP.replace("@njit\n", "from numba import prange\n\n\n"
                                "@njit(parallel=True, fastmath=True)\n")
            .replace("for b in range(B):", "for b in prange(B):"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED_A))
def test_accepted_decorators(case):
    source, _ = kernel_parts.graded_module([SETUP, ACCEPTED_A[case]], "lstm_step_fused", "A")
    assert "@" not in source.split("def lstm_step_fused")[0]


def test_helpers_of_the_cell_are_kept_and_compiled_by_the_grader():
    cell = ("EPS = 1e-30\n\n\ndef _sig(v):\n    return 1.0 / (1.0 + math.exp(-v)) + EPS\n\n\n"
            + STEP.replace("1.0 / (1.0 + math.exp(-a[k]))", "_sig(a[k])")
            + "\n\ndef unrelated():\n    import time\n    return time.time()\n")
    source, helpers = kernel_parts.graded_module([SETUP, cell], "lstm_step_fused", "A")
    assert helpers == {"_sig": "njit"}
    assert "EPS = 1e-30" in source and "unrelated" not in source
    device = ("@cuda.jit(device=True)\ndef _sig(v):\n    return 1.0 / (1.0 + math.exp(-v))\n\n\n"
              + KERNEL.replace("1.0 / (1.0 + math.exp(-a[b, k]))", "_sig(a[b, k])"))
    _, helpers = kernel_parts.graded_module([SETUP, device], "lstm_gates_kernel", "B")
    assert helpers == {"_sig": "device"}
    _refused([device.replace("@cuda.jit(device=True)\n", "")], "lstm_gates_kernel", "B",
             "_sig, called by lstm_gates_kernel, must be a device function")


REFUSED = {
    "no @njit": ([STEP.replace("@njit\n", "")], "A", "has no decorator"),
    "@jit(forceobj=True)": ([STEP.replace("@njit\n", "import numba\n\n\n"
                                                   "@numba.jit(forceobj=True)\n")], "A",
                            "asks for object mode"),
    "@jit(nopython=False)": ([STEP.replace("@njit\n", "from numba import jit\n\n\n"
                                                    "@jit(nopython=False)\n")], "A",
                             "asks for object mode"),
    "a decorator of the student's": ([
        "def fast(f):\n    return f\n\n\n" + STEP.replace("@njit\n", "@fast\n")], "A",
        r"decorated with @fast; the grader accepts @njit"),
    "a plain function with CPUDispatcher rebound": ([
        STEP.replace("@njit\n", "") + "\nimport numba.core.registry\n"
        "numba.core.registry.CPUDispatcher = object\n"], "A", "has no decorator"),
    "the name bound again after its def": ([
        STEP + "\nlstm_step_fused = wrap(lstm_step_fused)\n"], "A", "bound again after its def"),
    "bound again in a later cell": ([STEP, "lstm_step_fused = None\n"], "A",
                                    "bound again after its def"),
    "objmode": ([STEP.replace("    return h, c", "    with numba.objmode():\n"
                                              "        pass\n    return h, c")], "A",
                "contains a with block"),
    "objmode imported": (["from numba import objmode\n" + STEP], "A", "objmode"),
    "lstmlib imported in the cell": ([
        "from lstmlib.lstm import lstm_step_forward\n\n\n@njit\n"
        "def lstm_step_fused(x, h_prev, c_prev, w_ih_t, w_hh_t, bias):\n"
        "    return lstm_step_forward(x, h_prev, c_prev, w_ih_t.T, w_hh_t.T, bias)[0]\n"],
        "A", "delegates to the reference implementation: it uses 'lstm_step_forward' "
             "from lstmlib.lstm"),
    "lstmlib imported in the body": ([STEP.replace(
        "    B, H = h_prev.shape\n",
        "    from lstmlib.kernels import numba_cpu\n    B, H = h_prev.shape\n")], "A",
        "delegates to the reference implementation"),
    "an import in the body": ([STEP.replace("    B, H = h_prev.shape\n",
                                            "    import os\n    B, H = h_prev.shape\n")],
                              "A", "contains an import"),
    "a non-constant default": ([STEP.replace("w_hh_t, bias):", "w_hh_t, bias=np.zeros(4)):")],
                               "A", "is not a constant"),
    "a name from outside": (["TABLE = make_table()\n" + STEP.replace(
        "h = np.empty_like(h_prev)", "h = np.empty_like(TABLE)")], "A", "uses 'TABLE'"),
    "the kernel reads a file": ([KERNEL.replace("    b, k = cuda.grid(2)\n",
                                                "    saved = np.load('/tmp/x.npy')\n"
                                                "    b, k = cuda.grid(2)\n")], "B",
                                r"uses np.load"),
    "the kernel opens a file": ([KERNEL.replace("    b, k = cuda.grid(2)\n",
                                                "    open('/etc/hostname').read()\n"
                                                "    b, k = cuda.grid(2)\n")], "B",
                                "uses 'open'"),
    "the kernel writes a file": ([KERNEL.replace("    b, k = cuda.grid(2)\n",
                                                 "    h.tofile('/tmp/h')\n"
                                                 "    b, k = cuda.grid(2)\n")], "B",
                                 r"uses h\.tofile"),
    "a dunder attribute": ([KERNEL.replace("    b, k = cuda.grid(2)\n",
                                           "    g = a.__class__\n    b, k = cuda.grid(2)\n")],
                           "B", r"uses a\.__class__"),
    "a fake kernel object": (["class Fake:\n    py_func = None\n\n    def __getitem__(self, k):\n"
                              "        return print\n\n\nlstm_gates_kernel = Fake()\n"], "B",
                             "no code cell defines lstm_gates_kernel"),
    "the kernel as a device function": ([KERNEL.replace("@cuda.jit\n",
                                                        "@cuda.jit(device=True)\n")], "B",
                                        "is a device function"),
    "@njit on the CUDA kernel": ([KERNEL.replace("@cuda.jit\n", "@njit\n")], "B",
                                 "the grader accepts @cuda.jit"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_statically(case):
    cells, part, match = REFUSED[case]
    name = "lstm_step_fused" if part == "A" else "lstm_gates_kernel"
    _refused(cells, name, part, match)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="part: expected 'A' or 'B', received 'C'"):
        kernel_parts.graded_module([STEP], "lstm_step_fused", "C")
    with pytest.raises(ValueError, match="cells: expected a sequence of source strings"):
        kernel_parts.graded_module(STEP, "lstm_step_fused", "A")


# ---------------------------------------------------------------------------
# the grader's runs

def test_the_solution_scores_full_marks_through_the_sandbox():
    total, failed = score(SOL, at_home=False)
    assert (total, failed) == (6.0, {})


def test_the_blank_notebook_scores_zero_and_says_why():
    total, failed = score(_load(RELEASE))
    assert total == 0.0
    assert "not written yet (it raises NotImplementedError)" in \
        failed["test_lstm_step_fused_visible"]


def test_a_function_numba_cannot_compile_scores_zero_with_numbas_message():
    cell = STEP.replace("        a[:] = bias\n",
                        "        a[:] = bias + np.einsum('ij->j', w_ih_t)\n")
    with pytest.raises(GradingError, match=r"(?s)does not compile in nopython mode.*"
                                           r"einsum"):
        checks.prepare(A, salt=3)
        try:
            kernel_parts.fused_step(Handle("lstm_step_fused", [SETUP, cell], True), "visible")
        finally:
            checks.prepare(A)


@pytest.mark.slow
def test_a_run_that_dies_fails_the_part_without_showing_its_output():
    """A compiled step that writes far outside its array kills the run:
    both test cells fail with how it ended, nothing of what it printed."""
    cell = STEP.replace("        a[:] = bias\n",
                        "        a[:] = bias\n        print(x)\n"
                        "        for q in range(10 ** 9):\n"
                        "            a[q * 1000003] = 0.0\n")
    checks.prepare(A, salt=3)
    try:
        for which in ("visible", "hidden"):
            with pytest.raises(GradingError, match=r"ended without an answer "
                                                   r"\(killed by signal 11\)$"):
                kernel_parts.fused_step(Handle("lstm_step_fused", [SETUP, cell]), which)
    finally:
        checks.prepare(A)


@pytest.mark.cuda
def test_a_kernel_outside_its_arrays_gets_the_bounds_hint():
    cell = KERNEL.replace("    if b < B and k < H:\n", "    if True:\n")
    checks.prepare(A, salt=3)
    try:
        kernel_parts.gates_kernel(Handle("lstm_gates_kernel", [SETUP, cell], True), "visible")
        with pytest.raises(GradingError, match="return early when b >= B or k >= H"):
            kernel_parts.gates_kernel(Handle("lstm_gates_kernel", [SETUP, cell], True),
                                      "hidden")
    finally:
        checks.prepare(A)


def _student_module(tmp_path, monkeypatch, name, text):
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    return importlib.import_module(name)


def test_the_self_check_at_home_reads_the_cell_of_the_function(tmp_path, monkeypatch):
    """checks.fused_step at home finds the function's cell (here a module
    file, found through linecache as IPython's cells are) and judges it as
    the grader does."""
    from lstmlib.selfcheck import checks as home
    home.prepare(A)
    plain = _student_module(tmp_path, monkeypatch, "student_plain",
                            "import numpy as np\n" + REFUSED["no @njit"][0][0])
    with pytest.raises(AssertionError, match="has no decorator: decorate it with @njit"):
        home.fused_step(plain.lstm_step_fused, "visible")
    with pytest.raises(AssertionError, match="no code cell defines lstm_gates_kernel"):
        home.gates_kernel(object(), "visible")


@pytest.mark.slow
def test_the_self_check_at_home_compiles_the_cell(tmp_path, monkeypatch):
    """The accepted path at home: parallel=True and prange compile (the
    grader's plain njit runs prange as range); NUMBA_DISABLE_JIT in the
    student's process changes nothing."""
    from lstmlib.selfcheck import checks as home
    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")
    cell = ACCEPTED_A["@njit(parallel=True, fastmath=True) with prange"]
    mod = _student_module(tmp_path, monkeypatch, "student_cell",
                          "import math\nimport numpy as np\nfrom numba import njit\n" + cell)
    home.prepare(A)
    home.fused_step(mod.lstm_step_fused, "visible")
    home.fused_step(mod.lstm_step_fused, "hidden")


@pytest.mark.parametrize("attack", sorted(hostile_real.MATCHED_ATTACKS[A]))
def test_hostile_builders_score_zero(attack):
    """The attacks the end-to-end test grades through the CLI, graded here
    by the same checks (each refused before anything runs)."""
    a = assignments.ASSIGNMENTS[A]
    nb, expected, _ = hostile_real.MATCHED_ATTACKS[A][attack](a, _load(RELEASE), SOL)
    total, failed = score(nb)
    assert total == expected == 0.0, failed
    assert len(failed) == 4


def test_dies_is_refused_before_anything_runs():
    """The common attack ``dies`` (its kernel kills the process) is refused
    before anything runs; Part A's cell is the solution's and passes the
    static check (its points are kept: the end-to-end test grades it)."""
    a = assignments.ASSIGNMENTS[A]
    nb, expected, _ = hostile_real.dies(a, _load(RELEASE), copy.deepcopy(SOL))
    assert expected == 3.0
    _refused(_before(nb, "test_lstm_gates_kernel_visible")[1:], "lstm_gates_kernel", "B",
             "contains an import")
    kernel_parts.graded_module(_before(nb, "test_lstm_step_fused_visible"),
                               "lstm_step_fused", "A")


@pytest.mark.slow
@pytest.mark.parametrize("mistake", [m.name for m in mistakes.load(A).MISTAKES])
def test_mistakes_keep_their_scores(mistake):
    """Each mistake edits one part's cell; that part is graded here, the
    other one (the solution's cell, unchanged) keeps its 3 points, as the
    solution's full marks above show."""
    bank = mistakes.load(A)
    m = next(m for m in bank.MISTAKES if m.name == mistake)
    nb = mistakes.apply(SOL, m)
    letter = {"lstm_step_fused": "A", "lstm_gates_kernel": "B"}[m.cell]
    other = "lstm_gates_kernel" if letter == "A" else "lstm_step_fused"
    assert _cell(nb, other) == _cell(SOL, other)
    total, failed = score(nb, parts=letter)
    assert total + 3.0 == m.expected_score, failed
