"""Typical mistakes in 11_tbptt (5 points).

Test cells: Part A (tbptt_windows) visible 1 (T a multiple of k1, k2 > k1)
+ hidden 1 (a shorter last chunk with k2 > k1; k2 == k1 with a shorter last
chunk; k2 >= T; T=1; k1=1); Part B (truncated_bptt, given the reference's
windows, independent of A) visible 1 (T=10, k1=3, k2=5: overlapping
windows, a shorter last chunk) + hidden 2 (k1 = k2, B=1, ReLU; T=1; k2 >= T
without biases; float32).
"""

from tests.mistakes import Mistake

NOTEBOOK = "tbptt"
FULL_SCORE = 5.0

MISTAKES = [
    Mistake("windows start at the chunk's first step", "tbptt_windows",
            "start = max(0, stop - k2)", "start = loss_start", 3.0,
            "k2 is ignored: the visible case (k2 > k1) fails; A 0, B 3"),
    Mistake("window start not clipped at step 0", "tbptt_windows",
            "start = max(0, stop - k2)", "start = stop - k2", 3.0,
            "the first window starts at k1 - k2 < 0 in the visible case; A 0, B 3"),
    Mistake("last, shorter chunk dropped", "tbptt_windows",
            "for loss_start in range(0, T, k1):", "for loss_start in range(0, T - k1 + 1, k1):",
            4.0, "the visible T is a multiple of k1; the hidden shorter-last-chunk "
            "cases fail: A visible 1, B 3"),
    Mistake("last window measured from loss_start", "tbptt_windows",
            "start = max(0, stop - k2)", "start = max(0, loss_start - (k2 - k1))", 4.0,
            "the same as stop - k2 for whole chunks (visible passes); the shorter "
            "last chunk's window stops short in the hidden cases: A visible 1, B 3"),
    Mistake("state reset to zero at each window", "truncated_bptt",
            "s0 = h0 if start == 0 else full.hs[start - 1]", "s0 = np.zeros_like(h0)",
            2.0, "zero-state windows, not truncated BPTT: the visible case fails; A 2"),
    Mistake("gradient not cut", "truncated_bptt",
            "    for start, loss_start, stop in windows:\n",
            "    for _, loss_start, stop in windows:\n        start = 0\n", 2.0,
            "every chunk's loss reaches step 0: full BPTT's gradient, wrong in the "
            "visible case (k2 < T); A 2"),
    Mistake("loss of the overlap counted twice", "truncated_bptt",
            "        d_win = np.zeros_like(d_out[start:stop])\n"
            "        d_win[loss_start - start:] = d_out[loss_start:stop]   # the chunk's loss\n",
            "        d_win = d_out[start:stop]\n", 2.0,
            "the visible windows overlap (k2 > k1): it fails; A 2"),
    Mistake("state taken where the previous window stopped", "truncated_bptt",
            "s0 = h0 if start == 0 else full.hs[start - 1]",
            "s0 = h0 if loss_start == 0 else full.hs[loss_start - 1]", 2.0,
            "right only when windows do not overlap: the visible case (k2 > k1) "
            "fails; A 2"),
    Mistake("float64 window gradient for float32 inputs", "truncated_bptt",
            "d_win = np.zeros_like(d_out[start:stop])",
            "d_win = np.zeros(d_out[start:stop].shape)", 3.0,
            "rnn_backward refuses a float64 d_out for a float32 cache, so only the "
            "float32 hidden case fails: B visible 1, A 2"),
]
