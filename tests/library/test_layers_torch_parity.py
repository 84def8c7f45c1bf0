"""lstmlib's layers against PyTorch: outputs, final states and every gradient.

PyTorch is the oracle. With ``dropout``, the layers in evaluation mode are
compared with torch's; in training mode torch draws its own masks, so the
masks are checked for what they are (Bernoulli(1 - p) scaled by 1 / (1 - p),
fresh for every entry, between layers only) and torch is run with ours
applied by hand. Every bias and initial state is random and non-zero
so that a wrong bias or a dropped state term cannot hide.
"""

import itertools
import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmlib
from lstmlib.gradcheck import numerical_gradient, rel_error

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
              nonlinearity="tanh", seed=0, dropout=0.0):
    rng = np.random.default_rng(seed)
    D, H = 3, 4
    kwargs = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidir,
                  dropout=dropout)
    if kind == "RNN":
        kwargs["nonlinearity"] = nonlinearity
    torch.manual_seed(seed)
    module = getattr(torch.nn, kind)(D, H, **kwargs).to(dtype)
    if dropout:
        module.eval()                           # torch's dropout off
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


def layer_like(module, **extra):
    """The lstmlib layer with ``module``'s options (its dropout too) and weights."""
    kwargs = dict(num_layers=module.num_layers, bias=module.bias,
                  batch_first=module.batch_first, dropout=module.dropout,
                  bidirectional=module.bidirectional, rng=np.random.default_rng(0),
                  dtype=next(module.parameters()).detach().numpy().dtype, **extra)
    if isinstance(module, torch.nn.RNN):
        kwargs["nonlinearity"] = module.nonlinearity
    layer = getattr(lstmlib, type(module).__name__)(module.input_size, module.hidden_size,
                                                    **kwargs)
    layer.load_state_dict(dict(module.named_parameters()))
    return layer


def _check(kind, T, B, layers, bidir, bf, bias, lens, dtype, nonlinearity="tanh",
           dropout=0.0, recurrent_dropout=0.0):
    module, x, state, lengths, g_out, g_state = make_case(
        kind, T, B, layers, bidir, bf, bias, lens, dtype, nonlinearity, dropout=dropout)
    want_out, want_st, want_dx, want_dst, want_grads = torch_run(
        module, x, state, lengths, g_out, g_state)
    if dropout or recurrent_dropout:            # evaluation mode: torch exactly
        layer = layer_like(module, recurrent_dropout=recurrent_dropout).eval()
        assert not layer.training
    else:
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


# -- dropout ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers,bidir,bf,lens", [(2, False, False, False),
                                                  (3, True, True, True)])
def test_dropout_in_eval_mode_is_torch(kind, layers, bidir, bf, lens):
    """nn.X(..., dropout=0.5).eval() and ours in eval mode: equal, values
    and gradients; recurrent dropout (RNN, LSTM) is off in eval mode too."""
    _check(kind, 7, 3, layers, bidir, bf, True, lens, torch.float64, dropout=0.5,
           recurrent_dropout=0.0 if kind == "GRU" else 0.3)


def test_dropout_one_in_training_mode_is_torch():
    """p = 1 drops everything, so torch's training mode is deterministic:
    the layers above the first see zeros, in both."""
    module, x, state, _, g_out, g_state = make_case("LSTM", 5, 2, 3, True, False, True,
                                                    False, torch.float64, dropout=1.0)
    module.train()
    want_out, want_st, want_dx, _, want_grads = torch_run(module, x, state, None, g_out,
                                                          g_state)
    layer = layer_like(module)
    assert layer.training
    out, st_n = layer.forward(x, tuple(state))
    dx, _ = layer.backward(g_out, tuple(g_state))
    assert all(not m.any() for m in layer.masks())
    np.testing.assert_allclose(out, want_out, **TOL[torch.float64])
    for a, b in zip(st_n, want_st):
        np.testing.assert_allclose(a, b, **TOL[torch.float64])
    np.testing.assert_allclose(dx, want_dx, **TOL[torch.float64])
    for k, g in want_grads.items():
        np.testing.assert_allclose(layer.grads[k], g, **TOL[torch.float64], err_msg=k)


def test_dropout_masks_are_bernoulli_scaled_and_fresh_for_every_entry():
    p, T, B, H = 0.3, 40, 20, 50
    layer = lstmlib.LSTM(3, H, num_layers=3, dropout=p, dropout_rng=0)
    x = np.random.default_rng(1).standard_normal((T, B, 3))
    layer.forward(x)
    masks = layer.masks()
    assert len(masks) == 2                          # never after the last layer
    for m in masks:
        assert m.shape == (T, B, H)
        assert set(np.unique(m)) == {0.0, 1 / (1 - p)}
        n = m.size                                  # 40,000 draws: sd of the rate 0.0023
        assert abs((m == 0).mean() - p) < 4.5 * np.sqrt(p * (1 - p) / n)
        assert abs(m.mean() - 1) < 4.5 * np.sqrt(p / (1 - p) / n)
        # a fresh mask at every step (not one per sequence): no unit of any
        # sequence is kept or dropped at all 40 steps (chance ~1e-6 each)
        assert not np.any(np.all(m == m[:1], axis=0))
    assert abs(np.corrcoef(masks[0].ravel(), masks[1].ravel())[0, 1]) < 0.03
    first = masks[0].copy()
    layer.forward(x)
    assert not np.array_equal(layer.masks()[0], first)     # fresh each call


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_between_layers_matches_torch_with_the_same_masks(kind):
    """Ours in training mode against two one-layer torch modules with our
    mask applied by hand to the output passed up: values and gradients."""
    D, H, T, B = 3, 4, 6, 2
    torch.manual_seed(0)
    l0 = getattr(torch.nn, kind)(D, H, bidirectional=True).double()
    l1 = getattr(torch.nn, kind)(2 * H, H, bidirectional=True).double()
    ours = getattr(lstmlib, kind)(D, H, 2, dropout=0.4, bidirectional=True,
                                  dropout_rng=np.random.default_rng(3))
    ours.load_state_dict({**dict(l0.named_parameters()),
                          **{k.replace("l0", "l1"): v for k, v in l1.named_parameters()}})
    rng = np.random.default_rng(4)
    x, g = rng.standard_normal((T, B, D)), rng.standard_normal((T, B, 2 * H))
    out, _ = ours(x)
    dx, _ = ours.backward(g)
    mask = ours.masks()[0]
    assert mask.shape == (T, B, 2 * H) and (mask == 0).any()
    xt = torch.from_numpy(x).requires_grad_()
    o, _ = l1(l0(xt)[0] * torch.from_numpy(mask))
    (o * torch.from_numpy(g)).sum().backward()
    tol = TOL[torch.float64]
    np.testing.assert_allclose(out, o.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    for name, p in l0.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), **tol, err_msg=name)
    for name, p in l1.named_parameters():
        np.testing.assert_allclose(ours.grads[name.replace("l0", "l1")], p.grad.numpy(),
                                   **tol, err_msg=name)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_gradient_matches_numerical_with_the_mask_fixed(kind):
    """Training mode against central differences; re-seeding the masks'
    generator before every forward call fixes the masks."""
    layer = getattr(lstmlib, kind)(3, 4, 3, dropout=0.5, batch_first=True,
                                   rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4))
    lengths = np.array([5, 3])

    def loss():
        layer.dropout_rng = np.random.default_rng(7)
        return np.array([(layer(x, lengths=lengths)[0] * g).sum()])

    loss()
    assert all((m == 0).any() for m in layer.masks())
    dx, _ = layer.backward(g)
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-6
    for k in ("weight_ih_l0", "weight_hh_l1", "bias_ih_l2"):
        analytic = layer.grads[k].copy()
        assert rel_error(analytic, numerical_gradient(loss, layer.params[k])) < 1e-5, k


def test_train_eval_switch_and_explicit_mask_generator():
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    a = lstmlib.GRU(3, 4, 2, dropout=0.5, rng=np.random.default_rng(0), dropout_rng=5)
    b = lstmlib.GRU(3, 4, 2, dropout=0.5, rng=np.random.default_rng(0), dropout_rng=5)
    assert a.training                               # as torch: built in training mode
    np.testing.assert_array_equal(a(x)[0], b(x)[0])  # same seed, same masks
    assert not np.array_equal(a(x)[0], a(x)[0])       # fresh masks each call
    assert a.eval() is a and not a.training
    ref = lstmlib.to_torch(a).eval()
    np.testing.assert_allclose(a(x)[0], ref(torch.from_numpy(x))[0].detach().numpy(),
                               **TOL[torch.float64])
    np.testing.assert_array_equal(a(x)[0], a(x)[0])
    assert a.masks() == [None]
    assert a.train() is a and a.training
    assert a.train(False) is a and not a.training
    with pytest.raises(ValueError, match="^dropout_rng: expected None, an integer seed"):
        lstmlib.LSTM(3, 4, 2, dropout=0.5, dropout_rng="seed")
    with pytest.raises(RuntimeError, match="forward"):
        lstmlib.LSTM(3, 4).masks()


@pytest.mark.parametrize("p", [-0.1, 1.01, "0.5", True, None])
def test_dropout_argument_is_checked_as_torch_does(p):
    error, message = ((TypeError, r"float\(\) argument") if p is None else
                      (ValueError, r"dropout should be a number in range \[0, 1\]"))
    with pytest.raises(error, match=message):
        torch.nn.LSTM(3, 4, 2, dropout=p)     # float(None) fails first in torch
    with pytest.raises(ValueError, match=r"^dropout: expected a probability in \[0, 1\]"):
        lstmlib.LSTM(3, 4, 2, dropout=p)


def test_dropout_with_one_layer_warns_as_torch_does():
    with pytest.warns(UserWarning, match="num_layers greater than 1") as theirs:
        torch.nn.LSTM(3, 4, dropout=0.5)
    for cls in (lstmlib.RNN, lstmlib.LSTM, lstmlib.GRU):
        with pytest.warns(UserWarning, match="num_layers greater than 1") as ours:
            cls(3, 4, dropout=0.5)
        assert str(ours[0].message) == str(theirs[0].message)
        assert ours[0].filename == __file__         # points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lstmlib.LSTM(3, 4, dropout=0.0)
        lstmlib.LSTM(3, 4, 2, dropout=0.5)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_and_mode_cross_to_and_from_torch(kind):
    """A torch layer with dropout between its layers converts with its
    dropout and its mode (eval: equal to torch), and back; recurrent
    dropout, which torch lacks, is refused on the way to torch."""
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(3, 4, num_layers=2, dropout=0.3).double().eval()
    layer = lstmlib.from_torch(module)
    assert layer.dropout == 0.3 and layer.training is False
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    out, _ = layer.forward(x)
    with torch.no_grad():
        expected = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    back = lstmlib.to_torch(layer.train())
    assert back.dropout == 0.3 and back.training is True
    if kind != "GRU":
        with pytest.raises(ValueError, match="recurrent_dropout"):
            lstmlib.to_torch(getattr(lstmlib, kind)(3, 4, recurrent_dropout=0.2))
