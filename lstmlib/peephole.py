r"""LSTM with peephole connections (Gers & Schmidhuber 2000).

The input and forget gates look at the previous cell state, the output gate
at the new one, through diagonal weights w_ci, w_cf, w_co (one per unit):

.. math::

    \begin{aligned}
    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}
                  + w_{ci} \odot c_{t-1}) \\
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}
                  + w_{cf} \odot c_{t-1}) \\
    g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}
                  + w_{co} \odot c_t) \\
    h_t &= o_t \odot \tanh(c_t)
    \end{aligned}

Parameters: PyTorch's four LSTM parameters (gates stacked i, f, g, o;
W_ih (4H, D), W_hh (4H, H), b_ih and b_hh (4H,)) and ``w_ch`` (3, H), whose
rows are w_ci, w_cf, w_co. Shapes: x_t (B, D), h_t and c_t (B, H); a
sequence x is (T, B, D). PyTorch has no peephole LSTM: the tests check this
module against torch autograd of the same equations written in torch ops.

Registered in :data:`lstmlib.cells.CELL_TYPES` as ``"peephole_lstm"``; the
layer is :class:`lstmlib.layers.PeepholeLSTM`.
"""

from collections import namedtuple

import numpy as np

from . import _sequence as seq
from ._validation import check_array
from .activations import sigmoid
from .cells import CellType

PeepholeStepCache = namedtuple(
    "PeepholeStepCache",
    "x h_prev c_prev i f g o c tanh_c w_ih w_hh w_ch has_bias")
PeepholeStepGrads = namedtuple(
    "PeepholeStepGrads", "dx dh_prev dc_prev dw_ih dw_hh db_ih db_hh dw_ch")
PeepholeCache = namedtuple(
    "PeepholeCache",
    "x h0 c0 gates hs cs tanh_cs mask w_ih w_hh w_ch has_bias reverse")
PeepholeCache.__doc__ = """As :class:`lstmlib.lstm.LSTMCache`, plus w_ch
(3, H), the peephole weights."""
PeepholeGrads = namedtuple(
    "PeepholeGrads", "dx dh0 dc0 dw_ih dw_hh db_ih db_hh dw_ch")


def _check_peepholes(w_ch, w_hh):
    H = w_hh.shape[1]
    return check_array("w_ch", w_ch, (3, H), w_hh.dtype)


def peephole_step_forward(x, h_prev, c_prev, w_ih, w_hh, b_ih, b_hh, w_ch, *,
                          check=True):
    """One step.

    Inputs: x (B, D), h_prev and c_prev (B, H), w_ih (4H, D), w_hh (4H, H),
    b_ih and b_hh (4H,) or both None, w_ch (3, H).
    Returns ``(h, c), cache``: h and c (B, H), cache a PeepholeStepCache.

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        seq.check_step_inputs(x, {"h_prev": h_prev, "c_prev": c_prev},
                              (w_ih, w_hh, b_ih, b_hh), 4)
        _check_peepholes(w_ch, w_hh)
    H = h_prev.shape[1]
    w_ci, w_cf, w_co = w_ch                        # (H,) each
    a = x @ w_ih.T + h_prev @ w_hh.T               # (B, 4H) pre-activations
    if b_ih is not None:
        a += b_ih + b_hh
    i = sigmoid(a[:, 0 * H:1 * H] + w_ci * c_prev)  # input gate
    f = sigmoid(a[:, 1 * H:2 * H] + w_cf * c_prev)  # forget gate
    g = np.tanh(a[:, 2 * H:3 * H])                 # candidate
    c = f * c_prev + i * g                         # new cell state
    o = sigmoid(a[:, 3 * H:4 * H] + w_co * c)      # output gate sees c_t
    tanh_c = np.tanh(c)
    h = o * tanh_c                                 # new hidden state
    cache = PeepholeStepCache(x=x, h_prev=h_prev, c_prev=c_prev, i=i, f=f,
                              g=g, o=o, c=c, tanh_c=tanh_c, w_ih=w_ih,
                              w_hh=w_hh, w_ch=w_ch, has_bias=b_ih is not None)
    return (h, c), cache


def peephole_step_backward(dh, dc, cache, *, check=True):
    """Backward pass of one step.

    Inputs: dh and dc (B, H) (None: zeros), the step's PeepholeStepCache.
    Returns PeepholeStepGrads: as LSTMStepGrads plus dw_ch (3, H).

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        dh = seq.check_grad("dh", dh, cache.c.shape, cache.c.dtype)
        dc = seq.check_grad("dc", dc, cache.c.shape, cache.c.dtype)
    x, h_prev, c_prev, c = cache.x, cache.h_prev, cache.c_prev, cache.c
    i, f, g, o, tanh_c = cache.i, cache.f, cache.g, cache.o, cache.tanh_c
    w_ci, w_cf, w_co = cache.w_ch
    da_o = dh * tanh_c * o * (1.0 - o)              # h = o * tanh(c)
    dc = dc + dh * o * (1.0 - tanh_c ** 2)          # through tanh(c)
    dc = dc + da_o * w_co                           # through o's peephole
    da_i = dc * g * i * (1.0 - i)                   # c = f*c_prev + i*g
    da_f = dc * c_prev * f * (1.0 - f)
    da_g = dc * i * (1.0 - g ** 2)
    dc_prev = dc * f + da_i * w_ci + da_f * w_cf    # directly and via i, f
    dw_ch = np.stack([(da_i * c_prev).sum(axis=0),
                      (da_f * c_prev).sum(axis=0),
                      (da_o * c).sum(axis=0)])
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
    dx = da @ cache.w_ih                            # a = x W_ih^T + ...
    dh_prev = da @ cache.w_hh                       # ... + h_prev W_hh^T
    dw_ih = da.T @ x
    dw_hh = da.T @ h_prev
    db_ih = da.sum(axis=0) if cache.has_bias else None
    db_hh = None if db_ih is None else db_ih.copy()   # both biases get da
    return PeepholeStepGrads(dx=dx, dh_prev=dh_prev, dc_prev=dc_prev,
                             dw_ih=dw_ih, dw_hh=dw_hh, db_ih=db_ih,
                             db_hh=db_hh, dw_ch=dw_ch)


def peephole_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_ch, lengths=None,
                     reverse=False):
    """Run the peephole LSTM over a sequence: the step, once per time step.

    Inputs: x (T, B, D), h0 and c0 (B, H), weights as in
    :func:`peephole_step_forward`; ``lengths`` and ``reverse`` as in
    :func:`lstmlib.lstm.lstm_forward`.
    Returns ``out, (h_n, c_n), cache``: out (T, B, H), h_n and c_n (B, H),
    cache a PeepholeCache.
    """
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0, "c0": c0}, (w_ih, w_hh, b_ih, b_hh), 4, lengths)
    _check_peepholes(w_ch, w_hh)
    gates = np.empty((T, B, 4 * H), x.dtype)
    hs = np.empty((T, B, H), x.dtype)
    cs = np.empty_like(hs)
    tanh_cs = np.empty_like(hs)
    h, c = h0, c0
    for t in seq.time_steps(T, reverse):
        (h_t, c_t), step = peephole_step_forward(
            x[t], h, c, w_ih, w_hh, b_ih, b_hh, w_ch, check=False)
        if mask is not None:                       # padding keeps the state
            h_t = mask[t] * h_t + (1 - mask[t]) * h
            c_t = mask[t] * c_t + (1 - mask[t]) * c
        gates[t] = np.concatenate([step.i, step.f, step.g, step.o], axis=1)
        hs[t], cs[t], tanh_cs[t] = h_t, c_t, step.tanh_c
        h, c = h_t, c_t
    out = hs if mask is None else hs * mask
    cache = PeepholeCache(x=x, h0=h0, c0=c0, gates=gates, hs=hs, cs=cs,
                          tanh_cs=tanh_cs, mask=mask, w_ih=w_ih, w_hh=w_hh,
                          w_ch=w_ch, has_bias=b_ih is not None,
                          reverse=reverse)
    return out, (h.copy(), c.copy()), cache


def step_cache(cache, t):
    """The PeepholeStepCache of step t, rebuilt from a PeepholeCache.

    c is the cell state the step computed: on padding, cs[t] holds the
    carried state instead, but padded steps get no gradient."""
    H = cache.hs.shape[2]
    a = cache.gates[t]
    return PeepholeStepCache(
        x=cache.x[t],
        h_prev=seq.previous_state(cache.hs, cache.h0, t, cache.reverse),
        c_prev=seq.previous_state(cache.cs, cache.c0, t, cache.reverse),
        i=a[:, :H], f=a[:, H:2 * H], g=a[:, 2 * H:3 * H], o=a[:, 3 * H:],
        c=cache.cs[t], tanh_c=cache.tanh_cs[t], w_ih=cache.w_ih,
        w_hh=cache.w_hh, w_ch=cache.w_ch, has_bias=cache.has_bias)


def peephole_backward(d_out, dh_n, dc_n, cache):
    """Backpropagation through time, as :func:`lstmlib.lstm.lstm_backward`.

    Returns PeepholeGrads: as LSTMGrads plus dw_ch (3, H).
    """
    T, B, H = cache.hs.shape
    dt = cache.hs.dtype
    d_out = seq.check_grad("d_out", d_out, (T, B, H), dt)
    dh = seq.check_grad("dh_n", dh_n, (B, H), dt)
    dc = seq.check_grad("dc_n", dc_n, (B, H), dt)
    dx = np.empty_like(cache.x)
    sums = seq.GradientSums(cache.w_ih, cache.w_hh, cache.has_bias)
    dw_ch = np.zeros_like(cache.w_ch)
    for t in reversed(seq.time_steps(T, cache.reverse)):
        m = 1 if cache.mask is None else cache.mask[t]
        dh_t = dh + d_out[t] * m                    # from above and from t+1
        g = peephole_step_backward(dh_t * m, dc * m, step_cache(cache, t),
                                   check=False)
        dh = g.dh_prev + (1 - m) * dh_t             # padding: passes by
        dc = g.dc_prev + (1 - m) * dc
        dx[t] = g.dx
        sums.add(g)
        dw_ch += g.dw_ch
    return PeepholeGrads(dx, dh, dc, *sums.totals(), dw_ch)


def _cell_forward(x, state, weights, lengths=None, reverse=False):
    out, (h_n, c_n), cache = peephole_forward(
        x, state[0], state[1], *weights, lengths=lengths, reverse=reverse)
    return out, (h_n, c_n), cache


def _cell_backward(d_out, d_state_n, cache):
    g = peephole_backward(d_out, d_state_n[0], d_state_n[1], cache)
    return g.dx, (g.dh0, g.dc0), (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dw_ch)


CELL = CellType("peephole_lstm", 4, 2, _cell_forward, _cell_backward)
