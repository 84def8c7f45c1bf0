"""Typical mistakes in 01_rnn_forward (6 points).

Test cells: Part A (rnn_step_forward) visible 1 (B=3, tanh, biases) +
hidden 2 (B=1 ReLU; D=H tanh; no biases; float32); Part B (rnn_forward,
which calls the student's own rnn_step_forward) visible 1 (T=5, tanh,
biases) + hidden 2 (T=1; B=1 ReLU; no biases; float32).
"""

from tests.mistakes import Mistake

NOTEBOOK = "rnn_forward"
FULL_SCORE = 6.0

MISTAKES = [
    Mistake("missing bias b_hh", "rnn_step_forward",
            "a = a + b_ih + b_hh", "a = a + b_ih", 0.0,
            "every case except the bias-free one has biases and each hidden "
            "cell also holds a case with biases, so all four cells fail"),
    Mistake("transposed weight w_hh", "rnn_step_forward",
            "h_prev @ w_hh.T          #", "h_prev @ w_hh          #", 0.0,
            "w_hh is square, so no shape error, but every value is wrong: all "
            "four cells fail"),
    Mistake("ReLU ignored (always tanh)", "rnn_step_forward",
            "        h = np.maximum(a, 0)", "        h = np.tanh(a)", 2.0,
            "the visible cases are tanh (pass: 1 + 1); both hidden cells hold "
            "a ReLU case (fail)"),
    Mistake("biases assumed present (None not handled)", "rnn_step_forward",
            "    if b_ih is not None:\n        a = a + b_ih + b_hh\n",
            "    a = a + b_ih + b_hh\n", 2.0,
            "visible cases have biases (pass: 1 + 1); both hidden cells hold "
            "a bias-free case, where None + array raises (fail)"),
    Mistake("float32 upcast to float64", "rnn_step_forward",
            "h = np.tanh(a)", "h = np.tanh(a).astype(np.float64)", 2.0,
            "float64 visible cases pass (1 + 1); the float32 hidden cases get "
            "float64 h (Part A) and float64 h_n (Part B): dtype check fails"),
    Mistake("state not carried between steps", "rnn_forward",
            "rnn_step_forward(x[t], h, w_ih", "rnn_step_forward(x[t], h0, w_ih", 3.0,
            "Part A untouched (3); Part B visible T=5 fails, hidden fails "
            "(only its T=1 case would pass)"),
    Mistake("off by one time step (out[t] = state before step t)", "rnn_forward",
            "        h, cache = rnn_step_forward(x[t], h, w_ih, w_hh, b_ih, b_hh,\n"
            "                                    nonlinearity)\n"
            "        out[t] = h\n",
            "        out[t] = h\n"
            "        h, cache = rnn_step_forward(x[t], h, w_ih, w_hh, b_ih, b_hh,\n"
            "                                    nonlinearity)\n", 3.0,
            "Part A untouched (3); out is shifted by one step in every Part B "
            "case: both Part B cells fail"),
    Mistake("nonlinearity not passed to the step", "rnn_forward",
            "b_ih, b_hh,\n                                    nonlinearity)",
            "b_ih, b_hh)", 4.0,
            "Part A untouched (3); Part B visible is tanh (pass, 1); the "
            "hidden ReLU case fails"),
    Mistake("h_n is the first state, not the last", "rnn_forward",
            "h_n = h", "h_n = out[0]", 3.0,
            "Part A untouched (3); Part B visible (T=5) fails; hidden fails "
            "on T>1 cases"),
]
