"""Losses, each returning (loss, gradient of the loss w.r.t. its input)."""

import numpy as np

from ._validation import check_array


def softmax_cross_entropy(logits, targets, mask=None, ignore_index=-1):
    """Mean cross-entropy of softmax(logits) against integer targets.

    logits (N, C) or (T, B, C); targets of the leading shape, ints in
    [0, C) or ``ignore_index`` (such entries, and those where ``mask`` is 0,
    do not count). Returns (loss, dlogits).
    """
    logits = check_array("logits", logits, (None,) * np.ndim(logits))
    C = logits.shape[-1]
    targets = np.asarray(targets)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets: expected shape {logits.shape[:-1]}, "
                         f"received {targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets: expected integer classes, received {targets.dtype}")
    valid = targets != ignore_index
    if mask is not None:
        valid &= np.asarray(mask).astype(bool).reshape(targets.shape)
    if np.any((targets[valid] < 0) | (targets[valid] >= C)):
        raise ValueError(f"targets: expected classes in [0, {C}), received "
                         f"{targets[valid].min()}..{targets[valid].max()}")
    z = logits.reshape(-1, C)
    t = np.where(valid, targets, 0).reshape(-1)
    v = valid.reshape(-1)
    n = max(int(v.sum()), 1)
    z = z - z.max(axis=1, keepdims=True)         # softmax is shift invariant
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(t))
    loss = -(log_p[rows, t] * v).sum() / n
    d = np.exp(log_p)                            # softmax
    d[rows, t] -= 1.0
    d *= (v / n)[:, None].astype(d.dtype)
    return loss.astype(logits.dtype), d.reshape(logits.shape)


def mse(pred, target):
    """Mean squared error; returns (loss, dpred)."""
    pred = check_array("pred", pred, (None,) * np.ndim(pred))
    target = np.asarray(target, dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ValueError(f"target: expected shape {pred.shape}, received {target.shape}")
    diff = pred - target
    return (diff * diff).mean(), 2.0 * diff / diff.size
