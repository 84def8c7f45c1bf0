"""Record the regularised character-level language models of the book's
chapter 9, to set beside chapter 7's (``lstmlib/data/char_lm.json``).

Same corpus, split, window, batch, learning rate, clipping and number of
steps as ``char_lm.py`` (chapter 7), and the same model: one LSTM layer of
128 units and a linear read-out. Each configuration changes one thing, or
all of them:

* ``none``: chapter 7's model unchanged (the baseline on another corpus);
* ``dropout``: dropout (p = 0.4) on the LSTM's output before the read-out;
* ``weight_decay``: AdamW with weight decay 0.1 instead of Adam;
* ``init``: orthogonal recurrent weights and a forget-gate bias of 1;
* ``all``: the three together, plus early stopping on the validation loss
  (the run goes on to the end; the step where early stopping would end it
  and the best step are recorded);
* ``stacked``: two LSTM layers with dropout 0.4 between them (``dropout`` as
  ``torch.nn.LSTM``'s argument) and on the output, AdamW, the
  initialisation.

``--corpus hamlet`` trains on Hamlet (``lstmlib.data.texts``) instead of the
sonnets. Losses on the validation text and on the whole training text are measured
every 50 steps with dropout switched off. Each configuration is written to
``lstmlib/data/practice_char_lm_<name>.json`` (package data, so that the
chapter runs in Colab too). It takes several minutes per
configuration on one CPU core; the configurations are independent, so run
them side by side on several cores, from the repository root:

    for c in all dropout weight_decay init stacked; do
        python book/scripts/practice_char_lm.py --config $c &
    done; wait
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lstmlib  # noqa: E402
from lstmlib.data.texts import TEXTS, load_text  # noqa: E402
from lstmlib.init import init_recurrent  # noqa: E402
from lstmlib.regularization import (Dropout, EarlyStopping, Sequential,  # noqa: E402
                                    set_training)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import char_lm  # noqa: E402  (chapter 7's settings and helpers)

DATA = Path(__file__).resolve().parents[2] / "lstmlib" / "data"
HIDDEN = char_lm.HIDDEN
PATIENCE = 4              # evaluations without improvement
CONFIGS = {               # layers, dropout, weight decay, init
    "none": dict(layers=1, dropout=0.0, weight_decay=0.0, init=False),
    "dropout": dict(layers=1, dropout=0.4, weight_decay=0.0, init=False),
    "weight_decay": dict(layers=1, dropout=0.0, weight_decay=0.1, init=False),
    "init": dict(layers=1, dropout=0.0, weight_decay=0.0, init=True),
    "all": dict(layers=1, dropout=0.4, weight_decay=0.1, init=True),
    "stacked": dict(layers=2, dropout=0.4, weight_decay=0.1, init=True),
}


def make_model(vocab_size, rng, layers, dropout, weight_decay, init):
    """Chapter 7's model with dropout between the layers (if several) and
    before the read-out; ``weight_decay`` is used by the optimiser. The
    dropout masks are drawn from ``rng`` too."""
    rnn = lstmlib.LSTM(vocab_size, HIDDEN, layers,
                       dropout=dropout if layers > 1 else 0.0, rng=rng)
    if init:
        init_recurrent(rnn, rng, forget_bias=1.0)
    head = Sequential(Dropout(dropout, rng=rng),
                      lstmlib.Linear(HIDDEN, vocab_size, rng=rng))
    return lstmlib.SequenceModel(rnn, head, readout="all")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="all")
    parser.add_argument("--steps", type=int, default=char_lm.STEPS)
    parser.add_argument("--corpus", choices=sorted(TEXTS), default="sonnets")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    cfg = CONFIGS[args.config]

    text = load_text(args.corpus)
    vocab = lstmlib.data.CharVocab(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    eye = np.eye(len(vocab))
    L, S = char_lm.SEQ_LEN, char_lm.SEED

    model = make_model(len(vocab), np.random.default_rng(S), **cfg)
    opt = lstmlib.AdamW(model.params, lr=char_lm.LR, weight_decay=cfg["weight_decay"])
    data_rng = np.random.default_rng(S + 1)
    val_x, val_y = char_lm.windows(val_ids, np.arange(0, len(val_ids) - L - 1, L), L)
    stopper = EarlyStopping(patience=PATIENCE)
    record = {"config": {"name": args.config, "corpus": args.corpus,
                         "hidden": HIDDEN, **cfg,
                         "patience": PATIENCE, "seq_len": L, "batch": char_lm.BATCH,
                         "steps": args.steps, "lr": char_lm.LR, "clip": char_lm.CLIP,
                         "optimizer": "AdamW" if cfg["weight_decay"] else "Adam",
                         "seed": S},
              "loss": [], "eval_step": [], "val_loss": [], "train_eval_loss": [],
              "stop_step": None}

    def batch(step):
        starts = data_rng.integers(0, len(train_ids) - L - 1, char_lm.BATCH)
        x, y = char_lm.windows(train_ids, starts, L)
        return eye[x], y

    def evaluate(x, y):
        set_training(model, False)            # no dropout when measuring
        loss = lstmlib.losses.softmax_cross_entropy(model.forward(eye[x]), y)[0]
        set_training(model, True)
        return float(loss)

    train_x, train_y = char_lm.windows(
        train_ids, np.arange(0, len(train_ids) - L - 1, L), L)
    t0 = time.perf_counter()
    for done in range(0, args.steps, char_lm.EVAL_EVERY):
        hist = lstmlib.train(model, batch, lstmlib.losses.softmax_cross_entropy, opt,
                             steps=char_lm.EVAL_EVERY, clip=char_lm.CLIP, progress=False)
        step = done + char_lm.EVAL_EVERY
        val = evaluate(val_x, val_y)
        record["loss"] += [round(v, 5) for v in hist.loss]
        record["eval_step"].append(step)
        record["val_loss"].append(round(val, 5))
        record["train_eval_loss"].append(round(evaluate(train_x, train_y), 5))
        if stopper.step(val, model.params) and record["stop_step"] is None:
            record["stop_step"] = step        # early stopping would end here
        print(f"step {step}: train {np.mean(hist.loss):.3f}, validation {val:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    record["best_step"] = record["eval_step"][stopper.best_index]
    record["best_val_loss"] = round(stopper.best, 5)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.corpus == "sonnets" else f"_{args.corpus}"
    path = args.out / f"practice_char_lm_{args.config}{suffix}.json"
    path.write_text(json.dumps(record) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
