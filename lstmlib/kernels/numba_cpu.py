r"""LSTM and GRU on the CPU with Numba: fused gate kernels, whole sequences in
one compiled call, and batch-parallel versions.

The numpy reference (:mod:`lstmlib.lstm`, :mod:`lstmlib.gru`) is the oracle:
every function here computes the same equations, with the same gate order
(LSTM i, f, g, o; GRU r, z, n, reset applied after the product) and the same
``sigmoid(a) = 0.5 * (1 + tanh(a / 2))``, and agrees with it to rounding
(about 1e-12 relative in float64, 1e-6 in float32). ``tanh`` is
:func:`lstmlib.kernels.vmath.tanh` in float64 and :func:`tanh32_rational` in
float32, accurate to a few ulp in the arrays' own precision and, unlike the C
library's, vectorisable (see the performance chapter).

Five kinds of kernels:

``lstm_gates_forward`` / ``gru_gates_forward`` (and their ``_backward``)
    one step's element-wise work fused into one pass over (B, H): the
    pre-activations (the matrix products, done by BLAS) go in, the new state
    and the cached activations come out. Used by the "stepwise" mode.
``lstm_sequence_forward`` / ``gru_sequence_forward`` (and ``_backward``)
    the whole sequence, matrix products included, in one ``@njit`` call:
    no Python between steps. The products that do not wait for the previous
    step (the input projection of every step, and after the backward loop
    dx and the weight gradients) run over all steps at once by the packed
    tiles; only h_{t-1} W_hh^T (and da W_hh) stay in the loop, one row at a
    time (:func:`lstmlib.kernels.tiles.vecmat`). Used by the "fused" mode
    (small shapes, where the per-step overhead of numpy and of torch
    dominates).
``*_parallel``
    the same with ``prange`` over the batch: sequences of a batch are
    independent, so each thread runs whole sequences and no thread ever waits
    for another inside the time loop. Weight gradients are then reduced over
    time and batch in a second ``prange`` loop over blocks of rows of dW.
``lstm_recurrence_forward`` / ``gru_recurrence_forward`` (and ``_backward``)
    only the time loop in one ``@njit`` call, its product h_{t-1} W_hh^T
    register-blocked over four batch rows (:func:`matmul_blocked`); the
    input projection and the weight gradients stay large BLAS products.
    Used by the "blocked" mode (small batches with a large W_hh).
``lstm_blas_forward`` / ``gru_blas_forward`` (and their ``_backward``)
    the time loop in one ``@njit`` call: the per-step products by the packed
    tiles of :mod:`lstmlib.kernels.tiles` (the weights packed once per
    call), the weight gradients by BLAS (numpy's own OpenBLAS, through
    :func:`gemm`) chunk by chunk. Used by the "blas" mode (larger batches).

Shapes: T time steps, B batch, D input features, H hidden units, G gates.
Transposed weights ``w_hh_t`` (H, G*H) make the inner loops of the products
run over contiguous rows (an ``axpy``), which vectorises.

Set ``NUMBA_DISABLE_JIT=1`` to run all of this as plain Python (slowly) and
step through it with a debugger.
"""

import types

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba import types as nbtypes
from numba.extending import intrinsic, overload

from .tiles import aligned_rows, matmul_packed, pack, transpose_into, vecmat
from .vmath import tanh

__all__ = [
    "lstm_gates_forward", "lstm_gates_backward",
    "gru_gates_forward", "gru_gates_backward",
    "lstm_sequence_forward", "lstm_sequence_backward",
    "lstm_sequence_forward_parallel", "lstm_sequence_backward_parallel",
    "gru_sequence_forward", "gru_sequence_backward",
    "gru_sequence_forward_parallel", "gru_sequence_backward_parallel",
    "matmul_blocked", "transpose",
    "lstm_recurrence_forward", "lstm_recurrence_backward",
    "gru_recurrence_forward", "gru_recurrence_backward",
    "gemm", "blas_gemm_addresses", "lstm_blas_forward", "lstm_blas_backward",
    "gru_blas_forward", "gru_blas_backward",
]


# ---------------------------------------------------------------------------
# float32 activations: one rational function
#
# vmath.tanh32 evaluates both of its branches and builds 2^n by five selects.
# In float32 the gates go about twice as fast with the odd rational minimax
# approximation of degrees 13/6 that Eigen, XLA and onnxruntime use:
# tanh(x) = p(x)/q(x) on x clamped to [-7.905, 7.905], ten multiply-adds and
# one division, no branch, within 4 ulp of the exact value (measured in
# tests/kernels/test_kernels_numba.py). sigmoid(a) = tanh(a/2)/2 + 1/2 as in
# the reference. float64 keeps vmath's tanh. ``contract`` lets LLVM fuse each
# multiply and add into one FMA instruction (nothing is reordered).

_F = np.float32
_ACT_OPTS = dict(cache=True, error_model="numpy", fastmath={"contract"})
_TANH_CLAMP = _F(7.90531110763549805)


@njit(**_ACT_OPTS)
def tanh32_rational(x):
    """tanh(x) in float32 arithmetic, vectorisable (see above)."""
    x = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = ((((((_F(-2.76076847742355e-16) * x2 + _F(2.00018790482477e-13)) * x2
            + _F(-8.60467152213735e-11)) * x2 + _F(5.12229709037114e-08)) * x2
          + _F(1.48572235717979e-05)) * x2 + _F(6.37261928875436e-04)) * x2
         + _F(4.89352455891786e-03)) * x
    q = ((_F(1.19825839466702e-06) * x2 + _F(1.18534705686654e-04)) * x2
         + _F(2.26843463243900e-03)) * x2 + _F(4.89352518554385e-03)
    return p / q


@njit(**_ACT_OPTS)
def sigmoid32(x):
    """sigmoid(x) = tanh(x/2)/2 + 1/2 in float32, vectorisable."""
    half = _F(0.5)
    return half * tanh32_rational(half * x) + half


def _tanh(x):
    """tanh in the argument's precision (plain Python version)."""
    return tanh32_rational(x) if isinstance(x, np.float32) else tanh(x)


@overload(_tanh, jit_options=dict(cache=True, error_model="numpy"))
def _tanh_by_type(x):
    if isinstance(x, nbtypes.Float) and x.bitwidth == 32:
        return lambda x: tanh32_rational(x)
    return lambda x: tanh(x)


# ---------------------------------------------------------------------------
# activations over a contiguous range, in place: loops LLVM vectorises
# (one array, no calls; a loop that also wrote five other arrays would not be)
#
# One loop per precision, picked by the array's dtype: in float64 the loop
# calls vmath's tanh itself, because one more function between them makes
# the body too large for LLVM to inline, and the loop is then not vectorised.

@njit(**_ACT_OPTS)
def _sigmoid32_(v):
    for j in range(v.size):
        v[j] = sigmoid32(v[j])


@njit(cache=True, error_model="numpy")
def _sigmoid64_(v):
    half = v.dtype.type(0.5)
    for j in range(v.size):
        v[j] = half * tanh(half * v[j]) + half


@njit(**_ACT_OPTS)
def _tanh32_(v):
    for j in range(v.size):
        v[j] = tanh32_rational(v[j])


@njit(cache=True, error_model="numpy")
def _tanh64_(v):
    for j in range(v.size):
        v[j] = tanh(v[j])


def _sigmoid_(v):
    """v = sigmoid(v) in place, in v's precision (float64: tanh(v/2)/2 + 1/2
    in the order of operations of lstmlib.activations.sigmoid). Called on a
    slice (``a[:2 * H]``): a loop over a whole 1-D array is the form LLVM
    vectorises (a ``range(lo, hi)`` loop here is not)."""
    (_sigmoid32_ if v.dtype == np.float32 else _sigmoid64_)(v)


def _tanh_(v):
    """v = tanh(v) in place (see :func:`_sigmoid_`)."""
    (_tanh32_ if v.dtype == np.float32 else _tanh64_)(v)


@overload(_sigmoid_, jit_options=dict(cache=True, error_model="numpy"))
def _sigmoid_by_dtype(v):
    if v.dtype == nbtypes.float32:
        return lambda v: _sigmoid32_(v)
    return lambda v: _sigmoid64_(v)


@overload(_tanh_, jit_options=dict(cache=True, error_model="numpy"))
def _tanh_by_dtype(v):
    if v.dtype == nbtypes.float32:
        return lambda v: _tanh32_(v)
    return lambda v: _tanh64_(v)


@njit(cache=True, error_model="numpy")
def _step_index(s, T, reverse):
    """The s-th step computed: t = s, or T-1-s when walking backwards."""
    return T - 1 - s if reverse else s


# ---------------------------------------------------------------------------
# one step, element-wise part only (the "fused gate kernel")

@njit(cache=True, error_model="numpy")
def lstm_gates_forward(a, c_prev, h_prev, valid, h, c, tanh_c):
    """Fused LSTM gate kernel for one step.

    a (B, 4H): pre-activations x W_ih^T + b_ih + h_prev W_hh^T + b_hh,
    overwritten with the activations i, f, g, o (the cache).
    c_prev, h_prev (B, H); valid (B,) bool: False means padding (state kept).
    Writes h, c, tanh_c (B, H). One pass, no temporaries.
    """
    B, H = c_prev.shape
    for b in range(B):
        if not valid[b]:
            for k in range(H):
                h[b, k] = h_prev[b, k]
                c[b, k] = c_prev[b, k]
                tanh_c[b, k] = 0.0
            continue
        ab = a[b]
        _sigmoid_(ab[:2 * H])                        # i, f
        _tanh_(ab[2 * H:3 * H])                      # g
        _sigmoid_(ab[3 * H:])                        # o
        cb = c[b]
        for k in range(H):
            cb[k] = ab[H + k] * c_prev[b, k] + ab[k] * ab[2 * H + k]
        tb = tanh_c[b]
        tb[:] = cb
        _tanh_(tb)                                   # tanh(c)
        for k in range(H):
            h[b, k] = ab[3 * H + k] * tb[k]          # h = o * tanh(c)


@njit(cache=True, error_model="numpy")
def lstm_gates_backward(gates, tanh_c, c_prev, valid, dh, dc, da):
    """Backward of :func:`lstm_gates_forward` for one step.

    gates (B, 4H) activations i, f, g, o; tanh_c, c_prev (B, H);
    dh (B, H) = dL/dh_t (output gradient already added), overwritten with
    the part of dL/dh_{t-1} that bypasses W_hh (0, or dh itself on padded
    rows, whose gradients pass by); the caller adds da W_hh.
    dc (B, H) = dL/dc_t, overwritten with dL/dc_{t-1}.
    Writes da (B, 4H) = dL/d(pre-activations), 0 on padded rows.
    """
    B, H = c_prev.shape
    one = gates.dtype.type(1.0)
    for b in range(B):
        if not valid[b]:
            da[b] = 0.0
            continue
        # three loops over contiguous rows, each touching few arrays: LLVM
        # vectorises a loop only after checking at run time that the arrays
        # it writes overlap none it reads, and gives up beyond a few checks
        a, d = gates[b], da[b]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        d_i, d_f, d_g, d_o = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
        dhb, dcb, tc, cp = dh[b], dc[b], tanh_c[b], c_prev[b]
        for k in range(H):
            d_o[k] = dhb[k] * tc[k] * o[k] * (one - o[k])   # h = o tanh(c)
            dcb[k] += dhb[k] * o[k] * (one - tc[k] * tc[k])  # through tanh(c)
        for k in range(H):                       # c = f c_prev + i g
            d_i[k] = dcb[k] * g[k] * i[k] * (one - i[k])
            d_g[k] = dcb[k] * i[k] * (one - g[k] * g[k])
        for k in range(H):
            d_f[k] = dcb[k] * cp[k] * f[k] * (one - f[k])
            dcb[k] *= f[k]                       # dL/dc_{t-1}
        dhb[:] = 0.0                             # dL/dh_{t-1} = da W_hh


@njit(cache=True, error_model="numpy")
def gru_gates_forward(gx, gh, h_prev, valid, h, hn):
    """Fused GRU gate kernel for one step.

    gx (B, 3H): x W_ih^T + b_ih, overwritten with r, z, n (the cache);
    gh (B, 3H): h_prev W_hh^T + b_hh. Writes h and hn = W_hn h_prev + b_hn.
    """
    B, H = h_prev.shape
    for b in range(B):
        if not valid[b]:
            for k in range(H):
                h[b, k] = h_prev[b, k]
                hn[b, k] = 0.0
            continue
        ab = gx[b]
        for j in range(2 * H):
            ab[j] += gh[b, j]
        _sigmoid_(ab[:2 * H])                        # r, z
        for k in range(H):
            hn[b, k] = gh[b, 2 * H + k]              # W_hn h_prev + b_hn
            ab[2 * H + k] += ab[k] * gh[b, 2 * H + k]
        _tanh_(ab[2 * H:3 * H])                      # n
        for k in range(H):
            n = ab[2 * H + k]
            h[b, k] = n + ab[H + k] * (h_prev[b, k] - n)


@njit(cache=True, error_model="numpy")
def gru_gates_backward(gates, hn, h_prev, valid, dh, dgx, dgh):
    """Backward of :func:`gru_gates_forward` for one step.

    gates (B, 3H) activations r, z, n; hn, h_prev (B, H);
    dh (B, H) = dL/dh_t, overwritten with the direct part of dL/dh_{t-1}
    (z * dh; the caller adds dgh W_hh). Writes dgx, dgh (B, 3H).
    """
    B, H = h_prev.shape
    one = gates.dtype.type(1.0)
    for b in range(B):
        if not valid[b]:
            for j in range(3 * H):
                dgx[b, j] = 0.0
                dgh[b, j] = 0.0
            continue
        for k in range(H):
            r = gates[b, k]
            z = gates[b, H + k]
            n = gates[b, 2 * H + k]
            dhk = dh[b, k]
            dn = dhk * (one - z)                     # h = (1-z) n + z h_prev
            dz = dhk * (h_prev[b, k] - n)
            dan = dn * (one - n * n)                 # through tanh
            dar = dan * hn[b, k] * r * (one - r)     # n = tanh(.. + r hn)
            daz = dz * z * (one - z)
            dgx[b, k] = dar
            dgx[b, H + k] = daz
            dgx[b, 2 * H + k] = dan
            dgh[b, k] = dar
            dgh[b, H + k] = daz
            dgh[b, 2 * H + k] = dan * r
            dh[b, k] = dhk * z


# ---------------------------------------------------------------------------
# the recurrent product h_{t-1} W_hh^T, register-blocked ("blocked" mode)
#
# At a small batch a step's product (B x H)(H x G*H) is a skinny matrix
# product: each element of W_hh is used only B times per step, so the time
# goes into bringing W_hh in from the caches, and BLAS's general code
# (packing, small-matrix paths) adds a fixed cost per call on top. These
# kernels read each row of W_hh^T once per group of four batch rows and
# apply it to all four, eight rows of W^T at a time: per vector of columns,
# 8 loads of W, 4 loads and 4 stores of the sums, 32 multiply-adds. The
# columns go in blocks of ``_BLOCK_BYTES`` (the four rows of sums stay in the
# L1 cache), walked left to right on even steps and right to left on odd
# ones: the blocks used last in one step are the first of the next, still in
# the L2 cache when W_hh is larger than it.
#
# ``fastmath={"contract"}`` lets LLVM fuse each multiply and add into one
# FMA instruction (one rounding instead of two); nothing else is reordered.

_MM_OPTS = dict(cache=True, error_model="numpy", fastmath={"contract"})
_BLOCK_BYTES = 4096             # one block of columns of one row of sums


@njit(**_MM_OPTS)
def _fma4x8(a0, a1, a2, a3, w, k, j0, h, b0):
    """a_r += sum_{i<8} h[b0+r, k+i] * w[k+i, j0:j0+len(a_r)], r = 0..3."""
    n = a0.size
    j1 = j0 + n
    w0, w1, w2, w3 = w[k][j0:j1], w[k + 1][j0:j1], w[k + 2][j0:j1], \
        w[k + 3][j0:j1]
    w4, w5, w6, w7 = w[k + 4][j0:j1], w[k + 5][j0:j1], w[k + 6][j0:j1], \
        w[k + 7][j0:j1]
    p, q, r, s = h[b0], h[b0 + 1], h[b0 + 2], h[b0 + 3]
    p0, p1, p2, p3, p4, p5, p6, p7 = (p[k], p[k + 1], p[k + 2], p[k + 3],
                                      p[k + 4], p[k + 5], p[k + 6], p[k + 7])
    q0, q1, q2, q3, q4, q5, q6, q7 = (q[k], q[k + 1], q[k + 2], q[k + 3],
                                      q[k + 4], q[k + 5], q[k + 6], q[k + 7])
    r0, r1, r2, r3, r4, r5, r6, r7 = (r[k], r[k + 1], r[k + 2], r[k + 3],
                                      r[k + 4], r[k + 5], r[k + 6], r[k + 7])
    s0, s1, s2, s3, s4, s5, s6, s7 = (s[k], s[k + 1], s[k + 2], s[k + 3],
                                      s[k + 4], s[k + 5], s[k + 6], s[k + 7])
    for j in range(n):
        x0, x1, x2, x3 = w0[j], w1[j], w2[j], w3[j]
        x4, x5, x6, x7 = w4[j], w5[j], w6[j], w7[j]
        a0[j] = (a0[j] + p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3 + p4 * x4
                 + p5 * x5 + p6 * x6 + p7 * x7)
        a1[j] = (a1[j] + q0 * x0 + q1 * x1 + q2 * x2 + q3 * x3 + q4 * x4
                 + q5 * x5 + q6 * x6 + q7 * x7)
        a2[j] = (a2[j] + r0 * x0 + r1 * x1 + r2 * x2 + r3 * x3 + r4 * x4
                 + r5 * x5 + r6 * x6 + r7 * x7)
        a3[j] = (a3[j] + s0 * x0 + s1 * x1 + s2 * x2 + s3 * x3 + s4 * x4
                 + s5 * x5 + s6 * x6 + s7 * x7)


@njit(**_MM_OPTS)
def _fma1x8(a, w, k, j0, v):
    """a += sum_{i<8} v[k+i] * w[k+i, j0:j0+len(a)] (a leftover batch row)."""
    n = a.size
    j1 = j0 + n
    w0, w1, w2, w3 = w[k][j0:j1], w[k + 1][j0:j1], w[k + 2][j0:j1], \
        w[k + 3][j0:j1]
    w4, w5, w6, w7 = w[k + 4][j0:j1], w[k + 5][j0:j1], w[k + 6][j0:j1], \
        w[k + 7][j0:j1]
    v0, v1, v2, v3, v4, v5, v6, v7 = (v[k], v[k + 1], v[k + 2], v[k + 3],
                                      v[k + 4], v[k + 5], v[k + 6], v[k + 7])
    for j in range(n):
        a[j] = (a[j] + v0 * w0[j] + v1 * w1[j] + v2 * w2[j] + v3 * w3[j]
                + v4 * w4[j] + v5 * w5[j] + v6 * w6[j] + v7 * w7[j])


@njit(**_MM_OPTS)
def _fma1x1(a, w, k, j0, vk):
    """a += vk * w[k, j0:j0+len(a)] (a leftover row of w)."""
    wk = w[k][j0:j0 + a.size]
    for j in range(a.size):
        a[j] = a[j] + vk * wk[j]


@njit(**_MM_OPTS)
def matmul_blocked(v, w, acc, backwards):
    """acc += v @ w, register-blocked for a small number of rows of v.

    v (B, K), w (K, N), acc (B, N), all C-contiguous. ``backwards`` walks
    the blocks of columns right to left (alternate it from one call to the
    next: see above). Each acc[b, j] is summed in the order k = 0, 1, ...
    """
    B, K = v.shape
    N = w.shape[1]
    jb = max(1, _BLOCK_BYTES // w.itemsize)
    nblocks = (N + jb - 1) // jb
    K8 = K - K % 8
    for q in range(nblocks):
        j0 = (nblocks - 1 - q if backwards else q) * jb
        j1 = min(N, j0 + jb)
        b = 0
        while b + 4 <= B:
            a0, a1 = acc[b][j0:j1], acc[b + 1][j0:j1]
            a2, a3 = acc[b + 2][j0:j1], acc[b + 3][j0:j1]
            for k in range(0, K8, 8):
                _fma4x8(a0, a1, a2, a3, w, k, j0, v, b)
            for k in range(K8, K):
                _fma1x1(a0, w, k, j0, v[b, k])
                _fma1x1(a1, w, k, j0, v[b + 1, k])
                _fma1x1(a2, w, k, j0, v[b + 2, k])
                _fma1x1(a3, w, k, j0, v[b + 3, k])
            b += 4
        while b < B:
            a = acc[b][j0:j1]
            for k in range(0, K8, 8):
                _fma1x8(a, w, k, j0, v[b])
            for k in range(K8, K):
                _fma1x1(a, w, k, j0, v[b, k])
            b += 1


@njit(cache=True, error_model="numpy")
def transpose(w):
    """A C-contiguous copy of w.T, in tiles of 32 x 32
    (:func:`lstmlib.kernels.tiles.transpose_into`)."""
    R, C = w.shape
    out = np.empty((C, R), w.dtype)
    transpose_into(w, out)
    return out


@njit(cache=True, error_model="numpy")
def lstm_recurrence_forward(gates, h0, c0, w_hh_t, valid, reverse, hs, cs,
                            tanh_cs):
    """The time loop of the "blocked" LSTM forward pass, in one call.

    gates (T, B, 4H): the input projections x_t W_ih^T + b_ih + b_hh of
    every step (one BLAS product before the call), overwritten with the
    activations i, f, g, o. Step by step, h_{t-1} W_hh^T is added by
    :func:`matmul_blocked` (w_hh_t (H, 4H) contiguous), then
    :func:`lstm_gates_forward` writes hs, cs, tanh_cs (T, B, H) (padded
    rows: the previous state). valid (T, B) bool.
    """
    T = gates.shape[0]
    h, c = h0, c0
    for s in range(T):
        t = _step_index(s, T, reverse)
        matmul_blocked(h, w_hh_t, gates[t], s % 2 == 1)
        lstm_gates_forward(gates[t], c, h, valid[t], hs[t], cs[t], tanh_cs[t])
        h, c = hs[t], cs[t]


@njit(cache=True, error_model="numpy")
def lstm_recurrence_backward(d_out, dh, dc, w_hh, gates, tanh_cs, cs_prev,
                             valid, reverse, da_all):
    """The time loop of the "blocked" LSTM backward pass, in one call.

    d_out (T, B, H); dh, dc (B, H): dL/dh_T, dL/dc_T, overwritten with
    dL/dh_0, dL/dc_0. w_hh (4H, H) contiguous. Writes da_all (T, B, 4H),
    the gradients of the pre-activations, from which the caller gets dx and
    the weight gradients as a few large products.
    """
    T, B, H = d_out.shape
    for s in range(T - 1, -1, -1):
        t = _step_index(s, T, reverse)
        for b in range(B):
            if valid[t, b]:                      # padded outputs ignored
                for k in range(H):
                    dh[b, k] += d_out[t, b, k]
        lstm_gates_backward(gates[t], tanh_cs[t], cs_prev[t], valid[t], dh,
                            dc, da_all[t])
        matmul_blocked(da_all[t], w_hh, dh, s % 2 == 1)   # + da W_hh


@njit(cache=True, error_model="numpy")
def gru_recurrence_forward(gates, h0, w_hh_t, b_hh, valid, reverse, hs, hns):
    """The time loop of the "blocked" GRU forward pass, in one call.

    gates (T, B, 3H): x_t W_ih^T + b_ih of every step, overwritten with the
    activations r, z, n. Step by step gh = h_{t-1} W_hh^T + b_hh
    (:func:`matmul_blocked`), then :func:`gru_gates_forward` writes hs and
    hns (T, B, H).
    """
    T, B, _ = gates.shape
    gh = np.empty((B, w_hh_t.shape[1]), gates.dtype)
    h = h0
    for s in range(T):
        t = _step_index(s, T, reverse)
        for b in range(B):
            gh[b] = b_hh
        matmul_blocked(h, w_hh_t, gh, s % 2 == 1)
        gru_gates_forward(gates[t], gh, h, valid[t], hs[t], hns[t])
        h = hs[t]


@njit(cache=True, error_model="numpy")
def gru_recurrence_backward(d_out, dh, w_hh, gates, hns, hs_prev, valid,
                            reverse, dgx_all, dgh_all):
    """The time loop of the "blocked" GRU backward pass, in one call.

    dh (B, H) = dL/dh_T, overwritten with dL/dh_0. Writes dgx_all and
    dgh_all (T, B, 3H), the gradients of the input and hidden projections.
    """
    T, B, H = d_out.shape
    for s in range(T - 1, -1, -1):
        t = _step_index(s, T, reverse)
        for b in range(B):
            if valid[t, b]:
                for k in range(H):
                    dh[b, k] += d_out[t, b, k]
        gru_gates_backward(gates[t], hns[t], hs_prev[t], valid[t], dh,
                           dgx_all[t], dgh_all[t])
        matmul_blocked(dgh_all[t], w_hh, dh, s % 2 == 1)  # + dgh W_hh


# ---------------------------------------------------------------------------
# BLAS called from compiled code ("blas" mode)
#
# At B = 32, H = 128 a step's product h_{t-1} W_hh^T is a (32 x 128)(128 x
# 512) product: big enough that BLAS's AVX-512 kernels beat anything LLVM
# makes of the loops above (it vectorises them 256 bits wide on these
# CPUs), small enough that calling it from Python each step, and the gate
# kernel after it, costs a tenth of the step. So the whole time loop runs in
# one compiled call that calls numpy's own BLAS (its bundled OpenBLAS, found
# by :func:`blas_gemm_addresses`) through a function pointer: no Python
# between steps, and each product adds straight into the step's slice of
# the pre-activations (beta = 1).

def gemm(fn, trans_a, trans_b, alpha, a, b, beta, c):
    """c = alpha op(a) op(b) + beta c, op(m) = m.T if trans_m else m.

    a, b, c 2-D with unit stride along their rows (row slices of C arrays);
    ``fn`` is the address of a CBLAS ``?gemm`` with 64-bit integers in c's
    precision. As in BLAS, with beta = 0 c is not read (it may hold
    anything, NaN included). Compiled, this is one BLAS call; as plain
    Python (with NUMBA_DISABLE_JIT=1) it is numpy's product and ``fn`` is
    not used.
    """
    prod = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))
    c[...] = prod if beta == 0 else prod + beta * c


@intrinsic
def _cblas_gemm(typingctx, fn, trans_a, trans_b, m, n, k, alpha, a, lda, b,
                ldb, beta, c, ldc):
    """One call of the CBLAS ?gemm at address ``fn`` (row-major)."""
    ints = (fn, trans_a, trans_b, m, n, k, lda, ldb, ldc)
    if not all(isinstance(v, nbtypes.Integer) for v in ints):
        return None
    if not all(isinstance(v, nbtypes.Array) for v in (a, b, c)):
        return None
    sig = nbtypes.none(fn, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                       beta, c, ldc)

    def codegen(context, builder, signature, args):
        st = signature.args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        real = context.get_value_type(st[12].dtype)

        def as_int(j, ty):
            return context.cast(builder, args[j], st[j], ty)

        def as_real(j):
            return context.cast(builder, args[j], st[j], st[12].dtype)

        def data(j):
            return context.make_array(st[j])(context, builder, args[j]).data

        pa, pb, pc = data(7), data(9), data(12)
        fnty = ir.FunctionType(ir.VoidType(), [
            i32, i32, i32, i64, i64, i64, real, pa.type, i64, pb.type, i64,
            real, pc.type, i64])
        fptr = builder.inttoptr(as_int(0, nbtypes.int64), fnty.as_pointer())
        builder.call(fptr, [
            ir.Constant(i32, 101),                   # CblasRowMajor
            as_int(1, nbtypes.int32), as_int(2, nbtypes.int32),
            as_int(3, nbtypes.int64), as_int(4, nbtypes.int64),
            as_int(5, nbtypes.int64), as_real(6), pa,
            as_int(8, nbtypes.int64), pb, as_int(10, nbtypes.int64),
            as_real(11), pc, as_int(13, nbtypes.int64)])
        return context.get_dummy_value()
    return sig, codegen


@overload(gemm, jit_options=dict(cache=True))
def _gemm_compiled(fn, trans_a, trans_b, alpha, a, b, beta, c):
    def impl(fn, trans_a, trans_b, alpha, a, b, beta, c):
        item = c.itemsize
        k = a.shape[0] if trans_a else a.shape[1]
        _cblas_gemm(fn, 112 if trans_a else 111, 112 if trans_b else 111,
                    c.shape[0], c.shape[1], k, alpha, a, a.strides[0] // item,
                    b, b.strides[0] // item, beta, c, c.strides[0] // item)
    return impl


def blas_gemm_addresses():
    """{dtype: address} of the CBLAS sgemm and dgemm (64-bit integers) in
    the OpenBLAS numpy ships in its wheels, or {} where numpy uses another
    BLAS (then the "blas" mode is not available)."""
    import ctypes
    import glob
    import os
    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    paths = []
    for pattern in ("numpy.libs/*openblas64*", "numpy/.dylibs/*openblas64*"):
        paths += sorted(glob.glob(os.path.join(site, pattern)))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_cblas_", "64_"), ("cblas_", "64_")):
            try:
                fns = {np.dtype(np.float32): getattr(lib, prefix + "sgemm" + suffix),
                       np.dtype(np.float64): getattr(lib, prefix + "dgemm" + suffix)}
            except AttributeError:
                continue
            return {dt: ctypes.cast(f, ctypes.c_void_p).value
                    for dt, f in fns.items()}
    return {}


@njit(cache=True, error_model="numpy")
def _chunk(s, S, T, reverse):
    """Times [t0, t1) of the chunk of steps s .. s + S - 1 (forward pass) or
    s - S + 1 .. s (backward pass, which walks s downwards and ends its
    chunks where the forward pass began them)."""
    lo = s - s % S
    hi = min(T, lo + S)
    if reverse:
        return T - hi, T - lo
    return lo, hi


@njit(cache=True, error_model="numpy")
def _lstm_blas_cell_forward(a, bias, c_prev, h_prev, valid, h, c, tanh_c, xh,
                            q, D):
    """One step's element-wise LSTM work for "blas" mode, row by row:
    a (B, 4H) = x W_ih^T + h_prev W_hh^T gets the bias and becomes i, f, g, o;
    writes c, tanh_c, h (B, H) and h again into xh[q, :, D:]. Every loop
    runs over contiguous rows of at most three arrays (see
    :func:`lstm_gates_backward`), so LLVM vectorises each."""
    B, H = c.shape
    for b in range(B):
        hx = xh[q, b, D:]
        if not valid[b]:                         # padding: state kept
            hp, cp, hb, cb, tb = h_prev[b], c_prev[b], h[b], c[b], tanh_c[b]
            for k in range(H):
                hb[k] = hp[k]
                hx[k] = hp[k]
            for k in range(H):
                cb[k] = cp[k]
                tb[k] = 0.0
            continue
        ab = a[b]
        for j in range(ab.size):
            ab[j] += bias[j]
        _sigmoid_(ab[:2 * H])                        # i, f
        _tanh_(ab[2 * H:3 * H])                      # g
        _sigmoid_(ab[3 * H:])                        # o
        i, f, g, o = ab[:H], ab[H:2 * H], ab[2 * H:3 * H], ab[3 * H:]
        cp, cb, tb, hb = c_prev[b], c[b], tanh_c[b], h[b]
        for k in range(H):
            cb[k] = f[k] * cp[k] + i[k] * g[k]
        for k in range(H):
            tb[k] = _tanh(cb[k])
        for k in range(H):
            hb[k] = o[k] * tb[k]                     # h = o * tanh(c)
        for k in range(H):
            hx[k] = hb[k]


@njit(cache=True, error_model="numpy")
def lstm_blas_forward(x, w_p, bias, valid, reverse, xh, cbuf, hs, gates):
    """The "blas" LSTM forward pass in one call.

    x (T, B, D) the inputs; w_p = [W_ih, W_hh]^T (D+H, 4H) packed by
    :func:`lstmlib.kernels.tiles.pack`; bias (4H,) = b_ih + b_hh.
    ``xh`` (T+1, B, D+H) pairs each step's input with the state it starts
    from: with off = 1 walking backwards, else 0, row t + off holds
    [x_t, h_prev(t)] and h_t goes to row t + 1 - off, so rows off ..
    off+T-1 are [x_t, h_{t-1}] (forwards) or [x_t, h_{t+1}] (backwards) in
    time order, the operand of the weight gradients' single product
    (:func:`lstm_blas_backward`). The caller puts h0 in the first step's row
    and c0 likewise in ``cbuf`` (T+1, B, H), which gets c_t the same way.
    Writes hs (T, B, H) = h_t and gates (T, B, 4H) = i, f, g, o (padded
    rows: left as pre-activations, never read). tanh(c_t) is not kept: the
    backward pass computes it again from c_t, which costs less than writing
    it to memory and reading it back.

    Each step is one product, [x_t, h_{t-1}] [W_ih, W_hh]^T, straight into
    the step's pre-activations (still in the L1 and L2 caches when the gate
    kernel reads them), and no separate pass over the inputs.
    """
    T, B, H = hs.shape
    D = x.shape[2]
    off = 1 if reverse else 0
    tanh_c = np.empty((B, H), gates.dtype)
    for s in range(T):
        t = _step_index(s, T, reverse)
        p, q = t + off, t + 1 - off
        for b in range(B):
            xh[p, b, :D] = x[t, b]
        a = gates[t]
        matmul_packed(xh[p], w_p, a, False)
        _lstm_blas_cell_forward(a, bias, cbuf[p], xh[p, :, D:], valid[t],
                                hs[t], cbuf[q], tanh_c, xh, q, D)


@njit(cache=True, error_model="numpy")
def _add_rows(m, acc):
    """acc += the sum of m's rows (a step's share of a bias gradient)."""
    for b in range(m.shape[0]):
        mb = m[b]
        for j in range(acc.size):
            acc[j] += mb[j]


@njit(cache=True, error_model="numpy")
def lstm_blas_backward(fn, d_out, dh, dc, w_ih_p, w_hh_p, gates, cs, cs_prev,
                       valid, reverse, xh2, da_buf, dx2, dw, db):
    """BPTT for :func:`lstm_blas_forward` in one call.

    d_out (T, B, H); dh, dc (B, H) = dL/dh_T, dL/dc_T, overwritten with
    dL/dh_0, dL/dc_0. w_ih (4H, D), w_hh (4H, H) contiguous; cs, cs_prev
    (T, B, H) c_t and the state each step started from. xh2 (T*B, D+H) the
    forward's rows [x_t, h_prev(t)] in time order. Writes dx2 (T*B, D)
    = da W_ih, dw (4H, D+H) = [dW_ih, dW_hh] as one product da^T [x, h_prev]
    over all steps, and db (4H,). The gradients of the pre-activations, da,
    of a chunk of S steps go into da_buf (S, B, 4H), and dx and dW take
    their share of the chunk as soon as the loop has finished it: da never
    leaves the L2 cache.
    """
    T, B, H = d_out.shape
    S, _, G = da_buf.shape
    one, zero = gates.dtype.type(1.0), gates.dtype.type(0.0)
    db[:] = 0.0
    first = True
    tanh_c = np.empty((B, H), gates.dtype)
    for s in range(T - 1, -1, -1):
        t = _step_index(s, T, reverse)
        t0, t1 = _chunk(s, S, T, reverse)
        da = da_buf[t - t0]                      # chunk rows in time order
        for b in range(B):
            if valid[t, b]:                      # padded outputs ignored
                cb, tb, dhb, dob = cs[t, b], tanh_c[b], dh[b], d_out[t, b]
                for k in range(H):
                    tb[k] = _tanh(cb[k])
                for k in range(H):
                    dhb[k] += dob[k]
        lstm_gates_backward(gates[t], tanh_c, cs_prev[t], valid[t], dh, dc,
                            da)
        _add_rows(da, db)                        # padded rows: da = 0
        matmul_packed(da, w_hh_p, dh, True)      # + da W_hh
        if s % S == 0:                   # a chunk done: its share of dx, dW
            r0, r1 = t0 * B, t1 * B
            da2 = da_buf.reshape(S * B, G)[:r1 - r0]
            matmul_packed(da2, w_ih_p, dx2[r0:r1], False)
            gemm(fn, True, False, one, da2, xh2[r0:r1],
                 zero if first else one, dw)
            first = False


@njit(cache=True, error_model="numpy")
def gru_blas_forward(x, w_ih_p, w_hh_p, b_ih, b_hh, h0, valid, reverse, hs,
                     hns, gates):
    """The "blas" GRU forward pass in one call.

    x (T, B, D); w_ih_p, w_hh_p: W_ih^T and W_hh^T packed by
    :func:`lstmlib.kernels.tiles.pack`; b_ih, b_hh (3H,); h0 (B, H).
    Step by step, gx = x_t W_ih^T + b_ih goes into the step's slice of
    ``gates`` (T, B, 3H) and gh = h_{t-1} W_hh^T + b_hh into a buffer, both
    by the packed tiles, then :func:`gru_gates_forward` turns gx into r, z,
    n and writes hs and hns (T, B, H).
    """
    T, B, H = hs.shape
    gh = np.empty((B, 3 * H), gates.dtype)
    h = h0
    for s in range(T):
        t = _step_index(s, T, reverse)
        gx = gates[t]
        matmul_packed(x[t], w_ih_p, gx, False)
        matmul_packed(h, w_hh_p, gh, False)
        for b in range(B):
            gxb, ghb = gx[b], gh[b]
            for j in range(3 * H):
                gxb[j] += b_ih[j]
            for j in range(3 * H):
                ghb[j] += b_hh[j]
        gru_gates_forward(gx, gh, h, valid[t], hs[t], hns[t])
        h = hs[t]


@njit(cache=True, error_model="numpy")
def gru_blas_backward(fn, d_out, dh, w_ih_p, w_hh_p, gates, hns, hs_prev,
                      valid, reverse, x2, hp2, dgx_buf, dgh_buf, dx2, dw_ih,
                      dw_hh, db_ih, db_hh):
    """BPTT for :func:`gru_blas_forward` in one call.

    d_out (T, B, H); dh (B, H) = dL/dh_T, overwritten with dL/dh_0.
    w_ih_p, w_hh_p: W_ih and W_hh packed by :func:`lstmlib.kernels.tiles.pack`;
    gates, hns, hs_prev the forward's cache; x2 (T*B, D) and hp2 (T*B, H)
    the inputs and previous states in time order. Writes dx2 (T*B, D),
    dw_ih (3H, D), dw_hh (3H, H) (by BLAS, ``fn`` its ?gemm), db_ih, db_hh.
    The gradients of a chunk of S steps go into dgx_buf and dgh_buf
    (S, B, 3H), and dx and dW take their share as soon as the loop has
    finished the chunk (see :func:`lstm_blas_backward`).
    """
    T, B, H = d_out.shape
    S, _, G = dgx_buf.shape
    one, zero = gates.dtype.type(1.0), gates.dtype.type(0.0)
    db_ih[:] = 0.0
    db_hh[:] = 0.0
    first = True
    for s in range(T - 1, -1, -1):
        t = _step_index(s, T, reverse)
        t0, t1 = _chunk(s, S, T, reverse)
        dgx, dgh = dgx_buf[t - t0], dgh_buf[t - t0]
        for b in range(B):
            if valid[t, b]:                      # padded outputs ignored
                dhb, dob = dh[b], d_out[t, b]
                for k in range(H):
                    dhb[k] += dob[k]
        gru_gates_backward(gates[t], hns[t], hs_prev[t], valid[t], dh, dgx,
                           dgh)
        _add_rows(dgx, db_ih)                    # padded rows: zeros
        _add_rows(dgh, db_hh)
        matmul_packed(dgh, w_hh_p, dh, True)     # + dgh W_hh
        if s % S == 0:                   # a chunk done: its share of dx, dW
            r0, r1 = t0 * B, t1 * B
            gx2 = dgx_buf.reshape(S * B, G)[:r1 - r0]
            gh2 = dgh_buf.reshape(S * B, G)[:r1 - r0]
            matmul_packed(gx2, w_ih_p, dx2[r0:r1], False)
            beta = zero if first else one
            gemm(fn, True, False, one, gx2, x2[r0:r1], beta, dw_ih)
            gemm(fn, True, False, one, gh2, hp2[r0:r1], beta, dw_hh)
            first = False


# ---------------------------------------------------------------------------
# whole sequences: one batch row at a time (the body of the prange loops)

@njit(cache=True, error_model="numpy")
def _lstm_forward_row(b, w_hh_t, bias, h0, c0, lengths, reverse, out, gates,
                      cs, tanh_cs, hs_prev, cs_prev, h_n, c_n):
    """Row b's time loop; gates[t, b] holds x_t W_ih^T on entry (the input
    projection, computed for all steps before the loop) and the activations
    i, f, g, o on return."""
    T = gates.shape[0]
    H = h0.shape[1]
    h = h0[b].copy()
    c = c0[b].copy()
    L = lengths[b]
    for s in range(T):
        t = _step_index(s, T, reverse)
        if t >= L:                       # padding: output 0, state kept
            for k in range(H):
                out[t, b, k] = 0.0
            continue
        acc = gates[t, b]
        for j in range(4 * H):
            acc[j] += bias[j]
        vecmat(h, w_hh_t, acc)
        _sigmoid_(acc[:2 * H])                       # i, f
        _tanh_(acc[2 * H:3 * H])                     # g
        _sigmoid_(acc[3 * H:])                       # o
        hs_prev[t, b] = h
        cs_prev[t, b] = c
        for k in range(H):
            c[k] = acc[H + k] * c[k] + acc[k] * acc[2 * H + k]
        tc = tanh_cs[t, b]
        tc[:] = c
        _tanh_(tc)                                   # tanh(c)
        for k in range(H):
            h[k] = acc[3 * H + k] * tc[k]            # h = o * tanh(c)
        cs[t, b] = c
        out[t, b] = h
    h_n[b] = h
    c_n[b] = c


@njit(cache=True, error_model="numpy")
def _lstm_backward_row(b, d_out, dh_n, dc_n, w_hh, gates, tanh_cs, cs_prev,
                       lengths, reverse, da_all, dh0, dc0):
    """Row b's time loop backwards: da_all[t, b] (dx follows from it after
    the loop), dh0[b], dc0[b]."""
    T = gates.shape[0]
    H = dh_n.shape[1]
    one = gates.dtype.type(1.0)
    dh = dh_n[b].copy()
    dc = dc_n[b].copy()
    L = lengths[b]
    for s in range(T - 1, -1, -1):       # the forward's order, reversed
        t = _step_index(s, T, reverse)
        if t >= L:                       # padding: gradients pass by
            for j in range(4 * H):
                da_all[t, b, j] = 0.0
            continue
        da = da_all[t, b]
        for k in range(H):
            i = gates[t, b, k]
            f = gates[t, b, H + k]
            g = gates[t, b, 2 * H + k]
            o = gates[t, b, 3 * H + k]
            tc = tanh_cs[t, b, k]
            dhk = dh[k] + d_out[t, b, k]
            do = dhk * tc                            # h = o * tanh(c)
            dck = dc[k] + dhk * o * (one - tc * tc)  # through tanh(c)
            da[k] = dck * g * i * (one - i)          # c = f c_prev + i g
            da[H + k] = dck * cs_prev[t, b, k] * f * (one - f)
            da[2 * H + k] = dck * i * (one - g * g)
            da[3 * H + k] = do * o * (one - o)
            dc[k] = dck * f                          # dL/dc_{t-1}
        dh[:] = 0.0
        vecmat(da, w_hh, dh)                         # dL/dh_{t-1} = da W_hh
    dh0[b] = dh
    dc0[b] = dc


@njit(cache=True, error_model="numpy")
def _gru_forward_row(b, w_hh_t, b_ih, b_hh, h0, lengths, reverse, out, gates,
                     hns, hs_prev, h_n):
    """Row b's time loop; gates[t, b] holds x_t W_ih^T on entry (computed
    for all steps before the loop) and the activations r, z, n on return."""
    T = gates.shape[0]
    H = h0.shape[1]
    ah = np.empty(3 * H, gates.dtype)
    h = h0[b].copy()
    L = lengths[b]
    for s in range(T):
        t = _step_index(s, T, reverse)
        if t >= L:
            for k in range(H):
                out[t, b, k] = 0.0
            continue
        ax = gates[t, b]
        for j in range(3 * H):
            ax[j] += b_ih[j]
        ah[:] = b_hh
        vecmat(h, w_hh_t, ah)
        for j in range(2 * H):
            ax[j] += ah[j]
        _sigmoid_(ax[:2 * H])                        # r, z
        for k in range(H):
            ax[2 * H + k] += ax[k] * ah[2 * H + k]
        _tanh_(ax[2 * H:3 * H])                      # n
        hs_prev[t, b] = h
        for k in range(H):
            n = ax[2 * H + k]
            h[k] = n + ax[H + k] * (h[k] - n)        # (1-z) n + z h_prev
        hns[t, b] = ah[2 * H:]                       # W_hn h_prev + b_hn
        out[t, b] = h
    h_n[b] = h


@njit(cache=True, error_model="numpy")
def _gru_backward_row(b, d_out, dh_n, w_hh, gates, hns, hs_prev, lengths,
                      reverse, dgx_all, dgh_all, dh0):
    """Row b's time loop backwards: dgx_all[t, b] and dgh_all[t, b] (dx
    follows from dgx_all after the loop), dh0[b]."""
    T = gates.shape[0]
    H = dh_n.shape[1]
    one = gates.dtype.type(1.0)
    dh = dh_n[b].copy()
    L = lengths[b]
    for s in range(T - 1, -1, -1):
        t = _step_index(s, T, reverse)
        if t >= L:
            for j in range(3 * H):
                dgx_all[t, b, j] = 0.0
                dgh_all[t, b, j] = 0.0
            continue
        dgx = dgx_all[t, b]
        dgh = dgh_all[t, b]
        for k in range(H):
            r = gates[t, b, k]
            z = gates[t, b, H + k]
            n = gates[t, b, 2 * H + k]
            dhk = dh[k] + d_out[t, b, k]
            dn = dhk * (one - z)                     # h = (1-z) n + z h_prev
            dz = dhk * (hs_prev[t, b, k] - n)
            dan = dn * (one - n * n)                 # through tanh
            dar = dan * hns[t, b, k] * r * (one - r)  # n = tanh(.. + r hn)
            daz = dz * z * (one - z)
            dgx[k] = dar
            dgx[H + k] = daz
            dgx[2 * H + k] = dan
            dgh[k] = dar
            dgh[H + k] = daz
            dgh[2 * H + k] = dan * r
            dh[k] = dhk * z                          # direct path to h_prev
        vecmat(dgh, w_hh, dh)                        # + dgh W_hh
    dh0[b] = dh


# Rows of a whole sequence's product per block of :func:`_product_rows`: a
# multiple of the tiles' 8 (AVX-512) and 6 rows.
_PRODUCT_ROWS = 48


@njit(cache=True, error_model="numpy")
def _product_rows(q, a, b_p, c):
    """Rows 48q .. 48q+47 of c = a B over all steps: a (T, B, K) and c
    (T, B, N) C-contiguous, taken as (T*B, K) and (T*B, N); B packed by
    :func:`lstmlib.kernels.tiles.pack`. The input projection x_t W_ih^T of
    every step before a time loop, and dx_t = da_t W_ih after the backward
    one: out of the loop, these products run by the tiles over many rows at
    once instead of as one vector-matrix product per step. The blocks of
    rows are independent (a prange over q)."""
    T, B, K = a.shape
    M = T * B
    r0, r1 = _PRODUCT_ROWS * q, min(M, _PRODUCT_ROWS * q + _PRODUCT_ROWS)
    matmul_packed(a.reshape(M, K)[r0:r1], b_p,
                  c.reshape(M, c.shape[2])[r0:r1], False)


@njit(cache=True, error_model="numpy")
def _product_blocks(T, B):
    return (T * B + _PRODUCT_ROWS - 1) // _PRODUCT_ROWS


# Rows of dW per block of :func:`_weight_grad_rows`: four tiles of 8 rows.
_GRAD_ROWS = 32


@njit(cache=True, error_model="numpy")
def _grad_blocks(N):
    return (N + _GRAD_ROWS - 1) // _GRAD_ROWS


@njit(cache=True, error_model="numpy")
def _weight_grad_rows(q, da_all, inp_p, dw):
    """Rows 32q .. 32q+31 of dW = da^T inp, summed over all t and b:
    da_all (T, B, N) C-contiguous, inp (its rows t*B + b) packed by
    :func:`lstmlib.kernels.tiles.pack`. dW comes out as a layer stores it,
    (N, K), with no transpose after; the blocks of rows are independent
    (a prange over q needs no lock)."""
    T, B, N = da_all.shape
    r0, r1 = _GRAD_ROWS * q, min(N, _GRAD_ROWS * q + _GRAD_ROWS)
    matmul_packed(da_all.reshape(T * B, N)[:, r0:r1], inp_p, dw[r0:r1],
                  False, True)


@njit(cache=True, error_model="numpy")
def _bias_grad(da_all):
    T, B, N = da_all.shape
    db = np.zeros(N, da_all.dtype)
    for t in range(T):
        for b in range(B):
            for j in range(N):
                db[j] += da_all[t, b, j]
    return db


# ---------------------------------------------------------------------------
# whole sequences: serial and batch-parallel drivers
#
# Each driver is written once, with ``prange``, and compiled twice: as it is
# (without ``parallel=True`` Numba runs ``prange`` as ``range``) and with
# ``parallel=True``. Numba's on-disk cache names its files after the Python
# function and keys the entries by signature and bytecode, not by compile
# options: two dispatchers of one function would share one entry, and the
# parallel one would load the serial machine code. The parallel version is
# therefore compiled from a copy named ``<name>_parallel``, which gets cache
# files of its own.

def _serial_and_parallel(fn, parallel_doc):
    """(serial, parallel) dispatchers compiled from the one body ``fn``."""
    twin = types.FunctionType(fn.__code__, fn.__globals__,
                              fn.__name__ + "_parallel", fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__ = twin.__name__
    twin.__doc__ = parallel_doc
    return (njit(cache=True, error_model="numpy")(fn),
            njit(cache=True, parallel=True, error_model="numpy")(twin))


def lstm_sequence_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths,
                          reverse):
    """The whole LSTM forward pass in one compiled call.

    x (T, B, D) C-contiguous; w_ih (4H, D), w_hh (4H, H) as a layer stores
    them; b_ih, b_hh (4H,) (zeros for none); h0, c0 (B, H); lengths (B,)
    int64 (T for every row when there is no padding); reverse walks
    t = T-1..0. The input projection x_t W_ih^T of all steps is one product
    by the packed tiles before the time loop; the loop adds h_{t-1} W_hh^T
    row by row. Returns out (T, B, H), h_n, c_n (B, H) and the cache arrays
    gates (T, B, 4H) = i, f, g, o; c, tanh(c), h_prev, c_prev (T, B, H).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dt = x.dtype
    bias = b_ih + b_hh
    out = np.empty((T, B, H), dt)
    gates = np.empty((T, B, 4 * H), dt)
    cs = np.zeros((T, B, H), dt)
    tanh_cs = np.zeros((T, B, H), dt)
    hs_prev = np.zeros((T, B, H), dt)
    cs_prev = np.zeros((T, B, H), dt)
    h_n = np.empty((B, H), dt)
    c_n = np.empty((B, H), dt)
    w_p = pack(w_ih, True)
    for q in prange(_product_blocks(T, B)):
        _product_rows(q, x, w_p, gates)              # x_t W_ih^T, every t
    w_hh_t = aligned_rows(w_hh, True)
    for b in prange(B):
        _lstm_forward_row(b, w_hh_t, bias, h0, c0, lengths, reverse, out,
                          gates, cs, tanh_cs, hs_prev, cs_prev, h_n, c_n)
    return out, h_n, c_n, gates, cs, tanh_cs, hs_prev, cs_prev


lstm_sequence_forward, lstm_sequence_forward_parallel = _serial_and_parallel(
    lstm_sequence_forward,
    """:func:`lstm_sequence_forward`, batch rows spread over threads.""")


def lstm_sequence_backward(d_out, dh_n, dc_n, x, w_ih, w_hh, gates, tanh_cs,
                           hs_prev, cs_prev, lengths, reverse):
    """BPTT for :func:`lstm_sequence_forward` in one compiled call.

    d_out (T, B, H), dh_n, dc_n (B, H) (zeros, not None); w_ih (4H, D),
    w_hh (4H, H) as stored. Returns dx, dh0, dc0, dw_ih, dw_hh, db
    (db is the gradient of b_ih and of b_hh alike). The time loop computes
    the pre-activation gradients da and dh; dx = da W_ih and the weight
    gradients follow from them after the loop, by the packed tiles.
    """
    T, B, D = x.shape
    H = dh_n.shape[1]
    dt = x.dtype
    da_all = np.empty((T, B, 4 * H), dt)
    dx = np.empty((T, B, D), dt)
    dh0 = np.empty((B, H), dt)
    dc0 = np.empty((B, H), dt)
    w_hh_a = aligned_rows(w_hh, False)
    for b in prange(B):
        _lstm_backward_row(b, d_out, dh_n, dc_n, w_hh_a, gates, tanh_cs,
                           cs_prev, lengths, reverse, da_all, dh0, dc0)
    w_p = pack(w_ih, False)
    for q in prange(_product_blocks(T, B)):
        _product_rows(q, da_all, w_p, dx)            # dx_t = da_t W_ih
    dw_ih = np.empty((4 * H, D), dt)
    dw_hh = np.empty((4 * H, H), dt)
    x_p = pack(x.reshape(T * B, D), False)
    h_p = pack(hs_prev.reshape(T * B, H), False)
    nq = _grad_blocks(4 * H)
    for q in prange(2 * nq):
        if q < nq:
            _weight_grad_rows(q, da_all, x_p, dw_ih)
        else:
            _weight_grad_rows(q - nq, da_all, h_p, dw_hh)
    return dx, dh0, dc0, dw_ih, dw_hh, _bias_grad(da_all)


lstm_sequence_backward, lstm_sequence_backward_parallel = _serial_and_parallel(
    lstm_sequence_backward,
    """:func:`lstm_sequence_backward`: batch rows, then blocks of rows of
    dW, in parallel (no two threads ever write the same element).""")


def gru_sequence_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, reverse):
    """The whole GRU forward pass in one compiled call.

    x (T, B, D) C-contiguous; w_ih (3H, D), w_hh (3H, H) as stored; b_ih,
    b_hh (3H,) (zeros for none); h0 (B, H). The input projection of all
    steps comes first, as in :func:`lstm_sequence_forward`. Returns out
    (T, B, H), h_n (B, H) and the cache arrays gates (T, B, 3H) = r, z, n;
    hn = W_hn h_prev + b_hn and h_prev (T, B, H).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dt = x.dtype
    out = np.empty((T, B, H), dt)
    gates = np.empty((T, B, 3 * H), dt)
    hns = np.zeros((T, B, H), dt)
    hs_prev = np.zeros((T, B, H), dt)
    h_n = np.empty((B, H), dt)
    w_p = pack(w_ih, True)
    for q in prange(_product_blocks(T, B)):
        _product_rows(q, x, w_p, gates)              # x_t W_ih^T, every t
    w_hh_t = aligned_rows(w_hh, True)
    for b in prange(B):
        _gru_forward_row(b, w_hh_t, b_ih, b_hh, h0, lengths, reverse, out,
                         gates, hns, hs_prev, h_n)
    return out, h_n, gates, hns, hs_prev


gru_sequence_forward, gru_sequence_forward_parallel = _serial_and_parallel(
    gru_sequence_forward,
    """:func:`gru_sequence_forward`, batch rows spread over threads.""")


def gru_sequence_backward(d_out, dh_n, x, w_ih, w_hh, gates, hns, hs_prev,
                          lengths, reverse):
    """BPTT for :func:`gru_sequence_forward` in one compiled call.

    Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh.
    """
    T, B, D = x.shape
    H = dh_n.shape[1]
    dt = x.dtype
    dgx_all = np.empty((T, B, 3 * H), dt)
    dgh_all = np.empty((T, B, 3 * H), dt)
    dx = np.empty((T, B, D), dt)
    dh0 = np.empty((B, H), dt)
    w_hh_a = aligned_rows(w_hh, False)
    for b in prange(B):
        _gru_backward_row(b, d_out, dh_n, w_hh_a, gates, hns, hs_prev, lengths,
                          reverse, dgx_all, dgh_all, dh0)
    w_p = pack(w_ih, False)
    for q in prange(_product_blocks(T, B)):
        _product_rows(q, dgx_all, w_p, dx)           # dx_t = dgx_t W_ih
    dw_ih = np.empty((3 * H, D), dt)
    dw_hh = np.empty((3 * H, H), dt)
    x_p = pack(x.reshape(T * B, D), False)
    h_p = pack(hs_prev.reshape(T * B, H), False)
    nq = _grad_blocks(3 * H)
    for q in prange(2 * nq):
        if q < nq:
            _weight_grad_rows(q, dgx_all, x_p, dw_ih)
        else:
            _weight_grad_rows(q - nq, dgh_all, h_p, dw_hh)
    return (dx, dh0, dw_ih, dw_hh, _bias_grad(dgx_all),
            _bias_grad(dgh_all))


gru_sequence_backward, gru_sequence_backward_parallel = _serial_and_parallel(
    gru_sequence_backward,
    """:func:`gru_sequence_backward` with batch rows, then blocks of rows of
    dW, in parallel.""")
