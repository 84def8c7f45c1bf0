"""The checks that the graded test cells of the exercises call.

The first cell of every assignment runs ``checks.prepare("<assignment>")``
before any student code: it computes every input and expected value with
lstmlib's reference implementation (itself tested against PyTorch) from
fixed seeds and freezes them. Each part then has one public function here,
called as ``checks.<part>(student_function, "visible")`` by the self-check
cell and with ``"hidden"`` by the hidden-test cell. A part fails with an
AssertionError that shows the student's value beside the expected one and
names the likely cause: which gate, which time step, which term.

Order of the checks for every returned array: exact type np.ndarray, then
shape, then dtype, then values (see :mod:`lstmlib.grading._core`).
"""

from . import _core, guards
from ._core import (compare, fail, fmt, freeze, gate_blocks, same_values,
                    thaw, time_steps_hit, unpack)

_PARTS = {}          # part name -> _Part
_PREPARED = []       # names of prepared assignments

LSTM_GATES = ("i (input)", "f (forget)", "g (candidate)", "o (output)")
GRU_GATES = ("r (reset)", "z (update)", "n (candidate)")


class _Part:
    def __init__(self, label, names, cases, module_names=(), wrap=None):
        self.label = label              # "Part A (rnn_step_forward)"
        self.names = names              # graded names: delegation is refused
        self.module_names = module_names
        self.cases = cases              # {"visible": [...], "hidden": [...]}
        self.wrap = wrap


class _Case:
    def __init__(self, name, args, kwargs=None, expected=None, hyps=None,
                 extra=None):
        self.name = name
        self.args = freeze(args)
        self.kwargs = freeze(kwargs or {})
        self.expected = freeze(expected)
        self.hyps = [(text, freeze(v)) for text, v in (hyps or [])]
        self.extra = freeze(extra)


def _get_part(name):
    part = _PARTS.get(name)
    if part is None:
        fail(f"the checks for {name} were not prepared: run the first cell of "
             f"the notebook (it calls checks.prepare) before the tests.")
    return part


def _run(where, fn, part, args, kwargs):
    """Call the student's function under the delegation tripwires."""
    tw = guards.tripwires(part.names, part.wrap)
    with tw:
        try:
            out = fn(*args, **kwargs)
        except guards.DelegationError:
            out = None
        except _core.GradingError:
            raise
        except _core._Exception as e:
            guards.check_log(where, tw.log)
            msg = _core._str(e)
            if _core._len(msg) > 300:
                msg = msg[:300] + " ..."
            fail(f"{where}: your function raised {_core._type(e).__name__}: {msg}")
    guards.check_log(where, tw.log)
    return out


def _cases(part, which):
    if which not in ("visible", "hidden"):
        fail(f"which: expected 'visible' or 'hidden', received {which!r}")
    return part.cases[which]


def _matching_hypothesis(values, hyps, index=None):
    """The text of the first hypothesis whose arrays all equal ``values``
    (``index`` restricts the comparison to one item)."""
    for text, frozen in hyps:
        hv = thaw(frozen)
        if index is not None:
            if same_values(values[index], hv[index]):
                return text
            continue
        ok = True
        for v, h in _core._zip(values, hv):
            if h is None:
                continue
            if not same_values(v, h):
                ok = False
                break
        if ok:
            return text
    return None


def _check_outputs(where, names, actuals, expecteds, hyps, hint=None):
    """Type/shape/dtype of every output first, then values; on a value
    mismatch report every term that differs and the likely cause."""
    for name, a, e in _core._zip(names, actuals, expecteds):
        if e is None:
            compare(where, name, a, e)
        else:
            _core.check_type_shape_dtype(where, name, a, e)
    wrong = []
    for name, a, e in _core._zip(names, actuals, expecteds):
        if e is not None and not same_values(a, e):
            wrong.append(name)
    if not wrong:
        return
    first = wrong[0]
    k = names.index(first)
    right = [n for n, e in _core._zip(names, expecteds) if e is not None and n not in wrong]
    summary = f"wrong: {', '.join(wrong)}" + (f"; right: {', '.join(right)}" if right else "")

    def cause(bad):
        text = _matching_hypothesis(actuals, hyps)
        if text is None:
            for j, n in _core._enumerate(names):
                if n in wrong:
                    text = _matching_hypothesis(actuals, hyps, j)
                    if text:
                        text = f"{n}: {text}"
                        break
        extra = hint(wrong, actuals, expecteds) if hint else None
        if text and extra:
            return f"{text}\n  ({extra})"
        return text or extra

    compare(f"{where} [{summary}]", first, actuals[k], expecteds[k], cause)


# ---------------------------------------------------------------------------
# Random fixtures

def _rng(seed):
    return _core._default_rng(seed)


def _randn(rng, shape, dtype="float64", scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _weights(rng, G, D, H, dtype, bias=True, scale=0.5):
    w_ih = _randn(rng, (G * H, D), dtype, scale)
    w_hh = _randn(rng, (G * H, H), dtype, scale)
    if not bias:
        return w_ih, w_hh, None, None
    return w_ih, w_hh, _randn(rng, (G * H,), dtype, scale), _randn(rng, (G * H,), dtype, scale)


def _zeros_like(a):
    return None if a is None else a * 0


# ---------------------------------------------------------------------------
# 01 rnn_forward

def _prepare_rnn_forward():
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
                   ((0.5 * (1 + _core._np_tanh(0.5 * a))).astype(a.dtype),)))
        hy.append(("h_prev is ignored: the recurrent term h_prev @ w_hh.T is "
                   "missing.", (step(x, h * 0, w_ih, w_hh, b_ih, b_hh, nl)[0],)))
        return hy

    def step_case(name, seed, B, D, H, nl="tanh", bias=True, dtype="float64"):
        rng = _rng(seed)
        w_ih, w_hh, b_ih, b_hh = _weights(rng, 1, D, H, dtype, bias)
        x = _randn(rng, (B, D), dtype)
        h = _randn(rng, (B, H), dtype, 0.8)
        hh, _ = step(x, h, w_ih, w_hh, b_ih, b_hh, nl)
        return _Case(name, (x, h, w_ih, w_hh, b_ih, b_hh),
                     {"nonlinearity": nl}, (hh,),
                     step_hyps(x, h, w_ih, w_hh, b_ih, b_hh, nl))

    _PARTS["rnn_step_forward"] = _Part(
        "Part A (rnn_step_forward)", names, {
            "visible": [step_case("B=3, D=4, H=5, tanh", 101, 3, 4, 5)],
            "hidden": [
                step_case("B=1, D=3, H=2, relu", 102, 1, 3, 2, "relu"),
                step_case("B=4, D=5, H=5, tanh", 103, 4, 5, 5),
                step_case("B=2, D=3, H=4, no biases", 104, 2, 3, 4, bias=False),
                step_case("B=2, D=3, H=3, float32", 105, 2, 3, 3, dtype="float32"),
            ]})

    def seq_case(name, seed, T, B, D, H, nl="tanh", bias=True, dtype="float64"):
        rng = _rng(seed)
        w_ih, w_hh, b_ih, b_hh = _weights(rng, 1, D, H, dtype, bias)
        x = _randn(rng, (T, B, D), dtype)
        h0 = _randn(rng, (B, H), dtype, 0.8)
        out, h_n, _ = seqf(x, h0, w_ih, w_hh, b_ih, b_hh, nl)
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
            stale = _core._np_concatenate([step(x[t], h0, w_ih, w_hh, b_ih, b_hh, nl)[0][None]
                                           for t in _core._range(T)])
            hy.append(("the state is not carried from step to step: every step "
                       "starts from h0 instead of the previous step's h.",
                       (stale, stale[-1])))
            shifted = _core._np_concatenate([h0[None], out[:-1]])
            hy.append(("off by one time step: out[t] holds the state before "
                       "step t (store h after computing step t).",
                       (shifted, None)))
            hy.append(("h_n is the state after the first step, not the last.",
                       (out, out[0])))
        hy.append(("h_n should be the state after the last step (out[T-1]), "
                   "not h0.", (out, h0)))
        return _Case(name, (x, h0, w_ih, w_hh, b_ih, b_hh), {"nonlinearity": nl},
                     (out, h_n), hy)

    _PARTS["rnn_forward"] = _Part(
        "Part B (rnn_forward)", names, {
            "visible": [seq_case("T=5, B=3, D=4, H=5, tanh", 201, 5, 3, 4, 5)],
            "hidden": [
                seq_case("T=1, B=2, D=3, H=4", 202, 1, 2, 3, 4),
                seq_case("T=4, B=1, D=2, H=3, relu", 203, 4, 1, 2, 3, "relu"),
                seq_case("T=3, B=2, D=3, H=3, no biases", 204, 3, 2, 3, 3, bias=False),
                seq_case("T=6, B=2, D=3, H=4, float32", 205, 6, 2, 3, 4, dtype="float32"),
            ]})


def _forward_time_hint(wrong, actuals, expecteds):
    if "out" not in wrong:
        return None
    out, exp = actuals[0], expecteds[0]
    steps = []
    T = exp.shape[0]
    for t in _core._range(T):
        if not same_values(out[t], exp[t]):
            steps.append(t)
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
    part = _get_part("rnn_step_forward")
    guards.require_own_function(part.label, fn, part.names)
    for case in _cases(part, which):
        where = f"{part.label}, case {case.name}"
        out = _run(where, fn, part, thaw(case.args), thaw(case.kwargs))
        h, _cache = unpack(where, out, 2, "(h, cache)")
        exp = thaw(case.expected)
        _check_outputs(where, ["h"], [h], _core._list(exp), case.hyps)


def rnn_forward(fn, which="visible"):
    """Part B of 01_rnn_forward: ``out, h_n, cache = fn(x, h0, w_ih, w_hh,
    b_ih, b_hh, nonlinearity=...)``."""
    part = _get_part("rnn_forward")
    guards.require_own_function(part.label, fn, part.names)
    for case in _cases(part, which):
        where = f"{part.label}, case {case.name}"
        out = _run(where, fn, part, thaw(case.args), thaw(case.kwargs))
        o, h_n, _cache = unpack(where, out, 3, "(out, h_n, cache)")
        exp = thaw(case.expected)
        _check_outputs(where, ["out", "h_n"], [o, h_n], _core._list(exp),
                       case.hyps, _forward_time_hint)


# ---------------------------------------------------------------------------
# 02 bptt

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
    def hint(wrong, actuals, expecteds):
        if _core._len(wrong) >= 4:
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
        th = _core._np_tanh(h)
        da = dh * (1 - th * th)
    elif mode == "pre_act":
        da = dh * (1 - h)
    else:
        raise ValueError(mode)
    db = da.sum(axis=0) if has_bias else None
    return (da @ w_ih, da @ w_hh, da.T @ x, da.T @ h_prev, db, db)


def _prepare_bptt():
    from lstmlib import rnn
    step = rnn.rnn_step_forward
    step_b = rnn.rnn_step_backward
    seqf = rnn.rnn_forward
    seqb = rnn.rnn_backward
    Cache = rnn.RNNStepCache
    names = ("rnn_step_backward", "rnn_backward", "numerical_gradient")

    def step_case(name, seed, B, D, H, nl="tanh", bias=True, dtype="float64"):
        rng = _rng(seed)
        w_ih, w_hh, b_ih, b_hh = _weights(rng, 1, D, H, dtype, bias)
        x = _randn(rng, (B, D), dtype)
        h = _randn(rng, (B, H), dtype, 0.8)
        _, cache = step(x, h, w_ih, w_hh, b_ih, b_hh, nl)
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
        return _Case(name, (dh, cache), None, _core._tuple(g), hy)

    _PARTS["rnn_step_backward"] = _Part(
        "Part A (rnn_step_backward)", names, {
            "visible": [step_case("B=3, D=4, H=5, tanh", 301, 3, 4, 5)],
            "hidden": [
                step_case("B=1, D=3, H=2, relu", 302, 1, 3, 2, "relu"),
                step_case("B=4, D=5, H=5, tanh", 303, 4, 5, 5),
                step_case("B=2, D=3, H=4, no biases", 304, 2, 3, 4, bias=False),
                step_case("B=2, D=3, H=3, float32", 305, 2, 3, 3, dtype="float32"),
            ]})

    def bptt_variant(cache, d_out, dh_n, carry=True, accumulate=True,
                     shift=False):
        x, h0, states, mask, w_ih, w_hh, nl, has_bias, reverse = cache
        T = x.shape[0]
        dh = (h0 * 0) if dh_n is None else dh_n.copy()
        total = None
        for t in _core._range(T - 1, -1, -1):
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
                total = [None if a is None else a + b for a, b in _core._zip(total, parts)]
            if t == T - 1:
                dxs = [None] * T
            dxs[t] = g.dx
        dx = _core._np_concatenate([d[None] for d in dxs])
        return (dx, dh, *total)

    def seq_case(name, seed, T, B, D, H, nl="tanh", bias=True, dtype="float64",
                 with_dh_n=True):
        rng = _rng(seed)
        w_ih, w_hh, b_ih, b_hh = _weights(rng, 1, D, H, dtype, bias)
        x = _randn(rng, (T, B, D), dtype)
        h0 = _randn(rng, (B, H), dtype, 0.8)
        _, _, cache = seqf(x, h0, w_ih, w_hh, b_ih, b_hh, nl)
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
                       _core._tuple(seqb(d_out, None, cache))))
        return _Case(name, (d_out, dh_n, cache), None, _core._tuple(g), hy)

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
        rng = _rng(seed)
        x = _randn(rng, shape, "float64")
        W = _randn(rng, (shape[-1], 3), "float64")
        df = _randn(rng, shape[:-1] + (3,), "float64") if with_df else None
        y = _core._np_tanh(x @ W)
        g = (1 - y * y) if df is None else (1 - y * y) * df
        expected = g @ W.T
        return _Case(name, (x, W, df, h), None, (expected,))

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
    part = _get_part("rnn_step_backward")
    guards.require_own_function(part.label, fn, part.names)
    terms = ["dx", "dh_prev", "dw_ih", "dw_hh", "db_ih", "db_hh"]
    for case in _cases(part, which):
        where = f"{part.label}, case {case.name}"
        out = _run(where, fn, part, thaw(case.args), {})
        got = unpack(where, out, 6, "(dx, dh_prev, dw_ih, dw_hh, db_ih, db_hh)")
        _check_outputs(where, terms, got, _core._list(thaw(case.expected)),
                       case.hyps, _term_hint(_RNN_TERM_HINTS))


def _bptt_time_hint(table):
    term = _term_hint(table)

    def hint(wrong, actuals, expecteds):
        text = term(wrong, actuals, expecteds)
        if "dx" not in wrong:
            return text
        dx, exp = actuals[0], expecteds[0]
        T = exp.shape[0]
        bad = [t for t in _core._range(T) if not same_values(dx[t], exp[t])]
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
                     f"step {last + 1} to step {last} (dh_next) is wrong or "
                     f"missing.")
        return where + ("\n  " + text if text else "")
    return hint


def rnn_backward(fn, which="visible"):
    """Part B of 02_bptt: ``fn(d_out, dh_n, cache)`` -> (dx, dh0, dw_ih,
    dw_hh, db_ih, db_hh) for lstmlib.rnn.RNNCache ``cache``."""
    part = _get_part("rnn_backward")
    guards.require_own_function(part.label, fn, part.names)
    terms = ["dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"]
    for case in _cases(part, which):
        where = f"{part.label}, case {case.name}"
        out = _run(where, fn, part, thaw(case.args), {})
        got = unpack(where, out, 6, "(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)")
        _check_outputs(where, terms, got, _core._list(thaw(case.expected)),
                       case.hyps, _bptt_time_hint(_RNN_TERM_HINTS))


def numerical_gradient(fn, which="visible"):
    """Part C of 02_bptt: ``fn(f, x, df, h)`` -> dL/dx by central differences
    for L = sum(f() * df), f reading x in place."""
    part = _get_part("numerical_gradient")
    guards.require_own_function(part.label, fn, part.names)
    tanh = _core._np_tanh
    for case in _cases(part, which):
        where = f"{part.label}, case {case.name}"
        x, W, df, h = thaw(case.args)
        x0 = x.copy()
        calls = [0]

        def f():
            calls[0] += 1
            return tanh(x @ W)

        out = _run(where, fn, part, (f, x, df, h), {})
        exp = thaw(case.expected)[0]
        _core.check_type_shape_dtype(where, "the gradient", out, exp)
        if not same_values(x, x0, 0.0, 0.0):
            fail(f"{where}: x was changed by your function: after perturbing "
                 f"x[i] by +h and -h, put the original value back.")
        n = _core._int(x.size)
        if calls[0] < 2 * n:
            fail(f"{where}: f was called {calls[0]} times, but central "
                 f"differences need 2 calls per entry of x ({2 * n}).")

        def cause(bad):
            for scale, text in ((2.0, "divide by 2*h (central differences), "
                                      "not by h."),
                                (0.5, "the difference is f(x+h) - f(x-h) "
                                      "divided by 2*h, not by 4*h.")):
                if same_values(out, exp * scale, 1e-4, 1e-6):
                    return text
            if df is not None:
                return ("L = sum(f() * df): multiply the difference of the two "
                        "evaluations by df before summing.")
            return "check the perturbation of x[i] and the sum over f's output."

        compare(where, "the gradient", out, exp, cause, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------

_PREPARERS = {
    "01_rnn_forward": _prepare_rnn_forward,
    "02_bptt": _prepare_bptt,
}


def prepare(assignment):
    """Compute and freeze every fixture of ``assignment`` (call this in the
    first cell, before any student code)."""
    if assignment not in _PREPARERS:
        raise ValueError(f"assignment: expected one of {sorted(_PREPARERS)}, "
                         f"received {assignment!r}")
    if assignment not in _PREPARED:
        _PREPARERS[assignment]()
        _PREPARED.append(assignment)
