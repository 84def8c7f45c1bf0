"""Record the adding-problem experiment of the book's chapter 7.

A plain RNN (tanh) and an LSTM, both with the same number of hidden units,
are trained with lstmlib on the adding problem of Hochreiter & Schmidhuber
(1997) at a short lag (T = 10) and a long one (T = 100). The training loss at
every step and the test MSE every ``EVAL_EVERY`` steps are written to
``book/data/adding_problem.json``, which the chapter loads and plots.

Regenerate (a few minutes on one CPU core) from the repository root:

    python book/scripts/adding_problem.py

Everything is seeded through numpy Generators, so a rerun reproduces the file
up to floating-point differences between machines.
"""

import os

# Small matrices: BLAS threads cost more than they save, badly so on a busy
# machine. Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lstmlib  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "adding_problem.json"

LAGS = (10, 100)          # sequence lengths T
HIDDEN = 32               # hidden units of both networks
BATCH = 64
STEPS = 2000
LR = 1e-2                 # Adam
CLIP = 1.0                # global gradient-norm clipping
EVAL_EVERY = 50
N_TEST = 500
SEED = 0


def make_model(kind, rng):
    """A recurrent layer and a linear read-out of its last hidden state."""
    layer = {"RNN": lstmlib.RNN, "LSTM": lstmlib.LSTM}[kind]
    return lstmlib.SequenceModel(layer(2, HIDDEN, rng=rng),
                                 lstmlib.Linear(HIDDEN, 1, rng=rng),
                                 readout="last")


def run(kind, T, steps=STEPS, seed=SEED):
    """Train one network at lag T; return its loss and test-MSE curves."""
    rng = np.random.default_rng(seed)
    model = make_model(kind, rng)
    opt = lstmlib.Adam(model.params, lr=LR)
    data_rng = np.random.default_rng(seed + 1)    # same batches for both
    x_test, y_test = lstmlib.data.adding_problem(N_TEST, T,
                                                 np.random.default_rng(999))

    def test_mse(model):
        return lstmlib.losses.mse(model.forward(x_test), y_test)[0]

    hist = lstmlib.train(
        model, lambda step: lstmlib.data.adding_problem(BATCH, T, data_rng),
        lstmlib.losses.mse, opt, steps=steps, clip=CLIP, progress=False,
        eval_fn=test_mse, eval_every=EVAL_EVERY)
    return {"loss": [round(v, 6) for v in hist.loss],
            "eval_step": [s + 1 for s in hist.eval_step],
            "test_mse": [round(v, 6) for v in hist.metric]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    record = {"config": {"lags": list(LAGS), "hidden": HIDDEN, "batch": BATCH,
                         "steps": args.steps, "lr": LR, "clip": CLIP,
                         "optimizer": "Adam", "n_test": N_TEST, "seed": SEED},
              "runs": {}}
    for T in LAGS:
        for kind in ("RNN", "LSTM"):
            t0 = time.perf_counter()
            result = run(kind, T, steps=args.steps)
            result["seconds"] = round(time.perf_counter() - t0, 1)
            record["runs"][f"{kind}_T{T}"] = result
            print(f"{kind:4s} T={T:3d}: final test MSE "
                  f"{result['test_mse'][-1]:.4f} ({result['seconds']} s)",
                  flush=True)
    record["machine"] = {"python": platform.python_version(),
                         "numpy": np.__version__,
                         "lstmlib": lstmlib.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
