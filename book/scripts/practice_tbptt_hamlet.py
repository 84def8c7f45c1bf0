"""Record chapter 9's character model on Hamlet trained two ways, to set
truncated BPTT with the state carried beside random zero-state windows.

Both runs have the same model (an embedding of 32 numbers per character in
place of one-hot inputs, one LSTM layer of 128 units, a linear read-out),
the same optimiser (Adam, chapter 7's learning rate and clipping), the same
number of updates and the same 64 characters per window and 32 windows per
update; they differ only in which windows and which initial state:

* ``carried``: the training text cut into 32 streams, read in order, 64
  characters per update, the state carried from each window to the next and
  the gradient cut at the window's start (``lstmlib.train_tbptt``, k1 = k2 = 64);
* ``random``: 32 windows at random places for every update, each from a zero
  state (chapter 7's way).

Every ``EVAL_EVERY`` updates the validation text (the last 10% of the play)
is scored twice, with no update: cut into windows of 64 that each start
from zero (``windows``), and read as 8 long streams with the state carried
throughout (``stream``). Losses are in nats per character; the perplexity
is exp(loss). Writes ``lstmlib/data/practice_tbptt_<run>_hamlet.json``
(package data, so that chapter 9 runs in Colab too).
A few minutes per run on one core; run both side by side, from the
repository root:

    for r in carried random; do python book/scripts/practice_tbptt_hamlet.py --run $r & done; wait
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lstmlib  # noqa: E402
from lstmlib.data.texts import load_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import char_lm  # noqa: E402  (chapter 7's settings and helpers)

DATA = Path(__file__).resolve().parents[2] / "lstmlib" / "data"
EMBED = 32
HIDDEN = char_lm.HIDDEN
WINDOW = char_lm.SEQ_LEN          # k1 = k2 for the carried run
BATCH = char_lm.BATCH             # streams, or random windows per update
STEPS = 1000
EVAL_EVERY = 100
EVAL_STREAMS = 8


def make_model(vocab_size, rng):
    rnn = lstmlib.EmbeddedRNN(lstmlib.Embedding(vocab_size, EMBED, rng=rng),
                              lstmlib.LSTM(EMBED, HIDDEN, rng=rng))
    return lstmlib.SequenceModel(rnn, lstmlib.Linear(HIDDEN, vocab_size, rng=rng),
                                 readout="all")


def streams(ids, n):
    """ids cut into n equal streams side by side: inputs and next characters
    (T, n), time-major."""
    T = (len(ids) - 1) // n
    x = ids[:T * n].reshape(n, T).T
    y = ids[1:T * n + 1].reshape(n, T).T
    return x, y


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=["carried", "random"], required=True)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()

    text = load_text("hamlet")
    vocab = lstmlib.data.CharVocab(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    model = make_model(len(vocab), np.random.default_rng(char_lm.SEED))
    opt = lstmlib.Adam(model.params, lr=char_lm.LR)
    loss_fn = lstmlib.losses.softmax_cross_entropy

    val_wx, val_wy = char_lm.windows(
        val_ids, np.arange(0, len(val_ids) - WINDOW - 1, WINDOW), WINDOW)
    val_sx, val_sy = streams(val_ids, EVAL_STREAMS)

    def evaluate():
        return {"windows": float(loss_fn(model.forward(val_wx), val_wy)[0]),
                "stream": float(loss_fn(model.forward(val_sx), val_sy)[0])}

    record = {"config": {"run": args.run, "corpus": "hamlet", "embed": EMBED,
                         "hidden": HIDDEN, "window": WINDOW, "batch": BATCH,
                         "steps": args.steps, "lr": char_lm.LR,
                         "clip": char_lm.CLIP, "eval_every": EVAL_EVERY,
                         "eval_streams": EVAL_STREAMS, "seed": char_lm.SEED},
              "cpu": cpu_name(), "loss": [], "eval_step": [],
              "val_windows": [], "val_stream": []}
    t0 = time.perf_counter()

    def log_eval(done):
        record["eval_step"].append(done)
        scores = evaluate()
        record["val_windows"].append(round(scores["windows"], 5))
        record["val_stream"].append(round(scores["stream"], 5))
        print(f"update {done}: validation {scores} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)

    if args.run == "carried":
        x, y = streams(train_ids, BATCH)
        record["config"]["stream_length"] = int(x.shape[0])
        done = 0

        def step(grads):
            nonlocal done
            lstmlib.clip_grad_norm(grads, char_lm.CLIP)
            opt.step(grads)
            done += 1
            if done % EVAL_EVERY == 0:   # safe here: the carried state is
                log_eval(done)           # kept by tbptt_chunks, not the model

        while done < args.steps:         # each pass starts from a zero state
            for chunk in lstmlib.tbptt_chunks(model, x, y, loss_fn, k1=WINDOW,
                                              step=step):
                record["loss"].append(round(chunk.loss, 5))
                if done == args.steps:
                    break
    else:
        data_rng = np.random.default_rng(char_lm.SEED + 1)

        def batch(step):
            starts = data_rng.integers(0, len(train_ids) - WINDOW - 1, BATCH)
            return char_lm.windows(train_ids, starts, WINDOW)

        for done in range(0, args.steps, EVAL_EVERY):
            hist = lstmlib.train(model, batch, loss_fn, opt, steps=EVAL_EVERY,
                                 clip=char_lm.CLIP, progress=False)
            record["loss"] += [round(v, 5) for v in hist.loss]
            log_eval(done + EVAL_EVERY)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"practice_tbptt_{args.run}_hamlet.json"
    path.write_text(json.dumps(record) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
