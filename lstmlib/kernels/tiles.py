r"""A matrix product for a recurrent layer's W_hh: packed once, then used
at every step from registers the full width of the CPU's vectors.

Each step of a recurrent layer multiplies a small block of rows (the
batch's states, B x H) by the same matrix W_hh^T (H x G*H). A general BLAS
product copies the matrix into packed buffers at every call, and LLVM's
loops (:func:`~lstmlib.kernels.numba_cpu.matmul_blocked`) use 256-bit
vectors on AVX-512 machines (its cost model prefers them there). Here the
matrix is packed once per sequence into panels of ``NR`` columns
(:func:`pack`), and each step walks the panels with a hand-written tile
(:func:`_tile`): ``MR`` rows times one panel of sums held in vector
registers for the whole inner dimension, one broadcast of ``a[r, k]`` and
one fused multiply-add per register and ``k``. The tile is written as LLVM
vector IR of the CPU's full width (16 float32 lanes with AVX-512, 8
without), so the vector width is ours to choose, not the cost model's.

Every sum c[r, j] += sum_k a[r, k] b[k, j] is taken in the order
k = 0, 1, ... with one rounding per FMA, the order BLAS's kernels use too.

Columns past the last full panel go through a tile of scratch sums (the
packed panel is padded with zeros), so any N works; rows past the last full
tile go by tiles of 4, 2 and 1 rows.

:func:`vecmat` is the product of a single row, one batch row's step in the
fused kernels (``h W_hh^T`` forward, ``da W_hh`` backward). With one row
there is nothing to reuse a loaded element of W for, so nothing is packed:
it reads W's rows in place, four vectors of columns at a time, and keeps
``SPLIT`` sets of sums over interleaved k (k = 0, 4, 8, ... in one set,
1, 5, 9, ... in the next), added together at the end. With a single set,
each sum would wait for the previous step's multiply-add (four cycles) at
every k; with several, the chains run side by side. That changes the order
of the sum, not its exactness: each term is rounded once, as in any
product.
"""

import os

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit
from numba import types as nbtypes
from numba.core import cgutils
from numba.extending import intrinsic, overload

__all__ = ["VECTOR_BYTES", "MR", "SPLIT", "ALIGN", "panel_width", "pack",
           "matmul_packed", "vecmat", "aligned_rows", "transpose_into"]


def _vector_bytes():
    """64 where the CPU Numba compiles for has AVX-512, else 32.

    That CPU is this machine's, unless NUMBA_CPU_NAME names another (then
    NUMBA_CPU_FEATURES says what it has). The environment variable
    LSTMLIB_TILE_VECTOR_BYTES (32 or 64) overrides both (to test the
    32-byte tiles on an AVX-512 machine; use a fresh NUMBA_CACHE_DIR with
    it)."""
    from numba import config
    name = "LSTMLIB_TILE_VECTOR_BYTES"
    if os.environ.get(name):
        value = os.environ[name]
        if value not in ("32", "64"):
            raise ValueError(f"{name}: expected 32 or 64, received {value!r}")
        return int(value)
    if config.CPU_NAME:
        return 64 if "+avx512f" in (config.CPU_FEATURES or "") else 32
    features = llvm_binding.get_host_cpu_features()
    return 64 if features.get("avx512f", False) else 32


# The vector registers the tile uses: 64-byte (zmm, 32 of them) with
# AVX-512, else 32-byte (ymm, 16). MR rows x 2 vectors of sums, plus two
# vectors of the panel and one broadcast, fit in the register file.
VECTOR_BYTES = _vector_bytes()
MR = 8 if VECTOR_BYTES == 64 else 6
_NV = 2                                 # vectors per row of a tile
# vecmat: sets of sums over interleaved k, each of up to _VM_NV vectors:
# 4 x 4 sums, four vectors of W and one broadcast fit 32 zmm registers;
# 2 x 4 and five more fit 16 ymm.
SPLIT = 4 if VECTOR_BYTES == 64 else 2
_VM_NV = 4


def panel_width(dtype):
    """NR, the columns of one packed panel (two vectors) for ``dtype``."""
    return _NV * VECTOR_BYTES // np.dtype(dtype).itemsize


class _Emit:
    """What the code generators of the intrinsics below share: the vector
    type of the arrays' dtype at VECTOR_BYTES (W lanes), ``llvm.fma`` of it,
    the arguments as pointers and int64, and a counted loop that carries
    vectors of sums."""

    def __init__(self, context, builder, signature, args, real_arg):
        self.context, self.builder = context, builder
        self.st, self.args = signature.args, args
        self.i64 = ir.IntType(64)
        real = context.get_value_type(self.st[real_arg].dtype)
        bits = 32 if isinstance(real, ir.FloatType) else 64
        self.W = W = VECTOR_BYTES * 8 // bits
        self.vec = ir.VectorType(real, W)
        self.fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vec, [self.vec] * 3),
            f"llvm.fma.v{W}f{bits}")
        self.zero = ir.Constant(self.vec, [ir.Constant(real, 0.0)] * W)
        self._lanes0 = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)

    def data(self, j, offset_arg=None):
        """Pointer to the first element of array argument j, or to element
        args[offset_arg] of it."""
        arr = self.context.make_array(self.st[j])(self.context, self.builder,
                                                   self.args[j])
        if offset_arg is None:
            return arr.data
        return self.builder.gep(arr.data, [self.int64(offset_arg)])

    def int64(self, j):
        return self.context.cast(self.builder, self.args[j], self.st[j],
                                 nbtypes.int64)

    def const(self, v):
        return ir.Constant(self.i64, v)

    def vector_at(self, ptr, offset):
        """The vector of W elements at ptr + offset, as a pointer."""
        return self.builder.bitcast(
            self.builder.gep(ptr, [self.const(offset)]),
            self.vec.as_pointer())

    def splat(self, ptr):
        """The element at ptr in every lane."""
        b = self.builder
        one = b.insert_element(ir.Constant(self.vec, ir.Undefined),
                               b.load(ptr), ir.Constant(ir.IntType(32), 0))
        return b.shuffle_vector(one, ir.Constant(self.vec, ir.Undefined),
                                self._lanes0)

    def loop(self, name, k0, k_end, stride, start, body):
        """for k in range(k0, k_end, stride): sums = body(k, sums), from
        sums = start; the sums after the loop (start when it runs no
        step)."""
        b = self.builder
        before = b.block
        head = b.append_basic_block(name)
        done = b.append_basic_block(name + ".done")
        b.cbranch(b.icmp_signed("<", k0, k_end), head, done)
        b.position_at_end(head)
        k = b.phi(self.i64)
        k.add_incoming(k0, before)
        sums = []
        for s in start:
            phi = b.phi(self.vec)
            phi.add_incoming(s, before)
            sums.append(phi)
        new = body(k, sums)
        k_next = b.add(k, self.const(stride))
        end = b.block
        k.add_incoming(k_next, end)
        for phi, s in zip(sums, new):
            phi.add_incoming(s, end)
        b.cbranch(b.icmp_signed("<", k_next, k_end), head, done)
        b.position_at_end(done)
        final = []
        for s0, s1 in zip(start, new):
            phi = b.phi(self.vec)
            phi.add_incoming(s0, before)
            phi.add_incoming(s1, end)
            final.append(phi)
        return final


@intrinsic
def _tile(typingctx, a, a_off, a_rs, a_ks, bp, bp_off, c, c_off, ldc, K,
          rows, accumulate):
    """c[r, 0:NR] = (c[r, 0:NR] if accumulate else 0) + sum_k a[r, k] *
    bp[k, 0:NR] for r < rows (an integer literal).

    Offsets and strides in elements: a[r, k] at a_off + r*a_rs + k*a_ks,
    bp[k, j] at bp_off + k*NR + j, c[r, j] at c_off + r*ldc + j.
    """
    if not isinstance(rows, nbtypes.IntegerLiteral):
        return None
    MRows = rows.literal_value
    sig = nbtypes.none(a, a_off, a_rs, a_ks, bp, bp_off, c, c_off, ldc, K,
                       rows, accumulate)

    def codegen(context, builder, signature, args):
        e = _Emit(context, builder, signature, args, 6)
        W = e.W
        pa, pb, pc = e.data(0, 1), e.data(4, 5), e.data(6, 7)
        a_rs_, a_ks_, ldc_, K_ = e.int64(2), e.int64(3), e.int64(8), e.int64(9)
        accumulate_ = context.cast(builder, args[11], signature.args[11],
                                   nbtypes.boolean)
        c_at, start = [], []
        for r in range(MRows):
            row = builder.gep(pc, [builder.mul(ldc_, e.const(r))])
            for v in range(_NV):
                p = e.vector_at(row, v * W)
                c_at.append(p)
                start.append(builder.select(accumulate_,
                                            builder.load(p, align=1), e.zero))

        def step(k, sums):
            b_row = builder.gep(pb, [builder.mul(k, e.const(_NV * W))])
            b = [builder.load(e.vector_at(b_row, v * W), align=1)
                 for v in range(_NV)]
            a_k = builder.gep(pa, [builder.mul(k, a_ks_)])
            new = []
            for r in range(MRows):
                x = e.splat(builder.gep(a_k, [builder.mul(a_rs_, e.const(r))]))
                for v in range(_NV):
                    new.append(builder.call(e.fma, [x, b[v],
                                                    sums[r * _NV + v]]))
            return new

        final = e.loop("tile", e.const(0), K_, 1, start, step)
        for p, s in zip(c_at, final):
            builder.store(s, p, align=1)
        return context.get_dummy_value()
    return sig, codegen


def pack(w, transposed):
    """The panels of B for :func:`matmul_packed`: (P, K, NR), zero-padded.

    ``transposed=False``: B = w (K, N); ``transposed=True``: B = w.T, w
    (N, K) (a layer's W_hh as stored, for h W_hh^T). Panel p holds columns
    p*NR .. p*NR + NR - 1 of B, row after row.
    """
    NR = panel_width(w.dtype)
    return _pack(np.ascontiguousarray(w), transposed, NR)


@overload(pack, jit_options=dict(cache=True))
def _pack_compiled(w, transposed):
    def impl(w, transposed):
        return _pack(np.ascontiguousarray(w), transposed,
                     _NV * VECTOR_BYTES // w.itemsize)
    return impl


# Where the copies made here start: at a cache line, which is also the size
# of a zmm register. Arrays Numba allocates start at 32 bytes (its AVX
# default), so half of them would have every 64-byte load of a panel row
# straddle two cache lines (measured: 30-40% slower products).
ALIGN = 64


@njit(cache=True)
def _aligned_empty(n, like):
    """An uninitialised (n,) array of like's dtype starting at ALIGN bytes."""
    item = like.itemsize
    buf = np.empty(n + ALIGN // item, like.dtype)
    off = ((-buf.ctypes.data) % ALIGN) // item
    return buf[off:off + n]


@njit(cache=True)
def transpose_into(w, out):
    """out[:, :] = w.T, in tiles of 32 x 32: ``np.ascontiguousarray(w.T)``
    walks w down its columns, one cache line per element read; a tile's 32
    rows stay in the L1 cache while they are read across (3.7 against
    14.4 ms for a 2048 x 512 float32 W_hh, on an Intel Xeon). out may be a
    view with padded rows."""
    R, C = w.shape
    for r0 in range(0, R, 32):
        r1 = min(R, r0 + 32)
        for c0 in range(0, C, 32):
            for c in range(c0, min(C, c0 + 32)):
                for r in range(r0, r1):
                    out[c, r] = w[r, c]


@njit(cache=True)
def aligned_rows(w, transposed):
    """A copy of w (or of w.T) whose rows all start at ALIGN bytes: rows
    padded to a whole number of cache lines, a view of the first columns
    (the operand of :func:`vecmat`)."""
    R, C = (w.shape[1], w.shape[0]) if transposed else w.shape
    per = ALIGN // w.itemsize
    ld = (C + per - 1) // per * per
    out = _aligned_empty(R * ld, w).reshape((R, ld))[:, :C]
    if transposed:
        transpose_into(w, out)
    else:
        out[:, :] = w
    return out


@njit(cache=True)
def _pack(w, transposed, NR):
    K, N = (w.shape[1], w.shape[0]) if transposed else w.shape
    P = (N + NR - 1) // NR
    bp = _aligned_empty(P * K * NR, w).reshape((P, K, NR))
    bp[...] = 0.0
    for p in range(P):
        j1 = min(NR, N - p * NR)
        if transposed:
            for j in range(j1):
                wj = w[p * NR + j]
                for k in range(K):
                    bp[p, k, j] = wj[k]
        else:
            for k in range(K):
                for j in range(j1):
                    bp[p, k, j] = w[k, p * NR + j]
    return bp


def matmul_packed(a, bp, c, accumulate, trans_a=False):
    """c = (c if accumulate else 0) + op(a) @ B, B packed by :func:`pack`.

    a (M, K) (or (K, M) with ``trans_a``), c (M, N): 2-D with unit stride
    along their rows (row slices of C arrays). As plain Python
    (NUMBA_DISABLE_JIT=1) this is numpy's product.
    """
    P, K, NR = bp.shape
    N = c.shape[1]
    b = bp.transpose(1, 0, 2).reshape(K, P * NR)[:, :N]
    prod = (a.T if trans_a else a) @ b
    if accumulate:
        c += prod
    else:
        c[...] = prod


@njit(cache=True, error_model="numpy")
def _rows(a, a_rs, a_ks, bp, b_off, K, c, c_off, ldc, M, accumulate):
    """Tiles down all M rows of c for one panel."""
    r = 0
    while r + MR <= M:
        _tile(a, r * a_rs, a_rs, a_ks, bp, b_off, c, c_off + r * ldc,
              ldc, K, MR, accumulate)
        r += MR
    if M - r >= 4:
        _tile(a, r * a_rs, a_rs, a_ks, bp, b_off, c, c_off + r * ldc,
              ldc, K, 4, accumulate)
        r += 4
    if M - r >= 2:
        _tile(a, r * a_rs, a_rs, a_ks, bp, b_off, c, c_off + r * ldc,
              ldc, K, 2, accumulate)
        r += 2
    if M - r >= 1:
        _tile(a, r * a_rs, a_rs, a_ks, bp, b_off, c, c_off + r * ldc,
              ldc, K, 1, accumulate)


@overload(matmul_packed, jit_options=dict(cache=True))
def _matmul_packed_compiled(a, bp, c, accumulate, trans_a=False):
    def impl(a, bp, c, accumulate, trans_a=False):
        P, K, NR = bp.shape
        M, N = c.shape
        item = c.itemsize
        ldc = c.strides[0] // item
        if trans_a:
            a_rs, a_ks = 1, a.strides[0] // item
        else:
            a_rs, a_ks = a.strides[0] // item, 1
        if K == 0:                       # an empty sum
            if not accumulate:
                c[:, :] = 0.0
            return
        full = N // NR
        for p in range(full):
            _rows(a, a_rs, a_ks, bp, p * K * NR, K, c, p * NR, ldc, M,
                  accumulate)
        if full < P:                     # the last columns, through scratch
            n = N - full * NR
            tmp = np.zeros((M, NR), c.dtype)
            if accumulate:
                for r in range(M):
                    for j in range(n):
                        tmp[r, j] = c[r, full * NR + j]
            _rows(a, a_rs, a_ks, bp, full * K * NR, K, tmp, 0, NR, M,
                  accumulate)
            for r in range(M):
                for j in range(n):
                    c[r, full * NR + j] = tmp[r, j]
    return impl


@intrinsic
def _vec_tile(typingctx, v, w, w_off, ldw, acc, acc_off, K, nvec):
    """acc[acc_off + j] += sum_k v[k] * w[w_off + k*ldw + j] for
    j < nvec * lanes (nvec an integer literal), in SPLIT sets of sums over
    interleaved k (see the module's text). Offsets and strides in
    elements."""
    if not isinstance(nvec, nbtypes.IntegerLiteral):
        return None
    NVec = nvec.literal_value
    sig = nbtypes.none(v, w, w_off, ldw, acc, acc_off, K, nvec)

    def codegen(context, builder, signature, args):
        e = _Emit(context, builder, signature, args, 4)
        W = e.W
        pv, pw, pacc = e.data(0), e.data(1, 2), e.data(4, 5)
        ldw_, K_ = e.int64(3), e.int64(6)

        def step(k, sums):
            """sums[j] + v[k] * w[k, j-th vector], for every j."""
            x = e.splat(builder.gep(pv, [k]))
            row = builder.gep(pw, [builder.mul(k, ldw_)])
            return [builder.call(e.fma, [x, builder.load(
                e.vector_at(row, j * W), align=1), s])
                for j, s in enumerate(sums)]

        def split_step(k, sums):
            out = []
            for s in range(SPLIT):
                out += step(builder.add(k, e.const(s)),
                            sums[s * NVec:(s + 1) * NVec])
            return out

        k_main = builder.mul(builder.sdiv(K_, e.const(SPLIT)), e.const(SPLIT))
        sets = e.loop("vecmat.split", e.const(0), k_main, SPLIT,
                      [e.zero] * (SPLIT * NVec), split_step)
        total = sets[:NVec]
        for s in range(1, SPLIT):
            total = [builder.fadd(a, b)
                     for a, b in zip(total, sets[s * NVec:(s + 1) * NVec])]
        total = e.loop("vecmat.rest", k_main, K_, 1, total, step)
        for j, t in enumerate(total):
            p = e.vector_at(pacc, j * W)
            builder.store(builder.fadd(builder.load(p, align=1), t), p,
                          align=1)
        return context.get_dummy_value()
    return sig, codegen


def vecmat(v, w, acc):
    """acc += v @ w for one row: v (K,), w (K, N) with unit stride along its
    rows (read in place, not packed), acc (N,) contiguous. As plain Python
    (NUMBA_DISABLE_JIT=1) this is numpy's product."""
    acc += v @ w


@overload(vecmat, jit_options=dict(cache=True))
def _vecmat_compiled(v, w, acc):
    def impl(v, w, acc):
        K, N = w.shape
        ldw = w.strides[0] // w.itemsize
        L = VECTOR_BYTES // w.itemsize
        j = 0
        while j + _VM_NV * L <= N:
            _vec_tile(v, w, j, ldw, acc, j, K, _VM_NV)
            j += _VM_NV * L
        if N - j >= 2 * L:
            _vec_tile(v, w, j, ldw, acc, j, K, 2)
            j += 2 * L
        if N - j >= L:
            _vec_tile(v, w, j, ldw, acc, j, K, 1)
            j += L
        for jj in range(j, N):                # the last columns, one by one
            s = acc.dtype.type(0.0)
            for k in range(K):
                s += v[k] * w[k, jj]
            acc[jj] += s
    return impl
