"""Trusted checks of the performance exercise (09_performance/kernels).

The graded kernel hands over plain data: what Numba says about the
student's function (a dispatcher? object mode? its nopython signatures)
and what the function returns on inputs drawn here; the CUDA kernel is
launched there on inputs drawn here and h, c come back. Values are
compared here with the numpy reference. The one judgement that still
trusts the kernel is the compilation report (dispatcher type, object mode,
signatures): a compiled function is not plain data, so only numba's own
description of it can cross.

The messages are those of ``lstmlib.kernels.performance_checks``, which runs
the same checks at home.
"""
from __future__ import annotations


import numpy as np

from . import checks
from ._core import compare, fail, lstm_unit_cause

# (name, B, D, H, dtype, bias scale) per case: what they test is fixed,
# the numbers are drawn at each grading
_STEP_CASES = {
    "visible": [("B=2, D=3, H=4, float64", 2, 3, 4, "float64", 1.0)],
    "hidden": [("B=1, D=1, H=1, float64", 1, 1, 1, "float64", 1.0),
               ("B=3, D=5, H=6, float32", 3, 5, 6, "float32", 1.0),
               ("B=2, D=4, H=3, zero bias, float64", 2, 4, 3, "float64", 0.0)],
}
_KERNEL_CASES = {
    "visible": [("B=4, H=8, float64", 4, 8, "float64")],
    "hidden": [("B=3, H=5 (not a multiple of the block), float64", 3, 5, "float64"),
               ("B=2, H=16, float32", 2, 16, "float32")],
}
BLOCK = (4, 8)


class _KernelPart:
    names = ("lstm_step_forward", "lstm_forward", "LSTMCell", "LSTM")
    wrap = None

    def __init__(self, label):
        self.label = label


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _step_case(seed, B, D, H, dt, bscale):
    from ..lstm import lstm_step_forward
    rng = checks._rng(seed)
    x = rng.standard_normal((B, D)).astype(dt)
    h = rng.standard_normal((B, H)).astype(dt)
    c = rng.standard_normal((B, H)).astype(dt)
    w_ih = (0.6 * rng.standard_normal((4 * H, D))).astype(dt)
    w_hh = (0.6 * rng.standard_normal((4 * H, H))).astype(dt)
    b_ih = (bscale * rng.standard_normal(4 * H)).astype(dt)
    b_hh = (bscale * rng.standard_normal(4 * H)).astype(dt)
    (h1, c1), _ = lstm_step_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
    args = (x, h, c, np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih + b_hh)
    return args, (h1, c1)


def _kernel_case(seed, B, H, dt):
    rng = checks._rng(seed)
    a = (1.5 * rng.standard_normal((B, 4 * H))).astype(dt)
    c_prev = rng.standard_normal((B, H)).astype(dt)
    i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (a, c_prev), (h.astype(dt), c.astype(dt))


def _kernel_raised(where, msg):
    hint = ""
    if "index" in msg.lower() and "bounds" in msg.lower():
        hint = (" Likely cause: threads outside the (B, H) array: "
                "the grid is rounded up to whole blocks, so return "
                "early when b >= B or k >= H.")
    return f"{where}: the kernel raised {msg}{hint}"


def _pair(where, out, what="(h, c)"):
    if not isinstance(out, tuple) or len(out) != 2:
        fail(f"{where}: expected the tuple {what}, received {type(out).__name__}")
    return out


def fused_step(fn, which="visible"):
    """Part A: the fused Numba CPU LSTM step."""
    where = "Part A (lstm_step_fused)"
    part = _KernelPart(where)
    if which not in _STEP_CASES:
        fail(f"which: expected 'visible' or 'hidden', received {which!r}")
    for k, (name, B, D, H, dt, bscale) in enumerate(_STEP_CASES[which]):
        w = f"{where}, case {name}"
        args, (h_exp, c_exp) = _step_case(4000 + 10 * k + (which == "hidden"), B, D, H, dt,
                                          bscale)
        reply = checks._ask(w, part, "numba_step", [fn], {"args": list(args)})
        if not isinstance(reply, dict) or not isinstance(reply.get("info"), dict):
            fail(f"{w}: the kernel's report is not readable")
        info = reply["info"]
        if not info.get("dispatcher"):
            fail(f"{where}: lstm_step_fused is a {info.get('type')}, not a Numba "
                 f"function: decorate it with @njit (and check that "
                 f"NUMBA_DISABLE_JIT is not set).")
        if info.get("forceobj"):
            fail(f"{where}: lstm_step_fused asks for object mode (forceobj=True); "
                 f"use @njit so that it compiles to machine code.")
        if not info.get("nopython_signatures"):
            fail(f"{w}: lstm_step_fused was not compiled in nopython mode "
                 f"(it fell back to object mode).")
        out = _pair(w, reply.get("out"))
        compare(w, "h", out[0], h_exp, lstm_unit_cause(H))
        compare(w, "c", out[1], c_exp, lstm_unit_cause(H))


def gates_kernel(kernel, which="visible"):
    """Part B: the CUDA gate kernel (in the simulator without a GPU)."""
    where = "Part B (lstm_gates_kernel)"
    part = _KernelPart(where)
    if which not in _KERNEL_CASES:
        fail(f"which: expected 'visible' or 'hidden', received {which!r}")
    for k, (name, B, H, dt) in enumerate(_KERNEL_CASES[which]):
        w = f"{where}, case {name}"
        (a, c_prev), (h_exp, c_exp) = _kernel_case(4100 + 10 * k + (which == "hidden"),
                                                   B, H, dt)
        reply = checks._ask(w, part, "cuda_gates", [kernel],
                            {"a": a, "c_prev": c_prev, "block": list(BLOCK)},
                            raised=lambda msg, w=w: _kernel_raised(w, msg))
        if not isinstance(reply, dict) or not isinstance(reply.get("info"), dict):
            fail(f"{w}: the kernel's report is not readable")
        if not reply["info"].get("kernel"):
            fail(f"{where}: lstm_gates_kernel is a {reply['info'].get('type')}, not a "
                 f"CUDA kernel: decorate it with @cuda.jit.")
        h, c = _pair(w, reply.get("out"))
        compare(w, "h", h, h_exp, lstm_unit_cause(H))
        compare(w, "c", c, c_exp, lstm_unit_cause(H))


__all__ = ["fused_step", "gates_kernel", "BLOCK"]
