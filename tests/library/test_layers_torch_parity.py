"""lstmlib's layers against PyTorch: outputs, final states and every gradient.

PyTorch is the oracle. Every bias and initial state is random and non-zero
so that a wrong bias or a dropped state term cannot hide.
"""

import itertools

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmlib

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


def torch_run(module, x, state, lengths, g_out, g_state):
    """Forward and backward in torch; returns outputs, final state, grads."""
    T = x.shape[1] if module.batch_first else x.shape[0]
    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(s, requires_grad=True) for s in state)
    inp = xt
    if lengths is not None:
        inp = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=module.batch_first,
                                   enforce_sorted=False)
    out, st_n = module(inp, st if len(st) == 2 else st[0])
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    st_n = st_n if isinstance(st_n, tuple) else (st_n,)
    loss = (out * torch.tensor(g_out)).sum()
    loss = loss + sum((s * torch.tensor(g)).sum() for s, g in zip(st_n, g_state))
    module.zero_grad()
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    return (out.detach().numpy(), [s.detach().numpy() for s in st_n], xt.grad.numpy(),
            [s.grad.numpy() for s in st], grads)


def make_case(kind, T, B, layers, bidir, batch_first, bias, use_lengths, dtype,
              nonlinearity="tanh", seed=0):
    rng = np.random.default_rng(seed)
    D, H = 3, 4
    kwargs = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidir)
    if kind == "RNN":
        kwargs["nonlinearity"] = nonlinearity
    torch.manual_seed(seed)
    module = getattr(torch.nn, kind)(D, H, **kwargs).to(dtype)
    with torch.no_grad():                       # biases random and clearly non-zero
        for name, p in module.named_parameters():
            if name.startswith("bias"):
                p.copy_(torch.tensor(rng.uniform(0.2, 0.8, p.shape) * rng.choice([-1, 1], p.shape)))
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    nd = 2 if bidir else 1
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D)).astype(np_dtype)
    n_states = 2 if kind == "LSTM" else 1
    state = [rng.standard_normal((layers * nd, B, H)).astype(np_dtype) for _ in range(n_states)]
    lengths = None
    if use_lengths:
        lengths = rng.integers(1, T + 1, B)
        lengths[0] = T                           # torch pads to the longest anyway
    out_shape = (B, T, nd * H) if batch_first else (T, B, nd * H)
    g_out = rng.standard_normal(out_shape).astype(np_dtype)
    g_state = [rng.standard_normal(s.shape).astype(np_dtype) for s in state]
    return module, x, state, lengths, g_out, g_state


GRID = [
    (kind, T, B, layers, bidir, bf, bias, lens)
    for kind in ("RNN", "LSTM", "GRU")
    for T, B in [(1, 1), (7, 3), (7, 1), (1, 3)]
    for layers, bidir in [(1, False), (2, True)]
    for bf, bias, lens in [(False, True, False), (True, False, True)]
] + [
    ("LSTM", 7, 3, 2, False, False, True, True),
    ("GRU", 7, 3, 1, True, False, True, True),
    ("RNN", 7, 3, 1, True, True, True, True),
]


def _check(kind, T, B, layers, bidir, bf, bias, lens, dtype, nonlinearity="tanh"):
    module, x, state, lengths, g_out, g_state = make_case(
        kind, T, B, layers, bidir, bf, bias, lens, dtype, nonlinearity)
    want_out, want_st, want_dx, want_dst, want_grads = torch_run(
        module, x, state, lengths, g_out, g_state)
    layer = lstmlib.from_torch(module)
    st = tuple(state) if kind == "LSTM" else state[0]
    out, st_n = layer.forward(x, st, lengths)
    dx, d_st = layer.backward(g_out, tuple(g_state) if kind == "LSTM" else g_state[0])
    st_n = st_n if kind == "LSTM" else (st_n,)
    d_st = d_st if kind == "LSTM" else (d_st,)
    tol = TOL[dtype]
    assert out.dtype == x.dtype and dx.dtype == x.dtype
    np.testing.assert_allclose(out, want_out, **tol, err_msg="output")
    for a, b in zip(st_n, want_st):
        np.testing.assert_allclose(a, b, **tol, err_msg="final state")
    np.testing.assert_allclose(dx, want_dx, **tol, err_msg="dx")
    for a, b in zip(d_st, want_dst):
        np.testing.assert_allclose(a, b, **tol, err_msg="d initial state")
    assert set(layer.grads) == set(want_grads) == set(layer.params)
    for k, g in want_grads.items():
        assert layer.grads[k].dtype == x.dtype
        np.testing.assert_allclose(layer.grads[k], g, **tol, err_msg=k)


@pytest.mark.parametrize("kind,T,B,layers,bidir,bf,bias,lens", GRID)
def test_parity_float64(kind, T, B, layers, bidir, bf, bias, lens):
    _check(kind, T, B, layers, bidir, bf, bias, lens, torch.float64)


@pytest.mark.parametrize("bidir,lens", list(itertools.product([False, True], repeat=2)))
def test_relu_rnn_parity(bidir, lens):
    _check("RNN", 7, 3, 2, bidir, False, True, lens, torch.float64, nonlinearity="relu")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidir,lens", [(False, False), (True, True)])
def test_parity_float32(kind, bidir, lens):
    _check(kind, 7, 3, 2, bidir, False, True, lens, torch.float32)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_to_torch_round_trip(kind):
    layer = getattr(lstmlib, kind)(5, 6, num_layers=2, bidirectional=True,
                                   rng=np.random.default_rng(3))
    module = lstmlib.to_torch(layer)
    assert dict(module.named_parameters()).keys() == layer.params.keys()
    x = np.random.default_rng(4).standard_normal((4, 2, 5))
    want, _ = module(torch.tensor(x))
    got, _ = layer.forward(x)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    back = lstmlib.from_torch(module)
    for k, v in layer.params.items():
        np.testing.assert_array_equal(back.params[k], v)


def test_padded_outputs_are_zero_and_reverse_starts_at_last_real_step():
    """Direct statement of the lengths semantics, independent of torch."""
    rng = np.random.default_rng(5)
    layer = lstmlib.LSTM(2, 3, bidirectional=True, rng=rng)
    x = rng.standard_normal((6, 2, 2))
    out, (h, c) = layer.forward(x, lengths=np.array([6, 3]))
    assert np.all(out[3:, 1] == 0)
    alone, (h1, _) = layer.forward(x[:3, 1:2].copy())   # the short sequence by itself
    np.testing.assert_allclose(out[:3, 1:2], alone, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h[:, 1], h1[:, 0], rtol=1e-12, atol=1e-14)


def test_default_parameters_follow_torch_init_and_names():
    layer = lstmlib.GRU(7, 16, num_layers=2, bidirectional=True, rng=np.random.default_rng(0))
    module = torch.nn.GRU(7, 16, num_layers=2, bidirectional=True)
    shapes = {k: tuple(p.shape) for k, p in module.named_parameters()}
    assert {k: v.shape for k, v in layer.params.items()} == shapes
    bound = 1 / np.sqrt(16)
    for v in layer.params.values():
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.8 * bound
    assert layer.num_parameters() == sum(p.numel() for p in module.parameters())
