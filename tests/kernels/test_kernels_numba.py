"""The Numba CPU kernels against the numpy reference (their oracle) and torch.

Compiled functions are cached on disk (``cache=True``), so only the first run
on a machine pays for compiling (about a minute on 2 cores).
"""

import os
import subprocess
import sys
from pathlib import Path

import backend_cases
import numpy as np
import pytest

from lstmlib.gru import GRU_CELL
from lstmlib.kernels import get_cell
from lstmlib.lstm import LSTM_CELL

ROOT = Path(__file__).resolve().parents[2]
REF = {"lstm": LSTM_CELL, "gru": GRU_CELL}
# normwise: max |a - b| <= tol * max |b|
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def _problem(kind, dtype, T, B, D, H, bias=True, seed=0):
    return backend_cases.problem(kind, dtype, T, B, D, H, bias, seed)


def _close(ref, got, dtype, what):
    backend_cases.assert_close(ref, got, TOL[dtype], what)


def _compare_cells(kind, dtype, lengths, reverse, bias, **options):
    problem = _problem(kind, dtype, 4, 3, 5, 6, bias)
    backend_cases.assert_matches_reference(REF[kind], get_cell(kind, "numba"), problem,
                                           TOL[dtype], lengths, reverse, **options)


CASES = [(None, False, True), (np.array([4, 1, 3]), False, True),
         (np.array([2, 4, 1]), True, False)]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["fused", "blocked", "stepwise"])
@pytest.mark.parametrize("lengths,reverse,bias", CASES)
def test_numba_matches_reference_float64(kind, mode, lengths, reverse, bias):
    _compare_cells(kind, np.float64, lengths, reverse, bias, mode=mode)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["fused", "blocked", "stepwise"])
def test_numba_matches_reference_float32(kind, mode):
    _compare_cells(kind, np.float32, np.array([4, 2, 3]), True, True, mode=mode)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths,reverse", [(None, False),
                                             (np.array([7, 3, 1, 7, 5, 2]), True)])
def test_blocked_mode_matches_reference_on_whole_register_blocks(kind, dtype, lengths,
                                                                 reverse):
    """B = 6 and H = 10: one group of four batch rows and two leftover rows,
    one block of eight rows of W_hh^T and two leftover rows (forward), five
    blocks of eight (backward, K = G*H)."""
    problem = _problem(kind, dtype, 7, 6, 5, 10)
    backend_cases.assert_matches_reference(REF[kind], get_cell(kind, "numba"), problem,
                                           TOL[dtype], lengths, reverse, mode="blocked")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("B,K,N", [(4, 8, 16), (5, 19, 1500), (3, 2048, 7),
                                   (9, 64, 1025)])
def test_blocked_matmul_matches_numpy(dtype, B, K, N):
    """acc += v @ w with every leftover: rows beyond a group of four, rows of
    w beyond a group of eight, a last block of columns shorter than the
    others, in both walking orders."""
    from lstmlib.kernels.numba_cpu import matmul_blocked
    rng = np.random.default_rng(B * K + N)
    v = rng.standard_normal((B, K)).astype(dtype)
    w = rng.standard_normal((K, N)).astype(dtype)
    acc0 = rng.standard_normal((B, N)).astype(dtype)
    want = acc0.astype(np.float64) + v.astype(np.float64) @ w.astype(np.float64)
    for backwards in (False, True):
        acc = acc0.copy()
        matmul_blocked(v, w, acc, backwards)
        assert acc.dtype == dtype
        _close(want.astype(dtype), acc, dtype, f"acc (backwards={backwards})")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_batch_parallel_kernels_match_reference(kind):
    _compare_cells(kind, np.float64, np.array([3, 4, 1]), False, True,
                   mode="fused", parallel=True)


def test_auto_mode_picks_fused_when_small_blocked_at_small_batches_blas_else():
    from lstmlib.kernels import numba_cells
    larger = "blas" if numba_cells.HAVE_BLAS else "stepwise"
    for G in (3, 4):
        assert numba_cells._pick_mode("auto", 1, 32, G) == "fused"
        assert numba_cells._pick_mode("auto", 4, 512, G) == "blocked"
        assert numba_cells._pick_mode("auto", numba_cells.BLOCKED_MAX_BATCH + 1,
                                      512, G) == larger
        assert numba_cells._pick_mode("auto", 32, 128, G) == larger
    with pytest.raises(ValueError, match="mode"):
        numba_cells._pick_mode("fastest", 1, 32, 4)


needs_blas = pytest.mark.skipif(
    not __import__("lstmlib.kernels.numba_cells").kernels.numba_cells.HAVE_BLAS,
    reason="numpy is not built on its own OpenBLAS")


@needs_blas
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths,reverse,bias", CASES)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_blas_mode_matches_reference(kind, dtype, lengths, reverse, bias):
    _compare_cells(kind, dtype, lengths, reverse, bias, mode="blas")


@needs_blas
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths,reverse", [(None, False), (None, True),
                                             (np.array([7, 3, 1, 7, 5, 2, 6, 4, 7]),
                                              False),
                                             (np.array([7, 3, 1, 7, 5, 2, 6, 4, 7]),
                                              True)])
@pytest.mark.parametrize("chunk_steps", [1, 3, 7])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_blas_mode_matches_reference_at_a_larger_batch(kind, dtype, lengths, reverse,
                                                       chunk_steps, monkeypatch):
    """B = 9, D = 5, H = 12: the [x_t, h_prev] rows of the weight gradients'
    products, the state carried over padding, in both directions, with the
    products by chunks of 1 and 3 steps (a last chunk shorter than the
    others) and in one chunk."""
    from lstmlib.kernels import numba_cells
    G, itemsize = (4 if kind == "lstm" else 3) * 12, np.dtype(dtype).itemsize
    monkeypatch.setattr(numba_cells, "CHUNK_BYTES", chunk_steps * 9 * G * itemsize)
    assert numba_cells._chunk_steps(9, G, dtype) == chunk_steps
    problem = _problem(kind, dtype, 7, 9, 5, 12)
    backend_cases.assert_matches_reference(REF[kind], get_cell(kind, "numba"),
                                           problem, TOL[dtype], lengths, reverse,
                                           mode="blas")


@needs_blas
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True),
                                             (True, False), (True, True)])
def test_compiled_gemm_matches_numpy(dtype, trans_a, trans_b):
    """The BLAS call from compiled code, on row slices of larger arrays (a
    leading dimension beyond the row's length), with alpha and beta."""
    from numba import njit

    from lstmlib.kernels import numba_cells
    from lstmlib.kernels.numba_cpu import gemm

    @njit
    def run(fn, ta, tb, alpha, a, b, beta, c):
        gemm(fn, ta, tb, alpha, a, b, beta, c)

    rng = np.random.default_rng(3)
    M, N, K = 5, 7, 3
    a_full = rng.standard_normal((K + 2, M + 4) if trans_a else (M + 2, K + 4))
    b_full = rng.standard_normal((N + 1, K + 3) if trans_b else (K + 1, N + 3))
    c_full = rng.standard_normal((M + 1, N + 2))
    a_full, b_full, c_full = (v.astype(dtype) for v in (a_full, b_full, c_full))
    a = a_full[1:K + 1, 2:M + 2] if trans_a else a_full[1:M + 1, 2:K + 2]
    b = b_full[:N, 1:K + 1] if trans_b else b_full[:K, 1:N + 1]
    c0 = c_full.copy()
    want = c0.astype(np.float64)
    want[1:, 2:] = 0.5 * want[1:, 2:] + 2.0 * (
        (a.T if trans_a else a).astype(np.float64)
        @ (b.T if trans_b else b).astype(np.float64))
    run(numba_cells.GEMM[np.dtype(dtype)], trans_a, trans_b, dtype(2.0), a, b,
        dtype(0.5), c_full[1:, 2:])
    _close(want.astype(dtype), c_full, dtype, "c")
    assert np.array_equal(c_full[0], c0[0]) and np.array_equal(c_full[:, :2], c0[:, :2])


@needs_blas
@pytest.mark.parametrize("compiled", [True, False])
def test_gemm_with_beta_zero_does_not_read_c(compiled):
    """beta = 0: c is written, not read (BLAS's rule; the kernels pass fresh
    np.empty buffers), compiled and as plain Python alike."""
    from numba import njit

    from lstmlib.kernels import numba_cells
    from lstmlib.kernels.numba_cpu import gemm

    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    c = np.full((3, 5), np.nan)
    fn = numba_cells.GEMM[np.dtype(np.float64)]
    if compiled:
        njit(lambda *args: gemm(*args))(fn, False, False, 1.0, a, b, 0.0, c)
    else:
        gemm(fn, False, False, 1.0, a, b, 0.0, c)
    _close(a @ b, c, np.float64, "c")


def test_float32_activations_are_accurate():
    """tanh32_rational within 4 ulp of the exact tanh, sigmoid32 within
    2e-7 of the exact sigmoid (it is tanh(a/2)/2 + 1/2, as in the reference),
    both saturating without overflow."""
    from numba import njit

    from lstmlib.kernels.numba_cpu import sigmoid32, tanh32_rational

    @njit
    def apply(a, s, t):
        for i in range(a.size):
            s[i] = sigmoid32(a[i])
            t[i] = tanh32_rational(a[i])

    rng = np.random.default_rng(0)
    a = np.concatenate([rng.standard_normal(20000) * 4,
                        rng.uniform(-1e-3, 1e-3, 1000),
                        rng.uniform(-1e-6, 1e-6, 1000),
                        np.linspace(-30, 30, 6001),
                        [0.0, 7.9, 7.91, 9.0, 88.0, -88.0, 1e5, -1e5]]).astype(np.float32)
    s, t = np.empty_like(a), np.empty_like(a)
    apply(a, s, t)
    assert s.dtype == t.dtype == np.float32
    a64 = a.astype(np.float64)
    exact = np.tanh(a64)
    keep = np.abs(exact) >= np.finfo(np.float32).tiny   # normal results
    ulp = np.spacing(np.abs(exact[keep]).astype(np.float32)).astype(np.float64)
    ulps = np.abs(t[keep] - exact[keep]) / ulp
    assert ulps.max() <= 4, f"tanh: {ulps.max():.1f} ulp at {a[keep][ulps.argmax()]!r}"
    with np.errstate(over="ignore"):
        sigmoid = 1.0 / (1.0 + np.exp(-a64))
    err = np.abs(s - sigmoid)
    assert err.max() <= 2e-7, f"sigmoid: error {err.max():.2e} at {a[err.argmax()]!r}"
    assert np.all(t[a == 0.0] == 0.0) and np.all(np.abs(t) <= 1.0) and np.all((s >= 0) & (s <= 1))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_with_numba_backend_matches_torch(kind):
    torch = pytest.importorskip("torch")
    import lstmlib
    torch.manual_seed(0)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    mod = cls(3, 5, num_layers=2, bidirectional=True).double()
    layer = lstmlib.from_torch(mod, backend="numba")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 3))
    xt = torch.tensor(x, requires_grad=True)
    out_t, _ = mod(xt)
    d_out = rng.standard_normal(out_t.shape)
    out_t.backward(torch.tensor(d_out))
    out, _ = layer.forward(x)
    dx, _ = layer.backward(d_out)
    _close(out_t.detach().numpy(), out, np.float64, "output")
    _close(xt.grad.numpy(), dx, np.float64, "dx")
    for name, p in mod.named_parameters():
        _close(p.grad.numpy(), layer.grads[name], np.float64, name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vectorisable_tanh_is_accurate(dtype):
    """vmath.tanh (tanh64 / tanh32 by type) within a few ulp of the exact
    value, rounded to the argument's precision."""
    from numba import njit

    from lstmlib.kernels.vmath import tanh

    @njit
    def apply(a, out):
        for i in range(a.size):
            out[i] = tanh(a[i])

    rng = np.random.default_rng(0)
    tiny = np.finfo(dtype).tiny
    a = np.concatenate([rng.standard_normal(20000) * 4,
                        rng.uniform(-1e-6, 1e-6, 1000),
                        np.linspace(-25, 25, 5001),
                        [0.0, 0.625, -0.625, np.nextafter(0.625, 0), 9.0,
                         9.1, 19.9, 20.0, tiny, 88.0, -1e5]]).astype(dtype)
    out = np.empty_like(a)
    apply(a, out)
    assert out.dtype == dtype
    exact = np.tanh(a.astype(np.float64))         # float32: far more exact
    ulp = np.spacing(np.maximum(np.abs(exact), tiny).astype(dtype))
    ulps = np.abs(out - exact) / ulp.astype(np.float64)
    assert ulps.max() <= 4, f"tanh: {ulps.max():.1f} ulp at x={a[ulps.argmax()]!r}"
    assert out[0 + 20000 + 1000 + 5001] == 0.0
    assert np.all(out[np.abs(a) >= 20] == np.sign(a[np.abs(a) >= 20]))


def test_get_cell_contract():
    from lstmlib.rnn import RNN_CELL
    assert get_cell("lstm", "numpy") is LSTM_CELL
    assert get_cell("rnn", "numba") is RNN_CELL        # documented fallback
    cell = get_cell("gru", "numba")
    assert (cell.name, cell.num_gates, cell.num_states) == ("gru", 3, 1)
    with pytest.raises(ValueError, match="backend"):
        get_cell("lstm", "opencl")
    with pytest.raises(ValueError, match="kind"):
        get_cell("transformer", "numba")


def test_numba_backend_rejects_bad_input_like_the_reference():
    x, state, weights, _, _ = _problem("lstm", np.float64, 3, 2, 4, 5)
    cell = get_cell("lstm", "numba")
    with pytest.raises(ValueError, match="h0"):
        cell.forward(x, (state[0][:1], state[1]), weights)
    with pytest.raises(ValueError, match="x"):
        cell.forward(x.astype(np.float32), state, weights)


def test_kernels_run_as_plain_python_with_jit_disabled():
    """NUMBA_DISABLE_JIT=1 (for debugging) runs the same code uncompiled."""
    code = (
        "import numpy as np\n"
        "from lstmlib.kernels import get_cell\n"
        "from lstmlib.lstm import LSTM_CELL\n"
        "from lstmlib.kernels import numba_cpu\n"
        "assert not hasattr(numba_cpu.lstm_sequence_forward, 'py_func')\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((2, 2, 3))\n"
        "s = (rng.standard_normal((2, 4)), rng.standard_normal((2, 4)))\n"
        "w = (rng.standard_normal((16, 3)), rng.standard_normal((16, 4)),\n"
        "     rng.standard_normal(16), rng.standard_normal(16))\n"
        "a = LSTM_CELL.forward(x, s, w)[0]\n"
        "b = get_cell('lstm', 'numba').forward(x, s, w, mode='fused')[0]\n"
        "c = get_cell('lstm', 'numba').forward(x, s, w, mode='blocked')[0]\n"
        "print(float(max(np.max(np.abs(a - b)), np.max(np.abs(a - c)))))\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip()) < 1e-12


def _owner(a):
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return type(a).__name__


def test_large_blas_mode_buffers_come_from_numbas_runtime():
    """From MALLOC_BYTES up, the blas mode's per-call arrays are allocated
    by Numba's runtime (malloc), not by numpy, which asks for huge pages
    (numba_cells._empty); smaller ones stay numpy's. Shapes and dtypes are
    those asked for, and the arrays are ordinary writable numpy arrays."""
    from lstmlib.kernels.numba_cells import MALLOC_BYTES, _empty
    for dtype in (np.float32, np.float64):
        n = MALLOC_BYTES // np.dtype(dtype).itemsize
        big = _empty((2, n // 2), dtype)
        small = _empty((3, 5), dtype)
        assert big.shape == (2, n // 2) and big.dtype == dtype
        assert small.shape == (3, 5) and small.dtype == dtype
        assert big.flags.c_contiguous and big.flags.writeable
        assert _owner(big) == "_MemInfo" and _owner(small) == "ndarray"
        big[...] = 1.5
        assert big.sum() == 1.5 * n
