"""Layer classes with PyTorch's constructor arguments, parameter names and
shapes: ``lstmlib.RNN``, ``lstmlib.LSTM``, ``lstmlib.GRU``.

The maths lives in the step and sequence functions of ``rnn``, ``lstm`` and
``gru``; a layer only holds ``params`` and ``grads`` (the same keys as
``torch.nn.LSTM(...).named_parameters()``), stacks ``num_layers`` cells and
wraps each in a bidirectional pair when asked. Shapes (time-major unless
``batch_first``): x (T, B, D), output (T, B, num_directions * H), state
(num_layers * num_directions, B, H); the LSTM's state is a tuple (h, c).

Dropout as in PyTorch: ``dropout=p`` drops the output of every layer but the
last, in training mode only (``.train()``, the default; ``.eval()`` switches
it off, and the layer then computes exactly torch's). ``recurrent_dropout=p``
adds Gal & Ghahramani's variational dropout inside every layer (one mask per
sequence on x_t and on the h_{t-1} entering the gates; RNN, LSTM and
PeepholeLSTM). The masks come from ``dropout_rng`` (by default the ``rng``
that initialised the parameters).
"""

import warnings

import numpy as np

from ._validation import check_array, check_lengths
from .bidirectional import (BidirectionalCache, bidirectional_backward,
                            bidirectional_forward)
from .cells import BACKENDS, get_cell, parameter_shapes
from .regularization import (VARIATIONAL_STEPS, TrainingMode, VariationalCache,
                             as_generator, check_probability, dropout_mask,
                             variational_cell)
from .rnn import check_nonlinearity

__all__ = ["RecurrentLayer", "RNN", "LSTM", "GRU", "PeepholeLSTM",
           "BACKENDS", "get_cell"]


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, received {value!r}")
    return int(value)


class RecurrentLayer(TrainingMode):
    """Base class of :class:`RNN`, :class:`LSTM` and :class:`GRU`.

    ``dropout``: torch's, the probability of dropping each output of every
    layer but the last in training mode. ``recurrent_dropout`` (keyword,
    not in torch): variational dropout inside every layer in training mode,
    on the numpy reference's step functions whatever the backend.
    ``dropout_rng``: the masks' generator (None: ``rng``; an int: the seed
    of a new one); assign ``layer.dropout_rng`` to replay masks.
    ``train()``, ``eval()`` and ``training`` as in ``torch.nn.Module``.
    """

    kind = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *,
                 recurrent_dropout=0.0, rng=None, dropout_rng=None,
                 dtype=np.float64, backend="numpy", **options):
        self.dropout = check_probability("dropout", dropout)
        self.recurrent_dropout = check_probability("recurrent_dropout",
                                                   recurrent_dropout)
        if self.recurrent_dropout > 0 and self.kind not in VARIATIONAL_STEPS:
            raise ValueError(
                f"recurrent_dropout: expected 0.0 for a {type(self).__name__} "
                f"(available for {', '.join(VARIATIONAL_STEPS)}), received "
                f"{recurrent_dropout!r}")
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, "
                "so non-zero dropout expects num_layers greater than 1, but got "
                f"dropout={dropout} and num_layers={num_layers}",
                stacklevel=2 if type(self).__init__ is RecurrentLayer.__init__ else 3)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"dtype: expected a floating dtype, received {self.dtype}")
        if rng is None:
            rng = np.random.default_rng()
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng: expected a numpy.random.Generator (e.g. "
                             f"np.random.default_rng(0)), received {type(rng).__name__}")
        self.dropout_rng = rng if dropout_rng is None else \
            as_generator("dropout_rng", dropout_rng)
        self.options = options
        self.backend = backend
        self.cell = get_cell(self.kind, backend)
        self.params = self._init_params(rng)
        # (layer, direction) -> names of the cell's weights tuple, biases
        # included even without biases (their entries are then None)
        self._weight_names = {
            (layer, d): [name + self._suffix(layer, d) for name, _ in
                         parameter_shapes(self.kind, self._layer_input_size(layer),
                                          self.hidden_size, bias=True)]
            for layer in range(self.num_layers)
            for d in range(self.num_directions)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    # -- parameters -------------------------------------------------------
    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _layer_input_size(self, layer):
        return self.input_size if layer == 0 else \
            self.hidden_size * self.num_directions

    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def _shapes(self, layer, direction):
        """``[(name, shape), ...]`` of one cell, named as torch names them
        (weight_ih_l0, ..., weight_hh_l1_reverse)."""
        sfx = self._suffix(layer, direction)
        return [(name + sfx, shape) for name, shape in parameter_shapes(
            self.kind, self._layer_input_size(layer), self.hidden_size,
            self.bias)]

    def _names(self, layer, direction):
        return [name for name, _ in self._shapes(layer, direction)]

    def _init_params(self, rng):
        """PyTorch's initialisation: every entry from U(-1/sqrt(H), 1/sqrt(H))."""
        k = 1.0 / np.sqrt(self.hidden_size)
        params = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                for name, shape in self._shapes(layer, d):
                    params[name] = rng.uniform(-k, k, shape).astype(self.dtype)
        return params

    def _weights(self, layer, direction):
        """The cell's ``weights`` tuple: every parameter in order, biases
        None when the layer has none."""
        return tuple(self.params.get(name)
                     for name in self._weight_names[layer, direction])

    def num_parameters(self):
        return sum(p.size for p in self.params.values())

    def zero_grad(self):
        for g in self.grads.values():
            g[...] = 0

    def state_dict(self):
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict):
        """Load arrays (or torch tensors) with exactly ``params``' keys and shapes."""
        missing = set(self.params) - set(state_dict)
        extra = set(state_dict) - set(self.params)
        if missing or extra:
            raise ValueError(f"state_dict: expected keys {sorted(self.params)}, "
                             f"missing {sorted(missing)}, unexpected {sorted(extra)}")
        for k, v in state_dict.items():
            arr = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            if arr.shape != self.params[k].shape:
                raise ValueError(f"state_dict[{k!r}]: expected shape "
                                 f"{self.params[k].shape}, received {arr.shape}")
            self.params[k][...] = arr

    # -- forward and backward --------------------------------------------
    def _state_shape(self, B):
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _check_state(self, state, B):
        """Return the initial state as a tuple of (L*dirs, B, H) arrays."""
        shape = self._state_shape(B)
        n = self.cell.num_states
        if state is None:
            return tuple(np.zeros(shape, self.dtype) for _ in range(n))
        if n == 2:
            if not isinstance(state, tuple) or len(state) != 2:
                raise ValueError("state: expected a tuple (h0, c0) for an LSTM, "
                                 f"received {type(state).__name__}")
            return (check_array("state[0] (h0)", state[0], shape, self.dtype),
                    check_array("state[1] (c0)", state[1], shape, self.dtype))
        return (check_array("state (h0)", state, shape, self.dtype),)

    def _pack_state(self, arrays):
        return tuple(arrays) if self.cell.num_states == 2 else arrays[0]

    def forward(self, x, state=None, lengths=None):
        """x (T, B, D) [(B, T, D) if batch_first] -> (output, state_n).

        ``lengths`` (B,): sequence b has lengths[b] real steps; the rest is
        padding, as with ``pack_padded_sequence(..., enforce_sorted=False)``:
        outputs there are 0 (the output keeps T steps), state_n is taken at
        each sequence's last real step and the reverse direction starts there.
        """
        legend = "(B, T, D)" if self.batch_first else "(T, B, D)"
        x = check_array(f"x {legend}", x, (None, None, self.input_size), self.dtype)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, _ = x.shape
        states = self._check_state(state, B)
        lengths = check_lengths(lengths, T, B)
        finals = [np.empty(self._state_shape(B), self.dtype) for _ in states]
        cell = self.cell
        if self.training and self.recurrent_dropout > 0:
            cell = variational_cell(self.kind, self.recurrent_dropout,
                                    self.dropout_rng)
        caches, masks = [], []
        inp = x
        for layer in range(self.num_layers):
            k = layer * self.num_directions
            s_f = tuple(s[k] for s in states)
            if self.bidirectional:
                s_b = tuple(s[k + 1] for s in states)
                inp, n_f, n_b, cache = bidirectional_forward(
                    cell, inp, s_f, s_b, self._weights(layer, 0),
                    self._weights(layer, 1), lengths, **self.options)
                for j, f in enumerate(finals):
                    f[k], f[k + 1] = n_f[j], n_b[j]
            else:
                inp, n_f, cache = cell.forward(
                    inp, s_f, self._weights(layer, 0), lengths, False,
                    **self.options)
                for j, f in enumerate(finals):
                    f[k] = n_f[j]
            caches.append(cache)
            if layer < self.num_layers - 1:        # dropout between layers
                mask = None
                if self.training and self.dropout > 0:
                    mask = dropout_mask(inp.shape, self.dropout,
                                        self.dropout_rng, self.dtype)
                    inp = inp * mask
                masks.append(mask)
        self._cache = (caches, x.shape, masks, cell)
        out = inp.transpose(1, 0, 2) if self.batch_first else inp
        return out, self._pack_state(finals)

    __call__ = forward

    def backward(self, d_output, d_state=None):
        """Gradients of the last forward call.

        d_output has the output's shape; d_state the state's (``None``:
        zeros; for an LSTM a tuple (dh_n, dc_n) whose entries may be None).
        Returns (dx, d_state0) and overwrites ``self.grads``.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() call first")
        caches, (T, B, D), masks, cell = self._cache
        H, nd = self.hidden_size, self.num_directions
        legend = (B, T, nd * H) if self.batch_first else (T, B, nd * H)
        d_out = None
        if d_output is not None:
            d_out = check_array("d_output", d_output, legend, self.dtype)
            if self.batch_first:
                d_out = d_out.transpose(1, 0, 2)
        d_final = self._check_d_state(d_state, B)
        d_init = [np.empty(self._state_shape(B), self.dtype) for _ in d_final]
        for layer in reversed(range(self.num_layers)):
            k = layer * nd
            if layer < self.num_layers - 1 and masks[layer] is not None:
                d_out = d_out * masks[layer]        # through the dropout
            ds_f = tuple(None if d is None else d[k] for d in d_final)
            if self.bidirectional:
                ds_b = tuple(None if d is None else d[k + 1] for d in d_final)
                d_out, d0_f, d0_b, dw_f, dw_b = bidirectional_backward(
                    d_out, ds_f, ds_b, caches[layer])
                self._store(layer, 0, dw_f)
                self._store(layer, 1, dw_b)
                for j, d in enumerate(d_init):
                    d[k], d[k + 1] = d0_f[j], d0_b[j]
            else:
                d_out, d0_f, dw_f = cell.backward(d_out, ds_f, caches[layer])
                self._store(layer, 0, dw_f)
                for j, d in enumerate(d_init):
                    d[k] = d0_f[j]
        dx = d_out.transpose(1, 0, 2) if self.batch_first else d_out
        return dx, self._pack_state(d_init)

    def masks(self):
        """The dropout masks between layers drawn by the last forward call:
        ``num_layers - 1`` entries, each (T, B, num_directions * H)
        (time-major) or None where no dropout was applied."""
        if self._cache is None:
            raise RuntimeError("masks() needs a forward() call first")
        return list(self._cache[2])

    def recurrent_masks(self):
        """The recurrent-dropout masks of the last forward call: for each
        layer, one ``(mask_x (B, D), mask_h (B, H))`` per direction, or None
        where there was no recurrent dropout."""
        if self._cache is None:
            raise RuntimeError("recurrent_masks() needs a forward() call first")
        result = []
        for cache in self._cache[0]:
            parts = ((cache.cache_f, cache.cache_b)
                     if isinstance(cache, BidirectionalCache) else (cache,))
            result.append([(c.mask_x, c.mask_h) if isinstance(c, VariationalCache)
                           else None for c in parts])
        return result

    def _check_d_state(self, d_state, B):
        n = self.cell.num_states
        if d_state is None:
            return (None,) * n
        if n == 2:
            if not isinstance(d_state, tuple) or len(d_state) != 2:
                raise ValueError("d_state: expected a tuple (dh_n, dc_n) for an "
                                 f"LSTM, received {type(d_state).__name__}")
            parts = d_state
        else:
            parts = (d_state,)
        shape = self._state_shape(B)
        return tuple(None if p is None else check_array(f"d_state[{j}]", p, shape, self.dtype)
                     for j, p in enumerate(parts))

    def _store(self, layer, direction, dws):
        """Gradients in the cell's ``weights`` order -> ``self.grads``."""
        for name, g in zip(self._weight_names[layer, direction], dws):
            if name in self.params:
                self.grads[name] = g

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        for name in ("dropout", "recurrent_dropout"):
            if getattr(self, name):
                extra += f", {name}={getattr(self, name)!r}"
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, bidirectional={self.bidirectional}"
                f"{extra}, dtype={self.dtype}, backend={self.backend!r})")


class RNN(RecurrentLayer):
    """Elman RNN layer (``torch.nn.RNN``); ``nonlinearity`` is "tanh" or "relu"."""

    kind = "rnn"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh",
                 bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                 *, recurrent_dropout=0.0, rng=None, dropout_rng=None,
                 dtype=np.float64, backend="numpy"):
        check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, recurrent_dropout=recurrent_dropout,
                         rng=rng, dropout_rng=dropout_rng, dtype=dtype,
                         backend=backend, nonlinearity=nonlinearity)

    @property
    def nonlinearity(self):
        return self.options["nonlinearity"]


class LSTM(RecurrentLayer):
    """LSTM layer (``torch.nn.LSTM``, without ``proj_size``); state is (h, c)."""

    kind = "lstm"


class GRU(RecurrentLayer):
    """GRU layer (``torch.nn.GRU``), reset gate applied after the matmul.
    No ``recurrent_dropout``: its new state z * h_{t-1} + (1 - z) * n uses
    h_{t-1} outside the matmuls, where the mask does not belong."""

    kind = "gru"


class PeepholeLSTM(RecurrentLayer):
    """LSTM with peephole connections (:mod:`lstmlib.peephole`); state is
    (h, c). PyTorch has no such layer, so there is no ``from_torch`` for it."""

    kind = "peephole_lstm"
