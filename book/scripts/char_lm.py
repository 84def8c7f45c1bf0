"""Record the character-level language model of the book's chapter 7.

An LSTM reads the course corpus (``lstmlib.data.load_corpus()``) one
character at a time and learns to predict the next character. The first 90%
of the text is for training, the last 10% for validation. Written:

* ``lstmlib/data/char_lm.json`` (package data: chapter 9 reads it too, in
  Colab as well): the configuration, the training loss at every step, the
  validation loss every ``EVAL_EVERY`` steps, and text sampled at a few
  checkpoints;
* ``book/data/char_lm_weights.npz``: the trained parameters (float16, to keep the file
  small), which the chapter loads to sample new text at build time.

Regenerate (a few minutes on one CPU core) from the repository root:

    python book/scripts/char_lm.py
"""

import os

# Small matrices: BLAS threads cost more than they save, badly so on a busy
# machine. Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lstmlib  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = Path(__file__).resolve().parents[2] / "lstmlib" / "data"

HIDDEN = 128
SEQ_LEN = 64              # window length: each starts from a zero state
BATCH = 32
STEPS = 2000
LR = 5e-3                 # Adam
CLIP = 5.0
EVAL_EVERY = 50
CHECKPOINTS = (100, 300, 1000, 2000)
TEMPERATURE = 0.8
SAMPLE_LEN = 300
SEED = 0


def make_model(vocab_size, rng):
    """An LSTM with a linear layer giving next-character scores per step."""
    return lstmlib.SequenceModel(
        lstmlib.LSTM(vocab_size, HIDDEN, rng=rng),
        lstmlib.Linear(HIDDEN, vocab_size, rng=rng), readout="all")


def windows(ids, starts, seq_len):
    """Inputs ids[s:s+L] and targets ids[s+1:s+L+1], time-major (L, B)."""
    idx = np.asarray(starts)[None, :] + np.arange(seq_len)[:, None]
    return ids[idx], ids[idx + 1]


def sample(model, vocab, n, rng, temperature=1.0, prime="\n"):
    """Generate ``n`` characters, feeding each one back as the next input.

    The state (h, c) is carried from step to step; at each step the scores
    are divided by ``temperature`` (below 1: more conservative) and a
    character is drawn from their softmax with ``rng``.
    """
    eye = np.eye(len(vocab))
    state = None
    for ch in vocab.encode(prime):               # read the prime
        out, state = model.rnn.forward(eye[[ch]][None], state)
    chars = []
    for _ in range(n):
        logits = model.head.forward(out[0, 0]) / temperature
        p = np.exp(logits - logits.max())
        ch = rng.choice(len(vocab), p=p / p.sum())
        chars.append(ch)
        out, state = model.rnn.forward(eye[[ch]][None], state)
    return vocab.decode(chars)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()

    text = lstmlib.data.load_corpus()
    vocab = lstmlib.data.CharVocab(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    eye = np.eye(len(vocab))

    rng = np.random.default_rng(SEED)
    model = make_model(len(vocab), rng)
    opt = lstmlib.Adam(model.params, lr=LR)
    data_rng = np.random.default_rng(SEED + 1)
    val_starts = np.arange(0, len(val_ids) - SEQ_LEN - 1, SEQ_LEN)
    val_x, val_y = windows(val_ids, val_starts, SEQ_LEN)

    def batch(step):
        starts = data_rng.integers(0, len(train_ids) - SEQ_LEN - 1, BATCH)
        x, y = windows(train_ids, starts, SEQ_LEN)
        return eye[x], y

    def val_loss(model):
        logits = model.forward(eye[val_x])
        return lstmlib.losses.softmax_cross_entropy(logits, val_y)[0]

    record = {"config": {"hidden": HIDDEN, "seq_len": SEQ_LEN, "batch": BATCH,
                         "steps": args.steps, "lr": LR, "clip": CLIP,
                         "optimizer": "Adam", "temperature": TEMPERATURE,
                         "seed": SEED, "corpus_chars": len(ids),
                         "train_chars": len(train_ids),
                         "vocab_size": len(vocab)},
              "loss": [], "eval_step": [], "val_loss": [], "samples": {}}
    t0 = time.perf_counter()
    done = 0
    for stop in [c for c in CHECKPOINTS if c <= args.steps] or [args.steps]:
        hist = lstmlib.train(model, batch, lstmlib.losses.softmax_cross_entropy,
                             opt, steps=stop - done, clip=CLIP, progress=False,
                             eval_fn=val_loss, eval_every=EVAL_EVERY)
        record["loss"] += [round(v, 5) for v in hist.loss]
        record["eval_step"] += [done + s + 1 for s in hist.eval_step]
        record["val_loss"] += [round(v, 5) for v in hist.metric]
        done = stop
        text_out = sample(model, vocab, SAMPLE_LEN, np.random.default_rng(SEED),
                          TEMPERATURE)
        record["samples"][str(done)] = text_out
        print(f"step {done}: train {np.mean(hist.loss[-50:]):.3f}, "
              f"validation {hist.metric[-1]:.3f} "
              f"({time.perf_counter() - t0:.0f} s)\n{text_out}\n", flush=True)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    record["chars"] = vocab.chars
    args.out.mkdir(parents=True, exist_ok=True)
    (RECORDED / "char_lm.json").write_text(json.dumps(record, indent=None) + "\n")
    np.savez_compressed(args.out / "char_lm_weights.npz",
                        **{k: v.astype(np.float16)
                           for k, v in model.params.items()})
    print(f"wrote {RECORDED / 'char_lm.json'} and {args.out / 'char_lm_weights.npz'}")


if __name__ == "__main__":
    main()
