"""Benchmark: lstmlib's LSTM and GRU (numpy reference, numpy-fast, Numba)
against torch.

Run ``python -m lstmlib.bench`` (``--help`` for the options). One process,
single-threaded by default (numpy's BLAS, Numba and torch all set to one
thread), every path timed *interleaved*: each repetition runs every backend
once, in a rotating order, so a slow moment of the machine hits all of them
alike, and the ratio against torch is taken per repetition (paired) before
the median.

Before any timing, every backend's output, final state and gradients are
compared with the numpy reference; a backend that disagrees is reported as
wrong, left out of the timings, and the exit status is 2.

Backends: ``numpy`` (the plain reference: its ratio is reported, it has no
goal), ``numpy-fast``, ``numba`` (kernel level: the cell functions called
directly on prepared arrays), ``numba-layer`` (the API users call:
``from_torch(module, backend="numba")``, then ``layer.forward`` and
``layer.backward``, validation and array preparation included), ``torch``
and ``torch-nomkldnn``.

Reported per (cell, dtype, shape, backend): forward, backward and total
median times, the paired total ratio against torch (default oneDNN path and
with ``torch.backends.mkldnn`` disabled), microseconds per time step,
GFLOP/s of the matrix products and their percent of the machine's peak
(sgemm/dgemm measured at the start and at the end of the same run, the
better of the two, with the copy bandwidth for the roofline), and the
first call's time (Numba: compiling or loading its cache; ``--cold-jit``
makes it the compile time) separately.

``--clock cpu`` times the CPU paths by this process's CPU time instead of
wall time (single-threaded only): on a machine shared with other work it
leaves out the moments this process waits for a core.

``--out DIR`` writes ``results.json``, ``results.csv`` and ``results.png``;
``--record`` writes ``lstmlib/bench_results/cpu-<date>T<time>.json`` (the
newest is the file the performance chapter plots; earlier ones are kept);
``--gpu`` times the CUDA kernels against torch/cuDNN and writes
``lstmlib/bench_results/gpu-<date>T<time>.json``. The run ends with the
chapter's speed goals, each marked met or missed.
"""

import argparse
import ctypes
import csv
import datetime
import glob
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .cells import CELL_TYPES

SHAPES = {                      # name: (T, B, D, H)
    "tiny": (5, 2, 3, 4),
    "small": (50, 1, 16, 32),
    "medium": (100, 32, 64, 128),
    "large": (200, 64, 256, 512),
    "large-B4": (200, 4, 256, 512),
}
DEFAULT_SHAPES = ("small", "medium", "large", "large-B4")
CELLS = ("lstm", "gru")
GATES = {cell: len(CELL_TYPES[cell].gates) for cell in CELLS}
DTYPES = ("float32", "float64")
BACKENDS = ("numpy", "numpy-fast", "numba", "numba-layer", "torch",
            "torch-nomkldnn")
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}   # max |a-b| / max |a|
RESULTS_DIR = Path(__file__).with_name("bench_results")


# ---------------------------------------------------------------------------
# threads

def _openblas_libs():
    """numpy's bundled OpenBLAS (scipy-openblas in numpy 2 wheels), if any."""
    libs = []
    for pattern in ("numpy.libs/libscipy_openblas*.so*", "numpy.libs/libopenblas*.so*",
                    "numpy/.dylibs/libscipy_openblas*.dylib"):
        for path in glob.glob(os.path.join(os.path.dirname(os.path.dirname(
                np.__file__)), pattern)):
            try:
                libs.append(ctypes.CDLL(path))
            except OSError:
                pass
    return libs


def set_threads(n):
    """Set numpy's BLAS, Numba's and torch's thread counts to ``n``; return
    what each reports afterwards."""
    report = {}
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
        report["blas"] = f"{n} (threadpoolctl)"
    except ImportError:
        done = None
        for lib in _openblas_libs():
            for setter, getter in (
                    ("scipy_openblas_set_num_threads64_",
                     "scipy_openblas_get_num_threads64_"),
                    ("openblas_set_num_threads", "openblas_get_num_threads")):
                if hasattr(lib, setter):
                    getattr(lib, setter)(ctypes.c_int(n))
                    done = int(getattr(lib, getter)())
        report["blas"] = done if done is not None else \
            "unknown (set OPENBLAS_NUM_THREADS/MKL_NUM_THREADS before starting)"
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    report["numba"] = numba.get_num_threads()
    import torch
    torch.set_num_threads(n)
    report["torch"] = torch.get_num_threads()
    return report


# ---------------------------------------------------------------------------
# machine

def machine_info():
    import numba
    import torch
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:                 # older numpy: no dict mode
        blas = "unknown"
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu, "logical_cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": np.__version__, "blas": blas, "numba": numba.__version__,
        "torch": torch.__version__,
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "svml": bool(getattr(numba.config, "USING_SVML", False)),
        "commit": commit,
    }


def measure_peak(quick=False):
    """sgemm/dgemm GFLOP/s and copy bandwidth (GB/s) on this machine, now."""
    n = 256 if quick else 1024
    rng = np.random.default_rng(0)
    peak = {}
    for name, dt in (("sgemm_gflops", np.float32), ("dgemm_gflops", np.float64)):
        a = rng.standard_normal((n, n)).astype(dt)
        b = rng.standard_normal((n, n)).astype(dt)
        c = np.empty((n, n), dt)
        best = min(_timed(lambda: np.matmul(a, b, out=c)) for _ in range(5))
        peak[name] = 2 * n ** 3 / best / 1e9
    m = (1 << 20) if quick else (1 << 23)          # float64 elements
    src = rng.standard_normal(m)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(5))
    peak["copy_gbs"] = 2 * src.nbytes / best / 1e9    # read + write
    return peak


# What the CPU timings read: wall time (default), or with ``--clock cpu`` the
# CPU time of this process (user + system, all its threads). On a machine
# shared with other work, a process that is descheduled for a while loses
# wall time but no CPU time, so single-threaded paths compare more fairly by
# CPU time; the caches are still shared, so a busy machine still slows
# everything down somewhat.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = CLOCKS["wall"]


def _timed(fn):
    t0 = _clock()
    fn()
    return _clock() - t0


def shape_dims(shape):
    """(T, B, D, H) of a shape: a name from SHAPES, a "TxBxDxH" string or a
    tuple. ValueError naming ``--shapes`` otherwise."""
    if isinstance(shape, tuple):
        return shape
    if shape in SHAPES:
        return SHAPES[shape]
    try:
        T, B, D, H = (int(v) for v in shape.split("x"))
    except ValueError:
        raise ValueError(f"--shapes: expected names from {list(SHAPES)} or "
                         f"TxBxDxH, received {shape!r}") from None
    return T, B, D, H


def matmul_flops(cell, T, B, D, H):
    """FLOPs of the matrix products: forward 2*T*B*(D+H)*G*H, backward twice
    that (dx and dh_prev, dW_ih and dW_hh). Element-wise work is not counted."""
    fwd = 2 * T * B * (D + H) * GATES[cell] * H
    return fwd, 2 * fwd


# ---------------------------------------------------------------------------
# the paths being timed

class Problem:
    """One (cell, dtype, shape): inputs, weights, output gradient, torch module."""

    def __init__(self, cell, dtype, shape, seed=0):
        import torch
        T, B, D, H = shape_dims(shape)
        self.cell, self.dtype, self.shape = cell, np.dtype(dtype), shape
        self.T, self.B, self.D, self.H = T, B, D, H
        rng = np.random.default_rng(seed)
        G = GATES[cell]
        s = 1 / np.sqrt(H)
        dt = self.dtype

        def u(*shp):
            return rng.uniform(-s, s, shp).astype(dt)

        self.x = rng.standard_normal((T, B, D)).astype(dt)
        self.weights = (u(G * H, D), u(G * H, H), u(G * H), u(G * H))
        nstate = 2 if cell == "lstm" else 1
        self.state = tuple(0.1 * rng.standard_normal((B, H)).astype(dt)
                           for _ in range(nstate))
        self.d_out = rng.standard_normal((T, B, H)).astype(dt)
        tdt = torch.float64 if dt == np.float64 else torch.float32
        mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(D, H).to(tdt)
        with torch.no_grad():
            for p, w in zip((mod.weight_ih_l0, mod.weight_hh_l0,
                             mod.bias_ih_l0, mod.bias_hh_l0), self.weights):
                p.copy_(torch.from_numpy(w))
        self.module = mod
        self.tx = torch.from_numpy(self.x.copy()).requires_grad_(True)
        self.tstate = tuple(torch.from_numpy(s[None].copy()).requires_grad_(True)
                            for s in self.state)
        self.td_out = torch.from_numpy(self.d_out.copy())


class LstmlibPath:
    """A backend of lstmlib through the uniform cell interface."""

    def __init__(self, name, cell_type, problem, perturb=0.0):
        self.name, self.cell, self.p, self.perturb = name, cell_type, problem, perturb
        self._cache = None

    def forward(self):
        p = self.p
        out, state_n, self._cache = self.cell.forward(p.x, p.state, p.weights)
        if self.perturb:                           # --inject-wrong
            out = out + self.perturb
        return out, state_n

    def backward(self):
        dx, dstate0, dw = self.cell.backward(
            self.p.d_out, (None,) * self.cell.num_states, self._cache)
        return dx, dw


class LayerPath:
    """A backend of lstmlib through the layer API users call: the layer
    ``from_torch`` builds from the problem's torch module, then
    ``layer.forward(x, state)`` and ``layer.backward(d_output)``."""

    def __init__(self, name, backend, problem, perturb=0.0):
        from .interop import from_torch
        self.name, self.p, self.perturb = name, problem, perturb
        self.layer = from_torch(problem.module, backend=backend)
        self.state = tuple(s[None] for s in problem.state)
        if len(self.state) == 1:
            self.state = self.state[0]

    def forward(self):
        out, state_n = self.layer.forward(self.p.x, self.state)
        if self.perturb:
            out = out + self.perturb
        return out, (state_n[0] if isinstance(state_n, tuple) else state_n)[0:1]

    def backward(self):
        dx, _ = self.layer.backward(self.p.d_out)
        g = self.layer.grads
        return dx, tuple(g[k] for k in ("weight_ih_l0", "weight_hh_l0",
                                          "bias_ih_l0", "bias_hh_l0"))


class TorchPath:
    """torch.nn.LSTM/GRU on the CPU, optionally with oneDNN disabled."""

    def __init__(self, name, problem, mkldnn=True):
        import warnings
        warnings.filterwarnings(       # a note about Intel GPUs, on every flags()
            "ignore", message="TF32 acceleration on top of oneDNN")
        self.name, self.p, self.mkldnn = name, problem, mkldnn
        self._out = None

    def _flags(self):
        import torch
        return torch.backends.mkldnn.flags(enabled=self.mkldnn)

    def forward(self):
        p = self.p
        for t in (p.tx, *p.tstate, *p.module.parameters()):
            t.grad = None
        with self._flags():
            st = p.tstate if p.cell == "lstm" else p.tstate[0]
            self._out, state_n = p.module(p.tx, st)
        return self._out, state_n

    def backward(self):
        with self._flags():
            self._out.backward(self.p.td_out)
        m = self.p.module
        return self.p.tx.grad, (m.weight_ih_l0.grad, m.weight_hh_l0.grad,
                                m.bias_ih_l0.grad, m.bias_hh_l0.grad)


def _np(a):
    return a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)


def _err(ref, got):
    ref, got = _np(ref), _np(got)
    return float(np.max(np.abs(ref - got)) / max(np.max(np.abs(ref)), 1e-30))


def _results(path):
    out, st = path.forward()
    dx, dw = path.backward()
    h = st if hasattr(st, "detach") else st[0]    # torch GRU: a tensor
    if hasattr(h, "detach") and h.dim() == 3:     # torch: (layers, B, H)
        h = h[0]
    return [_np(v) for v in (out, h, dx, *dw)]


def check_path(path, reference):
    """Largest normwise error of output, final h, dx and every weight
    gradient against the reference results (a list from ``_results``)."""
    return max(_err(r, g) for r, g in zip(reference, _results(path)))


def make_paths(problem, backends, inject_wrong=None):
    from .cells import get_cell
    paths = {}
    for name in backends:
        wrong = 1e-3 if name == inject_wrong else 0.0
        if name in ("numpy", "numpy-fast", "numba"):
            paths[name] = LstmlibPath(name, get_cell(problem.cell, name),
                                      problem, wrong)
        elif name == "numba-layer":
            paths[name] = LayerPath(name, "numba", problem, wrong)
        elif name == "torch":
            paths[name] = TorchPath(name, problem, mkldnn=True)
        elif name == "torch-nomkldnn":
            paths[name] = TorchPath(name, problem, mkldnn=False)
        else:
            raise ValueError(f"backends: expected names from {BACKENDS}, "
                             f"received {name!r}")
    return paths


# ---------------------------------------------------------------------------
# running

def run_problem(problem, backends, repeats, inject_wrong=None, progress=None):
    """Check, then time every backend interleaved; one row per backend."""
    paths = make_paths(problem, backends, inject_wrong)
    from .cells import get_cell
    reference = _results(LstmlibPath("numpy", get_cell(problem.cell, "numpy"),
                                     problem))
    first_call, errors = {}, {}
    for name, path in paths.items():
        t0 = time.perf_counter()
        path.forward()
        path.backward()
        first_call[name] = time.perf_counter() - t0
        errors[name] = check_path(path, reference)
    tol = TOLERANCE[problem.dtype.name]
    ok = {n: errors[n] <= tol for n in paths}
    timed = [n for n in paths if ok[n]]
    fwd = {n: [] for n in timed}
    bwd = {n: [] for n in timed}
    for r in range(repeats):
        order = timed[r % len(timed):] + timed[:r % len(timed)] if timed else []
        for n in order:
            fwd[n].append(_timed(paths[n].forward))
            bwd[n].append(_timed(paths[n].backward))
        if progress is not None:
            progress.update(1)
    tot = {n: np.add(fwd[n], bwd[n]) for n in timed}
    f_fwd, f_bwd = matmul_flops(problem.cell, problem.T, problem.B, problem.D,
                                problem.H)
    rows = []
    for n in paths:
        row = dict(cell=problem.cell, dtype=problem.dtype.name,
                   shape=problem.shape if isinstance(problem.shape, str) else "custom",
                   T=problem.T, B=problem.B, D=problem.D, H=problem.H,
                   backend=n, correct=bool(ok[n]), max_error=errors[n],
                   first_call_s=first_call[n])
        if ok[n]:
            total = float(np.median(tot[n]))
            row.update(fwd_ms=1e3 * float(np.median(fwd[n])),
                       bwd_ms=1e3 * float(np.median(bwd[n])),
                       total_ms=1e3 * total,
                       us_per_step=1e6 * total / problem.T,
                       gflops=(f_fwd + f_bwd) / total / 1e9)
            for ref in ("torch", "torch-nomkldnn"):
                if ref in tot:
                    row[f"ratio_vs_{ref}"] = float(np.median(tot[n] / tot[ref]))
        rows.append(row)
    return rows


def add_peak_fraction(rows, peak):
    for row in rows:
        if "gflops" in row:
            p = peak["sgemm_gflops" if row["dtype"] == "float32" else "dgemm_gflops"]
            row["pct_peak"] = 100.0 * row["gflops"] / p


# The CPU goals the performance chapter reports against: (what, backend,
# dtype, shapes, largest allowed ratio ours/torch). The plain reference
# ("numpy") has none: it is the readable oracle.
GOALS = (
    ("Numba 3x faster than torch, small, float32", "numba", "float32",
     ("small",), 1 / 3),
    ("Numba 3x faster than torch via layer API, small, float32",
     "numba-layer", "float32", ("small",), 1 / 3),
    ("Numba 20x faster than torch, small, float64", "numba", "float64",
     ("small",), 1 / 20),
    ("Numba via layer API at least as fast as torch, float32",
     "numba-layer", "float32", ("medium", "large-B4"), 1.0),
    ("numpy-fast within 1.3x of torch, medium, float32", "numpy-fast",
     "float32", ("medium",), 1.3),
    ("numpy-fast within 1.15x of torch, large, float32", "numpy-fast",
     "float32", ("large",), 1.15),
    ("numpy-fast faster than torch in float64", "numpy-fast", "float64",
     ("small", "medium", "large", "large-B4"), 1.0),
)


# On a GPU: the persistent kernel's forward pass against cuDNN's (paired
# ratio ``ratio_vs_cudnn``); forward + backward (``ratio_train_vs_cudnn``)
# is reported beside it, without a goal of its own.
GPU_GOALS = (
    ("CUDA forward within 1.5x of cuDNN, small", "cuda-persistent",
     "float32", ("small",), 1.5),
    ("CUDA forward within 1.5x of cuDNN, medium", "cuda-persistent",
     "float32", ("medium",), 1.5),
    ("CUDA forward 2x faster than cuDNN, T=200 B=4 H=512", "cuda-persistent",
     "float32", ("large-B4",), 0.5),
)


def goal_report(rows, goals=GOALS, key="ratio_vs_torch"):
    """One entry per goal, cell and shape present in ``rows``: the measured
    paired ratio ours/reference (``key``), the limit, and whether it is
    met."""
    found = {(r["cell"], r["dtype"], r["shape"], r["backend"]):
             r.get(key) for r in rows if r.get("correct")}
    report = []
    for what, backend, dtype, shapes, limit in goals:
        for cell in CELLS:
            for shape in shapes:
                ratio = found.get((cell, dtype, shape, backend))
                if ratio is not None:
                    report.append(dict(goal=what, cell=cell, shape=shape,
                                       ratio=ratio, limit=limit,
                                       met=ratio <= limit))
    return report


def format_goals(report, against="torch"):
    lines = []
    for g in report:
        lines.append(f"{'met   ' if g['met'] else 'MISSED'} {g['goal']:56} "
                     f"{g['cell']:4} {g['shape']:8} ours/{against} "
                     f"{g['ratio']:6.3f} (limit {g['limit']:.3f})")
    return "\n".join(lines)


def record_path(kind, when=None):
    """A new file in bench_results for this run; never an existing one."""
    when = when or datetime.datetime.now()
    path = RESULTS_DIR / f"{kind}-{when:%Y-%m-%dT%H%M%S}.json"
    n = 1
    while path.exists():
        n += 1
        path = RESULTS_DIR / f"{kind}-{when:%Y-%m-%dT%H%M%S}-{n}.json"
    return path


def format_table(rows):
    head = (f"{'cell':4} {'dtype':7} {'shape':8} {'backend':14} {'fwd ms':>9} "
            f"{'bwd ms':>9} {'total ms':>9} {'/torch':>7} {'/no-dnn':>7} "
            f"{'us/step':>8} {'GFLOP/s':>8} {'%peak':>6} {'1st call s':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if not r["correct"]:
            lines.append(f"{r['cell']:4} {r['dtype']:7} {r['shape']:8} "
                         f"{r['backend']:14} WRONG: max error {r['max_error']:.2e} "
                         f"> {TOLERANCE[r['dtype']]:.0e}, not timed")
            continue
        lines.append(
            f"{r['cell']:4} {r['dtype']:7} {r['shape']:8} {r['backend']:14} "
            f"{r['fwd_ms']:9.3f} {r['bwd_ms']:9.3f} {r['total_ms']:9.3f} "
            f"{r.get('ratio_vs_torch', float('nan')):7.3f} "
            f"{r.get('ratio_vs_torch-nomkldnn', float('nan')):7.3f} "
            f"{r['us_per_step']:8.1f} {r['gflops']:8.2f} "
            f"{r.get('pct_peak', float('nan')):6.1f} {r['first_call_s']:10.3f}")
    return "\n".join(lines)


def plot(results, ax=None, dtype=None):
    """Bar chart of the paired time ratio against torch (log scale; below 1
    is faster than torch), one group per cell, dtype and shape."""
    import matplotlib.pyplot as plt
    rows = [r for r in results["rows"] if r.get("correct") and
            "ratio_vs_torch" in r and r["backend"] != "torch"
            and (dtype is None or r["dtype"] == dtype)]
    groups = []
    for r in rows:
        g = (r["cell"], r["dtype"], r["shape"])
        if g not in groups:
            groups.append(g)
    backends = [b for b in ("numpy", "numpy-fast", "numba", "numba-layer",
                            "torch-nomkldnn")
                if any(r["backend"] == b for r in rows)]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.9 * len(groups) + 2), 4))
    width = 0.8 / max(1, len(backends))
    for j, b in enumerate(backends):
        xs, ys = [], []
        for i, g in enumerate(groups):
            for r in rows:
                if (r["cell"], r["dtype"], r["shape"]) == g and r["backend"] == b:
                    xs.append(i + (j - (len(backends) - 1) / 2) * width)
                    ys.append(r["ratio_vs_torch"])
        ax.bar(xs, ys, width, label=b)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{c}\n{d}\n{s}" for c, d, s in groups], fontsize=7)
    ax.set_ylabel("time / torch time (lower is faster)")
    ax.set_xlabel("cell, dtype, shape")
    ax.legend(fontsize=8)
    return ax


def load_results(path=None):
    """A recorded results file: by default the newest cpu-*.json (by the
    date recorded inside it)."""
    if path is None:
        files = sorted(RESULTS_DIR.glob("cpu-*.json"))
        if not files:
            raise FileNotFoundError(f"no cpu-*.json in {RESULTS_DIR}")
        dated = []
        for f in files:
            with open(f) as fh:
                dated.append((json.load(fh)["meta"]["date"], f.name, f))
        path = max(dated)[2]
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# GPU

def run_gpu(shapes, dtypes, repeats):
    """The CUDA kernels against torch/cuDNN, LSTM and GRU: the forward pass
    alone, and forward + backward (a training step without the optimiser).

    The float32 matrix-product peak of the GPU is measured first
    (:func:`gpu_peak`), the denominator of every percent of peak. Each
    (cell, dtype, shape) is then checked against the numpy reference
    (output, final h, and every gradient of the backward pass); a wrong
    result is reported and not timed. Both sides are timed on inputs already
    on the GPU, up to a synchronisation of the device: ours through the
    entry points with ``device=True`` (nothing copied between host and
    device; the cache stays on the GPU), cuDNN as a training-mode forward
    of the module on the GPU (which keeps its reserve space for the
    backward pass, as ours keeps the cache), then ``backward`` of its
    output with the same output gradient, the gradients of x and of the
    initial state included, as ours computes them. TF32 is off for cuDNN
    (ours computes in full float32). Repetitions alternate the paths and
    each ratio is taken per pair. ``fwd_host_ms`` is ours through the host
    API: the inputs copied in and the output and cache copied back.
    """
    from .kernels import _cuda
    if not _cuda.gpu_available():
        raise SystemExit("--gpu: no CUDA GPU found (the simulator does not "
                         "count); nothing recorded")
    import torch
    from .kernels import cuda as kc
    from .kernels import get_cell
    cuda = _cuda.cuda
    with_cudnn = torch.cuda.is_available()
    peak = gpu_peak()                              # at the start of the run
    print(f"# GPU float32 matrix-product peak (TF32 off), measured now: "
          f"{peak.get('sgemm_tflops', float('nan')):.1f} TFLOP/s",
          file=sys.stderr, flush=True)
    if with_cudnn:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    problems = [(s, c, d) for s in shapes for c in CELLS for d in dtypes]
    for n, (shape, cell, dt) in enumerate(problems, 1):
        t_start = time.perf_counter()
        p = Problem(cell, dt, shape)
        row = _gpu_problem(p, kc, get_cell, cuda, torch, with_cudnn, repeats,
                           peak)
        rows.append(row)
        state = ("correct" if row["correct"] else
                 f"WRONG (error {row['max_error']:.1e})")
        timing = ""
        if "ratio_vs_cudnn" in row:
            timing = (f", forward {row['fwd_ms']:.3f} ms = "
                      f"{row['ratio_vs_cudnn']:.2f}x cuDNN, forward+backward"
                      f" {row['train_ms']:.3f} ms = "
                      f"{row['ratio_train_vs_cudnn']:.2f}x cuDNN")
        print(f"# [{n}/{len(problems)}] {cell} {dt} {shape} "
              f"({row.get('method', '?')}): {state}{timing} "
              f"({time.perf_counter() - t_start:.1f} s)", file=sys.stderr,
              flush=True)
    return rows


def _gpu_problem(p, kc, get_cell, cuda, torch, with_cudnn, repeats, peak):
    """One row of :func:`run_gpu`: check, then time, one problem."""
    cell, dt = p.cell, str(p.dtype)
    forward = getattr(kc, f"{cell}_forward")
    backward = getattr(kc, f"{cell}_backward")
    nstate = len(p.state)
    w_ih, w_hh = p.weights[:2]

    def ours(x, state, weights, d_out, d_state, lengths, device):
        res = forward(x, *state, *weights, lengths=lengths, device=device)
        out, h_n = res[0], res[1]
        cache = res[1 + nstate:]
        grads = backward(d_out, *d_state, x, *state, weights[0], weights[1],
                         *cache, lengths=lengths, device=device)
        return out, h_n, grads

    t0 = time.perf_counter()
    zeros = tuple(np.zeros_like(s) for s in p.state)
    out, h_n, grads = ours(p.x, p.state, p.weights, p.d_out, zeros, None,
                           False)                  # compiles; host arrays
    first_call = time.perf_counter() - t0
    ref = get_cell(cell, "numpy")
    ref_out, ref_state, cache = ref.forward(p.x, p.state, p.weights)
    dx, d_state0, dw = ref.backward(p.d_out, zeros, cache)
    err = max(_err(ref_out, out), _err(ref_state[0], h_n))
    ref_grads = (dx, *d_state0, *dw)
    grad_err = max(_err(a, b) for a, b in zip(ref_grads, grads))
    row = dict(cell=cell, dtype=dt, shape=p.shape, T=p.T, B=p.B, D=p.D,
               H=p.H, backend="cuda-persistent",
               method=kc.last_methods.get("forward"),
               backward_method=kc.last_methods.get("backward"),
               max_error=max(err, grad_err), forward_error=err,
               gradient_error=grad_err,
               correct=bool(max(err, grad_err) <= TOLERANCE[dt]),
               first_call_s=first_call, cudnn_tf32=False)
    if not row["correct"]:
        return row
    d = [cuda.to_device(np.ascontiguousarray(a))
         for a in (p.x, *p.state, *p.weights, p.d_out, *zeros)]
    d_x, d_state, d_w = d[0], d[1:1 + nstate], d[1 + nstate:5 + nstate]
    d_dout, d_dstate = d[5 + nstate], d[6 + nstate:]
    d_lengths = cuda.to_device(np.full(p.B, p.T, np.int64))

    def fwd():
        forward(d_x, *d_state, *d_w, lengths=d_lengths, device=True)
        cuda.synchronize()

    def train():
        ours(d_x, d_state, d_w, d_dout, d_dstate, d_lengths, True)
        cuda.synchronize()

    paths = {"fwd": fwd, "train": train}
    if with_cudnn:
        m = p.module.cuda()
        x = p.tx.detach().cuda().requires_grad_(True)
        st = tuple(s.detach().cuda().requires_grad_(True) for s in p.tstate)
        st = st if cell == "lstm" else st[0]
        g = p.td_out.cuda()
        leaves = (x, *(st if cell == "lstm" else (st,)), *m.parameters())

        def cudnn_fwd():
            m(x.detach(), st)
            torch.cuda.synchronize()

        def cudnn_train():
            for t in leaves:
                t.grad = None
            y, _ = m(x, st)
            y.backward(g)
            torch.cuda.synchronize()

        paths["cudnn_fwd"] = cudnn_fwd
        paths["cudnn_train"] = cudnn_train
    for fn in paths.values():                       # warm up
        fn()
    times = {name: [] for name in paths}
    for r in range(repeats):
        for name in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
            times[name].append(_timed(paths[name]))
    for name, ts in times.items():
        row[f"{name}_ms"] = 1e3 * float(np.median(ts))
    if with_cudnn:
        for ours_name, theirs, key in (("fwd", "cudnn_fwd", "ratio_vs_cudnn"),
                                       ("train", "cudnn_train",
                                        "ratio_train_vs_cudnn")):
            row[key] = float(np.median(np.divide(times[ours_name],
                                                 times[theirs])))
    row["fwd_host_ms"] = 1e3 * float(np.median(
        [_timed(lambda: forward(p.x, *p.state, *p.weights))
         for _ in range(repeats)]))
    f_fwd, f_bwd = matmul_flops(cell, p.T, p.B, p.D, p.H)
    row["tflops"] = f_fwd / (row["fwd_ms"] / 1e3) / 1e12
    row["train_tflops"] = (f_fwd + f_bwd) / (row["train_ms"] / 1e3) / 1e12
    if peak.get("sgemm_tflops"):
        row["pct_peak"] = 100.0 * row["tflops"] / peak["sgemm_tflops"]
        row["train_pct_peak"] = (100.0 * row["train_tflops"]
                                 / peak["sgemm_tflops"])
    return row


_GPU_PEAK = {}


def gpu_peak(n=8192, repeats=5):
    """float32 matrix-product speed of this GPU (TF32 off), measured with
    torch: the denominator of the kernels' percent of peak. Measured once,
    at the first call (the start of a ``--gpu`` run); later calls return
    that measurement."""
    if _GPU_PEAK:
        return dict(_GPU_PEAK)
    import torch
    if not torch.cuda.is_available():
        return {}
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randn(n, n, device="cuda")
        b = torch.randn(n, n, device="cuda")

        def mm():
            a @ b
            torch.cuda.synchronize()
        mm()
        best = min(_timed(mm) for _ in range(repeats))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    _GPU_PEAK.update(sgemm_tflops=2 * n ** 3 / best / 1e12, n=n,
                     when="start of the run")
    return dict(_GPU_PEAK)


# ---------------------------------------------------------------------------

def _exit_status(rows):
    """2, with the culprits on stderr, when any backend disagreed with the
    numpy reference; else 0."""
    wrong = [r for r in rows if not r["correct"]]
    if not wrong:
        return 0
    print(f"ERROR: {len(wrong)} backend result(s) disagree with the numpy "
          f"reference: " + ", ".join(f"{r['backend']} ({r['cell']} "
                                     f"{r['dtype']} {r['shape']})" for r in wrong),
          file=sys.stderr)
    return 2


def parse_args(argv=None):
    """The command line, checked: (args, shape names, dtypes, cells,
    backends). Bad values end the program with a message naming the
    option."""
    ap = argparse.ArgumentParser(prog="python -m lstmlib.bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small peak measurement, 3 repetitions, shape 'small' "
                         "unless --shapes is given")
    ap.add_argument("--shapes", default=None,
                    help=f"comma-separated from {list(SHAPES)}, or T,B,D,H "
                         f"groups like 10x2x8x16 (default {','.join(DEFAULT_SHAPES)})")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="time by wall clock, or by this process's CPU time "
                         "(single-threaded CPU runs on a shared machine)")
    ap.add_argument("--out", default=None, help="folder for results.json/.csv/.png")
    ap.add_argument("--note", default=None,
                    help="a line kept in the results' meta as 'notes' (the "
                         "conditions of the run, e.g. a busy machine)")
    ap.add_argument("--record", action="store_true",
                    help="write lstmlib/bench_results/cpu-<date>T<time>.json")
    ap.add_argument("--gpu", action="store_true",
                    help="time the CUDA kernels against cuDNN and write "
                         "lstmlib/bench_results/gpu-<date>T<time>.json")
    ap.add_argument("--inject-wrong", default=None, metavar="BACKEND",
                    help="perturb one backend's output (tests the check)")
    ap.add_argument("--cold-jit", action="store_true",
                    help="compile Numba kernels afresh (empty cache folder), "
                         "so that the first-call column is the compile time")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    shapes = a.shapes.split(",") if a.shapes else \
        (["small"] if a.quick else list(DEFAULT_SHAPES))
    for s in shapes:
        try:
            shape_dims(s)
        except ValueError as e:
            ap.error(str(e))
    dtypes, cells, backends = (a.dtypes.split(","), a.cells.split(","),
                               a.backends.split(","))
    for name, got, allowed in (("--dtypes", dtypes, DTYPES), ("--cells", cells, CELLS),
                               ("--backends", backends, BACKENDS)):
        bad = [g for g in got if g not in allowed]
        if bad:
            ap.error(f"{name}: expected values from {list(allowed)}, received {bad}")
    if a.clock == "cpu" and (a.gpu or a.threads != 1):
        ap.error("--clock cpu: CPU time measures single-threaded CPU runs "
                 f"only, received --threads {a.threads}"
                 + (" and --gpu" if a.gpu else ""))
    if a.cold_jit and "numba" in sys.modules:
        ap.error("--cold-jit: numba was imported before the benchmark "
                 "started; run it as python -m lstmlib.bench")
    return a, shapes, dtypes, cells, backends


def gpu_main(meta, shapes, dtypes, repeats):
    """``--gpu``: time the CUDA kernels, record and print them; exit status."""
    rows = run_gpu(shapes, dtypes, repeats)
    from .kernels import _cuda
    meta.update(_cuda.device_info())
    peak = gpu_peak()
    for row in rows:
        if "tflops" in row and peak.get("sgemm_tflops"):
            row["pct_peak"] = 100.0 * row["tflops"] / peak["sgemm_tflops"]
    result = {"meta": meta, "peak": peak, "rows": rows}
    RESULTS_DIR.mkdir(exist_ok=True)
    path = record_path("gpu")
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(rows, indent=1))
    print(f"# GPU float32 matrix-product peak: {peak}")
    goals = goal_report(rows, GPU_GOALS, "ratio_vs_cudnn")
    if goals:
        print("\n# goals (paired ratio ours/cuDNN, lower is faster)")
        print(format_goals(goals, "cuDNN"))
    print(f"recorded {path}")
    return _exit_status(rows)


def run_cpu(shapes, dtypes, cells, backends, repeats, quick=False,
            inject_wrong=None, progress=True):
    """Every (shape, cell, dtype) on the CPU: (rows, peak, peak_start,
    peak_end), the peak being the better of a measurement before and one
    after, so that a busy moment of a shared machine does not deflate it."""
    peak_start = measure_peak(quick=quick)
    print("# peak: sgemm {sgemm_gflops:.1f} GFLOP/s, dgemm {dgemm_gflops:.1f} "
          "GFLOP/s, copy {copy_gbs:.1f} GB/s".format(**peak_start))
    problems = [(c, d, s) for s in shapes for c in cells for d in dtypes]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(problems) * repeats, desc="bench", unit="rep",
                   file=sys.stderr)
    rows = []
    for c, d, s in problems:
        if bar is not None:
            bar.set_postfix_str(f"{c} {d} {s}")
        rows += run_problem(Problem(c, d, s), backends, repeats, inject_wrong,
                            bar)
    if bar is not None:
        bar.close()
    peak_end = measure_peak(quick=quick)
    print("# peak at the end: sgemm {sgemm_gflops:.1f} GFLOP/s, dgemm "
          "{dgemm_gflops:.1f} GFLOP/s, copy {copy_gbs:.1f} GB/s".format(**peak_end))
    peak = {k: max(peak_start[k], peak_end[k]) for k in peak_start}
    add_peak_fraction(rows, peak)
    return rows, peak, peak_start, peak_end


def write_outputs(result, out=None, record=False):
    """results.json, .csv and .png in ``out``; a new recording with
    ``record``. Never overwrites a recording."""
    rows = result["rows"]
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=1))
        keys = sorted({k for r in rows for k in r})
        with open(out / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        ax = plot(result)
        ax.set_title("lstmlib vs torch, single thread")
        plt.tight_layout()
        plt.savefig(out / "results.png", dpi=120)
        print(f"wrote {out / 'results.json'}, results.csv, results.png")
    if record:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = record_path("cpu")
        path.write_text(json.dumps(result, indent=1))
        print(f"recorded {path}")


def main(argv=None):
    a, shapes, dtypes, cells, backends = parse_args(argv)
    if a.cold_jit:
        import tempfile
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="lstmlib-jit-")
    global _clock
    _clock = CLOCKS[a.clock]
    threads = set_threads(a.threads)
    repeats = a.repeats or (3 if a.quick else 7)
    meta = machine_info()
    meta["threads"] = threads
    meta["clock"] = a.clock
    if a.note:
        meta["notes"] = a.note
    meta["jit_cache"] = "cold (compiled in this run)" if a.cold_jit else \
        "warm when a previous run compiled the kernels (cache=True)"
    print(f"# {meta['cpu']} | numpy {meta['numpy']} ({meta['blas']}), numba "
          f"{meta['numba']}, torch {meta['torch']} | threads {threads}")
    if a.gpu:
        return gpu_main(meta, shapes, dtypes, repeats)
    rows, peak, meta["peak_start"], meta["peak_end"] = run_cpu(
        shapes, dtypes, cells, backends, repeats, a.quick, a.inject_wrong,
        not a.no_progress)
    result = {"meta": meta, "peak": peak, "repeats": repeats, "rows": rows}
    print(format_table(rows))
    goals = goal_report(rows)
    if goals:
        print("\n# goals (paired ratio ours/torch, lower is faster)")
        print(format_goals(goals))
    write_outputs(result, a.out, a.record)
    return _exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
