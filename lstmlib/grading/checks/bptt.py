"""The checks of 02_bptt."""

import numpy as np

from . import _compare
from ._compare import compare, fail, same_values, thaw, unpack
from ._engine import (_ask, _Case, _check_returns, _graded,
                      _matching_hypothesis, _Part, _PARTS, _randn, _rng,
                      _rnn_inputs, _spec_part)
from .rnn_forward import _RNN_STEP_SPECS_HIDDEN, _RNN_STEP_SPECS_VISIBLE, _steps_differing

_RNN_TERM_HINTS = {
    "dx": "dx = da @ w_ih, with da the gradient of the pre-activation.",
    "dh_prev": "dh_prev = da @ w_hh.",
    "dh0": "dh0 is the gradient carried out of the first step: da_0 @ w_hh.",
    "dw_ih": "dw_ih = da.T @ x (summed over the batch and, for a sequence, "
             "over time).",
    "dw_hh": "dw_hh = da.T @ h_prev: the state the step started from, not the "
             "one it produced.",
    "db_ih": "db_ih = da.sum(axis=0): sum over the batch (and time).",
    "db_hh": "db_hh = da.sum(axis=0), the same as db_ih.",
}


def _term_hint(table):
    def hint(wrong, actuals, expecteds, matched=False):
        if matched:
            return None
        if len(wrong) >= 4:
            return ("almost every term is wrong, so the shared factor is: the "
                    "gradient through the nonlinearity (da) or the incoming "
                    "gradient.")
        return " ".join(table[n] for n in wrong if n in table)
    return hint


def _rnn_step_bwd_variant(dh, cache, mode):
    """Plain numpy variants of one step's backward, for diagnosis."""
    x, h_prev, h, w_ih, w_hh, nl, has_bias = cache
    if mode == "no_act":
        da = dh
    elif mode == "tanh_twice":
        th = np.tanh(h)
        da = dh * (1 - th * th)
    elif mode == "pre_act":
        da = dh * (1 - h)
    else:
        raise ValueError(mode)
    db = da.sum(axis=0) if has_bias else None
    return (da @ w_ih, da @ w_hh, da.T @ x, da.T @ h_prev, db, db)


def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import rnn
    step = rnn.rnn_step_forward
    step_b = rnn.rnn_step_backward
    seqf = rnn.rnn_forward
    seqb = rnn.rnn_backward
    Cache = rnn.RNNStepCache
    names = ("rnn_step_backward", "rnn_backward", "numerical_gradient")

    def step_case(name, seed, B, D, H, nl="tanh", bias=True, dtype="float64"):
        rng, _, (_, cache) = _rnn_inputs(step, 300 + seed, (B, D), H, nl, bias,
                                         dtype)
        dh = _randn(rng, (B, H), dtype)
        g = step_b(dh, cache)
        hy = [("the gradient does not go through the nonlinearity (da = dh "
               "* derivative of " + nl + " is missing).",
               _rnn_step_bwd_variant(dh, cache, "no_act"))]
        if nl == "tanh":
            hy.append(("tanh's derivative is applied to h again: cache.h is "
                       "already tanh(a), so da = dh * (1 - h**2).",
                       _rnn_step_bwd_variant(dh, cache, "tanh_twice")))
            hy.append(("tanh's derivative is 1 - h**2, not 1 - h.",
                       _rnn_step_bwd_variant(dh, cache, "pre_act")))
        return _Case(name, (dh, cache), None, tuple(g), hy)

    _PARTS["rnn_step_backward"] = _spec_part(
        "Part A (rnn_step_backward)", names, step_case,
        _RNN_STEP_SPECS_VISIBLE, _RNN_STEP_SPECS_HIDDEN)

    def bptt_variant(cache, d_out, dh_n, carry=True, accumulate=True,
                     shift=False):
        x, h0, states, mask, w_ih, w_hh, nl, has_bias, reverse = cache
        T = x.shape[0]
        dh = (h0 * 0) if dh_n is None else dh_n.copy()
        total = None
        for t in range(T - 1, -1, -1):
            h_prev = h0 if t == 0 else states[t - 1]
            if shift:
                h_prev = states[t]
            c = Cache(x[t], h_prev, states[t], w_ih, w_hh, nl, has_bias)
            g = step_b(dh + (d_out[t] if d_out is not None else 0), c)
            dh = g.dh_prev if carry else h0 * 0
            parts = [g.dw_ih, g.dw_hh, g.db_ih, g.db_hh]
            if total is None or not accumulate:
                total = parts
            else:
                total = [None if a is None else a + b for a, b in zip(total, parts)]
            if t == T - 1:
                dxs = [None] * T
            dxs[t] = g.dx
        dx = np.concatenate([d[None] for d in dxs])
        return (dx, dh, *total)

    def seq_case(name, seed, T, B, D, H, nl="tanh", bias=True, dtype="float64",
                 with_dh_n=True):
        rng, _, (_, _, cache) = _rnn_inputs(seqf, seed, (T, B, D), H, nl, bias,
                                            dtype)
        d_out = _randn(rng, (T, B, H), dtype)
        dh_n = _randn(rng, (B, H), dtype) if with_dh_n else None
        g = seqb(d_out, dh_n, cache)
        hy = []
        if T > 1:
            hy.append(("dh_next is not carried back: each step must add the "
                       "gradient coming from step t+1 (dh_prev of the later "
                       "step) to d_out[t].",
                       bptt_variant(cache, d_out, dh_n, carry=False)))
            hy.append(("the weight gradients are overwritten at each step "
                       "instead of summed over time (use +=).",
                       bptt_variant(cache, d_out, dh_n, accumulate=False)))
            hy.append(("off by one time step: step t started from "
                       "states[t-1] (h0 for t = 0), not states[t].",
                       bptt_variant(cache, d_out, dh_n, shift=True)))
        if dh_n is not None:
            hy.append(("dh_n (the gradient of the final state) is ignored: "
                       "start the backward walk with dh = dh_n.",
                       tuple(seqb(d_out, None, cache))))
            hy.append(("BPTT does not accumulate dh_next: step t must receive "
                       "d_out[t] plus the gradient from step t+1 (dh_n at the "
                       "last step), not d_out[t] alone.",
                       bptt_variant(cache, d_out, None, carry=False)))
        return _Case(name, (d_out, dh_n, cache), None, tuple(g), hy)

    _PARTS["rnn_backward"] = _Part(
        "Part B (rnn_backward)", names, {
            "visible": [seq_case("T=5, B=3, D=4, H=5", 401, 5, 3, 4, 5)],
            "hidden": [
                seq_case("T=1, B=2, D=3, H=4", 402, 1, 2, 3, 4),
                seq_case("T=4, B=1, D=2, H=3, relu", 403, 4, 1, 2, 3, "relu"),
                seq_case("T=6, B=2, D=3, H=3, no biases, dh_n=None", 404, 6, 2,
                         3, 3, bias=False, with_dh_n=False),
                seq_case("T=3, B=2, D=3, H=4, float32", 405, 3, 2, 3, 4,
                         dtype="float32"),
            ]})

    def ng_case(name, seed, shape, with_df, h):
        # f = tanh(x @ W) with W drawn here: the kernel receives f's values at
        # x and at x +/- h e_i only (its f returns NaN anywhere else), so a
        # right gradient is central differences of those values
        rng = _rng(seed)
        x = _randn(rng, shape, "float64")
        W = _randn(rng, (shape[-1], 3), "float64")
        df = _randn(rng, shape[:-1] + (3,), "float64") if with_df else None
        values = [np.tanh(x @ W)]
        flat = x.ravel().copy()
        for i in range(x.size):
            for step in (h, -h):
                z = flat.copy()
                z[i] = flat[i] + step               # as x[i] = old + h
                values.append(np.tanh(z.reshape(shape) @ W))
        weight = (values[0] * 0 + 1) if df is None else df
        central, forward = [], []
        for i in range(x.size):
            plus, minus = values[1 + 2 * i], values[2 + 2 * i]
            central.append(float(((plus - minus) * weight).sum() / (2 * h)))
            forward.append(float(((plus - values[0]) * weight).sum() / h))
        expected = np.array(central).reshape(shape)
        hy = [("one-sided differences (f(x + h e_i) - f(x)) / h: use central "
               "differences, (f(x + h e_i) - f(x - h e_i)) / (2 h), whose error is "
               "of order h**2, not h.", (np.array(forward).reshape(shape),))]
        return _Case(name, (x, df, h), None, (expected,), hy,
                     extra=np.concatenate([v[None] for v in values]))

    _PARTS["numerical_gradient"] = _Part(
        "Part C (numerical_gradient)", names, {
            "visible": [ng_case("x (3, 4), df given", 501, (3, 4), True, 1e-5)],
            "hidden": [
                ng_case("x (2, 3, 2), df None (ones)", 502, (2, 3, 2), False, 1e-5),
                ng_case("x (1, 5), df given, h=1e-4", 503, (1, 5), True, 1e-4),
            ]})


def rnn_step_backward(fn, which="visible"):
    """Part A of 02_bptt: ``fn(dh, cache)`` -> (dx, dh_prev, dw_ih, dw_hh,
    db_ih, db_hh) for lstmlib.rnn.RNNStepCache ``cache``."""
    _check_returns("rnn_step_backward", fn, which,
                   ["dx", "dh_prev", "dw_ih", "dw_hh", "db_ih", "db_hh"],
                   _term_hint(_RNN_TERM_HINTS))


def _bptt_time_hint(table):
    term = _term_hint(table)

    def hint(wrong, actuals, expecteds, matched=False):
        text = term(wrong, actuals, expecteds, matched)
        if "dx" not in wrong:
            return text
        T = expecteds[0].shape[0]
        bad = _steps_differing(actuals[0], expecteds[0])
        if not bad:
            return text
        last = bad[-1]
        if last == T - 1:
            where = (f"dx is already wrong at the last step t = {T - 1}, where "
                     f"the walk starts: check d_out[T-1] + dh_n and one step's "
                     f"backward.")
        else:
            where = (f"walking backward in time, dx is right for t > {last} and "
                     f"first differs at t = {last}: the gradient carried from "
                     f"step {last + 1} to step {last} (dh_next; for an LSTM "
                     f"also dc_next) is wrong or missing.")
        return where + ("\n  " + text if text else "")
    return hint


def rnn_backward(fn, which="visible"):
    """Part B of 02_bptt: ``fn(d_out, dh_n, cache)`` -> (dx, dh0, dw_ih,
    dw_hh, db_ih, db_hh) for lstmlib.rnn.RNNCache ``cache``."""
    _check_returns("rnn_backward", fn, which,
                   ["dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"],
                   _bptt_time_hint(_RNN_TERM_HINTS))


def numerical_gradient(fn, which="visible"):
    """Part C of 02_bptt: ``fn(f, x, df, h)`` -> dL/dx by central differences
    for L = sum(f() * df), f reading x in place.

    f's formula stays here: the kernel receives the values of f at x and at
    x +/- h e_i, computed here, and its f returns the one whose point is the
    current x (within a few ulps) and NaN anywhere else. A right gradient
    is therefore made of f's values at exactly those points: nothing the
    kernel reports about its calls decides the grade (the count it sends is
    read for the messages only). What the kernel still reports: that x is
    back to its original values afterwards."""
    part, cases = _graded("numerical_gradient", fn, which)
    for where, case in cases:
        x, df, h = thaw(case.args)
        values = thaw(case.extra)
        x0 = x.copy()
        got = _ask(where, part, "numgrad", [fn], {"x": x, "df": df, "h": h, "values": values})
        out, x_after, seen = unpack(where, got, 3, "(gradient, x, calls)")
        exp = thaw(case.expected)[0]
        _compare.check_type_shape_dtype(where, "the gradient", out, exp)
        if not same_values(x_after, x0, 0.0, 0.0):
            fail(f"{where}: x was changed by your function: after perturbing "
                 f"x[i] by +h and -h, put the original value back.")
        seen = seen if type(seen) is dict else {}
        elsewhere = seen.get("elsewhere")

        def cause(bad):
            if type(elsewhere) is int and elsewhere > 0:
                return (f"f was evaluated {elsewhere} time(s) at a point other than x "
                        f"and x +/- h e_i (there the grader's f returns NaN): perturb "
                        f"one entry at a time, x[i] = old + h then old - h, and put "
                        f"x[i] back before the next entry.")
            text = _matching_hypothesis([out], case.hyps)
            if text:
                return text
            for scale, text in ((2.0, "divide by 2*h (central differences), "
                                      "not by h."),
                                (0.5, "the difference is f(x+h) - f(x-h) "
                                      "divided by 2*h, not by 4*h.")):
                if same_values(out, exp * scale, 1e-6, 1e-8):
                    return text
            if df is not None:
                return ("L = sum(f() * df): multiply the difference of the two "
                        "evaluations by df before summing.")
            return "check the perturbation of x[i] and the sum over f's output."

        compare(where, "the gradient", out, exp, cause, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
