"""Additive attention: the same equations in torch ops with autograd as the
oracle (forward and every gradient), central differences, padding, errors."""

import numpy as np
import pytest
import torch

from lstmlib.attention import (attention_backward, attention_forward,
                               init_attention, softmax)
from lstmlib.gradcheck import numerical_gradient, rel_error


def _inputs(seed, S=5, B=3, Hq=4, Hk=6, A=7, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p = init_attention(Hq, Hk, A, rng, dtype)
    q = rng.standard_normal((B, Hq)).astype(dtype)
    k = rng.standard_normal((S, B, Hk)).astype(dtype)
    # scale the weights up so that the softmax is far from uniform
    return q, k, p["w_q"] * 3, p["w_k"] * 3, p["v"] * 3


def _torch_attention(q, k, w_q, w_k, v, lengths=None):
    """The equations of lstmlib.attention, written again in torch ops."""
    u = torch.tanh(q @ w_q.T + k @ w_k.T)            # (S, B, A)
    e = u @ v                                        # (S, B)
    if lengths is not None:
        S = k.shape[0]
        mask = torch.arange(S)[:, None] < torch.as_tensor(lengths)[None, :]
        e = e.masked_fill(~mask, float("-inf"))
    alpha = torch.softmax(e, dim=0)
    return (alpha[:, :, None] * k).sum(0), alpha


@pytest.mark.parametrize("lengths", [None, np.array([5, 2, 4])])
def test_forward_and_backward_match_torch_autograd(lengths):
    q, k, w_q, w_k, v = _inputs(0)
    ctx, alpha, cache = attention_forward(q, k, w_q, w_k, v, lengths)
    rng = np.random.default_rng(1)
    dctx = rng.standard_normal(ctx.shape)
    dalpha = rng.standard_normal(alpha.shape)
    g = attention_backward(dctx, cache, dalpha)

    tt = [torch.tensor(a, requires_grad=True) for a in (q, k, w_q, w_k, v)]
    tctx, talpha = _torch_attention(*tt, lengths)
    ((tctx * torch.tensor(dctx)).sum() + (talpha * torch.tensor(dalpha)).sum()).backward()
    np.testing.assert_allclose(ctx, tctx.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(alpha, talpha.detach().numpy(), rtol=1e-12, atol=1e-14)
    for name, mine, t in zip(g._fields, g, tt):
        np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_padding_gets_zero_weight_and_zero_gradient():
    q, k, w_q, w_k, v = _inputs(2)
    lengths = np.array([2, 5, 1])
    ctx, alpha, cache = attention_forward(q, k, w_q, w_k, v, lengths)
    for b, L in enumerate(lengths):
        assert np.all(alpha[L:, b] == 0) and np.isclose(alpha[:L, b].sum(), 1)
    # padding keys cannot change the context, and receive no gradient
    k2 = k.copy()
    k2[3:, 0] += 100.0
    ctx2, _, _ = attention_forward(q, k2, w_q, w_k, v, lengths)
    np.testing.assert_array_equal(ctx[0], ctx2[0])
    g = attention_backward(np.ones_like(ctx), cache)
    assert np.all(g.dkeys[2:, 0] == 0) and np.all(g.dkeys[1:, 2] == 0)
    assert np.any(g.dkeys[:2, 0] != 0)


def test_central_differences():
    q, k, w_q, w_k, v = _inputs(3, S=4, B=2, Hq=3, Hk=3, A=5)
    lengths = np.array([4, 3])
    dctx = np.random.default_rng(4).standard_normal((2, 3))
    _, _, cache = attention_forward(q, k, w_q, w_k, v, lengths)
    g = attention_backward(dctx, cache)

    def f():
        return attention_forward(q, k, w_q, w_k, v, lengths)[0]

    for name, arr, grad in zip(g._fields, (q, k, w_q, w_k, v), g):
        assert rel_error(grad, numerical_gradient(f, arr, dctx)) < 1e-7, name


def test_softmax_does_not_overflow_and_keeps_dtype():
    e = np.array([[1000.0, -5.0], [999.0, -6.0]])
    w = softmax(e)
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w[:, 0], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])
    q, k, w_q, w_k, v = _inputs(5, dtype=np.float32)
    ctx, alpha, cache = attention_forward(q, k, w_q, w_k, v)
    g = attention_backward(np.ones_like(ctx), cache)
    assert ctx.dtype == alpha.dtype == np.float32
    assert all(d.dtype == np.float32 for d in g)


def test_bad_input_names_the_argument():
    q, k, w_q, w_k, v = _inputs(6)
    with pytest.raises(ValueError, match="query"):
        attention_forward(q[:2], k, w_q, w_k, v)
    with pytest.raises(ValueError, match="w_k"):
        attention_forward(q, k, w_q, w_k[:, :2], v)
    with pytest.raises(ValueError, match="lengths"):
        attention_forward(q, k, w_q, w_k, v, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="dtype float64"):
        attention_forward(q.astype(np.float32), k, w_q, w_k, v)
    _, _, cache = attention_forward(q, k, w_q, w_k, v)
    with pytest.raises(ValueError, match="dcontext"):
        attention_backward(np.ones((3, 2)), cache)
