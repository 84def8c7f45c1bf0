"""Typical mistakes in 06_gru (6 points).

Test cells: Part A (gru_step_forward) visible 1 (B=3, D=4, H=5, biases) +
hidden 2 (B=1; D=H; no biases; float32); Part B (gru_step_backward, given
lstmlib's GRUStepCache, independent of A) visible 1 + hidden 2, same shapes.
"""

from tests.mistakes import Mistake

NOTEBOOK = "gru"
FULL_SCORE = 6.0

MISTAKES = [
    Mistake("reset gate before the matmul (W_hn (r * h))", "gru_step_forward",
            "    hn = gh[:, 2 * H:]                           # W_hn h + b_hn\n"
            "    n = np.tanh(gx[:, 2 * H:] + r * hn)          # candidate\n",
            "    hn = (r * h_prev) @ w_hh[2 * H:].T + (0 if b_hh is None else b_hh[2 * H:])\n"
            "    n = np.tanh(gx[:, 2 * H:] + hn)              # candidate\n",
            3.0, "n differs in every case: A fails; B 3"),
    Mistake("z and 1 - z swapped", "gru_step_forward",
            "h = (1 - z) * n + z * h_prev", "h = z * n + (1 - z) * h_prev", 3.0,
            "every forward case fails; B 3"),
    Mistake("wrong gate activation (sigmoid for n)", "gru_step_forward",
            "n = np.tanh(gx[:, 2 * H:] + r * hn)", "n = sigmoid(gx[:, 2 * H:] + r * hn)",
            3.0, "every forward case fails; B 3"),
    Mistake("swapped gate order (r read from z's block)", "gru_step_forward",
            "r = sigmoid(gx[:, :H] + gh[:, :H])",
            "r = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])", 3.0,
            "every forward case fails; B 3"),
    Mistake("missing bias b_hh", "gru_step_forward",
            "gh = gh + b_hh", "gh = gh", 3.0,
            "the visible and each hidden cell hold cases with biases: A fails"),
    Mistake("float32 upcast of h", "gru_step_forward",
            "h = (1 - z) * n + z * h_prev",
            "h = ((1 - z) * n + z * h_prev).astype(np.float64)", 4.0,
            "only the float32 hidden case fails: A visible 1; B 3"),
    Mistake("dh_prev misses the direct path dh * z", "gru_step_backward",
            "dh_prev = dh * z + dgh @ w_hh", "dh_prev = dgh @ w_hh", 3.0,
            "every backward case fails; A 3"),
    Mistake("n block of the hidden gradient not scaled by r", "gru_step_backward",
            "    dgh[:, 2 * H:] *= r                          # hn is scaled by r\n",
            "", 3.0, "every backward case fails; A 3"),
    Mistake("wrong sign of dz", "gru_step_backward",
            "dz = dh * (h_prev - n)", "dz = dh * (n - h_prev)", 3.0,
            "every backward case fails; A 3"),
    Mistake("transposed weight gradient dw_ih = x.T @ dgx", "gru_step_backward",
            "dw_ih = dgx.T @ x", "dw_ih = x.T @ dgx", 3.0,
            "shape (D, 3H) instead of (3H, D) in every case; A 3"),
    Mistake("bias gradients returned without biases", "gru_step_backward",
            "    if has_bias:\n", "    if True:\n", 4.0,
            "B visible 1, B hidden's bias-free case expects None; A 3"),
]
