r"""The Elman recurrent network (Elman 1990), PyTorch's ``nn.RNN``.

.. math::

    h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

with :math:`\phi` = tanh (default) or ReLU. Shapes: x_t (B, D), h_t (B, H),
W_ih (H, D), W_hh (H, H), b_ih and b_hh (H,). A sequence x is (T, B, D).

The sequence functions are the step functions in a loop over time: the
oracle of the faster backends (``lstmlib.kernels``).
"""

from collections import namedtuple

import numpy as np

from . import _sequence as seq
from .cells import CellType

NONLINEARITIES = ("tanh", "relu")

RNNStepCache = namedtuple(
    "RNNStepCache", "x h_prev h w_ih w_hh nonlinearity has_bias")
RNNStepCache.__doc__ = """What one step's backward pass needs: x (B, D),
h_prev (B, H), the new state h = phi(a) (B, H), the weights, the
nonlinearity's name and whether there are biases."""
RNNStepGrads = namedtuple("RNNStepGrads", "dx dh_prev dw_ih dw_hh db_ih db_hh")


class RNNCache(namedtuple(
        "RNNCache", "x h0 hs mask w_ih w_hh nonlinearity has_bias reverse")):
    """What rnn_backward needs, for every step t:
    x (T, B, D) the inputs, h0 (B, H) the initial state,
    hs (T, B, H) the state h_t step t left,
    mask (T, B, 1) 1 on real steps and 0 on padding (None without lengths),
    the weights w_ih, w_hh, the nonlinearity, has_bias, and reverse (the
    direction walked)."""

    __slots__ = ()


RNNGrads = namedtuple("RNNGrads", "dx dh0 dw_ih dw_hh db_ih db_hh")


def check_nonlinearity(nonlinearity):
    """Refuse anything but the names in NONLINEARITIES (the one place that
    checks it: layers, kernels and the step functions call this)."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected one of {NONLINEARITIES}, "
                         f"received {nonlinearity!r}")
    return nonlinearity


def rnn_step_forward(x, h_prev, w_ih, w_hh, b_ih=None, b_hh=None,
                     nonlinearity="tanh", *, check=True):
    """One step: ``h = phi(x W_ih^T + b_ih + h_prev W_hh^T + b_hh)``.

    Inputs: x (B, D), h_prev (B, H), w_ih (H, D), w_hh (H, H), b_ih and b_hh
    (H,) or both None, nonlinearity "tanh" or "relu".
    Returns ``h, cache``: h (B, H), cache an RNNStepCache.

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        check_nonlinearity(nonlinearity)
        seq.check_step_inputs(x, {"h_prev": h_prev},
                              (w_ih, w_hh, b_ih, b_hh), 1)
    a = x @ w_ih.T + h_prev @ w_hh.T               # (B, H) pre-activation
    if b_ih is not None:
        a += b_ih + b_hh
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    cache = RNNStepCache(x=x, h_prev=h_prev, h=h, w_ih=w_ih, w_hh=w_hh,
                         nonlinearity=nonlinearity, has_bias=b_ih is not None)
    return h, cache


def rnn_step_backward(dh, cache, *, check=True):
    """Backward pass of one step.

    Inputs: dh (B, H), the gradient of the loss with respect to the step's h
    (None: zeros); cache, the step's RNNStepCache.
    Returns RNNStepGrads: dx (B, D), dh_prev (B, H), dw_ih (H, D), dw_hh
    (H, H), db_ih and db_hh (H,) (None without biases).

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        dh = seq.check_grad("dh", dh, cache.h.shape, cache.h.dtype)
    h = cache.h
    if cache.nonlinearity == "tanh":
        da = dh * (1.0 - h * h)                     # tanh'(a) = 1 - tanh(a)^2
    else:
        da = dh * (h > 0)                           # relu'(a) = 1 where a > 0
    dx = da @ cache.w_ih                            # a = x W_ih^T + ...
    dh_prev = da @ cache.w_hh                       # ... + h_prev W_hh^T
    dw_ih = da.T @ cache.x
    dw_hh = da.T @ cache.h_prev
    db_ih = da.sum(axis=0) if cache.has_bias else None
    db_hh = None if db_ih is None else db_ih.copy()   # both biases get da
    return RNNStepGrads(dx=dx, dh_prev=dh_prev, dw_ih=dw_ih, dw_hh=dw_hh,
                        db_ih=db_ih, db_hh=db_hh)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                lengths=None, reverse=False):
    """Run the RNN over a sequence: the step, once per time step.

    Inputs: x (T, B, D), h0 (B, H), weights and nonlinearity as in
    :func:`rnn_step_forward`. ``lengths`` (B,) marks steps t >= lengths[b]
    as padding: their output is 0 and the state passes through unchanged, so
    h_n is the state at each sequence's last real step. ``reverse`` walks
    t = T-1, ..., 0.
    Returns ``out, h_n, cache``: out (T, B, H), h_n (B, H), cache an
    RNNCache.
    """
    check_nonlinearity(nonlinearity)
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0}, (w_ih, w_hh, b_ih, b_hh), 1, lengths)
    hs = np.empty((T, B, H), x.dtype)
    h = h0
    for t in seq.time_steps(T, reverse):
        h_t, _ = rnn_step_forward(x[t], h, w_ih, w_hh, b_ih, b_hh,
                                  nonlinearity, check=False)
        if mask is not None:                       # padding keeps the state
            h_t = mask[t] * h_t + (1 - mask[t]) * h
        hs[t] = h_t
        h = h_t
    out = hs if mask is None else hs * mask
    cache = RNNCache(x=x, h0=h0, hs=hs, mask=mask, w_ih=w_ih, w_hh=w_hh,
                     nonlinearity=nonlinearity, has_bias=b_ih is not None,
                     reverse=reverse)
    return out, h.copy(), cache


def step_cache(cache, t):
    """The RNNStepCache of step t, rebuilt from a sequence's RNNCache."""
    return RNNStepCache(
        x=cache.x[t], h_prev=seq.previous_state(cache.hs, cache.h0, t,
                                                cache.reverse),
        h=cache.hs[t], w_ih=cache.w_ih, w_hh=cache.w_hh,
        nonlinearity=cache.nonlinearity, has_bias=cache.has_bias)


def rnn_backward(d_out, dh_n, cache):
    """Backpropagation through time: the step's backward pass, from the last
    step computed to the first, carrying dh.

    Inputs: d_out (T, B, H) and dh_n (B, H) (either may be None: zeros),
    cache, the RNNCache of :func:`rnn_forward`.
    Returns RNNGrads: dx (T, B, D), dh0 (B, H), dw_ih (H, D), dw_hh (H, H),
    db_ih and db_hh (H,) (None without biases).
    """
    T, B, H = cache.hs.shape
    dt = cache.hs.dtype
    d_out = seq.check_grad("d_out", d_out, (T, B, H), dt)
    dh = seq.check_grad("dh_n", dh_n, (B, H), dt)
    dx = np.empty_like(cache.x)
    sums = seq.GradientSums(cache.w_ih, cache.w_hh, cache.has_bias)
    for t in reversed(seq.time_steps(T, cache.reverse)):
        m = 1 if cache.mask is None else cache.mask[t]
        dh_t = dh + d_out[t] * m                    # from above and from t+1
        g = rnn_step_backward(dh_t * m, step_cache(cache, t), check=False)
        dh = g.dh_prev + (1 - m) * dh_t             # padding: passes by
        dx[t] = g.dx
        sums.add(g)
    return RNNGrads(dx, dh, *sums.totals())


def _cell_forward(x, state, weights, lengths=None, reverse=False,
                  nonlinearity="tanh"):
    out, h_n, cache = rnn_forward(x, state[0], *weights,
                                  nonlinearity=nonlinearity,
                                  lengths=lengths, reverse=reverse)
    return out, (h_n,), cache


def _cell_backward(d_out, d_state_n, cache):
    g = rnn_backward(d_out, d_state_n[0], cache)
    return g.dx, (g.dh0,), (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)


CELL = CellType("rnn", 1, 1, _cell_forward, _cell_backward)
RNN_CELL = CELL    # the name tests and notebooks import
