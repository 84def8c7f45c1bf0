"""minGRU: the parallel scan against the sequential loop (same numbers),
torch autograd on the same equations as the oracle, central differences."""

import numpy as np
import pytest
import torch

from lstmlib.gradcheck import numerical_gradient, rel_error
from lstmlib.mingru import (linear_scan_backward, linear_scan_parallel,
                            linear_scan_sequential, mingru_backward, mingru_forward)


def _inputs(seed, T=7, B=3, D=4, H=5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, B, D)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype),
            rng.standard_normal((H, D)).astype(dtype),
            rng.standard_normal((H, D)).astype(dtype),
            rng.standard_normal(H).astype(dtype),
            rng.standard_normal(H).astype(dtype))


@pytest.mark.parametrize("T", [1, 2, 3, 8, 13, 64, 1000])
def test_parallel_scan_equals_sequential(T):
    rng = np.random.default_rng(T)
    a = rng.uniform(0, 1, (T, 2, 3))
    b = rng.standard_normal((T, 2, 3))
    h0 = rng.standard_normal((2, 3))
    seq = linear_scan_sequential(a, b, h0)
    par = linear_scan_parallel(a, b, h0)
    np.testing.assert_allclose(par, seq, rtol=1e-12, atol=1e-13)
    # by hand for the first steps
    np.testing.assert_allclose(seq[0], a[0] * h0 + b[0])
    if T > 1:
        np.testing.assert_allclose(seq[1], a[1] * (a[0] * h0 + b[0]) + b[1])
    assert not np.shares_memory(par, a) and not np.shares_memory(par, b)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("T", [1, 2, 5, 33])
def test_scan_backward_matches_torch(T, parallel):
    """da, db, dh0 of the linear recurrence against torch autograd through
    the step-by-step loop."""
    rng = np.random.default_rng(100 + T)
    a = rng.uniform(0.7, 1.0, (T, 2, 3))
    b = rng.standard_normal((T, 2, 3))
    h0 = rng.standard_normal((2, 3))
    g_out = rng.standard_normal((T, 2, 3))
    h = linear_scan_sequential(a, b, h0)
    da, db, dh0 = linear_scan_backward(g_out, a, h0, h, parallel=parallel)
    ta, tb, th0 = (torch.tensor(v, requires_grad=True) for v in (a, b, h0))
    prev, outs = th0, []
    for t in range(T):
        prev = ta[t] * prev + tb[t]
        outs.append(prev)
    (torch.stack(outs) * torch.tensor(g_out)).sum().backward()
    for name, mine, ref in (("da", da, ta), ("db", db, tb), ("dh0", dh0, th0)):
        np.testing.assert_allclose(mine, ref.grad.numpy(), rtol=1e-12, atol=1e-13,
                                   err_msg=name)


def test_scan_backward_keeps_float32():
    rng = np.random.default_rng(7)
    a, b, g_out = (rng.uniform(0.5, 1.0, (6, 2, 3)).astype(np.float32) for _ in range(3))
    h0 = rng.standard_normal((2, 3)).astype(np.float32)
    grads = linear_scan_backward(g_out, a, h0, linear_scan_parallel(a, b, h0))
    assert [g.dtype for g in grads] == [np.float32] * 3


def _torch_mingru(x, h0, w_z, w_h, b_z, b_h):
    h, out = h0, []
    for t in range(x.shape[0]):
        z = torch.sigmoid(x[t] @ w_z.T + b_z)
        h = (1 - z) * h + z * (x[t] @ w_h.T + b_h)
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("parallel", [False, True])
def test_forward_and_backward_match_torch(parallel):
    args = _inputs(0)
    out, h_n, cache = mingru_forward(*args, parallel=parallel)
    rng = np.random.default_rng(1)
    d_out = rng.standard_normal(out.shape)
    dh_n = rng.standard_normal(h_n.shape)
    g = mingru_backward(d_out, dh_n, cache)
    tt = [torch.tensor(a, requires_grad=True) for a in args]
    tout = _torch_mingru(*tt)
    ((tout * torch.tensor(d_out)).sum() + (tout[-1] * torch.tensor(dh_n)).sum()).backward()
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(h_n, out[-1])
    for name, mine, t in zip(g._fields, g, tt):
        np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("parallel", [False, True])
def test_central_differences(parallel):
    args = _inputs(2, T=5, B=2, D=3, H=3)
    d_out = np.random.default_rng(3).standard_normal((5, 2, 3))
    _, _, cache = mingru_forward(*args, parallel=parallel)
    g = mingru_backward(d_out, None, cache)

    def f():
        return mingru_forward(*args, parallel=parallel)[0]

    for name, arr, grad in zip(g._fields, args, g):
        assert rel_error(grad, numerical_gradient(f, arr, d_out)) < 1e-7, name


def test_float32_kept_and_inputs_untouched():
    args = _inputs(4, dtype=np.float32)
    copies = [a.copy() for a in args]
    out, _, cache = mingru_forward(*args)
    g = mingru_backward(np.ones_like(out), None, cache)
    assert out.dtype == np.float32 and all(d.dtype == np.float32 for d in g)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


def test_bad_input_names_the_argument():
    x, h0, w_z, w_h, b_z, b_h = _inputs(5)
    with pytest.raises(ValueError, match="w_h"):
        mingru_forward(x, h0, w_z, w_h[:, :2], b_z, b_h)
    with pytest.raises(ValueError, match="h0"):
        mingru_forward(x, h0[:1], w_z, w_h, b_z, b_h)
    _, _, cache = mingru_forward(x, h0, w_z, w_h, b_z, b_h)
    with pytest.raises(ValueError, match="d_out"):
        mingru_backward(np.ones((2, 3, 5)), None, cache)
