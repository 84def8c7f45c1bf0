r"""minGRU (Feng et al. 2024, "Were RNNs all we needed?"): a GRU whose gate
and candidate read only the input, so that the whole sequence is one linear
recurrence, computable by a parallel scan.

.. math::

    \begin{aligned}
    z_t &= \sigma(W_z x_t + b_z) && \text{update gate} \\
    \tilde h_t &= W_h x_t + b_h && \text{candidate} \\
    h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t
    \end{aligned}

With a_t = 1 - z_t and b_t = z_t \odot \tilde h_t the last line is the
linear recurrence h_t = a_t \odot h_{t-1} + b_t. Pairs (a, b) compose
associatively, (a_1, b_1) then (a_2, b_2) = (a_2 a_1, a_2 b_1 + b_2), so
all T states follow in ceil(log2 T) vectorised rounds (Hillis & Steele
1986) instead of T sequential steps. Shapes: x (T, B, D), h0 (B, H),
W_z and W_h (H, D), b_z and b_h (H,).
"""

from collections import namedtuple

import numpy as np

from ._validation import check_array
from .activations import sigmoid

MinGRUCache = namedtuple("MinGRUCache", "x h0 z h_tilde hs w_z w_h parallel")
MinGRUGrads = namedtuple("MinGRUGrads", "dx dh0 dw_z dw_h db_z db_h")


def linear_scan_sequential(a, b, h0):
    """h_t = a_t * h_{t-1} + b_t for t = 0..T-1, one step at a time.
    a, b (T, ...), h0 (...) -> h (T, ...)."""
    h = np.empty_like(b)
    prev = h0
    for t in range(b.shape[0]):
        prev = h[t] = a[t] * prev + b[t]
    return h


def linear_scan_parallel(a, b, h0):
    """The same recurrence by a parallel (Hillis-Steele) scan: after the
    round with offset d, entry t holds the composition of steps t-2d+1..t;
    ceil(log2 T) rounds, each one vectorised operation over all t."""
    A = a.copy()
    h = b.copy()
    h[0] += a[0] * h0                      # fold the initial state into step 0
    d = 1
    while d < h.shape[0]:
        h[d:] = A[d:] * h[:-d] + h[d:]     # (A2, h2) after (A1, h1): A2 h1 + h2
        A[d:] = A[d:] * A[:-d]             # right-hand sides read the old values
        d *= 2
    return h


def _scan(parallel):
    return linear_scan_parallel if parallel else linear_scan_sequential


def linear_scan_backward(g_out, a, h0, h, parallel=True):
    """The gradients of h = linear_scan(a, b, h0), given g_out = dL/dh_t
    (what the loss sends to each h_t directly): -> (da, db, dh0).

    The gradient reaching h_t obeys g_t = g_out_t + a_{t+1} g_{t+1} (none
    after T-1): the same linear recurrence backwards in time, computed by
    the same scan on the reversed sequence. Then, from
    h_t = a_t h_{t-1} + b_t: da_t = g_t h_{t-1}, db_t = g_t, dh0 = a_0 g_0.
    g_out, a, h (T, ...), h0 (...)."""
    a_next = np.zeros_like(a)
    a_next[:-1] = a[1:]                             # a_{t+1}; none after T-1
    g = _scan(parallel)(a_next[::-1], g_out[::-1], np.zeros_like(h0))[::-1]
    h_prev = np.concatenate([h0[None], h[:-1]])     # h_{t-1}
    return g * h_prev, g, a[0] * g[0]


def mingru_forward(x, h0, w_z, w_h, b_z, b_h, parallel=True):
    """x (T, B, D), h0 (B, H) -> out (T, B, H), h_n (B, H), cache.
    ``parallel`` chooses the scan (the numbers agree to rounding)."""
    x = check_array("x", x, (None, None, None))
    T, B, D = x.shape
    w_z = check_array("w_z", w_z, (None, D), x.dtype)
    H = w_z.shape[0]
    w_h = check_array("w_h", w_h, (H, D), x.dtype)
    b_z = check_array("b_z", b_z, (H,), x.dtype)
    b_h = check_array("b_h", b_h, (H,), x.dtype)
    h0 = check_array("h0", h0, (B, H), x.dtype)
    z = sigmoid(x @ w_z.T + b_z)                   # (T, B, H) update gates
    h_tilde = x @ w_h.T + b_h                      # (T, B, H) candidates
    hs = _scan(parallel)(1.0 - z, z * h_tilde, h0)
    cache = MinGRUCache(x, h0, z, h_tilde, hs, w_z, w_h, parallel)
    return hs, hs[-1].copy(), cache


def mingru_backward(d_out, dh_n, cache):
    """d_out (T, B, H) and dh_n (B, H) (either may be None) -> MinGRUGrads.

    The gradient reaching h_t obeys g_t = d_out_t + a_{t+1} g_{t+1}: the same
    linear recurrence backwards in time, computed by the same scan
    (:func:`linear_scan_backward`)."""
    x, h0, z, h_tilde, hs, w_z, w_h, parallel = cache
    d_out = np.zeros_like(hs) if d_out is None else \
        check_array("d_out", d_out, hs.shape, hs.dtype)
    d = d_out.copy()
    if dh_n is not None:
        d[-1] += check_array("dh_n", dh_n, h0.shape, hs.dtype)
    # through h_t = a_t h_{t-1} + b_t (g: the gradient reaching h_t)
    da, g, dh0 = linear_scan_backward(d, 1.0 - z, h0, hs, parallel)
    dz = g * h_tilde - da                           # a = 1 - z, b = z h~
    dh_tilde = g * z
    dpre_z = dz * z * (1.0 - z)                     # through the sigmoid
    dx = dpre_z @ w_z + dh_tilde @ w_h
    dw_z = np.einsum("tbh,tbd->hd", dpre_z, x)
    dw_h = np.einsum("tbh,tbd->hd", dh_tilde, x)
    return MinGRUGrads(dx, dh0, dw_z, dw_h, dpre_z.sum(axis=(0, 1)),
                       dh_tilde.sum(axis=(0, 1)))
