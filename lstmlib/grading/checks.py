"""The checks of the exercises' graded parts.

Each part has one public function here, ``<part>(handle, which)``: it draws
the part's cases (``which`` is ``"visible"`` or ``"hidden"``), computes the
expected values with lstmlib's reference implementation (itself tested
against PyTorch), has the student's function called on the inputs through
``handle`` and compares what comes back. A part fails with a
:class:`~lstmlib.grading._core.GradingError` (an AssertionError) that shows
the student's value beside the expected one and names the likely cause:
which gate, which time step, which term.

The handle decides where the student's function runs. When a notebook is
graded, it is a :class:`lstmlib.grading.trusted.RemoteFunction`: this module
runs in the grader's process, the kernel receives the function's name and
the inputs only, and the cases are drawn from a seed made afresh for each
grading (:func:`prepare` with ``salt``). At home, the self-check cells call
:mod:`lstmlib.selfcheck.checks`, whose handles call the function in the
student's kernel with the fixed seeds of the notebook's self-checks.

Order of the checks for every returned array: exact type np.ndarray, then
shape, then dtype, then values (see :mod:`lstmlib.grading._core`).
"""

import math

import numpy as np

from . import _core, protocol
from ._core import (compare, fail, fmt, freeze, gate_blocks, same_values,
                    thaw, unpack)


_PARTS = {}          # part name -> _Part
_PREPARED = []       # names of prepared assignments
_SALT = [None]       # the grading's fresh seed (None: the fixed self-check seeds)

LSTM_GATES = ("i (input)", "f (forget)", "g (candidate)", "o (output)")
GRU_GATES = ("r (reset)", "z (update)", "n (candidate)")


class _Part:
    def __init__(self, label, names, cases, module_names=(), wrap=None):
        self.label = label              # "Part A (rnn_step_forward)"
        self.names = names              # graded names (sent; the kernel ignores them)
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


def _ask(where, part, recipe, fns, payload, raised=None):
    """Have the student's functions ``fns`` (handles) run ``recipe`` on
    ``payload`` (plain data) where they live; return their answer, decoded
    as plain data. A refusal (delegation), an exception or a call that got
    no answer fails the part here."""
    __tracebackhide__ = True
    request = {"recipe": recipe, "where": where,
               "functions": [f.name for f in fns],
               "names": list(part.names), "wrap": part.wrap,
               "payload": protocol.encode(payload), "_handles": list(fns)}
    reply = fns[0].ask(request)
    if type(reply) is not dict:
        fail(f"{where}: the grader could not read the kernel's reply.")
    if "ok" in reply:
        try:
            return protocol.decode(reply["ok"])
        except protocol.ProtocolError as exc:
            fail(f"{where}: your function's answer is not plain data ({exc}).")
    if "refused" in reply:
        fail(str(reply["refused"]))
    if "raised" in reply:
        if raised is not None:
            fail(raised(str(reply["raised"])))
        fail(f"{where}: your function raised {reply['raised']}")
    if "lost" in reply:
        fail(f"{where}: {reply['lost']}")
    fail(f"{where}: the grader could not call your function "
         f"({str(reply.get('harness', 'no answer'))[:600]})")


def _run(where, fn, part, args, kwargs):
    """Call the student's function on ``args`` and ``kwargs``."""
    __tracebackhide__ = True
    return _ask(where, part, "call", [fn], {"args": list(args),
                                            "kwargs": dict(kwargs)})


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
        for v, h in zip(values, hv):
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
    __tracebackhide__ = True
    for name, a, e in zip(names, actuals, expecteds):
        if e is None:
            compare(where, name, a, e)
        else:
            _core.check_type_shape_dtype(where, name, a, e)
    wrong = []
    for name, a, e in zip(names, actuals, expecteds):
        if e is not None and not same_values(a, e):
            wrong.append(name)
    if not wrong:
        return
    first = wrong[0]
    k = names.index(first)
    right = [n for n, e in zip(names, expecteds) if e is not None and n not in wrong]
    summary = f"wrong: {', '.join(wrong)}" + (f"; right: {', '.join(right)}" if right else "")

    def cause(bad):
        text = _matching_hypothesis(actuals, hyps)
        if text is None:
            for j, n in enumerate(names):
                if n in wrong:
                    text = _matching_hypothesis(actuals, hyps, j)
                    if text:
                        text = f"{n}: {text}"
                        break
        extra = hint(wrong, actuals, expecteds, text is not None) if hint else None
        if text and extra:
            return f"{text}\n  ({extra})"
        return text or extra

    compare(f"{where} [{summary}]", first, actuals[k], expecteds[k], cause)


def _graded(name, fn, which):
    """The part ``name``, once ``fn`` is known not to delegate, and its
    ``which`` cases as (where, case) pairs: ``where`` starts the messages."""
    __tracebackhide__ = True
    part = _get_part(name)
    return part, [(f"{part.label}, case {case.name}", case)
                  for case in _cases(part, which)]


def _check_returns(name, fn, which, names, hint=None, ungraded=None):
    """Grade a part whose function returns the tuple ``names + ungraded``
    (e.g. a cache last): the arrays ``names`` against the expected ones."""
    __tracebackhide__ = True
    part, cases = _graded(name, fn, which)
    returned = names + (ungraded or [])
    what = "(" + ", ".join(returned) + ")"
    for where, case in cases:
        out = _run(where, fn, part, thaw(case.args), thaw(case.kwargs))
        got = unpack(where, out, len(returned), what)
        _check_outputs(where, names, got[:len(names)],
                       list(thaw(case.expected)), case.hyps, hint)


# ---------------------------------------------------------------------------
# Random fixtures

def _rng(seed):
    """The generator of the case numbered ``seed``: fixed at home, drawn
    afresh for each grading (the salt)."""
    if _SALT[0] is None:
        return np.random.default_rng(seed)
    return np.random.default_rng([seed, _SALT[0]])


def _seed(seed):
    """What the kernel receives to seed a generator of its own."""
    return seed if _SALT[0] is None else [seed, _SALT[0]]


def _randn(rng, shape, dtype="float64", scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _weights(rng, G, D, H, dtype, bias=True, scale=0.5):
    w_ih = _randn(rng, (G * H, D), dtype, scale)
    w_hh = _randn(rng, (G * H, H), dtype, scale)
    if not bias:
        return w_ih, w_hh, None, None
    return w_ih, w_hh, _randn(rng, (G * H,), dtype, scale), _randn(rng, (G * H,), dtype, scale)


def _mixed_signs(h, nonlinearity):
    """For ReLU: some units active, some not, and active values away from 1
    (so that h and 1[h > 0] differ)."""
    if nonlinearity != "relu":
        return True
    vals = _core.as_plain(h)
    pos = [v for v in vals if v > 0]
    return 0 < len(pos) < len(vals) and \
        any(abs(v - 1) > 0.1 for v in pos)


def _zeros_like(a):
    return None if a is None else a * 0


def _draw_inputs(rng, G, x_shape, H, bias, dtype, cell=False):
    """(x, h0, [c0,] w_ih, w_hh, b_ih, b_hh) of a layer with ``G`` gates,
    drawn from ``rng`` in the order: weights, x, h0 and, for an LSTM, c0."""
    w = _weights(rng, G, x_shape[-1], H, dtype, bias)
    x = _randn(rng, x_shape, dtype)
    h = _randn(rng, (x_shape[-2], H), dtype, 0.8)
    if cell:
        return (x, h, _randn(rng, (x_shape[-2], H), dtype, 1.0)) + w
    return (x, h) + w


def _rnn_inputs(run, seed, x_shape, H, nl, bias, dtype):
    """Inputs of a vanilla RNN from ``_rng(seed)``, drawn again until the
    first result of ``run(*inputs, nl)`` has both active and inactive units
    (for ReLU): the generator, the inputs and ``run``'s result."""
    rng = _rng(seed)
    while True:
        args = _draw_inputs(rng, 1, x_shape, H, bias, dtype)
        result = run(*args, nl)
        if _mixed_signs(result[0], nl):
            return rng, args, result


# the cases of a cell's step: (name, seed, B, D, H, bias, dtype), shared by the
# LSTM and GRU cells
_STEP_SPECS_VISIBLE = [("B=3, D=4, H=5", 0, 3, 4, 5, True, "float64")]
_STEP_SPECS_HIDDEN = [
    ("B=1, D=3, H=2", 1, 1, 3, 2, True, "float64"),
    ("B=4, D=4, H=4", 2, 4, 4, 4, True, "float64"),
    ("B=2, D=3, H=3, no biases", 3, 2, 3, 3, False, "float64"),
    ("B=2, D=3, H=4, float32", 4, 2, 3, 4, True, "float32"),
]


def _spec_part(label, names, make, visible=_STEP_SPECS_VISIBLE,
               hidden=_STEP_SPECS_HIDDEN):
    """A part whose cases are ``make(*spec)`` for each spec (by default the
    step specs shared by the LSTM and GRU cells)."""
    return _Part(label, names, {"visible": [make(*spec) for spec in visible],
                                "hidden": [make(*spec) for spec in hidden]})


# ---------------------------------------------------------------------------
# 01 rnn_forward

# the cases of a vanilla RNN step, shared by 01 and 02: (name, seed, B, D, H,
# nonlinearity, bias, dtype)
_RNN_STEP_SPECS_VISIBLE = [("B=3, D=4, H=5, tanh", 1, 3, 4, 5, "tanh", True, "float64")]
_RNN_STEP_SPECS_HIDDEN = [
    ("B=1, D=3, H=2, relu", 2, 1, 3, 2, "relu", True, "float64"),
    ("B=4, D=5, H=5, tanh", 3, 4, 5, 5, "tanh", True, "float64"),
    ("B=2, D=3, H=4, no biases", 4, 2, 3, 4, "tanh", False, "float64"),
    ("B=2, D=3, H=3, float32", 5, 2, 3, 3, "tanh", True, "float32"),
]


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


def _prepare_bptt():
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
        _core.check_type_shape_dtype(where, "the gradient", out, exp)
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
# Gated cells (LSTM, GRU): shared helpers

def _sig(a):
    return (0.5 * (1 + np.tanh(0.5 * a))).astype(a.dtype)


def _permute_gates(w, H, order):
    """Rows of a (G*H, ...) weight or (G*H,) bias with gate blocks reordered:
    block k of the result is block order[k] of ``w``."""
    if w is None:
        return None
    return np.concatenate([w[g * H:(g + 1) * H] for g in order])


def _swapped_gates(weights, H, G, p, q):
    """(w_ih, w_hh, b_ih, b_hh) of a layer with ``G`` gates, with the blocks
    of gates ``p`` and ``q`` exchanged."""
    order = list(range(G))
    order[p], order[q] = q, p
    return [_permute_gates(w, H, order) for w in weights]


def _gate_hint(num_gates, gate_names, terms, table):
    """Hint naming the gate blocks (rows of dw_ih, dw_hh, db_*) that differ."""
    def hint(wrong, actuals, expecteds, matched=False):
        if matched:
            return None
        parts = []
        for name in ("dw_ih", "dw_hh", "db_ih", "db_hh"):
            if name in wrong:
                k = terms.index(name)
                a, e = actuals[k], expecteds[k]
                bad, _ = _core.mismatches(a, e)
                gates = gate_blocks(bad, e.shape, 0, num_gates, gate_names)
                if gates and len(gates) < num_gates:
                    H = e.shape[0] // num_gates
                    rows = ", ".join(
                        f"{g} (rows {gate_names.index(g) * H}:"
                        f"{(gate_names.index(g) + 1) * H})" for g in gates)
                    parts.append(f"in {name} only the rows of gate(s) {rows} "
                                 f"differ: check the gradient of those gates' "
                                 f"pre-activations.")
                    break
        other = " ".join(table[n] for n in wrong if n in table and
                         n not in ("dw_ih", "dw_hh", "db_ih", "db_hh",
                                   "dx", "dh_prev", "dh0"))
        if not parts and not other:
            other = " ".join(table[n] for n in wrong if n in table)
        if other:
            parts.append(other)
        if not parts and len(wrong) >= 4:
            parts.append("almost every term is wrong: check the gradient that "
                         "all of them share (the pre-activation gradient da).")
        return " ".join(parts) or None
    return hint


# ---------------------------------------------------------------------------
# 04 lstm_cell

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


def _prepare_lstm_cell():
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
# 05 lstm_sequence

def _prepare_lstm_sequence():
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
# 06 gru

_GRU_TERM_HINTS = {
    "dx": "dx = dgx @ w_ih, with dgx the (B, 3H) gradient of the input "
          "projections.",
    "dh_prev": "dh_prev = dh * z + dgh @ w_hh: h_prev reaches h directly "
               "(through z) and through the hidden projections.",
    "dw_ih": "dw_ih = dgx.T @ x.",
    "dw_hh": "dw_hh = dgh.T @ h_prev; in the n block dgh = dn_pre * r.",
    "db_ih": "db_ih = dgx.sum(axis=0).",
    "db_hh": "db_hh = dgh.sum(axis=0): its n block is scaled by r.",
}


def _gru_step_np(x, h, w_ih, w_hh, b_ih, b_hh, reset_before=False,
                 z_swap=False, b_hn_outside=False, n_act="tanh"):
    H = h.shape[1]
    gx = x @ w_ih.T
    gh = h @ w_hh.T
    if b_ih is not None:
        gx = gx + b_ih
        gh_b = gh + b_hh
    else:
        gh_b = gh
    r = _sig(gx[:, :H] + gh_b[:, :H])
    z = _sig(gx[:, H:2 * H] + gh_b[:, H:2 * H])
    if reset_before:
        hn = (r * h) @ w_hh[2 * H:].T
        if b_hh is not None:
            hn = hn + b_hh[2 * H:]
        pre = gx[:, 2 * H:] + hn
    elif b_hn_outside and b_hh is not None:
        pre = gx[:, 2 * H:] + r * gh[:, 2 * H:] + b_hh[2 * H:]
    else:
        pre = gx[:, 2 * H:] + r * gh_b[:, 2 * H:]
    n = np.tanh(pre) if n_act == "tanh" else _sig(pre)
    if z_swap:
        return (z * n + (1 - z) * h,)
    return ((1 - z) * n + z * h,)


def _gru_step_bwd_np(dh, cache, mode):
    x, h_prev, r, z, n, hn, w_ih, w_hh, has_bias = cache
    H = r.shape[1]
    dn = dh * (1 - z)
    dz = dh * (n - h_prev) if mode == "dz_sign" else dh * (h_prev - n)
    dan = dn * (1 - n * n)
    dr = dan * hn
    dgx = np.concatenate([dr * r * (1 - r), dz * z * (1 - z), dan], axis=1)
    dgh = dgx.copy()
    if mode != "n_not_scaled":
        dgh[:, 2 * H:] *= r
    dh_prev = dgh @ w_hh if mode == "no_direct" else dh * z + dgh @ w_hh
    db_ih = dgx.sum(axis=0) if has_bias else None
    db_hh = dgh.sum(axis=0) if has_bias else None
    return (dgx @ w_ih, dh_prev, dgx.T @ x, dgh.T @ h_prev, db_ih, db_hh)


def _prepare_gru():
    from lstmlib import gru
    step = gru.gru_step_forward
    step_b = gru.gru_step_backward
    names = ("gru_step_forward", "gru_step_backward", "gru_forward",
             "gru_backward")

    def inputs(seed, B, D, H, bias, dtype):
        return _draw_inputs(_rng(1000 + seed), 3, (B, D), H, bias, dtype)

    def fwd_case(name, seed, B, D, H, bias, dtype):
        args = inputs(seed, B, D, H, bias, dtype)
        x, h, w_ih, w_hh, b_ih, b_hh = args
        hh, _ = step(*args)
        hy = [
            ("the reset gate is applied before the matmul (W_hn (r * h)), as "
             "in some textbooks; PyTorch applies it after: r * (W_hn h + b_hn).",
             _gru_step_np(*args, reset_before=True)),
            ("z and 1 - z are swapped: h = (1 - z) * n + z * h_prev.",
             _gru_step_np(*args, z_swap=True)),
            ("wrong gate activation: the candidate n uses sigmoid, it must use "
             "tanh.", _gru_step_np(*args, n_act="sigmoid")),
        ]
        if b_ih is not None:
            hy.append(("b_hn is added outside the reset gate: it belongs "
                       "inside, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).",
                       _gru_step_np(*args, b_hn_outside=True)))
            hy.append(("the biases are missing (add b_ih and b_hh).",
                       (step(x, h, w_ih, w_hh, None, None)[0],)))
            hy.append(("b_hh is missing: PyTorch's GRU has two biases.",
                       (step(x, h, w_ih, w_hh, b_ih, b_hh * 0)[0],)))
        for p, q, text in ((0, 1, "r and z"), (0, 2, "r and n"), (1, 2, "z and n")):
            hy.append((f"gates {text} are swapped: the blocks are in the order "
                       f"r, z, n (rows 0:H, H:2H, 2H:3H).",
                       (step(x, h, *_swapped_gates(args[2:], H, 3, p, q))[0],)))
        return _Case(name, args, None, (hh,), hy)

    def bwd_case(name, seed, B, D, H, bias, dtype):
        args = inputs(seed + 10, B, D, H, bias, dtype)
        _, cache = step(*args)
        dh = _randn(_rng(1100 + seed), (B, H), dtype)
        g = step_b(dh, cache)
        hy = [
            ("dh_prev misses the direct path through z: h = (1 - z) * n + z * "
             "h_prev adds dh * z.", _gru_step_bwd_np(dh, cache, "no_direct")),
            ("the sign of dz: h = (1 - z) * n + z * h_prev gives dz = dh * "
             "(h_prev - n).", _gru_step_bwd_np(dh, cache, "dz_sign")),
            ("in the hidden projection's n block the gradient is scaled by r "
             "(n = tanh(.. + r * (W_hn h + b_hn))).",
             _gru_step_bwd_np(dh, cache, "n_not_scaled")),
        ]
        return _Case(name, (dh, cache), None, tuple(g), hy)

    _PARTS["gru_step_forward"] = _spec_part(
        "Part A (gru_step_forward)", names, fwd_case)
    _PARTS["gru_step_backward"] = _spec_part(
        "Part B (gru_step_backward)", names, bwd_case)


def gru_step_forward(fn, which="visible"):
    """Part A of 06_gru: ``h, cache = fn(x, h_prev, w_ih, w_hh, b_ih, b_hh)``."""
    _check_returns("gru_step_forward", fn, which, ["h"], ungraded=["cache"])


_GRU_STEP_TERMS = ["dx", "dh_prev", "dw_ih", "dw_hh", "db_ih", "db_hh"]


def gru_step_backward(fn, which="visible"):
    """Part B of 06_gru: ``fn(dh, cache)`` -> (dx, dh_prev, dw_ih, dw_hh,
    db_ih, db_hh) for lstmlib.gru.GRUStepCache."""
    _check_returns("gru_step_backward", fn, which, _GRU_STEP_TERMS,
                   _gate_hint(3, GRU_GATES, _GRU_STEP_TERMS, _GRU_TERM_HINTS))


# ---------------------------------------------------------------------------
# 07 bidirectional

def _reverse_padded_np(x, lengths):
    y = x.copy()
    for b, L in enumerate(lengths):
        y[:L, b] = x[:L, b][::-1]
    return y


def _prepare_bidirectional():
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
        mask = (np.array([[1.0 if t < l else 0.0 for l in lengths]
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
# 03 gradient_norms

GRADIENT_EXPERIMENT = {"T": 30, "D": 4, "H": 16, "x_seed": 0, "rnn_seed": 1,
                       "lstm_seed": 2, "forget_bias": 3.0, "near": 1, "far": 20}


def _prepare_gradient_norms():
    import lstmlib
    from lstmlib import analysis
    RNN, LSTM = lstmlib.RNN, lstmlib.LSTM
    ign = analysis.input_gradient_norms
    names = ("input_gradient_norms",)

    def layer_state(kind, seed, D, H, nl="tanh"):
        if kind == "rnn":
            layer = RNN(D, H, nonlinearity=nl, rng=_rng(seed))
        else:
            layer = LSTM(D, H, rng=_rng(seed))
        return layer

    def ign_case(name, kind, seed, T, B, D, H, nl="tanh", with_state=False):
        layer = layer_state(kind, 1400 + seed, D, H, nl)
        rng = _rng(1500 + seed)
        x = _randn(rng, (T, B, D))
        norms = ign(layer, x)
        hy = [("the norms are in reverse time order: entry t is for x_t.",
               (norms[::-1].copy(),))]
        return _Case(name, (kind, 1400 + seed, D, H, nl, x), None, (norms,), hy,
                     extra=dict(layer.params))

    _PARTS["input_gradient_norms"] = _Part(
        "Part A (input_gradient_norms)", names, {
            "visible": [ign_case("RNN tanh, T=6, B=2, D=3, H=4", "rnn", 0, 6, 2, 3, 4)],
            "hidden": [ign_case("LSTM, T=5, B=3, D=2, H=3", "lstm", 1, 5, 3, 2, 3),
                       ign_case("RNN relu, T=1, B=1, D=2, H=3", "rnn", 2, 1, 1, 2, 3, "relu"),
                       ign_case("LSTM, T=8, B=1, D=3, H=5", "lstm", 3, 8, 1, 3, 5)]})

    def fb_case(name, seed, D, H, value):
        layer = LSTM(D, H, rng=_rng(1600 + seed))
        before = dict(layer.params)
        after = {k: v.copy() for k, v in before.items()}
        after["bias_ih_l0"][H:2 * H] = value
        after["bias_hh_l0"][H:2 * H] = 0.0
        swapped = {k: v.copy() for k, v in before.items()}
        swapped["bias_ih_l0"][0:H] = value
        swapped["bias_hh_l0"][0:H] = 0.0
        both = {k: v.copy() for k, v in before.items()}
        both["bias_ih_l0"][H:2 * H] = value
        both["bias_hh_l0"][H:2 * H] = value
        hy = [("the input gate's block (rows 0:H) was set: the forget gate is "
               "the second block, rows H:2H (order i, f, g, o).", swapped),
              ("both biases were set to value, so the total forget bias is "
               "2 * value: set b_ih's block and zero b_hh's.", both)]
        return _Case(name, (1600 + seed, D, H, value), None, after, hy,
                     extra=before)

    _PARTS["set_forget_bias"] = _Part(
        "Part B (set_forget_bias)", names, {
            "visible": [fb_case("D=3, H=4, value 3", 0, 3, 4, 3.0)],
            "hidden": [fb_case("D=2, H=1, value -1", 1, 2, 1, -1.0),
                       fb_case("D=4, H=6, value 0", 2, 4, 6, 0.0)]})

    def ratio_case(name, seed, T, near, far):
        norms = np.exp(_randn(_rng(1700 + seed), (T,)))
        return _Case(name, (norms, near, far), None,
                     (float(norms[T - 1 - far] / norms[T - 1 - near]),),
                     [("near and far are swapped (ratio = far / near).",
                       (float(norms[T - 1 - near] / norms[T - 1 - far]),)),
                      ("the distance counts from the start: use norms[T-1-far] "
                       "/ norms[T-1-near].",
                       (float(norms[far] / norms[near]),))])

    _PARTS["gradient_ratio"] = _Part(
        "Part C (gradient_ratio)", names, {
            "visible": [ratio_case("T=30, near=1, far=20", 0, 30, 1, 20)],
            "hidden": [ratio_case("T=5, near=0, far=4", 1, 5, 0, 4),
                       ratio_case("T=12, near=2, far=7", 2, 12, 2, 7)]})

    # the experiment: the student's three functions run it on a configuration
    # sent from here (the layers' parameters and the input included) and the
    # ratios are compared with those measured here. The self-check uses the
    # notebook's configuration and tests the conclusions; the hidden test
    # draws another one and tests the numbers.
    def experiment_case(name, config, x, rnn, lstm):
        T, D, H = config["T"], config["D"], config["H"]
        near, far = config["near"], config["far"]
        layers, expected = {}, {}
        for key, layer, value in (("rnn", rnn, None), ("lstm", lstm, 0.0),
                                  ("lstm_forget_bias", lstm, config["forget_bias"])):
            kind = "rnn" if layer is rnn else "lstm"
            # the kernel receives the layer as drawn, before set_forget_bias
            spec = {"kind": kind, "D": D, "H": H, "nl": "tanh",
                    "params": {k: v.copy() for k, v in layer.params.items()}}
            params = {k: v.copy() for k, v in layer.params.items()}
            if value is not None:
                spec["forget_bias"] = value
                params["bias_ih_l0"][H:2 * H] = value
                params["bias_hh_l0"][H:2 * H] = 0.0
            norms = ign(_make_layer(kind, 0, D, H, "tanh", params), x)
            expected[key] = {"norms": norms,
                             "ratio": float(norms[T - 1 - far] / norms[T - 1 - near]),
                             "biases": {k: params[k] for k in ("bias_ih_l0", "bias_hh_l0")
                                        if k in params}}
            layers[key] = spec
        return _Case(name, (), None, expected,
                     extra={"x": x, "near": near, "far": far, "layers": layers,
                            "config": config})

    E = GRADIENT_EXPERIMENT
    notebook = dict(E)
    x = np.random.default_rng(E["x_seed"]).standard_normal((E["T"], 1, E["D"]))
    visible = experiment_case(
        "the notebook's configuration", notebook, x,
        RNN(E["D"], E["H"], rng=np.random.default_rng(E["rnn_seed"])),
        LSTM(E["D"], E["H"], rng=np.random.default_rng(E["lstm_seed"])))
    rng = _rng(1750)
    T = int(rng.integers(12, 31))
    near = int(rng.integers(0, 3))
    far = int(rng.integers(T // 2, T - 1))
    if (near, far) == (E["near"], E["far"]):
        far -= 1
    drawn = {"T": T, "D": int(rng.integers(2, 6)), "H": int(rng.integers(4, 13)),
             "B": int(rng.integers(1, 3)), "near": near, "far": far,
             "forget_bias": float(rng.choice([1.0, 2.0, 2.5, 4.0]))}
    hidden = experiment_case(
        f"a drawn configuration (T={T}, D={drawn['D']}, H={drawn['H']}, B={drawn['B']}, "
        f"near={near}, far={far}, forget bias {drawn['forget_bias']:g})", drawn,
        _randn(rng, (T, drawn["B"], drawn["D"])),
        RNN(drawn["D"], drawn["H"], rng=_rng(1751)), LSTM(drawn["D"], drawn["H"], rng=_rng(1752)))
    _PARTS["experiment"] = _Part("Part D (the experiment)", names,
                                 {"visible": [visible], "hidden": [hidden]})


def _make_layer(kind, seed, D, H, nl, params):
    import lstmlib
    layer = lstmlib.RNN(D, H, nonlinearity=nl, rng=_rng(seed)) if kind == "rnn" \
        else lstmlib.LSTM(D, H, rng=_rng(seed))
    for k, v in params.items():
        layer.params[k][...] = v
    return layer


def input_gradient_norms(fn, which="visible"):
    """Part A of 03_gradient_norms: ``fn(layer, x)`` -> (T,) norms of dL/dx_t
    for L = sum(output[T-1] * v), v = ones / sqrt(B*H)."""
    part, cases = _graded("input_gradient_norms", fn, which)
    for where, case in cases:
        kind, seed, D, H, nl, x = thaw(case.args)
        layer = _make_layer(kind, seed, D, H, nl, thaw(case.extra))
        spec = {"kind": kind, "D": D, "H": H, "nl": nl,
                "params": {k: v.copy() for k, v in layer.params.items()}}
        norms = _ask(where, part, "layer_call", [fn], {"layer": spec, "x": x})
        _check_outputs(where, ["the norms"], [norms],
                       list(thaw(case.expected)), case.hyps,
                       lambda w, a, e, m=False: "check the direction v (ones, normalised "
                       "to unit length) and that only the last step's output "
                       "gets a gradient.")


def set_forget_bias(fn, which="visible"):
    """Part B of 03_gradient_norms: ``fn(layer, value)`` sets the forget
    gate's total bias of a one-layer lstmlib.LSTM to ``value``."""
    part, cases = _graded("set_forget_bias", fn, which)
    for where, case in cases:
        seed, D, H, value = thaw(case.args)
        exp = thaw(case.expected)
        keys = sorted(exp)
        spec = {"kind": "lstm", "D": D, "H": H, "params": thaw(case.extra)}
        after = _ask(where, part, "layer_mutate", [fn],
                     {"layer": spec, "value": value, "keys": keys})
        if type(after) is not dict:
            fail(f"{where}: the grader could not read the layer's parameters.")
        got = [after.get(k) for k in keys]
        hyps = [(t, freeze([thaw(f)[k] for k in keys])) for t, f in case.hyps]
        _check_outputs(where, [f"layer.params[{k!r}]" for k in keys], got,
                       [exp[k] for k in keys], hyps,
                       lambda w, a, e, m=False: "the forget gate is the second block, "
                       "rows H:2H of bias_ih_l0 and bias_hh_l0; change them in "
                       "place.")


def gradient_ratio(fn, which="visible"):
    """Part C of 03_gradient_norms: ``fn(norms, near, far)`` ->
    norms[T-1-far] / norms[T-1-near] as a float."""
    part, cases = _graded("gradient_ratio", fn, which)
    for where, case in cases:
        norms, near, far = thaw(case.args)
        r = _core.to_float(where, "the ratio",
                           _run(where, fn, part, (norms, near, far), {}))
        exp = thaw(case.expected)[0]
        if abs(r - exp) <= 1e-9 * abs(exp) + 1e-300:
            continue
        cause = None
        for text, f in case.hyps:
            h = thaw(f)[0]
            if abs(r - h) <= 1e-9 * abs(h):
                cause = text
        fail(f"{where}: the ratio is {r!r}, expected {exp!r}."
             + (f"\n  Likely cause: {cause}" if cause else ""))


def _experiment_cause(key, got, exp, H):
    """Which of the student's functions made the ratio ``key`` differ."""
    biases = got.get("biases")
    biases = biases if type(biases) is dict else {}
    if key != "rnn":
        for k, e in exp["biases"].items():
            if not same_values(biases.get(k), e, 0.0, 0.0):
                return (f"after set_forget_bias, the LSTM's {k} is not the expected one: "
                        f"rows H:2H ({H}:{2 * H}) of bias_ih_l0 become the value, those of "
                        f"bias_hh_l0 0, nothing else changes (Part B).")
    if not same_values(got.get("norms"), exp["norms"]):
        return ("input_gradient_norms gives other norms for this layer than the "
                "grader's (Part A).")
    return ("the norms are right, so gradient_ratio is wrong: norms[T-1-far] / "
            "norms[T-1-near] (Part C).")


def experiment(input_gradient_norms, set_forget_bias, gradient_ratio, which="visible"):
    """Part D of 03_gradient_norms: the experiment, run by the student's
    ``input_gradient_norms``, ``set_forget_bias`` and ``gradient_ratio`` on
    a configuration sent from here (layers' parameters, input, near, far,
    forget bias), never read from the notebook's variables. The self-check
    ("visible") runs the notebook's configuration and tests the conclusions;
    the hidden test runs a configuration drawn here and compares the three
    ratios with the grader's own."""
    part = _get_part("experiment")
    case = _cases(part, which)[0]
    where = f"{part.label}, {case.name}"
    exp = thaw(case.expected)
    extra = thaw(case.extra)
    config = extra.pop("config")
    got = _ask(where, part, "experiment",
               [input_gradient_norms, set_forget_bias, gradient_ratio], extra)
    if type(got) is not dict or sorted(got) != sorted(exp):
        fail(f"{where}: the grader could not read the experiment's results.")
    ratios = {}
    for k in exp:
        if type(got[k]) is not dict:
            fail(f"{where}: the grader could not read the experiment's results.")
        ratios[k] = _core.to_float(where, f"gradient_ratio's value for {k!r}",
                                   got[k].get("ratio"))
    if which == "visible":
        # the conclusions, whatever the exact numbers
        if not ratios["rnn"] < 1e-2:
            fail(f"{where}: for the tanh RNN the gradient {config['far']} steps back "
                 f"should be far smaller than {config['near']} step back (ratio < 0.01), "
                 f"yours is {ratios['rnn']:.3g}: check input_gradient_norms and "
                 f"gradient_ratio.")
        if not ratios["lstm_forget_bias"] > ratios["lstm"]:
            fail(f"{where}: the LSTM with forget bias {config['forget_bias']} "
                 f"should keep more gradient than with forget bias 0: "
                 f"{ratios['lstm_forget_bias']:.3g} vs {ratios['lstm']:.3g}: check "
                 f"set_forget_bias.")
        return
    for k in ("rnn", "lstm", "lstm_forget_bias"):
        e = exp[k]["ratio"]
        if not abs(ratios[k] - e) <= 1e-6 * abs(e):
            fail(f"{where}: the ratio of {k!r} is {ratios[k]:.6g}, expected {e:.6g}.\n"
                 f"  Likely cause: {_experiment_cause(k, got[k], exp[k], config['H'])}")


# ---------------------------------------------------------------------------
# 08 training

TRAINING = {"T": 6, "batch": 32, "steps": 200, "max_norm": 1.0,
            "eval_n": 512, "threshold": 0.04, "chunk": 50, "max_hidden": 128}
_TRAIN = {}          # captured classes and functions for the training checks


def _prepare_training():
    import lstmlib
    from lstmlib import data, losses, optim
    _TRAIN.update(SequenceModel=lstmlib.SequenceModel, LSTM=lstmlib.LSTM,
                  GRU=lstmlib.GRU, RNN=lstmlib.RNN, Linear=lstmlib.Linear,
                  Adam=optim.Adam, SGD=optim.SGD, AdamW=optim.AdamW,
                  mse=losses.mse, clip=optim.clip_grad_norm, adding=data.adding_problem)
    names = ("mse", "clip_grad_norm", "train", "global_norm")
    ref_mse = losses.mse
    ref_clip = optim.clip_grad_norm

    def mse_case(name, seed, shape, dtype="float64"):
        rng = _rng(1800 + seed)
        pred = _randn(rng, shape, dtype)
        target = _randn(rng, shape, dtype)
        loss, d = ref_mse(pred, target)
        diff = pred - target
        hy = [("the gradient of the mean is 2 * (pred - target) / N, with N "
               "the number of entries.", (None, (diff / diff.size).astype(dtype))),
              ("the gradient lacks the 1/N of the mean.",
               (None, (2 * diff).astype(dtype)))]
        return _Case(name, (pred, target), None, (float(loss), d), hy)

    _PARTS["mse"] = _Part("Part A (mse)", names, {
        "visible": [mse_case("pred (4, 1)", 0, (4, 1))],
        "hidden": [mse_case("pred (3, 2, 5)", 1, (3, 2, 5)),
                   mse_case("pred (1, 1), float32", 2, (1, 1), "float32")]})

    def clip_case(name, seed, shapes, max_norm):
        rng = _rng(1900 + seed)
        grads = {f"p{k}": _randn(rng, s) for k, s in enumerate(shapes)}
        clipped = {k: v.copy() for k, v in grads.items()}
        norm = ref_clip(clipped, max_norm)
        return _Case(name, (grads, max_norm), None, (float(norm), clipped))

    _PARTS["clip_grad_norm"] = _Part("Part B (clip_grad_norm)", names, {
        "visible": [clip_case("norm above max_norm", 0, [(3, 2), (4,)], 1.0)],
        "hidden": [clip_case("norm below max_norm", 1, [(2, 2)], 100.0),
                   clip_case("three arrays, max_norm 0.5", 2,
                             [(2, 3), (3,), (1, 1)], 0.5)]})

    def build(seed, H, dtype):
        rng = _rng(seed)
        model = lstmlib.SequenceModel(lstmlib.LSTM(2, H, rng=rng, dtype=dtype),
                                      lstmlib.Linear(H, 1, rng=rng, dtype=dtype))
        return model

    def step_case(name, seed, H, steps, max_norm, lr, dtype="float64"):
        model = build(2000 + seed, H, dtype)
        init = {k: v.copy() for k, v in model.params.items()}
        opt = optim.Adam(model.params, lr=lr)
        rng = _rng(2100 + seed)
        batches = [data.adding_problem(8, 6, rng, dtype=dtype) for _ in range(steps)]
        loss = None
        for x, y in batches:
            pred = model.forward(x)
            loss, d = ref_mse(pred, y)
            model.backward(d)
            norm = ref_clip(model.grads, max_norm)
            if (norm > max_norm) != (max_norm < 1.0):
                # by design: clipping is active exactly in the small-max_norm cases
                raise RuntimeError(f"fixture {name}: clipping active = "
                                   f"{norm > max_norm}, norm {norm}")
            opt.step(model.grads)
        final = {k: v.copy() for k, v in model.params.items()}
        return _Case(name, (2000 + seed, H, dtype, lr, max_norm, batches), None,
                     (float(loss), final), extra=init)

    _PARTS["train_step"] = _Part("Part C (train_step)", names, {
        "visible": [step_case("1 step, H=4, no clipping", 0, 4, 1, 1e6, 0.01)],
        "hidden": [step_case("3 steps, H=3, clipping active", 1, 3, 3, 0.05, 0.05),
                   step_case("2 steps, H=2, float32", 2, 2, 2, 1e6, 0.01, "float32")]})
    _PARTS["training"] = _Part("Part D (training)", names, {
        "visible": [_Case("seed 0", (0,))],
        "hidden": [_Case("seed 1", (1,)), _Case("seed 2", (2,))]})


def mse(fn, which="visible"):
    """Part A of 08_training: ``loss, dpred = fn(pred, target)``."""
    part, cases = _graded("mse", fn, which)
    for where, case in cases:
        out = _run(where, fn, part, thaw(case.args), {})
        loss, d = unpack(where, out, 2, "(loss, dpred)")
        exp_loss, exp_d = thaw(case.expected)
        got = _core.to_float(where, "the loss", loss)
        if not abs(got - exp_loss) <= 1e-5 * abs(exp_loss) + 1e-9:
            fail(f"{where}: the loss is {got!r}, expected {exp_loss!r} (the "
                 f"mean of (pred - target)**2 over all entries).")
        _check_outputs(where, ["dpred"], [d], [exp_d],
                       [(t, freeze([thaw(f)[1]])) for t, f in case.hyps])


def clip_grad_norm(fn, which="visible"):
    """Part B of 08_training: ``norm = fn(grads, max_norm)`` scales the dict
    of arrays in place when their global norm exceeds max_norm."""
    part, cases = _graded("clip_grad_norm", fn, which)
    for where, case in cases:
        grads, max_norm = thaw(case.args)
        # the kernel keeps the dict's arrays, calls fn(grads, max_norm) and
        # reports the norm, the keys whose array was replaced, the arrays
        got = _ask(where, part, "clip", [fn], {"grads": grads, "max_norm": max_norm})
        norm, replaced, arrays = unpack(where, got, 3, "(norm, replaced, arrays)")
        exp_norm, exp = thaw(case.expected)
        got = _core.to_float(where, "the returned norm", norm)
        if not abs(got - exp_norm) <= 1e-6 * abs(exp_norm):
            fail(f"{where}: the returned norm is {got!r}, expected {exp_norm!r}: "
                 f"the global norm before clipping, sqrt of the sum of squares "
                 f"of every entry of every array.")
        keys = sorted(exp)
        for k in keys:
            if k in replaced or k not in arrays:
                fail(f"{where}: grads[{k!r}] was replaced by a new array: scale "
                     f"the arrays in place (g *= scale), the optimiser holds "
                     f"references to them.")
        _check_outputs(where, [f"grads[{k!r}]" for k in keys],
                       [arrays[k] for k in keys], [exp[k] for k in keys], [],
                       lambda w, a, e, m=False: "scale = max_norm / (norm + 1e-6) when "
                       "norm > max_norm; otherwise leave the gradients alone.")


def train_step(fn, which="visible"):
    """Part C of 08_training: ``loss = fn(model, optimizer, x, y, max_norm)``
    does one step: forward, loss, backward, clip, update."""
    part, cases = _graded("train_step", fn, which)
    for where, case in cases:
        seed, H, dtype, lr, max_norm, batches = thaw(case.args)
        exp_loss, exp = thaw(case.expected)
        keys = sorted(exp)
        # the kernel builds the model (lstmlib.LSTM + Linear) with these
        # parameters and an Adam optimiser, calls fn on every batch and
        # reports the last loss and the parameters after the steps
        got = _ask(where, part, "train_steps", [fn], {
            "H": H, "dtype": dtype, "lr": lr, "max_norm": max_norm,
            "params": thaw(case.extra), "batches": [list(b) for b in batches],
            "keys": keys})
        loss, params = unpack(where, got, 2, "(loss, parameters)")
        if type(params) is not dict:
            fail(f"{where}: the grader could not read the model's parameters.")
        got = _core.to_float(where, "the returned loss", loss)
        rtol = 2e-4 if dtype == "float32" else 1e-6
        if not abs(got - exp_loss) <= rtol * abs(exp_loss):
            fail(f"{where}: the returned loss is {got!r}, expected {exp_loss!r} "
                 f"(the loss of this batch before the update).")
        _check_outputs(where, [f"model.params[{k!r}]" for k in keys],
                       [params.get(k) for k in keys], [exp[k] for k in keys], [],
                       lambda w, a, e, m=False: "one step is: pred = model.forward(x); "
                       "loss, d = mse(pred, y); model.backward(d); "
                       "clip_grad_norm(model.grads, max_norm); "
                       "optimizer.step(model.grads).")


def _qual(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


#: the optimisers Part D accepts, with the hyper-parameters read from them
_OPTIMIZERS = {"Adam": ("lr", "b1", "b2", "eps"), "AdamW": ("lr", "b1", "b2", "eps",
                                                            "weight_decay"),
               "SGD": ("lr", "momentum")}


def _number(where, what, value, low=0.0):
    if type(value) not in (int, float) or math.isnan(value) or \
            math.isinf(value) or not value >= low:
        fail(f"{where}: {what} should be a finite number of at least {low}, "
             f"received {fmt(value, 60)}.")
    return float(value)


def _training_reference(where, info, seed):
    """The model and optimiser that ``info`` (the kernel's description of
    what build_model built) describes, built here with parameters drawn from
    the grader's seed."""
    if type(info) is not dict:
        fail(f"{where}: the grader could not read what build_model built.")
    if "built" in info:
        fail(f"{where}: expected your function to return (model, optimizer), "
             f"received {info['built']}.")
    if info.get("model") != _qual(_TRAIN["SequenceModel"]):
        fail(f"{where}: build_model should return an lstmlib.SequenceModel, "
             f"received {str(info.get('model', '?')).rpartition('.')[2]}.")
    kinds = {_qual(_TRAIN[k]): k for k in ("LSTM", "GRU", "RNN")}
    kind = kinds.get(info.get("rnn"))
    if kind is None or info.get("num_layers") != 1 or info.get("bidirectional") is not False \
            or info.get("readout") != "last" or info.get("head") != _qual(_TRAIN["Linear"]) \
            or info.get("input_size") != 2 or info.get("batch_first") is not False:
        fail(f"{where}: the model should be one lstmlib LSTM, GRU or RNN layer "
             f"(2 input features, one layer, one direction, time-major) with a "
             f"Linear head reading the last step.")
    H = info.get("hidden_size")
    if type(H) is not int or not 1 <= H <= TRAINING["max_hidden"]:
        fail(f"{where}: hidden_size should be an int from 1 to {TRAINING['max_hidden']}, "
             f"received {fmt(H, 60)}.")
    options = info.get("options")
    allowed = ({"nonlinearity": ("tanh", "relu")} if kind == "RNN" else {})
    if type(options) is not dict or any(
            k not in allowed or v not in allowed[k] for k, v in options.items()):
        fail(f"{where}: the {kind} layer's options {fmt(options, 120)} are not among "
             f"those this part accepts ({allowed or 'none'}).")
    described = info.get("params")
    if type(described) is not dict:
        fail(f"{where}: the grader could not read the model's parameters.")
    dtypes = {d[1] for d in described.values()
              if type(d) is list and len(d) == 2}
    if len(dtypes) != 1 or list(dtypes)[0] not in ("float64", "float32"):
        fail(f"{where}: the model's parameters should all be float64 (or all float32), "
             f"received {sorted(str(d) for d in dtypes)}.")
    dtype = list(dtypes)[0]
    rng = _rng(3000 + seed)
    rnn = _TRAIN[kind](2, H, bias=info.get("bias") is True, rng=rng, dtype=dtype,
                       **options)
    head = _TRAIN["Linear"](H, 1, bias="head.bias" in described, rng=rng, dtype=dtype)
    model = _TRAIN["SequenceModel"](rnn, head)
    shapes = {k: [list(v.shape), str(v.dtype)] for k, v in model.params.items()}
    if described != shapes:
        wrong = sorted(k for k in list(shapes) + list(described)
                        if shapes.get(k) != described.get(k))
        fail(f"{where}: the model's parameters should be {shapes} for a {kind} of "
             f"hidden size {H} with a Linear head of one output; yours differ at "
             f"{wrong[:4]}: {[described.get(k) for k in wrong[:4]]}.")
    name = str(info.get("optimizer", "?")).rpartition(".")[2]
    if info.get("optimizer") not in {_qual(_TRAIN[k]) for k in _OPTIMIZERS}:
        fail(f"{where}: the optimiser should be one of lstmlib's "
             f"({', '.join(_OPTIMIZERS)}), received {name}.")
    if info.get("optimizer.params") != sorted(shapes):
        fail(f"{where}: the optimiser should update every parameter of model.params "
             f"({sorted(shapes)}); yours holds {fmt(info.get('optimizer.params'), 200)}: "
             f"build it with {name}(model.params, ...).")
    hyper = {k: _number(where, f"the optimiser's {k}", info.get(f"optimizer.{k}"))
             for k in _OPTIMIZERS[name]}
    if not hyper["lr"] > 0:
        fail(f"{where}: the learning rate should be positive, received {hyper['lr']}.")
    if name == "SGD":
        opt = _TRAIN["SGD"](model.params, hyper["lr"], momentum=hyper["momentum"])
    else:
        extra = {"weight_decay": hyper["weight_decay"]} if name == "AdamW" else {}
        opt = _TRAIN[name](model.params, lr=hyper["lr"], betas=(hyper["b1"], hyper["b2"]),
                           eps=hyper["eps"], **extra)
    return model, opt, kind, dtype


def _optimizer_state(opt):
    """The state of a reference optimiser (Adam's step count and moments,
    SGD's velocity), copied."""
    if hasattr(opt, "velocity"):
        return {"velocity": {k: v.copy() for k, v in opt.velocity.items()}}
    return {"t": opt.t, "m": {k: v.copy() for k, v in opt.m.items()},
            "v": {k: v.copy() for k, v in opt.v.items()}}


_STEP_HINT = ("one step is: pred = model.forward(x); loss, d = mse(pred, y); "
              "model.backward(d); clip_grad_norm(model.grads, max_norm); "
              "optimizer.step(model.grads); return loss")


def _check_chunk(where, first, chunk, got, dtype):
    """Compare the kernel's report on one chunk of steps (the losses and the
    parameters after it) with the reference's."""
    start, exp_losses, exp_params = chunk
    last = first + len(exp_losses) - 1
    if type(got) is not dict or type(got.get("losses")) is not list \
            or len(got["losses"]) != len(exp_losses) \
            or type(got.get("params")) is not dict:
        fail(f"{where}: the grader could not read the losses and parameters of "
             f"steps {first}-{last}.")
    rtol, atol = (1e-5, 1e-8) if dtype == "float64" else (2e-3, 1e-5)
    keys = sorted(exp_params)
    params = got["params"]
    right = all(same_values(params.get(k), exp_params[k], rtol, atol) for k in keys)
    unchanged = all(same_values(params.get(k), start[k], 0.0, 0.0) for k in keys)
    missing = (f"the parameters did not change during steps {first}-{last}: the update "
               f"(optimizer.step(model.grads)) is missing, or it replaced the arrays "
               f"instead of changing them in place")
    for i, (loss, e) in enumerate(zip(got["losses"], exp_losses)):
        value = _core.to_float(f"{where}, step {first + i}",
                               "the loss returned by train_step", loss)
        if abs(value - e) <= rtol * abs(e) + atol:
            continue
        if i == 0 or right:
            why = ("the model's parameters at this step were the grader's, so the "
                   "loss itself is computed differently: the mean of (pred - y)**2 "
                   "over the batch, before the update")
            if right:
                why += " (your updates are right: only the returned loss differs)"
        elif unchanged:
            why = missing
        else:
            done = f"step {first}" if i == 1 else f"steps {first}-{first + i - 1}"
            why = (f"the loss of {done} was right, so the update made by step "
                   f"{first + i - 1} differs from the grader's")
        fail(f"{where}, step {first + i}: train_step returned the loss {value!r}, "
             f"expected {e!r}.\n  Likely cause: {why}.\n  ({_STEP_HINT})")
    if right:
        return

    def hint(wrong, actuals, expecteds, matched=False):
        if unchanged:
            return missing
        return (f"the losses of steps {first}-{last} were right, so the update "
                f"differs (gradient, clipping or optimizer.step): {_STEP_HINT}")

    _check_outputs(f"{where}, after steps {first}-{last}",
                   [f"model.params[{k!r}]" for k in keys],
                   [params.get(k) for k in keys], [exp_params[k] for k in keys], [], hint)


def training(build_model, step_fn, which="visible"):
    """Part D of 08_training: with the model and optimiser from
    ``build_model(rng)`` and the student's ``train_step``, TRAINING["steps"]
    steps on the adding problem must bring the held-out MSE below
    TRAINING["threshold"].

    The grader runs the training. The kernel describes what build_model
    builds (layer, sizes, head, optimiser and its hyper-parameters); the
    grader builds that model, draws its initial parameters from its own
    seed and trains it with the reference step (lstmlib's forward, mse,
    backward, clip_grad_norm, the same optimiser) on batches drawn here.
    The student's train_step must make the same steps: in chunks of
    TRAINING["chunk"] steps, the kernel receives the grader's parameters
    and optimiser state at the chunk's start (loaded into a fresh
    build_model's model and optimiser, in place), calls train_step on the
    chunk's batches and reports every loss and the parameters at the end,
    which must equal the grader's. The held-out error is computed here,
    from the grader's own parameters: nothing trained elsewhere enters.
    """
    part = _get_part("training")
    C = TRAINING
    for case in _cases(part, which):
        where = f"{part.label}, {case.name}"
        (seed,) = thaw(case.args)
        info = _ask(where, part, "training_model", [build_model], {"seed": _seed(3000 + seed)})
        model, opt, kind, dtype = _training_reference(where, info, seed)
        rng = _rng(3100 + seed)
        batches = [_TRAIN["adding"](C["batch"], C["T"], rng, dtype=dtype)
                   for _ in range(C["steps"])]
        losses = []
        for first in range(0, C["steps"], C["chunk"]):
            chunk_batches = batches[first:first + C["chunk"]]
            start = {k: v.copy() for k, v in model.params.items()}
            state = _optimizer_state(opt)
            chunk_losses = []
            for x, y in chunk_batches:
                loss, d = _TRAIN["mse"](model.forward(x), y)
                model.backward(d)
                _TRAIN["clip"](model.grads, C["max_norm"])
                opt.step(model.grads)
                chunk_losses.append(float(loss))
            losses += chunk_losses
            got = _ask(where, part, "training", [build_model, step_fn], {
                "seed": _seed(3000 + seed), "params": start, "state": state,
                "batches": [list(b) for b in chunk_batches],
                "max_norm": C["max_norm"]})
            _check_chunk(where, first, (start, chunk_losses, {
                k: v.copy() for k, v in model.params.items()}), got, dtype)
        xe, ye = _TRAIN["adding"](C["eval_n"], C["T"], _rng(3200 + seed), dtype=dtype)
        pv, yv = _core.as_plain(model.forward(xe)), _core.as_plain(ye)
        err = 0.0
        for a, b in zip(pv, yv):
            err += (a - b) * (a - b)
        err /= len(yv)
        if not err < C["threshold"]:      # NaN fails too
            marks = [fmt(losses[i], 30) for i in (0, C["steps"] // 2, C["steps"] - 1)]
            fail(f"{where}: your train_step makes the right steps, but after "
                 f"{C['steps']} of them the held-out MSE is {err:.4g}; it must be "
                 f"below {C['threshold']} (predicting 1.0 for every sequence gives "
                 f"about 0.167). The losses at steps 0, {C['steps'] // 2}, "
                 f"{C['steps'] - 1}: {marks}. Likely cause: build_model's choices "
                 f"(a learning rate too small or too large, a hidden size too small).")


# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# 10 attention

_ATTENTION_NAMES = ("attention_forward", "attention_backward", "softmax")


def _forward_variant(q, k, w_q, w_k, v, lengths, mode):
    import numpy as np
    pre = q @ w_q.T + k @ w_k.T
    u = pre if mode == "no_tanh" else np.tanh(pre)
    e = u @ v
    S = k.shape[0]
    mask = None if lengths is None else \
        np.arange(S)[:, None] < np.asarray(lengths)[None, :]
    if mask is not None and mode not in ("no_mask", "mask_after"):
        e = np.where(mask, e, -np.inf)
    axis = 1 if mode == "batch_axis" else 0
    e = e - e.max(axis=axis, keepdims=True)
    w = np.exp(e)
    alpha = w / w.sum(axis=axis, keepdims=True)
    if mode == "mask_after" and mask is not None:
        alpha = alpha * mask
    if mode == "scores":
        alpha = u @ v
    ctx = np.einsum("sb,sbh->bh", alpha, k)
    return ctx.astype(k.dtype), alpha.astype(k.dtype)


def _backward_variant(dctx, cache, mode):
    import numpy as np
    q, k, u, alpha, mask, w_q, w_k, v = cache
    dkeys = alpha[:, :, None] * dctx[None]
    if mode == "no_direct":
        dkeys = dkeys * 0
    da = np.einsum("bh,sbh->sb", dctx, k)
    de = alpha * da if mode == "no_jacobian_sum" else \
        alpha * (da - (alpha * da).sum(axis=0))
    dv = np.einsum("sb,sba->a", de, u)
    du = de[:, :, None] * v
    dpre = du * (1 - u) if mode == "tanh_prime" else du * (1 - u * u)
    dquery = dpre.sum(axis=0) @ w_q
    dw_q = dpre.sum(axis=0).T @ q
    dkeys = dkeys + dpre @ w_k
    dw_k = np.einsum("sba,sbh->ah", dpre, k)
    return (dquery, dkeys, dw_q, dw_k, dv)


# (name, seed, S, B, H_q, H_k, A, lengths, dtype, weight scale)
_FORWARD_VISIBLE = [("S=5, B=3, H_q=4, H_k=6, A=7", 0, 5, 3, 4, 6, 7, None,
                     "float64", 1.5)]
_FORWARD_HIDDEN = [
    ("S=4, B=2, H_q=3, H_k=5, A=4, padding (lengths [4, 2])", 1, 4, 2, 3, 5, 4,
     [4, 2], "float64", 1.5),
    ("S=1, B=1, H_q=2, H_k=2, A=3", 2, 1, 1, 2, 2, 3, None, "float64", 1.5),
    ("S=6, B=2, H_q=3, H_k=3, A=5, float32", 3, 6, 2, 3, 3, 5, None,
     "float32", 1.5),
    ("S=5, B=2, H_q=3, H_k=4, A=4, large scores (|e| up to 500)", 4, 5, 2, 3,
     4, 4, None, "float32", 150.0),
]
_BACKWARD_VISIBLE = _FORWARD_VISIBLE
_BACKWARD_HIDDEN = _FORWARD_HIDDEN[:3]

_FORWARD_HINTS = [
    ("batch_axis", "the softmax runs over the batch (axis 1); it must run "
     "over the source positions s (axis 0 of the (S, B) scores)."),
    ("no_mask", "the padding is ignored: positions s >= lengths[b] must get "
     "the score -inf before the softmax (weight exactly 0)."),
    ("mask_after", "the padding is zeroed after the softmax, so the weights "
     "no longer sum to 1: mask the scores (-inf) before it."),
    ("no_tanh", "the tanh is missing: u = tanh(W_q q + W_k k_s)."),
    ("scores", "the context is weighted by the scores e, not by the "
     "weights alpha = softmax(e)."),
]
_BACKWARD_HINTS = [
    ("no_jacobian_sum", "the softmax's Jacobian misses its second term: "
     "de_s = alpha_s (dalpha_s - sum_s' alpha_s' dalpha_s')."),
    ("no_direct", "dkeys misses the direct path of c = sum_s alpha_s k_s: "
     "add alpha_s * dcontext."),
    ("tanh_prime", "the derivative of tanh is 1 - u**2, not 1 - u."),
]


def _prepare_attention():
    import numpy as np
    from lstmlib.attention import attention_backward as bwd
    from lstmlib.attention import attention_forward as fwd

    def inputs(rng, S, B, Hq, Hk, A, lengths, dtype, scale):
        q = _randn(rng, (B, Hq), dtype)
        k = _randn(rng, (S, B, Hk), dtype)
        w_q = _randn(rng, (A, Hq), dtype, 0.5)
        w_k = _randn(rng, (A, Hk), dtype, 0.5)
        v = _randn(rng, (A,), dtype, scale)
        return q, k, w_q, w_k, v, None if lengths is None else np.array(lengths)

    def fwd_case(name, seed, *spec):
        args = inputs(_rng(2000 + seed), *spec)
        ctx, alpha, _ = fwd(*args)
        hyps = [(text, _forward_variant(*args, mode)) for mode, text in _FORWARD_HINTS]
        return _Case(name, args, None, (ctx, alpha), hyps)

    def bwd_case(name, seed, *spec):
        rng = _rng(2010 + seed)
        _, _, cache = fwd(*inputs(rng, *spec))
        dctx = _randn(rng, cache.query.shape[:1] + cache.keys.shape[2:], cache.keys.dtype)
        hyps = [(text, _backward_variant(dctx, cache, mode)) for mode, text in _BACKWARD_HINTS]
        return _Case(name, (dctx, cache), None, tuple(bwd(dctx, cache)), hyps)

    _PARTS["attention_forward"] = _Part(
        "Part A (attention_forward)", _ATTENTION_NAMES,
        {"visible": [fwd_case(*s) for s in _FORWARD_VISIBLE],
         "hidden": [fwd_case(*s) for s in _FORWARD_HIDDEN]})
    _PARTS["attention_backward"] = _Part(
        "Part B (attention_backward)", _ATTENTION_NAMES,
        {"visible": [bwd_case(*s) for s in _BACKWARD_VISIBLE],
         "hidden": [bwd_case(*s) for s in _BACKWARD_HIDDEN]})


def attention_forward(fn, which="visible"):
    """Part A of 10_attention: ``context, alpha, cache = fn(query, keys, w_q,
    w_k, v, lengths)``; context and alpha are graded."""
    _check_returns("attention_forward", fn, which, ["context", "alpha"], ungraded=["cache"])


def attention_backward(fn, which="visible"):
    """Part B of 10_attention: ``fn(dcontext, cache)`` -> (dquery, dkeys,
    dw_q, dw_k, dv) for lstmlib.attention.AttentionCache."""
    _check_returns("attention_backward", fn, which, ["dquery", "dkeys", "dw_q", "dw_k", "dv"])


_PREPARERS = {
    "01_rnn_forward": _prepare_rnn_forward,
    "02_bptt": _prepare_bptt,
    "04_lstm_cell": _prepare_lstm_cell,
    "05_lstm_sequence": _prepare_lstm_sequence,
    "06_gru": _prepare_gru,
    "07_bidirectional": _prepare_bidirectional,
    "03_gradient_norms": _prepare_gradient_norms,
    "08_training": _prepare_training,
    "10_attention": _prepare_attention,
}


def prepare(assignment, salt=None):
    """Draw the cases of ``assignment`` and compute their expected values.

    ``salt`` (an int): the grader's fresh seed for this grading; every case
    is then drawn from it (what a case tests stays as written). ``None``:
    the fixed seeds of the notebook's self-checks."""
    if assignment not in _PREPARERS and assignment != "09_performance":
        raise ValueError(f"assignment: expected one of {sorted(_PREPARERS)}, "
                         f"received {assignment!r}")
    if salt is not None and (type(salt) is not int or salt < 0):
        raise ValueError(f"salt: expected a non-negative int or None, received {salt!r}")
    if _SALT[0] != salt:
        _SALT[0] = salt
        _PARTS.clear()
        del _PREPARED[:]
    if assignment == "09_performance":      # drawn by kernel_parts at each check
        return
    if assignment not in _PREPARED:
        _PREPARERS[assignment]()
        _PREPARED.append(assignment)
