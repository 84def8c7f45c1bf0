"""lstmlib.seq2seq.beam_search: greedy at width 1, exhaustive when the beam
holds every output, log-probabilities those of teacher forcing."""

import itertools

import numpy as np
import pytest

from lstmlib.seq2seq import (BOS, EOS, beam_search, greedy_decode, init_params,
                             seq2seq_forward)


def _params(attention, seed=0, hidden=6):
    p = init_params(12, 12, hidden, np.random.default_rng(seed),
                    attention=attention)
    rng = np.random.default_rng(100 + seed)
    for k in p:                                    # sharper, random outputs
        p[k] = p[k] * 3 + 0.3 * rng.standard_normal(p[k].shape)
    return p


def _log_prob(p, src, tokens):
    """log p(tokens | src) by teacher forcing, for one source (S, 1)."""
    tgt_in = np.concatenate([[BOS], tokens[:-1]])[:, None]
    logits, _ = seq2seq_forward(p, src, tgt_in)
    z = logits[:, 0]
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return float(logp[np.arange(len(tokens)), tokens].sum())


@pytest.mark.parametrize("attention", [False, True])
def test_width_one_is_greedy_decoding(attention):
    p = _params(attention)
    src = np.random.default_rng(1).integers(0, 10, (5, 4))
    greedy, _ = greedy_decode(p, src, 8)
    for b, hyp in enumerate(beam_search(p, src, beam_width=1, max_len=8)):
        g = greedy[:, b]
        end = int(np.argmax(g == EOS)) + 1 if (g == EOS).any() else len(g)
        np.testing.assert_array_equal(hyp.tokens, g[:end])


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_a_beam_holding_every_output_is_an_exhaustive_search(alpha):
    p = _params(attention=True, seed=2)
    src = np.array([[3], [1], [4]])
    max_len, V = 3, 12
    outputs = [np.array(prefix + (EOS,)) for n in range(max_len)
               for prefix in itertools.product(
                   [v for v in range(V) if v != EOS], repeat=n)]
    outputs += [np.array(seq) for seq in itertools.product(
        [v for v in range(V) if v != EOS], repeat=max_len)]
    # every output's log-probability, teacher-forced in one batch
    N = len(outputs)
    padded = np.full((max_len, N), EOS)
    for j, o in enumerate(outputs):
        padded[:len(o), j] = o
    tgt_in = np.concatenate([np.full((1, N), BOS), padded[:-1]])
    logits, _ = seq2seq_forward(p, np.repeat(src, N, axis=1), tgt_in)
    z = logits - logits.max(2, keepdims=True)
    logp = z - np.log(np.exp(z).sum(2, keepdims=True))
    per_step = np.take_along_axis(logp, padded[:, :, None], 2)[:, :, 0]
    lengths = np.array([len(o) for o in outputs])
    total = (per_step * (np.arange(max_len)[:, None] < lengths)).sum(0)
    scores = total / lengths ** alpha
    assert total[5] == pytest.approx(_log_prob(p, src, outputs[5]), abs=1e-10)
    want = outputs[int(np.argmax(scores))]
    hyp, = beam_search(p, src, beam_width=V ** max_len, max_len=max_len,
                       length_alpha=alpha)
    np.testing.assert_array_equal(hyp.tokens, want)
    assert hyp.score == pytest.approx(max(scores), abs=1e-10)


def test_log_prob_and_score_are_those_of_teacher_forcing():
    p = _params(attention=True, seed=3)
    src = np.random.default_rng(4).integers(0, 10, (6, 3))
    for b, hyp in enumerate(beam_search(p, src, beam_width=4, max_len=9,
                                        length_alpha=0.6)):
        want = _log_prob(p, src[:, b:b + 1], hyp.tokens)
        assert hyp.log_prob == pytest.approx(want, abs=1e-10)
        assert hyp.score == pytest.approx(want / len(hyp.tokens) ** 0.6, abs=1e-10)
        assert len(hyp.tokens) <= 9
        assert hyp.tokens[-1] == EOS or len(hyp.tokens) == 9


def test_length_normalisation_prefers_longer_outputs_when_it_changes_the_choice():
    """Over many sources, a positive alpha never picks a shorter output than
    alpha = 0 would, with the same beam (the candidates are the same)."""
    p = _params(attention=True, seed=5)
    p["b_out"][EOS] += 2.0                  # EOS likely early: short outputs
    src = np.random.default_rng(6).integers(0, 10, (4, 20))
    plain = beam_search(p, src, beam_width=3, max_len=10)
    normed = beam_search(p, src, beam_width=3, max_len=10, length_alpha=1.0)
    assert all(len(n.tokens) >= len(q.tokens) for n, q in zip(normed, plain))
    assert any(len(n.tokens) > len(q.tokens) for n, q in zip(normed, plain))


@pytest.mark.parametrize("kwargs, message", [
    (dict(beam_width=0, max_len=3), r"^beam_width: expected a positive integer"),
    (dict(beam_width=2, max_len=2.0), r"^max_len: expected a positive integer"),
    (dict(beam_width=2, max_len=3, length_alpha=-1.0),
     r"^length_alpha: expected a number >= 0"),
])
def test_bad_arguments_are_refused(kwargs, message):
    p = _params(attention=False)
    with pytest.raises(ValueError, match=message):
        beam_search(p, np.zeros((3, 1), int), **kwargs)
    with pytest.raises(ValueError, match=r"^src: expected \(S, B\) tokens"):
        beam_search(p, np.zeros(3, int), beam_width=2, max_len=3)
