r"""Layer normalisation (Ba, Kiros & Hinton 2016) and the layer-normalised
LSTM cell of that paper.

Layer norm of a row a (N features) with gain gamma and bias beta:

.. math::

    \mu = \tfrac1N \textstyle\sum_j a_j, \quad
    \sigma^2 = \tfrac1N \textstyle\sum_j (a_j - \mu)^2, \quad
    \hat a = \frac{a - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad
    \mathrm{LN}(a) = \gamma \odot \hat a + \beta

The LSTM normalises the input and the recurrent contributions separately
(each over all 4H gate rows) and the cell state before its tanh:

.. math::

    \begin{aligned}
    a_t &= \mathrm{LN}(W_{ih} x_t; \gamma_x) + \mathrm{LN}(W_{hh} h_{t-1}; \gamma_h) + b \\
    i_t, f_t, g_t, o_t &= \sigma(a^i_t), \sigma(a^f_t), \tanh(a^g_t), \sigma(a^o_t) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
    h_t &= o_t \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))
    \end{aligned}

(the two gate normalisations have no bias of their own: b plays that part).
Every step's statistics come from that step and that example alone, so it
works with any batch size and at any sequence length, unlike batch norm.
Parameters (a dict): w_ih (4H, D), w_hh (4H, H), b (4H,), g_x and g_h
(4H,), g_c and b_c (H,). Shapes: x (T, B, D), h and c (B, H).
"""

from collections import namedtuple

import numpy as np

from .activations import sigmoid

EPS = 1e-5                                      # torch.nn.LayerNorm's default

LNCache = namedtuple("LNCache", "a_hat inv_std gain")
LNLSTMStepCache = namedtuple(
    "LNLSTMStepCache", "x h_prev c_prev ln_x ln_h ln_c i f g o tanh_n")
PARAM_NAMES = ("w_ih", "w_hh", "b", "g_x", "g_h", "g_c", "b_c")


def layer_norm_forward(a, gain, bias=None, eps=EPS):
    """Normalise each row of a (B, N) -> (B, N), cache."""
    mu = a.mean(axis=-1, keepdims=True)
    var = a.var(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    a_hat = (a - mu) * inv_std
    y = gain * a_hat if bias is None else gain * a_hat + bias
    return y, LNCache(a_hat, inv_std, gain)


def layer_norm_backward(dy, cache):
    """-> (da, dgain, dbias) for dy (B, N)."""
    a_hat, inv_std, gain = cache
    dgain = (dy * a_hat).sum(axis=0)
    dbias = dy.sum(axis=0)
    d_hat = dy * gain
    # a_hat depends on a through a itself, the mean and the variance
    da = inv_std * (d_hat - d_hat.mean(axis=-1, keepdims=True)
                    - a_hat * (d_hat * a_hat).mean(axis=-1, keepdims=True))
    return da, dgain, dbias


def init_params(input_size, hidden_size, rng, dtype=np.float64):
    """PyTorch-like U(-1/sqrt(H), 1/sqrt(H)) weights, gains 1, biases 0."""
    D, H = input_size, hidden_size
    k = 1.0 / np.sqrt(H)
    return {"w_ih": rng.uniform(-k, k, (4 * H, D)).astype(dtype),
            "w_hh": rng.uniform(-k, k, (4 * H, H)).astype(dtype),
            "b": np.zeros(4 * H, dtype), "g_x": np.ones(4 * H, dtype),
            "g_h": np.ones(4 * H, dtype), "g_c": np.ones(H, dtype),
            "b_c": np.zeros(H, dtype)}


def _check_params(p):
    missing = [n for n in PARAM_NAMES if n not in p]
    if missing:
        raise ValueError(f"params: expected keys {list(PARAM_NAMES)}, missing {missing}")


def ln_lstm_step_forward(x, h_prev, c_prev, p):
    """One step of the layer-normalised LSTM -> (h, c), cache."""
    _check_params(p)
    if x.shape[-1] != p["w_ih"].shape[1]:
        raise ValueError(f"x: expected {p['w_ih'].shape[1]} features (w_ih's "
                         f"columns), received shape {x.shape}")
    H = h_prev.shape[1]
    ax, ln_x = layer_norm_forward(x @ p["w_ih"].T, p["g_x"])
    ah, ln_h = layer_norm_forward(h_prev @ p["w_hh"].T, p["g_h"])
    a = ax + ah + p["b"]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g
    n, ln_c = layer_norm_forward(c, p["g_c"], p["b_c"])
    tanh_n = np.tanh(n)
    h = o * tanh_n
    return (h, c), LNLSTMStepCache(x, h_prev, c_prev, ln_x, ln_h, ln_c,
                                   i, f, g, o, tanh_n)


def ln_lstm_step_backward(dh, dc, cache, p):
    """Gradients of one step -> (dx, dh_prev, dc_prev, grads dict)."""
    x, h_prev, c_prev, ln_x, ln_h, ln_c, i, f, g, o, tanh_n = cache
    do = dh * tanh_n                                # h = o * tanh(n)
    dn = dh * o * (1.0 - tanh_n ** 2)               # through tanh
    dc_ln, dg_c, db_c = layer_norm_backward(dn, ln_c)
    dc = dc + dc_ln                                 # n = LN(c)
    di, df, dg = dc * g, dc * c_prev, dc * i        # c = f c_prev + i g
    dc_prev = dc * f
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f),
                         dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
    dax, dg_x, _ = layer_norm_backward(da, ln_x)    # a = LN(ax) + LN(ah) + b
    dah, dg_h, _ = layer_norm_backward(da, ln_h)
    grads = {"w_ih": dax.T @ x, "w_hh": dah.T @ h_prev, "b": da.sum(axis=0),
             "g_x": dg_x, "g_h": dg_h, "g_c": dg_c, "b_c": db_c}
    return dax @ p["w_ih"], dah @ p["w_hh"], dc_prev, grads


def ln_lstm_forward(x, h0, c0, p):
    """Run over x (T, B, D) -> out (T, B, H), (h_n, c_n), caches."""
    T = x.shape[0]
    out = np.empty((T,) + h0.shape, x.dtype)
    caches, h, c = [], h0, c0
    for t in range(T):
        (h, c), cache = ln_lstm_step_forward(x[t], h, c, p)
        out[t] = h
        caches.append(cache)
    return out, (h, c), caches


def ln_lstm_backward(d_out, dh_n, dc_n, caches, p):
    """BPTT -> (dx, dh0, dc0, grads dict with the keys of ``p``)."""
    dh = np.zeros_like(caches[0].h_prev) if dh_n is None else dh_n.copy()
    dc = np.zeros_like(caches[0].c_prev) if dc_n is None else dc_n.copy()
    dx = np.empty((len(caches),) + caches[0].x.shape, dh.dtype)
    total = {k: np.zeros_like(v) for k, v in p.items()}
    for t in reversed(range(len(caches))):
        dx[t], dh, dc, grads = ln_lstm_step_backward(d_out[t] + dh, dc, caches[t], p)
        for k, gk in grads.items():
            total[k] += gk
    return dx, dh, dc, total


class LayerNormLSTM:
    """One layer-normalised LSTM layer with ``params``/``grads`` dicts,
    usable as ``SequenceModel``'s recurrent layer; state (h, c), each
    (1, B, H) like a one-layer ``lstmlib.LSTM``."""

    batch_first = False
    bidirectional = False
    kind = "layernorm_lstm"

    def __init__(self, input_size, hidden_size, *, rng, dtype=np.float64):
        self.input_size, self.hidden_size = input_size, hidden_size
        self.dtype = np.dtype(dtype)
        self.params = init_params(input_size, hidden_size, rng, dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    def forward(self, x, state=None, lengths=None):
        if lengths is not None:
            raise ValueError("lengths: expected None (full-length sequences only)")
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x: expected shape (T, B, {self.input_size}), "
                             f"received {x.shape}")
        B, H = x.shape[1], self.hidden_size
        h0, c0 = (np.zeros((B, H), self.dtype),) * 2 if state is None else \
            (state[0][0], state[1][0])
        out, (h, c), self._cache = ln_lstm_forward(x, h0, c0, self.params)
        return out, (h[None], c[None])

    __call__ = forward

    def backward(self, d_out, d_state=None):
        dh_n, dc_n = (None, None) if d_state is None else \
            tuple(None if d is None else d[0] for d in d_state)
        dx, dh0, dc0, grads = ln_lstm_backward(d_out, dh_n, dc_n, self._cache, self.params)
        self.grads.update(grads)
        return dx, (dh0[None], dc0[None])
