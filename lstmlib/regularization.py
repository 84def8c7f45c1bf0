r"""Regularisation for recurrent networks: dropout between stacked layers,
recurrent (variational) dropout, and early stopping.

Dropout (Srivastava et al. 2014), inverted as in PyTorch: in training each
entry is kept with probability 1 - p and scaled by 1 / (1 - p), so nothing
changes at evaluation time, where dropout does nothing:

.. math::

    y = x \odot m, \qquad m_j = \frac{\xi_j}{1 - p}, \quad
    \xi_j \sim \mathrm{Bernoulli}(1 - p)

* Between stacked layers (``torch.nn.LSTM(..., dropout=p)``): the output of
  every layer but the last is dropped, a fresh mask for every entry of the
  (T, B, H) output.
* Recurrent dropout (Gal & Ghahramani 2016): one mask per sequence for the
  input x_t and one for the state h_{t-1} that enters the gates, the *same*
  at every step, so the recurrence sees a thinned but consistent network.

Shapes: x (T, B, D), h and c (B, H); layer states (num_layers, B, H).
Randomness comes only from the ``numpy.random.Generator`` given.
"""

from collections import namedtuple

import numpy as np

from ._validation import check_array
from .lstm import LSTMGrads, lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward


def _check_p(name, p):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
        raise ValueError(f"{name}: expected a probability in [0, 1), received {p!r}")
    return float(p)


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng: expected a numpy.random.Generator (e.g. "
                         f"np.random.default_rng(0)), received {type(rng).__name__}")
    return rng


def dropout_mask(shape, p, rng, dtype=np.float64):
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p)."""
    p = _check_p("p", p)
    keep = _check_rng(rng).random(shape) >= p
    return (keep / (1.0 - p)).astype(dtype)


# -- recurrent (variational) dropout ------------------------------------------

VariationalCache = namedtuple("VariationalCache", "steps mask_x mask_h")


def lstm_variational_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask_x, mask_h):
    """LSTM with Gal & Ghahramani's dropout: x_t -> x_t * mask_x and
    h_{t-1} -> h_{t-1} * mask_h inside the gates, the same masks at every
    step. mask_x (B, D), mask_h (B, H) (from :func:`dropout_mask`).

    Returns out (T, B, H), (h_n, c_n), cache. The unmasked h_t is the output
    and the state carried on; only what enters the gates is thinned.
    """
    x = check_array("x", x, (None, None, w_ih.shape[1]), w_ih.dtype)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    check_array("mask_x", mask_x, (B, x.shape[2]), x.dtype)
    check_array("mask_h", mask_h, (B, H), x.dtype)
    out = np.empty((T, B, H), x.dtype)
    steps = []
    h, c = h0, c0
    for t in range(T):
        (h, c), cache = lstm_step_forward(x[t] * mask_x, h * mask_h, c,
                                          w_ih, w_hh, b_ih, b_hh)
        out[t] = h
        steps.append(cache)
    return out, (h, c), VariationalCache(steps, mask_x, mask_h)


def lstm_variational_backward(d_out, dh_n, dc_n, cache):
    """BPTT through :func:`lstm_variational_forward` -> ``LSTMGrads``."""
    steps, mask_x, mask_h = cache
    T, (B, H), dt = len(steps), steps[0].c.shape, steps[0].c.dtype
    d_out = np.zeros((T, B, H), dt) if d_out is None else d_out
    dh = np.zeros((B, H), dt) if dh_n is None else dh_n.copy()
    dc = np.zeros((B, H), dt) if dc_n is None else dc_n.copy()
    dx = np.empty((T, B, mask_x.shape[1]), d_out.dtype)
    dw = None
    for t in reversed(range(T)):
        g = lstm_step_backward(d_out[t] + dh, dc, steps[t])
        dx[t] = g.dx * mask_x                   # x_t entered as x_t * mask_x
        dh = g.dh_prev * mask_h                 # h_{t-1} entered as h * mask_h
        dc = g.dc_prev
        w = (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)
        dw = w if dw is None else tuple(
            None if a is None else a + b for a, b in zip(dw, w))
    return LSTMGrads(dx, dh, dc, *dw)


# -- a stacked LSTM with both kinds of dropout --------------------------------

class DropoutLSTM:
    """A stacked LSTM with ``torch.nn.LSTM``'s parameter names and its
    ``dropout`` between layers, plus ``recurrent_dropout`` (Gal &
    Ghahramani) inside every layer. ``training`` (default True) switches
    both on; in evaluation mode it computes exactly ``torch.nn.LSTM``.
    Time-major, unidirectional; state (h, c), each (num_layers, B, H).
    """

    batch_first = False
    bidirectional = False

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0,
                 recurrent_dropout=0.0, *, rng, dtype=np.float64):
        self.rng = _check_rng(rng)
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers = int(num_layers)
        if min(self.input_size, self.hidden_size, self.num_layers) < 1:
            raise ValueError("input_size, hidden_size, num_layers: expected positive "
                             f"integers, received {input_size}, {hidden_size}, {num_layers}")
        self.dropout = _check_p("dropout", dropout)
        self.recurrent_dropout = _check_p("recurrent_dropout", recurrent_dropout)
        self.dtype = np.dtype(dtype)
        self.training = True
        H = self.hidden_size
        k = 1.0 / np.sqrt(H)                # PyTorch's U(-1/sqrt(H), 1/sqrt(H))
        self.params = {}
        for layer in range(self.num_layers):
            D = self.input_size if layer == 0 else H
            for name, shape in (("weight_ih", (4 * H, D)), ("weight_hh", (4 * H, H)),
                                ("bias_ih", (4 * H,)), ("bias_hh", (4 * H,))):
                self.params[f"{name}_l{layer}"] = rng.uniform(-k, k, shape).astype(self.dtype)
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items()}
        self._cache = None

    def _weights(self, layer):
        return tuple(self.params[f"{n}_l{layer}"]
                     for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def load_state_dict(self, state_dict):
        """Copy arrays (or torch tensors) with exactly ``params``' keys in place."""
        if set(state_dict) != set(self.params):
            raise ValueError(f"state_dict: expected keys {sorted(self.params)}, "
                             f"received {sorted(state_dict)}")
        for k, v in state_dict.items():
            arr = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            if arr.shape != self.params[k].shape:
                raise ValueError(f"state_dict[{k!r}]: expected shape "
                                 f"{self.params[k].shape}, received {arr.shape}")
            self.params[k][...] = arr

    def forward(self, x, state=None, lengths=None):
        """x (T, B, D) -> out (T, B, H), (h_n, c_n)."""
        if lengths is not None:
            raise ValueError("lengths: expected None (DropoutLSTM runs full-length "
                             "sequences), received an array")
        x = check_array("x (T, B, D)", x, (None, None, self.input_size), self.dtype)
        T, B, _ = x.shape
        L, H = self.num_layers, self.hidden_size
        if state is None:
            state = (np.zeros((L, B, H), self.dtype),) * 2
        h0, c0 = (check_array(f"state[{j}]", s, (L, B, H), self.dtype)
                  for j, s in enumerate(state))
        h_n, c_n = np.empty_like(h0), np.empty_like(c0)
        caches, inp = [], x
        for layer in range(L):
            w = self._weights(layer)
            if self.training and self.recurrent_dropout > 0:
                p = self.recurrent_dropout
                mx = dropout_mask(inp.shape[1:], p, self.rng, self.dtype)
                mh = dropout_mask((B, H), p, self.rng, self.dtype)
                out, (h, c), cache = lstm_variational_forward(
                    inp, h0[layer], c0[layer], *w, mx, mh)
                backward = lstm_variational_backward
            else:
                out, (h, c), cache = lstm_forward(inp, h0[layer], c0[layer], *w)
                backward = lstm_backward
            h_n[layer], c_n[layer] = h, c
            mask = None
            if self.training and self.dropout > 0 and layer < L - 1:
                mask = dropout_mask(out.shape, self.dropout, self.rng, self.dtype)
                out = out * mask                # dropout between layers
            caches.append((backward, cache, mask))
            inp = out
        self._cache = caches
        return inp, (h_n, c_n)

    __call__ = forward

    def backward(self, d_out, d_state=None):
        """Gradients of the last forward call -> (dx, (dh0, dc0)); fills
        ``grads``. ``d_state`` is (dh_n, dc_n) or None (zeros)."""
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() call first")
        L = self.num_layers
        dh_n, dc_n = (None, None) if d_state is None else d_state
        dh0, dc0 = [None] * L, [None] * L
        d = d_out
        for layer in reversed(range(L)):
            backward, cache, mask = self._cache[layer]
            if mask is not None:
                d = d * mask                    # through the dropout
            g = backward(d, None if dh_n is None else dh_n[layer],
                         None if dc_n is None else dc_n[layer], cache)
            for n, dw in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
                             (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)):
                self.grads[f"{n}_l{layer}"] = dw
            dh0[layer], dc0[layer] = g.dh0, g.dc0
            d = g.dx
        return d, (np.stack(dh0), np.stack(dc0))

    def masks(self):
        """The dropout masks between layers drawn by the last forward call."""
        return [m for _, _, m in self._cache]


# -- a dropout layer and a chain of layers, for read-outs ---------------------

class Dropout:
    """Inverted dropout as a layer (``torch.nn.Dropout``): a fresh mask each
    forward call in training, the identity when ``training`` is False."""

    def __init__(self, p, *, rng):
        self.p = _check_p("p", p)
        self.rng = _check_rng(rng)
        self.training = True
        self.params, self.grads = {}, {}
        self._mask = None

    def forward(self, x):
        if not self.training or self.p == 0:
            self._mask = None
            return x
        self._mask = dropout_mask(x.shape, self.p, self.rng, x.dtype)
        return x * self._mask

    __call__ = forward

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask


class Sequential:
    """Layers applied in order; ``params``/``grads`` keyed "index.name"."""

    def __init__(self, *layers):
        self.layers = layers

    @property
    def params(self):
        return {f"{i}.{k}": v for i, m in enumerate(self.layers) for k, v in m.params.items()}

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, m in enumerate(self.layers) for k, v in m.grads.items()}

    def forward(self, x):
        for m in self.layers:
            x = m.forward(x)
        return x

    __call__ = forward

    def backward(self, dy):
        for m in reversed(self.layers):
            dy = m.backward(dy)
        return dy


def set_training(model, training):
    """Switch every part of ``model`` that has a ``training`` flag (found
    through ``rnn``, ``head`` and ``layers``) to training or evaluation."""
    stack = [model]
    while stack:
        m = stack.pop()
        if hasattr(m, "training"):
            m.training = bool(training)
        stack += [getattr(m, a) for a in ("rnn", "head") if hasattr(m, a)]
        stack += list(getattr(m, "layers", ()))


# -- early stopping -----------------------------------------------------------

class EarlyStopping:
    """Stop when the validation loss has not improved by more than
    ``min_delta`` for ``patience`` evaluations in a row, and keep a copy of
    the best parameters seen, to put back with :meth:`restore`."""

    def __init__(self, patience=5, min_delta=0.0):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience: expected a positive integer, received {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta: expected a non-negative number, received {min_delta!r}")
        self.patience, self.min_delta = patience, float(min_delta)
        self.best, self.best_index, self.index, self.waited = np.inf, None, -1, 0
        self.best_params = None

    def step(self, val_loss, params):
        """Record one evaluation; return True when training should stop."""
        if not np.isfinite(val_loss):
            raise ValueError(f"val_loss: expected a finite number, received {val_loss!r}")
        self.index += 1
        if val_loss < self.best - self.min_delta:
            self.best, self.best_index, self.waited = float(val_loss), self.index, 0
            self.best_params = {k: v.copy() for k, v in params.items()}
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self, params):
        """Copy the best parameters back into ``params`` (in place)."""
        if self.best_params is None:
            raise RuntimeError("restore() needs at least one step() first")
        for k, v in self.best_params.items():
            params[k][...] = v
