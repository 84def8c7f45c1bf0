"""The CUDA cells behind the uniform cell interface of :mod:`lstmlib.cells`.

LSTM and GRU train on the GPU end to end: the forward pass
(:func:`lstmlib.kernels.cuda.lstm_forward`, ``gru_forward``: the persistent
kernel when W_hh fits on chip) keeps its cache, the inputs and the weights
on the device, and the backward pass
(:func:`lstmlib.kernels.cuda.lstm_backward`, ``gru_backward``: the time loop
in one launch with W_hh on chip, then the weight gradients as tiled
products) reads them there. Only the outputs, the final state and the
gradients are copied back to the host, as the cell interface returns numpy
arrays.

The Elman RNN runs its forward pass on the GPU and its backward pass on the
CPU (the numpy reference's, from the states copied back): one tanh per unit
leaves a CUDA backward little to gain.
"""

from collections import namedtuple

import numpy as np

from .. import _sequence as seq
from ..rnn import RNN_CELL, RNNCache, check_nonlinearity
from . import cuda as K
from . import numba_cells
from ._cuda import cuda

CudaLSTMCache = namedtuple(
    "CudaLSTMCache", "method x h0 c0 w_ih w_hh has_bias lengths reverse "
    "gates cs tanh_cs hs")
CudaGRUCache = namedtuple(
    "CudaGRUCache", "method x h0 w_ih w_hh has_bias lengths reverse "
    "gates hns hs")


def _to_device(*arrays):
    """Host arrays (any memory layout) copied to the device; None stays."""
    return [None if a is None else cuda.to_device(np.ascontiguousarray(a))
            for a in arrays]


def lstm_forward(x, state, weights, lengths=None, reverse=False,
                 method="auto"):
    """LSTM sequence forward on the GPU; see :mod:`lstmlib.cells`."""
    h0, c0 = state
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, D, H, lengths, _ = seq.check_sequence_inputs(
        x, {"h0": h0, "c0": c0}, weights, 4, lengths)
    L = numba_cells._lengths(lengths, T, B)
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, L = _to_device(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, L)
    out, h_n, c_n, gates, cs, tanh_cs, hs = K.lstm_forward(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=L, reverse=reverse,
        method=method, device=True)
    cache = CudaLSTMCache(method, x, h0, c0, w_ih, w_hh, b_ih is not None, L,
                          reverse, gates, cs, tanh_cs, hs)
    return (out.copy_to_host(),
            (h_n.copy_to_host(), c_n.copy_to_host()), cache)


def lstm_backward(d_out, d_state_n, cache):
    """LSTM BPTT on the GPU from the device-resident forward cache; returns
    ``(dx, (dh0, dc0), (dw_ih, dw_hh, db_ih, db_hh))`` on the host."""
    T, B, _ = cache.x.shape
    H = cache.w_hh.shape[1]
    dt = np.dtype(cache.x.dtype)
    dh_n, dc_n = d_state_n if d_state_n is not None else (None, None)
    d_out = seq.check_grad("d_out", d_out, (T, B, H), dt)
    dh_n = seq.check_grad("dh_n", dh_n, (B, H), dt)
    dc_n = seq.check_grad("dc_n", dc_n, (B, H), dt)
    c = cache
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = K.lstm_backward(
        d_out, dh_n, dc_n, c.x, c.h0, c.c0, c.w_ih, c.w_hh, c.gates, c.cs,
        c.tanh_cs, c.hs, lengths=c.lengths, reverse=c.reverse,
        bias=c.has_bias, method=c.method)
    return dx, (dh0, dc0), (dw_ih, dw_hh, db_ih, db_hh)


def gru_forward(x, state, weights, lengths=None, reverse=False,
                method="auto"):
    """GRU sequence forward on the GPU; see :mod:`lstmlib.cells`."""
    (h0,) = state
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, D, H, lengths, _ = seq.check_sequence_inputs(
        x, {"h0": h0}, weights, 3, lengths)
    L = numba_cells._lengths(lengths, T, B)
    x, h0, w_ih, w_hh, b_ih, b_hh, L = _to_device(
        x, h0, w_ih, w_hh, b_ih, b_hh, L)
    out, h_n, gates, hns, hs = K.gru_forward(
        x, h0, w_ih, w_hh, b_ih, b_hh, lengths=L, reverse=reverse,
        method=method, device=True)
    cache = CudaGRUCache(method, x, h0, w_ih, w_hh, b_ih is not None, L,
                         reverse, gates, hns, hs)
    return out.copy_to_host(), (h_n.copy_to_host(),), cache


def gru_backward(d_out, d_state_n, cache):
    """GRU BPTT on the GPU from the device-resident forward cache; returns
    ``(dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh))`` on the host."""
    T, B, _ = cache.x.shape
    H = cache.w_hh.shape[1]
    dt = np.dtype(cache.x.dtype)
    (dh_n,) = d_state_n if d_state_n is not None else (None,)
    d_out = seq.check_grad("d_out", d_out, (T, B, H), dt)
    dh_n = seq.check_grad("dh_n", dh_n, (B, H), dt)
    c = cache
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = K.gru_backward(
        d_out, dh_n, c.x, c.h0, c.w_ih, c.w_hh, c.gates, c.hns, c.hs,
        lengths=c.lengths, reverse=c.reverse, bias=c.has_bias,
        method=c.method)
    return dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh)


def rnn_forward(x, state, weights, lengths=None, reverse=False,
                nonlinearity="tanh", method="auto"):
    """Elman RNN sequence forward on the GPU; see :mod:`lstmlib.cells`."""
    (h0,) = state
    w_ih, w_hh, b_ih, b_hh = weights
    check_nonlinearity(nonlinearity)
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0}, weights, 1, lengths)
    out, h_n, hs = K.rnn_forward(
        x, h0, *weights, nonlinearity=nonlinearity,
        lengths=numba_cells._lengths(lengths, T, B), reverse=reverse,
        method=method)
    cache = RNNCache(x=x, h0=h0, hs=hs, mask=mask, w_ih=w_ih, w_hh=w_hh,
                     nonlinearity=nonlinearity, has_bias=b_ih is not None,
                     reverse=reverse)
    return out, (h_n,), cache


def rnn_backward(d_out, d_state_n, cache):
    """BPTT on the CPU (the numpy reference's) from the GPU forward pass's
    cache."""
    return RNN_CELL.backward(d_out, d_state_n, cache)
