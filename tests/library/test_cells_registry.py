"""The one registry of cell types and backends (lstmlib.cells), and what
reads it: layers, kernels, interop."""

import importlib

import numpy as np
import pytest

import lstmlib
from lstmlib import cells


def test_backends_and_get_cell_are_defined_once():
    from lstmlib import kernels, layers
    assert layers.get_cell is cells.get_cell is kernels.get_cell is lstmlib.get_cell
    assert layers.BACKENDS is cells.BACKENDS is kernels.BACKENDS
    assert set(cells.BACKENDS) == {"numpy", "numpy-fast", "numba", "cuda"}


@pytest.mark.parametrize("kind", list(cells.CELL_TYPES))
def test_every_entry_matches_its_reference_module(kind):
    spec = cells.CELL_TYPES[kind]
    cell = importlib.import_module(spec.module).CELL
    assert (cell.name, cell.num_gates, cell.num_states) == (
        kind, len(spec.gates), len(spec.states))
    assert cells.get_cell(kind) is cell
    layer_classes = {c.kind: c for c in lstmlib.RecurrentLayer.__subclasses__()}
    layer = layer_classes[kind](3, 4, rng=np.random.default_rng(0))
    shapes = dict(cells.parameter_shapes(kind, 3, 4))
    assert {k[:-3]: v.shape for k, v in layer.params.items()} == shapes


def test_parameter_shapes_follow_the_gate_count():
    assert cells.parameter_shapes("gru", 5, 7, bias=False) == [
        ("weight_ih", (21, 5)), ("weight_hh", (21, 7))]
    assert cells.parameter_shapes("peephole_lstm", 5, 7)[-1] == ("weight_ch", (3, 7))


def test_unknown_kind_and_backend_are_named():
    with pytest.raises(ValueError, match=r"kind: expected one of .*'lstm'.*"
                                         r"received 'transformer'"):
        cells.get_cell("transformer")
    with pytest.raises(ValueError, match=r"backend: expected one of .*'numpy-fast'"
                                         r".*received 'opencl'"):
        cells.get_cell("lstm", "opencl")
    with pytest.raises(ValueError, match="backend"):
        lstmlib.LSTM(3, 4, backend="opencl")


def test_nonlinearity_is_checked_by_one_function():
    from lstmlib.kernels import numpy_fast
    assert numpy_fast.check_nonlinearity is lstmlib.rnn.check_nonlinearity
    for make in (lambda: lstmlib.RNN(3, 4, nonlinearity="sigmoid"),
                 lambda: lstmlib.rnn.rnn_step_forward(
                     np.ones((1, 3)), np.ones((1, 4)), np.ones((4, 3)),
                     np.ones((4, 4)), nonlinearity="sigmoid")):
        with pytest.raises(ValueError, match=r"nonlinearity: expected one of "
                                             r"\('tanh', 'relu'\), received 'sigmoid'"):
            make()


def test_from_torch_reads_the_registry():
    torch = pytest.importorskip("torch")
    module = torch.nn.RNN(3, 4, nonlinearity="relu").double()
    layer = lstmlib.from_torch(module, backend="numpy-fast")
    assert isinstance(layer, lstmlib.RNN) and layer.nonlinearity == "relu"
    assert layer.cell.backend == "numpy-fast"
    with pytest.raises(ValueError, match=r"torch.nn.RNN or torch.nn.LSTM or "
                                         r"torch.nn.GRU"):
        lstmlib.from_torch(torch.nn.Linear(3, 4))
