"""The checks of 07_bidirectional."""

import numpy as np

from ._compare import freeze, same_values, thaw, unpack
from ._engine import (_Case, _check_outputs, _graded, _Part, _PARTS, _randn,
                      _rng, _run, _weights)

def _reverse_padded_np(x, lengths):
    y = x.copy()
    for b, L in enumerate(lengths):
        y[:L, b] = x[:L, b][::-1]
    return y


def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import bidirectional, lstm
    bif = bidirectional.bidirectional_forward
    cell = lstm.LSTM_CELL
    seqf = lstm.lstm_forward
    names = ("bidirectional_forward", "bidirectional_backward")
    # (sent; the kernel ignores it: its edition's lstm_forward has no reverse)
    wrap = "no_reverse"

    def rp_case(name, seed, T, B, F, lengths, dtype="float64"):
        rng = _rng(1200 + seed)
        x = _randn(rng, (T, B, F), dtype)
        lengths = np.array(lengths, dtype="int64")
        y = _reverse_padded_np(x, lengths)
        hy = [("the whole time axis is reversed, ignoring lengths: only the "
               "first lengths[b] steps of sequence b are reversed, the padding "
               "stays where it is.", (x[::-1].copy(),)),
              ("the batch axis is reversed instead of the time axis.",
               (x[:, ::-1].copy(),))]
        return _Case(name, (x, lengths), None, (y,), hy)

    def bi_inputs(seed, T, B, D, H, lengths, bias, dtype):
        rng = _rng(1300 + seed)
        wf = _weights(rng, 4, D, H, dtype, bias)
        wb = _weights(rng, 4, D, H, dtype, bias)
        x = _randn(rng, (T, B, D), dtype)
        sf = (_randn(rng, (B, H), dtype, 0.8), _randn(rng, (B, H), dtype))
        sb = (_randn(rng, (B, H), dtype, 0.8), _randn(rng, (B, H), dtype))
        return x, np.array(lengths, dtype="int64"), sf, sb, wf, wb

    def bi_case(name, seed, T, B, D, H, lengths, bias=True, dtype="float64"):
        x, L, sf, sb, wf, wb = bi_inputs(seed, T, B, D, H, lengths, bias, dtype)
        out, snf, snb, _ = bif(cell, x, sf, sb, wf, wb, L)
        out_f = out[:, :, :H]
        mask = (np.array([[1.0 if t < n else 0.0 for n in lengths]
                                 for t in range(T)], dtype=dtype))[:, :, None]
        o_plain, _, _ = seqf(x, *sb, *wb, lengths=L)                 # not reversed
        o_full, _, _ = seqf(x, *sb, *wb, lengths=None, reverse=True)  # whole T
        o_rev_in, _, _ = seqf(_reverse_padded_np(x, L), *sb, *wb, lengths=L)
        cat = np.concatenate
        hy = [
            ("the backward direction is not reversed: it must read each "
             "sequence from its last real step to its first.",
             (cat([out_f, o_plain], axis=2),)),
            ("the backward direction reverses the whole time axis, ignoring "
             "lengths: it must start at step lengths[b] - 1 of sequence b.",
             (cat([out_f, o_full * mask], axis=2),)),
            ("the backward direction's outputs are not reversed back: out[t] "
             "must be the backward state at step t.",
             (cat([out_f, o_rev_in], axis=2),)),
            ("the two directions are concatenated in the wrong order: "
             "[forward, backward].", (cat([out[:, :, H:], out_f], axis=2),)),
        ]
        hs = [("the forward and backward final states are swapped.",
               (snb[0], snb[1], snf[0], snf[1]))]
        return _Case(name, (x, L, sf, sb, wf, wb), None,
                     (out, snf[0], snf[1], snb[0], snb[1]), hy, extra=hs)

    rp_vis = [rp_case("T=5, B=3, lengths [5, 3, 1]", 0, 5, 3, 2, [5, 3, 1])]
    rp_hid = [rp_case("T=1, B=2, lengths [1, 1]", 1, 1, 2, 3, [1, 1]),
              rp_case("T=4, B=1, lengths [2]", 2, 4, 1, 2, [2]),
              rp_case("T=6, B=3, lengths [6, 2, 4], float32", 3, 6, 3, 2,
                      [6, 2, 4], "float32")]
    bi_vis = [bi_case("T=5, B=3, D=4, H=5, lengths [5, 3, 1]", 0, 5, 3, 4, 5,
                      [5, 3, 1])]
    bi_hid = [bi_case("T=1, B=2, D=3, H=2, lengths [1, 1]", 1, 1, 2, 3, 2, [1, 1]),
              bi_case("T=4, B=1, D=2, H=3, lengths [2]", 2, 4, 1, 2, 3, [2]),
              bi_case("T=4, B=3, D=3, H=3, lengths [4, 4, 4], no biases", 3, 4,
                      3, 3, 3, [4, 4, 4], bias=False),
              bi_case("T=5, B=2, D=3, H=4, lengths [4, 2], float32", 4, 5, 2,
                      3, 4, [4, 2], dtype="float32")]
    _PARTS["reverse_padded"] = _Part("Part A (reverse_padded)", names,
                                     {"visible": rp_vis, "hidden": rp_hid}, wrap=wrap)
    _PARTS["bidirectional_output"] = _Part(
        "Part B (bidirectional_lstm: out)", names,
        {"visible": bi_vis, "hidden": bi_hid}, wrap=wrap)
    _PARTS["bidirectional_states"] = _Part(
        "Part C (bidirectional_lstm: final states)", names,
        {"visible": bi_vis, "hidden": bi_hid}, wrap=wrap)


def reverse_padded(fn, which="visible"):
    """Part A of 07_bidirectional: ``fn(x, lengths)`` reverses the first
    lengths[b] steps of every sequence b and leaves the padding in place."""
    part, cases = _graded("reverse_padded", fn, which)
    for where, case in cases:
        x, L = thaw(case.args)
        y = _run(where, fn, part, (x, L), {})
        _check_outputs(where, ["the result"], [y],
                       list(thaw(case.expected)), case.hyps)


def _bidirectional_run(part, fn, case, where):
    out = _run(where, fn, part, thaw(case.args), {})
    o, snf, snb = unpack(where, out, 3, "(out, (h_n_f, c_n_f), (h_n_b, c_n_b))")
    hf, cf = unpack(where, snf, 2, "the forward final state (h_n, c_n)")
    hb, cb = unpack(where, snb, 2, "the backward final state (h_n, c_n)")
    return o, hf, cf, hb, cb


def _padding_hint(wrong, actuals, expecteds, matched=False):
    out, exp = actuals[0], expecteds[0]
    H = exp.shape[2] // 2
    f_ok = same_values(out[:, :, :H].copy(), exp[:, :, :H].copy())
    b_ok = same_values(out[:, :, H:].copy(), exp[:, :, H:].copy())
    if f_ok and not b_ok:
        return "the forward half out[..., :H] is right; the backward half differs."
    if b_ok and not f_ok:
        return "the backward half out[..., H:] is right; the forward half differs."
    return None


def bidirectional_output(fn, which="visible"):
    """Part B of 07_bidirectional: the output (T, B, 2H) of
    ``fn(x, lengths, state_f, state_b, weights_f, weights_b)``."""
    part, cases = _graded("bidirectional_output", fn, which)
    for where, case in cases:
        o, hf, cf, hb, cb = _bidirectional_run(part, fn, case, where)
        exp = thaw(case.expected)
        _check_outputs(where, ["out"], [o], [exp[0]], case.hyps, _padding_hint)


def bidirectional_states(fn, which="visible"):
    """Part C of 07_bidirectional: the final states of both directions."""
    part, cases = _graded("bidirectional_states", fn, which)
    names = ["h_n (forward)", "c_n (forward)", "h_n (backward)", "c_n (backward)"]

    def hint(wrong, actuals, expecteds, matched=False):
        if any("backward" in w for w in wrong) and not \
                any("forward)" in w for w in wrong):
            return ("the backward direction's final state is the state after "
                    "its last step, which is step 0 of the sequence (its first "
                    "real step), not step T-1.")
        if any("forward)" in w for w in wrong):
            return ("the forward final state of sequence b is its state at "
                    "step lengths[b] - 1 (padding keeps the state).")
        return None

    for where, case in cases:
        o, hf, cf, hb, cb = _bidirectional_run(part, fn, case, where)
        exp = list(thaw(case.expected))[1:]
        _check_outputs(where, names, [hf, cf, hb, cb], exp, thaw(case.extra)
                       and [(t, freeze(v)) for t, v in thaw(case.extra)], hint)


# ---------------------------------------------------------------------------
