"""The checks of 10_attention."""


from ._engine import _Case, _check_returns, _Part, _PARTS, _randn, _rng

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


def prepare():
    """Draw the cases of every part and compute their expected values."""
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

    def overflows(q, k, w_q, w_k, v, lengths):
        """Some score is past float32's exp range (e > 88.7): a softmax
        without the shift by the largest score gives inf / inf there."""
        e = np.tanh(q.astype(np.float64) @ w_q.T + k @ w_k.T) @ v
        return e.max() > 100.0

    def fwd_case(name, seed, *spec):
        rng = _rng(2000 + seed)
        args = inputs(rng, *spec)
        while "large scores" in name and not overflows(*args):
            args = inputs(rng, *spec)      # drawn again: the case must overflow
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
