"""Losses, optimisers, clipping, data sets, the model head and the training
loop; PyTorch is the oracle where it has the same thing."""

import numpy as np
import pytest
import torch

import lstmlib
from lstmlib import data, losses, optim
from lstmlib.analysis import input_gradient_norms
from lstmlib.gradcheck import numerical_gradient, rel_error


def test_softmax_cross_entropy_matches_torch_with_ignored_targets():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4, 5)) * 3
    targets = rng.integers(0, 5, (6, 4))
    targets[4:, 1] = -1
    loss, d = losses.softmax_cross_entropy(logits, targets)
    lt = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.cross_entropy(lt.reshape(-1, 5), torch.tensor(targets).reshape(-1),
                                             ignore_index=-1)
    want.backward()
    assert loss == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(d, lt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_mse_matches_torch():
    rng = np.random.default_rng(1)
    p, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss, d = losses.mse(p, y)
    pt = torch.tensor(p, requires_grad=True)
    want = torch.nn.functional.mse_loss(pt, torch.tensor(y))
    want.backward()
    assert loss == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(d, pt.grad.numpy(), rtol=1e-12)


def test_loss_errors():
    with pytest.raises(ValueError, match=r"targets: expected shape \(3,\), received \(4,\)"):
        losses.softmax_cross_entropy(np.zeros((3, 2)), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"targets: expected classes in \[0, 2\)"):
        losses.softmax_cross_entropy(np.zeros((3, 2)), np.array([0, 1, 2]))


@pytest.mark.parametrize("make", [
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    (lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
])
def test_optimisers_match_torch(make):
    ours, theirs = make
    rng = np.random.default_rng(2)
    params = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    tp = [torch.tensor(v.copy(), requires_grad=True) for v in params.values()]
    opt, topt = ours(params), theirs(tp)
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        for t, g in zip(tp, grads.values()):
            t.grad = torch.tensor(g)
        opt.step(grads)
        topt.step()
    for v, t in zip(params.values(), tp):
        np.testing.assert_allclose(v, t.detach().numpy(), rtol=1e-10)


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(3)
    grads = {"a": rng.standard_normal((3, 3)) * 5, "b": rng.standard_normal(7) * 5}
    ts = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(ts, grads.values()):
        t.grad = torch.tensor(g.copy())
    want = torch.nn.utils.clip_grad_norm_(ts, 1.5)
    norm = optim.clip_grad_norm(grads, 1.5)
    assert norm == pytest.approx(want.item(), rel=1e-12)
    for g, t in zip(grads.values(), ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9)
    assert optim.global_norm(grads) == pytest.approx(1.5, rel=1e-6)


def test_adding_problem_targets_are_the_sum_of_the_two_marked_values():
    x, y = data.adding_problem(50, 20, np.random.default_rng(4))
    assert x.shape == (20, 50, 2) and y.shape == (50, 1)
    marks = x[:, :, 1]
    assert np.all(marks.sum(axis=0) == 2)
    assert np.all(marks[:10].sum(axis=0) == 1)      # one in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(axis=0))
    x2, _ = data.adding_problem(50, 20, np.random.default_rng(4))
    np.testing.assert_array_equal(x, x2)            # seeded only through rng


def test_copy_task_layout():
    x, y = data.copy_task(4, 6, 5, np.random.default_rng(5), seq_len=3)
    T = 2 * 3 + 6 + 1
    assert x.shape == (T, 4, 7) and y.shape == (T, 4)
    symbols = x[:3].argmax(axis=2)
    np.testing.assert_array_equal(y[-3:], symbols)
    assert np.all(y[:-3] == 5) and np.all(x[9].argmax(axis=1) == 6)


def test_future_tagging_needs_the_next_token():
    x, y, lengths = data.future_tagging(30, 8, np.random.default_rng(6), vocab=4)
    tokens = x.argmax(axis=2)
    for b in range(30):
        L = lengths[b]
        np.testing.assert_array_equal(y[:L - 1, b], tokens[1:L, b])
        assert y[L - 1, b] == 4 and np.all(y[L:, b] == -1) and np.all(x[L:, b] == 0)


def test_noisy_sine_and_corpus():
    x, y = data.noisy_sine(3, 40, 5, 0.0, np.random.default_rng(7))
    assert x.shape == (40, 3, 1) and y.shape == (3, 5)
    text = data.load_corpus()
    vocab = data.CharVocab(text)
    assert len(text) > 5000 and "summer's day" in text
    assert vocab.decode(vocab.encode(text[:200])) == text[:200]
    with pytest.raises(ValueError, match="rng: expected a numpy.random.Generator"):
        data.adding_problem(3, 5, 0)


@pytest.mark.parametrize("readout,bidir", [("last", False), ("last", True), ("all", True)])
def test_sequence_model_gradients(readout, bidir):
    rng = np.random.default_rng(8)
    rnn = lstmlib.GRU(2, 3, bidirectional=bidir, rng=rng)
    model = lstmlib.SequenceModel(rnn, lstmlib.Linear(3 * (1 + bidir), 2, rng=rng), readout)
    x = rng.standard_normal((4, 3, 2))
    lengths = np.array([4, 2, 3])
    y = model.forward(x, lengths)
    g = rng.standard_normal(y.shape)
    dx = model.backward(g)
    analytic = dict(model.grads)
    for name, p in list(model.params.items()) + [("x", x)]:
        num = numerical_gradient(lambda: model.forward(x, lengths), p, df=g)
        assert rel_error(dx if name == "x" else analytic[name], num) < 1e-6, name


def test_training_reduces_the_adding_problem_loss():
    rng = np.random.default_rng(9)
    model = lstmlib.SequenceModel(lstmlib.LSTM(2, 16, rng=rng), lstmlib.Linear(16, 1, rng=rng))
    opt = lstmlib.Adam(model.params, lr=3e-2)
    hist = lstmlib.train(model, lambda step: data.adding_problem(32, 10, rng), losses.mse, opt,
                         steps=300, clip=1.0, progress=False,
                         eval_fn=lambda m: 0.0, eval_every=100)
    assert len(hist.loss) == len(hist.grad_norm) == 300 and hist.eval_step == [99, 199, 299]
    # always answering the mean sum (1.0) gives MSE = 1/6 ~ 0.167
    assert np.mean(hist.loss[:20]) > 0.15 and np.mean(hist.loss[-50:]) < 0.02


def test_gradient_norms_vanish_for_a_contracting_rnn_not_for_a_saturated_lstm():
    rng = np.random.default_rng(10)
    rnn = lstmlib.RNN(4, 16, rng=rng)
    for k in rnn.params:
        rnn.params[k] *= 0.5
    lstm = lstmlib.LSTM(4, 16, rng=rng)
    lstm.params["bias_ih_l0"][16:32] = 5.0          # forget gates open
    x = rng.standard_normal((40, 2, 4))
    n_rnn = input_gradient_norms(rnn, x)
    n_lstm = input_gradient_norms(lstm, x)
    assert n_rnn[0] / n_rnn[-1] < 1e-8
    assert n_lstm[0] / n_lstm[-1] > 1e-3
