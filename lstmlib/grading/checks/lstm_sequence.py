"""The checks of 05_lstm_sequence."""

import numpy as np

from ._compare import thaw, unpack
from ._engine import (_Case, _check_outputs, _check_returns, _draw_inputs,
                      _gate_hint, _graded, LSTM_GATES, _PARTS, _randn, _rng,
                      _run, _spec_part)
from .rnn_forward import _forward_time_hint
from .bptt import _bptt_time_hint
from .lstm_cell import _LSTM_TERM_HINTS

def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import lstm
    step_b = lstm.lstm_step_backward
    seqf = lstm.lstm_forward
    seqb = lstm.lstm_backward
    step = lstm.lstm_step_forward
    StepCache = lstm.LSTMStepCache
    names = ("lstm_forward", "lstm_backward")

    def inputs(seed, T, B, D, H, bias, dtype):
        return _draw_inputs(_rng(800 + seed), 4, (T, B, D), H, bias, dtype,
                            True)

    def fwd_variant(x, h0, c0, w_ih, w_hh, b_ih, b_hh, carry_h=True, carry_c=True):
        h, c = h0, c0
        outs = []
        for t in range(x.shape[0]):
            (h2, c2), _ = step(x[t], h if carry_h else h0, c if carry_c else c0,
                               w_ih, w_hh, b_ih, b_hh)
            h, c = h2, c2
            outs.append(h[None])
        return np.concatenate(outs), h, c

    def fwd_case(name, seed, T, B, D, H, bias, dtype):
        args = inputs(seed, T, B, D, H, bias, dtype)
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = args
        out, (h_n, c_n), _ = seqf(*args)
        hy = []
        if T > 1:
            hy.append(("the hidden state h is not carried from step to step "
                       "(every step starts from h0).",
                       fwd_variant(*args, carry_h=False)))
            hy.append(("the cell state c is not carried from step to step "
                       "(every step starts from c0).",
                       fwd_variant(*args, carry_c=False)))
            hy.append(("off by one time step: out[t] holds the state before "
                       "step t.", (np.concatenate([h0[None], out[:-1]]),
                                   None, None)))
            hy.append(("(h_n, c_n) should be the states after the last step, "
                       "not the first.", (out, out[0], None)))
        hy.append(("h_n and c_n are swapped.", (out, c_n, h_n)))
        return _Case(name, args, None, (out, h_n, c_n), hy)

    def bptt_variant(cache, d_out, dh_n, dc_n, carry_h=True, carry_c=True,
                     accumulate=True, shift=False):
        x, h0, c0, gates, hs, cs, tanh_cs, mask, w_ih, w_hh, has_bias, rev = cache
        T, B, H = hs.shape
        dh = h0 * 0 if dh_n is None else dh_n.copy()
        dc = h0 * 0 if dc_n is None else dc_n.copy()
        total = None
        dxs = [None] * T
        for t in range(T - 1, -1, -1):
            k = t if not shift else t + 1
            h_prev = h0 if k == 0 else hs[k - 1] if k - 1 < T else hs[T - 1]
            c_prev = c0 if k == 0 else cs[k - 1] if k - 1 < T else cs[T - 1]
            a = gates[t]
            sc = StepCache(x[t], h_prev, c_prev, a[:, :H], a[:, H:2 * H],
                           a[:, 2 * H:3 * H], a[:, 3 * H:], cs[t], tanh_cs[t],
                           w_ih, w_hh, has_bias)
            g = step_b(dh + d_out[t], dc, sc)
            dh = g.dh_prev if carry_h else h0 * 0
            dc = g.dc_prev if carry_c else h0 * 0
            dxs[t] = g.dx[None]
            ws = [g.dw_ih, g.dw_hh, g.db_ih, g.db_hh]
            if total is None or not accumulate:
                total = ws
            else:
                total = [None if u is None else u + v for u, v in zip(total, ws)]
        return (np.concatenate(dxs), dh, dc, *total)

    def bwd_case(name, seed, T, B, D, H, bias, dtype, with_final=True):
        args = inputs(seed + 20, T, B, D, H, bias, dtype)
        _, _, cache = seqf(*args)
        rng = _rng(900 + seed)
        d_out = _randn(rng, (T, B, H), dtype)
        dh_n = _randn(rng, (B, H), dtype) if with_final else None
        dc_n = _randn(rng, (B, H), dtype) if with_final else None
        g = seqb(d_out, dh_n, dc_n, cache)
        hy = []
        if T > 1:
            hy.append(("dh_next is not carried back: add the dh_prev of step "
                       "t+1 to d_out[t].",
                       bptt_variant(cache, d_out, dh_n, dc_n, carry_h=False)))
            hy.append(("dc_next is not carried back: the dc_prev of step t+1 "
                       "is step t's dc.",
                       bptt_variant(cache, d_out, dh_n, dc_n, carry_c=False)))
            hy.append(("the weight gradients are overwritten at each step "
                       "instead of summed over time (use +=).",
                       bptt_variant(cache, d_out, dh_n, dc_n, accumulate=False)))
        if with_final:
            hy.append(("dh_n is ignored: start the walk with dh = dh_n.",
                       tuple(seqb(d_out, None, dc_n, cache))))
            hy.append(("dc_n is ignored: start the walk with dc = dc_n.",
                       tuple(seqb(d_out, dh_n, None, cache))))
        return _Case(name, (d_out, dh_n, dc_n, cache), None, tuple(g), hy)

    vis = [("T=5, B=3, D=4, H=5", 0, 5, 3, 4, 5, True, "float64")]
    hid = [("T=1, B=2, D=3, H=4", 1, 1, 2, 3, 4, True, "float64"),
           ("T=4, B=1, D=2, H=3", 2, 4, 1, 2, 3, True, "float64"),
           ("T=3, B=2, D=3, H=3, no biases", 3, 3, 2, 3, 3, False, "float64"),
           ("T=6, B=2, D=3, H=4, float32", 4, 6, 2, 3, 4, True, "float32")]
    _PARTS["lstm_forward"] = _spec_part("Part A (lstm_forward)", names,
                                        fwd_case, vis, hid)
    hid_b = [h + (True,) for h in hid[:2]] + \
        [hid[2] + (False,), hid[3] + (True,)]
    _PARTS["lstm_backward"] = _spec_part("Part B (lstm_backward)", names,
                                         bwd_case, [vis[0] + (True,)], hid_b)


def lstm_forward(fn, which="visible"):
    """Part A of 05_lstm_sequence: ``out, (h_n, c_n), cache = fn(x, h0, c0,
    w_ih, w_hh, b_ih, b_hh)``."""
    part, cases = _graded("lstm_forward", fn, which)
    for where, case in cases:
        out = _run(where, fn, part, thaw(case.args), {})
        o, state, _cache = unpack(where, out, 3, "(out, (h_n, c_n), cache)")
        h_n, c_n = unpack(where, state, 2, "(h_n, c_n) as the second item")
        _check_outputs(where, ["out", "h_n", "c_n"], [o, h_n, c_n],
                       list(thaw(case.expected)), case.hyps,
                       _forward_time_hint)


_LSTM_SEQ_TERMS = ["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"]


def lstm_backward(fn, which="visible"):
    """Part B of 05_lstm_sequence: ``fn(d_out, dh_n, dc_n, cache)`` -> (dx,
    dh0, dc0, dw_ih, dw_hh, db_ih, db_hh) for lstmlib.lstm.LSTMCache."""
    table = dict(_LSTM_TERM_HINTS)
    table["dc0"] = "dc0 is the gradient carried out of the first step (its dc_prev)."
    table["dh0"] = "dh0 is the gradient carried out of the first step (its dh_prev)."
    gate = _gate_hint(4, LSTM_GATES, _LSTM_SEQ_TERMS, table)
    time = _bptt_time_hint({})

    def hint(wrong, actuals, expecteds, matched=False):
        texts = [t for t in (time(wrong, actuals, expecteds, matched),
                             gate(wrong, actuals, expecteds, matched)) if t]
        return "\n  ".join(texts) or None

    _check_returns("lstm_backward", fn, which, _LSTM_SEQ_TERMS, hint)


# ---------------------------------------------------------------------------
