"""Typical mistakes in 04_lstm_cell (6 points).

Test cells: Part A (lstm_step_forward) visible 1 (B=3, D=4, H=5, biases) +
hidden 2 (B=1; D=H; no biases; float32); Part B (lstm_step_backward, given
lstmlib's cache, so independent of Part A) visible 1 + hidden 2, same shapes.
"""

from tests.mistakes import Mistake

NOTEBOOK = "lstm_cell"
FULL_SCORE = 6.0

MISTAKES = [
    Mistake("wrong gate activation (sigmoid for g)", "lstm_step_forward",
            "g = np.tanh(a[:, 2 * H:3 * H])", "g = sigmoid(a[:, 2 * H:3 * H])", 3.0,
            "g is wrong in every forward case: Part A fails (3 lost), B intact"),
    Mistake("swapped gate order (i and f)", "lstm_step_forward",
            "i = sigmoid(a[:, 0:H])                       # input gate\n"
            "    f = sigmoid(a[:, H:2 * H])",
            "f = sigmoid(a[:, 0:H])                       # input gate\n"
            "    i = sigmoid(a[:, H:2 * H])", 3.0,
            "every forward case fails; B intact"),
    Mistake("missing bias b_hh", "lstm_step_forward",
            "a = a + b_ih + b_hh", "a = a + b_ih", 3.0,
            "visible and each hidden cell hold cases with biases: A fails"),
    Mistake("no tanh on the cell state in h", "lstm_step_forward",
            "h = o * tanh_c", "h = o * c", 3.0, "h wrong in every case: A fails"),
    Mistake("biases assumed present (None not handled)", "lstm_step_forward",
            "    if b_ih is not None:\n        a = a + b_ih + b_hh\n",
            "    a = a + b_ih + b_hh\n", 4.0,
            "A visible passes (1), A hidden has the bias-free case (fails); B 3"),
    Mistake("sigmoid derivative used for g in backward", "lstm_step_backward",
            "dg * (1 - g ** 2)", "dg * g * (1 - g)", 3.0,
            "every backward case fails; A intact"),
    Mistake("tanh derivative missing on the dh -> dc path", "lstm_step_backward",
            "dc = dc + dh * o * (1 - tanh_c ** 2)", "dc = dc + dh * o", 3.0,
            "every backward case fails"),
    Mistake("dc_prev not scaled by the forget gate", "lstm_step_backward",
            "dc_prev = dc * f", "dc_prev = dc", 3.0, "every backward case fails"),
    Mistake("transposed weight gradient dw_hh = h_prev.T @ da",
            "lstm_step_backward",
            "dw_hh = da.T @ h_prev", "dw_hh = h_prev.T @ da", 3.0,
            "shape (H, 4H) instead of (4H, H) in every case: B fails"),
    Mistake("bias gradients returned without biases", "lstm_step_backward",
            "    if has_bias:\n", "    if True:\n", 4.0,
            "B visible has biases (1); B hidden's bias-free case expects None "
            "(fails); A 3"),
    Mistake("float32 upcast in dx", "lstm_step_backward",
            "dx = da @ w_ih", "dx = (da @ w_ih).astype(np.float64)", 4.0,
            "float64 cases pass (B visible 1); the float32 hidden case fails "
            "the dtype check; A 3"),
    Mistake("delegates the backward pass to lstmlib", "lstm_step_backward",
            "    x, h_prev, c_prev, i, f, g, o, c, tanh_c, w_ih, w_hh, has_bias = cache\n",
            "    from lstmlib.lstm import lstm_step_backward as reference\n"
            "    return tuple(reference(dh, dc, cache))\n", 3.0,
            "the values would be right, but the delegation guard fails both "
            "Part B cells; A 3"),
]
