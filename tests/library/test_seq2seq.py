"""The encoder-decoder: gradients by central differences (with and without
attention), torch as the oracle for the teacher-forced loss and its
gradients, greedy decoding, and a short training run that must learn."""

import json

import numpy as np
import pytest
import torch

from lstmlib import losses
from lstmlib.gradcheck import numerical_gradient
from lstmlib.optim import Adam
from lstmlib.seq2seq import (BOS, EOS, Seq2Seq, exact_match, greedy_decode,
                             init_params, reversal_batch, seq2seq_backward,
                             seq2seq_forward)
from lstmlib.train import train


def _loss(p, src, tgt_in, tgt_out):
    logits, cache = seq2seq_forward(p, src, tgt_in)
    loss, d = losses.softmax_cross_entropy(logits, tgt_out)
    return loss, d, cache


@pytest.mark.parametrize("attention", [False, True])
def test_gradients_by_central_differences(attention):
    rng = np.random.default_rng(0)
    p = init_params(10, 12, 4, rng, attention=attention, attention_size=3)
    for k in p:                     # larger weights: gates away from 1/2
        p[k] *= 2.5
    src, tgt_in, tgt_out = reversal_batch(rng, 2, 3)
    _, d, cache = _loss(p, src, tgt_in, tgt_out)
    g = seq2seq_backward(d, cache, p)
    assert set(g) == set(p)
    for name in p:
        num = numerical_gradient(lambda: np.array(_loss(p, src, tgt_in, tgt_out)[0]),
                                 p[name])
        # entries near zero make the elementwise relative error noisy
        np.testing.assert_allclose(g[name], num, rtol=1e-6, atol=1e-9,
                                   err_msg=name)
        assert np.any(g[name] != 0), name


def _torch_seq2seq(p, src, tgt_in, tgt_out, attention):
    """The same model in torch: nn.LSTM encoder, nn.LSTMCell decoder and the
    attention equations in torch ops; returns the loss and the tensors."""
    t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    H = p["enc_w_hh"].shape[1]
    enc = torch.nn.LSTM(p["enc_w_ih"].shape[1], H).double()
    dec = torch.nn.LSTMCell(p["dec_w_ih"].shape[1], H).double()
    V = p["w_out"].shape[0]
    x = torch.nn.functional.one_hot(torch.tensor(src), 10).double()
    keys, (h, c) = torch.func.functional_call(
        enc, {"weight_ih_l0": t["enc_w_ih"], "weight_hh_l0": t["enc_w_hh"],
              "bias_ih_l0": t["enc_b_ih"], "bias_hh_l0": t["enc_b_hh"]}, (x,))
    h, c = h[0], c[0]
    logits = []
    for step in range(tgt_in.shape[0]):
        y = torch.nn.functional.one_hot(torch.tensor(tgt_in[step]), V).double()
        if attention:
            u = torch.tanh(h @ t["w_q"].T + keys @ t["w_k"].T)
            alpha = torch.softmax(u @ t["v"], dim=0)
            ctx = (alpha[:, :, None] * keys).sum(0)
            y = torch.cat([y, ctx], 1)
        h, c = torch.func.functional_call(
            dec, {"weight_ih": t["dec_w_ih"], "weight_hh": t["dec_w_hh"],
                  "bias_ih": t["dec_b_ih"], "bias_hh": t["dec_b_hh"]}, (y, (h, c)))
        feat = torch.cat([h, ctx], 1) if attention else h
        logits.append(feat @ t["w_out"].T + t["b_out"])
    z = torch.stack(logits)
    loss = torch.nn.functional.cross_entropy(z.reshape(-1, V),
                                             torch.tensor(tgt_out).reshape(-1))
    return loss, z, t


@pytest.mark.parametrize("attention", [False, True])
def test_matches_torch(attention):
    rng = np.random.default_rng(1)
    p = init_params(10, 12, 5, rng, attention=attention, attention_size=4)
    src, tgt_in, tgt_out = reversal_batch(rng, 3, 6)
    loss, d, cache = _loss(p, src, tgt_in, tgt_out)
    logits, _ = seq2seq_forward(p, src, tgt_in)
    g = seq2seq_backward(d, cache, p)
    tloss, tz, t = _torch_seq2seq(p, src, tgt_in, tgt_out, attention)
    tloss.backward()
    np.testing.assert_allclose(logits, tz.detach().numpy(), rtol=1e-11, atol=1e-12)
    assert abs(float(loss) - tloss.item()) < 1e-12
    for k in p:
        np.testing.assert_allclose(g[k], t[k].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=k)


def test_greedy_decode_feeds_back_its_own_guesses():
    rng = np.random.default_rng(2)
    p = init_params(10, 12, 6, rng, attention=True)
    src, _, _ = reversal_batch(rng, 4, 5)
    tokens, weights = greedy_decode(p, src, 6)
    assert tokens.shape == (6, 4) and weights.shape == (6, 5, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    # teacher forcing with the decoder's own guesses gives the same logits
    tgt_in = np.concatenate([np.full((1, 4), BOS), tokens[:-1]])
    logits, _ = seq2seq_forward(p, src, tgt_in)
    np.testing.assert_array_equal(logits.argmax(axis=2), tokens)
    no_att = init_params(10, 12, 6, rng, attention=False)
    assert greedy_decode(no_att, src, 3)[1] is None


def test_exact_match_reads_up_to_eos():
    tgt = np.array([[1, 2], [EOS, EOS]])
    assert exact_match(np.array([[1, 2], [EOS, 3], [4, 4]]), tgt) == 0.5
    assert exact_match(np.array([[1, 2]]), tgt) == 0.0


@pytest.mark.slow
def test_short_training_learns_to_reverse():
    """Attention learns to reverse 4-digit strings in a few hundred steps;
    measured on fresh strings by greedy decoding (chance: 1e-4)."""
    rng = np.random.default_rng(3)
    model = Seq2Seq(10, 12, 32, rng, attention=True)
    data = np.random.default_rng(4)

    def batch(step):
        src, tgt_in, tgt_out = reversal_batch(data, 32, 4)
        return (src, tgt_in), tgt_out

    hist = train(model, batch, losses.softmax_cross_entropy,
                 Adam(model.params, lr=1e-2), 300, clip=5.0, progress=False)
    assert hist.loss[-1] < 0.2 * hist.loss[0]
    src, _, tgt_out = reversal_batch(np.random.default_rng(5), 200, 4)
    tokens, _ = model.decode(src, 5)
    assert exact_match(tokens, tgt_out) > 0.9


def test_bad_input():
    rng = np.random.default_rng(6)
    p = init_params(10, 12, 4, rng)
    with pytest.raises(ValueError, match="tokens"):
        seq2seq_forward(p, np.array([[10]]), np.array([[BOS]]))
    with pytest.raises(ValueError, match="src, tgt_in"):
        seq2seq_forward(p, np.zeros((3, 2), int), np.zeros((3, 1), int))
    with pytest.raises(ValueError, match="rng"):
        reversal_batch(0, 2, 3)
    with pytest.raises(ValueError, match="dlogits"):
        Seq2Seq(10, 12, 4, rng).backward(np.zeros((1, 1, 12)))
    model = Seq2Seq(10, 12, 4, rng)
    model.forward((np.zeros((3, 2), int), np.full((4, 2), BOS)))
    with pytest.raises(ValueError, match=r"dlogits: expected an array of shape \(4, 2, 12\)"):
        model.backward(np.zeros((4, 2, 11)))
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(p, np.zeros((3, 2), int), 0)


def test_recording_script_writes_what_the_chapter_reads(tmp_path):
    """The script of chapter 10, run briefly: the record has every field the
    chapter plots, and both models' losses fell."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "book" / "scripts" / "10_seq2seq_attention.py"
    spec = importlib.util.spec_from_file_location("seq2seq_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.EVAL_N, script.EVAL_LENGTHS, script.PROGRESS = 20, [2, 3, 8], False
    out = tmp_path / "record.json"
    script.main(100, 16, out)
    rec = json.loads(out.read_text())
    committed = json.loads((path.parents[2] / "lstmlib" / "data" /
                            "seq2seq_attention.json").read_text())
    assert set(rec) == set(committed) and set(rec["config"]) == set(committed["config"])
    for name in ("attention", "no_attention"):
        m = rec["models"][name]
        assert set(m) == set(committed["models"][name])
        assert len(m["exact_match"]) == len(m["digit_accuracy"]) == 3
        assert np.mean(m["loss"][-1:]) < 0.9 * m["loss"][0]
    ex = rec["models"]["attention"]["examples"][0]
    assert np.array(ex["weights"]).shape == (len(ex["src"]) + 1, len(ex["src"]))
