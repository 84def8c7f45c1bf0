"""Faster backends for the recurrent cells: Numba on the CPU, CUDA on a GPU.

Every backend keeps the numpy reference's cell interface
(:mod:`lstmlib.cells`) and is checked against it, so switching is one
argument: ``lstmlib.LSTM(..., backend="numba")``.

``get_cell(kind, backend)``
    kind in {"rnn", "lstm", "gru"}, backend in {"numpy", "numba", "cuda"}.

* ``"numpy"``: the reference cells themselves.
* ``"numba"``: :mod:`lstmlib.kernels.numba_cells` (LSTM and GRU). The Elman
  RNN has no Numba kernel: ``get_cell("rnn", "numba")`` returns the numpy
  cell (one tanh per unit leaves little to fuse).
* ``"cuda"``: :mod:`lstmlib.kernels.cuda` for the forward pass of all three
  cells and the backward pass of the LSTM and GRU (the persistent kernels;
  :mod:`lstmlib.kernels.cuda_cells`: the RNN's backward pass is the numpy
  reference's, on the CPU). Needs a CUDA GPU or ``NUMBA_ENABLE_CUDASIM=1``
  (the simulator: tiny sizes only).

The Numba modules are imported on first use, so ``import lstmlib`` never
pays for compiling anything.
"""

BACKENDS = ("numpy", "numba", "cuda")
KINDS = ("rnn", "lstm", "gru")
_SIZES = {"rnn": (1, 1), "lstm": (4, 2), "gru": (3, 1)}   # gates, states


def _reference_cell(kind):
    if kind == "rnn":
        from ..rnn import RNN_CELL
        return RNN_CELL
    if kind == "lstm":
        from ..lstm import LSTM_CELL
        return LSTM_CELL
    from ..gru import GRU_CELL
    return GRU_CELL


def get_cell(kind, backend):
    """The :class:`lstmlib.cells.CellType` computing ``kind`` on ``backend``."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, received {kind!r}")
    if backend not in BACKENDS:
        raise ValueError(
            f"backend: expected one of {BACKENDS}, received {backend!r}")
    if backend == "numpy":
        return _reference_cell(kind)
    from ..cells import CellType
    if backend == "numba":
        if kind == "rnn":
            return _reference_cell(kind)     # documented fallback
        from . import numba_cells as module
    else:
        from . import cuda_cells as module
    num_gates, num_states = _SIZES[kind]
    return CellType(kind, num_gates, num_states,
                    getattr(module, f"{kind}_forward"),
                    getattr(module, f"{kind}_backward"))
