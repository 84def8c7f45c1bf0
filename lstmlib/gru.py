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
Shapes: x_t (B, D), h_t (B, H); a sequence x is (T, B, D).

The sequence functions are the step functions in a loop over time: the
oracle of the faster backends (``lstmlib.kernels``).
"""

from collections import namedtuple

import numpy as np

from . import _sequence as seq
from .activations import sigmoid
from .cells import CellType

GRUStepCache = namedtuple(
    "GRUStepCache", "x h_prev r z n hn w_ih w_hh has_bias")
GRUStepCache.__doc__ = """What one step's backward pass needs: x (B, D),
h_prev (B, H), the gate activations r, z, n (B, H each), hn = W_hn h_prev +
b_hn (B, H), the weights, and whether there are biases."""
GRUStepGrads = namedtuple("GRUStepGrads", "dx dh_prev dw_ih dw_hh db_ih db_hh")


class GRUCache(namedtuple(
        "GRUCache", "x h0 gates hns hs mask w_ih w_hh has_bias reverse")):
    """What gru_backward needs, for every step t:
    x (T, B, D) the inputs, h0 (B, H) the initial state,
    gates (T, B, 3H) the activations [r, z, n] of step t,
    hns (T, B, H) W_hn h_{t-1} + b_hn of step t (what the reset gate scales),
    hs (T, B, H) the state h_t step t left,
    mask (T, B, 1) 1 on real steps and 0 on padding (None without lengths),
    the weights w_ih, w_hh, has_bias, and reverse (the direction walked)."""

    __slots__ = ()


GRUGrads = namedtuple("GRUGrads", "dx dh0 dw_ih dw_hh db_ih db_hh")


def gru_step_forward(x, h_prev, w_ih, w_hh, b_ih=None, b_hh=None, *,
                     check=True):
    """One step of the GRU.

    Inputs: x (B, D), h_prev (B, H), w_ih (3H, D), w_hh (3H, H), b_ih and
    b_hh (3H,) or both None.
    Returns ``h, cache``: h (B, H), cache a GRUStepCache.

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        seq.check_step_inputs(x, {"h_prev": h_prev},
                              (w_ih, w_hh, b_ih, b_hh), 3)
    H = h_prev.shape[1]
    gx = x @ w_ih.T                                # (B, 3H) input part
    gh = h_prev @ w_hh.T                           # (B, 3H) hidden part
    if b_ih is not None:
        gx += b_ih
        gh += b_hh
    r = sigmoid(gx[:, :H] + gh[:, :H])             # reset gate
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])  # update gate
    hn = gh[:, 2 * H:]                             # W_hn h_prev + b_hn
    n = np.tanh(gx[:, 2 * H:] + r * hn)            # candidate
    h = (1.0 - z) * n + z * h_prev                 # new hidden state
    cache = GRUStepCache(x=x, h_prev=h_prev, r=r, z=z, n=n, hn=hn, w_ih=w_ih,
                         w_hh=w_hh, has_bias=b_ih is not None)
    return h, cache


def gru_step_backward(dh, cache, *, check=True):
    """Backward pass of one step.

    Inputs: dh (B, H), the gradient of the loss with respect to the step's h
    (None: zeros); cache, the step's GRUStepCache.
    Returns GRUStepGrads: dx (B, D), dh_prev (B, H), dw_ih (3H, D), dw_hh
    (3H, H), db_ih and db_hh (3H,) (None without biases).

    ``check=False`` skips validating the inputs (the sequence functions
    check theirs once).
    """
    if check:
        dh = seq.check_grad("dh", dh, cache.h_prev.shape, cache.h_prev.dtype)
    x, h_prev, r, z, n, hn = (cache.x, cache.h_prev, cache.r, cache.z,
                              cache.n, cache.hn)
    dn = dh * (1.0 - z)                            # h = (1-z)*n + z*h_prev
    dz = dh * (h_prev - n)
    dan = dn * (1.0 - n * n)                       # through tanh
    dr = dan * hn                                  # n = tanh(.. + r*hn)
    dgx = np.concatenate([dr * r * (1.0 - r),      # through the sigmoids
                          dz * z * (1.0 - z),
                          dan], axis=1)
    dgh = np.concatenate([dgx[:, :2 * r.shape[1]],
                          dan * r], axis=1)        # hn is scaled by r
    dx = dgx @ cache.w_ih
    dh_prev = dh * z + dgh @ cache.w_hh            # directly and via W_hh
    dw_ih = dgx.T @ x
    dw_hh = dgh.T @ h_prev
    db_ih = dgx.sum(axis=0) if cache.has_bias else None
    db_hh = dgh.sum(axis=0) if cache.has_bias else None
    return GRUStepGrads(dx=dx, dh_prev=dh_prev, dw_ih=dw_ih, dw_hh=dw_hh,
                        db_ih=db_ih, db_hh=db_hh)


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                reverse=False):
    """Run the GRU over a sequence: the step, once per time step.

    Inputs: x (T, B, D), h0 (B, H), weights as in :func:`gru_step_forward`;
    ``lengths`` and ``reverse`` as in :func:`lstmlib.lstm.lstm_forward`.
    Returns ``out, h_n, cache``: out (T, B, H), h_n (B, H), cache a GRUCache.
    """
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0}, (w_ih, w_hh, b_ih, b_hh), 3, lengths)
    gates = np.empty((T, B, 3 * H), x.dtype)
    hns = np.empty((T, B, H), x.dtype)
    hs = np.empty_like(hns)
    h = h0
    for t in seq.time_steps(T, reverse):
        h_t, step = gru_step_forward(x[t], h, w_ih, w_hh, b_ih, b_hh,
                                     check=False)
        if mask is not None:                       # padding keeps the state
            h_t = mask[t] * h_t + (1 - mask[t]) * h
        gates[t] = np.concatenate([step.r, step.z, step.n], axis=1)
        hns[t], hs[t] = step.hn, h_t
        h = h_t
    out = hs if mask is None else hs * mask
    cache = GRUCache(x=x, h0=h0, gates=gates, hns=hns, hs=hs, mask=mask,
                     w_ih=w_ih, w_hh=w_hh, has_bias=b_ih is not None,
                     reverse=reverse)
    return out, h.copy(), cache


def step_cache(cache, t):
    """The GRUStepCache of step t, rebuilt from a sequence's GRUCache."""
    H = cache.hs.shape[2]
    a = cache.gates[t]
    return GRUStepCache(
        x=cache.x[t], h_prev=seq.previous_state(cache.hs, cache.h0, t,
                                                cache.reverse),
        r=a[:, :H], z=a[:, H:2 * H], n=a[:, 2 * H:], hn=cache.hns[t],
        w_ih=cache.w_ih, w_hh=cache.w_hh, has_bias=cache.has_bias)


def gru_backward(d_out, dh_n, cache):
    """Backpropagation through time: the step's backward pass, from the last
    step computed to the first, carrying dh.

    Inputs: d_out (T, B, H), dh_n (B, H) (either may be None: zeros), cache,
    the GRUCache of :func:`gru_forward`.
    Returns GRUGrads: dx (T, B, D), dh0 (B, H), dw_ih (3H, D), dw_hh (3H, H),
    db_ih and db_hh (3H,) (None without biases).
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
        g = gru_step_backward(dh_t * m, step_cache(cache, t), check=False)
        dh = g.dh_prev + (1 - m) * dh_t             # padding: passes by
        dx[t] = g.dx
        sums.add(g)
    return GRUGrads(dx, dh, *sums.totals())


def _cell_forward(x, state, weights, lengths=None, reverse=False):
    out, h_n, cache = gru_forward(x, state[0], *weights, lengths=lengths,
                                  reverse=reverse)
    return out, (h_n,), cache


def _cell_backward(d_out, d_state_n, cache):
    g = gru_backward(d_out, d_state_n[0], cache)
    return g.dx, (g.dh0,), (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh)


CELL = CellType("gru", 3, 1, _cell_forward, _cell_backward)
GRU_CELL = CELL    # the name tests and notebooks import
