"""The CUDA LSTM behind the uniform cell interface of :mod:`lstmlib.cells`.

Forward: :func:`lstmlib.kernels.cuda.lstm_forward` (persistent kernel when
W_hh fits on chip). Backward: **on the CPU**, with the Numba stepwise BPTT
(:func:`lstmlib.kernels.numba_cells.lstm_backward`), from the activations
the GPU forward pass copied back. A CUDA backward pass would run the same
persistent loop backwards in time with W_hh^T on chip; it is left as an
exercise of the performance chapter.
"""

import numpy as np

from .. import _sequence as seq
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
        np.ascontiguousarray(x), np.ascontiguousarray(h0),
        np.ascontiguousarray(c0), w_ih, w_hh, b_ih, b_hh, lengths=L,
        reverse=reverse, method=method)
    cache = numba_cells.NumbaLSTMCache(
        "stepwise", x, h0, c0, w_ih, w_hh, b_ih is not None, L, valid,
        reverse, False, gates, cs, tanh_cs,
        seq.previous_states(hs, h0, reverse),
        seq.previous_states(cs, c0, reverse))
    return out, (h_n, c_n), cache


def lstm_backward(d_out, d_state_n, cache):
    """BPTT on the CPU (Numba) from the GPU forward pass's cache."""
    return numba_cells.lstm_backward(d_out, d_state_n, cache)
