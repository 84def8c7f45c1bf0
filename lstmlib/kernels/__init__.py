"""Faster backends for the recurrent cells: tuned numpy, Numba on the CPU,
CUDA on a GPU.

Every backend keeps the numpy reference's cell interface
(:mod:`lstmlib.cells`) and is checked against it, so switching is one
argument: ``lstmlib.LSTM(..., backend="numba")``. The backends are listed
once, in :data:`lstmlib.cells.BACKENDS`:

* ``"numpy"``: the reference cells themselves (:mod:`lstmlib.rnn`,
  :mod:`lstmlib.lstm`, :mod:`lstmlib.gru`, ...).
* ``"numpy-fast"``: :mod:`lstmlib.kernels.numpy_fast`, the same equations
  rearranged for speed in plain numpy (RNN, LSTM, GRU).
* ``"numba"``: :mod:`lstmlib.kernels.numba_cells` (LSTM and GRU). The Elman
  RNN has no Numba kernel: ``get_cell("rnn", "numba")`` returns the numpy
  cell (one tanh per unit leaves little to fuse).
* ``"cuda"``: :mod:`lstmlib.kernels.cuda` for the forward pass of all three
  cells and the backward pass of the LSTM and GRU (the persistent kernels;
  :mod:`lstmlib.kernels.cuda_cells`: the RNN's backward pass is the numpy
  reference's, on the CPU). Needs a CUDA GPU or ``NUMBA_ENABLE_CUDASIM=1``
  (the simulator: tiny sizes only).

A kind a backend has no functions for runs on the reference (the returned
cell's ``backend`` field says so). The Numba modules are imported on first
use, so ``import lstmlib`` never pays for compiling anything. Set
``NUMBA_DISABLE_JIT=1`` to step through the Numba kernels as plain Python.
"""

from ..cells import BACKENDS, CELL_TYPES, get_cell

KINDS = tuple(CELL_TYPES)

__all__ = ["BACKENDS", "KINDS", "get_cell"]

