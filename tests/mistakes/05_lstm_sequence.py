"""Typical mistakes in 05_lstm_sequence (6 points).

Test cells: Part A (lstm_forward) visible 1 (T=5, B=3, biases) + hidden 2
(T=1; T=4 B=1; T=3 no biases; T=6 float32); Part B (lstm_backward, given
lstmlib's LSTMCache, independent of A) visible 1 (T=5, dh_n and dc_n given)
+ hidden 2 (T=1 with dh_n, dc_n; T=4 B=1; T=3 no biases with
dh_n=dc_n=None; T=6 float32).
"""

from tests.mistakes import Mistake

NOTEBOOK = "lstm_sequence"
FULL_SCORE = 6.0

MISTAKES = [
    Mistake("hidden state not carried (h0 at every step)", "lstm_forward",
            "lstm_step_forward(x[t], h, c, w_ih", "lstm_step_forward(x[t], h0, c, w_ih",
            3.0, "A fails for T > 1 (visible, and the hidden T=4 case); B 3"),
    Mistake("cell state not carried (c0 at every step)", "lstm_forward",
            "lstm_step_forward(x[t], h, c, w_ih", "lstm_step_forward(x[t], h, c0, w_ih",
            3.0, "A fails for T > 1; B 3"),
    Mistake("final states swapped", "lstm_forward",
            "return out, (h, c), cache", "return out, (c, h), cache", 3.0,
            "h_n and c_n wrong in every case: A fails; B 3"),
    Mistake("float32 upcast of the outputs", "lstm_forward",
            "hs = np.zeros((T, B, H), dtype=x.dtype)", "hs = np.zeros((T, B, H))",
            4.0, "out is float64 in the float32 hidden case only: A visible 1, "
                 "A hidden fails; B 3"),
    Mistake("BPTT not accumulating dh_next", "lstm_backward",
            "g = lstm_step_backward(d_out[t] + dh, dc, step)",
            "g = lstm_step_backward(d_out[t], dc, step)", 3.0,
            "drops the carried dh and dh_n: B fails (even T=1, which has dh_n); "
            "A 3"),
    Mistake("dc_next not carried", "lstm_backward",
            "dh, dc = g.dh_prev, g.dc_prev", "dh, dc = g.dh_prev, np.zeros_like(c0)",
            3.0, "dc0 is zero and earlier steps lose the cell path: B fails; A 3"),
    Mistake("weight gradients overwritten instead of summed over time",
            "lstm_backward", "dw_ih += g.dw_ih", "dw_ih = g.dw_ih", 3.0,
            "B visible (T=5) fails, B hidden fails on T > 1; A 3"),
    Mistake("off by one time step (c_prev = cs[t])", "lstm_backward",
            "c_prev = c0 if t == 0 else cache.cs[t - 1]", "c_prev = cache.cs[t]",
            3.0, "df uses the wrong c_prev in every case: B fails; A 3"),
    Mistake("swapped gate order when rebuilding the step cache (i and f)",
            "lstm_backward",
            "a[:, :H], a[:, H:2 * H],", "a[:, H:2 * H], a[:, :H],", 3.0,
            "every backward case fails; A 3"),
    Mistake("dc_n ignored", "lstm_backward",
            "dc = np.zeros_like(c0) if dc_n is None else dc_n",
            "dc = np.zeros_like(c0)", 3.0,
            "B visible and the hidden T=1 case give dc_n: B fails; A 3"),
    Mistake("dh_n=None not handled", "lstm_backward",
            "dh = np.zeros_like(h0) if dh_n is None else dh_n", "dh = dh_n", 4.0,
            "B visible gives dh_n (1); the hidden case with None raises; A 3"),
]
