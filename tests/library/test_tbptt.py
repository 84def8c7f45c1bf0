"""Truncated BPTT (lstmlib.tbptt): the windows, full BPTT as the limit
k2 >= T, PyTorch (detach at chunk borders) as the oracle, and the claim of
the book's experiment (carrying the state helps; a delay past k2 is not
learnt)."""

import numpy as np
import pytest
import torch

import lstmlib
from lstmlib.data.streams import delayed_echo
from lstmlib.tbptt import (Window, tbptt_chunks, tbptt_gradients, tbptt_windows,
                           train_tbptt)

T, B, D, H, C = 23, 3, 4, 5, 2


def half_sse(pred, y):
    """0.5 * sum of squares: a sum over steps, so chunk losses add up."""
    d = pred - y
    return 0.5 * float((d * d).sum()), d


def make_model(seed=0):
    rng = np.random.default_rng(seed)
    return lstmlib.SequenceModel(lstmlib.LSTM(D, H, rng=rng),
                                 lstmlib.Linear(H, C, rng=rng), readout="all")


def data(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D))
    y = rng.standard_normal((T, B, C))
    h0 = rng.standard_normal((1, B, H))
    c0 = rng.standard_normal((1, B, H))
    return x, y, (h0, c0)


def test_windows_follow_williams_and_peng():
    assert tbptt_windows(12, 4) == [Window(0, 0, 4), Window(4, 4, 8), Window(8, 8, 12)]
    assert tbptt_windows(10, 4, 6) == [Window(0, 0, 4), Window(2, 4, 8), Window(4, 8, 10)]
    # the last, shorter chunk: the gradient still goes k2 steps back
    assert tbptt_windows(10, 4)[-1] == Window(6, 8, 10)
    assert tbptt_windows(5, 2, 100) == [Window(0, 0, 2), Window(0, 2, 4), Window(0, 4, 5)]


@pytest.mark.parametrize("kwargs, name", [
    (dict(T=0, k1=2), "T"), (dict(T=5, k1=0), "k1"), (dict(T=5, k1=3, k2=2), "k2"),
    (dict(T=5, k1=2.0), "k1")])
def test_windows_reject_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        tbptt_windows(**kwargs)


def test_model_and_targets_are_checked():
    x, y, s = data()
    rng = np.random.default_rng(0)
    last = lstmlib.SequenceModel(lstmlib.LSTM(D, H, rng=rng), lstmlib.Linear(H, C, rng=rng))
    with pytest.raises(ValueError, match="readout='all'"):
        next(tbptt_chunks(last, x, y, half_sse, 5))
    with pytest.raises(ValueError, match=r"^y: expected leading shape \(23, 3\)"):
        next(tbptt_chunks(make_model(), x, y[:-1], half_sse, 5))


@pytest.mark.parametrize("k1", [1, 4, 7, 23])
def test_k2_at_least_T_sums_to_full_bptt(k1):
    """Nothing cut: the chunks' gradients add up to the gradient of the
    whole sequence's loss, whatever k1."""
    x, y, s = data()
    model = make_model()
    total = None
    for chunk in tbptt_chunks(model, x, y, half_sse, k1, k2=T, state=s):
        total = chunk.grads if total is None else \
            {k: total[k] + g for k, g in chunk.grads.items()}
    out, _ = model.rnn.forward(x, s)
    _, dpred = half_sse(model.head.forward(out), y)
    model.rnn.backward(model.head.backward(dpred))
    for k, g in model.grads.items():
        np.testing.assert_allclose(total[k], g, rtol=1e-10, atol=1e-12, err_msg=k)


def test_k2_below_T_is_not_full_bptt():
    """The cut is real: with k2 < T some gradient is lost."""
    x, y, s = data()
    model = make_model()
    cut = [c.grads for c in tbptt_chunks(model, x, y, half_sse, 4, 4, state=s)]
    full = [c.grads for c in tbptt_chunks(model, x, y, half_sse, 4, T, state=s)]
    assert not np.allclose(sum(g["rnn.weight_hh_l0"] for g in cut),
                           sum(g["rnn.weight_hh_l0"] for g in full))


def torch_twin(model):
    lstm = torch.nn.LSTM(D, H).double()
    head = torch.nn.Linear(H, C).double()
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            p.copy_(torch.from_numpy(model.rnn.params[name]))
        head.weight.copy_(torch.from_numpy(model.head.params["weight"]))
        head.bias.copy_(torch.from_numpy(model.head.params["bias"]))
    return lstm, head


@pytest.mark.parametrize("k1, k2", [(5, 5), (4, 4), (3, 7), (4, 10)])
def test_gradients_match_torch_with_detach_at_window_start(k1, k2):
    """PyTorch: the state entering each window is computed without gradient
    (detached), then the window runs with autograd and only its last k1
    steps count in the loss."""
    x, y, s = data()
    model = make_model()
    ours = list(tbptt_chunks(model, x, y, half_sse, k1, k2, state=s))
    lstm, head = torch_twin(model)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    state = tuple(torch.from_numpy(a) for a in s)
    for chunk in ours:
        start, loss_start, stop = chunk.window
        with torch.no_grad():
            _, s0 = lstm(xt[:start], state) if start else (None, state)
        lstm.zero_grad()
        head.zero_grad()
        out, s_n = lstm(xt[start:stop], tuple(a.detach() for a in s0))
        pred = head(out)[loss_start - start:]
        loss = 0.5 * ((pred - yt[loss_start:stop]) ** 2).sum()
        loss.backward()
        assert chunk.loss == pytest.approx(loss.item(), rel=1e-12)
        for name, p in lstm.named_parameters():
            np.testing.assert_allclose(chunk.grads[f"rnn.{name}"], p.grad.numpy(),
                                       rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(chunk.grads["head.weight"], head.weight.grad.numpy(),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(chunk.state[1][0], s_n[1][0].detach().numpy(),
                                   rtol=1e-10)


def test_state_is_carried_or_reset():
    """Carrying: the chunk's final state equals one pass over the whole
    prefix. Reset: it equals a pass over the chunk alone from zeros."""
    x, y, s = data()
    model = make_model()
    carried = list(tbptt_chunks(model, x, y, half_sse, 6, state=s))
    reset = list(tbptt_chunks(model, x, y, half_sse, 6, carry_state=False))
    _, (h_full, _) = model.rnn.forward(x, s)
    np.testing.assert_allclose(carried[-1].state[0], h_full, rtol=1e-12)
    _, (h_alone, _) = model.rnn.forward(x[reset[-1].window.start:])
    assert reset[-1].window.start == 17      # the last chunk, 5 steps, re-reads one
    np.testing.assert_allclose(reset[-1].state[0], h_alone, rtol=1e-12)
    assert not np.allclose(carried[-1].state[0], reset[-1].state[0])


def test_optimizer_steps_between_chunks_match_torch():
    """train_tbptt with SGD against torch's loop with detach(), k1 = k2
    (20 steps: every chunk is whole)."""
    x, y, s = data()
    x, y = x[:20], y[:20]
    model = make_model()
    lstm, head = torch_twin(model)
    lr, k = 0.05, 5
    train_tbptt(model, x, y, half_sse, lstmlib.SGD(model.params, lr=lr), k,
                epochs=2, progress=False)
    opt = torch.optim.SGD([*lstm.parameters(), *head.parameters()], lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(2):
        state = None
        for t0 in range(0, 20, k):
            opt.zero_grad()
            out, state = lstm(xt[t0:t0 + k], state)
            loss = 0.5 * ((head(out) - yt[t0:t0 + k]) ** 2).sum()
            loss.backward()
            opt.step()
            state = tuple(a.detach() for a in state)
    for name, p in lstm.named_parameters():
        np.testing.assert_allclose(model.rnn.params[name], p.detach().numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def echo_accuracy(model, delay, carry, k):
    rng = np.random.default_rng(99)
    x, y = delayed_echo(8, 400, delay, rng)
    preds = []
    state = None
    for t0 in range(0, 400, k):
        out, s = model.rnn.forward(x[t0:t0 + k], state if carry else None)
        state = s
        preds.append(model.head.forward(out).argmax(-1))
    pred = np.concatenate(preds)
    real = y >= 0
    return float((pred[real] == y[real]).mean())


def train_echo(delay, k, carry, seed=0):
    rng = np.random.default_rng(seed)
    model = lstmlib.SequenceModel(lstmlib.LSTM(2, 16, rng=rng),
                                  lstmlib.Linear(16, 2, rng=rng), readout="all")
    x, y = delayed_echo(16, 600, delay, np.random.default_rng(seed + 1))
    train_tbptt(model, x, y, lstmlib.losses.softmax_cross_entropy,
                lstmlib.Adam(model.params, lr=1e-2), k, epochs=4,
                carry_state=carry, progress=False)
    return echo_accuracy(model, delay, carry, k)


def test_carrying_the_state_learns_echo_across_borders():
    """Delay 3 < k = 8: with the state carried every step is predictable;
    reset at each border, the first 3 steps of each chunk are guesses."""
    carried = train_echo(3, 8, True)
    reset = train_echo(3, 8, False)
    assert carried > 0.97
    assert reset < 0.5 + 0.5 * 5 / 8 + 0.04


def test_delay_beyond_k2_is_not_learnt():
    assert train_echo(12, 8, True) < 0.6


def test_train_tbptt_history_clip_and_eval():
    x, y, _ = data()
    model = make_model()
    calls = []

    def eval_fn(m):
        calls.append(1)
        return 1.5

    hist = train_tbptt(model, x, y, half_sse, lstmlib.SGD(model.params, lr=0.01), 5,
                       epochs=3, clip=0.5, progress=False, eval_fn=eval_fn)
    assert len(hist.loss) == len(hist.grad_norm) == 3 * 5      # 5 chunks a pass
    assert hist.eval_step == [4, 9, 14] and hist.metric == [1.5] * 3 and len(calls) == 3
    assert max(hist.grad_norm) > 0.5                          # norms before clipping
    with pytest.raises(ValueError, match="^epochs: expected a positive integer"):
        train_tbptt(model, x, y, half_sse, lstmlib.SGD(model.params, lr=0.01), 5, epochs=0)


def test_chunks_run_when_the_last_window_starts_before_the_stored_states():
    """k1 = 3, k2 = 5, T = 10: the last, shorter chunk's window starts at 5,
    before the border (6) of the chunk it follows; the state entering it is
    run forward from border 3, which must still be stored."""
    x, y, s = data()
    model = make_model()
    chunks = list(tbptt_chunks(model, x[:10], y[:10], half_sse, 3, 5, state=s))
    assert [tuple(c.window) for c in chunks] == [(0, 0, 3), (1, 3, 6), (4, 6, 9),
                                                 (5, 9, 10)]
    _, (h5, c5) = model.rnn.forward(x[:5], s)
    _, (h_last, _) = model.rnn.forward(x[5:10], (h5, c5))
    np.testing.assert_allclose(chunks[-1].state[0], h_last, rtol=1e-12)


def _cell_data(kind, dtype=np.float64, bias=True, seed=2):
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lstm": 4}[kind]
    weights = [rng.standard_normal((G * H, D)) * 0.5, rng.standard_normal((G * H, H)) * 0.5]
    weights += [rng.standard_normal(G * H) * 0.5 for _ in range(2)] if bias else [None, None]
    x = rng.standard_normal((T, B, D))
    state = tuple(rng.standard_normal((B, H)) for _ in range(1 if kind == "rnn" else 2))
    d_out = rng.standard_normal((T, B, H))
    cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
    return (cast(x), tuple(cast(a) for a in state), tuple(cast(w) for w in weights),
            cast(d_out))


def _torch_tbptt(kind, x, state, weights, d_out, k1, k2, nonlinearity="tanh"):
    """The oracle: torch's layer, the state entering each window computed
    without gradient and detached, the window's loss sum_t <out_t, d_out_t>
    over its last k1 steps; the weights' gradients accumulate over windows."""
    bias = weights[2] is not None
    if kind == "rnn":
        layer = torch.nn.RNN(D, H, nonlinearity=nonlinearity, bias=bias).double()
    else:
        layer = torch.nn.LSTM(D, H, bias=bias).double()
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    with torch.no_grad():
        for name, w in zip(names, weights):
            if w is not None:
                getattr(layer, name).copy_(torch.from_numpy(w))
    xt, dt = torch.from_numpy(x), torch.from_numpy(d_out)
    s = tuple(torch.from_numpy(a)[None] for a in state)
    s = s[0] if kind == "rnn" else s
    stop = 0
    while stop < len(x):
        loss_start, stop = stop, min(stop + k1, len(x))
        start = max(0, stop - k2)
        with torch.no_grad():
            s0 = layer(xt[:start], s)[1] if start else s
        s0 = s0.detach() if kind == "rnn" else tuple(a.detach() for a in s0)
        out, _ = layer(xt[start:stop], s0)
        (out[loss_start - start:] * dt[loss_start:stop]).sum().backward()
    return tuple(None if w is None else getattr(layer, n).grad.numpy()
                 for n, w in zip(names, weights))


@pytest.mark.parametrize("kind, k1, k2, nonlinearity, bias", [
    ("rnn", 3, 5, "tanh", True), ("rnn", 4, 4, "relu", True), ("rnn", 5, 9, "tanh", False),
    ("lstm", 3, 5, "tanh", True), ("lstm", 6, 6, "tanh", True)])
def test_tbptt_gradients_match_torch_with_detach_at_window_start(kind, k1, k2,
                                                                 nonlinearity, bias):
    x, state, weights, d_out = _cell_data(kind, bias=bias)
    options = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
    cell = lstmlib.cells.get_cell(kind)
    ours = tbptt_gradients(cell, x, state, weights, d_out, k1, k2, **options)
    theirs = _torch_tbptt(kind, x, state, weights, d_out, k1, k2, nonlinearity)
    assert len(ours) == 4
    for name, a, e in zip(["dw_ih", "dw_hh", "db_ih", "db_hh"], ours, theirs):
        if e is None:
            assert a is None, name
        else:
            np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_tbptt_gradients_with_k2_at_least_T_are_full_bptt(kind):
    """Nothing cut: the windows' gradients add up to those of one backward
    pass over the whole sequence; with k2 < T they do not."""
    x, state, weights, d_out = _cell_data(kind)
    cell = lstmlib.cells.get_cell(kind)
    _, _, cache = cell.forward(x, state, weights)
    _, _, full = cell.backward(d_out, (None,) * len(state), cache)
    uncut = tbptt_gradients(cell, x, state, weights, d_out, 4, T)
    cut = tbptt_gradients(cell, x, state, weights, d_out, 4, 6)
    for a, e in zip(uncut, full):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)
    assert not np.allclose(cut[1], full[1])


def test_tbptt_gradients_keep_float32():
    x, state, weights, d_out = _cell_data("rnn", dtype=np.float32)
    grads = tbptt_gradients(lstmlib.rnn.CELL, x, state, weights, d_out, 4, 6)
    assert all(g.dtype == np.float32 for g in grads)


def test_tbptt_gradients_check_their_inputs():
    x, state, weights, d_out = _cell_data("rnn")
    with pytest.raises(ValueError, match=r"^x: expected a \(T, B, D\) array"):
        tbptt_gradients(lstmlib.rnn.CELL, x[0], state, weights, d_out, 4)
    with pytest.raises(ValueError, match=r"^d_out: expected shape \(23, 3, 5\)"):
        tbptt_gradients(lstmlib.rnn.CELL, x, state, weights, d_out[:-1], 4)
    with pytest.raises(ValueError, match="^k2: expected at least k1=4"):
        tbptt_gradients(lstmlib.rnn.CELL, x, state, weights, d_out, 4, 3)
