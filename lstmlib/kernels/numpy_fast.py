"""The numpy-fast backend: the reference's equations, rearranged for speed.

Same cell interface as the reference (:mod:`lstmlib.cells`) and checked
against it (tests/kernels/test_kernels_numpy_fast.py); select it with
``lstmlib.LSTM(..., backend="numpy-fast")`` or
``from_torch(module, backend="numpy-fast")``. Each rearrangement is exact
or changes only the order of additions; the performance chapter ("Making
numpy fast") measures what each one gains:

* the input projections x_t W_ih^T + b of all steps as one matrix product
  before the loop (:func:`input_projection`); the GRU folds b_hr and b_hz
  into it as well;
* sigmoid(a) = tanh(a/2)/2 + 1/2 with the sigmoid gates' rows of copies of
  the weights halved (exact: a power of two), so that one tanh runs over
  all gates' contiguous block (:func:`sigmoid_rows_halved`);
* W_hh^T copied to a C-contiguous array once (:func:`scaled_transpose`);
* every per-step array written in place into buffers allocated once
  (``out=`` arguments, ``np.copyto``): no temporaries in the time loop;
* in the LSTM's backward pass, the factors that do not depend on the
  incoming gradient computed for blocks of ``BLOCK_ELEMENTS`` gate values
  at a time, in a few passes over arrays small enough to stay in cache;
* the weight gradients as a few large products after the loop
  (:func:`weight_gradients`), in the operand order BLAS runs fastest.

The Numba stepwise kernels reuse :func:`input_projection` and
:func:`weight_gradients`.
"""

from collections import namedtuple

import numpy as np

from .. import _sequence as seq
from ..rnn import check_nonlinearity

FastLSTMCache = namedtuple(
    "FastLSTMCache",
    "x h0 c0 gates hs cs tanh_cs mask w_ih w_hh has_bias reverse")
FastLSTMCache.__doc__ = """As :class:`lstmlib.lstm.LSTMCache`: gates holds
the activations i, f, g, o of every step."""
FastGRUCache = namedtuple(
    "FastGRUCache", "x h0 gates hns hs mask w_ih w_hh has_bias reverse")
FastGRUCache.__doc__ = """As :class:`lstmlib.gru.GRUCache`: gates holds the
activations r, z, n of every step."""
FastRNNCache = namedtuple(
    "FastRNNCache", "x h0 hs mask w_ih w_hh nonlinearity has_bias reverse")
FastRNNCache.__doc__ = """As :class:`lstmlib.rnn.RNNCache`."""


# ---------------------------------------------------------------------------
# shared rearrangements

def input_projection(x, w_ih, b_ih, b_hh=None):
    """x_t W_ih^T + b_ih (+ b_hh) for every step at once: one (T*B, D) x
    (D, G*H) matrix product instead of T small ones."""
    T, B, D = x.shape
    a = x.reshape(T * B, D) @ w_ih.T
    if b_ih is not None:
        a += b_ih if b_hh is None else b_ih + b_hh   # one pass over a
    return a.reshape(T, B, -1)


def sigmoid_rows_halved(num_gates, H, sigmoid_gates, dtype):
    """(num_gates * H,) factors: 1/2 on the rows of the gates listed in
    ``sigmoid_gates``, 1 elsewhere. Halving those rows of copies of the
    weights is exact (a power of two), and turns sigmoid(a) into
    tanh(a')/2 + 1/2 with a' = a/2 already computed."""
    half = np.ones(num_gates * H, dtype)
    for q in sigmoid_gates:
        half[q * H:(q + 1) * H] = 0.5
    return half


def scaled_transpose(w, scale):
    """A C-contiguous copy of w^T with column j times scale[j]. BLAS runs
    faster on it than on the transposed view, and the caller's array is
    never the one scaled (np.ascontiguousarray would return the transpose of
    a Fortran-ordered w uncopied)."""
    w_t = np.array(w.T, order="C")
    w_t *= scale
    return w_t


def weight_gradients(d_gx, d_gh, x, h_prev, w_ih, has_bias):
    """Gradients of the weights and of x from the per-step gate gradients.

    d_gx, d_gh: (T, B, G*H) gradients of the input and hidden projections
    (the same array for RNN and LSTM; the GRU's differ in its n block).
    """
    T, B, D = x.shape
    gx = d_gx.reshape(T * B, -1)
    gh = d_gh.reshape(T * B, -1)
    dx = (gx @ w_ih).reshape(T, B, D)
    # (x^T g)^T rather than g^T x: the same numbers, in the operand layout
    # BLAS runs fastest on (the results are transposed views)
    dw_ih = (x.reshape(T * B, D).T @ gx).T
    dw_hh = (h_prev.reshape(T * B, -1).T @ gh).T
    if not has_bias:
        return dx, dw_ih, dw_hh, None, None
    db_ih = gx.sum(axis=0)
    db_hh = db_ih.copy() if d_gh is d_gx else gh.sum(axis=0)
    return dx, dw_ih, dw_hh, db_ih, db_hh


# ---------------------------------------------------------------------------
# LSTM

def _lstm_sequence_forward(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                 reverse=False):
    """Run the LSTM over a sequence.

    x (T, B, D), h0 and c0 (B, H) -> out (T, B, H), (h_n, c_n), cache.
    ``lengths`` (B,) marks steps t >= lengths[b] as padding (output 0, state
    unchanged); ``reverse`` walks t = T-1, ..., 0.

    The input projections of all steps are one matrix product; inside the
    loop only h_{t-1} W_hh^T remains, and every activation is written in
    place into arrays allocated once (they are the cache).
    """
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0, "c0": c0}, (w_ih, w_hh, b_ih, b_hh), 4, lengths)
    # sigmoid(a) = tanh(a/2)/2 + 1/2: with the rows of i, f and o halved in
    # copies of the weights (exact: a power of two), one tanh runs over all
    # four gates' contiguous block, instead of three calls on strided slices
    half = sigmoid_rows_halved(4, H, (0, 1, 3), x.dtype)   # i, f, o
    gates = input_projection(                   # (T, B, 4H), in place
        x, w_ih * half[:, None], None if b_ih is None else b_ih * half,
        None if b_hh is None else b_hh * half)
    hs = np.empty((T, B, H), x.dtype)
    cs = np.empty_like(hs)
    tanh_cs = np.empty_like(hs)
    w_hh_t = scaled_transpose(w_hh, half)
    rec = np.empty((B, 4 * H), x.dtype)
    ig = np.empty((B, H), x.dtype)
    p5 = x.dtype.type(0.5)
    h, c = h0, c0
    for t in seq.time_steps(T, reverse):
        a = gates[t]
        np.matmul(h, w_hh_t, out=rec)
        a += rec
        np.tanh(a, out=a)
        np.copyto(ig, a[:, 2 * H:3 * H])           # g = tanh(a_g): keep it
        a *= p5                                    # i, f, o = tanh/2 + 1/2
        a += p5
        a[:, 2 * H:3 * H] = ig
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c_t, tc, h_t = cs[t], tanh_cs[t], hs[t]
        np.multiply(f, c, out=c_t)                 # c = f * c_prev + i * g
        np.multiply(i, g, out=ig)
        c_t += ig
        np.tanh(c_t, out=tc)
        np.multiply(o, tc, out=h_t)                # h = o * tanh(c)
        if mask is not None:                       # padding keeps the state
            m = mask[t]
            c_t *= m
            c_t += (1 - m) * c
            h_t *= m
            h_t += (1 - m) * h
        h, c = h_t, c_t
    out = hs if mask is None else hs * mask
    cache = FastLSTMCache(x=x, h0=h0, c0=c0, gates=gates, hs=hs, cs=cs,
                          tanh_cs=tanh_cs, mask=mask, w_ih=w_ih, w_hh=w_hh,
                          has_bias=b_ih is not None, reverse=reverse)
    return out, (h.copy(), c.copy()), cache


BLOCK_ELEMENTS = 1 << 19   # gate values per block of steps in lstm_backward


def _local_derivatives(a, tc, c_prev, k, dc_dh):
    """For steps (.., B, 4H) of activations a = i, f, g, o: k = d(pre-
    activation)/dc for i, f, g and d(pre-activation)/dh for o; dc_dh =
    dc/dh through h = o tanh(c)."""
    H = tc.shape[-1]
    i, g, o = a[..., :H], a[..., 2 * H:3 * H], a[..., 3 * H:]
    np.subtract(1.0, a, out=k)                      # sigmoid' = s (1 - s)
    k *= a
    k[..., :H] *= g                                 # c = f c_prev + i g
    k[..., H:2 * H] *= c_prev
    k_g = k[..., 2 * H:3 * H]
    np.multiply(g, g, out=k_g)                      # tanh' = 1 - g^2
    np.subtract(1.0, k_g, out=k_g)
    k_g *= i
    k[..., 3 * H:] *= tc                            # h = o tanh(c)
    np.multiply(tc, tc, out=dc_dh)
    np.subtract(1.0, dc_dh, out=dc_dh)
    dc_dh *= o


def _lstm_sequence_backward(d_out, dh_n, dc_n, cache):
    """Backpropagation through time.

    d_out (T, B, H), dh_n and dc_n (B, H) (any may be None)
    -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh).
    """
    (x, h0, c0, gates, hs, cs, tanh_cs, mask, w_ih, w_hh, has_bias,
     reverse) = cache
    T, B, H = hs.shape
    dt = hs.dtype
    d_out = seq.check_grad("d_out", d_out, hs.shape, dt)
    dh = seq.check_grad("dh_n", dh_n, (B, H), dt).copy()
    dc = seq.check_grad("dc_n", dc_n, (B, H), dt).copy()
    # What does not depend on the incoming gradients is computed for a block
    # of steps at a time, in a few passes over whole arrays (small enough to
    # stay in cache): da_all starts as the factors d(pre-activation)/dc for
    # i, f, g and d(pre-activation)/dh for o, and each step only multiplies
    # them by its dc and dh, in place.
    c_prev_all = seq.previous_states(cs, c0, reverse)
    da_all = np.empty_like(gates)
    dc_dh = np.empty_like(hs)                       # dc/dh = o (1 - tanh(c)^2)
    f = gates[..., H:2 * H]
    tmp = np.empty((B, H), dt)
    order = list(reversed(seq.time_steps(T, reverse)))
    per_block = max(1, BLOCK_ELEMENTS // gates[0].size)
    for n in range(0, T, per_block):
        block = order[n:n + per_block]
        span = slice(min(block), max(block) + 1)
        _local_derivatives(gates[span], tanh_cs[span], c_prev_all[span],
                           da_all[span], dc_dh[span])
        for t in block:
            da = da_all[t]
            if mask is None:
                dh += d_out[t]                          # dh_next + this step's
                dh_t = dh
            else:
                dh_t = dh + d_out[t] * mask[t]
                dc_keep = dc.copy()
            np.multiply(dh_t, dc_dh[t], out=tmp)
            dc += tmp
            da.reshape(B, 4, H)[:, :3] *= dc[:, None]   # di, df, dg
            da[:, 3 * H:] *= dh_t                       # do
            dc *= f[t]                                  # dc_prev
            if mask is None:
                np.matmul(da, w_hh, out=dh)             # dh_next for step t-1
            else:                                       # padding: passes by
                m = mask[t]
                da *= m
                dh = da @ w_hh + (1 - m) * dh_t
                dc *= m
                dc += (1 - m) * dc_keep
    h_prev = seq.previous_states(hs, h0, reverse)
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_gradients(
        da_all, da_all, x, h_prev, w_ih, has_bias)
    return dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh


# ---------------------------------------------------------------------------
# GRU

def _gru_sequence_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None,
                reverse=False):
    """Run the GRU over a sequence.

    x (T, B, D), h0 (B, H) -> out (T, B, H), h_n (B, H), cache.
    ``lengths`` and ``reverse`` as in :func:`lstmlib.lstm.lstm_forward`.
    """
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0}, (w_ih, w_hh, b_ih, b_hh), 3, lengths)
    # As for the LSTM: the rows of r and z are halved in copies of the
    # weights (exact), so sigmoid(a) = tanh(a/2)/2 + 1/2 needs no extra pass;
    # b_hr and b_hz join the input projection's bias (only b_hn must wait
    # for the reset gate).
    half = sigmoid_rows_halved(3, H, (0, 1), x.dtype)      # r, z
    b_x = None
    if b_ih is not None:
        b_x = b_ih.copy()
        b_x[:2 * H] += b_hh[:2 * H]
        b_x *= half
    gx = input_projection(x, w_ih * half[:, None], b_x)   # -> r, z, n
    hns = np.empty((T, B, H), x.dtype)
    hs = np.empty_like(hns)
    w_hh_t = scaled_transpose(w_hh, half)
    gh = np.empty((B, 3 * H), x.dtype)
    rhn = np.empty((B, H), x.dtype)
    p5 = x.dtype.type(0.5)
    h = h0
    for t in seq.time_steps(T, reverse):
        a = gx[t]
        np.matmul(h, w_hh_t, out=gh)
        rz = a[:, :2 * H]
        rz += gh[:, :2 * H]
        np.tanh(rz, out=rz)                        # r, z = tanh/2 + 1/2
        rz *= p5
        rz += p5
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        hn = hns[t]                                # W_hn h_prev + b_hn
        if b_hh is None:
            hn[...] = gh[:, 2 * H:]
        else:
            np.add(gh[:, 2 * H:], b_hh[2 * H:], out=hn)
        np.multiply(r, hn, out=rhn)
        n += rhn
        np.tanh(n, out=n)                          # n
        h_t = hs[t]
        np.subtract(h, n, out=h_t)                 # h = n + z * (h_prev - n)
        h_t *= z
        h_t += n
        if mask is not None:                       # padding keeps the state
            m = mask[t]
            h_t *= m
            h_t += (1 - m) * h
        h = h_t
    out = hs if mask is None else hs * mask
    cache = FastGRUCache(x=x, h0=h0, gates=gx, hns=hns, hs=hs, mask=mask,
                         w_ih=w_ih, w_hh=w_hh, has_bias=b_ih is not None,
                         reverse=reverse)
    return out, h.copy(), cache


def _gru_sequence_backward(d_out, dh_n, cache):
    """Backpropagation through time.

    d_out (T, B, H), dh_n (B, H) (either may be None) -> (dx, dh0, dw_ih, dw_hh, db_ih, db_hh).
    """
    x, h0, gx, hns, hs, mask, w_ih, w_hh, has_bias, reverse = cache
    T, B, H = hs.shape
    dt = hs.dtype
    d_out = seq.check_grad("d_out", d_out, hs.shape, dt)
    dh = seq.check_grad("dh_n", dh_n, (B, H), dt).copy()
    h_prev_all = seq.previous_states(hs, h0, reverse)
    dgx_all = np.empty_like(gx)
    dgh_all = np.empty_like(gx)
    for t in reversed(seq.time_steps(T, reverse)):
        a = gx[t]
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        h_prev = h_prev_all[t]
        dh_t = dh + d_out[t] if mask is None else dh + d_out[t] * mask[t]
        dgx = dgx_all[t]
        dr, dz, dan = dgx[:, :H], dgx[:, H:2 * H], dgx[:, 2 * H:]
        np.multiply(dh_t, 1.0 - z, out=dan)        # h = (1-z)*n + z*h_prev
        dan *= 1.0 - n * n                         # through tanh
        np.subtract(h_prev, n, out=dz)
        dz *= dh_t
        dz *= z * (1.0 - z)                        # through the sigmoid
        np.multiply(dan, hns[t], out=dr)           # n = tanh(.. + r*hn)
        dr *= r * (1.0 - r)                        # through the sigmoid
        dgh = dgh_all[t]
        dgh[:, :2 * H] = dgx[:, :2 * H]
        np.multiply(dan, r, out=dgh[:, 2 * H:])    # hn is scaled by r
        if mask is None:
            dh = dh_t * z + dgh @ w_hh             # dh_next for step t-1
        else:                                      # padding: passes by
            m = mask[t]
            dgx *= m
            dgh *= m
            dh = dh_t * (z * m + (1 - m)) + dgh @ w_hh
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_gradients(
        dgx_all, dgh_all, x, h_prev_all, w_ih, has_bias)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# ---------------------------------------------------------------------------
# Elman RNN


def _activation_grad(dh, h, nonlinearity):
    """Backprop through phi, written in terms of its output h."""
    if nonlinearity == "tanh":
        return dh * (1.0 - h * h)          # tanh'(a) = 1 - tanh(a)^2
    return dh * (h > 0)                    # relu'(a) = 1 where a > 0


def _rnn_sequence_forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh",
                lengths=None, reverse=False):
    """Run the RNN over a sequence.

    x (T, B, D), h0 (B, H) -> out (T, B, H), h_n (B, H), cache.
    ``lengths`` (B,) marks steps t >= lengths[b] as padding: their output is
    0 and the state passes through unchanged, so h_n is the state at each
    sequence's last real step. ``reverse`` walks t = T-1, ..., 0.
    """
    check_nonlinearity(nonlinearity)
    T, B, D, H, lengths, mask = seq.check_sequence_inputs(
        x, {"h0": h0}, (w_ih, w_hh, b_ih, b_hh), 1, lengths)
    hs = input_projection(x, w_ih, b_ih, b_hh)   # a_t, then h_t in place
    w_hh_t = np.ascontiguousarray(w_hh.T)        # BLAS runs faster on a copy
    h = h0
    for t in seq.time_steps(T, reverse):
        a = hs[t]
        a += h @ w_hh_t
        if nonlinearity == "tanh":
            np.tanh(a, out=a)
        else:
            np.maximum(a, 0, out=a)
        if mask is not None:                       # padding keeps the state
            a *= mask[t]
            a += (1 - mask[t]) * h
        h = a
    out = hs if mask is None else hs * mask
    cache = FastRNNCache(x=x, h0=h0, hs=hs, mask=mask, w_ih=w_ih, w_hh=w_hh,
                         nonlinearity=nonlinearity, has_bias=b_ih is not None,
                         reverse=reverse)
    return out, h.copy(), cache


def _rnn_sequence_backward(d_out, dh_n, cache):
    """Backpropagation through time.

    d_out (T, B, H) and dh_n (B, H) (either may be None) -> (dx, dh0, dw_ih, dw_hh, db_ih, db_hh).
    """
    x, h0, hs, mask, w_ih, w_hh, nonlinearity, has_bias, reverse = cache
    T, B, H = hs.shape
    d_out = seq.check_grad("d_out", d_out, hs.shape, hs.dtype)
    dh = seq.check_grad("dh_n", dh_n, (B, H), hs.dtype).copy()
    da_all = np.empty_like(hs)
    for t in reversed(seq.time_steps(T, reverse)):
        dh_t = dh + d_out[t] if mask is None else dh + d_out[t] * mask[t]
        da = _activation_grad(dh_t, hs[t], nonlinearity)
        if mask is not None:                       # padding: passes by
            da *= mask[t]
            dh = da @ w_hh + (1 - mask[t]) * dh_t
        else:
            dh = da @ w_hh                          # dh_next for step t-1
        da_all[t] = da
    h_prev = seq.previous_states(hs, h0, reverse)
    dx, dw_ih, dw_hh, db_ih, db_hh = weight_gradients(
        da_all, da_all, x, h_prev, w_ih, has_bias)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# ---------------------------------------------------------------------------
# the cell interface (see lstmlib.cells)

def lstm_forward(x, state, weights, lengths=None, reverse=False):
    out, (h_n, c_n), cache = _lstm_sequence_forward(
        x, state[0], state[1], *weights, lengths=lengths, reverse=reverse)
    return out, (h_n, c_n), cache


def lstm_backward(d_out, d_state_n, cache):
    g = _lstm_sequence_backward(d_out, d_state_n[0], d_state_n[1], cache)
    return g[0], (g[1], g[2]), tuple(g[3:])


def gru_forward(x, state, weights, lengths=None, reverse=False):
    out, h_n, cache = _gru_sequence_forward(x, state[0], *weights,
                                            lengths=lengths, reverse=reverse)
    return out, (h_n,), cache


def gru_backward(d_out, d_state_n, cache):
    g = _gru_sequence_backward(d_out, d_state_n[0], cache)
    return g[0], (g[1],), tuple(g[2:])


def rnn_forward(x, state, weights, lengths=None, reverse=False,
                nonlinearity="tanh"):
    out, h_n, cache = _rnn_sequence_forward(
        x, state[0], *weights, nonlinearity=nonlinearity, lengths=lengths,
        reverse=reverse)
    return out, (h_n,), cache


def rnn_backward(d_out, d_state_n, cache):
    g = _rnn_sequence_backward(d_out, d_state_n[0], cache)
    return g[0], (g[1],), tuple(g[2:])
