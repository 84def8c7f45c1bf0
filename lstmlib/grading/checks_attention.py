"""The checks that the graded test cells of exercise 10_attention call.

Same conventions as :mod:`lstmlib.grading.checks`: the first cell runs
``checks_attention.prepare("10_attention")`` before any student code; it
computes every input and expected value with lstmlib's reference
(:mod:`lstmlib.attention`, itself tested against torch autograd) from fixed
seeds and freezes them. Each part has one public function, called with
``"visible"`` by the self-check cell and ``"hidden"`` by the hidden-test
cell. A failure shows the student's value beside the expected one and names
the likely cause. Only :mod:`lstmlib.grading._core` and
:mod:`lstmlib.grading.guards` are used, so the module stands on its own.
"""

from . import _core, guards
from ._core import compare, fail, freeze, same_values, thaw, unpack

_PARTS = {}          # part name -> _Part
_PREPARED = []

# lstmlib functions a graded function must not call (delegation)
_NAMES = ("attention_forward", "attention_backward", "softmax")


class _Part:
    def __init__(self, label, cases):
        self.label = label
        self.names = _NAMES
        self.cases = cases              # {"visible": [...], "hidden": [...]}


class _Case:
    def __init__(self, name, args, expected, hyps):
        self.name = name
        self.args = freeze(args)
        self.expected = freeze(expected)
        self.hyps = [(text, freeze(v)) for text, v in hyps]


def _run(where, fn, part, args):
    """Call the student's function under the delegation tripwires."""
    __tracebackhide__ = True
    tw = guards.tripwires(part.names, None,
                          _core._getattr(fn, "__globals__", None), fn)
    error = None
    with tw:
        try:
            out = fn(*args)
        except guards.DelegationError:
            out = None
        except _core.GradingError:
            raise
        except _core._Exception as e:
            msg = _core._str(e)
            if _core._len(msg) > 300:
                msg = msg[:300] + " ..."
            error = f"{_core._type(e).__name__}: {msg}"
            out = None
    guards.check_log(where, tw.log)
    if error is not None:
        fail(f"{where}: your function raised {error}")
    return out


def _matching(actuals, hyps):
    """The text of the first hypothesis whose arrays (None: any) all equal
    the student's."""
    for text, frozen in hyps:
        values = thaw(frozen)
        if _core._all(h is None or same_values(a, h)
                      for a, h in _core._zip(actuals, values)):
            return text
    return None


def _check(name, fn, which, returned, graded):
    """Grade a part whose function returns ``returned`` names, the first
    ``graded`` of them against the expected arrays."""
    __tracebackhide__ = True
    part = _PARTS.get(name)
    if part is None:
        fail(f"the checks for {name} were not prepared: run the first cell of "
             f"the notebook (it calls checks_attention.prepare) first.")
    guards.require_own_function(part.label, fn, part.names)
    if which not in ("visible", "hidden"):
        fail(f"which: expected 'visible' or 'hidden', received {which!r}")
    what = "(" + ", ".join(returned) + ")"
    names = returned[:graded]
    for case in part.cases[which]:
        where = f"{part.label}, case {case.name}"
        out = _run(where, fn, part, thaw(case.args))
        got = unpack(where, out, _core._len(returned), what)[:graded]
        expected = _core._list(thaw(case.expected))
        for n, a, e in _core._zip(names, got, expected):
            _core.check_type_shape_dtype(where, n, a, e)
        wrong = [n for n, a, e in _core._zip(names, got, expected)
                 if not same_values(a, e)]
        if not wrong:
            continue
        k = names.index(wrong[0])
        right = [n for n in names if n not in wrong]
        summary = f"wrong: {', '.join(wrong)}" + \
            (f"; right: {', '.join(right)}" if right else "")
        hint = _matching(got, case.hyps)
        compare(f"{where} [{summary}]", wrong[0], got[k], expected[k],
                lambda bad: hint)


# ---------------------------------------------------------------------------
# Fixtures and typical mistakes (plain numpy, run in prepare before any
# student code)

def _np():
    import numpy
    return numpy


def _forward_variant(q, k, w_q, w_k, v, lengths, mode):
    np = _np()
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
    np = _np()
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


def _prepare():
    np = _np()
    from lstmlib.attention import (AttentionCache, attention_backward,
                                   attention_forward)

    def inputs(seed, S, B, Hq, Hk, A, lengths, dtype, scale):
        rng = np.random.default_rng(2000 + seed)
        q = rng.standard_normal((B, Hq)).astype(dtype)
        k = rng.standard_normal((S, B, Hk)).astype(dtype)
        w_q = (rng.standard_normal((A, Hq)) * 0.5).astype(dtype)
        w_k = (rng.standard_normal((A, Hk)) * 0.5).astype(dtype)
        v = (rng.standard_normal(A) * scale).astype(dtype)
        lens = None if lengths is None else np.array(lengths)
        return q, k, w_q, w_k, v, lens

    def fwd_case(name, *spec):
        args = inputs(*spec)
        ctx, alpha, _ = attention_forward(*args)
        hyps = [(text, _forward_variant(*args, mode))
                for mode, text in _FORWARD_HINTS]
        return _Case(name, args, (ctx, alpha), hyps)

    def bwd_case(name, seed, *spec):
        args = inputs(seed + 10, *spec)
        _, _, cache = attention_forward(*args)
        cache = AttentionCache(*cache)
        dctx = np.random.default_rng(2100 + seed).standard_normal(
            cache.query.shape[:1] + cache.keys.shape[2:]).astype(cache.keys.dtype)
        g = attention_backward(dctx, cache)
        hyps = [(text, _backward_variant(dctx, cache, mode))
                for mode, text in _BACKWARD_HINTS]
        return _Case(name, (dctx, cache), _core._tuple(g), hyps)

    _PARTS["attention_forward"] = _Part(
        "Part A (attention_forward)",
        {"visible": [fwd_case(*s) for s in _FORWARD_VISIBLE],
         "hidden": [fwd_case(*s) for s in _FORWARD_HIDDEN]})
    _PARTS["attention_backward"] = _Part(
        "Part B (attention_backward)",
        {"visible": [bwd_case(*s) for s in _BACKWARD_VISIBLE],
         "hidden": [bwd_case(*s) for s in _BACKWARD_HIDDEN]})


def attention_forward(fn, which="visible"):
    """Part A of 10_attention: ``context, alpha, cache = fn(query, keys, w_q,
    w_k, v, lengths)``; context and alpha are graded."""
    _check("attention_forward", fn, which, ["context", "alpha", "cache"], 2)


def attention_backward(fn, which="visible"):
    """Part B of 10_attention: ``fn(dcontext, cache)`` -> (dquery, dkeys,
    dw_q, dw_k, dv) for lstmlib.attention.AttentionCache."""
    _check("attention_backward", fn, which,
           ["dquery", "dkeys", "dw_q", "dw_k", "dv"], 5)


def prepare(assignment):
    """Compute and freeze every fixture (call this in the first cell, before
    any student code)."""
    if assignment != "10_attention":
        raise ValueError(f"assignment: expected '10_attention', received "
                         f"{assignment!r}")
    if assignment not in _PREPARED:
        _prepare()
        _PREPARED.append(assignment)
