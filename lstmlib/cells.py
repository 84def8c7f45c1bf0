"""The registry of cell types and backends, and the uniform interface
through which layers, stacking and bidirectional wrappers drive any cell.

Cell interface (every backend's functions keep it):

``forward(x, state, weights, lengths=None, reverse=False, **options)``
    -> ``(out, state_n, cache)``; ``state`` is a tuple of (B, H) arrays (one
    for RNN and GRU, two for LSTM: ``(h, c)``), ``weights`` the tuple of the
    cell's parameters in :func:`parameter_shapes`' order (for the standard
    cells ``(w_ih, w_hh, b_ih, b_hh)``), biases ``None`` without biases.
``backward(d_out, d_state_n, cache)``
    -> ``(dx, d_state0, d_weights)``; ``d_out`` and the entries of
    ``d_state_n`` may be ``None`` (zeros); ``d_weights`` matches
    ``weights``.

Registries (the only ones: layers, interop, kernels and the benchmark read
them):

``CELL_TYPES``
    kind -> :class:`CellSpec`: gate names (their count G and stacking
    order), state names, the module of the numpy reference, the matching
    ``torch.nn`` class, the options its functions take, and any parameters
    beyond PyTorch's four.
``BACKENDS``
    name -> the module holding that backend's ``<kind>_forward`` and
    ``<kind>_backward`` functions (``None``: the reference itself).

:func:`get_cell` combines the two. CONTRIBUTING.md says how to add a cell or
a backend.
"""

import importlib
from collections import namedtuple

CellType = namedtuple("CellType", "name num_gates num_states forward backward "
                      "backend", defaults=("numpy",))
CellType.__doc__ = """A recurrent cell as seen by layers: its kind (``"rnn"``,
``"lstm"``, ...), gate count G, number of state arrays, its sequence forward
and backward functions, and the backend that runs them."""

CellSpec = namedtuple(
    "CellSpec", "kind gates states module torch_class options extra_params")
CellSpec.__doc__ = """One entry of CELL_TYPES.

kind: the registry key; gates: gate names in the order their blocks of H
rows are stacked in W_ih, W_hh and the biases; states: names of the state
arrays; module: the numpy reference's module, which defines ``CELL`` (a
CellType); torch_class: the ``torch.nn`` class with the same parameters, or
None; options: the keyword options of its functions (with their defaults);
extra_params: ``(name, shape)`` pairs of parameters beyond weight_ih,
weight_hh, bias_ih, bias_hh, each shape a tuple of ints and of "H" (hidden
size)."""

CELL_TYPES = {
    "rnn": CellSpec("rnn", ("h",), ("h",), "lstmlib.rnn", "RNN",
                    {"nonlinearity": "tanh"}, ()),
    "lstm": CellSpec("lstm", ("i", "f", "g", "o"), ("h", "c"), "lstmlib.lstm",
                     "LSTM", {}, ()),
    "gru": CellSpec("gru", ("r", "z", "n"), ("h",), "lstmlib.gru", "GRU", {},
                    ()),
    "peephole_lstm": CellSpec(
        "peephole_lstm", ("i", "f", "g", "o"), ("h", "c"),
        "lstmlib.peephole", None, {}, (("weight_ch", (3, "H")),)),
}

BACKENDS = {
    "numpy": None,                                  # the reference
    "numpy-fast": "lstmlib.kernels.numpy_fast",
    "numba": "lstmlib.kernels.numba_cells",
    "cuda": "lstmlib.kernels.cuda_cells",
}


def cell_spec(kind):
    """The :class:`CellSpec` of ``kind``; ValueError for unknown kinds."""
    if kind not in CELL_TYPES:
        raise ValueError(f"kind: expected one of {tuple(CELL_TYPES)}, "
                         f"received {kind!r}")
    return CELL_TYPES[kind]


def parameter_shapes(kind, input_size, hidden_size, bias=True):
    """``[(name, shape), ...]`` of one cell's parameters, in the order of
    the cell's ``weights`` tuple, without PyTorch's layer suffixes:
    weight_ih (G*H, D), weight_hh (G*H, H), bias_ih and bias_hh (G*H,) (when
    ``bias``), then the cell's extra parameters."""
    spec = cell_spec(kind)
    GH = len(spec.gates) * hidden_size
    shapes = [("weight_ih", (GH, input_size)), ("weight_hh", (GH, hidden_size))]
    if bias:
        shapes += [("bias_ih", (GH,)), ("bias_hh", (GH,))]
    for name, shape in spec.extra_params:
        shapes.append((name, tuple(hidden_size if s == "H" else s
                                   for s in shape)))
    return shapes


def get_cell(kind, backend="numpy"):
    """The :class:`CellType` computing ``kind`` on ``backend``.

    A backend module without functions for ``kind`` runs the reference
    (the Numba backend has no Elman RNN kernel: one tanh per unit leaves
    little to fuse); the returned CellType's ``backend`` says which ran.
    Backend modules are imported on first use, so ``import lstmlib`` never
    compiles anything.
    """
    spec = cell_spec(kind)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {tuple(BACKENDS)}, "
                         f"received {backend!r}")
    reference = importlib.import_module(spec.module).CELL
    if BACKENDS[backend] is None:
        return reference
    module = importlib.import_module(BACKENDS[backend])
    forward = getattr(module, f"{kind}_forward", None)
    backward = getattr(module, f"{kind}_backward", None)
    if forward is None or backward is None:
        return reference
    return CellType(kind, len(spec.gates), len(spec.states), forward,
                    backward, backend)
