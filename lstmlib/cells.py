"""The uniform interface through which layers, stacking and bidirectional
wrappers drive any recurrent cell, whatever its backend.

``forward(x, state, weights, lengths=None, reverse=False, **options)``
    -> ``(out, state_n, cache)``; ``state`` is a tuple of (B, H) arrays (one
    for RNN and GRU, two for LSTM: ``(h, c)``), ``weights`` the tuple
    ``(w_ih, w_hh, b_ih, b_hh)`` with biases possibly ``None``.
``backward(d_out, d_state_n, cache)``
    -> ``(dx, d_state0, (dw_ih, dw_hh, db_ih, db_hh))``; ``d_out`` and the
    entries of ``d_state_n`` may be ``None`` (zeros).
"""

from collections import namedtuple

CellType = namedtuple("CellType", "name num_gates num_states forward backward")
CellType.__doc__ = """A recurrent cell as seen by layers: its name (``"rnn"``,
``"lstm"``, ``"gru"``), gate count G, number of state arrays, and its
sequence forward and backward functions."""
