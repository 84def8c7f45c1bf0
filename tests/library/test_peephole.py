"""The peephole LSTM, added through the cell registry (CONTRIBUTING.md):
PyTorch has no peephole cell, so the oracle is torch autograd of the same
equations written in torch ops; central differences check the backward
pass too."""

import numpy as np
import pytest
import torch

import lstmlib
from lstmlib import peephole
from lstmlib.cells import CELL_TYPES, get_cell, parameter_shapes
from lstmlib.gradcheck import numerical_gradient, rel_error

T, B, D, H = 5, 3, 4, 6


def _weights(rng, bias=True, dtype=np.float64):
    def r(*shape):
        return (0.5 * rng.standard_normal(shape)).astype(dtype)
    return (r(4 * H, D), r(4 * H, H), r(4 * H) if bias else None,
            r(4 * H) if bias else None, r(3, H))


def _torch_peephole(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_ch, lengths=None,
                    reverse=False):
    """The module docstring's equations in torch ops (autograd's oracle)."""
    outs, h, c = [None] * x.shape[0], h0, c0
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        a = x[t] @ w_ih.T + h @ w_hh.T
        if b_ih is not None:
            a = a + b_ih + b_hh
        ai, af, ag, ao = a.chunk(4, dim=1)
        i = torch.sigmoid(ai + w_ch[0] * c)
        f = torch.sigmoid(af + w_ch[1] * c)
        g = torch.tanh(ag)
        c_new = f * c + i * g
        o = torch.sigmoid(ao + w_ch[2] * c_new)
        h_new = o * torch.tanh(c_new)
        if lengths is not None:
            m = torch.tensor((t < lengths).astype(np.float64))[:, None]
            h_new = m * h_new + (1 - m) * h
            c_new = m * c_new + (1 - m) * c
            outs[t] = m * h_new
        else:
            outs[t] = h_new
        h, c = h_new, c_new
    return torch.stack(outs), h, c


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lengths,reverse", [(None, False),
                                             (np.array([5, 2, 4]), True)])
def test_sequence_matches_torch_autograd(bias, lengths, reverse):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w = _weights(rng, bias)
    d_out, dh_n, dc_n = (rng.standard_normal(s) for s in
                         [(T, B, H), (B, H), (B, H)])

    leaves = [torch.tensor(a, requires_grad=True) if a is not None else None
              for a in (x, h0, c0, *w)]
    out_t, h_t, c_t = _torch_peephole(*leaves, lengths=lengths, reverse=reverse)
    ((out_t * torch.tensor(d_out)).sum() + (h_t * torch.tensor(dh_n)).sum()
     + (c_t * torch.tensor(dc_n)).sum()).backward()

    out, (h_n, c_n), cache = peephole.peephole_forward(
        x, h0, c0, *w, lengths=lengths, reverse=reverse)
    g = peephole.peephole_backward(d_out, dh_n, dc_n, cache)
    for got, want in [(out, out_t), (h_n, h_t), (c_n, c_t)]:
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12,
                                   atol=1e-14)
    names = ["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_ch"]
    for name, leaf in zip(names, leaves[:3] + leaves[3:5] + leaves[5:]):
        got = getattr(g, name)
        if leaf is None:
            assert got is None, name
            continue
        np.testing.assert_allclose(got, leaf.grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_peepholes_change_the_result():
    """w_ch really enters the equations: with zero peepholes the cell is the
    plain LSTM, with non-zero ones it is not."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w = _weights(rng)
    plain, _, _ = lstmlib.lstm_forward(x, h0, c0, *w[:4])
    zero, _, _ = peephole.peephole_forward(x, h0, c0, *w[:4], np.zeros((3, H)))
    np.testing.assert_allclose(zero, plain, rtol=1e-13, atol=1e-15)
    other, _, _ = peephole.peephole_forward(x, h0, c0, *w)
    assert np.max(np.abs(other - plain)) > 1e-3


def test_step_backward_numerically():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, D))
    h, c = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w = list(_weights(rng))
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    _, cache = peephole.peephole_step_forward(x, h, c, *w)
    g = peephole.peephole_step_backward(dh, dc, cache)

    def loss_terms():
        (h1, c1), _ = peephole.peephole_step_forward(x, h, c, *w)
        return np.concatenate([h1, c1], axis=1)

    df = np.concatenate([dh, dc], axis=1)
    for name, arr in [("dx", x), ("dh_prev", h), ("dc_prev", c),
                      ("dw_ch", w[4]), ("dw_ih", w[0])]:
        num = numerical_gradient(loss_terms, arr, df)
        assert rel_error(getattr(g, name), num) < 1e-7, name


def test_bad_peephole_weights_are_refused():
    rng = np.random.default_rng(3)
    w = _weights(rng)
    x = rng.standard_normal((T, B, D))
    s = rng.standard_normal((B, H))
    with pytest.raises(ValueError, match=r"w_ch: expected shape \(3, 6\)"):
        peephole.peephole_forward(x, s, s, *w[:4], np.zeros((4, H)))


def test_registered_and_used_by_the_layer_class():
    spec = CELL_TYPES["peephole_lstm"]
    assert spec.torch_class is None and len(spec.gates) == 4
    assert [n for n, _ in parameter_shapes("peephole_lstm", D, H)] == [
        "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ch"]
    assert get_cell("peephole_lstm", "numba").backend == "numpy"  # reference
    layer = lstmlib.PeepholeLSTM(D, H, num_layers=2, bidirectional=True,
                                 rng=np.random.default_rng(4))
    assert layer.params["weight_ch_l1_reverse"].shape == (3, H)
    assert set(layer.params) == set(layer.grads)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, D))
    out, (h_n, c_n) = layer.forward(x, lengths=np.array([5, 3, 1]))
    assert out.shape == (T, B, 2 * H) and h_n.shape == (4, B, H)
    d_out = rng.standard_normal(out.shape)
    dx, _ = layer.backward(d_out)

    # the layer's gradient of one peephole weight, by central differences
    p = layer.params["weight_ch_l0"]

    def f():
        return layer.forward(x, lengths=np.array([5, 3, 1]))[0]

    num = numerical_gradient(f, p, d_out)
    layer.forward(x, lengths=np.array([5, 3, 1]))
    layer.backward(d_out)
    assert rel_error(layer.grads["weight_ch_l0"], num) < 1e-7
    with pytest.raises(ValueError, match="torch counterpart"):
        lstmlib.to_torch(layer)
