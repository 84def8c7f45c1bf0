"""Typical mistakes in 02_bptt (8 points).

Test cells: Part A (rnn_step_backward) visible 1 (B=3, tanh, biases) +
hidden 2 (B=1 ReLU; D=H tanh; no biases; float32 tanh); Part B
(rnn_backward, which calls the student's rnn_step_backward) visible 1 (T=5,
tanh, biases, dh_n given) + hidden 2 (T=1 tanh with dh_n; T=4 B=1 ReLU;
T=6 no biases dh_n=None; T=3 float32); Part C (numerical_gradient) visible
1 (df given) + hidden 1 (df=None; df given with h=1e-4).
"""

from tests.mistakes import Mistake

NOTEBOOK = "bptt"
FULL_SCORE = 8.0

MISTAKES = [
    Mistake("tanh derivative applied to tanh(a) again", "rnn_step_backward",
            "da = dh * (1 - h * h)", "da = dh * (1 - np.tanh(h) ** 2)", 2.0,
            "every tanh case of A and B fails (A visible, A hidden, B visible, "
            "B hidden through its T=1 case); C untouched (2)"),
    Mistake("ReLU derivative is h instead of 1[h > 0]", "rnn_step_backward",
            "da = dh * (h > 0)", "da = dh * h", 4.0,
            "visible cases are tanh (A 1, B 1); both hidden cells hold a ReLU "
            "case (fail); C untouched (2)"),
    Mistake("dw_hh uses h instead of h_prev", "rnn_step_backward",
            "dw_hh = da.T @ h_prev", "dw_hh = da.T @ h", 2.0,
            "dw_hh is wrong in every case of A and B; C untouched (2)"),
    Mistake("transposed weight gradient dw_ih = x.T @ da", "rnn_step_backward",
            "dw_ih = da.T @ x", "dw_ih = x.T @ da", 2.0,
            "shape (D, H) instead of (H, D): every case with D != H fails, and "
            "each A and B cell holds one; C untouched (2)"),
    Mistake("bias gradients zeros instead of None without biases",
            "rnn_step_backward",
            "db_ih = db_hh = None", "db_ih = db_hh = np.zeros(h.shape[1])", 6.0,
            "only A's hidden bias-free case fails (2 lost); B builds its own "
            "db; C untouched"),
    Mistake("BPTT not accumulating dh_next", "rnn_backward",
            "g = rnn_step_backward(d_out[t] + dh_next, step)",
            "g = rnn_step_backward(d_out[t], step)", 5.0,
            "A untouched (3); B visible fails; B hidden fails (even T=1: dh_n "
            "is dropped too); C untouched (2)"),
    Mistake("weight gradients overwritten instead of summed over time",
            "rnn_backward", "dw_ih += g[2]", "dw_ih = g[2]", 5.0,
            "A 3, C 2; dw_ih keeps only step 0's term: B fails for T > 1 "
            "(visible, and the hidden cell)"),
    Mistake("off by one time step (h_prev = states[t])", "rnn_backward",
            "h_prev = h0 if t == 0 else states[t - 1]", "h_prev = states[t]", 5.0,
            "A 3, C 2; every B case uses the wrong h_prev, so dw_hh is wrong"),
    Mistake("dh_n ignored", "rnn_backward",
            "dh_next = np.zeros_like(h0) if dh_n is None else dh_n",
            "dh_next = np.zeros_like(h0)", 5.0,
            "A 3, C 2; B visible has dh_n (fail); hidden cases with dh_n fail"),
    Mistake("numerical gradient divided by h, not 2h", "numerical_gradient",
            "grad[i] = diff.sum() / (2 * h)", "grad[i] = diff.sum() / h", 6.0,
            "A 3, B 3; every C case is off by a factor 2"),
    Mistake("numerical gradient ignores df", "numerical_gradient",
            "diff = plus - minus if df is None else (plus - minus) * df",
            "diff = plus - minus", 6.0,
            "A 3, B 3; C visible has df (fail); C hidden has a df case (fail)"),
    Mistake("x not restored after perturbing", "numerical_gradient",
            "        x[i] = old\n", "", 6.0,
            "A 3, B 3; x is left at old - h: C fails (x changed)"),
]
