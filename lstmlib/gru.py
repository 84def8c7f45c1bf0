r"""Gated recurrent unit (Cho et al. 2014) in PyTorch's form, ``nn.GRU``.

.. math::

    \begin{aligned}
    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
    n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
    \end{aligned}

The reset gate multiplies ``W_hn h + b_hn`` *after* the matrix product
(Cho et al. and D2L reset h before it; the two are different functions).
Gates are stacked r, z, n: W_ih (3H, D), W_hh (3H, H), b_ih and b_hh (3H,).
"""

from collections import namedtuple

import numpy as np

from . import _sequence as seq
from .activations import sigmoid
from .cells import CellType

GRUStepCache = namedtuple(
    "GRUStepCache", "x h_prev r z n hn w_ih w_hh has_bias")
GRUStepGrads = namedtuple("GRUStepGrads", "dx dh_prev dw_ih dw_hh db_ih db_hh")
GRUCache = namedtuple(
    "GRUCache", "x h0 gx hns hs mask w_ih w_hh has_bias reverse")
GRUGrads = namedtuple("GRUGrads", "dx dh0 dw_ih dw_hh db_ih db_hh")


def gru_step_forward(x, h_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    """One step. x (B, D), h_prev (B, H) -> h (B, H), cache."""
    seq.check_step_inputs(x, {"h_prev": h_prev}, (w_ih, w_hh, b_ih, b_hh), 3)
    H = h_prev.shape[1]
    gx = x @ w_ih.T                                # (B, 3H) input part
    gh = h_prev @ w_hh.T                           # (B, 3H) hidden part
    if b_ih is not None:
        gx += b_ih
        gh += b_hh
    r = sigmoid(gx[:, :H] + gh[:, :H])             # reset gate
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])   # update gate
    hn = gh[:, 2 * H:]                             # W_hn h + b_hn
    n = np.tanh(gx[:, 2 * H:] + r * hn)            # candidate
    h = (1.0 - z) * n + z * h_prev
    cache = GRUStepCache(x, h_prev, r, z, n, hn, w_ih, w_hh, b_ih is not None)
    return h, cache


def gru_step_backward(dh, cache):
    """Gradients of one step given dL/dh (B, H) -> GRUStepGrads."""
    x, h_prev, r, z, n, hn, w_ih, w_hh, has_bias = cache
    dh = seq.check_grad("dh", dh, h_prev.shape, h_prev.dtype)
    dn = dh * (1.0 - z)                            # h = (1-z)*n + z*h_prev
    dz = dh * (h_prev - n)
    dan = dn * (1.0 - n * n)                       # through tanh
    dr = dan * hn                                  # n = tanh(.. + r*hn)
    dgx = np.concatenate([dr * r * (1.0 - r),      # through the sigmoids
                          dz * z * (1.0 - z),
                          dan], axis=1)
    dgh = dgx.copy()
    dgh[:, 2 * r.shape[1]:] *= r                   # hn is scaled by r
    dx = dgx @ w_ih
    dh_prev = dh * z + dgh @ w_hh
    dw_ih = dgx.T @ x
    dw_hh = dgh.T @ h_prev
    db_ih = dgx.sum(axis=0) if has_bias else None
    db_hh = dgh.sum(axis=0) if has_bias else None
    return GRUStepGrads(dx, dh_prev, dw_ih, dw_hh, db_ih, db_hh)


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                reverse=False):
    """Run the GRU over a sequence.

    x (T, B, D), h0 (B, H) -> out (T, B, H), h_n (B, H), cache.
    ``lengths`` and ``reverse`` as in :func:`lstmlib.lstm.lstm_forward`.
    """
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0}, (w_ih, w_hh, b_ih, b_hh), 3, lengths)
    # As in lstm_forward: the rows of r and z are halved in copies of the
    # weights (exact), so sigmoid(a) = tanh(a/2)/2 + 1/2 needs no extra pass;
    # b_hr and b_hz join the input projection's bias (only b_hn must wait
    # for the reset gate).
    half = seq.sigmoid_rows_halved(3, H, (0, 1), x.dtype)      # r, z
    b_x = None
    if b_ih is not None:
        b_x = b_ih.copy()
        b_x[:2 * H] += b_hh[:2 * H]
        b_x *= half
    gx = seq.input_projection(x, w_ih * half[:, None], b_x)   # -> r, z, n
    hns = np.empty((T, B, H), x.dtype)
    hs = np.empty_like(hns)
    w_hh_t = seq.scaled_transpose(w_hh, half)
    gh = np.empty((B, 3 * H), x.dtype)
    rhn = np.empty((B, H), x.dtype)
    p5 = x.dtype.type(0.5)
    h = h0
    for t in seq.time_steps(T, reverse):
        a = gx[t]
        np.matmul(h, w_hh_t, out=gh)
        rz = a[:, :2 * H]
        rz += gh[:, :2 * H]
        np.tanh(rz, out=rz)                        # r, z = tanh/2 + 1/2
        rz *= p5
        rz += p5
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        hn = hns[t]                                # W_hn h_prev + b_hn
        if b_hh is None:
            hn[...] = gh[:, 2 * H:]
        else:
            np.add(gh[:, 2 * H:], b_hh[2 * H:], out=hn)
        np.multiply(r, hn, out=rhn)
        n += rhn
        np.tanh(n, out=n)                          # n
        h_t = hs[t]
        np.subtract(h, n, out=h_t)                 # h = n + z * (h_prev - n)
        h_t *= z
        h_t += n
        if mask is not None:                       # padding keeps the state
            m = mask[t]
            h_t *= m
            h_t += (1 - m) * h
        h = h_t
    out = hs if mask is None else hs * mask
    cache = GRUCache(x, h0, gx, hns, hs, mask, w_ih, w_hh, b_ih is not None,
                     reverse)
    return out, h.copy(), cache


def gru_backward(d_out, dh_n, cache):
    """Backpropagation through time.

    d_out (T, B, H), dh_n (B, H) (either may be None) -> GRUGrads.
    """
    x, h0, gx, hns, hs, mask, w_ih, w_hh, has_bias, reverse = cache
    T, B, H = hs.shape
    dt = hs.dtype
    d_out = seq.check_grad("d_out", d_out, hs.shape, dt)
    dh = seq.check_grad("dh_n", dh_n, (B, H), dt).copy()
    h_prev_all = seq.previous_states(hs, h0, reverse)
    dgx_all = np.empty_like(gx)
    dgh_all = np.empty_like(gx)
    for t in reversed(seq.time_steps(T, reverse)):
        a = gx[t]
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        h_prev = h_prev_all[t]
        dh_t = dh + d_out[t] if mask is None else dh + d_out[t] * mask[t]
        dgx = dgx_all[t]
        dr, dz, dan = dgx[:, :H], dgx[:, H:2 * H], dgx[:, 2 * H:]
        np.multiply(dh_t, 1.0 - z, out=dan)        # h = (1-z)*n + z*h_prev
        dan *= 1.0 - n * n                         # through tanh
        np.subtract(h_prev, n, out=dz)
        dz *= dh_t
        dz *= z * (1.0 - z)                        # through the sigmoid
        np.multiply(dan, hns[t], out=dr)           # n = tanh(.. + r*hn)
        dr *= r * (1.0 - r)                        # through the sigmoid
        dgh = dgh_all[t]
        dgh[:, :2 * H] = dgx[:, :2 * H]
        np.multiply(dan, r, out=dgh[:, 2 * H:])    # hn is scaled by r
        if mask is None:
            dh = dh_t * z + dgh @ w_hh             # dh_next for step t-1
        else:                                      # padding: passes by
            m = mask[t]
            dgx *= m
            dgh *= m
            dh = dh_t * (z * m + (1 - m)) + dgh @ w_hh
    dx, dw_ih, dw_hh, db_ih, db_hh = seq.weight_gradients(
        dgx_all, dgh_all, x, h_prev_all, w_ih, has_bias)
    return GRUGrads(dx, dh, dw_ih, dw_hh, db_ih, db_hh)


def _cell_forward(x, state, weights, lengths=None, reverse=False):
    out, h_n, cache = gru_forward(x, state[0], *weights, lengths=lengths,
                                  reverse=reverse)
    return out, (h_n,), cache


def _cell_backward(d_out, d_state_n, cache):
    g = gru_backward(d_out, d_state_n[0], cache)
    return g.dx, (g.dh0,), (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)


GRU_CELL = CellType("gru", 3, 1, _cell_forward, _cell_backward)
