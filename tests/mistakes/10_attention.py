"""Typical mistakes in 10_attention (6 points).

Test cells: Part A (attention_forward) visible 1 (S=5, B=3, no padding) +
hidden 2 (padding; S=1, B=1; float32; large scores in float32); Part B
(attention_backward, given lstmlib's AttentionCache, independent of A)
visible 1 + hidden 2 (padding; S=1, B=1; float32).
"""

from tests.mistakes import Mistake

NOTEBOOK = "attention"
FULL_SCORE = 6.0

_SOFTMAX = ("    e = e - e.max(axis=0, keepdims=True)         # exp cannot overflow\n"
            "    w = np.exp(e)\n"
            "    alpha = w / w.sum(axis=0, keepdims=True)     # softmax over s\n")

MISTAKES = [
    Mistake("softmax over the batch axis", "attention_forward", _SOFTMAX,
            _SOFTMAX.replace("axis=0", "axis=1"), 3.0,
            "alpha differs in the visible case: A fails; B 3"),
    Mistake("no shift by the largest score", "attention_forward",
            "    e = e - e.max(axis=0, keepdims=True)         # exp cannot overflow\n",
            "", 4.0, "only the large-scores float32 case overflows: A visible 1; B 3"),
    Mistake("padding ignored", "attention_forward",
            "        e = np.where(mask, e, -np.inf)           # padding: weight 0\n",
            "", 4.0, "only the hidden padding case fails: A visible 1; B 3"),
    Mistake("padding zeroed after the softmax (weights do not sum to 1)",
            "attention_forward",
            "        e = np.where(mask, e, -np.inf)           # padding: weight 0\n" + _SOFTMAX,
            _SOFTMAX + "    if mask is not None:\n        alpha = alpha * mask\n",
            4.0, "only the hidden padding case fails: A visible 1; B 3"),
    Mistake("tanh missing", "attention_forward",
            "u = np.tanh(query @ w_q.T + keys @ w_k.T)",
            "u = query @ w_q.T + keys @ w_k.T", 3.0,
            "every forward case with S > 1 fails: A fails; B 3"),
    Mistake("context weighted by the scores, not the weights", "attention_forward",
            "context = (alpha[:, :, None] * keys).sum(axis=0)",
            "context = (e[:, :, None] * keys).sum(axis=0)", 3.0,
            "context differs in the visible case: A fails; B 3"),
    Mistake("float32 upcast of the weights", "attention_forward",
            "    w = np.exp(e)\n", "    w = np.exp(e.astype(np.float64))\n", 4.0,
            "alpha is float64 in the float32 hidden cases: A visible 1; B 3"),
    Mistake("softmax Jacobian without its sum term", "attention_backward",
            "de = alpha * (dalpha - (alpha * dalpha).sum(axis=0))",
            "de = alpha * dalpha", 3.0, "every backward case with S > 1 fails; A 3"),
    Mistake("dkeys misses the direct path alpha * dcontext", "attention_backward",
            "dkeys = dkeys + dpre @ w_k", "dkeys = dpre @ w_k", 3.0,
            "every backward case fails; A 3"),
    Mistake("tanh derivative 1 - u", "attention_backward",
            "(1 - u * u)", "(1 - u)", 3.0, "every backward case fails; A 3"),
    Mistake("dquery from the last position only", "attention_backward",
            "dquery = dpre.sum(axis=0) @ w_q", "dquery = dpre[-1] @ w_q", 3.0,
            "the visible case (S=5) fails; A 3"),
    Mistake("transposed weight gradient dw_q = query.T @ ...", "attention_backward",
            "dw_q = dpre.sum(axis=0).T @ query", "dw_q = query.T @ dpre.sum(axis=0)",
            3.0, "shape (H_q, A) instead of (A, H_q) in the visible case; A 3"),
    Mistake("float32 upcast of dalpha", "attention_backward",
            "dalpha = (keys * dcontext[None]).sum(axis=2)",
            "dalpha = (keys * dcontext[None]).sum(axis=2, dtype=np.float64)", 4.0,
            "only the float32 hidden case fails: B visible 1; A 3"),
]
