"""Bad input raises ValueError naming the argument; shapes and dtypes hold
for any sizes (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lstmlib
from lstmlib import gru, lstm, rnn
from lstmlib.gradcheck import check_layer_gradients


def lstm_layer(**kw):
    return lstmlib.LSTM(3, 4, rng=np.random.default_rng(0), **kw)


def x_of(T=5, B=2, D=3, dtype=np.float64):
    return np.random.default_rng(1).standard_normal((T, B, D)).astype(dtype)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((5, 3)), r"x \(T, B, D\): expected a 3-D array of shape \(\*, \*, 3\), received "
                       r"shape \(5, 3\)"),
    (np.zeros((5, 2, 4)), r"x \(T, B, D\): expected shape \(\*, \*, 3\), received "
                          r"shape \(5, 2, 4\)"),
    (np.zeros((5, 2, 3), np.float32), r"expected dtype float64 .* received .*float32"),
    (np.zeros((5, 2, 3), np.int64), r"expected a floating-point array"),
    ([[[0.0] * 3]], r"expected a numpy array, received list"),
])
def test_bad_x(bad, match):
    with pytest.raises(ValueError, match=match):
        lstm_layer().forward(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_input_and_parameters(value):
    x = x_of()
    x[2, 1, 0] = value
    with pytest.raises(ValueError, match=r"x \(T, B, D\): expected finite values, received 1 NaN "
                                         r"or inf entry"):
        lstm_layer().forward(x)
    layer = lstm_layer()
    layer.params["weight_hh_l0"][0, 0] = value
    with pytest.raises(ValueError, match=r"w_hh: expected finite values"):
        layer.forward(x_of())


@pytest.mark.parametrize("dtype,big", [(np.float64, 1e200), (np.float32, 1e30)])
def test_finiteness_holds_where_the_quick_test_overflows(dtype, big):
    """The finiteness check squares and sums: entries that overflow the sum
    while finite themselves are accepted, and one NaN among them is still
    found and counted."""
    from lstmlib._validation import check_array
    a = np.full((3, 4), big, dtype)
    assert check_array("a", a, (3, 4)) is a
    a[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"a: expected finite values, received 1 NaN"):
        check_array("a", a, (3, 4))
    strided = np.full((4, 6), big, dtype)[:, ::2]
    strided[0, 1] = -np.inf
    with pytest.raises(ValueError, match=r"received 1 NaN or inf entry"):
        check_array("s", strided, (4, 3))


def test_bad_state_shapes():
    layer = lstm_layer(num_layers=2)
    h = np.zeros((2, 2, 4))
    with pytest.raises(ValueError, match=r"state: expected a tuple \(h0, c0\)"):
        layer.forward(x_of(), h)
    with pytest.raises(ValueError, match=r"state\[1\] \(c0\): expected shape \(2, 2, 4\), received "
                                         r"shape \(1, 2, 4\)"):
        layer.forward(x_of(), (h, np.zeros((1, 2, 4))))
    g = lstmlib.GRU(3, 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"state \(h0\): expected shape \(1, 2, 4\), received "
                                         r"shape \(1, 3, 4\)"):
        g.forward(x_of(), np.zeros((1, 3, 4)))


@pytest.mark.parametrize("lengths,match", [
    (np.array([5]), r"lengths: expected shape \(2,\)"),
    (np.array([5, 0]), r"lengths: expected every length in \[1, 5\] \(T=5\), received values from "
                       r"0 to 5"),
    (np.array([6, 2]), r"lengths: expected every length in \[1, 5\]"),
    (np.array([2.5, 2.0]), r"lengths: expected integers"),
])
def test_mismatched_lengths(lengths, match):
    with pytest.raises(ValueError, match=match):
        lstm_layer().forward(x_of(), lengths=lengths)


def test_bad_weights_in_step_functions():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    with pytest.raises(ValueError,
                       match=r"w_hh: expected shape \(16, 4\), received shape \(12, 4\)"):
        lstm.lstm_step_forward(x, h, h, rng.standard_normal((16, 3)), rng.standard_normal((12, 4)))
    with pytest.raises(ValueError,
                       match=r"w_ih: expected shape \(12, \*\), received shape \(16, 3\)"):
        gru.gru_step_forward(x, h, rng.standard_normal((16, 3)), rng.standard_normal((12, 4)))
    with pytest.raises(ValueError, match=r"b_ih, b_hh: expected both biases or neither"):
        rnn.rnn_step_forward(x, h, rng.standard_normal((4, 3)), rng.standard_normal((4, 4)),
                             np.zeros(4), None)
    with pytest.raises(ValueError,
                       match=r"h_prev: expected shape \(2, 4\), received shape \(3, 4\)"):
        rnn.rnn_step_forward(x, np.zeros((3, 4)), rng.standard_normal((4, 3)),
                             rng.standard_normal((4, 4)))
    with pytest.raises(ValueError, match=r"nonlinearity: expected one of \('tanh', 'relu'\), "
                                         r"received 'sigmoid'"):
        rnn.rnn_step_forward(x, h, rng.standard_normal((4, 3)), rng.standard_normal((4, 4)),
                             nonlinearity="sigmoid")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"hidden_size: expected a positive integer, received 0"):
        lstmlib.LSTM(3, 0)
    with pytest.raises(ValueError, match=r"rng: expected a numpy.random.Generator"):
        lstmlib.LSTM(3, 4, rng=42)
    with pytest.raises(ValueError, match=r"backend: expected one of"):
        lstmlib.GRU(3, 4, backend="tpu")
    with pytest.raises(ValueError, match=r"dtype: expected a floating dtype"):
        lstmlib.GRU(3, 4, dtype=np.int32)
    with pytest.raises(ValueError, match=r"dropout: expected a probability in \[0, 1\]"):
        lstmlib.LSTM(3, 4, 2, True, False, 1.5)


def test_backward_before_forward_and_bad_gradient_shape():
    layer = lstm_layer()
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.zeros((5, 2, 4)))
    layer.forward(x_of())
    with pytest.raises(ValueError, match=r"d_output: expected shape \(5, 2, 4\), received shape "
                                         r"\(5, 2, 8\)"):
        layer.backward(np.zeros((5, 2, 8)))


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["RNN", "LSTM", "GRU"]), T=st.integers(1, 6), B=st.integers(1, 4),
       D=st.integers(1, 5), H=st.integers(1, 5), layers=st.integers(1, 2),
       bidir=st.booleans(), batch_first=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_shapes_and_dtypes_preserved(kind, T, B, D, H, layers, bidir, batch_first, dtype, seed):
    rng = np.random.default_rng(seed)
    layer = getattr(lstmlib, kind)(D, H, num_layers=layers, bidirectional=bidir,
                                   batch_first=batch_first, rng=rng, dtype=dtype)
    assert all(p.dtype == dtype for p in layer.params.values())
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D)).astype(dtype)
    lengths = rng.integers(1, T + 1, B)
    out, state = layer.forward(x, lengths=lengths)
    nd = 2 if bidir else 1
    assert out.shape == ((B, T, nd * H) if batch_first else (T, B, nd * H))
    states = state if kind == "LSTM" else (state,)
    for s in states:
        assert s.shape == (layers * nd, B, H) and s.dtype == dtype
    assert out.dtype == dtype
    dx, d0 = layer.backward(rng.standard_normal(out.shape).astype(dtype))
    assert dx.shape == x.shape and dx.dtype == dtype
    for k, g in layer.grads.items():
        assert g.shape == layer.params[k].shape and g.dtype == dtype
    # padded steps produce zeros in both directions
    t_idx = np.arange(T)[:, None] >= lengths[None, :]
    time_major = out.transpose(1, 0, 2) if batch_first else out
    assert np.all(time_major[t_idx] == 0)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_layer_gradients_numerically(kind):
    rng = np.random.default_rng(7)
    layer = getattr(lstmlib, kind)(2, 3, num_layers=2, bidirectional=True, rng=rng)
    x = rng.standard_normal((3, 2, 2))
    shape = (4, 2, 3)
    state = (rng.standard_normal(shape), rng.standard_normal(shape)) if kind == "LSTM" \
        else rng.standard_normal(shape)
    errors = check_layer_gradients(layer, x, state, lengths=np.array([3, 2]), rng=rng)
    assert len(errors) == 2 + (kind == "LSTM") + len(layer.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, (worst, errors[worst])  # wrong gradients give ~1e-1


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_forward_and_backward_leave_their_inputs_alone(kind, backend):
    """The fast paths work on scaled or transposed copies of the weights;
    none may write into the caller's arrays, whatever their memory layout
    (a Fortran-ordered W_hh has a C-contiguous transpose, which
    np.ascontiguousarray would return uncopied)."""
    from lstmlib.kernels import get_cell
    cell = get_cell(kind, backend)
    G = cell.num_gates
    T, B, D, H = 4, 3, 2, 5
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, B, D))
    state = tuple(rng.standard_normal((B, H)) for _ in range(cell.num_states))
    weights = (rng.standard_normal((G * H, D)),
               np.asfortranarray(rng.standard_normal((G * H, H))),
               rng.standard_normal(G * H), rng.standard_normal(G * H))
    d_out = rng.standard_normal((T, B, H))
    d_state = tuple(rng.standard_normal((B, H)) for _ in state)
    inputs = (x, *state, *weights, d_out, *d_state)
    before = [a.copy() for a in inputs]
    _, _, cache = cell.forward(x, state, weights)
    cell.backward(d_out, d_state, cache)
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)
