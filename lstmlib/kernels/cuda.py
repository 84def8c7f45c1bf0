r"""CUDA kernels for the LSTM, written with ``numba.cuda``.

The CUDA execution model in one paragraph: a kernel launch starts a *grid* of
*blocks*, each a group of up to 1024 *threads*; every thread runs the same
function and finds its work from ``cuda.blockIdx`` and ``cuda.threadIdx``.
Threads of one block share a small fast *shared memory* (tens of KiB per
block) and can wait for each other (``cuda.syncthreads()``); blocks cannot,
except in a cooperative launch, where ``cuda.cg.this_grid().sync()`` waits for
the whole grid.

Kernels, from simplest to the one that matters for small batches:

``lstm_gates_kernel``
    one thread per hidden unit (b, k): the element-wise part of a step, fused
    (four activations, the cell update, tanh(c), h) in one pass.
``matmul_kernel``
    C = A @ B with 16 x 16 tiles staged through shared memory, so each value
    read from global memory is used 16 times.
``persistent_single_block``
    the whole forward sequence in one launch of one block: W_hh is copied to
    shared memory once and stays there for all T steps; h_{t-1} lives in
    shared memory too, and one ``syncthreads`` per step separates reading it
    from writing h_t. No launch per step, no re-reading of W_hh from global
    memory. Only for small H (W_hh must fit: 4H*H values).
``persistent_grid``
    the same over many blocks (Diamos et al. 2016): each block keeps the rows
    of W_hh for its own slice of hidden units in shared memory; h_t is
    exchanged through global memory and the grid synchronises once per step.
    Needs a real GPU (cooperative launch): the simulator runs blocks one after
    another, so its ``grid.sync()`` cannot work.

Host entry point: :func:`lstm_forward`. There is no CUDA backward pass: the
cuda backend runs BPTT on the CPU with the Numba kernels, from the cache the
GPU forward pass returns (see :mod:`lstmlib.kernels.cuda_cells`).

Shapes: T time steps, B batch, D input features, H hidden units; gates i, f,
g, o stacked as in the reference (W_hh is (4H, H)).
"""

import math

import numpy as np
from numba import float32, float64

from ._cuda import SIMULATOR, cuda, gpu_available, require

TILE = 16                      # matmul tile edge (threads per block: 256)
MAX_SHARED_BYTES = 48 * 1024   # static shared-memory budget per block
_NB = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}


# ---------------------------------------------------------------------------
# device functions

@cuda.jit(device=True)
def _sigmoid(a):
    return 0.5 * (1.0 + math.tanh(0.5 * a))      # as lstmlib.activations


# ---------------------------------------------------------------------------
# fused element-wise gate kernel (one step)

@cuda.jit
def lstm_gates_kernel(a, c_prev, h_prev, valid, h, c, tanh_c):
    """One thread per (b, k). a (B, 4H) pre-activations, overwritten with
    i, f, g, o; writes h, c, tanh_c (B, H); invalid rows keep the state."""
    b, k = cuda.grid(2)
    B, H = c_prev.shape
    if b >= B or k >= H:
        return
    if not valid[b]:
        h[b, k] = h_prev[b, k]
        c[b, k] = c_prev[b, k]
        tanh_c[b, k] = 0.0
        return
    i = _sigmoid(a[b, k])
    f = _sigmoid(a[b, H + k])
    g = math.tanh(a[b, 2 * H + k])
    o = _sigmoid(a[b, 3 * H + k])
    ck = f * c_prev[b, k] + i * g
    tc = math.tanh(ck)
    a[b, k] = i
    a[b, H + k] = f
    a[b, 2 * H + k] = g
    a[b, 3 * H + k] = o
    c[b, k] = ck
    tanh_c[b, k] = tc
    h[b, k] = o * tc


# ---------------------------------------------------------------------------
# tiled matrix product

def _make_matmul(nbtype):
    @cuda.jit
    def matmul_kernel(A, Bm, C):
        """C (M, N) = A (M, K) @ Bm (K, N), 16 x 16 tiles in shared memory."""
        sa = cuda.shared.array((TILE, TILE), nbtype)
        sb = cuda.shared.array((TILE, TILE), nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        M, K = A.shape
        N = Bm.shape[1]
        acc = 0.0
        for k0 in range(0, K, TILE):
            # each thread stages one element of each tile (0 outside)
            sa[ty, tx] = A[row, k0 + tx] if row < M and k0 + tx < K else 0.0
            sb[ty, tx] = Bm[k0 + ty, col] if k0 + ty < K and col < N else 0.0
            cuda.syncthreads()             # tiles complete before use
            for kk in range(TILE):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()             # done with them before reloading
        if row < M and col < N:
            C[row, col] = acc
    return matmul_kernel


_MATMUL = {dt: _make_matmul(nb) for dt, nb in _NB.items()}


def matmul(A, Bm):
    """A @ Bm on the device (host or device arrays in, device array out)."""
    dt = np.dtype(A.dtype)
    M, K = A.shape
    N = Bm.shape[1]
    C = cuda.device_array((M, N), dt)
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    _MATMUL[dt][grid, (TILE, TILE)](A, Bm, C)
    return C


# ---------------------------------------------------------------------------
# persistent kernels

def _make_persistent_single(nbtype):
    @cuda.jit
    def persistent_single_block(xg, w_hh, h0, c0, lengths, reverse, out,
                                gates, cs, tanh_cs, hs, h_n, c_n):
        """Whole forward sequence, one block. Dynamic shared memory holds
        W_hh^T (H x 4H: thread k reads column k, consecutive threads hit
        consecutive banks) followed by two (B, H) buffers for h."""
        sm = cuda.shared.array(0, nbtype)
        T, B, G4 = xg.shape
        H = G4 // 4
        HOFF = H * G4
        BH = B * H
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for idx in range(tid, H * G4, nt):          # W_hh -> shared, once
            m = idx // G4
            j = idx % G4
            sm[idx] = w_hh[j, m]
        for idx in range(tid, BH, nt):
            sm[HOFF + idx] = h0[idx // H, idx % H]
            c_n[idx // H, idx % H] = c0[idx // H, idx % H]
        cuda.syncthreads()
        cur = 0
        for s in range(T):
            t = T - 1 - s if reverse else s
            src = HOFF + cur * BH
            dst = HOFF + (1 - cur) * BH
            for idx in range(tid, BH, nt):           # this thread's units
                b = idx // H
                k = idx % H
                if t >= lengths[b]:                  # padding: keep state
                    sm[dst + idx] = sm[src + idx]
                    out[t, b, k] = 0.0
                    hs[t, b, k] = sm[src + idx]
                    cs[t, b, k] = c_n[b, k]
                    tanh_cs[t, b, k] = 0.0
                    continue
                ai = xg[t, b, k]
                af = xg[t, b, H + k]
                ag = xg[t, b, 2 * H + k]
                ao = xg[t, b, 3 * H + k]
                for m in range(H):                   # h_{t-1} W_hh^T
                    hv = sm[src + b * H + m]
                    wrow = m * G4
                    ai += sm[wrow + k] * hv
                    af += sm[wrow + H + k] * hv
                    ag += sm[wrow + 2 * H + k] * hv
                    ao += sm[wrow + 3 * H + k] * hv
                i = _sigmoid(ai)
                f = _sigmoid(af)
                g = math.tanh(ag)
                o = _sigmoid(ao)
                ck = f * c_n[b, k] + i * g
                tc = math.tanh(ck)
                hk = o * tc
                c_n[b, k] = ck
                sm[dst + idx] = hk
                gates[t, b, k] = i
                gates[t, b, H + k] = f
                gates[t, b, 2 * H + k] = g
                gates[t, b, 3 * H + k] = o
                cs[t, b, k] = ck
                tanh_cs[t, b, k] = tc
                hs[t, b, k] = hk
                out[t, b, k] = hk
            cuda.syncthreads()                       # h_t complete
            cur = 1 - cur
        for idx in range(tid, BH, nt):
            h_n[idx // H, idx % H] = sm[HOFF + cur * BH + idx]
    return persistent_single_block


def _make_persistent_grid(nbtype):
    @cuda.jit
    def persistent_grid(xg, w_hh, h0, c0, lengths, reverse, units, hbuf, out,
                        gates, cs, tanh_cs, hs, h_n, c_n):
        """Whole forward sequence over many blocks (cooperative launch).
        Block j owns hidden units [j*units, (j+1)*units) and keeps their
        4*units rows of W_hh in shared memory (transposed, H x 4*units).
        hbuf (2, B, H) in global memory carries h between blocks."""
        grid = cuda.cg.this_grid()
        sm = cuda.shared.array(0, nbtype)
        T, B, G4 = xg.shape
        H = G4 // 4
        U4 = 4 * units
        k0 = cuda.blockIdx.x * units
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for idx in range(tid, H * U4, nt):           # my rows of W_hh
            m = idx // U4
            q = (idx % U4) // units                  # gate
            u = idx % units
            sm[idx] = w_hh[q * H + k0 + u, m] if k0 + u < H else 0.0
        for idx in range(tid, B * units, nt):
            b = idx // units
            k = k0 + idx % units
            if k < H:
                hbuf[0, b, k] = h0[b, k]
                c_n[b, k] = c0[b, k]
        grid.sync()
        cur = 0
        for s in range(T):
            t = T - 1 - s if reverse else s
            for idx in range(tid, B * units, nt):
                b = idx // units
                u = idx % units
                k = k0 + u
                if k >= H:
                    continue
                if t >= lengths[b]:
                    hbuf[1 - cur, b, k] = hbuf[cur, b, k]
                    out[t, b, k] = 0.0
                    hs[t, b, k] = hbuf[cur, b, k]
                    cs[t, b, k] = c_n[b, k]
                    tanh_cs[t, b, k] = 0.0
                    continue
                ai = xg[t, b, k]
                af = xg[t, b, H + k]
                ag = xg[t, b, 2 * H + k]
                ao = xg[t, b, 3 * H + k]
                for m in range(H):
                    hv = hbuf[cur, b, m]
                    wrow = m * U4
                    ai += sm[wrow + u] * hv
                    af += sm[wrow + units + u] * hv
                    ag += sm[wrow + 2 * units + u] * hv
                    ao += sm[wrow + 3 * units + u] * hv
                i = _sigmoid(ai)
                f = _sigmoid(af)
                g = math.tanh(ag)
                o = _sigmoid(ao)
                ck = f * c_n[b, k] + i * g
                tc = math.tanh(ck)
                hk = o * tc
                c_n[b, k] = ck
                hbuf[1 - cur, b, k] = hk
                gates[t, b, k] = i
                gates[t, b, H + k] = f
                gates[t, b, 2 * H + k] = g
                gates[t, b, 3 * H + k] = o
                cs[t, b, k] = ck
                tanh_cs[t, b, k] = tc
                hs[t, b, k] = hk
                out[t, b, k] = hk
            grid.sync()                              # every h_t written
            cur = 1 - cur
        for idx in range(tid, B * units, nt):
            b = idx // units
            k = k0 + idx % units
            if k < H:
                h_n[b, k] = hbuf[cur, b, k]
    return persistent_grid


_SINGLE = {dt: _make_persistent_single(nb) for dt, nb in _NB.items()}
_GRID = {dt: _make_persistent_grid(nb) for dt, nb in _NB.items()}


def single_block_fits(B, H, dtype):
    """Whether W_hh and two h buffers fit one block's shared memory."""
    return (4 * H * H + 2 * B * H) * np.dtype(dtype).itemsize \
        <= MAX_SHARED_BYTES


def grid_units(H, dtype):
    """Hidden units per block for the grid kernel (W slice <= 48 KiB)."""
    per_unit = 4 * H * np.dtype(dtype).itemsize
    return max(1, min(H, MAX_SHARED_BYTES // per_unit))


METHODS = ("auto", "single", "grid", "stepwise")


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                 reverse=False, method="auto"):
    """LSTM forward on the GPU (or the simulator).

    x (T, B, D), h0 and c0 (B, H), weights as in :func:`lstmlib.lstm.lstm_forward`;
    lengths (B,) int64 or None. ``method``: ``"single"`` (one-block persistent
    kernel), ``"grid"`` (multi-block persistent kernel, real GPU only),
    ``"stepwise"`` (per step: tiled matmul + fused gate kernel) or ``"auto"``
    (single when W_hh fits a block, else grid on a GPU, else stepwise).
    The input projection of all steps is one tiled matmul.

    Returns host arrays: out (T, B, H), h_n, c_n (B, H) and the cache
    gates (T, B, 4H) = i, f, g, o; cs, tanh_cs, hs (T, B, H).
    """
    require()
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, received {method!r}")
    T, B, D = x.shape
    H = h0.shape[1]
    dt = np.dtype(x.dtype)
    if method == "auto":
        if single_block_fits(B, H, dt):
            method = "single"
        else:
            method = "grid" if gpu_available() else "stepwise"
    if method == "grid" and SIMULATOR:
        raise ValueError("method: 'grid' needs a real GPU (the simulator's "
                         "grid.sync() synchronises one block only)")
    if method == "single" and not single_block_fits(B, H, dt):
        raise ValueError(f"method: 'single' needs W_hh in one block's shared "
                         f"memory; H={H}, B={B}, dtype {dt} do not fit")
    lengths = np.full(B, T, np.int64) if lengths is None else \
        np.ascontiguousarray(lengths, np.int64)
    # input projection of every step: one (T*B, D) x (D, 4H) product
    bias = np.zeros(4 * H, dt) if b_ih is None else (b_ih + b_hh).astype(dt)
    xg = matmul(np.ascontiguousarray(x.reshape(T * B, D)),
                np.ascontiguousarray(w_ih.T)).copy_to_host()
    xg = (xg + bias).reshape(T, B, 4 * H)
    out = np.zeros((T, B, H), dt)
    gates = np.zeros((T, B, 4 * H), dt)
    cs = np.zeros((T, B, H), dt)
    tanh_cs = np.zeros((T, B, H), dt)
    hs = np.zeros((T, B, H), dt)
    h_n = np.zeros((B, H), dt)
    c_n = np.zeros((B, H), dt)
    w = np.ascontiguousarray(w_hh)
    if method in ("single", "grid"):
        d = {name: cuda.to_device(a) for name, a in dict(
            out=out, gates=gates, cs=cs, tanh_cs=tanh_cs, hs=hs, h_n=h_n,
            c_n=c_n).items()}
        if method == "single":
            threads = min(1024, max(32, B * H))
            shared = (4 * H * H + 2 * B * H) * dt.itemsize
            _SINGLE[dt][1, threads, 0, shared](
                xg, w, h0, c0, lengths, reverse, d["out"], d["gates"],
                d["cs"], d["tanh_cs"], d["hs"], d["h_n"], d["c_n"])
        else:
            units = grid_units(H, dt)
            blocks = (H + units - 1) // units
            threads = min(1024, max(32, B * units))
            hbuf = cuda.device_array((2, B, H), dt)
            _GRID[dt][blocks, threads, 0, 4 * units * H * dt.itemsize](
                xg, w, h0, c0, lengths, reverse, units, hbuf, d["out"],
                d["gates"], d["cs"], d["tanh_cs"], d["hs"], d["h_n"],
                d["c_n"])
        return tuple(d[n].copy_to_host() for n in (
            "out", "h_n", "c_n", "gates", "cs", "tanh_cs", "hs"))
    # stepwise: a tiled matmul and the fused gate kernel per step
    valid = np.arange(T)[:, None] < lengths[None, :]
    w_t = np.ascontiguousarray(w_hh.T)
    h, c = h0, c0
    block = (1, min(H, 64))
    grid = (B, (H + block[1] - 1) // block[1])
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        a = xg[t] + matmul(np.ascontiguousarray(h), w_t).copy_to_host()
        lstm_gates_kernel[grid, block](a, c, h, valid[t], hs[t], cs[t],
                                       tanh_cs[t])
        gates[t] = a
        h, c = hs[t], cs[t]
        out[t] = np.where(valid[t][:, None], h, 0.0)
    return out, h.copy(), c.copy(), gates, cs, tanh_cs, hs
