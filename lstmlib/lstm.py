r"""Long short-term memory (Hochreiter & Schmidhuber 1997), ``nn.LSTM``.

.. math::

    \begin{aligned}
    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
    g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
    h_t &= o_t \odot \tanh(c_t)
    \end{aligned}

:math:`\sigma` is the logistic sigmoid. The four gates are stacked in the
order i, f, g, o: W_ih (4H, D) = [W_ii; W_if; W_ig; W_io], W_hh (4H, H),
b_ih and b_hh (4H,). Shapes: x_t (B, D), h_t and c_t (B, H); a sequence x
is (T, B, D).

The sequence functions are the step functions in a loop over time, nothing
more: they are the oracle every faster backend (``lstmlib.kernels``) is
checked against.
"""

from collections import namedtuple

import numpy as np

from . import _sequence as seq
from .activations import sigmoid
from .cells import CellType

LSTMStepCache = namedtuple(
    "LSTMStepCache", "x h_prev c_prev i f g o c tanh_c w_ih w_hh has_bias")
LSTMStepCache.__doc__ = """What one step's backward pass needs: its inputs
x (B, D), h_prev and c_prev (B, H); the gate activations i, f, g, o, the new
cell state c and tanh(c) (B, H each); the weights; whether there are
biases."""
LSTMStepGrads = namedtuple(
    "LSTMStepGrads", "dx dh_prev dc_prev dw_ih dw_hh db_ih db_hh")


class LSTMCache(namedtuple(
        "LSTMCache",
        "x h0 c0 gates hs cs tanh_cs mask w_ih w_hh has_bias reverse")):
    """What lstm_backward needs, for every step t:
    x (T, B, D) the inputs, h0 and c0 (B, H) the initial states,
    gates (T, B, 4H) the activations [i, f, g, o] of step t,
    hs and cs (T, B, H) the states h_t and c_t step t left,
    tanh_cs (T, B, H) tanh of step t's new cell state,
    mask (T, B, 1) 1 on real steps and 0 on padding (None without lengths),
    the weights w_ih, w_hh, has_bias, and reverse (the direction walked).

    Build it by keyword, or from the steps' caches with :meth:`from_steps`.
    """

    __slots__ = ()

    @classmethod
    def from_steps(cls, x, h0, c0, steps):
        """The cache of a forward walk t = 0, ..., T-1 without padding, from
        its T step caches (``steps[t]``, an LSTMStepCache, for step t)."""
        first = steps[0]
        return cls(
            x=x, h0=h0, c0=c0,
            gates=np.stack([np.concatenate([s.i, s.f, s.g, s.o], axis=1)
                            for s in steps]),
            hs=np.stack([s.o * s.tanh_c for s in steps]),      # h = o tanh(c)
            cs=np.stack([s.c for s in steps]),
            tanh_cs=np.stack([s.tanh_c for s in steps]),
            mask=None, w_ih=first.w_ih, w_hh=first.w_hh,
            has_bias=first.has_bias, reverse=False)


LSTMGrads = namedtuple("LSTMGrads", "dx dh0 dc0 dw_ih dw_hh db_ih db_hh")


def lstm_step_forward(x, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None, *,
                      check=True):
    """One step of the LSTM.

    Inputs: x (B, D), h_prev and c_prev (B, H), w_ih (4H, D), w_hh (4H, H),
    b_ih and b_hh (4H,) or both None.
    Returns ``(h, c), cache``: h and c (B, H), cache an LSTMStepCache.

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        seq.check_step_inputs(x, {"h_prev": h_prev, "c_prev": c_prev},
                              (w_ih, w_hh, b_ih, b_hh), 4)
    H = h_prev.shape[1]
    a = x @ w_ih.T                                 # (B, 4H) pre-activations:
    if b_ih is not None:                           # input part and biases,
        a += b_ih + b_hh
    a += h_prev @ w_hh.T                           # then the recurrent part
    i = sigmoid(a[:, 0 * H:1 * H])                 # input gate
    f = sigmoid(a[:, 1 * H:2 * H])                 # forget gate
    g = np.tanh(a[:, 2 * H:3 * H])                 # candidate
    o = sigmoid(a[:, 3 * H:4 * H])                 # output gate
    c = f * c_prev + i * g                         # new cell state
    tanh_c = np.tanh(c)
    h = o * tanh_c                                 # new hidden state
    cache = LSTMStepCache(x=x, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g,
                          o=o, c=c, tanh_c=tanh_c, w_ih=w_ih, w_hh=w_hh,
                          has_bias=b_ih is not None)
    return (h, c), cache


def lstm_step_backward(dh, dc, cache, *, check=True):
    """Backward pass of one step.

    Inputs: dh and dc (B, H), the gradients of the loss with respect to the
    step's h and c (None: zeros); cache, the step's LSTMStepCache.
    Returns LSTMStepGrads: dx (B, D), dh_prev and dc_prev (B, H), dw_ih
    (4H, D), dw_hh (4H, H), db_ih and db_hh (4H,) (None without biases).

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        dh = seq.check_grad("dh", dh, cache.c.shape, cache.c.dtype)
        dc = seq.check_grad("dc", dc, cache.c.shape, cache.c.dtype)
    x, h_prev, c_prev = cache.x, cache.h_prev, cache.c_prev
    i, f, g, o, tanh_c = cache.i, cache.f, cache.g, cache.o, cache.tanh_c
    do = dh * tanh_c                                # h = o * tanh(c)
    dc = dc + dh * o * (1.0 - tanh_c ** 2)          # through tanh(c)
    di = dc * g                                     # c = f*c_prev + i*g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f
    da = np.concatenate([di * i * (1.0 - i),        # through the sigmoids
                         df * f * (1.0 - f),
                         dg * (1.0 - g ** 2),       # through tanh
                         do * o * (1.0 - o)], axis=1)
    dx = da @ cache.w_ih                            # a = x W_ih^T + ...
    dh_prev = da @ cache.w_hh                       # ... + h_prev W_hh^T
    dw_ih = da.T @ x
    dw_hh = da.T @ h_prev
    db_ih = da.sum(axis=0) if cache.has_bias else None
    db_hh = None if db_ih is None else db_ih.copy()   # both biases get da
    return LSTMStepGrads(dx=dx, dh_prev=dh_prev, dc_prev=dc_prev, dw_ih=dw_ih,
                         dw_hh=dw_hh, db_ih=db_ih, db_hh=db_hh)


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                 reverse=False):
    """Run the LSTM over a sequence: the step, once per time step.

    Inputs: x (T, B, D), h0 and c0 (B, H), weights as in
    :func:`lstm_step_forward`; ``lengths`` (B,) marks steps t >= lengths[b]
    as padding (output 0, state unchanged); ``reverse`` walks t = T-1, ..., 0.
    Returns ``out, (h_n, c_n), cache``: out (T, B, H), h_n and c_n (B, H),
    cache an LSTMCache.
    """
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0, "c0": c0}, (w_ih, w_hh, b_ih, b_hh), 4, lengths)
    gates = np.empty((T, B, 4 * H), x.dtype)
    hs = np.empty((T, B, H), x.dtype)
    cs = np.empty_like(hs)
    tanh_cs = np.empty_like(hs)
    h, c = h0, c0
    for t in seq.time_steps(T, reverse):
        (h_t, c_t), step = lstm_step_forward(x[t], h, c, w_ih, w_hh, b_ih,
                                             b_hh, check=False)
        if mask is not None:                       # padding keeps the state
            h_t = mask[t] * h_t + (1 - mask[t]) * h
            c_t = mask[t] * c_t + (1 - mask[t]) * c
        gates[t] = np.concatenate([step.i, step.f, step.g, step.o], axis=1)
        hs[t], cs[t], tanh_cs[t] = h_t, c_t, step.tanh_c
        h, c = h_t, c_t
    out = hs if mask is None else hs * mask
    cache = LSTMCache(x=x, h0=h0, c0=c0, gates=gates, hs=hs, cs=cs,
                      tanh_cs=tanh_cs, mask=mask, w_ih=w_ih, w_hh=w_hh,
                      has_bias=b_ih is not None, reverse=reverse)
    return out, (h.copy(), c.copy()), cache


def step_cache(cache, t):
    """The LSTMStepCache of step t, rebuilt from a sequence's LSTMCache."""
    H = cache.hs.shape[2]
    h_prev = seq.previous_state(cache.hs, cache.h0, t, cache.reverse)
    c_prev = seq.previous_state(cache.cs, cache.c0, t, cache.reverse)
    a = cache.gates[t]
    return LSTMStepCache(
        x=cache.x[t], h_prev=h_prev, c_prev=c_prev, i=a[:, :H],
        f=a[:, H:2 * H], g=a[:, 2 * H:3 * H], o=a[:, 3 * H:],
        c=cache.cs[t], tanh_c=cache.tanh_cs[t], w_ih=cache.w_ih,
        w_hh=cache.w_hh, has_bias=cache.has_bias)


def lstm_backward(d_out, dh_n, dc_n, cache):
    """Backpropagation through time: the step's backward pass, from the last
    step computed to the first, carrying dh and dc.

    Inputs: d_out (T, B, H), dh_n and dc_n (B, H) (any may be None: zeros),
    cache, the LSTMCache of :func:`lstm_forward`.
    Returns LSTMGrads: dx (T, B, D), dh0 and dc0 (B, H), dw_ih (4H, D),
    dw_hh (4H, H), db_ih and db_hh (4H,) (None without biases).
    """
    T, B, H = cache.hs.shape
    dt = cache.hs.dtype
    d_out = seq.check_grad("d_out", d_out, (T, B, H), dt)
    dh = seq.check_grad("dh_n", dh_n, (B, H), dt)
    dc = seq.check_grad("dc_n", dc_n, (B, H), dt)
    dx = np.empty_like(cache.x)
    sums = seq.GradientSums(cache.w_ih, cache.w_hh, cache.has_bias)
    for t in reversed(seq.time_steps(T, cache.reverse)):
        m = 1 if cache.mask is None else cache.mask[t]
        dh_t = dh + d_out[t] * m                    # from above and from t+1
        g = lstm_step_backward(dh_t * m, dc * m, step_cache(cache, t),
                               check=False)
        dh = g.dh_prev + (1 - m) * dh_t             # padding: passes by
        dc = g.dc_prev + (1 - m) * dc
        dx[t] = g.dx
        sums.add(g)
    return LSTMGrads(dx, dh, dc, *sums.totals())


def _cell_forward(x, state, weights, lengths=None, reverse=False):
    out, (h_n, c_n), cache = lstm_forward(x, state[0], state[1], *weights,
                                          lengths=lengths, reverse=reverse)
    return out, (h_n, c_n), cache


def _cell_backward(d_out, d_state_n, cache):
    g = lstm_backward(d_out, d_state_n[0], d_state_n[1], cache)
    return g.dx, (g.dh0, g.dc0), (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)


CELL = CellType("lstm", 4, 2, _cell_forward, _cell_backward)
LSTM_CELL = CELL    # the name tests and notebooks import
