"""Hostile submissions of the real assignments (every one in the manifest).

Each builder takes the assignment's manifest entry, its blank student
notebook and its solution notebook, and returns ``(notebook, expected
score, review flags)``: the exact score grading must give it and the flags
the instructor's report must show. The attacks:

``rebind``       rebinds everything a kernel can import that a check might
                 use (the self-check modules, lstmlib.grading's checks and
                 helpers, the kernel's harness, numpy's comparisons,
                 builtins) and leaves the answers blank: zero.
``frames``       answers read their callers' frames for expected values and
                 return what they find: zero.
``precompute``   answers return the expected values computed from the
                 package's fixtures (what the checks of lstmlib.grading
                 compute with the notebook's fixed seeds): zero, because
                 the grader draws its cases afresh.
``not_plain``    answers are objects that claim equality, ndarray
                 subclasses, a "pickle bomb" whose unpickling would write a
                 file: zero, and nothing is unpickled.
``dies``         the full solution, except the last graded function, which
                 kills its kernel: the parts before (and after) it keep
                 their points, the submission is graded.
``delegate``     the full solution, except that every function that lstmlib
                 implements calls lstmlib's own: zero for the parts of those
                 functions (the graded kernel's edition of lstmlib does not
                 hold them: the import fails), the rest kept.
``huge``/``slow`` (run where the test course sets short limits) an answer
                 of megabytes; a function that never returns: zero.

And, where the assignment matches (:data:`MATCHED_ATTACKS`), attacks on
what a kernel used to report about itself:

``pasted_training`` (08) build_model loads parameters trained elsewhere
                 (pasted as numbers) and train_step returns 0.0: zero for
                 Parts C and D, the grader trains from its own parameters.
``idle_step``    (08) the same pasted parameters, and a train_step that
                 returns the batch's true loss but changes nothing: zero
                 for Parts C and D.
``pasted_ratios`` (03) the dict ``ratios`` holds the right numbers, pasted,
                 and Parts A-C are blank: zero, the grader runs the
                 experiment with the student's functions.
``closure_gradient`` (02) numerical_gradient returns the analytic gradient
                 from what f's closure holds, without calling f: zero for
                 Part C, f's closure holding no formula.
``fake_compiled`` (09) no Numba, no CUDA, the right numbers: a numpy step
                 with numba's CPUDispatcher rebound to accept anything, an
                 object with ``__getitem__`` and ``py_func`` as the kernel:
                 zero, the grader compiles the cells' source itself.
``object_mode``  (09) the step under ``@numba.jit(forceobj=True)``, a kernel
                 reading its answers from a file: zero.
``objmode``      (09) an @njit step running Python in ``numba.objmode``, a
                 kernel calling lstmlib's own: zero.
"""
from __future__ import annotations

import copy
import re

from lstmlib.grading.assignments import ASSIGNMENTS
from tests.notebooks import cells_with, nbgrader_meta, set_source
from tests.notebooks import source as _source

BOMB_MARK = "/tmp/lstmlib-hostile-unpickled"


def _cells(nb):
    return nb["cells"]


def _graded_functions(a):
    names = []
    for p in a.parts:
        for f in p.functions:
            if f != "ratios" and f not in names:
                names.append(f)
    return names


def _append(nb, name, code):
    """Append ``code`` to the solution cell that defines ``name``."""
    for cell in _cells(nb):
        if nbgrader_meta(cell).get("solution") and re.search(rf"^def {name}\(", _source(cell),
                                                             re.M):
            cell["source"] = _source(cell) + "\n\n" + code + "\n"
            return
    raise ValueError(f"no solution cell defines {name}")


def _insert_after_setup(nb, code):
    for i, cell in enumerate(_cells(nb)):
        if cell["cell_type"] == "code":
            _cells(nb).insert(i + 1, {"cell_type": "code", "execution_count": None,
                                      "metadata": {}, "outputs": [], "source": code})
            return
    raise ValueError("no setup cell")


def _redefine_all(a, blank, body):
    nb = copy.deepcopy(blank)
    for name in _graded_functions(a):
        _append(nb, name, f"def {name}(*args, **kwargs):\n" + body.replace("NAME", name))
    return nb


REBIND = '''\
import builtins, importlib, sys
import numpy as np
import numpy.testing
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: np.True_
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
builtins.abs = lambda v: 0.0
builtins.isinstance = lambda *a: True
def _nothing(*a, **k):
    return None
for modname in ("lstmlib.selfcheck.checks", "lstmlib.grading.checks",
                "lstmlib.grading.checks._compare", "lstmlib.grading.checks.performance",
                "lstmlib.kernels.performance_checks"):
    try:
        mod = importlib.import_module(modname)
    except Exception as exc:
        print("cannot import", modname, type(exc).__name__)
        continue
    for attr in list(vars(mod)):
        if callable(getattr(mod, attr)) and not attr.startswith("__"):
            try:
                setattr(mod, attr, _nothing)
            except Exception:
                pass
try:
    from lstmlib.selfcheck import _harness
    _harness.answer = lambda namespace, request: {"ok": None}
    _harness.run = _nothing
except Exception as exc:
    print("no harness", type(exc).__name__)
'''

FRAMES = '''\
    import sys
    found = None
    frame = sys._getframe(1)
    while frame is not None:
        for key, value in list(frame.f_locals.items()):
            if key in ("expected", "exp", "expecteds", "case", "cases", "reply"):
                found = value
        frame = frame.f_back
    return found
'''

PRECOMPUTE = '''\
    import numpy as np
    from lstmlib.grading import checks as _c
    _c.prepare("ASSIGNMENT")
    def _same(a, b):
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return a.shape == b.shape and np.array_equal(a, b)
        return True
    best = None
    for part in list(_c._PARTS.values()):
        for which in ("visible", "hidden"):
            for case in part.cases[which]:
                inputs = _c.thaw(case.args)
                if not isinstance(inputs, tuple):
                    continue
                exp = _c.thaw(case.expected)
                if len(inputs) == len(args) and all(_same(x, y) for x, y in zip(inputs, args)):
                    return (*exp, None) if isinstance(exp, tuple) else exp
                if best is None and len(inputs) == len(args):
                    best = (*exp, None) if isinstance(exp, tuple) else exp
    return best
'''

POISON = '''\
import numpy as np


class Liar:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __array__(self, *a, **k): return np.zeros(3)
    def tolist(self): return [0.0]


class Sneaky(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
    def tolist(self): return [0.0]


class Bomb:
    def __reduce__(self):
        return (open, ("BOMB_MARK", "w"))


def _poison(value, _k=[0]):
    _k[0] += 1
    if isinstance(value, np.ndarray):
        return value.view(Sneaky) if _k[0] % 2 else Bomb()
    if isinstance(value, tuple):
        return tuple(_poison(v) for v in value)
    if isinstance(value, list):
        return [_poison(v) for v in value]
    return Liar()


def _poisoned(fn):
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        for arg in args:                       # arrays changed in place, too
            params = getattr(arg, "params", None)
            if isinstance(params, dict):
                for key in list(params):
                    params[key] = np.asarray(params[key]).view(Sneaky)
        return _poison(out)
    return wrapper
'''


HUGE = '''\
    import numpy as np
    return (np.zeros(600_000), np.zeros(600_000), None)
'''

SLOW = '''\
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
'''

KILL_BODY = '''\
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)
'''


def _victim(a):
    """The function the ``dies`` attack turns into a killer (the last graded
    function) and the points it costs: every part that calls it (in 03 the
    experiment, run with the student's functions, calls gradient_ratio too)."""
    name = {"08_training": "build_model", "03_gradient_norms": "gradient_ratio"}.get(
        a.name, a.parts[-1].functions[0])
    lost = sum(q.points for q in a.parts if name in q.functions)
    return name, lost


def rebind(a, blank, solution):
    nb = copy.deepcopy(blank)
    _insert_after_setup(nb, REBIND)
    return nb, 0.0, ["builtins", "patching numpy checks"]


def frames(a, blank, solution):
    return _redefine_all(a, blank, FRAMES), 0.0, ["frame inspection"]


def precompute(a, blank, solution):
    return _redefine_all(a, blank, PRECOMPUTE.replace("ASSIGNMENT", a.name)), 0.0, []


def not_plain(a, blank, solution):
    """The honest answers, each array turned into an ndarray subclass that
    claims equality (same numbers), an object with its own __eq__, or a
    pickle bomb; arrays changed in place (layer.params) too."""
    nb = copy.deepcopy(solution)
    _insert_after_setup(nb, POISON.replace("BOMB_MARK", BOMB_MARK))
    for name in _graded_functions(a):
        _append(nb, name, f"{name} = _poisoned({name})")
    return nb, 0.0, ["__eq__ override", "ndarray subclass"]


PRINT_MARK = "PRINTED-DURING-A-GRADED-CALL"
PRINTS = '''\
import functools
def _loud(fn):
    @functools.wraps(fn)
    def loud(*args, **kwargs):
        print("MARK", [getattr(v, "shape", v) for v in args][:3])
        return fn(*args, **kwargs)
    return loud
'''


def prints(a, blank, solution):
    """The honest answers, each printing its inputs when called: full marks,
    and nothing printed during a graded call reaches the graded notebook
    (the hidden inputs are not shown)."""
    nb = copy.deepcopy(solution)
    _insert_after_setup(nb, PRINTS.replace("MARK", PRINT_MARK))
    for name in _graded_functions(a):
        _append(nb, name, f"{name} = _loud({name})")
    return nb, a.points, []


def huge(a, blank, solution):
    return _redefine_all(a, blank, HUGE), 0.0, []


def slow(a, blank, solution):
    return _redefine_all(a, blank, SLOW), 0.0, []


def dies(a, blank, solution):
    nb = copy.deepcopy(solution)
    name, lost = _victim(a)
    if a.name == "09_performance":
        code = f"@cuda.jit\ndef {name}(a, c_prev, h, c):\n" + KILL_BODY
    else:
        code = f"def {name}(*args, **kwargs):\n" + KILL_BODY
    _append(nb, name, code)
    return nb, a.points - lost, ["process control"]


def delegated(a):
    """{graded function: "module:function" of lstmlib that implements it}."""
    out = {}
    for name, ref in a.delegation.references:
        out.setdefault(name, ref)
    return out


def delegate(a, blank, solution):
    nb = copy.deepcopy(solution)
    refs = delegated(a)
    for name, ref in refs.items():
        module, function = ref.split(":")
        _append(nb, name, f"def {name}(*args, **kwargs):\n"
                          f"    from {module} import {function} as _reference\n"
                          f"    return _reference(*args, **kwargs)")
    # a graded function whose own code calls a delegating one delegates too
    # (08's train_step calls mse and clip_grad_norm)
    out = set(refs)
    for name in _graded_functions(a):
        body = _definition(solution, name)
        if any(re.search(rf"\b{r}\(", body) for r in refs if r != name):
            out.add(name)
    lost = sum(p.points for p in a.parts if set(p.functions) & out)
    return nb, a.points - lost, []


def _definition(nb, name):
    for cell in _cells(nb):
        if re.search(rf"^def {name}\(", _source(cell), re.M):
            return _source(cell)
    return ""


HARNESS = '''\
import base64, importlib
_refs = REFS
def _reference(name):
    module, function = _refs[name]
    return getattr(importlib.import_module(base64.b64decode(module).decode()), function)
_h = importlib.import_module("lstmlib.selfcheck." + "_harness")
_run = _h.run
def _answered_by_reference(namespace, request, objects=None):
    namespace = dict(namespace)
    for name in request.get("functions", ()):
        if name in _refs:
            try:
                namespace[name] = _reference(name)
            except Exception as exc:
                print("no reference for", name, type(exc).__name__, exc)
    return _run(namespace, request, objects)
_h.run = _answered_by_reference
'''

COPY_BODY = '''\
    import base64, importlib, types
    ref = getattr(importlib.import_module(base64.b64decode(MODULE).decode()), FUNCTION)
    copy = types.FunctionType(ref.__code__, dict(ref.__globals__), ref.__name__,
                              ref.__defaults__, ref.__closure__)
    copy.__kwdefaults__ = ref.__kwdefaults__
    return copy(*args, **kwargs)
'''


def _encoded_references(a):
    """{graded function: (base64 of the lstmlib module, function)}: the names
    appear in no form a reading of the code could resolve."""
    import base64
    out = {}
    for name, ref in delegated(a).items():
        module, function = ref.split(":")
        out[name] = (base64.b64encode(module.encode()).decode(), function)
    return out


def harness(a, blank, solution):
    """The blank notebook and one cell that rebinds the kernel's harness so
    that every call the grader makes is answered by lstmlib's reference:
    zero, the graded kernel holding no reference."""
    nb = copy.deepcopy(blank)
    _insert_after_setup(nb, HARNESS.replace("REFS", repr(_encoded_references(a))))
    return nb, 0.0, ["self-check harness", "dynamic import"]


def reference_copy(a, blank, solution):
    """Graded functions that call FunctionType copies of lstmlib's own (a
    private globals dict, the module's name decoded at run time): zero."""
    nb = copy.deepcopy(blank)
    for name, (module, function) in _encoded_references(a).items():
        _append(nb, name, f"def {name}(*args, **kwargs):\n" +
                COPY_BODY.replace("MODULE", repr(module)).replace("FUNCTION", repr(function)))
    return nb, 0.0, ["code objects", "dynamic import"]


BESIDE = '''\
import glob, json, os
found = sorted(glob.glob(os.path.join(ROOT, "**", "solutions", ASSIGNMENT, "*.ipynb"),
                         recursive=True))
for path in found:
    for cell in json.load(open(path))["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]), globals())
print("read", len(found), "notebooks of the course beside")
'''

MEMORY = '''\
import os, signal, time
children = []
for k in range(CHILDREN):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(EACH)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(15)
        finally:
            os._exit(0)
    children.append(pid)
killed = 0
for pid in children:
    _, status = os.waitpid(pid, 0)
    killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
print(f"memory-attack: {killed} of {len(children)} children killed")
'''

DISK = '''\
import errno, os
for folder in (os.getcwd(), "/tmp"):
    written = 0
    try:
        for k in range(TOO_MUCH // (32 << 20)):      # files under the file-size limit
            with open(os.path.join(folder, f"filler-{k}.bin"), "wb") as fh:
                for _ in range(32):
                    fh.write(b"x" * (1 << 20))
                    written += 1 << 20
    except OSError as exc:
        print(f"disk-attack {folder}: {errno.errorcode.get(exc.errno)} after {written >> 20} MiB")
    else:
        print(f"disk-attack {folder}: wrote {written >> 20} MiB")
'''


def beside(a, blank, solution, root):
    """The blank notebook and a cell that runs the solution cells of every
    notebook of this assignment found under ``root`` (a course folder placed
    beside the graded one): zero, the box showing no other folder."""
    nb = copy.deepcopy(blank)
    _insert_after_setup(nb, BESIDE.replace("ROOT", repr(str(root)))
                        .replace("ASSIGNMENT", repr(a.name)))
    return nb, 0.0, ["file access"]


def memory(a, blank, solution, children=5, each=400 << 20):
    """Forked children that together hold more than the box's memory
    (each under it): zero, the box bounded as a whole."""
    nb = copy.deepcopy(blank)
    _insert_after_setup(nb, MEMORY.replace("CHILDREN", str(children))
                        .replace("EACH", str(each)))
    return nb, 0.0, ["process control"]


def disk(a, blank, solution, too_much=256 << 20):
    """Writes more than the box's disk limit, in its working folder and in
    /tmp: the writes fail (ENOSPC), the grading goes on, zero."""
    nb = copy.deepcopy(blank)
    _insert_after_setup(nb, DISK.replace("TOO_MUCH", str(too_much)))
    return nb, 0.0, ["file access"]


def _trained_parameters(steps=400):
    """An LSTM(2, 16) + Linear(16, 1) trained on the adding problem here,
    outside any grading: {name: nested lists}."""
    import numpy as np

    import lstmlib
    from lstmlib import data, losses, optim
    rng = np.random.default_rng(2024)
    model = lstmlib.SequenceModel(lstmlib.LSTM(2, 16, rng=rng), lstmlib.Linear(16, 1, rng=rng))
    opt = optim.Adam(model.params, lr=0.02)
    for _ in range(steps):
        x, y = data.adding_problem(32, 6, rng)
        _, d = losses.mse(model.forward(x), y)
        model.backward(d)
        optim.clip_grad_norm(model.grads, 1.0)
        opt.step(model.grads)
    return {k: v.tolist() for k, v in model.params.items()}


PASTED_MODEL = '''\
_PASTED = PARAMS


def build_model(rng):
    model = lstmlib.SequenceModel(lstmlib.LSTM(2, 16, rng=rng), lstmlib.Linear(16, 1, rng=rng))
    for key, value in _PASTED.items():
        model.params[key][...] = np.array(value)
    return model, lstmlib.Adam(model.params, lr=0.02)
'''

ZERO_STEP = '''\
def train_step(model, optimizer, x, y, max_norm=1.0):
    return 0.0
'''

IDLE_STEP = '''\
def train_step(model, optimizer, x, y, max_norm=1.0):
    diff = model.forward(x) - y
    return float((diff * diff).mean())
'''


def _lost(a, names):
    return sum(p.points for p in a.parts if set(p.functions) & set(names))


def _pasted(solution, step):
    nb = copy.deepcopy(solution)
    _append(nb, "build_model", PASTED_MODEL.replace("PARAMS", repr(_trained_parameters())))
    _append(nb, "train_step", step)
    return nb


def pasted_training(a, blank, solution):
    """08: parameters trained elsewhere, pasted into build_model, and a
    train_step returning 0.0: Parts C and D score zero, A and B are kept."""
    return _pasted(solution, ZERO_STEP), a.points - _lost(a, ["train_step"]), []


def idle_step(a, blank, solution):
    """08: the pasted parameters and a train_step that reports the batch's
    true loss but makes no update: Parts C and D score zero."""
    return _pasted(solution, IDLE_STEP), a.points - _lost(a, ["train_step"]), []


def pasted_ratios(a, blank, solution):
    """03: the notebook's ``ratios`` holds the right numbers (computed here
    with lstmlib.analysis), Parts A-C are blank: zero."""
    import numpy as np

    import lstmlib
    from lstmlib.analysis import input_gradient_norms
    from lstmlib.grading.checks.gradient_norms import GRADIENT_EXPERIMENT as E
    x = np.random.default_rng(E["x_seed"]).standard_normal((E["T"], 1, E["D"]))
    T, H, near, far = E["T"], E["H"], E["near"], E["far"]
    ratios = {}
    for key, fb in (("rnn", None), ("lstm", 0.0), ("lstm_forget_bias", E["forget_bias"])):
        if fb is None:
            layer = lstmlib.RNN(E["D"], H, rng=np.random.default_rng(E["rnn_seed"]))
        else:
            layer = lstmlib.LSTM(E["D"], H, rng=np.random.default_rng(E["lstm_seed"]))
            layer.params["bias_ih_l0"][H:2 * H] = fb
            layer.params["bias_hh_l0"][H:2 * H] = 0.0
        norms = input_gradient_norms(layer, x)
        ratios[key] = float(norms[T - 1 - far] / norms[T - 1 - near])
    nb = copy.deepcopy(blank)
    cells = cells_with(nb, "experiment")
    if len(cells) != 1:
        raise ValueError(f"{a.name}: expected one cell with grade_id 'experiment'")
    cells[0]["source"] = f"ratios = {ratios!r}\nprint(ratios)\n"
    return nb, 0.0, []


CLOSURE_GRADIENT = '''\
def numerical_gradient(f, x, df=None, h=1e-5):
    # the analytic gradient of tanh(x @ W) from what f's closure holds
    env = dict(zip(f.__code__.co_freevars, (c.cell_contents for c in f.__closure__)))
    W = env["W"]
    y = np.tanh(env["x"] @ W)
    g = (1 - y * y) if df is None else (1 - y * y) * df
    return g @ W.T
'''


def closure_gradient(a, blank, solution):
    """02: numerical_gradient never calls f, it reads f's closure for the
    formula: zero for Part C (f holds values, no formula), A and B kept."""
    nb = copy.deepcopy(solution)
    _append(nb, "numerical_gradient", CLOSURE_GRADIENT)
    return nb, a.points - _lost(a, ["numerical_gradient"]), []


# ---------------------------------------------------------------------------
# exercise 9: what the kernel said about its function (a Numba dispatcher?
# a CUDA kernel?) used to decide; the grader now compiles the cell itself

FAKE_STEP = '''\
import numba.core.registry


def lstm_step_fused(x, h_prev, c_prev, w_ih_t, w_hh_t, bias):
    # plain numpy: no Numba at all
    H = h_prev.shape[1]
    a = x @ w_ih_t + h_prev @ w_hh_t + bias
    s = 1.0 / (1.0 + np.exp(-a))
    c = s[:, H:2 * H] * c_prev + s[:, :H] * np.tanh(a[:, 2 * H:3 * H])
    return (s[:, 3 * H:] * np.tanh(c)).astype(h_prev.dtype), c.astype(c_prev.dtype)


try:    # the numbers from the grader's own reference, where the kernel has it
    from lstmlib.grading.checks.lstm_cell import _lstm_step_np as _grader_step

    def lstm_step_fused(x, h_prev, c_prev, w_ih_t, w_hh_t, bias, _numpy=lstm_step_fused):
        H = h_prev.shape[1]
        try:
            (h, c), _ = _grader_step(x, h_prev, c_prev, w_ih_t.T, w_hh_t.T, bias,
                                     np.zeros_like(bias))
            return h, c
        except Exception:
            return _numpy(x, h_prev, c_prev, w_ih_t, w_hh_t, bias)
except ImportError:
    pass


class _EveryObject(type):
    def __instancecheck__(cls, obj):
        return True


numba.core.registry.CPUDispatcher = _EveryObject("CPUDispatcher", (), {})
lstm_step_fused.targetoptions = {}
lstm_step_fused.nopython_signatures = ["(array(float64, 2d, C), ...)"]
lstm_step_fused.py_func = lambda *args: None
'''

FAKE_KERNEL = '''\
class _FakeKernel:
    """Looks like a CUDA kernel (kernel[grid, block](...), py_func): numpy."""
    py_func = staticmethod(lambda a, c_prev, h, c: None)

    def __getitem__(self, launch):
        def run(a, c_prev, h, c):
            H = c_prev.shape[1]
            s = 1.0 / (1.0 + np.exp(-a))
            c[...] = s[:, H:2 * H] * c_prev + s[:, :H] * np.tanh(a[:, 2 * H:3 * H])
            h[...] = s[:, 3 * H:] * np.tanh(c)
        return run


lstm_gates_kernel = _FakeKernel()
'''

OBJMODE_STEP = '''\
import numba


def _python_step(x, h_prev, c_prev, w_ih_t, w_hh_t, bias):
    H = h_prev.shape[1]
    a = x @ w_ih_t + h_prev @ w_hh_t + bias
    s = 1.0 / (1.0 + np.exp(-a))
    c = s[:, H:2 * H] * c_prev + s[:, :H] * np.tanh(a[:, 2 * H:3 * H])
    return s[:, 3 * H:] * np.tanh(c), c


@njit
def lstm_step_fused(x, h_prev, c_prev, w_ih_t, w_hh_t, bias):
    # compiled, but the work happens in Python, in object mode
    with numba.objmode(h="float64[:, :]", c="float64[:, :]"):
        h, c = _python_step(x, h_prev, c_prev, w_ih_t, w_hh_t, bias)
    return h, c
'''

LSTMLIB_KERNEL = '''\
from lstmlib.kernels.cuda import lstm_gates_kernel as _theirs


@cuda.jit
def lstm_gates_kernel(a, c_prev, h, c):
    _theirs(a, c_prev, h, c)
'''

FILE_KERNEL = '''\
@cuda.jit
def lstm_gates_kernel(a, c_prev, h, c):
    # answers prepared elsewhere, read from a file
    saved = np.load("/tmp/lstm_gates_answers.npy")
    b, k = cuda.grid(2)
    if b < c.shape[0] and k < c.shape[1]:
        h[b, k] = saved[0, b, k]
        c[b, k] = saved[1, b, k]
'''


def fake_compiled(a, blank, solution):
    """09: no Numba, no CUDA, the right numbers: a plain numpy step with
    ``numba.core.registry.CPUDispatcher`` rebound to accept any object, and
    an object with ``__getitem__`` and ``py_func`` as the kernel (scored 6/6
    while the kernel reported what its function was): zero."""
    nb = copy.deepcopy(blank)
    set_source(nb, "lstm_step_fused", FAKE_STEP)
    set_source(nb, "lstm_gates_kernel", FAKE_KERNEL)
    return nb, 0.0, []


def object_mode(a, blank, solution):
    """09: the solution's step under ``@numba.jit(forceobj=True)``, and a
    kernel that reads its answers from a file: zero."""
    nb = copy.deepcopy(solution)
    for cell in _cells(nb):
        src = _source(cell)
        if "@njit\ndef lstm_step_fused" in src:
            cell["source"] = src.replace("@njit\ndef lstm_step_fused",
                                         "import numba\n\n\n@numba.jit(forceobj=True)\n"
                                         "def lstm_step_fused")
    set_source(nb, "lstm_gates_kernel", FILE_KERNEL)
    return nb, 0.0, []


def objmode(a, blank, solution):
    """09: an @njit step whose work runs in Python through ``numba.objmode``,
    and a kernel that calls lstmlib's own: zero."""
    nb = copy.deepcopy(blank)
    set_source(nb, "lstm_step_fused", OBJMODE_STEP)
    set_source(nb, "lstm_gates_kernel", LSTMLIB_KERNEL)
    return nb, 0.0, []


#: every assignment meets these
ATTACKS = {"rebind": rebind, "frames": frames, "precompute": precompute,
           "not_plain": not_plain, "dies": dies, "delegate": delegate,
           "harness": harness, "reference_copy": reference_copy}
#: these need the test course's short limits (one assignment is enough)
LIMIT_ATTACKS = {"huge": huge, "slow": slow, "memory": memory, "disk": disk}
LIMITS_CONFIG = '''
# short limits for the hostile tests
c.GradingSandbox.call_seconds = 5
c.TrustedExecute.max_answer_bytes = 1 << 20
# the box: 1.5 GiB for all its processes together; 64 MiB of /tmp and
# 128 MiB of working folder (the memory and disk attacks go past both)
c.GradingSandbox.memory_bytes = 3 * 512 * 1024**2
c.GradingSandbox.tmp_bytes = 64 * 1024**2
c.GradingSandbox.disk_bytes = 192 * 1024**2
'''


#: attacks on what one assignment's kernel used to report about itself
MATCHED_ATTACKS = {"08_training": {"pasted_training": pasted_training, "idle_step": idle_step},
                   "03_gradient_norms": {"pasted_ratios": pasted_ratios},
                   "02_bptt": {"closure_gradient": closure_gradient},
                   "09_performance": {"fake_compiled": fake_compiled,
                                      "object_mode": object_mode, "objmode": objmode}}


def attacks(name, limits=False):
    """The builders one assignment meets: every assignment's, its own, and
    (``limits``) those needing the short limits."""
    out = dict(ATTACKS, **MATCHED_ATTACKS.get(name, {}), **(LIMIT_ATTACKS if limits else {}))
    if name != "09_performance":        # 09 is compiled from the source: no wrapper
        out["prints"] = prints
    return out


def assignment(name):
    return ASSIGNMENTS[name]
