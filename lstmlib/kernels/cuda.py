r"""CUDA kernels for the LSTM, the GRU and the Elman RNN, written with
``numba.cuda``.

The CUDA execution model in one paragraph: a kernel launch starts a *grid* of
*blocks*, each a group of up to 1024 *threads*; every thread runs the same
function and finds its work from ``cuda.blockIdx`` and ``cuda.threadIdx``.
Threads of one block share a small fast *shared memory* (tens of KiB per
block) and can wait for each other (``cuda.syncthreads()``); blocks cannot,
except in a cooperative launch, where ``cuda.cg.this_grid().sync()`` waits for
the whole grid.

Kernels, from simplest to the ones that matter for small batches:

``lstm_gates_kernel``, ``gru_gates_kernel``, ``rnn_step_kernel``
    one thread per hidden unit (b, k): the element-wise part of a step, fused
    (activations, state update, h) in one pass.
``linear_kernel``
    C = A @ W^T + b with 16 x 16 tiles staged through shared memory, so each
    value read from global memory is used 16 times.
``persistent_single_block``
    the whole forward sequence in one launch of one block: W_hh is copied to
    shared memory once and stays there for all T steps; h_{t-1} lives in
    shared memory too, and one ``syncthreads`` per step separates reading it
    from writing h_t. No launch per step, no re-reading of W_hh from global
    memory. Only for small H (W_hh must fit: G*H*H values).
``persistent_grid``
    the same over many blocks (Diamos et al. 2016): each block keeps the rows
    of W_hh for its own slice of hidden units in shared memory; h_t is
    exchanged through global memory and the grid synchronises once per step.
    Needs a real GPU (cooperative launch): the simulator runs blocks one after
    another, so its ``grid.sync()`` cannot work.

The two persistent kernels are written once, by :func:`_make_persistent`,
for every cell: a cell contributes its update of one hidden unit
(``_lstm_unit``, ``_gru_unit``, ``_rnn_unit``: the dot products with
h_{t-1}, then the element-wise update that its gate kernel uses too) and
what a padding step writes to its cache.

The backward pass (BPTT) of the LSTM and the GRU runs the same way, the
time loop reversed inside one launch (``backward_single_block``,
``backward_grid``, written once by :func:`_make_backward`): per step, every
unit first turns dL/dh_t into the gradients of its gate pre-activations
(``_lstm_unit_backward``, ``_gru_unit_backward``), then, after one barrier,
every unit gathers dL/dh_{t-1} from them through its column of W_hh, which
stays on chip. The weight gradients need no loop over time: after the
launch they are whole-sequence tiled products (``matmul_kernel``).
A grid launch is checked against the number of blocks the GPU can keep
resident at once (a cooperative launch must have them all resident, or its
grid barrier would wait forever): ``"auto"`` then falls back to the
stepwise method, an explicit ``"grid"`` is refused with the reason.

Host entry points: :func:`lstm_forward`, :func:`gru_forward`,
:func:`rnn_forward`, :func:`lstm_backward`, :func:`gru_backward` (the Elman
RNN's backward pass stays on the CPU, see
:mod:`lstmlib.kernels.cuda_cells`).

Shapes: T time steps, B batch, D input features, H hidden units, G gates
stacked as in the references (LSTM i, f, g, o; GRU r, z, n; RNN one block;
W_hh is (G*H, H)).
"""

import math
from collections import namedtuple

import numpy as np
from numba import float32, float64

from ..rnn import check_nonlinearity
from ._cuda import SIMULATOR, cuda, gpu_available, require

TILE = 16                      # linear-kernel tile edge (threads: 256)
TILE_PAD = TILE + 1            # W tile row length (a padding column)
MAX_SHARED_BYTES = 48 * 1024   # shared memory a block gets without opting in
GRID_THREADS = 256             # most threads per block of the grid kernels
_NB = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}


# ---------------------------------------------------------------------------
# device functions: the element-wise update of one hidden unit (b, k),
# shared by the gate kernels and the persistent kernels

@cuda.jit(device=True)
def _sigmoid(a):
    return 0.5 * (1.0 + math.tanh(0.5 * a))      # as lstmlib.activations


@cuda.jit(device=True)
def _lstm_update(ai, af, ag, ao, c_prev, b, k, gates, c, tanh_c):
    """LSTM unit (b, k) from its four pre-activations: writes i, f, g, o to
    gates (B, 4H), c_t to c and tanh(c_t) to tanh_c (B, H); returns h_t."""
    H = c.shape[1]
    i = _sigmoid(ai)
    f = _sigmoid(af)
    g = math.tanh(ag)
    o = _sigmoid(ao)
    ck = f * c_prev + i * g
    tc = math.tanh(ck)
    gates[b, k] = i
    gates[b, H + k] = f
    gates[b, 2 * H + k] = g
    gates[b, 3 * H + k] = o
    c[b, k] = ck
    tanh_c[b, k] = tc
    return o * tc


@cuda.jit(device=True)
def _gru_update(xr, xz, xn, hr, hz, hn, h_prev, b, k, gates, hns):
    """GRU unit (b, k): x* are the parts of x W_ih^T + b_ih, h* those of
    h_prev W_hh^T + b_hh. Writes r, z, n to gates (B, 3H) and hn to hns
    (B, H); returns h_t = (1 - z) n + z h_prev."""
    H = hns.shape[1]
    r = _sigmoid(xr + hr)
    z = _sigmoid(xz + hz)
    n = math.tanh(xn + r * hn)                   # reset after the product
    gates[b, k] = r
    gates[b, H + k] = z
    gates[b, 2 * H + k] = n
    hns[b, k] = hn
    return n + z * (h_prev - n)


@cuda.jit(device=True)
def _rnn_update(a, relu):
    """Elman unit: phi(a), phi = ReLU when ``relu`` else tanh."""
    if relu:
        return 0.0 if a < 0.0 else a             # NaN passes, as np.maximum
    return math.tanh(a)


# ---------------------------------------------------------------------------
# fused element-wise kernels (one step; the stepwise path)

_OUTSIDE, _REAL, _PADDING = 0, 1, 2      # what a one-step thread has to do


@cuda.jit(device=True)
def _step_unit(h_prev, t, lengths):
    """This thread's unit (b, k) in a one-step kernel (one thread per
    (b, k)) and what it has to do at step t."""
    b, k = cuda.grid(2)
    B, H = h_prev.shape
    if b >= B or k >= H:
        return b, k, _OUTSIDE
    return b, k, _REAL if t < lengths[b] else _PADDING


@cuda.jit
def lstm_gates_kernel(a, ah, c_prev, h_prev, t, lengths, h, c, tanh_c):
    """One thread per (b, k). a (B, 4H): x W_ih^T + b_ih + b_hh, overwritten
    with i, f, g, o; ah (B, 4H): h_prev W_hh^T. Writes h, c, tanh_c (B, H);
    rows with t >= lengths[b] (padding) keep the state."""
    b, k, todo = _step_unit(h_prev, t, lengths)
    if todo == _REAL:
        H = c.shape[1]
        h[b, k] = _lstm_update(
            a[b, k] + ah[b, k], a[b, H + k] + ah[b, H + k],
            a[b, 2 * H + k] + ah[b, 2 * H + k],
            a[b, 3 * H + k] + ah[b, 3 * H + k], c_prev[b, k], b, k, a, c,
            tanh_c)
    elif todo == _PADDING:
        h[b, k] = h_prev[b, k]
        c[b, k] = c_prev[b, k]
        tanh_c[b, k] = 0.0


@cuda.jit
def gru_gates_kernel(gx, gh, h_prev, t, lengths, h, hn):
    """One thread per (b, k). gx (B, 3H): x W_ih^T + b_ih, overwritten with
    r, z, n; gh (B, 3H): h_prev W_hh^T + b_hh. Writes h and hn = W_hn h_prev
    + b_hn (B, H); rows with t >= lengths[b] (padding) keep the state."""
    b, k, todo = _step_unit(h_prev, t, lengths)
    if todo == _REAL:
        H = h.shape[1]
        h[b, k] = _gru_update(gx[b, k], gx[b, H + k], gx[b, 2 * H + k],
                              gh[b, k], gh[b, H + k], gh[b, 2 * H + k],
                              h_prev[b, k], b, k, gx, hn)
    elif todo == _PADDING:
        h[b, k] = h_prev[b, k]
        hn[b, k] = 0.0


@cuda.jit
def rnn_step_kernel(a, ah, h_prev, t, lengths, relu, h):
    """One thread per (b, k): h = phi(a + ah), a (B, H) = x W_ih^T + b_ih +
    b_hh, ah = h_prev W_hh^T; padding rows keep the state."""
    b, k, todo = _step_unit(h_prev, t, lengths)
    if todo == _REAL:
        h[b, k] = _rnn_update(a[b, k] + ah[b, k], relu)
    elif todo == _PADDING:
        h[b, k] = h_prev[b, k]


@cuda.jit
def _zero_padding_kernel(hs, lengths, out):
    """out = hs with the steps t >= lengths[b] set to 0; one thread per
    (t * B + b, k)."""
    tb, k = cuda.grid(2)
    T, B, H = hs.shape
    if tb < T * B and k < H:
        t = tb // B
        b = tb % B
        out[t, b, k] = hs[t, b, k] if t < lengths[b] else 0.0


# ---------------------------------------------------------------------------
# tiled matrix product

def _make_linear(nbtype):
    @cuda.jit
    def linear_kernel(A, W, b1, b2, nbias, C):
        """C (M, N) = A (M, K) @ W (N, K)^T (+ b1 (+ b2), by ``nbias``), with
        16 x 16 tiles in shared memory. Both tiles are read along rows of A
        and W (adjacent threads, adjacent addresses); W's tile has a padding
        column so that the threads of a row read it from different banks."""
        sa = cuda.shared.array((TILE, TILE), nbtype)
        sw = cuda.shared.array((TILE, TILE_PAD), nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        wrow = cuda.blockIdx.x * TILE + ty          # the W row it stages
        M, K = A.shape
        N = W.shape[0]
        acc = 0.0
        for k0 in range(0, K, TILE):
            # each thread stages one element of each tile (0 outside)
            sa[ty, tx] = A[row, k0 + tx] if row < M and k0 + tx < K else 0.0
            sw[ty, tx] = W[wrow, k0 + tx] if wrow < N and k0 + tx < K else 0.0
            cuda.syncthreads()             # tiles complete before use
            for kk in range(TILE):
                acc += sa[ty, kk] * sw[tx, kk]
            cuda.syncthreads()             # done with them before reloading
        if row < M and col < N:
            if nbias == 2:
                acc += b1[col] + b2[col]   # (b_ih + b_hh) first, as numpy
            elif nbias == 1:
                acc += b1[col]
            C[row, col] = acc
    return linear_kernel


_LINEAR = {dt: _make_linear(nb) for dt, nb in _NB.items()}


def _make_matmul(nbtype):
    @cuda.jit
    def matmul_kernel(A, Bm, ta, tb, accumulate, C):
        """C (M, N) = op(A) @ op(Bm) (+ C when ``accumulate``): op(A) is A
        (M, K), or A^T when ``ta`` (A is then (K, M)); op(Bm) is Bm (K, N),
        or Bm^T when ``tb``. 16 x 16 tiles in shared memory, each staged
        along the rows of its source array (adjacent threads, adjacent
        addresses), both with a padding column against bank conflicts."""
        sa = cuda.shared.array((TILE, TILE_PAD), nbtype)   # op(A) tile
        sb = cuda.shared.array((TILE, TILE_PAD), nbtype)   # op(Bm) tile
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        m0 = cuda.blockIdx.y * TILE
        n0 = cuda.blockIdx.x * TILE
        M, N = C.shape
        K = A.shape[0] if ta else A.shape[1]
        acc = 0.0
        for k0 in range(0, K, TILE):
            if ta:          # sa[i, kk] = A[k0 + kk, m0 + i]
                ok = k0 + ty < K and m0 + tx < M
                sa[tx, ty] = A[k0 + ty, m0 + tx] if ok else 0.0
            else:           # sa[i, kk] = A[m0 + i, k0 + kk]
                ok = m0 + ty < M and k0 + tx < K
                sa[ty, tx] = A[m0 + ty, k0 + tx] if ok else 0.0
            if tb:          # sb[kk, j] = Bm[n0 + j, k0 + kk]
                ok = n0 + ty < N and k0 + tx < K
                sb[tx, ty] = Bm[n0 + ty, k0 + tx] if ok else 0.0
            else:           # sb[kk, j] = Bm[k0 + kk, n0 + j]
                ok = k0 + ty < K and n0 + tx < N
                sb[ty, tx] = Bm[k0 + ty, n0 + tx] if ok else 0.0
            cuda.syncthreads()
            for kk in range(TILE):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()
        row = m0 + ty
        col = n0 + tx
        if row < M and col < N:
            if accumulate:
                acc += C[row, col]
            C[row, col] = acc
    return matmul_kernel


_MATMUL = {dt: _make_matmul(nb) for dt, nb in _NB.items()}


def matmul(A, Bm, ta=False, tb=False, out=None, accumulate=False):
    """op(A) @ op(Bm) on the device (op: transposed when ``ta``, ``tb``),
    device arrays in and out; added to ``out`` when ``accumulate``."""
    dt = np.dtype(A.dtype)
    M = A.shape[1] if ta else A.shape[0]
    N = Bm.shape[0] if tb else Bm.shape[1]
    if out is None:
        out = cuda.device_array((M, N), dt)
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    _MATMUL[dt][grid, (TILE, TILE)](A, Bm, bool(ta), bool(tb),
                                    bool(accumulate), out)
    return out


def _float_dtype(name, a):
    """The dtype of ``a``, which the kernels must be compiled for."""
    dt = np.dtype(a.dtype)
    if dt not in _NB:
        raise ValueError(f"{name}: expected dtype float32 or float64, "
                         f"received {dt}")
    return dt


def _on_device(name, a, dtype, shape):
    """A device array as it is (a CUDA tensor wrapped), a host array copied
    to the device (host integers converted to an integer ``dtype``); either
    must have ``dtype`` and ``shape``."""
    if getattr(a, "__cuda_ndarray__", False):
        d = a
    elif hasattr(a, "__cuda_array_interface__"):
        d = cuda.as_cuda_array(a)
    else:
        a = np.asarray(a)
        if a.dtype.kind in "iu" and np.dtype(dtype).kind == "i":
            a = a.astype(dtype)
        d = cuda.to_device(np.ascontiguousarray(a))
    if np.dtype(d.dtype) != np.dtype(dtype):
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, "
                         f"received {np.dtype(d.dtype)}")
    if tuple(d.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, "
                         f"received {tuple(d.shape)}")
    return d


def linear(A, W, *biases, out=None):
    """A @ W.T + the sum of ``biases`` (none, one or two (N,) vectors) on the
    device: host or device arrays in, a device array out (``out``, when
    given)."""
    dt = _float_dtype("A", A)
    M, K = A.shape
    N = W.shape[0]
    if len(biases) > 2:
        raise ValueError(f"biases: expected at most 2, received {len(biases)}")
    args = [_on_device(n, a, dt, shape) for n, a, shape in zip(
        ("A", "W", "b1", "b2"), (A, W, *biases), ((M, K), (N, K), (N,), (N,)))]
    while len(args) < 4:
        args.append(args[1][0])            # a placeholder the kernel skips
    C = cuda.device_array((M, N), dt) if out is None else out
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    _LINEAR[dt][grid, (TILE, TILE)](*args, len(biases), C)
    return C


# ---------------------------------------------------------------------------
# persistent kernels
#
# A cell's unit function computes h_t[b, k] for step t:
#   unit(proj, b_hh, option, t, b, k, w, w_stride, gate_stride, col,
#        h_buf, h_at, state, aux1, aux2)
# proj (T, B, G*H): the input projection, overwritten with the cached
# activations; h_{t-1}[b, m] is h_buf[h_at + m]; the weight W_hh[q*H + k, m]
# of gate q is w[m * w_stride + q * gate_stride + col] (W_hh^T in shared
# memory, or this block's columns of it); state (B, H) is the cell's second
# state (the LSTM's c), aux1, aux2 (T, B, H) its other caches; b_hh and
# ``option`` as the cell needs them. Its pad function writes those caches at
# a padding step.

@cuda.jit(device=True)
def _lstm_unit(proj, b_hh, option, t, b, k, w, w_stride, gate_stride, col,
               h_buf, h_at, c, cs, tanh_cs):
    """LSTM unit (b, k) at step t: c (B, H) holds c_{t-1}, then c_t."""
    H = c.shape[1]
    ai = proj[t, b, k]
    af = proj[t, b, H + k]
    ag = proj[t, b, 2 * H + k]
    ao = proj[t, b, 3 * H + k]
    for m in range(H):                   # h_{t-1} W_hh^T, four gates at once
        hm = h_buf[h_at + m]
        wm = m * w_stride + col
        ai += w[wm] * hm
        af += w[wm + gate_stride] * hm
        ag += w[wm + 2 * gate_stride] * hm
        ao += w[wm + 3 * gate_stride] * hm
    h = _lstm_update(ai, af, ag, ao, c[b, k], b, k, proj[t], cs[t],
                     tanh_cs[t])
    c[b, k] = cs[t, b, k]
    return h


@cuda.jit(device=True)
def _lstm_pad(t, b, k, c, cs, tanh_cs):
    """LSTM padding step: c_t = c_{t-1} cached, tanh(c_t) cached as 0."""
    cs[t, b, k] = c[b, k]
    tanh_cs[t, b, k] = 0.0


@cuda.jit(device=True)
def _gru_unit(proj, b_hh, option, t, b, k, w, w_stride, gate_stride, col,
              h_buf, h_at, state, hns, aux2):
    """GRU unit (b, k) at step t; hns (T, B, H) caches W_hn h_{t-1} + b_hn."""
    H = hns.shape[2]
    hr = b_hh[k]
    hz = b_hh[H + k]
    hn = b_hh[2 * H + k]
    for m in range(H):                   # h_{t-1} W_hh^T + b_hh, three gates
        hm = h_buf[h_at + m]
        wm = m * w_stride + col
        hr += w[wm] * hm
        hz += w[wm + gate_stride] * hm
        hn += w[wm + 2 * gate_stride] * hm
    return _gru_update(proj[t, b, k], proj[t, b, H + k],
                       proj[t, b, 2 * H + k], hr, hz, hn, h_buf[h_at + k], b,
                       k, proj[t], hns[t])


@cuda.jit(device=True)
def _gru_pad(t, b, k, state, hns, aux2):
    """GRU padding step: the cached W_hn h_{t-1} + b_hn is 0."""
    hns[t, b, k] = 0.0


@cuda.jit(device=True)
def _rnn_unit(proj, b_hh, relu, t, b, k, w, w_stride, gate_stride, col,
              h_buf, h_at, state, aux1, aux2):
    """Elman unit (b, k) at step t (no cache: hs, written by the caller)."""
    a = proj[t, b, k]
    for m in range(proj.shape[2]):
        a += w[m * w_stride + col] * h_buf[h_at + m]
    return _rnn_update(a, relu)


@cuda.jit(device=True)
def _rnn_pad(t, b, k, state, aux1, aux2):
    """Elman padding step: nothing cached."""
    pass


def _make_persistent(nbtype, G, two_states, unit, pad):
    """The single-block and the grid persistent kernels of one cell."""

    @cuda.jit(device=True)
    def start(b, k, h0, s0, hv, hoff, s):
        """h_{-1} of unit (b, k) into hv[hoff:hoff + B*H], its second state
        into s."""
        hv[hoff + b * h0.shape[1] + k] = h0[b, k]
        if two_states:
            s[b, k] = s0[b, k]

    @cuda.jit(device=True)
    def step(proj, b_hh, option, lengths, t, b, k, w, w_stride, gate_stride,
             col, h_buf, src, dst, out, hs, state, aux1, aux2):
        """Unit (b, k) of step t: h_{t-1} is h_buf[src:src + B*H], h_t goes
        to h_buf[dst:dst + B*H]; padding keeps the state and outputs 0."""
        H = hs.shape[2]
        if t >= lengths[b]:
            hk = h_buf[src + b * H + k]
            out[t, b, k] = 0.0
            pad(t, b, k, state, aux1, aux2)
        else:
            hk = unit(proj, b_hh, option, t, b, k, w, w_stride, gate_stride,
                      col, h_buf, src + b * H, state, aux1, aux2)
            out[t, b, k] = hk
        hs[t, b, k] = hk
        h_buf[dst + b * H + k] = hk

    @cuda.jit
    def persistent_single_block(xg, w_hh, b_hh, h0, s0, lengths, reverse,
                                option, out, hs, h_n, s, aux1, aux2):
        """Whole forward sequence, one block. Dynamic shared memory holds
        W_hh^T (H x G*H: thread k reads column k, consecutive threads hit
        consecutive banks) followed by two (B, H) buffers for h."""
        sm = cuda.shared.array(0, nbtype)
        T, B, GH = xg.shape
        H = GH // G
        HOFF = H * GH
        BH = B * H
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for idx in range(tid, HOFF, nt):            # W_hh^T -> shared, once
            sm[idx] = w_hh[idx % GH, idx // GH]
        for idx in range(tid, BH, nt):
            start(idx // H, idx % H, h0, s0, sm, HOFF, s)
        cuda.syncthreads()
        cur = 0
        for i in range(T):
            t = T - 1 - i if reverse else i
            for idx in range(tid, BH, nt):           # this thread's units
                step(xg, b_hh, option, lengths, t, idx // H, idx % H,
                     sm, GH, H, idx % H, sm, HOFF + cur * BH,
                     HOFF + (1 - cur) * BH, out, hs, s, aux1, aux2)
            cuda.syncthreads()                       # h_t complete
            cur = 1 - cur
        for idx in range(tid, BH, nt):
            h_n[idx // H, idx % H] = sm[HOFF + cur * BH + idx]

    @cuda.jit
    def persistent_grid(xg, w_hh, b_hh, h0, s0, lengths, reverse, option,
                        units, hbuf, out, hs, h_n, s, aux1, aux2):
        """Whole forward sequence over many blocks (cooperative launch).
        Block j owns hidden units [j*units, (j+1)*units) and keeps their
        G*units rows of W_hh in shared memory (transposed, H x G*units).
        hbuf (2*B*H) in global memory carries h between blocks."""
        grid = cuda.cg.this_grid()
        sm = cuda.shared.array(0, nbtype)
        T, B, GH = xg.shape
        H = GH // G
        UG = G * units
        BH = B * H
        k0 = cuda.blockIdx.x * units
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for idx in range(tid, H * UG, nt):           # my rows of W_hh
            m = idx // UG
            q = (idx % UG) // units                  # gate
            u = idx % units
            sm[idx] = w_hh[q * H + k0 + u, m] if k0 + u < H else 0.0
        for idx in range(tid, B * units, nt):
            if k0 + idx % units < H:
                start(idx // units, k0 + idx % units, h0, s0, hbuf, 0, s)
        grid.sync()
        cur = 0
        for i in range(T):
            t = T - 1 - i if reverse else i
            for idx in range(tid, B * units, nt):
                u = idx % units
                if k0 + u < H:
                    step(xg, b_hh, option, lengths, t, idx // units, k0 + u,
                         sm, UG, units, u, hbuf, cur * BH, (1 - cur) * BH,
                         out, hs, s, aux1, aux2)
            grid.sync()                              # every h_t written
            cur = 1 - cur
        for idx in range(tid, B * units, nt):
            b = idx // units
            k = k0 + idx % units
            if k < H:
                h_n[b, k] = hbuf[cur * BH + b * H + k]

    return persistent_single_block, persistent_grid


# ---------------------------------------------------------------------------
# backward pass (BPTT) on the device
#
# Step t of the backward pass, forward order reversed, in two phases:
#   A  every unit (b, k): dh_t = dL/dh_t (carried) + d_out[t, b, k]; from it
#      and the forward cache the gradients of the unit's G pre-activations,
#      written to d_in[t] (for W_ih, x, b_ih) and d_rec[t] (for W_hh, b_hh;
#      the same array for the LSTM); the carried dh becomes the part of
#      dL/dh_{t-1} that does not go through W_hh (LSTM 0, GRU z * dh_t);
#   B  every unit (b, m): dL/dh_{t-1}[b, m] += sum_j d_rec[t, b, j] W_hh[j, m]
#      (column m of W_hh, on chip).
# Phase B needs all of phase A (every gate of every unit of row b): one
# barrier per step. Phase A of the next step writes d_in[t-1], not d_rec[t],
# so no second barrier is needed. Padding steps (t >= lengths[b]) write zero
# gate gradients and let dh (and the LSTM's dc) pass by unchanged.
# After the loop, the weight gradients are whole-sequence products:
# dx = d_in W_ih, dW_ih = d_in^T x, dW_hh = d_rec^T h_prev, db = column sums.
#
# A cell's backward unit function:
#   unit_backward(t, b, k, dh, acts, aux1, aux2, s0, ds, reverse, d_in, d_rec)
# returns the direct part of dL/dh_{t-1}; acts (T, B, G*H) are the cached
# activations, aux1, aux2 its other caches, s0 the initial state they start
# from, ds (B, H) a second carried gradient (the LSTM's dc).

@cuda.jit(device=True)
def _prev_state(states, s0, t, b, k, reverse):
    """The state step t started from: s0 at the first step computed, else
    the state cached at the step before (states (T, B, H), s0 (B, H))."""
    if reverse:
        return s0[b, k] if t == states.shape[0] - 1 else states[t + 1, b, k]
    return s0[b, k] if t == 0 else states[t - 1, b, k]


@cuda.jit(device=True)
def _lstm_unit_backward(t, b, k, dh, acts, tanh_cs, cs, c0, dc, reverse,
                        d_in, d_rec):
    """LSTM unit (b, k) at step t: d(i, f, g, o pre-activations) into d_in;
    dc (B, H) carries dL/dc_t in, dL/dc_{t-1} out; returns 0 (all of
    dL/dh_{t-1} goes through W_hh)."""
    H = dc.shape[1]
    i = acts[t, b, k]
    f = acts[t, b, H + k]
    g = acts[t, b, 2 * H + k]
    o = acts[t, b, 3 * H + k]
    tc = tanh_cs[t, b, k]
    do = dh * tc                                     # h = o * tanh(c)
    dck = dc[b, k] + dh * o * (1.0 - tc * tc)        # through tanh(c)
    d_in[t, b, k] = dck * g * i * (1.0 - i)          # c = f c_prev + i g
    d_in[t, b, H + k] = (dck * _prev_state(cs, c0, t, b, k, reverse)
                         * f * (1.0 - f))
    d_in[t, b, 2 * H + k] = dck * i * (1.0 - g * g)
    d_in[t, b, 3 * H + k] = do * o * (1.0 - o)
    dc[b, k] = dck * f
    return 0.0


@cuda.jit(device=True)
def _gru_unit_backward(t, b, k, dh, acts, hns, hs, h0, ds, reverse, d_in,
                       d_rec):
    """GRU unit (b, k) at step t: d(r, z, n pre-activations) of the input
    part into d_in, of the hidden part into d_rec; returns z * dh, the
    direct path to h_{t-1}."""
    H = hns.shape[2]
    r = acts[t, b, k]
    z = acts[t, b, H + k]
    n = acts[t, b, 2 * H + k]
    dn = dh * (1.0 - z)                              # h = (1-z) n + z h_prev
    dz = dh * (_prev_state(hs, h0, t, b, k, reverse) - n)
    dan = dn * (1.0 - n * n)                         # through tanh
    dar = dan * hns[t, b, k] * r * (1.0 - r)         # n = tanh(.. + r hn)
    daz = dz * z * (1.0 - z)
    d_in[t, b, k] = dar
    d_in[t, b, H + k] = daz
    d_in[t, b, 2 * H + k] = dan
    d_rec[t, b, k] = dar
    d_rec[t, b, H + k] = daz
    d_rec[t, b, 2 * H + k] = dan * r
    return dh * z


def _make_backward(nbtype, G, two_states, unit_backward):
    """The single-block, grid and one-step backward kernels of one cell."""

    @cuda.jit(device=True)
    def gates_phase(t, b, k, lengths, d_out, dh, acts, aux1, aux2, s0, ds,
                    reverse, d_in, d_rec):
        """Phase A for unit (b, k): dh (B, H) carries dL/dh."""
        H = dh.shape[1]
        if t >= lengths[b]:                  # padding: gradients pass by
            for q in range(G):
                d_in[t, b, q * H + k] = 0.0
                d_rec[t, b, q * H + k] = 0.0
        else:
            dh[b, k] = unit_backward(t, b, k, dh[b, k] + d_out[t, b, k],
                                     acts, aux1, aux2, s0, ds, reverse,
                                     d_in, d_rec)

    @cuda.jit(device=True)
    def recurrent_phase(t, b, k, lengths, dh, d_rec, w, w_stride, col):
        """Phase B for unit (b, k): dh[b, k] += d_rec[t, b] . W_hh[:, k],
        with W_hh[j, k] = w[j * w_stride + col]."""
        if t < lengths[b]:
            acc = dh[b, k]
            for j in range(d_rec.shape[2]):
                acc += d_rec[t, b, j] * w[j * w_stride + col]
            dh[b, k] = acc

    @cuda.jit
    def backward_single_block(d_out, dh_n, ds_n, acts, aux1, aux2, s0, w_hh,
                              lengths, reverse, d_in, d_rec, dh, ds):
        """Whole backward sequence, one block: W_hh (G*H x H, as it is:
        thread k reads column k) in dynamic shared memory for all T steps;
        dh, ds (B, H) start as dh_n, ds_n and end as dL/dh0, dL/ds0."""
        sm = cuda.shared.array(0, nbtype)
        T, B, GH = acts.shape
        H = GH // G
        BH = B * H
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for idx in range(tid, GH * H, nt):
            sm[idx] = w_hh[idx // H, idx % H]
        for idx in range(tid, BH, nt):
            dh[idx // H, idx % H] = dh_n[idx // H, idx % H]
            if two_states:
                ds[idx // H, idx % H] = ds_n[idx // H, idx % H]
        cuda.syncthreads()
        for i in range(T - 1, -1, -1):       # the forward's order, reversed
            t = T - 1 - i if reverse else i
            for idx in range(tid, BH, nt):
                gates_phase(t, idx // H, idx % H, lengths, d_out, dh, acts,
                            aux1, aux2, s0, ds, reverse, d_in, d_rec)
            cuda.syncthreads()               # d_rec[t] complete
            for idx in range(tid, BH, nt):
                recurrent_phase(t, idx // H, idx % H, lengths, dh, d_rec, sm,
                                H, idx % H)

    @cuda.jit
    def backward_grid(d_out, dh_n, ds_n, acts, aux1, aux2, s0, w_hh, lengths,
                      reverse, units, d_in, d_rec, dh, ds):
        """Whole backward sequence over many blocks (cooperative launch):
        block j owns hidden units [j*units, (j+1)*units), in both phases,
        and keeps their columns of W_hh (G*H x units) in shared memory;
        d_rec[t] in global memory carries the gate gradients between
        blocks, one grid barrier per step."""
        grid = cuda.cg.this_grid()
        sm = cuda.shared.array(0, nbtype)
        T, B, GH = acts.shape
        H = GH // G
        k0 = cuda.blockIdx.x * units
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for idx in range(tid, GH * units, nt):       # my columns of W_hh
            j = idx // units
            u = idx % units
            sm[idx] = w_hh[j, k0 + u] if k0 + u < H else 0.0
        for idx in range(tid, B * units, nt):
            b = idx // units
            k = k0 + idx % units
            if k < H:
                dh[b, k] = dh_n[b, k]
                if two_states:
                    ds[b, k] = ds_n[b, k]
        cuda.syncthreads()
        for i in range(T - 1, -1, -1):
            t = T - 1 - i if reverse else i
            for idx in range(tid, B * units, nt):
                k = k0 + idx % units
                if k < H:
                    gates_phase(t, idx // units, k, lengths, d_out, dh, acts,
                                aux1, aux2, s0, ds, reverse, d_in, d_rec)
            grid.sync()                              # every d_rec[t] written
            for idx in range(tid, B * units, nt):
                u = idx % units
                if k0 + u < H:
                    recurrent_phase(t, idx // units, k0 + u, lengths, dh,
                                    d_rec, sm, units, u)

    @cuda.jit
    def backward_step(t, d_out, acts, aux1, aux2, s0, lengths, reverse, d_in,
                      d_rec, dh, ds):
        """Phase A of step t alone, one thread per (b, k) (the stepwise
        method; phase B is then a tiled product added to dh)."""
        b, k = cuda.grid(2)
        if b < dh.shape[0] and k < dh.shape[1]:
            gates_phase(t, b, k, lengths, d_out, dh, acts, aux1, aux2, s0, ds,
                        reverse, d_in, d_rec)

    return backward_single_block, backward_grid, backward_step


@cuda.jit
def _previous_states_kernel(hs, h0, reverse, out):
    """out (T*B, H): the state each step started from (h0 first); one
    thread per (t * B + b, k)."""
    tb, k = cuda.grid(2)
    T, B, H = hs.shape
    if tb < T * B and k < H:
        out[tb, k] = _prev_state(hs, h0, tb // B, tb % B, k, reverse)


# ---------------------------------------------------------------------------
# host side

_Cell = namedtuple("_Cell", "gates caches two_states hidden_bias unit pad "
                   "unit_backward")
_CELLS = {"lstm": _Cell(4, 2, True, False, _lstm_unit, _lstm_pad,
                        _lstm_unit_backward),
          "gru": _Cell(3, 1, False, True, _gru_unit, _gru_pad,
                       _gru_unit_backward),
          "rnn": _Cell(1, 0, False, False, _rnn_unit, _rnn_pad, None)}
_PERSISTENT = {(kind, dt): _make_persistent(nb, c.gates, c.two_states,
                                            c.unit, c.pad)
               for kind, c in _CELLS.items() for dt, nb in _NB.items()}
_BACKWARD = {(kind, dt): _make_backward(nb, c.gates, c.two_states,
                                        c.unit_backward)
             for kind, c in _CELLS.items() if c.unit_backward is not None
             for dt, nb in _NB.items()}


def single_block_fits(B, H, dtype, gates=4):
    """Whether W_hh (gates*H x H) and two h buffers fit one block's shared
    memory."""
    return (gates * H * H + 2 * B * H) * np.dtype(dtype).itemsize \
        <= MAX_SHARED_BYTES


def _multiprocessors():
    """Streaming multiprocessors of the current GPU (1 without one)."""
    if not gpu_available():
        return 1
    return cuda.get_current_device().MULTIPROCESSOR_COUNT


def grid_units(H, dtype, gates=4):
    """Hidden units per block for the grid kernels: as few as spread the H
    units over all the GPU's multiprocessors (one block each: more work in
    parallel per step), and no more than fit a block's shared memory (each
    unit brings gates*H weights)."""
    per_unit = gates * H * np.dtype(dtype).itemsize
    fit = max(1, min(H, MAX_SHARED_BYTES // per_unit))
    return min(fit, -(-H // _multiprocessors()))


METHODS = ("auto", "single", "grid", "stepwise")
# the method the latest forward and backward call ran ("auto" resolved, a
# grid the GPU cannot keep resident replaced by "stepwise"): for the
# benchmark's records
last_methods = {}


def _pick_method(method, B, H, G, dt):
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, received {method!r}")
    if method == "auto":
        if single_block_fits(B, H, dt, G):
            return "single"
        return "grid" if gpu_available() else "stepwise"
    if method == "grid" and SIMULATOR:
        raise ValueError("method: 'grid' needs a real GPU (the simulator's "
                         "grid.sync() synchronises one block only)")
    if method == "single" and not single_block_fits(B, H, dt, G):
        raise ValueError(f"method: 'single' needs W_hh in one block's shared "
                         f"memory; H={H}, B={B}, dtype {dt} do not fit")
    return method


def _compiled(kernel, args):
    """The compiled kernel that launching ``kernel`` with ``args`` runs
    (compiled now if need be; the launch then reuses it); None where numba
    cannot say (the simulator, a numba without these internals)."""
    if SIMULATOR:
        return None
    try:
        return kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
    except Exception:       # the launch itself reports a real compile error
        return None


def _threads(compiled, want):
    """Threads per block: ``want``, at most what the compiled kernel's
    register use allows, a multiple of 32 (whole warps)."""
    if compiled is not None:
        try:
            want = min(want, compiled.max_threads_per_block)
        except AttributeError:
            pass
    return max(32, want // 32 * 32)


def _cooperative_limit(kernel, args, threads, shared):
    """The most blocks of ``kernel`` (with these arguments, threads per
    block and bytes of dynamic shared memory) that the GPU keeps resident at
    once, which is the most a cooperative launch may start; None where that
    cannot be asked (the simulator, a numba without the query)."""
    compiled = _compiled(kernel, args)
    if compiled is None:
        return None
    try:
        return int(compiled.max_cooperative_grid_blocks(threads, shared))
    except Exception:       # no query here: numba checks at the launch
        return None


def _grid_launch(kernel, args, B, H, G, dt, asked):
    """Launch configuration (blocks, threads, shared bytes, units per
    block) of a grid kernel, checked against the cooperative launch limit;
    None when the grid cannot be resident at once and ``asked`` is "auto"
    (the caller then runs stepwise); a ValueError saying why when "grid"
    was asked for. ``args(units)`` are the launch's arguments."""
    units = grid_units(H, dt, G)
    blocks = (H + units - 1) // units
    shared = G * units * H * dt.itemsize
    if shared > MAX_SHARED_BYTES:           # not even one unit's weights
        if asked == "auto":
            return None
        raise ValueError(
            f"method: 'grid' keeps a block's {G} x {H} weights per hidden "
            f"unit in shared memory: {shared} bytes, more than the "
            f"{MAX_SHARED_BYTES} a block gets; use method='stepwise' or "
            f"'auto'")
    threads = _threads(_compiled(kernel, args(units)),
                       min(GRID_THREADS, B * units))
    limit = _cooperative_limit(kernel, args(units), threads, shared)
    if limit is not None and blocks > limit:
        if asked == "auto":
            return None
        raise ValueError(
            f"method: 'grid' needs all {blocks} blocks ({units} hidden units "
            f"each, {threads} threads, {shared} bytes of shared memory) "
            f"resident at once for its grid-wide barrier, and this GPU keeps "
            f"at most {limit} of them resident (cooperative launch limit); "
            f"use method='stepwise' or 'auto'")
    return blocks, threads, shared, units


def _single_threads(kernel, args, B, H):
    """Threads of the one-block kernels: one per unit (b, k) up to 1024,
    fewer where the kernel's registers do not allow that many."""
    return _threads(_compiled(kernel, args), min(1024, B * H))


def _stepwise(kind, xg, w_hh, b_rec, h0, c0, lengths, reverse, relu, hs,
              aux):
    """Per step: the tiled product h_{t-1} W_hh^T (+ b_rec) and the cell's
    fused gate kernel; xg becomes the activations, hs and aux the caches."""
    T, B, GH = xg.shape
    H = hs.shape[2]
    ah = cuda.device_array((B, GH), xg.dtype)
    block = (1, min(H, 64))
    grid = (B, (H + block[1] - 1) // block[1])
    h, c = h0, c0
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        linear(h, w_hh, *b_rec, out=ah)
        if kind == "lstm":
            lstm_gates_kernel[grid, block](xg[t], ah, c, h, t, lengths,
                                           hs[t], aux[0][t], aux[1][t])
            c = aux[0][t]
        elif kind == "gru":
            gru_gates_kernel[grid, block](xg[t], ah, h, t, lengths, hs[t],
                                          aux[0][t])
        else:
            rnn_step_kernel[grid, block](xg[t], ah, h, t, lengths, relu,
                                         hs[t])
        h = hs[t]
    return h, c


def _forward(kind, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse,
             method, relu=False):
    """``kind``'s forward pass; the public entry points below document it.
    Returns device arrays (out, h_n, c_n, activations, hs, *caches); c_n is
    None but for the LSTM, the RNN's activations are its pre-activations."""
    require()
    cell = _CELLS[kind]
    G = cell.gates
    T, B, D = x.shape
    H = w_hh.shape[1]
    dt = _float_dtype("x", x)
    asked = method
    method = _pick_method(method, B, H, G, dt)
    if lengths is None:
        lengths = np.full(B, T, np.int64)
    lengths = _on_device("lengths", lengths, np.int64, (B,))
    x = _on_device("x", x, dt, (T, B, D))
    h0, w_ih, w_hh = (_on_device(n, a, dt, shape) for n, a, shape in zip(
        ("h0", "w_ih", "w_hh"), (h0, w_ih, w_hh), ((B, H), (G * H, D),
                                                    (G * H, H))))
    c0 = _on_device("c0", c0, dt, (B, H)) if cell.two_states else h0
    biases = [] if b_ih is None else [
        _on_device(n, b, dt, (G * H,)) for n, b in (("b_ih", b_ih),
                                                    ("b_hh", b_hh))]
    if cell.hidden_bias:        # the GRU's b_hh acts inside the recurrence
        b_in, b_rec = biases[:1], biases[1:]
    else:                       # the others' joins the input part
        b_in, b_rec = biases, []
    # input projection of every step: one (T*B, D) x (D, G*H) product
    xg = linear(x.reshape(T * B, D), w_ih, *b_in).reshape(T, B, G * H)
    out, hs = (cuda.device_array((T, B, H), dt) for _ in range(2))
    h_n = cuda.device_array((B, H), dt)
    c_n = cuda.device_array((B, H), dt) if cell.two_states else None
    unused = cuda.device_array((1, 1, 1), dt)   # for arguments not read
    aux = [cuda.device_array((T, B, H), dt) if j < cell.caches else unused
           for j in range(2)]
    single, grid = _PERSISTENT[kind, dt]
    if method != "stepwise":
        if cell.hidden_bias:
            bias = b_rec[0] if b_rec else _on_device(
                "b_hh", np.zeros(G * H, dt), dt, (G * H,))
        else:
            bias = unused[0, 0]             # the bias is in xg
        s = c_n if cell.two_states else unused[0]
        args = (xg, w_hh, bias, h0, c0, lengths, bool(reverse), relu)
        caches = (out, hs, h_n, s, *aux)
    if method == "grid":
        hbuf = cuda.device_array(2 * B * H, dt)
        launch = _grid_launch(
            grid, lambda units: (*args, units, hbuf, *caches), B, H, G, dt,
            asked)
        if launch is None:
            method = "stepwise"
    last_methods["forward"] = method
    if method == "stepwise":
        h_n, c_n = _stepwise(kind, xg, w_hh, b_rec, h0, c0, lengths, reverse,
                             relu, hs, aux)
        if not cell.two_states:
            c_n = None
        grid = ((T * B + 7) // 8, (H + 31) // 32)
        _zero_padding_kernel[grid, (8, 32)](hs, lengths, out)
    elif method == "single":
        threads = _single_threads(single, (*args, *caches), B, H)
        shared = (G * H * H + 2 * B * H) * dt.itemsize
        single[1, threads, 0, shared](*args, *caches)
    else:
        blocks, threads, shared, units = launch
        grid[blocks, threads, 0, shared](*args, units, hbuf, *caches)
    return (out, h_n, c_n, xg, hs, *aux[:cell.caches])


def _backward(kind, d_out, d_state_n, x, state0, w_ih, w_hh, acts, caches,
              hs, lengths, reverse, bias, method):
    """``kind``'s BPTT on the device; :func:`lstm_backward` documents it.
    Returns device arrays (dx, dh0, ds0 or None, dw_ih, dw_hh, db_ih,
    db_hh); the bias gradients are None when ``bias`` is false."""
    require()
    cell = _CELLS[kind]
    G = cell.gates
    dt = _float_dtype("x", x)
    T, B, D = x.shape
    H = w_hh.shape[1]
    asked = method
    method = _pick_method(method, B, H, G, dt)
    if lengths is None:
        lengths = np.full(B, T, np.int64)
    lengths = _on_device("lengths", lengths, np.int64, (B,))
    TBH, BH = (T, B, H), (B, H)
    x = _on_device("x", x, dt, (T, B, D))
    w_ih = _on_device("w_ih", w_ih, dt, (G * H, D))
    w_hh = _on_device("w_hh", w_hh, dt, (G * H, H))
    acts = _on_device("gates", acts, dt, (T, B, G * H))
    hs = _on_device("hs", hs, dt, TBH)
    d_out = _on_device("d_out", d_out, dt, TBH)
    names = ("h0", "c0") if cell.two_states else ("h0",)
    state0 = [_on_device(n, s, dt, BH) for n, s in zip(names, state0)]
    d_state_n = [_on_device("d" + n[0] + "_n", np.zeros(BH, dt) if d is None
                            else d, dt, BH)
                 for n, d in zip(names, d_state_n)]
    if kind == "lstm":                  # tanh(c) and c, c0, dc
        cs, tanh_cs = (_on_device(n, a, dt, TBH)
                       for n, a in zip(("cs", "tanh_cs"), caches))
        aux1, aux2, s0 = tanh_cs, cs, state0[1]
    else:                               # W_hn h_{t-1} + b_hn and h, h0
        aux1, aux2, s0 = _on_device("hns", caches[0], dt, TBH), hs, state0[0]
    d_in = cuda.device_array((T, B, G * H), dt)
    d_rec = d_in if kind == "lstm" else cuda.device_array((T, B, G * H), dt)
    dh = cuda.device_array(BH, dt)
    ds = cuda.device_array(BH, dt) if cell.two_states else dh
    ds_n = d_state_n[1] if cell.two_states else d_state_n[0]
    single, grid, step = _BACKWARD[kind, dt]
    head = (d_out, d_state_n[0], ds_n, acts, aux1, aux2, s0, w_hh, lengths,
            bool(reverse))
    if method == "grid":
        launch = _grid_launch(
            grid, lambda units: (*head, units, d_in, d_rec, dh, ds), B, H, G,
            dt, asked)
        if launch is None:
            method = "stepwise"
    last_methods["backward"] = method
    if method == "single":
        tail = (d_in, d_rec, dh, ds)
        threads = _single_threads(single, (*head, *tail), B, H)
        single[1, threads, 0, G * H * H * dt.itemsize](*head, *tail)
    elif method == "grid":
        blocks, threads, shared, units = launch
        grid[blocks, threads, 0, shared](*head, units, d_in, d_rec, dh, ds)
    else:                               # per step: phase A, then a product
        dh.copy_to_device(d_state_n[0])
        if cell.two_states:
            ds.copy_to_device(ds_n)
        block = (1, min(H, 64))
        blocks = (B, (H + block[1] - 1) // block[1])
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            step[blocks, block](t, d_out, acts, aux1, aux2, s0, lengths,
                                bool(reverse), d_in, d_rec, dh, ds)
            matmul(d_rec[t], w_hh, out=dh, accumulate=True)
    # the weight gradients: whole-sequence products after the loop
    gin = d_in.reshape(T * B, G * H)
    grec = d_rec.reshape(T * B, G * H)
    h_prev = cuda.device_array((T * B, H), dt)
    _previous_states_kernel[((T * B + 7) // 8, (H + 31) // 32), (8, 32)](
        hs, state0[0], bool(reverse), h_prev)
    dx = matmul(gin, w_ih).reshape(T, B, D)
    dw_ih = matmul(gin, x.reshape(T * B, D), ta=True)
    dw_hh = matmul(grec, h_prev, ta=True)
    db_ih = db_hh = None
    if bias:
        ones = _ones(T * B, dt)
        db_ih = matmul(ones, gin).reshape(G * H)
        db_hh = matmul(ones, grec).reshape(G * H)
    return (dx, dh, ds if cell.two_states else None, dw_ih, dw_hh, db_ih,
            db_hh)


_ONES = {}


def _ones(n, dt):
    """A (1, n) row of ones on the device (the bias gradients are its
    product with the gate gradients), kept for the next call."""
    if (n, dt) not in _ONES:
        if len(_ONES) > 8:
            _ONES.clear()
        _ONES[n, dt] = cuda.to_device(np.ones((1, n), dt))
    return _ONES[n, dt]


def _returned(device, *arrays):
    """The device arrays as they are, or copied to the host."""
    return arrays if device else tuple(a.copy_to_host() for a in arrays)


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                 reverse=False, method="auto", device=False):
    """LSTM forward on the GPU (or the simulator).

    x (T, B, D), h0 and c0 (B, H), weights as in
    :func:`lstmlib.lstm.lstm_forward`; lengths (B,) integers or None (steps
    t >= lengths[b] are padding: the state is kept, the output is 0);
    ``reverse`` walks t = T-1, ..., 0. ``method``: ``"single"`` (one-block
    persistent kernel), ``"grid"`` (multi-block persistent kernel, real GPU
    only), ``"stepwise"`` (per step: tiled product + fused gate kernel) or
    ``"auto"`` (single when W_hh fits a block, else grid on a GPU, else
    stepwise). The input projection of all steps is one tiled product.

    Returns out (T, B, H), h_n, c_n (B, H) and the cache
    gates (T, B, 4H) = i, f, g, o; cs, tanh_cs, hs (T, B, H); host arrays.

    ``device=True`` keeps everything on the GPU: the inputs may be device
    arrays (numba's, or CUDA tensors), the results are device arrays, and
    nothing is copied between host and device but inputs given as host
    arrays (``lengths=None`` is one: pass lengths on the device to avoid it).
    """
    out, h_n, c_n, gates, hs, cs, tanh_cs = _forward(
        "lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, method)
    return _returned(device, out, h_n, c_n, gates, cs, tanh_cs, hs)


def gru_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                reverse=False, method="auto", device=False):
    """GRU forward on the GPU (or the simulator); arguments as in
    :func:`lstm_forward` and :func:`lstmlib.gru.gru_forward`.

    Returns out (T, B, H), h_n (B, H) and the cache gates (T, B, 3H) = r, z,
    n; hns (W_hn h_{t-1} + b_hn), hs (T, B, H): host arrays, or device
    arrays with ``device=True`` (as in :func:`lstm_forward`).
    """
    out, h_n, _, gates, hs, hns = _forward(
        "gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, method)
    return _returned(device, out, h_n, gates, hns, hs)


def rnn_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                lengths=None, reverse=False, method="auto", device=False):
    """Elman RNN forward on the GPU (or the simulator); arguments as in
    :func:`lstm_forward` and :func:`lstmlib.rnn.rnn_forward`.

    Returns out (T, B, H), h_n (B, H) and hs (T, B, H), the state after
    every step (kept through padding): host arrays, or device arrays with
    ``device=True`` (as in :func:`lstm_forward`).
    """
    check_nonlinearity(nonlinearity)
    out, h_n, _, _, hs = _forward(
        "rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, method,
        relu=nonlinearity == "relu")
    return _returned(device, out, h_n, hs)


def lstm_backward(d_out, dh_n, dc_n, x, h0, c0, w_ih, w_hh, gates, cs,
                  tanh_cs, hs, lengths=None, reverse=False, bias=True,
                  method="auto", device=False):
    """LSTM backward pass (BPTT) on the GPU (or the simulator).

    d_out (T, B, H) = dL/d(out), dh_n and dc_n (B, H) = dL/d(final state)
    (None: zeros); x, h0, c0, w_ih, w_hh, lengths and ``reverse`` as given
    to :func:`lstm_forward`, gates, cs, tanh_cs, hs its cache. ``bias``:
    whether the forward pass had biases (then their gradients are
    returned, else None). ``method`` as in :func:`lstm_forward`: the
    persistent kernels run the whole time loop in one launch with W_hh on
    chip; the weight gradients are then whole-sequence tiled products.

    Returns dx (T, B, D), dh0, dc0 (B, H), dw_ih, dw_hh, db_ih, db_hh:
    host arrays, or device arrays with ``device=True`` (then nothing is
    copied between host and device but inputs given as host arrays).
    """
    res = _backward("lstm", d_out, (dh_n, dc_n), x, (h0, c0), w_ih, w_hh,
                    gates, (cs, tanh_cs), hs, lengths, reverse, bias, method)
    return _returned_or_none(device, *res)


def gru_backward(d_out, dh_n, x, h0, w_ih, w_hh, gates, hns, hs,
                 lengths=None, reverse=False, bias=True, method="auto",
                 device=False):
    """GRU backward pass (BPTT) on the GPU (or the simulator); arguments as
    in :func:`lstm_backward`, the cache (gates, hns, hs) as
    :func:`gru_forward` returns it.

    Returns dx (T, B, D), dh0 (B, H), dw_ih, dw_hh, db_ih, db_hh: host
    arrays, or device arrays with ``device=True``.
    """
    dx, dh0, _, *dw = _backward("gru", d_out, (dh_n,), x, (h0,), w_ih, w_hh,
                                gates, (hns,), hs, lengths, reverse, bias,
                                method)
    return _returned_or_none(device, dx, dh0, *dw)


def _returned_or_none(device, *arrays):
    """As :func:`_returned`, with None passed through."""
    return tuple(None if a is None else a if device else a.copy_to_host()
                 for a in arrays)
