"""Regularisation and practice: recurrent dropout (gradient-checked,
PyTorch as the oracle; dropout between layers is in
test_layers_torch_parity.py), the train/eval switch, AdamW against
torch.optim.AdamW, early stopping, initialisation, and the layer-normalised
LSTM (gradient-checked, PyTorch's layer_norm as the oracle)."""

import numpy as np
import pytest
import torch

import lstmlib
from lstmlib.gradcheck import numerical_gradient, rel_error
from lstmlib.init import init_recurrent, orthogonal
from lstmlib.layernorm import (LayerNormLSTM, init_params, layer_norm_backward,
                               layer_norm_forward, ln_lstm_backward, ln_lstm_forward)
from lstmlib.regularization import (Dropout, EarlyStopping, Sequential, dropout_mask,
                                    set_training, variational_backward,
                                    variational_forward)

T, B, D, H = 6, 3, 4, 5


def rand(rng, *shape):
    return rng.standard_normal(shape)


# -- dropout --------------------------------------------------------------

def test_dropout_mask_keeps_the_expectation():
    m = dropout_mask((200, 500), 0.3, np.random.default_rng(0))
    assert set(np.unique(m)) == {0.0, 1 / 0.7}
    assert abs((m == 0).mean() - 0.3) < 0.01
    assert abs(m.mean() - 1.0) < 0.02
    assert not dropout_mask((3, 4), 1.0, np.random.default_rng(0)).any()
    assert np.all(dropout_mask((3, 4), 0.0, np.random.default_rng(0)) == 1)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True, None])
def test_dropout_probability_is_checked(p):
    with pytest.raises(ValueError, match=r"^p: expected a probability in \[0, 1\]"):
        dropout_mask((2, 2), p, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^p: expected a probability in \[0, 1\]"):
        Dropout(p)
    with pytest.raises(ValueError, match=r"^recurrent_dropout: expected a probability"):
        lstmlib.LSTM(2, 3, 2, recurrent_dropout=p)


def variational_setup(seed=0, kind="lstm"):
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lstm": 4}[kind]
    w = [rand(rng, G * H, D) * 0.5, rand(rng, G * H, H) * 0.5,
         rand(rng, G * H) * 0.3, rand(rng, G * H) * 0.3]
    x = rand(rng, T, B, D)
    state = (rand(rng, B, H), rand(rng, B, H))[:2 if kind == "lstm" else 1]
    mx = dropout_mask((B, D), 0.3, rng)
    mh = dropout_mask((B, H), 0.3, rng)
    return x, state, w, mx, mh


def test_recurrent_dropout_uses_one_mask_per_sequence():
    """A unit of h dropped for a sequence is dropped at every step: its
    weights in W_hh get no gradient from that sequence."""
    x, state, w, mx, mh = variational_setup()
    mh[:] = 1 / 0.7
    mh[:, 2] = 0.0                                  # unit 2 dropped everywhere
    out, _, cache = variational_forward("lstm", x, state, w, mx, mh)
    _, (dh0, _), (_, dw_hh, _, _) = variational_backward(
        rand(np.random.default_rng(5), T, B, H), (None, None), cache)
    assert np.all(dw_hh[:, 2] == 0)
    assert np.all(dw_hh[:, [0, 1, 3, 4]] != 0)
    assert np.all(dh0[:, 2] == 0)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("reverse,lengths", [(False, None), (True, [6, 2, 4])])
def test_recurrent_dropout_gradcheck(kind, reverse, lengths):
    x, state, w, mx, mh = variational_setup(kind=kind)
    rng = np.random.default_rng(6)
    g_out, g_state = rand(rng, T, B, H), [rand(rng, B, H) for _ in state]

    def loss():
        o, s, _ = variational_forward(kind, x, state, w, mx, mh, lengths, reverse)
        return np.array([(o * g_out).sum() + sum((a * g).sum() for a, g in zip(s, g_state))])

    _, _, cache = variational_forward(kind, x, state, w, mx, mh, lengths, reverse)
    dx, d_state, dw = variational_backward(g_out, g_state, cache)
    for name, arr, ana in [("x", x, dx), *[(f"state[{j}]", s, d) for j, (s, d)
                                          in enumerate(zip(state, d_state))],
                           *[(f"w[{j}]", a, d) for j, (a, d) in enumerate(zip(w, dw))]]:
        assert rel_error(ana, numerical_gradient(loss, arr)) < 1e-7, name


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_recurrent_dropout_matches_torch_cell(kind):
    """Torch's cell, the same masks applied by hand: values and gradients."""
    x, state, w, mx, mh = variational_setup(kind=kind)
    cell = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.RNNCell)(D, H).double()
    with torch.no_grad():
        for p, a in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), w):
            p.copy_(torch.from_numpy(a))
    g_out = rand(np.random.default_rng(7), T, B, H)
    out, _, cache = variational_forward(kind, x, state, w, mx, mh)
    dx, _, dw = variational_backward(g_out, (None,) * len(state), cache)
    xt = torch.from_numpy(x).requires_grad_()
    s = [torch.from_numpy(a) for a in state]
    mxt, mht = torch.from_numpy(mx), torch.from_numpy(mh)
    outs = []
    for t in range(T):
        if kind == "lstm":
            s = list(cell(xt[t] * mxt, (s[0] * mht, s[1])))
        else:
            s = [cell(xt[t] * mxt, s[0] * mht)]
        outs.append(s[0])
    o = torch.stack(outs)
    (o * torch.from_numpy(g_out)).sum().backward()
    np.testing.assert_allclose(out, o.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dw[1], cell.weight_hh.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind,bidir,lengths", [
    ("LSTM", False, None), ("LSTM", True, [6, 2, 4]), ("RNN", True, [6, 2, 4]),
    ("PeepholeLSTM", False, [6, 2, 4])])
def test_layer_gradcheck_with_both_dropouts_and_frozen_masks(kind, bidir, lengths):
    """The whole stacked layer (both kinds of dropout, in training mode)
    against central differences, the masks frozen by re-seeding the layer's
    mask generator before every forward call."""
    layer = getattr(lstmlib, kind)(D, H, 2, dropout=0.3, bidirectional=bidir,
                                   recurrent_dropout=0.2, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = rand(rng, T, B, D)
    g = rand(rng, T, B, layer.num_directions * H)

    def loss():
        layer.dropout_rng = np.random.default_rng(42)
        return np.array([(layer(x, lengths=lengths)[0] * g).sum()])

    loss()
    assert all(m is not None for m in layer.masks())
    assert all(r is not None for masks in layer.recurrent_masks() for r in masks)
    dx, _ = layer.backward(g)
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-5
    for k in ("weight_hh_l0", "weight_ih_l1", "bias_hh_l1"):
        analytic = layer.grads[k].copy()
        assert rel_error(analytic, numerical_gradient(loss, layer.params[k])) < 1e-5, k


def test_recurrent_dropout_draws_one_mask_per_layer_direction_and_call():
    layer = lstmlib.LSTM(D, H, 2, bidirectional=True, recurrent_dropout=0.5,
                         dropout_rng=3)
    x = rand(np.random.default_rng(1), T, B, D)
    out, _ = layer(x)
    masks = layer.recurrent_masks()
    assert [len(m) for m in masks] == [2, 2]
    (mx0, mh0), (mx1, _) = masks[0]
    assert mx0.shape == (B, D) and mh0.shape == (B, H) and masks[1][0][0].shape == (B, 2 * H)
    assert set(np.unique(np.concatenate([mx0.ravel(), mh0.ravel()]))) <= {0.0, 2.0}
    assert not np.array_equal(mx0, mx1)             # each direction its own
    assert not np.allclose(layer(x)[0], out)        # fresh masks each call
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0], layer(x)[0])
    assert layer.recurrent_masks() == [[None, None], [None, None]]


def test_gru_has_no_recurrent_dropout():
    with pytest.raises(ValueError, match=r"^recurrent_dropout: expected 0.0 for a GRU"):
        lstmlib.GRU(D, H, recurrent_dropout=0.2)
    lstmlib.GRU(D, H, 2, dropout=0.2)               # between layers it has


def test_dropout_layer_train_eval_and_set_training():
    rng = np.random.default_rng(0)
    drop = Dropout(0.5, rng=rng)
    model = lstmlib.SequenceModel(lstmlib.LSTM(D, H, 2, dropout=0.5, rng=rng),
                                  Sequential(drop, lstmlib.Linear(H, 2, rng=rng)),
                                  readout="all")
    x = rand(rng, T, B, D)
    assert model.rnn.training and drop.training
    assert not np.allclose(model(x), model(x))     # fresh masks each call
    assert set_training(model, False) is model
    assert not drop.training and not model.rnn.training and not model.head.training
    np.testing.assert_array_equal(model(x), model(x))
    y = drop.forward(x)
    assert y is x and drop.backward(x) is x
    assert model.head.train() is model.head and drop.training   # Sequential's parts too
    assert model.rnn.train().training
    assert model.rnn.eval() is model.rnn and not model.rnn.training
    set_training(model, True)
    assert drop.training and model.rnn.training
    with pytest.raises(ValueError, match="^mode: expected True or False"):
        drop.train("no")


# -- AdamW ----------------------------------------------------------------

@pytest.mark.parametrize("wd", [0.0, 0.01, 0.3])
def test_adamw_matches_torch(wd):
    rng = np.random.default_rng(0)
    params = {"a": rand(rng, 3, 4), "b": rand(rng, 5)}
    ref = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    ours = lstmlib.AdamW(params, lr=0.05, betas=(0.8, 0.99), eps=1e-7, weight_decay=wd)
    theirs = torch.optim.AdamW(ref.values(), lr=0.05, betas=(0.8, 0.99), eps=1e-7,
                               weight_decay=wd)
    for _ in range(7):
        grads = {k: rand(rng, *v.shape) for k, v in params.items()}
        for k, p in ref.items():
            p.grad = torch.from_numpy(grads[k].copy())
        ours.step(grads)
        theirs.step()
    for k in params:
        np.testing.assert_allclose(params[k], ref[k].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_adamw_decay_is_decoupled_from_adam():
    """With zero gradients Adam does nothing, AdamW shrinks by (1 - lr wd)."""
    p = {"w": np.ones(3)}
    opt = lstmlib.AdamW(p, lr=0.1, weight_decay=0.5)
    opt.step({"w": np.zeros(3)})
    np.testing.assert_allclose(p["w"], 0.95)
    with pytest.raises(ValueError, match="^weight_decay: expected"):
        lstmlib.AdamW(p, weight_decay=-1)


# -- early stopping -------------------------------------------------------

def test_early_stopping_stops_after_patience_and_restores_the_best():
    params = {"w": np.zeros(2)}
    stop = EarlyStopping(patience=2, min_delta=0.01)
    decisions = []
    for i, v in enumerate([3.0, 2.0, 1.0, 1.005, 1.2, 0.5]):
        params["w"][:] = i
        decisions.append(stop.step(v, params))
        if decisions[-1]:
            break
    assert decisions == [False, False, False, False, True]
    assert stop.best == 1.0 and stop.best_index == 2
    stop.restore(params)
    np.testing.assert_array_equal(params["w"], [2, 2])
    with pytest.raises(ValueError, match="^patience"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="^val_loss"):
        EarlyStopping().step(float("nan"), params)


# -- initialisation -------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3)])
def test_orthogonal(shape):
    w = orthogonal(shape, np.random.default_rng(0), gain=2.0)
    small = min(shape)
    gram = w @ w.T if shape[0] == small else w.T @ w
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)


def test_init_recurrent_lstm():
    layer = lstmlib.LSTM(D, H, num_layers=2, rng=np.random.default_rng(0))
    w_ih = layer.params["weight_ih_l1"].copy()
    init_recurrent(layer, np.random.default_rng(1), forget_bias=1.0)
    for k in (0, 1):
        w = layer.params[f"weight_hh_l{k}"]
        for g in range(4):
            block = w[g * H:(g + 1) * H]
            np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12)
        b = layer.params[f"bias_ih_l{k}"] + layer.params[f"bias_hh_l{k}"]
        np.testing.assert_array_equal(b, np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])
    np.testing.assert_array_equal(layer.params["weight_ih_l1"], w_ih)
    # torch reads the same forget gate rows: its f at x = 0, h = 0 is sigmoid(1)
    ref = torch.nn.LSTM(D, H, num_layers=2).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in layer.params.items()})
    _, (_, c) = ref(torch.zeros(1, 1, D, dtype=torch.float64),
                    (torch.zeros(2, 1, H, dtype=torch.float64),
                     torch.ones(2, 1, H, dtype=torch.float64)))
    np.testing.assert_allclose(c[0].detach().numpy(), 1 / (1 + np.exp(-1.0)), rtol=1e-12)


def test_init_recurrent_gru_has_no_forget_bias():
    layer = lstmlib.GRU(D, H, rng=np.random.default_rng(0))
    init_recurrent(layer, np.random.default_rng(1))
    assert not layer.params["bias_ih_l0"].any()


# -- layer normalisation --------------------------------------------------

def test_layer_norm_matches_torch_and_gradcheck():
    rng = np.random.default_rng(0)
    a, gain, bias, dy = rand(rng, 4, 7), rand(rng, 7), rand(rng, 7), rand(rng, 4, 7)
    y, cache = layer_norm_forward(a, gain, bias)
    at = torch.from_numpy(a).requires_grad_()
    gt = torch.from_numpy(gain).requires_grad_()
    bt = torch.from_numpy(bias).requires_grad_()
    yt = torch.nn.functional.layer_norm(at, (7,), gt, bt, eps=1e-5)
    (yt * torch.from_numpy(dy)).sum().backward()
    da, dg, db = layer_norm_backward(dy, cache)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(da, at.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dg, gt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10)


def ln_setup():
    rng = np.random.default_rng(0)
    p = init_params(D, H, rng)
    for k in ("b", "g_x", "g_h", "g_c", "b_c"):       # not the trivial 1s and 0s
        p[k] = p[k] + 0.3 * rand(rng, *p[k].shape)
    return p, rand(rng, T, B, D), rand(rng, B, H), rand(rng, B, H), rand(rng, T, B, H)


def test_layernorm_lstm_gradcheck():
    p, x, h0, c0, g_out = ln_setup()
    g_c = rand(np.random.default_rng(9), B, H)

    def loss():
        o, (_, c), _ = ln_lstm_forward(x, h0, c0, p)
        return np.array([(o * g_out).sum() + (c * g_c).sum()])

    _, _, caches = ln_lstm_forward(x, h0, c0, p)
    dx, dh0, dc0, grads = ln_lstm_backward(g_out, None, g_c, caches, p)
    for name, arr, ana in [("x", x, dx), ("h0", h0, dh0), ("c0", c0, dc0),
                           *[(k, p[k], grads[k]) for k in p]]:
        assert rel_error(ana, numerical_gradient(loss, arr)) < 1e-6, name


def test_layernorm_lstm_matches_torch():
    p, x, h0, c0, g_out = ln_setup()
    F = torch.nn.functional
    tp = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in p.items()}
    xt = torch.from_numpy(x).requires_grad_()
    h, c = torch.from_numpy(h0), torch.from_numpy(c0)
    outs = []
    for t in range(T):
        a = (F.layer_norm(xt[t] @ tp["w_ih"].T, (4 * H,), tp["g_x"], eps=1e-5)
             + F.layer_norm(h @ tp["w_hh"].T, (4 * H,), tp["g_h"], eps=1e-5) + tp["b"])
        i, f, g, o = a.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(F.layer_norm(c, (H,), tp["g_c"], tp["b_c"], eps=1e-5))
        outs.append(h)
    (torch.stack(outs) * torch.from_numpy(g_out)).sum().backward()
    out, _, caches = ln_lstm_forward(x, h0, c0, p)
    dx, _, _, grads = ln_lstm_backward(g_out, None, None, caches, p)
    np.testing.assert_allclose(out, torch.stack(outs).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for k in p:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=k)


def test_layernorm_lstm_layer_in_a_sequence_model():
    rng = np.random.default_rng(0)
    layer = LayerNormLSTM(D, H, rng=rng)
    model = lstmlib.SequenceModel(layer, lstmlib.Linear(H, 2, rng=rng), readout="all")
    x = rand(rng, T, B, D)
    out = model(x)
    model.backward(np.ones_like(out))
    assert set(model.grads) == set(model.params)
    # normalised: scaling every input weight by 10 changes nothing
    before = model(x).copy()
    layer.params["w_ih"] *= 10
    np.testing.assert_allclose(model(x), before, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="^x: expected shape"):
        layer(rand(rng, T, B, D + 1))
