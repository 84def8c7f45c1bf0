"""The checks of 12_parallel_scan.

The parts are graded on values against the step-by-step loop
(``lstmlib.mingru.linear_scan_sequential`` and the loop's gradients): a
scan and a loop give the same numbers to rounding, so whether the student's
scan runs its ceil(log2 T) rounds as whole-array operations is the
notebook's rule, not a check. The gates a_t of the cases lie in [0.7, 1),
so that a product of 32 of them still counts: a round that is missing or
wrong at offset 16 changes h[32] by far more than the tolerance.
"""

import numpy as np

from ._compare import same_values, thaw
from ._engine import (_Case, _check_outputs, _check_returns, _graded, _PARTS,
                      _randn, _rng, _run, _spec_part)

_NAMES = ("linear_scan", "linear_scan_backward", "mingru_forward")

# (name, seed, T, B, H, dtype)
_SCAN_VISIBLE = [("T=6, B=3, H=4", 0, 6, 3, 4, "float64")]
_SCAN_HIDDEN = [
    ("T=1, B=2, H=3", 1, 1, 2, 3, "float64"),
    ("T=33, B=2, H=3", 2, 33, 2, 3, "float64"),
    ("T=16, B=1, H=1", 3, 16, 1, 1, "float64"),
    ("T=13, B=2, H=4, float32", 4, 13, 2, 4, "float32"),
]
_BACKWARD_VISIBLE = _SCAN_VISIBLE
_BACKWARD_HIDDEN = [
    ("T=1, B=2, H=3", 1, 1, 2, 3, "float64"),
    ("T=33, B=2, H=3", 2, 33, 2, 3, "float64"),
    ("T=10, B=1, H=3, float32", 4, 10, 1, 3, "float32"),
]
# (name, seed, T, B, D, H, dtype)
_MINGRU_VISIBLE = [("T=6, B=3, D=4, H=5", 0, 6, 3, 4, 5, "float64")]
_MINGRU_HIDDEN = [
    ("T=1, B=1, D=3, H=2", 1, 1, 1, 3, 2, "float64"),
    ("T=9, B=2, D=4, H=4", 2, 9, 2, 4, 4, "float64"),
    ("T=7, B=2, D=3, H=4, float32", 3, 7, 2, 3, 4, "float32"),
]

_SCAN_HINTS = [
    ("no_h0", "h0 is not folded into step 0: before the rounds, h[0] must be "
     "a[0] * h0 + b[0] (the state after step 0)."),
    ("h0_without_a", "h0 is folded into step 0 without a_0: the state after "
     "step 0 is a[0] * h0 + b[0]."),
    ("a_first", "A is updated before h in a round, so h's update reads the new "
     "A: compute h[d:] from the values before the round, then update A."),
    ("swapped", "the pairs are combined in the wrong order: the pair d steps "
     "back comes first, so position t gets A_t * h_{t-d} + h_t (and A_t * "
     "A_{t-d}), not A_{t-d} * h_t + h_{t-d}."),
    ("earlier_a", "h_{t-d} is multiplied by A_{t-d}, the earlier pair's "
     "product: it must go through the later pair's steps, A_t * h_{t-d} + h_t."),
    ("no_product", "A is never updated: after combining, the pair at t holds the "
     "product of its steps' a's, A[d:] = A[d:] * A[:-d] (read before the round)."),
    ("floor", "one round is missing: the scan needs ceil(log2 T) rounds "
     "(offsets 1, 2, 4, ... while the offset is below T); floor(log2 T) "
     "leaves the last positions short when T is not a power of two."),
    ("plus_one", "the offset grows by 1 instead of doubling: after the round "
     "with offset d each position holds 2d steps, so the next offset is 2d "
     "(d = 1, 2, 4, ...)."),
    ("shifted", "off by one time step: h[t] holds the state before step t (h0 "
     "first); it must hold the state after step t."),
]

_BACKWARD_HINTS = [
    ("a_same", "the gradient is carried back with a_t instead of a_{t+1}: "
     "h_{t+1} = a_{t+1} h_t + b_{t+1}, so g_t = g_out_t + a_{t+1} * g_{t+1} "
     "(shift a one step, with 0 after the last step)."),
    ("a_before", "the gradient is carried back with a_{t-1}: h_{t+1} = a_{t+1} "
     "h_t + b_{t+1}, so g_t = g_out_t + a_{t+1} * g_{t+1}."),
    ("no_carry", "the gradient is not carried back in time: g_t = g_out_t + "
     "a_{t+1} * g_{t+1} (the scan of the reversed sequence), not g_out_t alone."),
    ("not_reversed", "the scan's result is still in reversed time order: "
     "reverse it back ([::-1]) before using it."),
    ("da_h", "da_t = g_t * h_{t-1}, the state before step t (h0 for t = 0), "
     "not g_t * h_t."),
    ("dh0_g", "dh0 = a_0 * g_0: h0 enters only through step 0, multiplied by "
     "a_0."),
]

_MINGRU_HINTS = [
    ("no_h0", "out does not depend on h0: the scan must start from it (your "
     "linear_scan folds h0 into step 0, h[0] = a[0] * h0 + b[0])."),
    ("h0_without_a", "h0 enters step 0 without a_0: your linear_scan must "
     "fold it in as h[0] = a[0] * h0 + b[0]."),
    ("gru_convention", "z and 1 - z are exchanged (PyTorch's GRU convention): in "
     "minGRU z_t weights the candidate, h_t = (1 - z_t) h_{t-1} + z_t h~_t, so "
     "a = 1 - z and b = z * h~."),
    ("tanh", "the candidate goes through a tanh: minGRU's candidate is linear, "
     "h~_t = W_h x_t + b_h."),
    ("b_tilde", "b = h~ is missing the gate: b_t = z_t * h~_t."),
    ("no_b_h", "b_h is missing from the candidate h~_t = W_h x_t + b_h."),
    ("no_b_z", "b_z is missing from the gate z_t = sigmoid(W_z x_t + b_z)."),
    ("w_transposed", "the weights are used transposed: W x_t is x @ w.T (w has "
     "shape (H, D), rows = outputs)."),
    ("h_n_first", "h_n should be the state after the last step (out[T-1]), not "
     "the first."),
    ("h_n_h0", "h_n should be the state after the last step (out[T-1]), not h0."),
]


def _loop(a, b, h0):
    """h_t = a_t h_{t-1} + b_t, one step at a time (the oracle)."""
    from lstmlib.mingru import linear_scan_sequential
    return linear_scan_sequential(a, b, h0)


def _scan_variant(a, b, h0, mode):
    """The scan a typical slip (``mode``) computes."""
    T = b.shape[0]
    if mode == "shifted":
        return np.concatenate([h0[None], _loop(a, b, h0)[:-1]])
    A, h = a.copy(), b.copy()
    if mode == "h0_without_a":
        h[0] = h[0] + h0
    elif mode != "no_h0":
        h[0] = h[0] + a[0] * h0
    d, rounds = 1, 0
    limit = int(np.floor(np.log2(T))) if mode == "floor" else T
    while d < T and rounds < limit:
        if mode == "a_first":
            A[d:] = A[d:] * A[:-d]
        if mode == "swapped":
            h[d:] = A[:-d] * h[d:] + h[:-d]
        elif mode == "earlier_a":
            h[d:] = A[:-d] * h[:-d] + h[d:]
        else:
            h[d:] = A[d:] * h[:-d] + h[d:]
        if mode not in ("a_first", "no_product"):
            A[d:] = A[d:] * A[:-d]
        d = d + 1 if mode == "plus_one" else 2 * d
        rounds += 1
    return h


def _backward_variant(g_out, a, h0, h, mode):
    """(da, db, dh0) of a typical slip (``mode``) in the backward scan."""
    carry = np.zeros_like(a)
    if mode == "a_same":
        carry = a.copy()
    elif mode == "a_before":
        carry[1:] = a[:-1]
    elif mode != "no_carry":
        carry[:-1] = a[1:]
    g = _loop(carry[::-1], g_out[::-1], np.zeros_like(h0))
    if mode != "not_reversed":
        g = g[::-1]
    h_prev = h if mode == "da_h" else np.concatenate([h0[None], h[:-1]])
    dh0 = g[0] if mode == "dh0_g" else a[0] * g[0]
    return g * h_prev, g.copy(), dh0


def _mingru_variant(x, h0, w_z, w_h, b_z, b_h, mode):
    """(out, h_n) of a typical slip (``mode``) in minGRU's forward pass."""
    from lstmlib.activations import sigmoid
    if mode == "w_transposed":
        if w_z.shape[0] != w_z.shape[1]:
            return None, None
        w_z, w_h = w_z.T.copy(), w_h.T.copy()
    if mode == "no_h0":
        h0 = 0 * h0
    z = sigmoid(x @ w_z.T + (0 * b_z if mode == "no_b_z" else b_z))
    h_tilde = x @ w_h.T + (0 * b_h if mode == "no_b_h" else b_h)
    if mode == "tanh":
        h_tilde = np.tanh(h_tilde)
    if mode == "h0_without_a":
        b = z * h_tilde
        b[0] = b[0] + h0
        out = _loop(np.concatenate([0 * z[:1], 1 - z[1:]]), b, 0 * h0)
    elif mode == "gru_convention":
        out = _loop(z, (1 - z) * h_tilde, h0)
    elif mode == "b_tilde":
        out = _loop(1 - z, h_tilde, h0)
    else:
        out = _loop(1 - z, z * h_tilde, h0)
    if mode == "h_n_first":
        return out, out[0]
    if mode == "h_n_h0":
        return out, h0
    return out, out[-1]


def _scan_inputs(seed, T, B, H, dtype):
    rng = _rng(seed)
    a = rng.uniform(0.7, 1.0, (T, B, H)).astype(dtype)    # gates a_t = 1 - z_t
    b = _randn(rng, (T, B, H), dtype)
    h0 = _randn(rng, (B, H), dtype)
    return rng, a, b, h0


def _first_wrong_step(actual, expected):
    for t in range(expected.shape[0]):
        if not same_values(actual[t].copy(), expected[t].copy()):
            return t
    return None


def _scan_hint(wrong, actuals, expecteds, matched=False):
    """Which position of the scan is the first to go wrong, and what that says."""
    if matched or "h" not in wrong:
        return None
    t0 = _first_wrong_step(actuals[0], expecteds[0])
    if t0 is None:
        return None
    if t0 == 0:
        return ("h[0] is already wrong: the state after step 0 is a[0] * h0 + "
                "b[0] (fold h0 in before the rounds).")
    if t0 & (t0 - 1) == 0:
        return (f"h is right for t < {t0} and first differs at t = {t0}, the "
                f"first position the round with offset d = {t0} changes: check "
                f"that this round runs (while d < T, d doubling) and what it "
                f"computes.")
    return (f"h is right for t < {t0} and first differs at t = {t0}: check the "
            f"rounds' offsets and which values each round reads.")


def _uses_the_scan(wrong, actuals, expecteds, matched=False):
    """Parts B and C run the student's linear_scan: a wrong scan shows here."""
    if matched:
        return None
    return ("this part calls your linear_scan: if Part A's checks fail, "
            "correct it first.")


def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import mingru as reference

    def scan_case(name, seed, T, B, H, dtype):
        _, a, b, h0 = _scan_inputs(3000 + seed, T, B, H, dtype)
        hyps = [(text, (_scan_variant(a, b, h0, mode),)) for mode, text in _SCAN_HINTS]
        return _Case(name, (a, b, h0), None, (_loop(a, b, h0),), hyps)

    def backward_case(name, seed, T, B, H, dtype):
        rng, a, b, h0 = _scan_inputs(3100 + seed, T, B, H, dtype)
        h = _loop(a, b, h0)
        g_out = _randn(rng, (T, B, H), dtype)
        expected = tuple(np.ascontiguousarray(v) for v in
                         reference.linear_scan_backward(g_out, a, h0, h,
                                                        parallel=False))
        hyps = [(text, _backward_variant(g_out, a, h0, h, mode))
                for mode, text in _BACKWARD_HINTS]
        return _Case(name, (g_out, a, h0, h), None, expected, hyps)

    def mingru_case(name, seed, T, B, D, H, dtype):
        rng = _rng(3200 + seed)
        x = _randn(rng, (T, B, D), dtype)
        h0 = _randn(rng, (B, H), dtype)
        w_z, w_h = _randn(rng, (H, D), dtype, 0.5), _randn(rng, (H, D), dtype, 0.5)
        b_z, b_h = _randn(rng, (H,), dtype, 0.5), _randn(rng, (H,), dtype)
        args = (x, h0, w_z, w_h, b_z, b_h)
        out, h_n, _ = reference.mingru_forward(*args, parallel=False)
        hyps = [(text, _mingru_variant(*args, mode)) for mode, text in _MINGRU_HINTS]
        return _Case(name, args, None, (out, h_n),
                     [(text, v) for text, v in hyps if v[0] is not None])

    for part, label, make, visible, hidden in (
            ("linear_scan", "Part A (linear_scan)", scan_case,
             _SCAN_VISIBLE, _SCAN_HIDDEN),
            ("linear_scan_backward", "Part B (linear_scan_backward)",
             backward_case, _BACKWARD_VISIBLE, _BACKWARD_HIDDEN),
            ("mingru_forward", "Part C (mingru_forward)", mingru_case,
             _MINGRU_VISIBLE, _MINGRU_HIDDEN)):
        _PARTS[part] = _spec_part(label, _NAMES, make, visible, hidden)


def linear_scan(fn, which="visible"):
    """Part A of 12_parallel_scan: ``h = fn(a, b, h0)``, h_t = a_t h_{t-1} + b_t
    for every t, against the loop."""
    part, cases = _graded("linear_scan", fn, which)
    for where, case in cases:
        h = _run(where, fn, part, thaw(case.args), {})
        _check_outputs(where, ["h"], [h], list(thaw(case.expected)), case.hyps,
                       _scan_hint)


def linear_scan_backward(fn, which="visible"):
    """Part B of 12_parallel_scan: ``fn(g_out, a, h0, h)`` -> (da, db, dh0),
    the gradients of the linear recurrence."""
    _check_returns("linear_scan_backward", fn, which, ["da", "db", "dh0"],
                   _uses_the_scan)


def mingru_forward(fn, which="visible"):
    """Part C of 12_parallel_scan: ``out, h_n = fn(x, h0, w_z, w_h, b_z, b_h)``,
    minGRU's forward pass through the student's scan."""
    _check_returns("mingru_forward", fn, which, ["out", "h_n"], _uses_the_scan)

