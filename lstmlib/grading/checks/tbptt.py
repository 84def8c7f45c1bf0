"""The checks of 11_tbptt."""

import numpy as np

from ._compare import fail, fmt, thaw
from ._engine import (_Case, _check_outputs, _graded, _Part, _PARTS, _randn,
                      _rng, _rnn_inputs, _run)

_NAMES = ("tbptt_windows", "truncated_bptt")
_GRADS = ["dw_ih", "dw_hh", "db_ih", "db_hh"]


# ---------------------------------------------------------------------------
# Part A: the windows

def _windows_variant(T, k1, k2, mode):
    """The windows a typical slip gives, as (start, loss_start, stop) tuples."""
    if mode == "swapped":
        k1, k2 = k2, k1
    out = []
    last = T - k1 + 1 if mode == "drop_last" else T
    for loss_start in range(0, max(last, 0), k1):
        stop = loss_start + k1 if mode == "no_clip_stop" else min(loss_start + k1, T)
        if mode == "no_clip_start":
            start = stop - k2
        elif mode == "from_loss_start":
            start = max(0, loss_start - (k2 - k1))
        elif mode == "at_loss_start":
            start = loss_start
        else:
            start = max(0, stop - k2)
        out.append((start, loss_start, stop))
    return out


_WINDOW_HINTS = [
    ("swapped", "k1 and k2 are swapped: a new chunk (its loss) every k1 steps, "
     "and its gradient reaching k2 >= k1 steps back."),
    ("drop_last", "the last, shorter chunk is missing: when k1 does not divide "
     "T, the steps after the last full chunk form a chunk of their own "
     "(loss_start in range(0, T, k1))."),
    ("no_clip_stop", "the last chunk runs past the sequence: stop = "
     "min(loss_start + k1, T)."),
    ("no_clip_start", "a window starts before step 0: start = max(0, stop - k2)."),
    ("from_loss_start", "the window of the last, shorter chunk stops short: its "
     "gradient still goes k2 steps back from its own stop, start = "
     "max(0, stop - k2), not loss_start - (k2 - k1)."),
    ("at_loss_start", "each window starts at its chunk's first step: the "
     "gradient must reach k2 steps back from stop, start = max(0, stop - k2) "
     "(earlier than loss_start when k2 > k1, and for a shorter last chunk)."),
]


def _draw_windows_spec(rng, kind):
    """(T, k1, k2) for a case of Part A; ``kind`` is what the case tests."""
    def between(lo, hi):                    # an int in [lo, hi]
        return int(rng.integers(lo, hi + 1))
    if kind == "overlap":                   # T a multiple of k1, k2 > k1
        k1 = between(3, 4)
        return k1 * between(3, 4), k1, k1 + between(1, 3)
    if kind == "short_last":                # the last chunk shorter, k2 > k1
        k1 = between(3, 4)
        return k1 * between(2, 3) + between(1, k1 - 1), k1, k1 + between(1, 3)
    if kind == "k2_is_k1":                  # k2 == k1, the last chunk shorter
        k1 = between(3, 5)
        return k1 * between(2, 3) + between(1, k1 - 1), k1, k1
    if kind == "uncut":                     # k2 >= T: nothing is cut
        k1 = between(2, 3)
        T = k1 * between(2, 3) + between(0, k1 - 1)
        return T, k1, T + between(0, 3)
    if kind == "one_step":                  # T = 1
        k1 = between(1, 4)
        return 1, k1, k1 + between(0, 2)
    if kind == "k1_one":                    # a chunk every step
        return between(5, 7), 1, between(2, 4)
    raise ValueError(kind)


_WINDOWS_VISIBLE = [("overlap", 0, "T a multiple of k1, k2 > k1")]
_WINDOWS_HIDDEN = [
    ("short_last", 1, "the last chunk shorter than k1, k2 > k1"),
    ("k2_is_k1", 2, "k2 == k1, the last chunk shorter"),
    ("uncut", 3, "k2 >= T, nothing cut"),
    ("one_step", 4, "T=1"),
    ("k1_one", 5, "k1=1"),
]


def _as_windows(where, value):
    """The windows a student's function returned, as a list of tuples of
    three Python ints; anything else fails with what was expected."""
    what = "a list of (start, loss_start, stop) tuples of ints"
    if not isinstance(value, (list, tuple)):
        fail(f"{where}: expected your function to return {what}, received "
             f"{type(value).__name__}: {fmt(value, 120)}"
             + (" (did you forget a return statement?)" if value is None else ""))
    out = []
    for i, w in enumerate(value):
        ok = isinstance(w, (list, tuple)) and len(w) == 3 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            for v in w)
        if not ok:
            fail(f"{where}: expected your function to return {what}; item {i} is "
                 f"{fmt(w, 120)}.")
        out.append(tuple(int(v) for v in w))
    return out


def _text(windows):
    return "[" + ", ".join("(" + ", ".join(str(v) for v in w) + ")" for w in windows) + "]"


# ---------------------------------------------------------------------------
# Part B: the truncated gradients of a vanilla RNN

def _gradients_variant(x, h0, w_ih, w_hh, b_ih, b_hh, d_out, windows, nl, mode):
    """The summed gradients a typical slip gives (lstmlib.rnn's forward and
    backward, the windows used as ``mode`` says)."""
    from lstmlib.rnn import rnn_backward, rnn_forward
    if mode == "tanh":
        nl = "tanh"
    _, _, full = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, nl)
    hs = full.hs
    total = [None if w is None else np.zeros_like(w) for w in (w_ih, w_hh, b_ih, b_hh)]
    previous_stop = 0
    for start, loss_start, stop in windows:
        if mode == "uncut":
            start = 0
        if mode == "reset":
            s0 = np.zeros_like(h0)
        elif mode == "from_previous_stop":
            s0 = h0 if previous_stop == 0 else hs[previous_stop - 1]
        elif mode == "off_by_one":
            s0 = hs[start]
        else:
            s0 = h0 if start == 0 else hs[start - 1]
        _, _, cache = rnn_forward(x[start:stop], s0, w_ih, w_hh, b_ih, b_hh, nl)
        d_win = d_out[start:stop].copy()
        if mode != "overlap_twice":
            d_win[:loss_start - start] = 0
        g = rnn_backward(d_win, None, cache)
        parts = (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)
        if mode == "overwrite":
            total = list(parts)
        else:
            total = [None if t is None else t + p for t, p in zip(total, parts)]
        previous_stop = stop
    return tuple(total)


_GRADIENT_HINTS = [
    ("reset", "the state was reset to zero at each window instead of carried: "
     "a window starting at step start > 0 starts from the state the forward "
     "pass reached there (the state after step start - 1), held constant. "
     "Zero-state windows are the random crops of chapter 7, not truncated BPTT."),
    ("uncut", "the gradient was not cut: each chunk's loss was backpropagated "
     "to step 0. The window starts at `start`: run it forward from the state "
     "entering `start` and drop the gradient that leaves it (dh0)."),
    ("overlap_twice", "the loss of the overlap was counted twice: steps "
     "[start, loss_start) belong to the previous chunk's loss, so their d_out "
     "is zero in this window (the window only carries their gradient back)."),
    ("from_previous_stop", "each window started from the state where the "
     "previous one stopped (the state entering loss_start), but it starts "
     "earlier, at `start`: take the state after step start - 1 of the uncut "
     "forward pass (h0 for start = 0)."),
    ("off_by_one", "off by one step: the window starting at `start` starts "
     "from the state after step start - 1 (hs[start - 1]; h0 for start = 0), "
     "not after step start."),
    ("overwrite", "the gradients were overwritten at each window instead of "
     "summed over the windows (use +=)."),
    ("tanh", "the nonlinearity is ignored: pass nonlinearity to rnn_forward "
     "(this case is a ReLU RNN)."),
]

# (name, seed, T, B, D, H, k1, k2, nonlinearity, bias, dtype)
_GRADIENTS_VISIBLE = [("T=10, B=3, D=4, H=5, k1=3, k2=5", 0, 10, 3, 4, 5, 3, 5,
                       "tanh", True, "float64")]
_GRADIENTS_HIDDEN = [
    ("T=12, B=1, D=2, H=3, k1=k2=4, ReLU", 1, 12, 1, 2, 3, 4, 4, "relu", True,
     "float64"),
    ("T=1, B=2, D=3, H=2, k1=k2=3 (one window)", 2, 1, 2, 3, 2, 3, 3, "tanh", True,
     "float64"),
    ("T=7, B=2, D=3, H=4, k1=2, k2=8 >= T (full BPTT), no biases", 3, 7, 2, 3, 4, 2,
     8, "tanh", False, "float64"),
    ("T=9, B=2, D=3, H=4, k1=4, k2=6, float32", 4, 9, 2, 3, 4, 4, 6, "tanh", True,
     "float32"),
]


def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import rnn
    from lstmlib.tbptt import tbptt_gradients, tbptt_windows

    def plain(windows):
        return [tuple(int(v) for v in w) for w in windows]

    def windows_case(kind, seed, what):
        T, k1, k2 = _draw_windows_spec(_rng(1100 + seed), kind)
        expected = plain(tbptt_windows(T, k1, k2))
        hyps = [(text, _windows_variant(T, k1, k2, mode)) for mode, text in _WINDOW_HINTS]
        return _Case(f"T={T}, k1={k1}, k2={k2} ({what})", (T, k1, k2), None,
                     expected, hyps)

    def gradients_case(name, seed, T, B, D, H, k1, k2, nl, bias, dtype):
        rng, args, _ = _rnn_inputs(rnn.rnn_forward, 1110 + seed, (T, B, D), H, nl,
                                   bias, dtype)
        x, h0, w_ih, w_hh, b_ih, b_hh = args
        d_out = _randn(rng, (T, B, H), dtype)
        windows = plain(tbptt_windows(T, k1, k2))
        expected = tbptt_gradients(rnn.CELL, x, (h0,), (w_ih, w_hh, b_ih, b_hh), d_out,
                                   k1, k2, nonlinearity=nl)
        hyps = [(text, _gradients_variant(*args, d_out, windows, nl, mode))
                for mode, text in _GRADIENT_HINTS if mode != "tanh" or nl == "relu"]
        kwargs = {"nonlinearity": nl} if nl != "tanh" else None
        return _Case(name, (*args, d_out, windows), kwargs, expected, hyps,
                     extra={"uncut": k2 >= T})

    _PARTS["tbptt_windows"] = _Part(
        "Part A (tbptt_windows)", _NAMES,
        {"visible": [windows_case(*s) for s in _WINDOWS_VISIBLE],
         "hidden": [windows_case(*s) for s in _WINDOWS_HIDDEN]})
    _PARTS["truncated_bptt"] = _Part(
        "Part B (truncated_bptt)", _NAMES,
        {"visible": [gradients_case(*s) for s in _GRADIENTS_VISIBLE],
         "hidden": [gradients_case(*s) for s in _GRADIENTS_HIDDEN]})


def tbptt_windows(fn, which="visible"):
    """Part A of 11_tbptt: ``fn(T, k1, k2)`` -> the list of windows
    ``(start, loss_start, stop)`` of BPTT(k2; k1), one per chunk, in order."""
    __tracebackhide__ = True
    part, cases = _graded("tbptt_windows", fn, which)
    for where, case in cases:
        got = _as_windows(where, _run(where, fn, part, thaw(case.args), thaw(case.kwargs)))
        expected = thaw(case.expected)
        if got == expected:
            continue
        msg = f"{where}: wrong windows.\n  yours:    {_text(got)}\n  expected: {_text(expected)}"
        if len(got) != len(expected):
            msg += (f"\n  ({len(got)} windows instead of {len(expected)}: one per chunk "
                    f"of k1 steps, the last one possibly shorter)")
        else:
            i = next(i for i, (a, e) in enumerate(zip(got, expected)) if a != e)
            msg += f"\n  (the first that differs: window {i})"
        cause = next((text for text, frozen in case.hyps if thaw(frozen) == got), None)
        if cause:
            msg += f"\n  Likely cause: {cause}"
        fail(msg)


def truncated_bptt(fn, which="visible"):
    """Part B of 11_tbptt: ``fn(x, h0, w_ih, w_hh, b_ih, b_hh, d_out, windows
    [, nonlinearity])`` -> (dw_ih, dw_hh, db_ih, db_hh), the weight gradients
    of truncated BPTT summed over ``windows``."""
    __tracebackhide__ = True
    part, cases = _graded("truncated_bptt", fn, which)
    for where, case in cases:
        out = _run(where, fn, part, thaw(case.args), thaw(case.kwargs))
        if not isinstance(out, (list, tuple)) or len(out) != 4:
            fail(f"{where}: expected your function to return (dw_ih, dw_hh, db_ih, "
                 f"db_hh) (4 items), received {type(out).__name__}: {fmt(out, 120)}")
        uncut = thaw(case.extra)["uncut"]

        def hint(wrong, actuals, expecteds, matched=False):
            if matched:
                return None
            if uncut:
                return ("here k2 >= T, so nothing is cut: the windows' gradients must "
                        "add up to full BPTT's (rnn_backward over the whole sequence).")
            return ("check, window by window: the state entering `start`, d_out only "
                    "on [loss_start, stop), no gradient through the window's first "
                    "state, and the sum over the windows.")

        _check_outputs(where, _GRADS, list(out), list(thaw(case.expected)), case.hyps,
                       hint)
