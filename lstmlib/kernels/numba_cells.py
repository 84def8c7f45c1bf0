"""The Numba kernels behind the uniform cell interface of :mod:`lstmlib.cells`.

``forward(x, state, weights, lengths=None, reverse=False, mode="auto",
parallel=False)`` and ``backward(d_out, d_state_n, cache)`` take and return
exactly what the numpy cells do, so a layer switches with
``backend="numba"`` and nothing else changes.

Three ways to run a sequence, picked by ``mode``:

``"fused"``
    the whole sequence, matrix products included, in one ``@njit`` call
    (:func:`~lstmlib.kernels.numba_cpu.lstm_sequence_forward`). Nothing but
    arithmetic between steps: the right choice while a step's matrix product
    is small (the per-step overhead of numpy or torch then dominates).
``"blocked"``
    the input projection of all steps as one BLAS product, then the time
    loop in one ``@njit`` call
    (:func:`~lstmlib.kernels.numba_cpu.lstm_recurrence_forward`) whose
    product ``h W_hh^T`` is register-blocked over four batch rows
    (:func:`~lstmlib.kernels.numba_cpu.matmul_blocked`); the backward pass
    likewise, its weight gradients as BLAS products after the loop. The right
    choice at a small batch with a large W_hh, where BLAS handles each step's
    skinny product poorly.
``"blas"``
    the time loop in one ``@njit`` call
    (:func:`~lstmlib.kernels.numba_cpu.lstm_blas_forward`,
    :func:`~lstmlib.kernels.numba_cpu.gru_blas_forward`): the weights packed
    once per call into panels (:mod:`lstmlib.kernels.tiles`), then per step
    the input's and the state's products by the packed tiles straight into
    the step's pre-activations, and the fused gate kernel; the backward pass
    likewise, ``dh`` and ``dx`` by the tiles and the weight gradients by
    numpy's own OpenBLAS, called from the compiled loop chunk by chunk (the
    LSTM's ``dW_ih`` and ``dW_hh`` as one product, over ``[x_t, h_{t-1}]``
    rows the forward pass wrote side by side). The right choice at larger
    batches. Needs numpy's own OpenBLAS (the one in its wheels); elsewhere
    :data:`HAVE_BLAS` is False and "auto" picks stepwise.
``"stepwise"``
    the reference's loop, with BLAS for the products (the input projection of
    all steps as one product, then ``h W_hh^T`` per step) and one fused gate
    kernel per step instead of a dozen numpy element-wise passes.
``"auto"``
    fused while ``B * H * G * H`` (one step's recurrent multiply-adds) is at
    most ``FUSED_MAX_WORK``; above it blocked while ``B`` is at most
    ``BLOCKED_MAX_BATCH``, otherwise blas (stepwise where numpy's OpenBLAS
    is not available).

``parallel=True`` uses the ``prange`` (batch-parallel) versions of the fused
kernels; the thread count is Numba's (``numba.set_num_threads``). The other
modes run on one thread (BLAS's own threads aside).
"""

import math
from collections import namedtuple

import numpy as np
from numba import config as _numba_config
from numba import njit

from .. import _sequence as seq
from . import numba_cpu as K
from . import tiles
from .numpy_fast import input_projection, weight_gradients

# One step's recurrent multiply-adds up to which the fused kernels win: the
# hand-written products keep W_hh in cache up to about H = 64, beyond which
# BLAS wins (the performance chapter measures the crossover).
FUSED_MAX_WORK = 64 * 4 * 64 * 64
# Above it, the batch size up to which the register-blocked product beats
# BLAS's: each element of W_hh is then used so few times per step that
# bringing W_hh in from the caches bounds both, and BLAS's general product
# also copies W_hh into packed buffers first (the performance chapter
# measures both at B = 4 and B = 32).
BLOCKED_MAX_BATCH = 8

# The CBLAS ?gemm of numpy's own OpenBLAS, by dtype (the weight gradients of
# "blas" mode); as plain Python (NUMBA_DISABLE_JIT=1) the mode uses numpy's
# products instead.
GEMM = K.blas_gemm_addresses()
HAVE_BLAS = bool(GEMM) or bool(_numba_config.DISABLE_JIT)
# "blas" mode's backward pass computes dx and dW by chunks of steps of about
# this many bytes of pre-activation gradients: small enough to stay in the
# L2 cache from the loop that writes them to the products that read them
# (16 steps at B = 32, H = 128, float32), large enough that the products
# run nearly as fast as one over all steps.
CHUNK_BYTES = 1 << 20


def _chunk_steps(B, G, dtype):
    return max(1, CHUNK_BYTES // (B * G * np.dtype(dtype).itemsize))


# Arrays from this many bytes up are allocated by Numba's runtime (:func:`_empty`).
MALLOC_BYTES = 4 << 20


@njit(cache=True)
def _malloc_empty(n, dtype):
    return np.empty(n, dtype)


def _empty(shape, dtype):
    """``np.empty(shape, dtype)``; from MALLOC_BYTES up, allocated by Numba's
    runtime (plain malloc) instead of numpy. For every array of 4 MiB or
    more numpy asks the kernel for transparent huge pages (madvise), and
    torch's CPU allocator does not. On the virtual machines that recorded
    the benchmarks, first touching huge pages cost the LSTM's forward pass
    at the large shape (float64, blas mode, about 0.4 GB of fresh arrays)
    0.31-1.07 s of system time per call (12 calls), against 0.16-0.22 s
    with ordinary pages (16 calls); with malloc the system's own huge-page
    policy still applies."""
    dtype = np.dtype(dtype)
    n = math.prod(shape)
    if n * dtype.itemsize < MALLOC_BYTES:
        return np.empty(shape, dtype)
    return _malloc_empty(n, dtype).reshape(shape)

NumbaLSTMCache = namedtuple(
    "NumbaLSTMCache",
    "mode x h0 c0 w_ih w_hh has_bias lengths valid reverse parallel "
    "gates cs tanh_cs hs_prev cs_prev xh", defaults=(None,))
NumbaGRUCache = namedtuple(
    "NumbaGRUCache",
    "mode x h0 w_ih w_hh has_bias lengths valid reverse parallel "
    "gates hns hs_prev")

MODES = ("auto", "fused", "blocked", "blas", "stepwise")


def _pick_mode(mode, B, H, G):
    """The mode "auto" stands for, for a batch of B, H hidden units and G
    gates."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, received {mode!r}")
    if mode == "blas" and not HAVE_BLAS:
        raise ValueError("mode 'blas': numpy's own OpenBLAS was not found "
                         "(numpy built against another BLAS)")
    if mode == "auto":
        if B * H * G * H <= FUSED_MAX_WORK:
            return "fused"
        if B <= BLOCKED_MAX_BATCH:
            return "blocked"
        return "blas" if HAVE_BLAS else "stepwise"
    return mode


def _lengths(lengths, T, B):
    """Every row's length, (B,) int64: T for all without ``lengths``."""
    if lengths is None:
        return np.full(B, T, np.int64)
    return np.ascontiguousarray(lengths)


def _valid(L, T, mode):
    """(T, B) bool, True at the real steps of each row; None for the fused
    mode, whose kernels read the lengths themselves."""
    return None if mode == "fused" else np.arange(T)[:, None] < L[None, :]


def _zero_padding(hs, valid, lengths):
    if lengths is None:
        return hs
    out = hs.copy()
    out[~valid] = 0.0
    return out


def _biases(b_ih, b_hh, GH, dtype):
    if b_ih is None:
        z = np.zeros(GH, dtype)
        return z, z
    return np.ascontiguousarray(b_ih), np.ascontiguousarray(b_hh)


# ---------------------------------------------------------------------------
# LSTM

def lstm_forward(x, state, weights, lengths=None, reverse=False, mode="auto",
                 parallel=False):
    """LSTM sequence forward; see :mod:`lstmlib.cells` for the interface."""
    h0, c0 = state
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, D, H, lengths, _ = seq.check_sequence_inputs(
        x, {"h0": h0, "c0": c0}, weights, 4, lengths)
    mode = _pick_mode(mode, B, H, 4)
    L = _lengths(lengths, T, B)
    valid = _valid(L, T, mode)
    has_bias = b_ih is not None
    x = np.ascontiguousarray(x)
    h0 = np.ascontiguousarray(h0)
    c0 = np.ascontiguousarray(c0)
    xh = None
    if mode == "blas":
        dt = x.dtype
        b1, b2 = _biases(b_ih, b_hh, 4 * H, dt)
        off = 1 if reverse else 0
        xh = _empty((T + 1, B, D + H), dt)       # [x_t, h_prev(t)] rows
        cbuf = _empty((T + 1, B, H), dt)
        xh[T if reverse else 0, :, D:] = h0
        cbuf[T if reverse else 0] = c0
        hs = _empty((T, B, H), dt)
        gates = _empty((T, B, 4 * H), dt)
        tanh_cs = None                           # computed again by backward
        K.lstm_blas_forward(x, tiles.pack(np.concatenate((w_ih, w_hh), 1),
                                          True),
                            b1 + b2, valid, reverse, xh, cbuf, hs, gates)
        hs_prev = xh[off:T + off, :, D:]
        cs = cbuf[1 - off:T + 1 - off]
        cs_prev = cbuf[off:T + off]
        last = 0 if reverse else T
        h_n, c_n = xh[last, :, D:].copy(), cbuf[last].copy()
        out = _zero_padding(hs, valid, lengths)
    elif mode == "fused":
        b1, b2 = _biases(b_ih, b_hh, 4 * H, x.dtype)
        run = K.lstm_sequence_forward_parallel if parallel else \
            K.lstm_sequence_forward
        out, h_n, c_n, gates, cs, tanh_cs, hs_prev, cs_prev = run(
            x, w_ih, w_hh, b1, b2, h0, c0, L, reverse)
    elif mode == "blocked":
        gates = input_projection(x, w_ih, b_ih, b_hh)  # (T, B, 4H)
        hs = np.empty((T, B, H), x.dtype)
        cs = np.empty_like(hs)
        tanh_cs = np.empty_like(hs)
        K.lstm_recurrence_forward(gates, h0, c0, K.transpose(w_hh),
                                  valid, reverse, hs, cs, tanh_cs)
        hs_prev = seq.previous_states(hs, h0, reverse)
        cs_prev = seq.previous_states(cs, c0, reverse)
        last = 0 if reverse else T - 1
        h_n, c_n = hs[last].copy(), cs[last].copy()
        out = _zero_padding(hs, valid, lengths)
    else:
        gates = input_projection(x, w_ih, b_ih, b_hh)  # (T, B, 4H)
        hs = np.empty((T, B, H), x.dtype)
        cs = np.empty_like(hs)
        tanh_cs = np.empty_like(hs)
        rec = np.empty((B, 4 * H), x.dtype)
        w_hh_t = K.transpose(w_hh)                # BLAS: faster than a view
        h, c = h0, c0
        for t in seq.time_steps(T, reverse):
            np.matmul(h, w_hh_t, out=rec)
            gates[t] += rec
            K.lstm_gates_forward(gates[t], c, h, valid[t], hs[t], cs[t],
                                 tanh_cs[t])
            h, c = hs[t], cs[t]
        hs_prev = seq.previous_states(hs, h0, reverse)
        cs_prev = seq.previous_states(cs, c0, reverse)
        h_n, c_n = h.copy(), c.copy()
        out = _zero_padding(hs, valid, lengths)
    cache = NumbaLSTMCache(mode, x, h0, c0, w_ih, w_hh, has_bias, L, valid,
                           reverse, parallel, gates, cs, tanh_cs, hs_prev,
                           cs_prev, xh)
    return out, (h_n, c_n), cache


def lstm_backward(d_out, d_state_n, cache):
    """LSTM BPTT; returns ``(dx, (dh0, dc0), (dw_ih, dw_hh, db_ih, db_hh))``."""
    x, w_ih, w_hh = cache.x, cache.w_ih, cache.w_hh
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dt = x.dtype
    dh_n, dc_n = d_state_n if d_state_n is not None else (None, None)
    d_out = np.ascontiguousarray(seq.check_grad("d_out", d_out, (T, B, H), dt))
    dh = np.array(seq.check_grad("dh_n", dh_n, (B, H), dt))
    dc = np.array(seq.check_grad("dc_n", dc_n, (B, H), dt))
    if cache.mode == "fused":
        run = K.lstm_sequence_backward_parallel if cache.parallel else \
            K.lstm_sequence_backward
        dx, dh0, dc0, dw_ih, dw_hh, db = run(
            d_out, dh, dc, x, np.ascontiguousarray(w_ih),
            np.ascontiguousarray(w_hh), cache.gates, cache.tanh_cs,
            cache.hs_prev, cache.cs_prev, cache.lengths, cache.reverse)
        db_ih, db_hh = (db, db.copy()) if cache.has_bias else (None, None)
        return dx, (dh0, dc0), (dw_ih, dw_hh, db_ih, db_hh)
    if cache.mode == "blas":
        D = x.shape[2]
        off = 1 if cache.reverse else 0
        S = _chunk_steps(B, 4 * H, dt)
        da_buf = np.empty((min(S, T), B, 4 * H), dt)
        dx = _empty((T, B, D), dt)
        dw = np.empty((4 * H, D + H), dt)
        db = np.empty(4 * H, dt)
        xh2 = cache.xh.reshape((T + 1) * B, D + H)[off * B:(T + off) * B]
        K.lstm_blas_backward(GEMM.get(dt, 0), d_out, dh, dc,
                             tiles.pack(w_ih, False),
                             tiles.pack(w_hh, False), cache.gates,
                             cache.cs, cache.cs_prev, cache.valid,
                             cache.reverse, xh2, da_buf,
                             dx.reshape(T * B, D), dw, db)
        db_ih, db_hh = (db, db.copy()) if cache.has_bias else (None, None)
        return dx, (dh, dc), (dw[:, :D], dw[:, D:], db_ih, db_hh)
    da_all = np.empty_like(cache.gates)
    valid = cache.valid
    if cache.mode == "blocked":
        K.lstm_recurrence_backward(d_out, dh, dc, np.ascontiguousarray(w_hh),
                                   cache.gates, cache.tanh_cs, cache.cs_prev,
                                   valid, cache.reverse, da_all)
        dx, dw_ih, dw_hh, db_ih, db_hh = weight_gradients(
            da_all, da_all, x, cache.hs_prev, w_ih, cache.has_bias)
        return dx, (dh, dc), (dw_ih, dw_hh, db_ih, db_hh)
    rec = np.empty((B, H), dt)
    for t in reversed(seq.time_steps(T, cache.reverse)):
        dh_t = dh + d_out[t] * valid[t][:, None]     # padded outputs ignored
        K.lstm_gates_backward(cache.gates[t], cache.tanh_cs[t],
                              cache.cs_prev[t], valid[t], dh_t, dc, da_all[t])
        np.matmul(da_all[t], w_hh, out=rec)          # dL/dh_{t-1} via W_hh
        np.add(dh_t, rec, out=dh)
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_gradients(
        da_all, da_all, x, cache.hs_prev, w_ih, cache.has_bias)
    return dx, (dh, dc), (dw_ih, dw_hh, db_ih, db_hh)


# ---------------------------------------------------------------------------
# GRU

def gru_forward(x, state, weights, lengths=None, reverse=False, mode="auto",
                parallel=False):
    """GRU sequence forward; see :mod:`lstmlib.cells` for the interface."""
    (h0,) = state
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, D, H, lengths, _ = seq.check_sequence_inputs(
        x, {"h0": h0}, weights, 3, lengths)
    mode = _pick_mode(mode, B, H, 3)
    L = _lengths(lengths, T, B)
    valid = _valid(L, T, mode)
    has_bias = b_ih is not None
    x = np.ascontiguousarray(x)
    h0 = np.ascontiguousarray(h0)
    b1, b2 = _biases(b_ih, b_hh, 3 * H, x.dtype)
    if mode == "blas":
        hs = _empty((T, B, H), x.dtype)
        hns = _empty((T, B, H), x.dtype)
        gates = _empty((T, B, 3 * H), x.dtype)
        K.gru_blas_forward(x, tiles.pack(w_ih, True), tiles.pack(w_hh, True),
                           b1, b2, h0, valid, reverse, hs, hns, gates)
        hs_prev = seq.previous_states(hs, h0, reverse,
                                      _empty((T, B, H), x.dtype))
        h_n = hs[0 if reverse else T - 1].copy()
        out = _zero_padding(hs, valid, lengths)
    elif mode == "fused":
        run = K.gru_sequence_forward_parallel if parallel else \
            K.gru_sequence_forward
        out, h_n, gates, hns, hs_prev = run(x, w_ih, w_hh, b1, b2, h0, L,
                                            reverse)
    elif mode == "blocked":
        gates = input_projection(x, w_ih, b_ih)    # (T, B, 3H)
        hs = np.empty((T, B, H), x.dtype)
        hns = np.empty_like(hs)
        K.gru_recurrence_forward(gates, h0, K.transpose(w_hh), b2,
                                 valid, reverse, hs, hns)
        hs_prev = seq.previous_states(hs, h0, reverse)
        h_n = hs[0 if reverse else T - 1].copy()
        out = _zero_padding(hs, valid, lengths)
    else:
        gates = input_projection(x, w_ih, b_ih)    # (T, B, 3H)
        hs = np.empty((T, B, H), x.dtype)
        hns = np.empty_like(hs)
        gh = np.empty((B, 3 * H), x.dtype)
        w_hh_t = K.transpose(w_hh)                # BLAS: faster than a view
        h = h0
        for t in seq.time_steps(T, reverse):
            np.matmul(h, w_hh_t, out=gh)
            gh += b2
            K.gru_gates_forward(gates[t], gh, h, valid[t], hs[t], hns[t])
            h = hs[t]
        hs_prev = seq.previous_states(hs, h0, reverse)
        h_n = h.copy()
        out = _zero_padding(hs, valid, lengths)
    cache = NumbaGRUCache(mode, x, h0, w_ih, w_hh, has_bias, L, valid,
                          reverse, parallel, gates, hns, hs_prev)
    return out, (h_n,), cache


def gru_backward(d_out, d_state_n, cache):
    """GRU BPTT; returns ``(dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh))``."""
    x, w_ih, w_hh = cache.x, cache.w_ih, cache.w_hh
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dt = x.dtype
    (dh_n,) = d_state_n if d_state_n is not None else (None,)
    d_out = np.ascontiguousarray(seq.check_grad("d_out", d_out, (T, B, H), dt))
    dh = np.array(seq.check_grad("dh_n", dh_n, (B, H), dt))
    if cache.mode == "fused":
        run = K.gru_sequence_backward_parallel if cache.parallel else \
            K.gru_sequence_backward
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = run(
            d_out, dh, x, np.ascontiguousarray(w_ih),
            np.ascontiguousarray(w_hh), cache.gates, cache.hns,
            cache.hs_prev, cache.lengths, cache.reverse)
        if not cache.has_bias:
            db_ih = db_hh = None
        return dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh)
    if cache.mode == "blas":
        D = x.shape[2]
        S = min(_chunk_steps(B, 3 * H, dt), T)
        dx = _empty((T, B, D), dt)
        dw_ih = np.empty((3 * H, D), dt)
        dw_hh = np.empty((3 * H, H), dt)
        db_ih = np.empty(3 * H, dt)
        db_hh = np.empty(3 * H, dt)
        K.gru_blas_backward(GEMM.get(dt, 0), d_out, dh, tiles.pack(w_ih, False),
                            tiles.pack(w_hh, False), cache.gates, cache.hns,
                            cache.hs_prev, cache.valid, cache.reverse,
                            x.reshape(T * B, D),
                            np.ascontiguousarray(cache.hs_prev).reshape(T * B, H),
                            np.empty((S, B, 3 * H), dt),
                            np.empty((S, B, 3 * H), dt), dx.reshape(T * B, D),
                            dw_ih, dw_hh, db_ih, db_hh)
        if not cache.has_bias:
            db_ih = db_hh = None
        return dx, (dh,), (dw_ih, dw_hh, db_ih, db_hh)
    dgx_all = np.empty_like(cache.gates)
    dgh_all = np.empty_like(cache.gates)
    valid = cache.valid
    if cache.mode == "blocked":
        K.gru_recurrence_backward(d_out, dh, np.ascontiguousarray(w_hh),
                                  cache.gates, cache.hns, cache.hs_prev,
                                  valid, cache.reverse, dgx_all, dgh_all)
        dx, dw_ih, dw_hh, db_ih, db_hh = weight_gradients(
            dgx_all, dgh_all, x, cache.hs_prev, w_ih, cache.has_bias)
        return dx, (dh,), (dw_ih, dw_hh, db_ih, db_hh)
    rec = np.empty((B, H), dt)
    for t in reversed(seq.time_steps(T, cache.reverse)):
        dh_t = dh + d_out[t] * valid[t][:, None]
        K.gru_gates_backward(cache.gates[t], cache.hns[t], cache.hs_prev[t],
                             valid[t], dh_t, dgx_all[t], dgh_all[t])
        np.matmul(dgh_all[t], w_hh, out=rec)
        np.add(dh_t, rec, out=dh)
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_gradients(
        dgx_all, dgh_all, x, cache.hs_prev, w_ih, cache.has_bias)
    return dx, (dh,), (dw_ih, dw_hh, db_ih, db_hh)
