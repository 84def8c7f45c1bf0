r"""The Elman recurrent network (Elman 1990), PyTorch's ``nn.RNN``.

.. math::

    h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

with :math:`\phi` = tanh (default) or ReLU. Shapes: x_t (B, D), h_t (B, H),
W_ih (H, D), W_hh (H, H), b_ih and b_hh (H,). A sequence x is (T, B, D).
"""

from collections import namedtuple

import numpy as np

from . import _sequence as seq
from .cells import CellType

NONLINEARITIES = ("tanh", "relu")

RNNStepCache = namedtuple(
    "RNNStepCache", "x h_prev h w_ih w_hh nonlinearity has_bias")
RNNStepGrads = namedtuple("RNNStepGrads", "dx dh_prev dw_ih dw_hh db_ih db_hh")
RNNCache = namedtuple(
    "RNNCache", "x h0 states mask w_ih w_hh nonlinearity has_bias reverse")
RNNGrads = namedtuple("RNNGrads", "dx dh0 dw_ih dw_hh db_ih db_hh")


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected one of {NONLINEARITIES}, "
                         f"received {nonlinearity!r}")


def _activation_grad(dh, h, nonlinearity):
    """Backprop through phi, written in terms of its output h."""
    if nonlinearity == "tanh":
        return dh * (1.0 - h * h)          # tanh'(a) = 1 - tanh(a)^2
    return dh * (h > 0)                    # relu'(a) = 1 where a > 0


def rnn_step_forward(x, h_prev, w_ih, w_hh, b_ih=None, b_hh=None,
                     nonlinearity="tanh"):
    """One step: ``h = phi(x W_ih^T + b_ih + h_prev W_hh^T + b_hh)``.

    x (B, D), h_prev (B, H) -> h (B, H), cache.
    """
    _check_nonlinearity(nonlinearity)
    seq.check_step_inputs(x, {"h_prev": h_prev}, (w_ih, w_hh, b_ih, b_hh), 1)
    a = x @ w_ih.T + h_prev @ w_hh.T
    if b_ih is not None:
        a += b_ih + b_hh
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    cache = RNNStepCache(x, h_prev, h, w_ih, w_hh, nonlinearity,
                         b_ih is not None)
    return h, cache


def rnn_step_backward(dh, cache):
    """Gradients of one step given dL/dh (B, H)."""
    x, h_prev, h, w_ih, w_hh, nonlinearity, has_bias = cache
    seq.check_grad("dh", dh, h.shape, h.dtype)
    da = _activation_grad(dh, h, nonlinearity)      # backprop through phi
    dx = da @ w_ih                                  # a = x W_ih^T + ...
    dh_prev = da @ w_hh                             # ... + h_prev W_hh^T
    dw_ih = da.T @ x
    dw_hh = da.T @ h_prev
    db = da.sum(axis=0) if has_bias else None
    db_hh = None if db is None else db.copy()     # both biases get da
    return RNNStepGrads(dx, dh_prev, dw_ih, dw_hh, db, db_hh)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                lengths=None, reverse=False):
    """Run the RNN over a sequence.

    x (T, B, D), h0 (B, H) -> out (T, B, H), h_n (B, H), cache.
    ``lengths`` (B,) marks steps t >= lengths[b] as padding: their output is
    0 and the state passes through unchanged, so h_n is the state at each
    sequence's last real step. ``reverse`` walks t = T-1, ..., 0.
    """
    _check_nonlinearity(nonlinearity)
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0}, (w_ih, w_hh, b_ih, b_hh), 1, lengths)
    states = seq.input_projection(x, w_ih, b_ih, b_hh)   # becomes h_t in place
    w_hh_t = np.ascontiguousarray(w_hh.T)        # BLAS runs faster on a copy
    h = h0
    for t in seq.time_steps(T, reverse):
        a = states[t]
        a += h @ w_hh_t
        if nonlinearity == "tanh":
            np.tanh(a, out=a)
        else:
            np.maximum(a, 0, out=a)
        if mask is not None:                       # padding keeps the state
            a *= mask[t]
            a += (1 - mask[t]) * h
        h = a
    out = states if mask is None else states * mask
    cache = RNNCache(x, h0, states, mask, w_ih, w_hh, nonlinearity,
                     b_ih is not None, reverse)
    return out, h.copy(), cache


def rnn_backward(d_out, dh_n, cache):
    """Backpropagation through time.

    d_out (T, B, H) and dh_n (B, H) (either may be None) -> RNNGrads.
    """
    x, h0, states, mask, w_ih, w_hh, nonlinearity, has_bias, reverse = cache
    T, B, H = states.shape
    d_out = seq.check_grad("d_out", d_out, states.shape, states.dtype)
    dh = seq.check_grad("dh_n", dh_n, (B, H), states.dtype).copy()
    da_all = np.empty_like(states)
    for t in reversed(seq.time_steps(T, reverse)):
        dh_t = dh + d_out[t] if mask is None else dh + d_out[t] * mask[t]
        da = _activation_grad(dh_t, states[t], nonlinearity)
        if mask is not None:                       # padding: passes by
            da *= mask[t]
            dh = da @ w_hh + (1 - mask[t]) * dh_t
        else:
            dh = da @ w_hh                          # dh_next for step t-1
        da_all[t] = da
    h_prev = seq.previous_states(states, h0, reverse)
    dx, dw_ih, dw_hh, db_ih, db_hh = seq.weight_gradients(
        da_all, da_all, x, h_prev, w_ih, has_bias)
    return RNNGrads(dx, dh, dw_ih, dw_hh, db_ih, db_hh)


def _cell_forward(x, state, weights, lengths=None, reverse=False,
                  nonlinearity="tanh"):
    out, h_n, cache = rnn_forward(x, state[0], *weights,
                                  nonlinearity=nonlinearity,
                                  lengths=lengths, reverse=reverse)
    return out, (h_n,), cache


def _cell_backward(d_out, d_state_n, cache):
    g = rnn_backward(d_out, d_state_n[0], cache)
    return g.dx, (g.dh0,), (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)


RNN_CELL = CellType("rnn", 1, 1, _cell_forward, _cell_backward)
