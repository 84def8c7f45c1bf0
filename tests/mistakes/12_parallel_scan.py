"""Typical mistakes in 12_parallel_scan (8 points).

Test cells: Part A (linear_scan) visible 1 (T=6, B=3, H=4) + hidden 2 (T=1;
T=33; T=16 with B=1, H=1; T=13 float32); Part B (linear_scan_backward,
which calls the student's linear_scan with the initial state 0) visible 1
(T=6) + hidden 2 (T=1; T=33; T=10 B=1 float32); Part C (mingru_forward,
which calls the student's linear_scan with a non-zero h0) visible 1 (T=6) +
hidden 1 (T=1 B=1; T=9 D=H; T=7 float32). A wrong scan of T > 1 steps that
is not a power of two fails every part: each visible case has T=6, and each
hidden cell holds a case of such a length.
"""

from tests.mistakes import Mistake

NOTEBOOK = "parallel_scan"
FULL_SCORE = 8.0

MISTAKES = [
    Mistake("h0 not folded into step 0", "linear_scan",
            "    h[0] = h[0] + a[0] * h0               # fold h0 into step 0\n", "",
            3.0, "every A case fails (T=1 too); B scans with h0 = 0 and keeps its 3; "
            "C starts from a non-zero h0 and fails every case"),
    Mistake("A updated before h in a round (h reads the new A)", "linear_scan",
            "        h[d:] = A[d:] * h[:-d] + h[d:]    # (A, h) d steps back, then (A_t, h_t)\n"
            "        A[d:] = A[d:] * A[:-d]            # after h, which reads the old A\n",
            "        A[d:] = A[d:] * A[:-d]\n"
            "        h[d:] = A[d:] * h[:-d] + h[d:]\n", 0.0,
            "every scan of T > 1 is wrong: each visible case (T=6) and each hidden "
            "cell (T=33, T=9) of A, B and C fails"),
    Mistake("one round short: floor(log2 T) rounds", "linear_scan",
            "    while d < h.shape[0]:                 # ceil(log2 T) rounds\n",
            "    for _ in range(int(np.log2(h.shape[0]))):\n", 0.0,
            "right for powers of two only: T=6 (every visible case), T=33 (A's and "
            "B's hidden cells) and T=9 (C's) fail"),
    Mistake("float64 copy of b (float32 upcast)", "linear_scan",
            "    h = b.copy()\n", "    h = np.array(b, dtype=float)\n", 3.0,
            "float64 visible cases pass (3); each hidden cell holds a float32 case, "
            "in B and C through the scan too"),
    Mistake("backward carried with a_t instead of a_{t+1}", "linear_scan_backward",
            "g = linear_scan(a_next[::-1], g_out[::-1], np.zeros_like(h0))[::-1]",
            "g = linear_scan(a[::-1], g_out[::-1], np.zeros_like(h0))[::-1]", 5.0,
            "B fails its visible case and T=33 (T=1 alone would pass); A 3, C 2"),
    Mistake("da_t from h_t instead of h_{t-1}", "linear_scan_backward",
            "    h_prev = np.concatenate([h0[None], h[:-1]])    # h_{t-1}\n",
            "    h_prev = h\n", 5.0, "every B case fails (T=1 too); A 3, C 2"),
    Mistake("z and 1 - z exchanged (PyTorch's GRU convention)", "mingru_forward",
            "out = linear_scan(1 - z, z * h_tilde, h0)",
            "out = linear_scan(z, (1 - z) * h_tilde, h0)", 6.0,
            "every C case fails; A 3, B 3"),
    Mistake("h_n after the first step", "mingru_forward",
            "h_n = out[-1]", "h_n = out[0]", 6.0,
            "C's visible case (T=6) and hidden T=9 fail (T=1 would pass); A 3, B 3"),
]
