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
b_ih and b_hh (4H,). Shapes: x_t (B, D), h_t and c_t (B, H).
"""

from collections import namedtuple

import numpy as np

from . import _sequence as seq
from .activations import sigmoid
from .cells import CellType

LSTMStepCache = namedtuple(
    "LSTMStepCache", "x h_prev c_prev i f g o c tanh_c w_ih w_hh has_bias")
LSTMStepGrads = namedtuple(
    "LSTMStepGrads", "dx dh_prev dc_prev dw_ih dw_hh db_ih db_hh")
LSTMCache = namedtuple(
    "LSTMCache", "x h0 c0 gates hs cs tanh_cs mask w_ih w_hh has_bias reverse")
LSTMGrads = namedtuple("LSTMGrads", "dx dh0 dc0 dw_ih dw_hh db_ih db_hh")


def lstm_step_forward(x, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    """One step. x (B, D), h_prev and c_prev (B, H) -> (h, c), cache."""
    seq.check_step_inputs(x, {"h_prev": h_prev, "c_prev": c_prev},
                          (w_ih, w_hh, b_ih, b_hh), 4)
    H = h_prev.shape[1]
    a = x @ w_ih.T + h_prev @ w_hh.T               # (B, 4H) pre-activations
    if b_ih is not None:
        a += b_ih + b_hh
    i = sigmoid(a[:, 0 * H:1 * H])                 # input gate
    f = sigmoid(a[:, 1 * H:2 * H])                 # forget gate
    g = np.tanh(a[:, 2 * H:3 * H])                 # candidate
    o = sigmoid(a[:, 3 * H:4 * H])                 # output gate
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    cache = LSTMStepCache(x, h_prev, c_prev, i, f, g, o, c, tanh_c, w_ih, w_hh,
                          b_ih is not None)
    return (h, c), cache


def lstm_step_backward(dh, dc, cache):
    """Gradients of one step given dL/dh and dL/dc (B, H) -> LSTMStepGrads."""
    x, h_prev, c_prev, i, f, g, o, c, tanh_c, w_ih, w_hh, has_bias = cache
    dh = seq.check_grad("dh", dh, c.shape, c.dtype)
    dc = seq.check_grad("dc", dc, c.shape, c.dtype)
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
    dx = da @ w_ih
    dh_prev = da @ w_hh
    dw_ih = da.T @ x
    dw_hh = da.T @ h_prev
    db = da.sum(axis=0) if has_bias else None
    return LSTMStepGrads(dx, dh_prev, dc_prev, dw_ih, dw_hh, db,
                         None if db is None else db.copy())


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                 reverse=False):
    """Run the LSTM over a sequence.

    x (T, B, D), h0 and c0 (B, H) -> out (T, B, H), (h_n, c_n), cache.
    ``lengths`` (B,) marks steps t >= lengths[b] as padding (output 0, state
    unchanged); ``reverse`` walks t = T-1, ..., 0.

    The input projections of all steps are one matrix product; inside the
    loop only h_{t-1} W_hh^T remains, and every activation is written in
    place into arrays allocated once (they are the cache).
    """
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0, "c0": c0}, (w_ih, w_hh, b_ih, b_hh), 4, lengths)
    # sigmoid(a) = tanh(a/2)/2 + 1/2: with the rows of i, f and o halved in
    # copies of the weights (exact: a power of two), one tanh runs over all
    # four gates' contiguous block, instead of three calls on strided slices
    half = seq.sigmoid_rows_halved(4, H, (0, 1, 3), x.dtype)   # i, f, o
    gates = seq.input_projection(                   # (T, B, 4H), in place
        x, w_ih * half[:, None], None if b_ih is None else b_ih * half,
        None if b_hh is None else b_hh * half)
    hs = np.empty((T, B, H), x.dtype)
    cs = np.empty_like(hs)
    tanh_cs = np.empty_like(hs)
    w_hh_t = seq.scaled_transpose(w_hh, half)
    rec = np.empty((B, 4 * H), x.dtype)
    ig = np.empty((B, H), x.dtype)
    p5 = x.dtype.type(0.5)
    h, c = h0, c0
    for t in seq.time_steps(T, reverse):
        a = gates[t]
        np.matmul(h, w_hh_t, out=rec)
        a += rec
        np.tanh(a, out=a)
        np.copyto(ig, a[:, 2 * H:3 * H])           # g = tanh(a_g): keep it
        a *= p5                                    # i, f, o = tanh/2 + 1/2
        a += p5
        a[:, 2 * H:3 * H] = ig
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c_t, tc, h_t = cs[t], tanh_cs[t], hs[t]
        np.multiply(f, c, out=c_t)                 # c = f * c_prev + i * g
        np.multiply(i, g, out=ig)
        c_t += ig
        np.tanh(c_t, out=tc)
        np.multiply(o, tc, out=h_t)                # h = o * tanh(c)
        if mask is not None:                       # padding keeps the state
            m = mask[t]
            c_t *= m
            c_t += (1 - m) * c
            h_t *= m
            h_t += (1 - m) * h
        h, c = h_t, c_t
    out = hs if mask is None else hs * mask
    cache = LSTMCache(x, h0, c0, gates, hs, cs, tanh_cs, mask, w_ih, w_hh,
                      b_ih is not None, reverse)
    return out, (h.copy(), c.copy()), cache


BLOCK_ELEMENTS = 1 << 19   # gate values per block of steps in lstm_backward


def _local_derivatives(a, tc, c_prev, k, dc_dh):
    """For steps (.., B, 4H) of activations a = i, f, g, o: k = d(pre-
    activation)/dc for i, f, g and d(pre-activation)/dh for o; dc_dh =
    dc/dh through h = o tanh(c)."""
    H = tc.shape[-1]
    i, g, o = a[..., :H], a[..., 2 * H:3 * H], a[..., 3 * H:]
    np.subtract(1.0, a, out=k)                      # sigmoid' = s (1 - s)
    k *= a
    k[..., :H] *= g                                 # c = f c_prev + i g
    k[..., H:2 * H] *= c_prev
    k_g = k[..., 2 * H:3 * H]
    np.multiply(g, g, out=k_g)                      # tanh' = 1 - g^2
    np.subtract(1.0, k_g, out=k_g)
    k_g *= i
    k[..., 3 * H:] *= tc                            # h = o tanh(c)
    np.multiply(tc, tc, out=dc_dh)
    np.subtract(1.0, dc_dh, out=dc_dh)
    dc_dh *= o


def lstm_backward(d_out, dh_n, dc_n, cache):
    """Backpropagation through time.

    d_out (T, B, H), dh_n and dc_n (B, H) (any may be None) -> LSTMGrads.
    """
    (x, h0, c0, gates, hs, cs, tanh_cs, mask, w_ih, w_hh, has_bias,
     reverse) = cache
    T, B, H = hs.shape
    dt = hs.dtype
    d_out = seq.check_grad("d_out", d_out, hs.shape, dt)
    dh = seq.check_grad("dh_n", dh_n, (B, H), dt).copy()
    dc = seq.check_grad("dc_n", dc_n, (B, H), dt).copy()
    # What does not depend on the incoming gradients is computed for a block
    # of steps at a time, in a few passes over whole arrays (small enough to
    # stay in cache): da_all starts as the factors d(pre-activation)/dc for
    # i, f, g and d(pre-activation)/dh for o, and each step only multiplies
    # them by its dc and dh, in place.
    c_prev_all = seq.previous_states(cs, c0, reverse)
    da_all = np.empty_like(gates)
    dc_dh = np.empty_like(hs)                       # dc/dh = o (1 - tanh(c)^2)
    f = gates[..., H:2 * H]
    tmp = np.empty((B, H), dt)
    order = list(reversed(seq.time_steps(T, reverse)))
    per_block = max(1, BLOCK_ELEMENTS // gates[0].size)
    for n in range(0, T, per_block):
        block = order[n:n + per_block]
        span = slice(min(block), max(block) + 1)
        _local_derivatives(gates[span], tanh_cs[span], c_prev_all[span],
                           da_all[span], dc_dh[span])
        for t in block:
            da = da_all[t]
            if mask is None:
                dh += d_out[t]                          # dh_next + this step's
                dh_t = dh
            else:
                dh_t = dh + d_out[t] * mask[t]
                dc_keep = dc.copy()
            np.multiply(dh_t, dc_dh[t], out=tmp)
            dc += tmp
            da.reshape(B, 4, H)[:, :3] *= dc[:, None]   # di, df, dg
            da[:, 3 * H:] *= dh_t                       # do
            dc *= f[t]                                  # dc_prev
            if mask is None:
                np.matmul(da, w_hh, out=dh)             # dh_next for step t-1
            else:                                       # padding: passes by
                m = mask[t]
                da *= m
                dh = da @ w_hh + (1 - m) * dh_t
                dc *= m
                dc += (1 - m) * dc_keep
    h_prev = seq.previous_states(hs, h0, reverse)
    dx, dw_ih, dw_hh, db_ih, db_hh = seq.weight_gradients(
        da_all, da_all, x, h_prev, w_ih, has_bias)
    return LSTMGrads(dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh)


def _cell_forward(x, state, weights, lengths=None, reverse=False):
    out, (h_n, c_n), cache = lstm_forward(x, state[0], state[1], *weights,
                                          lengths=lengths, reverse=reverse)
    return out, (h_n, c_n), cache


def _cell_backward(d_out, d_state_n, cache):
    g = lstm_backward(d_out, d_state_n[0], d_state_n[1], cache)
    return g.dx, (g.dh0, g.dc0), (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)


LSTM_CELL = CellType("lstm", 4, 2, _cell_forward, _cell_backward)
