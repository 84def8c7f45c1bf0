"""Graded checks of the performance exercise (09_performance/kernels),
imported by its test cells as
``from lstmlib.kernels import performance_checks as checks``.

The first cell of the notebook calls :func:`prepare`, which computes every
input and expected value with the numpy reference (:mod:`lstmlib.lstm`)
before any student code runs and freezes them. Then

* :func:`fused_step(fn, which)` checks the student's Numba CPU step: it must
  be a Numba dispatcher compiled in nopython mode (not a plain Python
  function, not object mode) and agree with the reference;
* :func:`gates_kernel(kernel, which)` launches the student's CUDA gate kernel
  (in the simulator without a GPU) and checks h and c.

``which`` is ``"visible"`` (the self-check cell) or ``"hidden"`` (graded
only). Failures raise an AssertionError naming what differs and the likely
cause. Neither function may call lstmlib's or torch's own LSTM code.
"""

import math

import numpy as np

from ..grading._core import (GradingError, compare, fail, freeze, lstm_unit_cause,
                             thaw)

_FIXTURES = {}

# (name, B, D, H, dtype, bias scale) per case
_STEP_CASES = {
    "visible": [("B=2, D=3, H=4, float64", 2, 3, 4, "float64", 1.0)],
    "hidden": [("B=1, D=1, H=1, float64", 1, 1, 1, "float64", 1.0),
               ("B=3, D=5, H=6, float32", 3, 5, 6, "float32", 1.0),
               ("B=2, D=4, H=3, zero bias, float64", 2, 4, 3, "float64", 0.0)],
}
# kernel cases: (name, B, H, dtype); launched with 4 x 8 threads per block
_KERNEL_CASES = {
    "visible": [("B=4, H=8, float64", 4, 8, "float64")],
    "hidden": [("B=3, H=5 (not a multiple of the block), float64", 3, 5,
                "float64"),
               ("B=2, H=16, float32", 2, 16, "float32")],
}
BLOCK = (4, 8)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def prepare():
    """Compute and freeze the inputs and expected values (run first)."""
    from ..lstm import lstm_step_forward
    rng = np.random.default_rng(2024)
    for which, cases in _STEP_CASES.items():
        for name, B, D, H, dt, bscale in cases:
            x = rng.standard_normal((B, D)).astype(dt)
            h = rng.standard_normal((B, H)).astype(dt)
            c = rng.standard_normal((B, H)).astype(dt)
            w_ih = (0.6 * rng.standard_normal((4 * H, D))).astype(dt)
            w_hh = (0.6 * rng.standard_normal((4 * H, H))).astype(dt)
            b_ih = (bscale * rng.standard_normal(4 * H)).astype(dt)
            b_hh = (bscale * rng.standard_normal(4 * H)).astype(dt)
            (h1, c1), _ = lstm_step_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
            args = (x, h, c, np.ascontiguousarray(w_ih.T),
                    np.ascontiguousarray(w_hh.T), b_ih + b_hh)
            _FIXTURES[("step", which, name)] = freeze((args, (h1, c1)))
    for which, cases in _KERNEL_CASES.items():
        for name, B, H, dt in cases:
            a = (1.5 * rng.standard_normal((B, 4 * H))).astype(dt)
            c_prev = rng.standard_normal((B, H)).astype(dt)
            i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
            g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
            c = f * c_prev + i * g
            h = o * np.tanh(c)
            _FIXTURES[("kernel", which, name)] = freeze(
                ((a, c_prev), (h.astype(dt), c.astype(dt))))


def _cases(kind, which):
    if which not in ("visible", "hidden"):
        fail(f"which: expected 'visible' or 'hidden', received {which!r}")
    if not _FIXTURES:
        fail("the checks were not prepared: run the first cell of the "
             "notebook (it calls checks.prepare()) before the tests.")
    names = [c[0] for c in (_STEP_CASES if kind == "step" else _KERNEL_CASES)[which]]
    return [(n, thaw(_FIXTURES[(kind, which, n)])) for n in names]


def _no_delegation(where, py_func):
    """Refuse functions whose code refers to lstmlib's or torch's objects."""
    code = py_func.__code__
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= set(const.co_names)
    for name in sorted(names):
        obj = py_func.__globals__.get(name)
        mod = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
        if isinstance(mod, str) and mod.split(".")[0] in ("lstmlib", "torch"):
            fail(f"{where}: your function uses {name!r} from {mod}; write the "
                 f"computation yourself (this part scores zero otherwise).")


def fused_step(fn, which="visible"):
    """Check Part A: the fused Numba CPU LSTM step."""
    from numba.core.registry import CPUDispatcher
    where = "Part A (lstm_step_fused)"
    if not isinstance(fn, CPUDispatcher):
        fail(f"{where}: lstm_step_fused is a {type(fn).__name__}, not a Numba "
             f"function: decorate it with @njit (and check that "
             f"NUMBA_DISABLE_JIT is not set).")
    if fn.targetoptions.get("forceobj"):
        fail(f"{where}: lstm_step_fused asks for object mode (forceobj=True); "
             f"use @njit so that it compiles to machine code.")
    _no_delegation(where, fn.py_func)
    for name, (args, (h_exp, c_exp)) in _cases("step", which):
        w = f"{where}, case {name}"
        try:
            out = fn(*args)
        except GradingError:
            raise
        except Exception as e:           # compile errors included
            msg = str(e)
            fail(f"{w}: your function raised {type(e).__name__}: "
                 f"{msg[:600]}{' ...' if len(msg) > 600 else ''}")
        if not fn.nopython_signatures:
            fail(f"{w}: lstm_step_fused was not compiled in nopython mode "
                 f"(it fell back to object mode).")
        if not isinstance(out, tuple) or len(out) != 2:
            fail(f"{w}: expected the tuple (h, c), received "
                 f"{type(out).__name__}")
        H = h_exp.shape[1]
        compare(w, "h", out[0], h_exp, lstm_unit_cause(H))
        compare(w, "c", out[1], c_exp, lstm_unit_cause(H))


def launch(kernel, a, c_prev):
    """Launch ``kernel[grid, BLOCK](a, c_prev, h, c)``; return (h, c)."""
    B, H = c_prev.shape
    h = np.zeros_like(c_prev)
    c = np.zeros_like(c_prev)
    grid = (math.ceil(B / BLOCK[0]), math.ceil(H / BLOCK[1]))
    kernel[grid, BLOCK](a, c_prev, h, c)
    return h, c


def gates_kernel(kernel, which="visible"):
    """Check Part B: the CUDA gate kernel (simulator without a GPU)."""
    where = "Part B (lstm_gates_kernel)"
    if not (hasattr(kernel, "__getitem__") and hasattr(kernel, "py_func")):
        fail(f"{where}: lstm_gates_kernel is a {type(kernel).__name__}, not a "
             f"CUDA kernel: decorate it with @cuda.jit.")
    _no_delegation(where, kernel.py_func)
    for name, ((a, c_prev), (h_exp, c_exp)) in _cases("kernel", which):
        w = f"{where}, case {name}"
        try:
            h, c = launch(kernel, a, c_prev)
        except GradingError:
            raise
        except Exception as e:
            msg = str(e)
            hint = ""
            if "index" in msg.lower() and "bounds" in msg.lower():
                hint = (" Likely cause: threads outside the (B, H) array: "
                        "the grid is rounded up to whole blocks, so return "
                        "early when b >= B or k >= H.")
            fail(f"{w}: the kernel raised {type(e).__name__}: "
                 f"{msg[:400]}{hint}")
        H = h_exp.shape[1]
        compare(w, "h", h, h_exp, lstm_unit_cause(H))
        compare(w, "c", c, c_exp, lstm_unit_cause(H))
