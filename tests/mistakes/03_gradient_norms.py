"""Typical mistakes in 03_gradient_norms (10 points).

Test cells: Part A (input_gradient_norms) visible 1 + hidden 2; Part B
(set_forget_bias) visible 1 (value 3) + hidden 1 (value -1; value 0);
Part C (gradient_ratio) visible 1 + hidden 1; Part D (the experiment, run
by the grader with the student's A-C, never read from the notebook's
``ratios``) visible 1 (the notebook's configuration; conclusions: RNN ratio
< 0.01, forget bias 3 keeps more gradient than 0) + hidden 2 (a
configuration the grader draws: other sizes, seeds, forget bias, near and
far; the exact numbers).
"""

from tests.mistakes import Mistake

NOTEBOOK = "gradient_norms"
FULL_SCORE = 10.0

MISTAKES = [
    Mistake("loss on every step instead of the last", "input_gradient_norms",
            "d_out[-1] = v / np.linalg.norm(v)", "d_out[:] = v / np.linalg.norm(v)",
            4.0, "A fails; in D every x_t gets a direct gradient, so the RNN's "
                 "ratio is of order 1, not < 0.01: D visible and hidden fail; "
                 "B 2 + C 2"),
    Mistake("direction v not normalised", "input_gradient_norms",
            "d_out[-1] = v / np.linalg.norm(v)", "d_out[-1] = v", 7.0,
            "A fails (norms scaled by sqrt(B*H)); ratios are scale-free, so D "
            "passes: 10 - 3"),
    Mistake("norms squared (no sqrt)", "input_gradient_norms",
            "norms = np.sqrt((dx ** 2).sum(axis=(1, 2)))",
            "norms = (dx ** 2).sum(axis=(1, 2))", 5.0,
            "A fails; squaring keeps the RNN ratio < 0.01 and the order of the "
            "LSTM ratios, so D visible passes (1) and D hidden fails; B 2 + C 2"),
    Mistake("both forget biases set (total 2 * value)", "set_forget_bias",
            'layer.params["bias_hh_l0"][H:2 * H] = 0.0',
            'layer.params["bias_hh_l0"][H:2 * H] = value', 6.0,
            "B visible (3 -> 6) and B hidden (-1 -> -2) fail; in D the LSTM with "
            "forget bias 0 is unchanged and the other gets 6 > 3, so the "
            "conclusions hold (D visible 1) but the numbers differ (D hidden "
            "0); A 3 + C 2"),
    Mistake("ratio near/far swapped", "gradient_ratio",
            "return float(norms[T - 1 - far] / norms[T - 1 - near])",
            "return float(norms[T - 1 - near] / norms[T - 1 - far])", 5.0,
            "C fails; the RNN's ratio becomes huge: D fails; A 3 + B 2"),
    Mistake("distance counted from the start of the sequence", "gradient_ratio",
            "norms[T - 1 - far] / norms[T - 1 - near]", "norms[far] / norms[near]",
            5.0, "C fails; the RNN's ratio compares a late step with an early "
                 "one (> 1): D fails; A 3 + B 2"),
    Mistake("ratio ignores near and far", "gradient_ratio",
            "return float(norms[T - 1 - far] / norms[T - 1 - near])",
            "return float(norms[T - 1 - 20] / norms[T - 1 - 1])", 7.0,
            "C visible (near=1, far=20) passes, C hidden (other near, far) fails; "
            "D visible runs the notebook's configuration (1, 20) and passes, D "
            "hidden draws other distances and fails: A 3 + B 2 + C 1 + D 1"),
]
