"""Typical mistakes in 07_bidirectional (7 points).

Test cells: Part A (reverse_padded) visible 1 (T=5, lengths [5, 3, 1]) +
hidden 1 (T=1; T=4 lengths [2]; float32); Part B (bidirectional_lstm's out,
built with the student's reverse_padded) visible 1 + hidden 2 (T=1; T=4
B=1 lengths [2]; no padding, no biases; float32 lengths [4, 2]); Part C (its
final states) visible 1 + hidden 1, same cases.
"""

from tests.mistakes import Mistake

NOTEBOOK = "bidirectional"
FULL_SCORE = 7.0

MISTAKES = [
    Mistake("reverse ignores lengths (whole time axis)", "reverse_padded",
            "y[:L, b] = x[:L, b][::-1]", "y[:, b] = x[:, b][::-1]", 0.0,
            "A fails where L < T (visible; hidden T=4 case); the backward "
            "direction then reads padding first: B and C fail on the same "
            "cases"),
    Mistake("reverse direction not reversed", "bidirectional_lstm",
            "lstm_forward(x_rev, *state_b", "lstm_forward(x, *state_b", 2.0,
            "A passes (2); the backward LSTM reads forwards: out and its final "
            "state are wrong for T > 1: B and C fail"),
    Mistake("backward outputs not reversed back", "bidirectional_lstm",
            "out_b = reverse_padded(out_r, lengths)", "out_b = out_r", 4.0,
            "A 2 and C 2 (states unaffected); out[t] holds the backward state "
            "of another step: B fails"),
    Mistake("directions concatenated in the wrong order", "bidirectional_lstm",
            "np.concatenate([out_f, out_b], axis=2)",
            "np.concatenate([out_b, out_f], axis=2)", 4.0,
            "B fails in every case; A 2 + C 2"),
    Mistake("final states of the two directions swapped", "bidirectional_lstm",
            "return out, state_n_f, state_n_b", "return out, state_n_b, state_n_f",
            5.0, "C fails; A 2 + B 3"),
    Mistake("delegates the reversal to lstm_forward(reverse=True)",
            "bidirectional_lstm",
            "    out_r, state_n_b, _ = lstm_forward(x_rev, *state_b, *weights_b,\n"
            "                                       lengths=lengths)\n"
            "    out_b = reverse_padded(out_r, lengths)",
            "    out_b, state_n_b, _ = lstm_forward(x, *state_b, *weights_b,\n"
            "                                       lengths=lengths, reverse=True)",
            2.0, "the result is right but the tripwire on reverse=True fails B "
                 "and C; A 2"),
]
