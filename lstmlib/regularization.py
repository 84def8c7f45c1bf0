r"""Regularisation for recurrent networks: dropout, recurrent (variational)
dropout, the training/evaluation switch, and early stopping.

Dropout (Srivastava et al. 2014), inverted as in PyTorch: in training each
entry is kept with probability 1 - p and scaled by 1 / (1 - p), so nothing
changes at evaluation time, where dropout does nothing:

.. math::

    y = x \odot m, \qquad m_j = \frac{\xi_j}{1 - p}, \quad
    \xi_j \sim \mathrm{Bernoulli}(1 - p)

* Between stacked layers (``lstmlib.LSTM(..., dropout=p)``, as
  ``torch.nn.LSTM``): the output of every layer but the last is dropped, a
  fresh mask for every entry of the (T, B, H) output.
* Recurrent dropout (Gal & Ghahramani 2016; ``lstmlib.LSTM(...,
  recurrent_dropout=p)``): one mask per sequence for the input x_t and one
  for the state h_{t-1} that enters the gates, the *same* at every step, so
  the recurrence sees a thinned but consistent network. The sequence
  functions here (:func:`variational_forward`, :func:`variational_backward`)
  are the step functions of ``rnn``, ``lstm`` and ``peephole`` in a loop.
* ``.train()`` / ``.eval()`` / ``.training``: :class:`TrainingMode`, as
  ``torch.nn.Module`` has them; layers, :class:`Dropout` and
  :class:`Sequential` share it, and :func:`set_training` reaches models
  built of them.

Shapes: x (T, B, D), h and c (B, H); layer states (num_layers, B, H).
Randomness comes only from the ``numpy.random.Generator`` given.
"""

import numbers
from collections import namedtuple

import numpy as np

from . import _sequence as seq
from ._validation import check_array
from .cells import CellType, cell_spec
from .lstm import lstm_step_backward, lstm_step_forward
from .peephole import peephole_step_backward, peephole_step_forward
from .rnn import rnn_step_backward, rnn_step_forward


def check_probability(name, p):
    """``p`` as a float in [0, 1] (the range ``torch.nn.Dropout`` and
    ``torch.nn.LSTM(dropout=...)`` accept), else a ValueError naming it."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"{name}: expected a probability in [0, 1], received {p!r}")
    return float(p)


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng: expected a numpy.random.Generator (e.g. "
                         f"np.random.default_rng(0)), received {type(rng).__name__}")
    return rng


def as_generator(name, rng):
    """The generator masks are drawn from: ``None`` a fresh one, an int the
    seed of one, a ``numpy.random.Generator`` itself."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name}: expected None, an integer seed or a "
                         f"numpy.random.Generator, received {type(rng).__name__}")
    return rng


def dropout_mask(shape, p, rng, dtype=np.float64):
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p)."""
    p = check_probability("p", p)
    keep = _check_rng(rng).random(shape) >= p
    if p == 1:                                  # nothing kept: no 1 / 0
        return np.zeros(shape, dtype)
    return (keep / (1.0 - p)).astype(dtype)


# -- the training / evaluation switch -----------------------------------------

class TrainingMode:
    """``torch.nn.Module``'s switch: ``training`` (True when built),
    ``train(mode=True)`` and ``eval()``, which set it on the object and on
    every part of it that has one (attributes, and lists or tuples of them)
    and return the object."""

    training = True

    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"mode: expected True or False, received {mode!r}")
        self.training = mode
        for part in _parts(self):
            set_training(part, mode)
        return self

    def eval(self):
        return self.train(False)


def _parts(model):
    """The parts of a model: its attributes (and the entries of attributes
    that are lists or tuples) that are layers or models themselves."""
    for value in vars(model).values() if hasattr(model, "__dict__") else ():
        for v in (value if isinstance(value, (list, tuple)) else (value,)):
            if isinstance(v, TrainingMode) or (
                    callable(getattr(v, "forward", None)) and not isinstance(v, type)):
                yield v


def set_training(model, training):
    """``model.train(training)`` for any model: objects with the switch
    (:class:`TrainingMode`) are switched, and objects without it (such as
    ``lstmlib.SequenceModel``) are searched through their attributes for
    parts that have it. Returns ``model``."""
    if not isinstance(training, bool):
        raise ValueError(f"training: expected True or False, received {training!r}")
    seen, stack = set(), [model]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        if isinstance(m, TrainingMode):
            m.train(training)
        else:
            stack += list(_parts(m))
    return model


# -- recurrent (variational) dropout ------------------------------------------

def _rnn_step(x, state, weights, nonlinearity="tanh"):
    h, cache = rnn_step_forward(x, state[0], *weights, nonlinearity, check=False)
    return (h,), cache


def _rnn_step_back(cache, dh, d_rest):
    g = rnn_step_backward(dh, cache, check=False)
    return g.dx, g.dh_prev, (), g[2:]


def _lstm_step(x, state, weights):
    return lstm_step_forward(x, state[0], state[1], *weights, check=False)


def _lstm_step_back(cache, dh, d_rest):
    g = lstm_step_backward(dh, d_rest[0], cache, check=False)
    return g.dx, g.dh_prev, (g.dc_prev,), g[3:]


def _peephole_step(x, state, weights):
    return peephole_step_forward(x, state[0], state[1], *weights, check=False)


def _peephole_step_back(cache, dh, d_rest):
    g = peephole_step_backward(dh, d_rest[0], cache, check=False)
    return g.dx, g.dh_prev, (g.dc_prev,), g[3:]


# kind -> (step forward, step backward); a GRU is not here: its new state
# z * h_{t-1} + (1 - z) * n uses h_{t-1} outside the matmuls, where the
# mask does not belong, so its step functions cannot take a masked h_{t-1}
VARIATIONAL_STEPS = {
    "rnn": (_rnn_step, _rnn_step_back),
    "lstm": (_lstm_step, _lstm_step_back),
    "peephole_lstm": (_peephole_step, _peephole_step_back),
}

VariationalCache = namedtuple("VariationalCache",
                              "kind steps mask_x mask_h mask reverse")
VariationalCache.__doc__ = """What :func:`variational_backward` needs: the
cell's kind, the T step caches (``steps[t]`` for step t), the masks mask_x
(B, D) and mask_h (B, H), the padding mask (T, B, 1) or None, and the
direction walked."""


def _steps_of(kind):
    if kind not in VARIATIONAL_STEPS:
        raise ValueError(f"kind: expected one of {tuple(VARIATIONAL_STEPS)} for "
                         f"recurrent dropout, received {kind!r}")
    return VARIATIONAL_STEPS[kind]


def variational_forward(kind, x, state, weights, mask_x, mask_h, lengths=None,
                        reverse=False, **options):
    """A recurrent cell with Gal & Ghahramani's dropout: x_t -> x_t * mask_x
    and h_{t-1} -> h_{t-1} * mask_h inside the gates, the same masks at
    every step. The unmasked h_t is the output and the state carried on;
    only what enters the gates is thinned.

    ``kind`` is "rnn", "lstm" or "peephole_lstm"; ``state``, ``weights``,
    ``lengths``, ``reverse`` and ``options`` are those of the cell interface
    (:mod:`lstmlib.cells`); mask_x (B, D), mask_h (B, H) (from
    :func:`dropout_mask`). Returns ``out, state_n, cache`` as a cell does:
    out (T, B, H), state_n a tuple of (B, H) arrays.
    """
    step, _ = _steps_of(kind)
    spec = cell_spec(kind)
    state = tuple(state)
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {f"state[{j}]": s for j, s in enumerate(state)}, tuple(weights[:4]),
        len(spec.gates), lengths)
    check_array("mask_x", mask_x, (B, D), x.dtype)
    check_array("mask_h", mask_h, (B, H), x.dtype)
    out = np.empty((T, B, H), x.dtype)
    steps = [None] * T
    s = state
    for t in seq.time_steps(T, reverse):
        new, steps[t] = step(x[t] * mask_x, (s[0] * mask_h,) + s[1:], weights,
                             **options)
        if mask is not None:                       # padding keeps the state
            new = tuple(mask[t] * a + (1 - mask[t]) * b for a, b in zip(new, s))
        out[t] = new[0] if mask is None else new[0] * mask[t]
        s = new
    return out, tuple(a.copy() for a in s), VariationalCache(
        kind, steps, mask_x, mask_h, mask, reverse)


def variational_backward(d_out, d_state_n, cache):
    """BPTT through :func:`variational_forward` -> ``(dx, d_state0,
    d_weights)`` (the cell interface's backward); ``d_out`` and the entries
    of ``d_state_n`` may be None (zeros)."""
    kind, steps, mask_x, mask_h, mask, reverse = cache
    _, step_backward = _steps_of(kind)
    T, (B, H), dt = len(steps), mask_h.shape, mask_h.dtype
    d_out = seq.check_grad("d_out", d_out, (T, B, H), dt)
    dh, *d_rest = (seq.check_grad(f"d_state_n[{j}]", d, (B, H), dt)
                   for j, d in enumerate(d_state_n))
    dx = np.empty((T, B, mask_x.shape[1]), dt)
    dw = None
    for t in reversed(seq.time_steps(T, reverse)):
        m = 1 if mask is None else mask[t]
        dh_t = dh + d_out[t] * m                    # from above and from t+1
        g_x, g_h, g_rest, g_w = step_backward(steps[t], dh_t * m,
                                              [d * m for d in d_rest])
        dx[t] = g_x * mask_x                        # x_t entered as x_t * mask_x
        dh = g_h * mask_h + (1 - m) * dh_t          # h_{t-1} entered as h * mask_h
        d_rest = [g + (1 - m) * d for g, d in zip(g_rest, d_rest)]
        dw = g_w if dw is None else [None if a is None else a + b
                                     for a, b in zip(dw, g_w)]
    return dx, (dh, *d_rest), tuple(dw)


def variational_cell(kind, p, rng):
    """The :class:`lstmlib.cells.CellType` of ``kind`` with recurrent
    dropout ``p``: each ``forward`` call (each direction of each layer)
    draws its own mask_x and mask_h from ``rng`` and runs
    :func:`variational_forward`, on the numpy reference's step functions."""
    _steps_of(kind)
    p = check_probability("recurrent_dropout", p)
    spec = cell_spec(kind)

    def forward(x, state, weights, lengths=None, reverse=False, **options):
        (_, B, D), H = x.shape, state[0].shape[-1]
        mask_x = dropout_mask((B, D), p, rng, x.dtype)
        mask_h = dropout_mask((B, H), p, rng, x.dtype)
        return variational_forward(kind, x, state, weights, mask_x, mask_h,
                                   lengths, reverse, **options)

    return CellType(kind, len(spec.gates), len(spec.states), forward,
                    variational_backward)


# -- a dropout layer and a chain of layers, for read-outs ---------------------

class Dropout(TrainingMode):
    """Inverted dropout as a layer (``torch.nn.Dropout``): a fresh mask each
    forward call in training, the identity in evaluation mode (``eval()``).
    ``rng``: the masks' generator (None: a fresh one; an int: its seed)."""

    def __init__(self, p=0.5, *, rng=None):
        self.p = check_probability("p", p)
        self.rng = as_generator("rng", rng)
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


class Sequential(TrainingMode):
    """Layers applied in order; ``params``/``grads`` keyed "index.name";
    ``train()``/``eval()`` switch every layer."""

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
