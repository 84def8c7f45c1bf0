r"""LSTM and GRU on the CPU with Numba: fused gate kernels, whole sequences in
one compiled call, and batch-parallel versions.

The numpy reference (:mod:`lstmlib.lstm`, :mod:`lstmlib.gru`) is the oracle:
every function here computes the same equations, with the same gate order
(LSTM i, f, g, o; GRU r, z, n, reset applied after the product) and the same
``sigmoid(a) = 0.5 * (1 + tanh(a / 2))``, and agrees with it to rounding
(about 1e-12 relative in float64, 1e-6 in float32). ``tanh`` is
:func:`lstmlib.kernels.vmath.tanh`, accurate to a few ulp in the arrays' own
precision and, unlike the C library's, vectorisable (see the performance
chapter).

Three kinds of kernels, from small to large:

``lstm_gates_forward`` / ``gru_gates_forward`` (and their ``_backward``)
    one step's element-wise work fused into one pass over (B, H): the
    pre-activations (the matrix products, done by BLAS) go in, the new state
    and the cached activations come out. Used by the "stepwise" mode.
``lstm_sequence_forward`` / ``gru_sequence_forward`` (and ``_backward``)
    the whole sequence, matrix products included, in one ``@njit`` call:
    no Python between steps. Used by the "fused" mode (small shapes, where
    the per-step overhead of numpy and of torch dominates).
``*_parallel``
    the same with ``prange`` over the batch: sequences of a batch are
    independent, so each thread runs whole sequences and no thread ever waits
    for another inside the time loop. Weight gradients are then reduced over
    time and batch in a second ``prange`` loop over the columns of dW.

Shapes: T time steps, B batch, D input features, H hidden units, G gates.
Transposed weights ``w_ih_t`` (D, G*H) and ``w_hh_t`` (H, G*H) make every
inner loop run over a contiguous row (an ``axpy``), which LLVM vectorises
without reordering any sum.

Set ``NUMBA_DISABLE_JIT=1`` to run all of this as plain Python (slowly) and
step through it with a debugger.
"""

import types

import numpy as np
from numba import njit, prange

from .vmath import tanh

__all__ = [
    "lstm_gates_forward", "lstm_gates_backward",
    "gru_gates_forward", "gru_gates_backward",
    "lstm_sequence_forward", "lstm_sequence_backward",
    "lstm_sequence_forward_parallel", "lstm_sequence_backward_parallel",
    "gru_sequence_forward", "gru_sequence_backward",
    "gru_sequence_forward_parallel", "gru_sequence_backward_parallel",
]


# ---------------------------------------------------------------------------
# activations over a contiguous range, in place: loops LLVM vectorises
# (one array, no calls; a loop that also wrote five other arrays would not be)

@njit(cache=True, error_model="numpy")
def _sigmoid_(v):
    """v = sigmoid(v) = tanh(v / 2) / 2 + 1/2 in place, in v's precision and
    in the order of operations of lstmlib.activations.sigmoid. Called on a slice
    (``a[:2 * H]``): a loop over a whole 1-D array is the form LLVM
    vectorises (a ``range(lo, hi)`` loop here is not)."""
    half = v.dtype.type(0.5)
    for j in range(v.size):
        v[j] = half * tanh(half * v[j]) + half


@njit(cache=True, error_model="numpy")
def _tanh_(v):
    """v = tanh(v) in place (see :func:`_sigmoid_`)."""
    for j in range(v.size):
        v[j] = tanh(v[j])


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
            for j in range(4 * H):
                da[b, j] = 0.0
            continue
        for k in range(H):
            i = gates[b, k]
            f = gates[b, H + k]
            g = gates[b, 2 * H + k]
            o = gates[b, 3 * H + k]
            tc = tanh_c[b, k]
            dhk = dh[b, k]
            do = dhk * tc                            # h = o * tanh(c)
            dck = dc[b, k] + dhk * o * (one - tc * tc)   # through tanh(c)
            da[b, k] = dck * g * i * (one - i)       # c = f c_prev + i g
            da[b, H + k] = dck * c_prev[b, k] * f * (one - f)
            da[b, 2 * H + k] = dck * i * (one - g * g)
            da[b, 3 * H + k] = do * o * (one - o)
            dc[b, k] = dck * f                       # dL/dc_{t-1}
            dh[b, k] = 0.0                       # dL/dh_{t-1} = da W_hh


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
# whole sequences: one batch row at a time (the body of the prange loops)

@njit(cache=True, error_model="numpy")
def _affine_row(v, w_t, acc):
    """acc += v @ w_t for one row: v (K,), w_t (K, N) contiguous.

    Four rows of w_t per pass over acc: each acc[j] is loaded and stored
    once per four products instead of once per product, and its sum is
    still taken in the order k = 0, 1, 2, ... (the same rounding as one row
    at a time)."""
    K, N = w_t.shape
    k = 0
    while k + 4 <= K:
        v0, v1, v2, v3 = v[k], v[k + 1], v[k + 2], v[k + 3]
        for j in range(N):
            acc[j] = (((acc[j] + v0 * w_t[k, j]) + v1 * w_t[k + 1, j])
                      + v2 * w_t[k + 2, j]) + v3 * w_t[k + 3, j]
        k += 4
    while k < K:
        vk = v[k]
        for j in range(N):
            acc[j] += vk * w_t[k, j]
        k += 1


@njit(cache=True, error_model="numpy")
def _lstm_forward_row(b, x, w_ih_t, w_hh_t, bias, h0, c0, lengths, reverse,
                      out, gates, cs, tanh_cs, hs_prev, cs_prev, h_n, c_n):
    T = x.shape[0]
    H = h0.shape[1]
    acc = np.empty(4 * H, x.dtype)
    h = h0[b].copy()
    c = c0[b].copy()
    L = lengths[b]
    for s in range(T):
        t = _step_index(s, T, reverse)
        if t >= L:                       # padding: output 0, state kept
            for k in range(H):
                out[t, b, k] = 0.0
            continue
        acc[:] = bias
        _affine_row(x[t, b], w_ih_t, acc)
        _affine_row(h, w_hh_t, acc)
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
        gates[t, b] = acc
        cs[t, b] = c
        out[t, b] = h
    h_n[b] = h
    c_n[b] = c


@njit(cache=True, error_model="numpy")
def _lstm_backward_row(b, d_out, dh_n, dc_n, w_ih, w_hh, gates, tanh_cs,
                       cs_prev, lengths, reverse, da_all, dx, dh0, dc0):
    T = gates.shape[0]
    H = dh_n.shape[1]
    one = gates.dtype.type(1.0)
    dh = dh_n[b].copy()
    dc = dc_n[b].copy()
    da = np.empty(4 * H, gates.dtype)
    L = lengths[b]
    for s in range(T - 1, -1, -1):       # the forward's order, reversed
        t = _step_index(s, T, reverse)
        if t >= L:                       # padding: gradients pass by
            for j in range(4 * H):
                da_all[t, b, j] = 0.0
            continue
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
        da_all[t, b] = da
        dh[:] = 0.0
        _affine_row(da, w_hh, dh)                    # dL/dh_{t-1} = da W_hh
        _affine_row(da, w_ih, dx[t, b])              # dL/dx_t = da W_ih
    dh0[b] = dh
    dc0[b] = dc


@njit(cache=True, error_model="numpy")
def _gru_forward_row(b, x, w_ih_t, w_hh_t, b_ih, b_hh, h0, lengths, reverse,
                     out, gates, hns, hs_prev, h_n):
    T = x.shape[0]
    H = h0.shape[1]
    ax = np.empty(3 * H, x.dtype)
    ah = np.empty(3 * H, x.dtype)
    h = h0[b].copy()
    L = lengths[b]
    for s in range(T):
        t = _step_index(s, T, reverse)
        if t >= L:
            for k in range(H):
                out[t, b, k] = 0.0
            continue
        ax[:] = b_ih
        _affine_row(x[t, b], w_ih_t, ax)
        ah[:] = b_hh
        _affine_row(h, w_hh_t, ah)
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
        gates[t, b] = ax
        hns[t, b] = ah[2 * H:]                       # W_hn h_prev + b_hn
        out[t, b] = h
    h_n[b] = h


@njit(cache=True, error_model="numpy")
def _gru_backward_row(b, d_out, dh_n, w_ih, w_hh, gates, hns, hs_prev,
                      lengths, reverse, dgx_all, dgh_all, dx, dh0):
    T = gates.shape[0]
    H = dh_n.shape[1]
    one = gates.dtype.type(1.0)
    dh = dh_n[b].copy()
    dgx = np.empty(3 * H, gates.dtype)
    dgh = np.empty(3 * H, gates.dtype)
    L = lengths[b]
    for s in range(T - 1, -1, -1):
        t = _step_index(s, T, reverse)
        if t >= L:
            for j in range(3 * H):
                dgx_all[t, b, j] = 0.0
                dgh_all[t, b, j] = 0.0
            continue
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
        dgx_all[t, b] = dgx
        dgh_all[t, b] = dgh
        _affine_row(dgh, w_hh, dh)                   # + dgh W_hh
        _affine_row(dgx, w_ih, dx[t, b])             # dL/dx_t = dgx W_ih
    dh0[b] = dh


@njit(cache=True, error_model="numpy")
def _weight_grad_col(k, da_all, inp, dw_t):
    """dw_t[k] = sum over t, b of inp[t, b, k] * da[t, b, :]: row k of
    dW^T (column k of dW). Long contiguous inner loop over the G*H gate
    rows; each k is independent, so a prange over k needs no lock."""
    T, B, _ = inp.shape
    col = inp.reshape(T * B, inp.shape[2])[:, k].copy()
    dw_t[k, :] = 0.0
    _affine_row(col, da_all.reshape(T * B, da_all.shape[2]), dw_t[k])


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


def lstm_sequence_forward(x, w_ih_t, w_hh_t, bias, h0, c0, lengths, reverse):
    """The whole LSTM forward pass in one compiled call.

    x (T, B, D); w_ih_t (D, 4H) and w_hh_t (H, 4H) transposed weights;
    bias (4H,) = b_ih + b_hh; h0, c0 (B, H); lengths (B,) int64 (T for
    every row when there is no padding); reverse walks t = T-1..0.
    Returns out (T, B, H), h_n, c_n (B, H) and the cache arrays
    gates (T, B, 4H) = i, f, g, o; c, tanh(c), h_prev, c_prev (T, B, H).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dt = x.dtype
    out = np.empty((T, B, H), dt)
    gates = np.empty((T, B, 4 * H), dt)
    cs = np.zeros((T, B, H), dt)
    tanh_cs = np.zeros((T, B, H), dt)
    hs_prev = np.zeros((T, B, H), dt)
    cs_prev = np.zeros((T, B, H), dt)
    h_n = np.empty((B, H), dt)
    c_n = np.empty((B, H), dt)
    for b in prange(B):
        _lstm_forward_row(b, x, w_ih_t, w_hh_t, bias, h0, c0, lengths,
                          reverse, out, gates, cs, tanh_cs, hs_prev, cs_prev,
                          h_n, c_n)
    return out, h_n, c_n, gates, cs, tanh_cs, hs_prev, cs_prev


lstm_sequence_forward, lstm_sequence_forward_parallel = _serial_and_parallel(
    lstm_sequence_forward,
    """:func:`lstm_sequence_forward`, batch rows spread over threads.""")


def lstm_sequence_backward(d_out, dh_n, dc_n, x, w_ih, w_hh, gates, tanh_cs,
                           hs_prev, cs_prev, lengths, reverse):
    """BPTT for :func:`lstm_sequence_forward` in one compiled call.

    d_out (T, B, H), dh_n, dc_n (B, H) (zeros, not None); w_ih (4H, D),
    w_hh (4H, H) untransposed. Returns dx, dh0, dc0, dw_ih, dw_hh, db
    (db is the gradient of b_ih and of b_hh alike).
    """
    T, B, D = x.shape
    H = dh_n.shape[1]
    dt = x.dtype
    da_all = np.empty((T, B, 4 * H), dt)
    dx = np.zeros((T, B, D), dt)
    dh0 = np.empty((B, H), dt)
    dc0 = np.empty((B, H), dt)
    for b in prange(B):
        _lstm_backward_row(b, d_out, dh_n, dc_n, w_ih, w_hh, gates, tanh_cs,
                           cs_prev, lengths, reverse, da_all, dx, dh0, dc0)
    dw_ih_t = np.empty((D, 4 * H), dt)
    dw_hh_t = np.empty((H, 4 * H), dt)
    for k in prange(D + H):
        if k < D:
            _weight_grad_col(k, da_all, x, dw_ih_t)
        else:
            _weight_grad_col(k - D, da_all, hs_prev, dw_hh_t)
    return (dx, dh0, dc0, dw_ih_t.T.copy(), dw_hh_t.T.copy(),
            _bias_grad(da_all))


lstm_sequence_backward, lstm_sequence_backward_parallel = _serial_and_parallel(
    lstm_sequence_backward,
    """:func:`lstm_sequence_backward`: batch rows, then columns of dW, in
    parallel (no two threads ever write the same element).""")


def gru_sequence_forward(x, w_ih_t, w_hh_t, b_ih, b_hh, h0, lengths, reverse):
    """The whole GRU forward pass in one compiled call.

    x (T, B, D); w_ih_t (D, 3H), w_hh_t (H, 3H); b_ih, b_hh (3H,); h0 (B, H).
    Returns out (T, B, H), h_n (B, H) and the cache arrays
    gates (T, B, 3H) = r, z, n; hn = W_hn h_prev + b_hn and h_prev (T, B, H).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dt = x.dtype
    out = np.empty((T, B, H), dt)
    gates = np.empty((T, B, 3 * H), dt)
    hns = np.zeros((T, B, H), dt)
    hs_prev = np.zeros((T, B, H), dt)
    h_n = np.empty((B, H), dt)
    for b in prange(B):
        _gru_forward_row(b, x, w_ih_t, w_hh_t, b_ih, b_hh, h0, lengths,
                         reverse, out, gates, hns, hs_prev, h_n)
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
    dx = np.zeros((T, B, D), dt)
    dh0 = np.empty((B, H), dt)
    for b in prange(B):
        _gru_backward_row(b, d_out, dh_n, w_ih, w_hh, gates, hns, hs_prev,
                          lengths, reverse, dgx_all, dgh_all, dx, dh0)
    dw_ih_t = np.empty((D, 3 * H), dt)
    dw_hh_t = np.empty((H, 3 * H), dt)
    for k in prange(D + H):
        if k < D:
            _weight_grad_col(k, dgx_all, x, dw_ih_t)
        else:
            _weight_grad_col(k - D, dgh_all, hs_prev, dw_hh_t)
    return (dx, dh0, dw_ih_t.T.copy(), dw_hh_t.T.copy(), _bias_grad(dgx_all),
            _bias_grad(dgh_all))


gru_sequence_backward, gru_sequence_backward_parallel = _serial_and_parallel(
    gru_sequence_backward,
    """:func:`gru_sequence_backward` with batch rows, then columns of dW, in
    parallel.""")
