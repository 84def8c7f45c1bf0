"""The CUDA kernels against the numpy reference.

Without a GPU they run in Numba's CUDA simulator, which must be switched on
(``NUMBA_ENABLE_CUDASIM=1``) before ``numba`` is first imported; pytest has
imported it long before this file, so here a single test re-runs this file
in a fresh interpreter with the variable set, and the real tests live in
that run. Sizes stay tiny (B*H <= 64, T <= 4): the simulator runs each CUDA
thread as a Python thread. Every kernel is compared with the numpy reference
(LSTM, GRU, Elman RNN with tanh and ReLU).

In the simulator most of these take seconds each: they are marked ``slow``
(``make test`` runs them, ``make test-fast`` leaves them out); the quick
ones (the element-wise kernels against one reference step, the refusals)
run in both. On a GPU (scripts/gpu-check.sh) every test runs.

Where NVIDIA's NVVM compiler is installed but no GPU is, the kernels are
also compiled to PTX for a recent GPU, which checks what the simulator
cannot: that Numba's CUDA compiler accepts every kernel and device function.

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
slow = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def _gpu_present():
    if SIM:
        return False
    from numba import cuda
    return cuda.is_available()


GPU = _gpu_present()
SIM_GAP = "CUDA simulator: grid.sync() synchronises one block only"


def _compile_all_kernels_to_ptx(cc=(9, 0)):
    """Compile every kernel of lstmlib.kernels.cuda for compute capability
    ``cc`` with the signatures the host code launches them with."""
    from numba import cuda, types

    from lstmlib.kernels import cuda as kc
    sigs = {}
    for dt, nb in kc._NB.items():
        def a(n):
            return types.Array(nb, n, "C")
        lengths, i64, flag = types.Array(types.int64, 1, "C"), types.int64, \
            types.boolean
        sigs[kc._LINEAR[dt], dt] = (a(2), a(2), a(1), a(1), i64, a(2))
        sigs[kc.lstm_gates_kernel, dt] = (a(2),) * 4 + (i64, lengths) + (a(2),) * 3
        sigs[kc.gru_gates_kernel, dt] = (a(2),) * 3 + (i64, lengths) + (a(2),) * 2
        sigs[kc.rnn_step_kernel, dt] = (a(2),) * 3 + (i64, lengths, flag, a(2))
        sigs[kc._zero_padding_kernel, dt] = (a(3), lengths, a(3))
        head = (a(3), a(2), a(1), a(2), a(2), lengths, flag, flag)
        tail = (a(3), a(3), a(2), a(2), a(3), a(3))
        for kind in kc._CELLS:
            single, grid = kc._PERSISTENT[kind, dt]
            sigs[single, dt] = head + tail
            sigs[grid, dt] = head + (i64, a(1)) + tail
        sigs[kc._MATMUL[dt], dt] = (a(2), a(2), flag, flag, flag, a(2))
        sigs[kc._previous_states_kernel, dt] = (a(3), a(2), flag, a(2))
        bhead = (a(3), a(2), a(2), a(3), a(3), a(3), a(2), a(2), lengths,
                 flag)
        btail = (a(3), a(3), a(2), a(2))
        for (kind, kdt), (single, grid, step) in kc._BACKWARD.items():
            if kdt == dt:
                sigs[single, dt] = bhead + btail
                sigs[grid, dt] = bhead + (i64,) + btail
                sigs[step, dt] = (i64, a(3), a(3), a(3), a(3), a(2), lengths,
                                  flag) + btail
    for (kernel, _), sig in sigs.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
        assert ".entry" in ptx
    return len(sigs)


def _nvvm_present():
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
        return True
    except Exception:
        return False


if not (SIM or GPU):

    def _in_the_simulator(markers):
        """This file's tests selected by ``markers``, run in a fresh
        interpreter with the simulator on; how many passed."""
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-m", markers, str(Path(__file__))],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        passed = re.search(r"(\d+) passed", r.stdout)
        assert passed, r.stdout[-2000:]
        return int(passed.group(1))

    def test_quick_cuda_kernels_in_the_simulator():
        assert _in_the_simulator("cuda and not slow") >= 15

    @slow
    def test_cuda_kernels_in_the_simulator():
        assert _in_the_simulator("cuda and slow") >= 45

    @slow
    @pytest.mark.skipif(not _nvvm_present(), reason="NVVM (libnvvm) not found")
    def test_every_kernel_compiles_for_a_real_gpu(monkeypatch):
        """Numba's CUDA compiler (not the simulator) accepts every kernel;
        device functions are compiled for the compute capability of the
        current device, which is replaced here by the target's."""
        import numba.cuda.dispatcher as dispatcher

        class Device:
            compute_capability = (9, 0)

        monkeypatch.setattr(dispatcher, "get_current_device", Device)
        assert _compile_all_kernels_to_ptx(Device.compute_capability) == 38

else:
    from lstmlib import GRU, RNN
    from lstmlib.gru import GRU_CELL, gru_forward, gru_step_forward
    from lstmlib.kernels import _cuda, get_cell
    from lstmlib.kernels import cuda as kc
    from lstmlib.lstm import LSTM_CELL, lstm_forward
    from lstmlib.rnn import RNN_CELL, rnn_forward, rnn_step_forward

    TOL = {np.float64: 1e-10, np.float32: 1e-5}
    GATES = {"lstm": 4, "gru": 3, "rnn": 1}
    # (cell, reference sequence forward, cuda forward, extra keywords)
    CASES = {
        "gru": (gru_forward, kc.gru_forward, {}),
        "rnn-tanh": (rnn_forward, kc.rnn_forward, {"nonlinearity": "tanh"}),
        "rnn-relu": (rnn_forward, kc.rnn_forward, {"nonlinearity": "relu"}),
    }
    REFERENCE_CELLS = {"lstm": LSTM_CELL, "gru": GRU_CELL, "rnn": RNN_CELL}

    def _problem(dtype, T, B, D, H, seed=0, kind="lstm", contractive=False):
        """x, (h0, c0) and (w_ih, w_hh, b_ih, b_hh) for ``kind``.
        ``contractive``: W_hh scaled to a spectral radius of about 0.5, for
        long sequences of many units, where larger recurrent weights make
        the dynamics chaotic and amplify the rounding differences of any
        two correct implementations (the GPU fuses multiply-adds and sums
        in another order) beyond any fixed tolerance."""
        rng = np.random.default_rng(seed)
        G = GATES[kind]

        def r(*shape, scale=1.0):
            return (scale * rng.standard_normal(shape)).astype(dtype)

        rec = 0.5 / np.sqrt(H) if contractive else 0.5
        return (r(T, B, D), (r(B, H), r(B, H)),
                (r(G * H, D, scale=0.5), r(G * H, H, scale=rec), r(G * H),
                 r(G * H)))

    def _close(ref, got, dtype, what):
        assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype}"
        err = np.max(np.abs(ref - got)) / max(np.max(np.abs(ref)), 1e-30)
        assert err <= TOL[dtype], f"{what}: normwise error {err:.2e}"

    def test_the_simulator_or_a_gpu_is_in_use():
        assert _cuda.available()
        assert _cuda.SIMULATOR == SIM

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_tiled_linear(dtype):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((9, 21)).astype(dtype)   # not tile multiples
        w = rng.standard_normal((5, 21)).astype(dtype)
        b1, b2 = rng.standard_normal((2, 5)).astype(dtype)
        _close(a @ w.T, kc.linear(a, w).copy_to_host(), dtype, "A @ W.T")
        _close(a @ w.T + (b1 + b2), kc.linear(a, w, b1, b2).copy_to_host(),
               dtype, "A @ W.T + b1 + b2")

    def _step_inputs(kind, B=3, D=4, H=5):
        x, (h0, c0), w = _problem(np.float64, 1, B, D, H, kind=kind)
        lengths = np.array([1, 0, 1])       # row 1 is padding at t = 0
        return x[0], h0, c0, w, lengths

    def test_lstm_gate_kernel_matches_the_reference_step():
        from lstmlib.lstm import lstm_step_forward
        x, h0, c0, w, lengths = _step_inputs("lstm")
        (h_r, c_r), cache = lstm_step_forward(x, h0, c0, *w)
        a = x @ w[0].T + (w[2] + w[3])
        ah = h0 @ w[1].T
        h, c, tc = (np.zeros_like(h0) for _ in range(3))
        kc.lstm_gates_kernel[(3, 1), (1, 8)](a, ah, c0, h0, 0, lengths, h, c,
                                             tc)
        for name, ref, got in (("h", h_r, h), ("c", c_r, c),
                               ("tanh(c)", np.tanh(c_r), tc),
                               ("i (cached in a)", cache.i, a[:, :5]),
                               ("o (cached in a)", cache.o, a[:, 15:])):
            _close(ref[[0, 2]], got[[0, 2]], np.float64, name)
        _close(h0[1], h[1], np.float64, "h (padding keeps h)")
        _close(c0[1], c[1], np.float64, "c (padding keeps c)")

    def test_gru_gate_kernel_matches_the_reference_step():
        x, h0, _, w, lengths = _step_inputs("gru")
        h_r, cache = gru_step_forward(x, h0, *w)
        gx = x @ w[0].T + w[2]
        gh = h0 @ w[1].T + w[3]
        h, hn = np.zeros_like(h0), np.zeros_like(h0)
        kc.gru_gates_kernel[(3, 1), (1, 8)](gx, gh, h0, 0, lengths, h, hn)
        for name, ref, got in (("h", h_r, h), ("hn", cache.hn, hn),
                               ("r (cached in gx)", cache.r, gx[:, :5]),
                               ("z (cached in gx)", cache.z, gx[:, 5:10]),
                               ("n (cached in gx)", cache.n, gx[:, 10:])):
            _close(ref[[0, 2]], got[[0, 2]], np.float64, name)
        _close(h0[1], h[1], np.float64, "h (padding keeps h)")

    @pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
    def test_rnn_step_kernel_matches_the_reference_step(nonlinearity):
        x, h0, _, w, lengths = _step_inputs("rnn")
        h_r, _ = rnn_step_forward(x, h0, *w, nonlinearity=nonlinearity)
        a = x @ w[0].T + (w[2] + w[3])
        h = np.zeros_like(h0)
        kc.rnn_step_kernel[(3, 1), (1, 8)](a, h0 @ w[1].T, h0, 0, lengths,
                                           nonlinearity == "relu", h)
        _close(h_r[[0, 2]], h[[0, 2]], np.float64, "h")
        _close(h0[1], h[1], np.float64, "h (padding keeps h)")

    @pytest.mark.parametrize("method", ["single", pytest.param("stepwise", marks=slow)])
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

    @slow
    @pytest.mark.parametrize("reverse", [False, True])
    @pytest.mark.parametrize("method", ["single", "stepwise"])
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("case", list(CASES))
    def test_gru_and_rnn_forward_match_reference(case, dtype, method,
                                                 reverse):
        ref_forward, cuda_forward, kw = CASES[case]
        kind = case.split("-")[0]
        x, (h0, _), w = _problem(dtype, 3, 2, 3, 8, seed=1, kind=kind)
        lengths = np.array([2, 3])
        out_r, h_r, cache_r = ref_forward(x, h0, *w, lengths=lengths,
                                          reverse=reverse, **kw)
        out, h_n, *caches = cuda_forward(x, h0, *w, lengths=lengths,
                                         reverse=reverse, method=method, **kw)
        _close(out_r, out, dtype, "out")
        _close(h_r, h_n, dtype, "h_n")
        if kind == "gru":                     # the caches, at the real steps
            valid = np.arange(3)[:, None] < lengths[None, :]
            gates, hns, hs = caches
            _close(cache_r.gates[valid], gates[valid], dtype, "r, z, n")
            _close(cache_r.hns[valid], hns[valid], dtype, "hn")
            _close(cache_r.hs, hs, dtype, "hs")
        else:
            _close(cache_r.hs, caches[0], dtype, "hs")

    @slow
    def test_the_bias_free_cells_match_reference():
        for kind, forward, cuda_forward in (
                ("lstm", None, None), ("gru", gru_forward, kc.gru_forward),
                ("rnn", rnn_forward, kc.rnn_forward)):
            x, (h0, c0), w = _problem(np.float64, 2, 2, 3, 4, kind=kind)
            w = w[:2]
            if kind == "lstm":
                out_r, _, _ = lstm_forward(x, h0, c0, *w)
                out = kc.lstm_forward(x, h0, c0, *w, method="single")[0]
            else:
                out_r = forward(x, h0, *w)[0]
                out = cuda_forward(x, h0, *w, method="single")[0]
            _close(out_r, out, np.float64, f"{kind} out")

    @slow
    @pytest.mark.parametrize("case", ["lstm", "gru", "rnn-tanh", "rnn-relu"])
    def test_cuda_backend_forward_and_backward_match_reference(case):
        kind = case.split("-")[0]
        kw = {"nonlinearity": case[4:]} if kind == "rnn" else {}
        x, state, w = _problem(np.float64, 4, 2, 3, 4, kind=kind)
        state = state[:2 if kind == "lstm" else 1]
        lengths = np.array([4, 3])
        rng = np.random.default_rng(5)
        d_out = rng.standard_normal((4, 2, 4))
        d_state = tuple(rng.standard_normal((2, 4)) for _ in state)
        w = (w[0], np.asfortranarray(w[1]), *w[2:])     # any memory layout
        inputs = (x, *state, *w, d_out, *d_state)
        before = [a.copy() for a in inputs]
        ref, cell = REFERENCE_CELLS[kind], get_cell(kind, "cuda")
        assert cell[:3] == ref[:3]                 # name, gates, states
        for reverse in (False, True):
            out_r, st_r, cache_r = ref.forward(x, state, w, lengths, reverse,
                                               **kw)
            out, st, cache = cell.forward(x, state, w, lengths, reverse, **kw)
            _close(out_r, out, np.float64, "out")
            for j, (a, b) in enumerate(zip(st_r, st)):
                _close(a, b, np.float64, f"state_n[{j}]")
            g_r = ref.backward(d_out, d_state, cache_r)
            g = cell.backward(d_out, d_state, cache)
            _close(g_r[0], g[0], np.float64, "dx")
            for j, (a, b) in enumerate(zip(g_r[1], g[1])):
                _close(a, b, np.float64, f"d_state0[{j}]")
            for name, a, b in zip(("dw_ih", "dw_hh", "db_ih", "db_hh"),
                                  g_r[2], g[2]):
                _close(a, b, np.float64, name)
        for a, b in zip(inputs, before):          # the inputs left alone
            np.testing.assert_array_equal(a, b)

    @slow
    @pytest.mark.parametrize("layer, kw", [
        (GRU, {"bidirectional": True}),
        (RNN, {"nonlinearity": "relu", "num_layers": 2}),
    ])
    def test_layers_on_the_cuda_backend_match_numpy(layer, kw):
        T, B, D, H = 3, 2, 3, 4

        def make(backend):
            return layer(D, H, rng=np.random.default_rng(0), backend=backend, **kw)
        ref, gpu = make("numpy"), make("cuda")
        rng = np.random.default_rng(1)
        x = rng.standard_normal((T, B, D))
        lengths = np.array([3, 2])
        out_r, h_r = ref(x, lengths=lengths)
        out, h = gpu(x, lengths=lengths)
        _close(out_r, out, np.float64, "output")
        _close(h_r, h, np.float64, "h_n")
        d_out = rng.standard_normal(out.shape)
        dx_r, dh_r = ref.backward(d_out)
        dx, dh = gpu.backward(d_out)
        _close(dx_r, dx, np.float64, "dx")
        _close(dh_r, dh, np.float64, "dh0")
        for name in ref.grads:
            _close(ref.grads[name], gpu.grads[name], np.float64, name)

    @slow
    @pytest.mark.parametrize("name, kw", [
        ("GRU", {}), ("RNN", {"nonlinearity": "relu", "bidirectional": True})])
    def test_from_torch_on_the_cuda_backend_matches_torch(name, kw):
        torch = pytest.importorskip("torch")
        from lstmlib import from_torch
        torch.manual_seed(0)
        module = getattr(torch.nn, name)(3, 4, **kw).double()
        x = torch.randn(3, 2, 3, dtype=torch.float64)
        out_t, h_t = module(x)
        out, h = from_torch(module, backend="cuda")(x.numpy())
        _close(out_t.detach().numpy(), out, np.float64, "output")
        _close(h_t.detach().numpy(), h, np.float64, "h_n")

    @pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
    def test_single_block_refuses_what_does_not_fit(kind):
        x, (h0, c0), w = _problem(np.float32, 1, 1, 2, 128, kind=kind)
        assert not kc.single_block_fits(1, 128, np.float32, GATES[kind])
        state = (h0, c0) if kind == "lstm" else (h0,)
        with pytest.raises(ValueError, match="method"):
            getattr(kc, f"{kind}_forward")(x, *state, *w, method="single")

    def test_bad_input_is_refused_with_the_argument_named():
        x, (h0, _), w = _problem(np.float64, 2, 2, 3, 4, kind="rnn")
        with pytest.raises(ValueError, match="nonlinearity"):
            kc.rnn_forward(x, h0, *w, nonlinearity="sigmoid")
        with pytest.raises(ValueError, match="method"):
            kc.gru_forward(x, h0, *_problem(np.float64, 2, 2, 3, 4,
                                            kind="gru")[2], method="fast")
        with pytest.raises(ValueError, match="lengths: expected dtype int64"):
            kc.rnn_forward(x, h0, *w, lengths=np.array([2.0, 1.0]))
        with pytest.raises(ValueError, match=r"h0: expected shape \(2, 4\)"):
            kc.rnn_forward(x, h0[:1], *w)
        with pytest.raises(ValueError, match="w_hh: expected dtype float64"):
            kc.rnn_forward(x, h0, w[0], w[1].astype(np.float32), *w[2:])
        with pytest.raises(ValueError, match="x: expected dtype float32 or"):
            kc.rnn_forward(x.astype(np.float16), h0, *w)

    @slow
    @pytest.mark.skipif(SIM, reason=SIM_GAP)
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_grid_persistent_kernel_matches_reference(dtype):
        x, (h0, c0), w = _problem(dtype, 20, 8, 16, 256, contractive=True)
        out_r, (h_r, c_r), _ = lstm_forward(x, h0, c0, *w)
        out, h_n, c_n, *_ = kc.lstm_forward(x, h0, c0, *w, method="grid")
        _close(out_r, out, dtype, "out")
        _close(h_r, h_n, dtype, "h_n")

    @slow
    @pytest.mark.skipif(SIM, reason=SIM_GAP)
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("case", list(CASES))
    def test_grid_kernels_of_gru_and_rnn_match_reference(case, dtype):
        ref_forward, cuda_forward, kw = CASES[case]
        kind = case.split("-")[0]
        x, (h0, _), w = _problem(dtype, 20, 8, 16, 256, kind=kind,
                                 contractive=True)
        lengths = np.arange(13, 21)
        for reverse in (False, True):
            out_r, h_r, _ = ref_forward(x, h0, *w, lengths=lengths,
                                        reverse=reverse, **kw)
            out, h_n, *_ = cuda_forward(x, h0, *w, lengths=lengths,
                                        reverse=reverse, method="grid", **kw)
            _close(out_r, out, dtype, "out")
            _close(h_r, h_n, dtype, "h_n")

    @slow
    @pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
    def test_device_arrays_in_and_out(kind):
        """device=True: device arrays in (lengths too), device arrays out,
        the same numbers as the host path."""
        from numba import cuda
        x, (h0, c0), w = _problem(np.float32, 3, 2, 3, 8, kind=kind)
        state = (h0, c0) if kind == "lstm" else (h0,)
        forward = getattr(kc, f"{kind}_forward")
        lengths = np.array([3, 2])
        host = forward(x, *state, *w, lengths=lengths)
        on_device = forward(*(cuda.to_device(a) for a in (x, *state, *w)),
                            lengths=cuda.to_device(lengths), device=True)
        assert len(host) == len(on_device)
        for j, (a, d) in enumerate(zip(host, on_device)):
            assert hasattr(d, "copy_to_host"), f"result {j} is not on the device"
            _close(a, d.copy_to_host(), np.float32, f"result {j}")

    @slow
    @pytest.mark.skipif(not SIM, reason="the GPU runs the real thing above")
    @pytest.mark.parametrize("case", ["lstm", *CASES])
    def test_grid_kernels_as_one_block_in_the_simulator(case, monkeypatch):
        """The grid kernels' code (h exchanged through global memory, the
        grid barrier, the per-block slice of W_hh) with all units in one
        block, which is what the simulator can run correctly; the refusal
        of 'grid' is lifted for that."""
        kind = case.split("-")[0]
        kw = {"nonlinearity": case[4:]} if kind == "rnn" else {}
        monkeypatch.setattr(kc, "SIMULATOR", False)
        monkeypatch.setattr(kc, "grid_units", lambda H, dtype, gates: H)
        x, (h0, c0), w = _problem(np.float64, 3, 2, 3, 8, seed=2, kind=kind)
        state = (h0, c0) if kind == "lstm" else (h0,)
        forward = getattr(kc, f"{kind}_forward")
        lengths = np.array([2, 3])
        for reverse in (False, True):
            args = dict(lengths=lengths, reverse=reverse, **kw)
            grid = forward(x, *state, *w, method="grid", **args)
            single = forward(x, *state, *w, method="single", **args)
            for j, (a, b) in enumerate(zip(single, grid)):
                _close(a, b, np.float64, f"result {j}")
            ref = {"lstm": lstm_forward, "gru": gru_forward,
                   "rnn": rnn_forward}[kind](x, *state, *w, **args)
            _close(ref[0], grid[0], np.float64, "out vs the reference")

    @pytest.mark.skipif(not SIM, reason="checks the simulator's refusal")
    @pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
    def test_grid_kernel_is_refused_in_the_simulator(kind):
        x, (h0, c0), w = _problem(np.float64, 1, 1, 2, 4, kind=kind)
        state = (h0, c0) if kind == "lstm" else (h0,)
        with pytest.raises(ValueError, match="method: 'grid' needs a real GPU"):
            getattr(kc, f"{kind}_forward")(x, *state, *w, method="grid")

    # -- the backward pass (BPTT) on the device -----------------------------

    BACKWARD_TOL = {np.float64: 1e-10, np.float32: 2e-5}

    def _backward_case(kind, dtype, T=3, B=2, D=3, H=4, seed=3):
        """Inputs, output gradients and lengths (odd rows end one step
        early: padding) of a backward check (contractive W_hh from H = 64
        on, as in :func:`_problem`)."""
        x, (h0, c0), w = _problem(dtype, T, B, D, H, seed=seed, kind=kind,
                                  contractive=H >= 64)
        rng = np.random.default_rng(seed + 10)
        d_out, dh_n, dc_n = (rng.standard_normal(s).astype(dtype)
                             for s in ((T, B, H), (B, H), (B, H)))
        lengths = np.array([T - b % 2 for b in range(B)])
        state = (h0, c0) if kind == "lstm" else (h0,)
        d_state = (dh_n, dc_n) if kind == "lstm" else (dh_n,)
        return x, state, w, d_out, d_state, lengths

    def _device_backward(kind, x, state, w, d_out, d_state, lengths, reverse,
                         method, bias=True):
        """The cuda module's forward, then its backward, in the cell
        interface's order: dx, d_state0, (dw_ih, dw_hh, db_ih, db_hh)."""
        w = w if bias else (w[0], w[1], None, None)
        if kind == "lstm":
            out, h_n, c_n, *cache = kc.lstm_forward(
                x, *state, *w, lengths=lengths, reverse=reverse,
                method=method)
            dx, dh0, dc0, *dw = kc.lstm_backward(
                d_out, *d_state, x, *state, w[0], w[1], *cache,
                lengths=lengths, reverse=reverse, bias=bias, method=method)
            return dx, (dh0, dc0), dw
        out, h_n, *cache = kc.gru_forward(x, *state, *w, lengths=lengths,
                                          reverse=reverse, method=method)
        dx, dh0, *dw = kc.gru_backward(
            d_out, *d_state, x, *state, w[0], w[1], *cache, lengths=lengths,
            reverse=reverse, bias=bias, method=method)
        return dx, (dh0,), dw

    def _check_gradients(ref, got, dtype, what=""):
        tol = BACKWARD_TOL[dtype]
        pairs = [("dx", ref[0], got[0])]
        pairs += [(f"d_state0[{j}]", a, b) for j, (a, b) in
                  enumerate(zip(ref[1], got[1]))]
        pairs += [(n, a, b) for n, a, b in zip(
            ("dw_ih", "dw_hh", "db_ih", "db_hh"), ref[2], got[2])]
        for name, a, b in pairs:
            if a is None:
                assert b is None, f"{what}{name}: expected None"
                continue
            assert b.dtype == a.dtype and b.shape == a.shape, f"{what}{name}"
            err = np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30)
            assert err <= tol, f"{what}{name}: normwise error {err:.2e}"

    def _reference_backward(kind, x, state, w, d_out, d_state, lengths,
                            reverse, bias=True):
        w = w if bias else (w[0], w[1], None, None)
        ref = REFERENCE_CELLS[kind]
        _, _, cache = ref.forward(x, state, w, lengths, reverse)
        return ref.backward(d_out, d_state, cache)

    @slow
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("kind", ["lstm", "gru"])
    def test_persistent_backward_matches_reference(kind, dtype):
        """One launch for the whole time loop (W_hh on chip), then the
        weight gradients as tiled products: every gradient against the
        numpy reference's BPTT, with padding, both directions."""
        case = _backward_case(kind, dtype)
        for reverse in (False, True):
            ref = _reference_backward(kind, *case, reverse)
            got = _device_backward(kind, *case, reverse, "single")
            _check_gradients(ref, got, dtype, f"reverse={reverse}: ")

    @slow
    @pytest.mark.parametrize("kind, dtype, bias", [
        ("lstm", np.float32, True), ("gru", np.float64, False)])
    def test_stepwise_backward_matches_reference(kind, dtype, bias):
        """Per step: the gate-gradient kernel, then d_rec W_hh added to dh
        by the tiled product."""
        case = _backward_case(kind, dtype, seed=4)
        ref = _reference_backward(kind, *case, True, bias=bias)
        got = _device_backward(kind, *case, True, "stepwise", bias=bias)
        _check_gradients(ref, got, dtype)

    @slow
    def test_backward_results_stay_on_the_device_and_inputs_are_kept():
        from numba import cuda
        x, state, w, d_out, d_state, lengths = _backward_case("gru",
                                                             np.float32)
        before = [a.copy() for a in (x, *state, *w, d_out, *d_state)]
        out, h_n, *cache = kc.gru_forward(x, *state, *w, lengths=lengths,
                                          device=True)
        got = kc.gru_backward(cuda.to_device(d_out), cuda.to_device(d_state[0]),
                              x, *state, w[0], w[1], *cache,
                              lengths=cuda.to_device(lengths), device=True)
        assert all(hasattr(g, "copy_to_host") for g in got)
        ref = _reference_backward("gru", x, state, w, d_out, d_state,
                                  lengths, False)
        host = got[0].copy_to_host(), (got[1].copy_to_host(),), [
            g.copy_to_host() for g in got[2:]]
        _check_gradients(ref, host, np.float32)
        for a, b in zip((x, *state, *w, d_out, *d_state), before):
            np.testing.assert_array_equal(a, b)

    def test_backward_refuses_bad_gradients_with_the_argument_named():
        x, state, w, d_out, d_state, lengths = _backward_case("lstm",
                                                             np.float64)
        out, h_n, c_n, *cache = kc.lstm_forward(x, *state, *w)
        with pytest.raises(ValueError, match=r"d_out: expected shape"):
            kc.lstm_backward(d_out[:2], *d_state, x, *state, w[0], w[1],
                             *cache)
        with pytest.raises(ValueError, match="dc_n: expected dtype float64"):
            kc.lstm_backward(d_out, d_state[0], d_state[1].astype(np.float32),
                             x, *state, w[0], w[1], *cache)

    @slow
    @pytest.mark.skipif(not SIM, reason="the GPU runs the real thing below")
    @pytest.mark.parametrize("kind", ["lstm", "gru"])
    def test_grid_backward_as_one_block_in_the_simulator(kind, monkeypatch):
        """The grid backward kernel's code (a block's columns of W_hh,
        d_rec exchanged through global memory, the grid barrier) with all
        units in one block; the refusal of 'grid' is lifted for that."""
        monkeypatch.setattr(kc, "SIMULATOR", False)
        monkeypatch.setattr(kc, "grid_units", lambda H, dtype, gates: H)
        case = _backward_case(kind, np.float64, seed=5)
        for reverse in (False, True):
            ref = _reference_backward(kind, *case, reverse)
            got = _device_backward(kind, *case, reverse, "grid")
            _check_gradients(ref, got, np.float64, f"reverse={reverse}: ")

    @slow
    @pytest.mark.skipif(SIM, reason=SIM_GAP)
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("kind", ["lstm", "gru"])
    def test_grid_backward_matches_reference(kind, dtype):
        case = _backward_case(kind, dtype, T=20, B=8, D=16, H=256)
        case = case[:5] + (np.arange(13, 21),)
        for reverse in (False, True):
            ref = _reference_backward(kind, *case, reverse)
            got = _device_backward(kind, *case, reverse, "grid")
            _check_gradients(ref, got, dtype, f"reverse={reverse}: ")

    @slow
    @pytest.mark.parametrize("kind", ["lstm", "gru"])
    def test_grid_launch_beyond_the_resident_limit(kind, monkeypatch):
        """A grid that the GPU cannot keep resident at once would deadlock
        at its first grid barrier: 'grid' is refused saying why, 'auto'
        falls back to the stepwise method (and still computes the right
        thing). On a GPU the limit is the device's own (one unit per block
        makes 2048 blocks, more than an H200 keeps resident); in the
        simulator, which cannot ask, a limit of 1 block stands in."""
        monkeypatch.setattr(kc, "grid_units", lambda H, dtype, gates: 1)
        monkeypatch.setattr(kc, "single_block_fits", lambda *a: False)
        if SIM:
            monkeypatch.setattr(kc, "SIMULATOR", False)
            monkeypatch.setattr(kc, "gpu_available", lambda: True)
            monkeypatch.setattr(kc, "_cooperative_limit", lambda *a: 1)
            dtype, (T, B, D, H) = np.float64, (1, 1, 2, 3)
        else:
            dtype, (T, B, D, H) = np.float32, (2, 1, 4, 2048)
        x, state, w, d_out, d_state, lengths = case = _backward_case(
            kind, dtype, T, B, D, H, seed=6)
        forward = getattr(kc, f"{kind}_forward")
        backward = getattr(kc, f"{kind}_backward")
        with pytest.raises(ValueError, match="cooperative launch limit"):
            forward(x, *state, *w, method="grid")
        out, h_n, *rest = forward(x, *state, *w, lengths=lengths)   # auto
        cache = rest[1:] if kind == "lstm" else rest
        with pytest.raises(ValueError, match="cooperative launch limit"):
            backward(d_out, *d_state, x, *state, w[0], w[1], *cache,
                     lengths=lengths, method="grid")
        ref = _reference_backward(kind, *case, False)
        got = _device_backward(kind, *case, False, "auto")
        _check_gradients(ref, got, dtype)

    @pytest.mark.skipif(SIM, reason="the simulator has no launch limits")
    def test_the_cooperative_limit_is_read_from_the_device():
        from numba import cuda
        x, (h0, c0), w = _problem(np.float32, 2, 4, 8, 512)
        dev = [cuda.to_device(a) for a in (x, h0, c0, *w)]
        grid = kc._PERSISTENT["lstm", np.dtype(np.float32)][1]
        units = kc.grid_units(512, np.float32, 4)

        def f32(*shape):
            return cuda.device_array(shape, np.float32)
        lengths = cuda.to_device(np.full(4, 2, np.int64))
        args = (f32(2, 4, 2048), dev[4], f32(1), dev[1], dev[2], lengths,
                False, False, units, f32(2 * 4 * 512), f32(2, 4, 512),
                f32(2, 4, 512), f32(4, 512), f32(4, 512), f32(2, 4, 512),
                f32(2, 4, 512))
        limit = kc._cooperative_limit(grid, args, 128,
                                      4 * units * 512 * 4)
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
        assert limit == int(limit) and sms <= limit <= 32 * sms
