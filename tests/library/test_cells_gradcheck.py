"""Step and sequence functions: PyTorch cells as oracle for the steps, and
central differences for every backward function."""

import numpy as np
import pytest
import torch

from lstmlib import gru, lstm, rnn
from lstmlib.gradcheck import numerical_gradient, rel_error

D, H = 3, 4


def weights(rng, G, bias=True):
    w = [rng.standard_normal((G * H, D)) * 0.5, rng.standard_normal((G * H, H)) * 0.5]
    b = [rng.uniform(0.2, 0.8, G * H) * rng.choice([-1, 1], G * H) for _ in range(2)]
    return tuple(w + (b if bias else [None, None]))


CELLS = {  # name -> (step forward, step backward, G, torch cell, states)
    "rnn_tanh": (rnn.rnn_step_forward, rnn.rnn_step_backward, 1, "RNNCell", 1),
    "lstm": (lstm.lstm_step_forward, lstm.lstm_step_backward, 4, "LSTMCell", 2),
    "gru": (gru.gru_step_forward, gru.gru_step_backward, 3, "GRUCell", 1),
}


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("B", [1, 3])
def test_step_matches_torch_cell(name, B):
    fwd, bwd, G, cell_name, n_states = CELLS[name]
    rng = np.random.default_rng(1)
    w = weights(rng, G)
    x = rng.standard_normal((B, D))
    states = [rng.standard_normal((B, H)) for _ in range(n_states)]
    cell = getattr(torch.nn, cell_name)(D, H).double()
    with torch.no_grad():
        for p, v in zip(cell.parameters(), w):
            p.copy_(torch.tensor(v))
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    out = cell(xt, tuple(st) if n_states == 2 else st[0])
    out = out if isinstance(out, tuple) else (out,)
    g = [rng.standard_normal((B, H)) for _ in out]
    sum((o * torch.tensor(gi)).sum() for o, gi in zip(out, g)).backward()

    new, cache = fwd(x, *states, *w)
    new = new if isinstance(new, tuple) else (new,)
    for a, b in zip(new, out):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-12, atol=1e-14)
    grads = bwd(*g, cache)
    np.testing.assert_allclose(grads.dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads.dh_prev, st[0].grad.numpy(), rtol=1e-10, atol=1e-12)
    if n_states == 2:
        np.testing.assert_allclose(grads.dc_prev, st[1].grad.numpy(), rtol=1e-10, atol=1e-12)
    for field, p in zip(("dw_ih", "dw_hh", "db_ih", "db_hh"), cell.parameters()):
        np.testing.assert_allclose(getattr(grads, field), p.grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=field)


def _arrays(x, states, w):
    """The arrays a gradient check perturbs, by name (states as s0, s1)."""
    return {"x": x, **{f"s{j}": s for j, s in enumerate(states)},
            "w_ih": w[0], "w_hh": w[1], "b_ih": w[2], "b_hh": w[3]}


def _grads(g, state_fields):
    """A grads named tuple as a dict with the names of :func:`_arrays`."""
    d = {"x": g.dx, "w_ih": g.dw_ih, "w_hh": g.dw_hh, "b_ih": g.db_ih, "b_hh": g.db_hh}
    d.update({f"s{j}": getattr(g, f) for j, f in enumerate(state_fields)})
    return d


def _gradcheck(forward, backward, arrays, rng):
    """Compare ``backward`` with central differences for every array in
    ``arrays`` (a dict name -> array that ``forward`` reads)."""
    outs = forward()
    gs = [rng.standard_normal(o.shape) for o in outs]
    analytic = backward(gs)

    def loss():
        return np.array([sum((o * g).sum() for o, g in zip(forward(), gs))])

    for name, arr in arrays.items():
        if arr is None:
            continue
        num = numerical_gradient(loss, arr, h=1e-5)
        err = rel_error(analytic[name], num)
        assert err < 1e-6, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("bias", [True, False])
def test_step_backward_numerically(name, bias):
    rng = np.random.default_rng(2)
    kind = name.split("_")[0]
    fwd, bwd, G, _, n_states = CELLS["rnn_tanh" if kind == "rnn" else name]
    opts = {"nonlinearity": name.split("_")[1]} if kind == "rnn" else {}
    w = list(weights(rng, G, bias))
    x = rng.standard_normal((2, D))
    states = [rng.standard_normal((2, H)) for _ in range(n_states)]

    def forward():
        out, _ = fwd(x, *states, *w, **opts)
        return out if isinstance(out, tuple) else (out,)

    def backward(gs):
        _, cache = fwd(x, *states, *w, **opts)
        return _grads(bwd(*gs, cache), ("dh_prev", "dc_prev")[:n_states])

    _gradcheck(forward, backward, _arrays(x, states, w), rng)


SEQ = {  # name -> (forward, backward, G, states)
    "rnn": (rnn.rnn_forward, rnn.rnn_backward, 1, 1),
    "lstm": (lstm.lstm_forward, lstm.lstm_backward, 4, 2),
    "gru": (gru.gru_forward, gru.gru_backward, 3, 1),
}


@pytest.mark.parametrize("name", SEQ)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_sequence_backward_numerically(name, reverse, use_lengths):
    rng = np.random.default_rng(3)
    fwd, bwd, G, n_states = SEQ[name]
    w = list(weights(rng, G))
    T, B = 4, 3
    x = rng.standard_normal((T, B, D))
    states = [rng.standard_normal((B, H)) for _ in range(n_states)]
    lengths = np.array([4, 2, 1]) if use_lengths else None

    def forward():
        out, st, _ = fwd(x, *states, *w, lengths=lengths, reverse=reverse)
        return (out,) + (st if isinstance(st, tuple) else (st,))

    def backward(gs):
        _, _, cache = fwd(x, *states, *w, lengths=lengths, reverse=reverse)
        return _grads(bwd(*gs, cache), ("dh0", "dc0")[:n_states])

    _gradcheck(forward, backward, _arrays(x, states, w), rng)


@pytest.mark.parametrize("name", SEQ)
def test_sequence_equals_repeated_steps(name):
    """The optimised sequence loop computes exactly the step function T times."""
    rng = np.random.default_rng(4)
    fwd, _, G, n_states = SEQ[name]
    step = {"rnn": rnn.rnn_step_forward, "lstm": lstm.lstm_step_forward,
            "gru": gru.gru_step_forward}[name]
    w = weights(rng, G)
    x = rng.standard_normal((5, 2, D))
    states = tuple(rng.standard_normal((2, H)) for _ in range(n_states))
    out, _, _ = fwd(x, *states, *w)
    s = states
    for t in range(5):
        new, _ = step(x[t], *s, *w)
        s = new if isinstance(new, tuple) else (new,)
        np.testing.assert_allclose(out[t], s[0], rtol=1e-12, atol=1e-14)
