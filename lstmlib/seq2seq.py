r"""Sequence to sequence: an LSTM encoder-decoder, with or without additive
attention (Sutskever et al. 2014; Bahdanau et al. 2015).

The encoder reads the source tokens x_1..x_S (one-hot) and returns its
outputs k_1..k_S and its final state (h_S, c_S), which starts the decoder.
At step t the decoder reads the previous target token y_{t-1} (teacher
forcing: the true one while training; its own previous guess when decoding
greedily) and predicts y_t:

.. math::

    \begin{aligned}
    \text{without attention:}\quad
      (h_t, c_t) &= \mathrm{LSTM}(y_{t-1}, h_{t-1}, c_{t-1}), &
      z_t &= W_{out} h_t + b_{out} \\
    \text{with attention:}\quad
      c^{att}_t, \alpha_t &= \mathrm{attend}(h_{t-1}, k_{1..S}), &
      (h_t, c_t) &= \mathrm{LSTM}([y_{t-1}; c^{att}_t], h_{t-1}, c_{t-1}), \\
      z_t &= W_{out} [h_t; c^{att}_t] + b_{out}
    \end{aligned}

and p(y_t | y_{<t}, x) = softmax(z_t). Without attention everything the
decoder knows about the source passes through the fixed-size (h_S, c_S):
the bottleneck that attention removes.

Shapes: src (S, B) and targets (T, B) integer tokens; logits (T, B, V_out).
Step and sequence functions are lstmlib's own (:mod:`lstmlib.lstm`,
:mod:`lstmlib.attention`); this module only wires them together.
"""

from collections import namedtuple

import numpy as np

from .attention import attention_backward, attention_forward, init_attention
from .lstm import (lstm_backward, lstm_forward, lstm_step_backward,
                   lstm_step_forward)

Seq2SeqCache = namedtuple(
    "Seq2SeqCache", "keys enc_cache step_caches att_caches feats attention")

# the tokens of the toy tasks: digits 0..9, then BOS (decoder input only)
# and EOS (the end of every target)
DIGITS = 10
BOS, EOS = 10, 11


def one_hot(tokens, size, dtype=np.float64):
    """tokens (...) ints in [0, size) -> (..., size) one-hot."""
    tokens = np.asarray(tokens)
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens: expected integers, received {tokens.dtype}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= size):
        raise ValueError(f"tokens: expected values in [0, {size}), received "
                         f"{tokens.min()}..{tokens.max()}")
    return np.eye(size, dtype=dtype)[tokens]


def init_params(src_vocab, tgt_vocab, hidden, rng, attention=True,
                attention_size=None, dtype=np.float64):
    """A dict of parameters (PyTorch's default uniform +-1/sqrt(H)), drawn
    from ``rng``: enc_* and dec_* (an LSTM each), w_q, w_k, v (attention,
    if any), w_out, b_out."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, received "
                         f"{type(rng).__name__}")
    k = 1.0 / np.sqrt(hidden)

    def u(*shape):
        return rng.uniform(-k, k, shape).astype(dtype)

    H = hidden
    dec_in = tgt_vocab + (H if attention else 0)
    feat = H * (2 if attention else 1)
    p = {"enc_w_ih": u(4 * H, src_vocab), "enc_w_hh": u(4 * H, H),
         "enc_b_ih": u(4 * H), "enc_b_hh": u(4 * H),
         "dec_w_ih": u(4 * H, dec_in), "dec_w_hh": u(4 * H, H),
         "dec_b_ih": u(4 * H), "dec_b_hh": u(4 * H),
         "w_out": u(tgt_vocab, feat), "b_out": u(tgt_vocab)}
    if attention:
        p.update(init_attention(H, H, attention_size or H, rng, dtype))
    return p


def _encode(p, src):
    x = one_hot(src, p["enc_w_ih"].shape[1], p["enc_w_ih"].dtype)
    B, H = src.shape[1], p["enc_w_hh"].shape[1]
    h0 = np.zeros((B, H), x.dtype)
    keys, (h, c), cache = lstm_forward(x, h0, h0.copy(), p["enc_w_ih"],
                                       p["enc_w_hh"], p["enc_b_ih"], p["enc_b_hh"])
    return keys, h, c, cache


def _decoder_step(p, token, h, c, keys, attention):
    """One decoder step: previous token (B,), state -> logits (B, V), the new
    state and what backward needs."""
    V = p["w_out"].shape[0]
    x = one_hot(token, V, h.dtype)                          # y_{t-1}
    att = alpha = None
    if attention:
        ctx, alpha, att = attention_forward(h, keys, p["w_q"], p["w_k"], p["v"])
        x = np.concatenate([x, ctx], axis=1)                # [y_{t-1}; c_t]
    (h, c), step = lstm_step_forward(x, h, c, p["dec_w_ih"], p["dec_w_hh"],
                                     p["dec_b_ih"], p["dec_b_hh"])
    feat = np.concatenate([h, ctx], axis=1) if attention else h
    logits = feat @ p["w_out"].T + p["b_out"]
    return logits, h, c, step, att, feat, alpha


def seq2seq_forward(p, src, tgt_in):
    """Teacher-forced forward pass.

    p: parameters from :func:`init_params` (attention if "v" in p);
    src (S, B) source tokens; tgt_in (T, B) decoder inputs (BOS, then the
    targets shifted by one) -> logits (T, B, V_out), cache.
    """
    src, tgt_in = np.asarray(src), np.asarray(tgt_in)
    if src.ndim != 2 or tgt_in.ndim != 2 or src.shape[1] != tgt_in.shape[1]:
        raise ValueError(f"src, tgt_in: expected (S, B) and (T, B) with the "
                         f"same B, received {src.shape} and {tgt_in.shape}")
    attention = "v" in p
    keys, h, c, enc_cache = _encode(p, src)
    logits, steps, atts, feats = [], [], [], []
    for t in range(tgt_in.shape[0]):
        z, h, c, step, att, feat, _ = _decoder_step(p, tgt_in[t], h, c, keys,
                                                    attention)
        logits.append(z)
        steps.append(step)
        atts.append(att)
        feats.append(feat)
    cache = Seq2SeqCache(keys, enc_cache, steps, atts, feats, attention)
    return np.stack(logits), cache


def seq2seq_backward(dlogits, cache, p):
    """dL/dlogits (T, B, V_out) -> dict of gradients, keys as in ``p``."""
    keys, enc_cache, steps, atts, feats, attention = cache
    T, B, V = len(steps), keys.shape[1], p["w_out"].shape[0]
    if not isinstance(dlogits, np.ndarray) or dlogits.shape != (T, B, V):
        raise ValueError(f"dlogits: expected an array of shape {(T, B, V)}, "
                         f"received {getattr(dlogits, 'shape', type(dlogits).__name__)}")
    g = {k: np.zeros_like(v) for k, v in p.items()}
    H = p["dec_w_hh"].shape[1]
    dkeys = np.zeros_like(keys)
    dh = np.zeros_like(keys[0])                     # from step t+1
    dc = np.zeros_like(dh)
    for t in reversed(range(T)):
        dz = dlogits[t]
        g["w_out"] += dz.T @ feats[t]                # z = W_out feat + b_out
        g["b_out"] += dz.sum(axis=0)
        dfeat = dz @ p["w_out"]
        sg = lstm_step_backward(dh + dfeat[:, :H], dc, steps[t])
        _add_lstm_grads(g, "dec_", sg)
        dh, dc = sg.dh_prev, sg.dc_prev
        if attention:
            # the context feeds both the output layer and the LSTM's input
            dctx = dfeat[:, H:] + sg.dx[:, V:]
            ag = attention_backward(dctx, atts[t])
            dh = dh + ag.dquery                      # the query was h_{t-1}
            dkeys += ag.dkeys
            g["w_q"] += ag.dw_q
            g["w_k"] += ag.dw_k
            g["v"] += ag.dv
    eg = lstm_backward(dkeys, dh, dc, enc_cache)     # into the encoder
    _add_lstm_grads(g, "enc_", eg)
    return g


def _add_lstm_grads(g, prefix, grads):
    g[prefix + "w_ih"] += grads.dw_ih
    g[prefix + "w_hh"] += grads.dw_hh
    g[prefix + "b_ih"] += grads.db_ih
    g[prefix + "b_hh"] += grads.db_hh


def greedy_decode(p, src, max_len):
    """Decode src (S, B) greedily, feeding back each argmax, for ``max_len``
    steps -> tokens (max_len, B) and, with attention, the weights
    (max_len, S, B) (else None). Read each row up to its first EOS."""
    src = np.asarray(src)
    if src.ndim != 2:
        raise ValueError(f"src: expected (S, B) tokens, received shape {src.shape}")
    if not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"max_len: expected a positive integer, received {max_len!r}")
    attention = "v" in p
    keys, h, c, _ = _encode(p, src)
    token = np.full(src.shape[1], BOS)
    out, weights = [], []
    for _ in range(max_len):
        z, h, c, _, _, _, alpha = _decoder_step(p, token, h, c, keys, attention)
        token = z.argmax(axis=1)
        out.append(token)
        weights.append(alpha)
    return np.stack(out), (np.stack(weights) if attention else None)


Hypothesis = namedtuple("Hypothesis", "tokens log_prob score")
Hypothesis.__doc__ = """One decoded output of :func:`beam_search`: its
tokens (ending with EOS unless max_len was reached first), the sum of their
log-probabilities, and the score it was ranked by,
log_prob / len(tokens) ** length_alpha."""


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def beam_search(p, src, beam_width, max_len, length_alpha=0.0):
    r"""Decode each source string with beam search -> a list of B
    :class:`Hypothesis`, the best one per string.

    At every step each of the (at most) ``beam_width`` unfinished
    hypotheses is extended by every token; the ``beam_width`` extensions
    with the highest total log-probability :math:`\log p(y_{1..t} | x)`
    survive. An extension that ends with EOS is finished and leaves the
    beam (which then holds fewer), as is every hypothesis at ``max_len``.
    Among the finished ones the best has the highest score

    .. math::  \frac{\log p(y_{1..L} | x)}{L^{\alpha}}

    (``length_alpha`` = :math:`\alpha`): with :math:`\alpha = 0` the most
    probable output found, which favours short ones, since every token
    multiplies in a probability below 1; :math:`\alpha = 1` ranks by the
    mean log-probability per token. ``beam_width=1`` is greedy decoding,
    and a beam as wide as every output of up to ``max_len`` tokens is an
    exhaustive search. src (S, B) tokens.
    """
    src = np.asarray(src)
    if src.ndim != 2:
        raise ValueError(f"src: expected (S, B) tokens, received shape {src.shape}")
    for name, value in (("beam_width", beam_width), ("max_len", max_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or value < 1:
            raise ValueError(f"{name}: expected a positive integer, "
                             f"received {value!r}")
    if not np.isfinite(length_alpha) or length_alpha < 0:
        raise ValueError(f"length_alpha: expected a number >= 0, received "
                         f"{length_alpha!r}")
    attention = "v" in p
    best = []
    for b in range(src.shape[1]):
        keys, h0, c0, _ = _encode(p, src[:, b:b + 1])
        alive = [((), 0.0, h0[0], c0[0])]        # tokens, log p, h, c
        finished = []
        for t in range(max_len):
            n = len(alive)
            token = np.array([a[0][-1] if a[0] else BOS for a in alive])
            h = np.stack([a[2] for a in alive])
            c = np.stack([a[3] for a in alive])
            z, h, c, *_ = _decoder_step(p, token, h, c,
                                        np.repeat(keys, n, axis=1), attention)
            total = np.array([a[1] for a in alive])[:, None] + _log_softmax(z)
            V = total.shape[1]
            k = min(beam_width, total.size)
            top = np.argsort(-total, axis=None, kind="stable")[:k]
            alive_next = []
            for i, v in zip(*np.divmod(top, V)):
                tokens = alive[i][0] + (int(v),)
                if v == EOS or t == max_len - 1:
                    finished.append((tokens, float(total[i, v])))
                else:
                    alive_next.append((tokens, float(total[i, v]), h[i], c[i]))
            alive = alive_next
            if not alive:
                break
        scored = [Hypothesis(np.array(tok), lp, lp / len(tok) ** length_alpha)
                  for tok, lp in finished]
        best.append(max(scored, key=lambda hyp: hyp.score))
    return best


class Seq2Seq:
    """A thin holder of ``params`` and ``grads`` (identical keys) for
    :func:`lstmlib.train.train`: ``forward((src, tgt_in))`` -> logits,
    ``backward(dlogits)`` fills ``grads``."""

    def __init__(self, src_vocab, tgt_vocab, hidden, rng, attention=True,
                 attention_size=None, dtype=np.float64):
        self.params = init_params(src_vocab, tgt_vocab, hidden, rng, attention,
                                  attention_size, dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    @property
    def attention(self):
        return "v" in self.params

    def forward(self, x, lengths=None):
        if lengths is not None:
            raise ValueError("lengths: expected None (batches hold sequences of "
                             "one length), received an array")
        src, tgt_in = x
        logits, self._cache = seq2seq_forward(self.params, src, tgt_in)
        return logits

    def backward(self, dlogits):
        if self._cache is None:
            raise ValueError("dlogits: call forward before backward")
        for k, d in seq2seq_backward(dlogits, self._cache, self.params).items():
            self.grads[k][...] = d

    def decode(self, src, max_len):
        return greedy_decode(self.params, src, max_len)


# ---------------------------------------------------------------------------
# Offline toy tasks

def reversal_batch(rng, batch, length):
    """Random digit strings and their reversals: src (S, B); tgt_in (S+1, B)
    = BOS then the reversed digits; tgt_out (S+1, B) = reversed digits then
    EOS."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, received "
                         f"{type(rng).__name__}")
    if length < 1 or batch < 1:
        raise ValueError(f"length, batch: expected positive integers, "
                         f"received {length!r}, {batch!r}")
    src = rng.integers(0, DIGITS, (length, batch))
    rev = src[::-1]
    tgt_in = np.concatenate([np.full((1, batch), BOS), rev])
    tgt_out = np.concatenate([rev, np.full((1, batch), EOS)])
    return src, tgt_in, tgt_out


def exact_match(tokens, tgt_out):
    """Fraction of sequences whose decoded tokens, up to and including the
    first EOS, equal ``tgt_out`` (T, B) exactly."""
    T = tgt_out.shape[0]
    if tokens.shape[0] < T:
        return 0.0
    return float(np.mean(np.all(tokens[:T] == tgt_out, axis=0)))
