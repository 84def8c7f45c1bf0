"""The checks of 01_rnn_forward."""

import numpy as np

from ._compare import same_values
from ._engine import _Case, _check_returns, _Part, _PARTS, _rnn_inputs, _spec_part

# the cases of a vanilla RNN step, shared by 01 and 02: (name, seed, B, D, H,
# nonlinearity, bias, dtype)
_RNN_STEP_SPECS_VISIBLE = [("B=3, D=4, H=5, tanh", 1, 3, 4, 5, "tanh", True, "float64")]
_RNN_STEP_SPECS_HIDDEN = [
    ("B=1, D=3, H=2, relu", 2, 1, 3, 2, "relu", True, "float64"),
    ("B=4, D=5, H=5, tanh", 3, 4, 5, 5, "tanh", True, "float64"),
    ("B=2, D=3, H=4, no biases", 4, 2, 3, 4, "tanh", False, "float64"),
    ("B=2, D=3, H=3, float32", 5, 2, 3, 3, "tanh", True, "float32"),
]


def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import rnn
    step = rnn.rnn_step_forward
    seqf = rnn.rnn_forward
    names = ("rnn_step_forward", "rnn_forward", "rnn_step_backward", "rnn_backward")

    def step_hyps(x, h, w_ih, w_hh, b_ih, b_hh, nl):
        hy = []
        other = "relu" if nl == "tanh" else "tanh"
        if b_ih is not None:
            hy.append(("the biases are missing (add b_ih and b_hh).",
                       (step(x, h, w_ih, w_hh, None, None, nl)[0],)))
            hy.append(("b_hh is missing: PyTorch's RNN has two biases, add both "
                       "b_ih and b_hh.",
                       (step(x, h, w_ih, w_hh, b_ih, b_hh * 0, nl)[0],)))
            hy.append(("b_ih is missing: PyTorch's RNN has two biases, add both "
                       "b_ih and b_hh.",
                       (step(x, h, w_ih, w_hh, b_ih * 0, b_hh, nl)[0],)))
        hy.append(("w_hh is used transposed: the recurrent term is "
                   "h_prev @ w_hh.T (w_hh has shape (H, H), rows = outputs).",
                   (step(x, h, w_ih, w_hh.T.copy(), b_ih, b_hh, nl)[0],)))
        if w_ih.shape[0] == w_ih.shape[1]:
            hy.append(("w_ih is used transposed: the input term is x @ w_ih.T.",
                       (step(x, h, w_ih.T.copy(), w_hh, b_ih, b_hh, nl)[0],)))
        hy.append((f"the nonlinearity is {other} but this case asks for {nl}: "
                   f"honour the nonlinearity argument.",
                   (step(x, h, w_ih, w_hh, b_ih, b_hh, other)[0],)))
        a = x @ w_ih.T + h @ w_hh.T
        if b_ih is not None:
            a = a + b_ih + b_hh
        hy.append(("no nonlinearity is applied to the pre-activation.", (a,)))
        hy.append(("sigmoid is used instead of " + nl + ".",
                   ((0.5 * (1 + np.tanh(0.5 * a))).astype(a.dtype),)))
        hy.append(("h_prev is ignored: the recurrent term h_prev @ w_hh.T is "
                   "missing.", (step(x, h * 0, w_ih, w_hh, b_ih, b_hh, nl)[0],)))
        return hy

    def step_case(name, seed, B, D, H, nl="tanh", bias=True, dtype="float64"):
        _, args, (hh, _) = _rnn_inputs(step, 100 + seed, (B, D), H, nl, bias,
                                       dtype)
        return _Case(name, args, {"nonlinearity": nl}, (hh,),
                     step_hyps(*args, nl))

    _PARTS["rnn_step_forward"] = _spec_part(
        "Part A (rnn_step_forward)", names, step_case,
        _RNN_STEP_SPECS_VISIBLE, _RNN_STEP_SPECS_HIDDEN)

    def seq_case(name, seed, T, B, D, H, nl="tanh", bias=True, dtype="float64"):
        _, args, (out, h_n, _) = _rnn_inputs(seqf, seed, (T, B, D), H, nl,
                                             bias, dtype)
        x, h0, w_ih, w_hh, b_ih, b_hh = args
        hy = []
        if b_ih is not None:
            o, hn, _ = seqf(x, h0, w_ih, w_hh, None, None, nl)
            hy.append(("the biases are missing (add b_ih and b_hh).", (o, hn)))
            o, hn, _ = seqf(x, h0, w_ih, w_hh, b_ih, b_hh * 0, nl)
            hy.append(("b_hh is missing (add both biases).", (o, hn)))
        o, hn, _ = seqf(x, h0, w_ih, w_hh.T.copy(), b_ih, b_hh, nl)
        hy.append(("w_hh is used transposed (use h_prev @ w_hh.T).", (o, hn)))
        o, hn, _ = seqf(x, h0 * 0, w_ih, w_hh, b_ih, b_hh, nl)
        hy.append(("h0 is ignored: the first step must start from h0.", (o, hn)))
        other = "relu" if nl == "tanh" else "tanh"
        o, hn, _ = seqf(x, h0, w_ih, w_hh, b_ih, b_hh, other)
        hy.append((f"the nonlinearity argument ({nl}) is not passed on.", (o, hn)))
        if T > 1:
            stale = np.concatenate([step(x[t], h0, w_ih, w_hh, b_ih, b_hh, nl)[0][None]
                                           for t in range(T)])
            hy.append(("the state is not carried from step to step: every step "
                       "starts from h0 instead of the previous step's h.",
                       (stale, stale[-1])))
            shifted = np.concatenate([h0[None], out[:-1]])
            hy.append(("off by one time step: out[t] holds the state before "
                       "step t (store h after computing step t).",
                       (shifted, None)))
            hy.append(("h_n is the state after the first step, not the last.",
                       (out, out[0])))
        hy.append(("h_n should be the state after the last step (out[T-1]), "
                   "not h0.", (out, h0)))
        return _Case(name, args, {"nonlinearity": nl}, (out, h_n), hy)

    _PARTS["rnn_forward"] = _Part(
        "Part B (rnn_forward)", names, {
            "visible": [seq_case("T=5, B=3, D=4, H=5, tanh", 201, 5, 3, 4, 5)],
            "hidden": [
                seq_case("T=1, B=2, D=3, H=4", 202, 1, 2, 3, 4),
                seq_case("T=4, B=1, D=2, H=3, relu", 203, 4, 1, 2, 3, "relu"),
                seq_case("T=3, B=2, D=3, H=3, no biases", 204, 3, 2, 3, 3, bias=False),
                seq_case("T=6, B=2, D=3, H=4, float32", 205, 6, 2, 3, 4, dtype="float32"),
            ]})


def _steps_differing(actual, expected):
    """The time indices t (axis 0) where actual[t] differs from expected[t]."""
    return [t for t in range(expected.shape[0])
            if not same_values(actual[t], expected[t])]


def _forward_time_hint(wrong, actuals, expecteds, matched=False):
    if "out" not in wrong:
        return None
    steps = _steps_differing(actuals[0], expecteds[0])
    if not steps:
        return None
    t0 = steps[0]
    if t0 == 0:
        return (f"out differs from the first time step on (t = {steps}): "
                f"check one step of the computation and the use of h0.")
    return (f"out is right for t < {t0} and first differs at t = {t0}: the "
            f"state passed from step {t0 - 1} to step {t0} is probably wrong.")


def rnn_step_forward(fn, which="visible"):
    """Part A of 01_rnn_forward: ``h, cache = fn(x, h_prev, w_ih, w_hh, b_ih,
    b_hh, nonlinearity=...)``."""
    _check_returns("rnn_step_forward", fn, which, ["h"], ungraded=["cache"])


def rnn_forward(fn, which="visible"):
    """Part B of 01_rnn_forward: ``out, h_n, cache = fn(x, h0, w_ih, w_hh,
    b_ih, b_hh, nonlinearity=...)``."""
    _check_returns("rnn_forward", fn, which, ["out", "h_n"],
                   _forward_time_hint, ["cache"])


# ---------------------------------------------------------------------------
