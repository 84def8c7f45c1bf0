"""The CUDA kernels against the numpy reference.

Without a GPU they run in Numba's CUDA simulator, which must be switched on
(``NUMBA_ENABLE_CUDASIM=1``) before ``numba`` is first imported; pytest has
imported it long before this file, so here a single test re-runs this file
in a fresh interpreter with the variable set, and the real tests live in
that run. Sizes stay tiny (B*H <= 64, T <= 4): the simulator runs each CUDA
thread as a Python thread.

Simulator gaps (tests that need them are skipped there, with the reason,
and run where a GPU is present): ``grid.sync()`` synchronises one block only
(the simulator runs blocks one after another), ``threadfence`` does nothing,
warp shuffles are missing.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.cuda

ROOT = Path(__file__).resolve().parents[1]
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def _gpu_present():
    if SIM:
        return False
    from numba import cuda
    return cuda.is_available()


GPU = _gpu_present()
SIM_GAP = "CUDA simulator: grid.sync() synchronises one block only"


if not (SIM or GPU):

    def test_cuda_kernels_in_the_simulator():
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-m", "cuda", str(Path(__file__))],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        passed = re.search(r"(\d+) passed", r.stdout)
        assert passed and int(passed.group(1)) >= 8, r.stdout[-2000:]

else:
    from lstmlib.kernels import _cuda, get_cell
    from lstmlib.kernels import cuda as kc
    from lstmlib.lstm import LSTM_CELL, lstm_forward

    TOL = {np.float64: 1e-10, np.float32: 1e-5}

    def _problem(dtype, T, B, D, H, seed=0):
        rng = np.random.default_rng(seed)

        def r(*shape, scale=1.0):
            return (scale * rng.standard_normal(shape)).astype(dtype)

        return (r(T, B, D), (r(B, H), r(B, H)),
                (r(4 * H, D, scale=0.5), r(4 * H, H, scale=0.5), r(4 * H),
                 r(4 * H)))

    def _close(ref, got, dtype, what):
        assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype}"
        err = np.max(np.abs(ref - got)) / max(np.max(np.abs(ref)), 1e-30)
        assert err <= TOL[dtype], f"{what}: normwise error {err:.2e}"

    def test_the_simulator_or_a_gpu_is_in_use():
        assert _cuda.available()
        assert _cuda.SIMULATOR == SIM

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_tiled_matmul(dtype):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((9, 21)).astype(dtype)   # not tile multiples
        b = rng.standard_normal((21, 5)).astype(dtype)
        _close(a @ b, kc.matmul(a, b).copy_to_host(), dtype, "A @ B")

    def test_fused_gate_kernel_matches_the_reference_step():
        from lstmlib.lstm import lstm_step_forward
        x, (h0, c0), w = _problem(np.float64, 1, 3, 4, 5)
        (h_r, c_r), cache = lstm_step_forward(x[0], h0, c0, *w)
        a = x[0] @ w[0].T + h0 @ w[1].T + w[2] + w[3]
        h, c, tc = (np.zeros_like(h0) for _ in range(3))
        valid = np.ones(3, bool)
        kc.lstm_gates_kernel[(3, 1), (1, 8)](a, c0, h0, valid, h, c, tc)
        _close(h_r, h, np.float64, "h")
        _close(c_r, c, np.float64, "c")
        _close(cache.i, a[:, :5], np.float64, "i (cached in a)")

    @pytest.mark.parametrize("method", ["single", "stepwise"])
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_lstm_forward_matches_reference(method, dtype):
        x, (h0, c0), w = _problem(dtype, 3, 2, 3, 8)
        lengths = np.array([3, 2])
        out_r, (h_r, c_r), _ = lstm_forward(x, h0, c0, *w, lengths=lengths,
                                            reverse=True)
        out, h_n, c_n, *_ = kc.lstm_forward(x, h0, c0, *w, lengths=lengths,
                                            reverse=True, method=method)
        _close(out_r, out, dtype, "out")
        _close(h_r, h_n, dtype, "h_n")
        _close(c_r, c_n, dtype, "c_n")

    def test_cuda_backend_forward_and_backward_match_reference():
        x, state, w = _problem(np.float64, 4, 2, 3, 4)
        d_out = np.random.default_rng(5).standard_normal((4, 2, 4))
        cell = get_cell("lstm", "cuda")
        out_r, st_r, cache_r = LSTM_CELL.forward(x, state, w)
        out, st, cache = cell.forward(x, state, w)
        _close(out_r, out, np.float64, "out")
        g_r = LSTM_CELL.backward(d_out, (None, None), cache_r)
        g = cell.backward(d_out, (None, None), cache)
        _close(g_r[0], g[0], np.float64, "dx")
        for name, a, b in zip(("dw_ih", "dw_hh", "db_ih", "db_hh"), g_r[2], g[2]):
            _close(a, b, np.float64, name)

    def test_single_block_refuses_what_does_not_fit():
        x, (h0, c0), w = _problem(np.float32, 1, 1, 2, 128)
        assert not kc.single_block_fits(1, 128, np.float32)
        with pytest.raises(ValueError, match="method"):
            kc.lstm_forward(x, h0, c0, *w, method="single")

    @pytest.mark.skipif(SIM, reason=SIM_GAP)
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_grid_persistent_kernel_matches_reference(dtype):
        x, (h0, c0), w = _problem(dtype, 20, 8, 16, 256)
        out_r, (h_r, c_r), _ = lstm_forward(x, h0, c0, *w)
        out, h_n, c_n, *_ = kc.lstm_forward(x, h0, c0, *w, method="grid")
        _close(out_r, out, dtype, "out")
        _close(h_r, h_n, dtype, "h_n")

    @pytest.mark.skipif(not SIM, reason="checks the simulator's refusal")
    def test_grid_kernel_is_refused_in_the_simulator():
        x, (h0, c0), w = _problem(np.float64, 1, 1, 2, 4)
        with pytest.raises(ValueError, match="real GPU"):
            kc.lstm_forward(x, h0, c0, *w, method="grid")
