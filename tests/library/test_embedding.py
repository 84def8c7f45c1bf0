"""lstmlib.Embedding and EmbeddedRNN against torch.nn.Embedding (+ nn.LSTM),
and truncated BPTT on token ids."""

import numpy as np
import pytest
import torch

import lstmlib
from lstmlib.tbptt import tbptt_chunks


def test_embedding_forward_and_backward_match_torch():
    rng = np.random.default_rng(0)
    emb = lstmlib.Embedding(7, 5, rng=rng)
    ids = np.array([[0, 3, 3], [6, 3, 1]])          # 3 repeated: gradients add
    dy = rng.standard_normal((2, 3, 5))
    t = torch.nn.Embedding(7, 5, dtype=torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(emb.params["weight"]))
    out_t = t(torch.from_numpy(ids))
    (out_t * torch.from_numpy(dy)).sum().backward()
    out = emb.forward(ids)
    assert emb.backward(dy) is None
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_allclose(emb.grads["weight"], t.weight.grad.numpy(),
                               rtol=0, atol=1e-14)
    assert not emb.grads["weight"][[2, 4, 5]].any()  # unused rows get nothing


def test_embedding_is_a_one_hot_product():
    rng = np.random.default_rng(1)
    emb = lstmlib.Embedding(6, 4, rng=rng)
    ids = rng.integers(0, 6, (5, 3))
    one_hot = np.eye(6)[ids]
    np.testing.assert_allclose(emb(ids), one_hot @ emb.params["weight"],
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("ids, message", [
    (np.array([[0.0, 1.0]]), r"^ids: expected integer token ids"),
    (np.array([[0, 7]]), r"^ids: expected values in \[0, 7\), received 0\.\.7"),
    (np.array([[-1, 2]]), r"^ids: expected values in \[0, 7\), received -1\.\.2"),
])
def test_embedding_refuses_bad_ids(ids, message):
    emb = lstmlib.Embedding(7, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        emb.forward(ids)


def test_embedding_refuses_bad_sizes_and_gradients():
    with pytest.raises(ValueError, match=r"^embedding_dim: expected a positive integer"):
        lstmlib.Embedding(4, 0)
    emb = lstmlib.Embedding(4, 3, rng=np.random.default_rng(0))
    emb.forward(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"^dy: expected shape \(1, 2, 3\)"):
        emb.backward(np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"^embedding: expected embedding_dim"):
        lstmlib.EmbeddedRNN(emb, lstmlib.LSTM(5, 4, rng=np.random.default_rng(0)))


def test_embedded_lstm_matches_torch_embedding_and_lstm():
    rng = np.random.default_rng(2)
    V, E, H, T, B = 9, 4, 6, 7, 3
    emb = lstmlib.Embedding(V, E, rng=rng)
    layer = lstmlib.LSTM(E, H, rng=rng)
    for p in layer.params.values():               # random biases too
        p[...] = rng.uniform(-0.5, 0.5, p.shape)
    model = lstmlib.EmbeddedRNN(emb, layer)
    ids = rng.integers(0, V, (T, B))
    h0, c0 = rng.standard_normal((2, 1, B, H))
    d_out = rng.standard_normal((T, B, H))

    t_emb = torch.nn.Embedding(V, E, dtype=torch.float64)
    t_lstm = lstmlib.to_torch(layer)
    with torch.no_grad():
        t_emb.weight.copy_(torch.from_numpy(emb.params["weight"]))
    h0_t = torch.tensor(h0, requires_grad=True)
    out_t, _ = t_lstm(t_emb(torch.from_numpy(ids)), (h0_t, torch.tensor(c0)))
    (out_t * torch.from_numpy(d_out)).sum().backward()

    out, _ = model.forward(ids, (h0, c0))
    dx, (dh0, _) = model.backward(d_out)
    assert dx is None
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dh0, h0_t.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.grads["embedding.weight"],
                               t_emb.weight.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.grads["weight_hh_l0"],
                               t_lstm.weight_hh_l0.grad.numpy(), rtol=0, atol=1e-12)
    assert set(model.params) == set(model.grads)


def test_truncated_bptt_on_token_ids_is_full_bptt_when_nothing_is_cut():
    """k2 >= T on ids: the chunks' gradients add up to one backward pass."""
    rng = np.random.default_rng(3)
    V, E, H, T, B = 8, 3, 5, 12, 2
    model = lstmlib.SequenceModel(
        lstmlib.EmbeddedRNN(lstmlib.Embedding(V, E, rng=rng),
                            lstmlib.LSTM(E, H, rng=rng)),
        lstmlib.Linear(H, V, rng=rng), readout="all")
    ids = rng.integers(0, V, (T, B))
    y = rng.integers(0, V, (T, B))

    def loss_fn(pred, target):                     # a sum, so chunks add up
        loss, d = lstmlib.losses.softmax_cross_entropy(pred, target)
        n = target.size
        return loss * n, d * n

    total = {k: np.zeros_like(v) for k, v in model.params.items()}
    for chunk in tbptt_chunks(model, ids, y, loss_fn, k1=4, k2=T):
        for k, g in chunk.grads.items():
            total[k] += g
    loss, d = loss_fn(model.forward(ids), y)
    model.backward(d)
    for k, g in model.grads.items():
        np.testing.assert_allclose(total[k], g, rtol=1e-10, atol=1e-12, err_msg=k)
    with pytest.raises(ValueError, match=r"^x: expected a \(T, B, D\) array, or"):
        next(tbptt_chunks(model, ids[:, :, None, None], y, loss_fn, k1=4))
