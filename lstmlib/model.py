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
