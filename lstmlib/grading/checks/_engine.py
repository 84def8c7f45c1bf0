"""The engine of the checks: the registry of prepared parts, the cases,
the call of a student's function through its handle and the comparison of
what comes back, the random fixtures and the hints shared by the gated
cells.

A part (:class:`_Part`) holds its cases for ``"visible"`` and ``"hidden"``
(:class:`_Case`: frozen inputs, expected values and hypotheses, the wrong
answers a typical slip would give, each with its cause). An assignment's
module (``checks/<short>.py``) registers its parts in :data:`_PARTS` when
its ``prepare()`` runs; :func:`lstmlib.grading.checks.prepare` decides
when (once per salt).
"""

import numpy as np

from .. import protocol
from . import _compare
from ._compare import (compare, fail, freeze, gate_blocks, same_values,
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
            _compare.check_type_shape_dtype(where, name, a, e)
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
    vals = _compare.as_plain(h)
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
                bad, _ = _compare.mismatches(a, e)
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
