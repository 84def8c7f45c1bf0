"""Bidirectional layers (Schuster & Paliwal 1997) around any cell.

One copy of the cell reads the sequence forwards, a second one (its own
weights) reads it backwards; their outputs are concatenated feature-wise:
out_t = [h_t^forward, h_t^backward], shape (T, B, 2H). With ``lengths`` the
backward copy starts at each sequence's last real step, as PyTorch's packed
sequences do.
"""

from collections import namedtuple

import numpy as np

BidirectionalCache = namedtuple("BidirectionalCache", "cell H cache_f cache_b")


def bidirectional_forward(cell, x, state_f, state_b, weights_f, weights_b,
                          lengths=None, **options):
    """x (T, B, D) -> out (T, B, 2H), state_n_f, state_n_b, cache.

    ``cell`` is a :class:`lstmlib.cells.CellType`; states and weights are
    the tuples its ``forward`` takes.
    """
    out_f, state_n_f, cache_f = cell.forward(x, state_f, weights_f, lengths,
                                             False, **options)
    out_b, state_n_b, cache_b = cell.forward(x, state_b, weights_b, lengths,
                                             True, **options)
    out = np.concatenate([out_f, out_b], axis=2)
    return out, state_n_f, state_n_b, BidirectionalCache(
        cell, out_f.shape[2], cache_f, cache_b)


def bidirectional_backward(d_out, d_state_f, d_state_b, cache):
    """d_out (T, B, 2H) -> dx, d_state0_f, d_state0_b, weight grads f, b."""
    cell, H, cache_f, cache_b = cache
    d_f = None if d_out is None else d_out[:, :, :H]
    d_b = None if d_out is None else d_out[:, :, H:]
    dx_f, ds_f, dw_f = cell.backward(d_f, d_state_f, cache_f)
    dx_b, ds_b, dw_b = cell.backward(d_b, d_state_b, cache_b)
    return dx_f + dx_b, ds_f, ds_b, dw_f, dw_b
