"""The checks of 04_lstm_cell."""

import numpy as np

from ._compare import thaw, unpack
from ._engine import (_Case, _check_outputs, _check_returns, _draw_inputs,
                      _gate_hint, _graded, LSTM_GATES, _PARTS, _randn, _rng,
                      _run, _sig, _spec_part, _swapped_gates)

_LSTM_TERM_HINTS = {
    "dx": "dx = da @ w_ih with da the (B, 4H) gradient of the pre-activations.",
    "dh_prev": "dh_prev = da @ w_hh.",
    "dc_prev": "dc_prev = dc * f, where dc already includes the path through "
               "h = o * tanh(c): dc + dh * o * (1 - tanh(c)**2).",
    "dw_ih": "dw_ih = da.T @ x.",
    "dw_hh": "dw_hh = da.T @ h_prev.",
    "db_ih": "db_ih = da.sum(axis=0).",
    "db_hh": "db_hh = da.sum(axis=0).",
}


def _lstm_step_np(x, h, c, w_ih, w_hh, b_ih, b_hh, g_act="tanh",
                  ifo_act="sigmoid", out_tanh=True, forget=True):
    """A plain LSTM step with knobs for the typical mistakes."""
    H = h.shape[1]
    a = x @ w_ih.T + h @ w_hh.T
    if b_ih is not None:
        a = a + b_ih + b_hh
    act = _sig if ifo_act == "sigmoid" else np.tanh
    i, f, o = act(a[:, :H]), act(a[:, H:2 * H]), act(a[:, 3 * H:])
    g = np.tanh(a[:, 2 * H:3 * H]) if g_act == "tanh" else _sig(a[:, 2 * H:3 * H])
    c_new = (f * c if forget else c) + i * g
    h_new = o * (np.tanh(c_new) if out_tanh else c_new)
    return h_new, c_new


def _lstm_step_bwd_np(dh, dc, cache, mode):
    x, h_prev, c_prev, i, f, g, o, c, tanh_c, w_ih, w_hh, has_bias = cache
    do = dh * tanh_c
    if mode == "no_tanh_path":
        dc = dc + dh * o
    elif mode == "no_dh_path":
        dc = dc
    else:
        dc = dc + dh * o * (1 - tanh_c ** 2)
    di, df, dg = dc * g, dc * c_prev, dc * i
    dc_prev = dc if mode == "no_f" else dc * f
    dgate = dg * g * (1 - g) if mode == "g_sigmoid" else dg * (1 - g ** 2)
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dgate,
                                do * o * (1 - o)], axis=1)
    db = da.sum(axis=0) if has_bias else None
    return (da @ w_ih, da @ w_hh, dc_prev, da.T @ x, da.T @ h_prev, db, db)


def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import lstm
    step = lstm.lstm_step_forward
    step_b = lstm.lstm_step_backward
    names = ("lstm_step_forward", "lstm_step_backward", "lstm_forward",
             "lstm_backward")

    def inputs(seed, B, D, H, bias, dtype):
        return _draw_inputs(_rng(600 + seed), 4, (B, D), H, bias, dtype, True)

    def fwd_case(name, seed, B, D, H, bias, dtype):
        x, h, c, w_ih, w_hh, b_ih, b_hh = inputs(seed, B, D, H, bias, dtype)
        (hh, cc), _ = step(x, h, c, w_ih, w_hh, b_ih, b_hh)
        hy = []
        G = ("i", "f", "g", "o")
        for p, q in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)):
            (h2, c2), _ = step(x, h, c, *_swapped_gates((w_ih, w_hh, b_ih, b_hh),
                                                        H, 4, p, q))
            hy.append((f"gates {G[p]} and {G[q]} are swapped: the blocks of "
                       f"the pre-activation are in the order i, f, g, o "
                       f"(rows 0:H, H:2H, 2H:3H, 3H:4H).", (h2, c2)))
        hy.append(("wrong gate activation: the candidate g uses sigmoid, it "
                   "must use tanh.",
                   _lstm_step_np(x, h, c, w_ih, w_hh, b_ih, b_hh, g_act="sigmoid")))
        hy.append(("wrong gate activation: i, f and o use tanh, they must use "
                   "sigmoid.",
                   _lstm_step_np(x, h, c, w_ih, w_hh, b_ih, b_hh, ifo_act="tanh")))
        hy.append(("the output is h = o * tanh(c): tanh of the new cell state "
                   "is missing.",
                   _lstm_step_np(x, h, c, w_ih, w_hh, b_ih, b_hh, out_tanh=False)))
        hy.append(("the forget gate is not applied: c = f * c_prev + i * g.",
                   _lstm_step_np(x, h, c, w_ih, w_hh, b_ih, b_hh, forget=False)))
        if b_ih is not None:
            (h2, c2), _ = step(x, h, c, w_ih, w_hh, None, None)
            hy.append(("the biases are missing (add b_ih and b_hh).", (h2, c2)))
            (h2, c2), _ = step(x, h, c, w_ih, w_hh, b_ih, b_hh * 0)
            hy.append(("b_hh is missing: PyTorch's LSTM has two biases, add "
                       "both.", (h2, c2)))
        (h2, c2), _ = step(x, h * 0, c, w_ih, w_hh, b_ih, b_hh)
        hy.append(("h_prev is ignored (the term h_prev @ w_hh.T is missing).",
                   (h2, c2)))
        (h2, c2), _ = step(x, h, c * 0, w_ih, w_hh, b_ih, b_hh)
        hy.append(("c_prev is ignored.", (h2, c2)))
        return _Case(name, (x, h, c, w_ih, w_hh, b_ih, b_hh), None, (hh, cc), hy)

    def bwd_case(name, seed, B, D, H, bias, dtype):
        x, h, c, w_ih, w_hh, b_ih, b_hh = inputs(seed + 10, B, D, H, bias, dtype)
        _, cache = step(x, h, c, w_ih, w_hh, b_ih, b_hh)
        rng = _rng(700 + seed)
        dh = _randn(rng, (B, H), dtype)
        dc = _randn(rng, (B, H), dtype)
        g = step_b(dh, dc, cache)
        hy = [
            ("the path from dh into the cell state is missing: dc += dh * o * "
             "(1 - tanh(c)**2).", _lstm_step_bwd_np(dh, dc, cache, "no_dh_path")),
            ("the path from dh into the cell state lacks tanh's derivative "
             "(1 - tanh(c)**2).", _lstm_step_bwd_np(dh, dc, cache, "no_tanh_path")),
            ("dc_prev = dc * f: the forget gate scales the gradient carried to "
             "c_prev.", _lstm_step_bwd_np(dh, dc, cache, "no_f")),
            ("wrong gate derivative: g is tanh(.), its derivative is 1 - g**2, "
             "not g * (1 - g).", _lstm_step_bwd_np(dh, dc, cache, "g_sigmoid")),
        ]
        return _Case(name, (dh, dc, cache), None, tuple(g), hy)

    _PARTS["lstm_step_forward"] = _spec_part(
        "Part A (lstm_step_forward)", names, fwd_case)
    _PARTS["lstm_step_backward"] = _spec_part(
        "Part B (lstm_step_backward)", names, bwd_case)


def _state_hint(wrong, actuals, expecteds, matched=False):
    if wrong == ["h"]:
        return ("c is right but h is wrong: look at the output gate o and "
                "h = o * tanh(c).")
    return None


def lstm_step_forward(fn, which="visible"):
    """Part A of 04_lstm_cell: ``(h, c), cache = fn(x, h_prev, c_prev, w_ih,
    w_hh, b_ih, b_hh)``."""
    part, cases = _graded("lstm_step_forward", fn, which)
    for where, case in cases:
        out = _run(where, fn, part, thaw(case.args), {})
        state, _cache = unpack(where, out, 2, "((h, c), cache)")
        h, c = unpack(where, state, 2, "(h, c) as the first item")
        _check_outputs(where, ["h", "c"], [h, c],
                       list(thaw(case.expected)), case.hyps, _state_hint)


_LSTM_STEP_TERMS = ["dx", "dh_prev", "dc_prev", "dw_ih", "dw_hh", "db_ih", "db_hh"]


def lstm_step_backward(fn, which="visible"):
    """Part B of 04_lstm_cell: ``fn(dh, dc, cache)`` -> (dx, dh_prev,
    dc_prev, dw_ih, dw_hh, db_ih, db_hh) for lstmlib.lstm.LSTMStepCache."""
    _check_returns("lstm_step_backward", fn, which, _LSTM_STEP_TERMS,
                   _gate_hint(4, LSTM_GATES, _LSTM_STEP_TERMS, _LSTM_TERM_HINTS))


# ---------------------------------------------------------------------------
