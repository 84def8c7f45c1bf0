r"""Additive attention (Bahdanau, Cho & Bengio 2015), forward and backward.

One attention step: a query ``q`` (the decoder's state) scores every key
``k_s`` (the encoder's outputs, s = 0, ..., S-1), the scores become weights
by a softmax over the source positions, and the context is the weighted
sum of the keys:

.. math::

    \begin{aligned}
    u_s &= \tanh(W_q q + W_k k_s) \\
    e_s &= v^\top u_s \\
    \alpha_s &= \frac{\exp e_s}{\sum_{s'} \exp e_{s'}} \\
    c &= \sum_s \alpha_s k_s
    \end{aligned}

Shapes (time-major, as everywhere in lstmlib): query q (B, H_q), keys
(S, B, H_k), W_q (A, H_q), W_k (A, H_k), v (A,); A is the attention size.
The scores e and weights alpha are (S, B), the context c is (B, H_k).
Positions s >= lengths[b] (padding) get the weight 0.
"""

from collections import namedtuple

import numpy as np

from ._validation import check_array

AttentionCache = namedtuple(
    "AttentionCache", "query keys u alpha mask w_q w_k v")
AttentionGrads = namedtuple("AttentionGrads", "dquery dkeys dw_q dw_k dv")


def _check_inputs(query, keys, w_q, w_k, v, lengths):
    keys = check_array("keys", keys, (None, None, None))
    S, B, Hk = keys.shape
    dt = keys.dtype
    query = check_array("query", query, (B, None), dt)
    v = check_array("v", v, (None,), dt)
    A = v.shape[0]
    w_q = check_array("w_q", w_q, (A, query.shape[1]), dt)
    w_k = check_array("w_k", w_k, (A, Hk), dt)
    mask = None
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths: expected {B} integers (one per "
                             f"sequence), received shape {lengths.shape}, "
                             f"dtype {lengths.dtype}")
        if np.any(lengths < 1) or np.any(lengths > S):
            raise ValueError(f"lengths: expected values in [1, {S}], received "
                             f"{lengths.min()}..{lengths.max()}")
        mask = np.arange(S)[:, None] < lengths[None, :]       # (S, B)
    return query, keys, w_q, w_k, v, mask


def softmax(e, mask=None):
    """Softmax over axis 0 (the source positions) of e (S, B); entries where
    ``mask`` is False get the weight 0."""
    if mask is not None:
        e = np.where(mask, e, -np.inf)
    e = e - e.max(axis=0, keepdims=True)         # shift: exp never overflows
    w = np.exp(e)
    return w / w.sum(axis=0, keepdims=True)


def attention_forward(query, keys, w_q, w_k, v, lengths=None):
    """One additive attention step.

    query (B, H_q), keys (S, B, H_k), w_q (A, H_q), w_k (A, H_k), v (A,),
    lengths (B,) or None -> context (B, H_k), alpha (S, B), cache.
    """
    query, keys, w_q, w_k, v, mask = _check_inputs(
        query, keys, w_q, w_k, v, lengths)
    u = np.tanh(query @ w_q.T + keys @ w_k.T)       # (S, B, A)
    e = u @ v                                       # (S, B) scores
    alpha = softmax(e, mask)                        # (S, B) weights
    context = np.einsum("sb,sbh->bh", alpha, keys)  # sum_s alpha_s k_s
    cache = AttentionCache(query, keys, u, alpha, mask, w_q, w_k, v)
    return context, alpha, cache


def attention_backward(dcontext, cache, dalpha=None):
    """Gradients of one attention step.

    dcontext (B, H_k) (and optionally dalpha (S, B), for a loss on the
    weights themselves) -> AttentionGrads(dquery (B, H_q), dkeys (S, B, H_k),
    dw_q (A, H_q), dw_k (A, H_k), dv (A,)).
    """
    query, keys, u, alpha, mask, w_q, w_k, v = cache
    dcontext = check_array("dcontext", dcontext, keys.shape[1:], keys.dtype)
    dkeys = alpha[:, :, None] * dcontext[None]          # c = sum alpha_s k_s
    da = np.einsum("bh,sbh->sb", dcontext, keys)        # dL/dalpha_s
    if dalpha is not None:
        da = da + check_array("dalpha", dalpha, alpha.shape, keys.dtype)
    de = alpha * (da - (alpha * da).sum(axis=0))        # softmax Jacobian
    dv = np.einsum("sb,sba->a", de, u)                  # e = v . u
    du = de[:, :, None] * v                             # (S, B, A)
    dpre = du * (1.0 - u * u)                           # through tanh
    dquery = dpre.sum(axis=0) @ w_q                     # W_q q is shared by all s
    dw_q = dpre.sum(axis=0).T @ query
    dkeys += dpre @ w_k                                 # W_k k_s
    dw_k = np.einsum("sba,sbh->ah", dpre, keys)
    return AttentionGrads(dquery, dkeys, dw_q, dw_k, dv)


def init_attention(query_size, key_size, attention_size, rng, dtype=np.float64):
    """Parameters {"w_q", "w_k", "v"} drawn uniformly in +-1/sqrt(fan-in)
    from ``rng`` (a numpy Generator)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, received "
                         f"{type(rng).__name__}")

    def u(shape, fan_in):
        k = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-k, k, shape).astype(dtype)

    return {"w_q": u((attention_size, query_size), query_size),
            "w_k": u((attention_size, key_size), key_size),
            "v": u((attention_size,), attention_size)}
