"""Typical mistakes in 08_training (9 points).

Test cells: Part A (mse) visible 1 + hidden 1; Part B (clip_grad_norm)
visible 1 (norm above max_norm) + hidden 1 (below; three arrays, 0.5);
Part C (train_step, against lstmlib's step) visible 1 (one step, no
clipping) + hidden 1 (clipping active; float32); Part D (the grader trains
the model build_model describes, from its own initial parameters, and the
student's train_step must make the same 300 steps: every returned loss and
the parameters after every 50 steps; the grader's parameters must then reach
held-out MSE < 0.04) visible 1 + hidden 2.
"""

from tests.mistakes import Mistake

NOTEBOOK = "adding_problem"
FULL_SCORE = 9.0

MISTAKES = [
    Mistake("loss summed instead of averaged", "mse",
            "loss = float((diff * diff).mean())", "loss = float((diff * diff).sum())",
            2.0, "A fails (loss value) and C fails (returned loss); dpred is "
                 "unchanged, so the updates are right, but D checks the loss "
                 "train_step returns at every step too (the sum, not the mean): "
                 "D fails; B 2"),
    Mistake("gradient of the loss with the wrong sign", "mse",
            "dpred = 2 * diff / diff.size", "dpred = 2 * (target - pred) / diff.size",
            2.0, "A fails, C fails, and gradient ascent cannot bring the MSE "
                 "below 0.04: D fails; B 2"),
    Mistake("clip returns the norm after clipping", "clip_grad_norm",
            "    return norm", "    return min(norm, max_norm)", 7.0,
            "B visible (norm above max) and B hidden (the 0.5 case) fail; the "
            "return value is not used by train_step: A 2 + C 2 + D 3"),
    Mistake("optimizer step missing", "train_step",
            "    optimizer.step(model.grads)\n", "", 4.0,
            "C fails (parameters unchanged); the model never learns (MSE about "
            "1.2): D fails; A 2 + B 2"),
    Mistake("learning rate far too small", "build_model",
            "lr=0.02", "lr=0.001", 6.0,
            "300 Adam steps of size about 0.001 cannot fit the task: D fails; "
            "A, B, C untouched (6)"),
    Mistake("read-out at every step instead of the last", "build_model",
            "lstmlib.Linear(H, 1, rng=rng))",
            "lstmlib.Linear(H, 1, rng=rng), readout=\"all\")", 6.0,
            "D accepts a head reading the last step only (the model then "
            "predicts one number per sequence): D fails; A, B, C untouched (6)"),
]
