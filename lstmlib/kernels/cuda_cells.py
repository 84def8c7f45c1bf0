"""The CUDA cells behind the uniform cell interface of :mod:`lstmlib.cells`.

Forward: :mod:`lstmlib.kernels.cuda` (the persistent kernel when W_hh fits
on chip). Backward: **on the CPU**, from the activations the GPU forward
pass copied back, put into the cache the CPU backward pass reads: the Numba
stepwise BPTT for the LSTM and the GRU
(:func:`lstmlib.kernels.numba_cells.lstm_backward`, ``gru_backward``), the
numpy reference's for the Elman RNN (which has no Numba kernel). A CUDA
backward pass would run the same persistent loop backwards in time with
W_hh^T on chip; it is left as an exercise of the performance chapter.
"""

import numpy as np

from .. import _sequence as seq
from ..rnn import RNN_CELL, RNNCache, check_nonlinearity
from . import cuda as K
from . import numba_cells


def lstm_forward(x, state, weights, lengths=None, reverse=False,
                 method="auto"):
    """LSTM sequence forward on the GPU; see :mod:`lstmlib.cells`."""
    h0, c0 = state
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, D, H, lengths, _ = seq.check_sequence_inputs(
        x, {"h0": h0, "c0": c0}, weights, 4, lengths)
    L, valid = numba_cells._lengths_valid(lengths, T, B)
    out, h_n, c_n, gates, cs, tanh_cs, hs = K.lstm_forward(
        x, h0, c0, *weights, lengths=L, reverse=reverse, method=method)
    cache = numba_cells.NumbaLSTMCache(
        "stepwise", x, h0, c0, w_ih, w_hh, b_ih is not None, L, valid,
        reverse, False, gates, cs, tanh_cs,
        seq.previous_states(hs, h0, reverse),
        seq.previous_states(cs, c0, reverse))
    return out, (h_n, c_n), cache


def lstm_backward(d_out, d_state_n, cache):
    """BPTT on the CPU (Numba) from the GPU forward pass's cache."""
    return numba_cells.lstm_backward(d_out, d_state_n, cache)


def gru_forward(x, state, weights, lengths=None, reverse=False,
                method="auto"):
    """GRU sequence forward on the GPU; see :mod:`lstmlib.cells`."""
    (h0,) = state
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, D, H, lengths, _ = seq.check_sequence_inputs(
        x, {"h0": h0}, weights, 3, lengths)
    L, valid = numba_cells._lengths_valid(lengths, T, B)
    out, h_n, gates, hns, hs = K.gru_forward(
        x, h0, *weights, lengths=L, reverse=reverse, method=method)
    cache = numba_cells.NumbaGRUCache(
        "stepwise", x, h0, w_ih, w_hh, b_ih is not None, L, valid, reverse,
        False, gates, hns, seq.previous_states(hs, h0, reverse))
    return out, (h_n,), cache


def gru_backward(d_out, d_state_n, cache):
    """BPTT on the CPU (Numba) from the GPU forward pass's cache."""
    return numba_cells.gru_backward(d_out, d_state_n, cache)


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
        lengths=numba_cells._lengths_valid(lengths, T, B)[0], reverse=reverse,
        method=method)
    cache = RNNCache(x=x, h0=h0, hs=hs, mask=mask, w_ih=w_ih, w_hh=w_hh,
                     nonlinearity=nonlinearity, has_bias=b_ih is not None,
                     reverse=reverse)
    return out, (h_n,), cache


def rnn_backward(d_out, d_state_n, cache):
    """BPTT on the CPU (the numpy reference's) from the GPU forward pass's
    cache."""
    return RNN_CELL.backward(d_out, d_state_n, cache)
