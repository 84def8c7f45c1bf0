"""The numpy-fast backend against the numpy reference (its oracle), like the
Numba and CUDA backends, and through the layer API against torch."""

import backend_cases
import numpy as np
import pytest

from lstmlib.cells import get_cell

# normwise: max |a - b| <= tol * max |b|
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _problem(kind, dtype, T, B, D, H, bias=True, seed=0):
    return backend_cases.problem(kind, dtype, T, B, D, H, bias, seed)


def _close(ref, got, dtype, what):
    backend_cases.assert_close(ref, got, TOL[dtype], what)


CASES = [(None, False, True), (np.array([4, 1, 3]), False, True),
         (np.array([2, 4, 1]), True, False), (None, True, True)]


def _compare(kind, dtype, lengths, reverse, bias, **options):
    ref, cell = get_cell(kind, "numpy"), get_cell(kind, "numpy-fast")
    assert cell.backend == "numpy-fast" and cell is not ref
    backend_cases.assert_matches_reference(ref, cell, _problem(kind, dtype, 4, 3, 5, 6, bias),
                                           TOL[dtype], lengths, reverse, shared=options)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("lengths,reverse,bias", CASES)
def test_numpy_fast_matches_reference_float64(kind, lengths, reverse, bias):
    _compare(kind, np.float64, lengths, reverse, bias)


def test_numpy_fast_relu_rnn_matches_reference():
    _compare("rnn", np.float64, np.array([4, 2, 3]), True, True,
             nonlinearity="relu")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_numpy_fast_matches_reference_float32(kind):
    _compare(kind, np.float32, np.array([4, 2, 3]), True, True)


def test_lstm_backward_blocks_of_steps_change_nothing(monkeypatch):
    """The LSTM backward pass precomputes its factors per block of steps;
    blocks of one step and of all steps give the same gradients."""
    from lstmlib.kernels import numpy_fast
    x, state, weights, d_out, d_state = _problem("lstm", np.float64, 7, 3, 4, 5)
    cell = get_cell("lstm", "numpy-fast")
    _, _, cache = cell.forward(x, state, weights, np.array([7, 3, 5]))
    whole = cell.backward(d_out, d_state, cache)
    monkeypatch.setattr(numpy_fast, "BLOCK_ELEMENTS", 1)   # one step a block
    single = cell.backward(d_out, d_state, cache)
    np.testing.assert_array_equal(whole[0], single[0])
    for a, b in zip(whole[2], single[2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_layer_with_numpy_fast_backend_matches_torch(kind):
    torch = pytest.importorskip("torch")
    import lstmlib
    torch.manual_seed(0)
    mod = getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=True).double()
    layer = lstmlib.from_torch(mod, backend="numpy-fast")
    assert layer.cell.backend == "numpy-fast"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 3))
    xt = torch.tensor(x, requires_grad=True)
    out_t, _ = mod(xt)
    d_out = rng.standard_normal(out_t.shape)
    out_t.backward(torch.tensor(d_out))
    out, _ = layer.forward(x)
    dx, _ = layer.backward(d_out)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_numpy_fast_rejects_bad_input_like_the_reference():
    x, state, weights, _, _ = _problem("gru", np.float64, 3, 2, 4, 5)
    cell = get_cell("gru", "numpy-fast")
    with pytest.raises(ValueError, match="h0"):
        cell.forward(x, (state[0][:1],), weights)
    with pytest.raises(ValueError, match="nonlinearity"):
        get_cell("rnn", "numpy-fast").forward(
            x, state, _problem("rnn", np.float64, 3, 2, 4, 5)[2],
            nonlinearity="sigmoid")
