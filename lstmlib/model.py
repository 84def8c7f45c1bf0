"""A dense layer and a recurrent model with a dense read-out, for training.

``SequenceModel(rnn, head, readout="last")`` maps x (T, B, D) to one
prediction per sequence, taken from the output at each sequence's last real
step (B, C); ``readout="all"`` gives one per step (T, B, C).
"""

import numpy as np

from ._validation import check_array, check_lengths


class Linear:
    """y = x W^T + b, with W (out_features, in_features) like ``torch.nn.Linear``."""

    def __init__(self, in_features, out_features, *, bias=True, rng=None,
                 dtype=np.float64):
        rng = np.random.default_rng() if rng is None else rng
        k = 1.0 / np.sqrt(in_features)
        self.params = {"weight": rng.uniform(-k, k, (out_features, in_features)).astype(dtype)}
        if bias:
            self.params["bias"] = rng.uniform(-k, k, (out_features,)).astype(dtype)
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items()}
        self._x = None

    def forward(self, x):
        w = self.params["weight"]
        x = check_array("x", x, (None,) * (np.ndim(x) - 1) + (w.shape[1],), w.dtype)
        self._x = x
        y = x @ w.T
        if "bias" in self.params:
            y = y + self.params["bias"]
        return y

    __call__ = forward

    def backward(self, dy):
        x, w = self._x, self.params["weight"]
        x2 = x.reshape(-1, x.shape[-1])
        dy2 = dy.reshape(-1, dy.shape[-1])
        self.grads["weight"] = dy2.T @ x2
        if "bias" in self.params:
            self.grads["bias"] = dy2.sum(axis=0)
        return dy @ w


class Embedding:
    """Token ids -> learnt vectors, ``weight[ids]``, like ``torch.nn.Embedding``.

    weight (num_embeddings, embedding_dim) is drawn from N(0, 1), as PyTorch
    draws it. forward(ids) takes integer ids of any shape (...) and returns
    (..., embedding_dim); backward(dy) adds each row of dy to the gradient of
    the row it was read from (a token used twice gets both) and returns None:
    integer ids have no gradient. The product of a one-hot vector with a
    matrix, without the one-hot vector.
    """

    def __init__(self, num_embeddings, embedding_dim, *, rng=None,
                 dtype=np.float64):
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < 1:
                raise ValueError(f"{name}: expected a positive integer, "
                                 f"received {value!r}")
        rng = np.random.default_rng() if rng is None else rng
        self.params = {"weight": rng.standard_normal(
            (num_embeddings, embedding_dim)).astype(dtype)}
        self.grads = {"weight": np.zeros_like(self.params["weight"])}
        self._ids = None

    def forward(self, ids):
        ids = np.asarray(ids)
        n = self.params["weight"].shape[0]
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids: expected integer token ids, received dtype "
                             f"{ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"ids: expected values in [0, {n}), received "
                             f"{ids.min()}..{ids.max()}")
        self._ids = ids
        return self.params["weight"][ids]

    __call__ = forward

    def backward(self, dy):
        w = self.params["weight"]
        dy = check_array("dy", dy, self._ids.shape + (w.shape[1],), w.dtype)
        g = np.zeros_like(w)
        np.add.at(g, self._ids.reshape(-1), dy.reshape(-1, w.shape[1]))
        self.grads["weight"] = g
        return None


class EmbeddedRNN:
    """A recurrent layer that reads token ids through an :class:`Embedding`.

    forward(ids (T, B), state=None, lengths=None) -> (out, state_n), and
    backward(d_out, d_state=None) -> (None, d_state0), as the recurrent
    layer's own (the ids get no gradient); ``params`` and ``grads`` hold the
    embedding's under ``embedding.`` and the layer's under their own names.
    Wherever a recurrent layer goes (``SequenceModel``, truncated BPTT), this
    goes, with ids in place of one-hot vectors.
    """

    def __init__(self, embedding, rnn):
        if embedding.params["weight"].shape[1] != rnn.input_size:
            raise ValueError(
                f"embedding: expected embedding_dim = the layer's input_size "
                f"{rnn.input_size}, received "
                f"{embedding.params['weight'].shape[1]}")
        self.embedding, self.rnn = embedding, rnn
        self.hidden_size = rnn.hidden_size
        self.batch_first = rnn.batch_first
        self.bidirectional = rnn.bidirectional

    @property
    def params(self):
        p = {f"embedding.{k}": v for k, v in self.embedding.params.items()}
        p.update(self.rnn.params)
        return p

    @property
    def grads(self):
        g = {f"embedding.{k}": v for k, v in self.embedding.grads.items()}
        g.update(self.rnn.grads)
        return g

    def forward(self, ids, state=None, lengths=None):
        return self.rnn.forward(self.embedding.forward(ids), state, lengths)

    __call__ = forward

    def backward(self, d_output, d_state=None):
        dx, d_state0 = self.rnn.backward(d_output, d_state)
        self.embedding.backward(dx)
        return None, d_state0


class SequenceModel:
    """A recurrent layer followed by a Linear read-out (time-major input)."""

    def __init__(self, rnn, head, readout="last"):
        if readout not in ("last", "all"):
            raise ValueError(f"readout: expected 'last' or 'all', received {readout!r}")
        if rnn.batch_first:
            raise ValueError("rnn: expected a time-major layer (batch_first=False)")
        self.rnn, self.head, self.readout = rnn, head, readout
        self._last = None

    @property
    def params(self):
        p = {f"rnn.{k}": v for k, v in self.rnn.params.items()}
        p.update({f"head.{k}": v for k, v in self.head.params.items()})
        return p

    @property
    def grads(self):
        g = {f"rnn.{k}": v for k, v in self.rnn.grads.items()}
        g.update({f"head.{k}": v for k, v in self.head.grads.items()})
        return g

    def forward(self, x, lengths=None, state=None):
        out, _ = self.rnn.forward(x, state, lengths)
        T, B, _ = out.shape
        if self.readout == "all":
            self._last = None
            self._shape = out.shape
            return self.head.forward(out)
        last = np.full(B, T - 1) if lengths is None else check_lengths(lengths, T, B) - 1
        self._last = last
        self._shape = out.shape
        # the backward direction of a bidirectional layer has read the whole
        # sequence at t = 0, so its half is taken there
        H = self.rnn.hidden_size
        feat = out[last, np.arange(B)]
        if self.rnn.bidirectional:
            feat = np.concatenate([feat[:, :H], out[0, :, H:]], axis=1)
        return self.head.forward(feat)

    __call__ = forward

    def backward(self, dy):
        d_feat = self.head.backward(dy)
        if self.readout == "all":
            d_out = d_feat
        else:
            d_out = np.zeros(self._shape, d_feat.dtype)
            B = d_out.shape[1]
            H = self.rnn.hidden_size
            if self.rnn.bidirectional:
                d_out[self._last, np.arange(B), :H] = d_feat[:, :H]
                d_out[0, :, H:] += d_feat[:, H:]
            else:
                d_out[self._last, np.arange(B)] = d_feat
        dx, _ = self.rnn.backward(d_out)
        return dx
