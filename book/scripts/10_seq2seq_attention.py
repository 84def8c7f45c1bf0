"""Record the sequence-to-sequence experiment of the book's chapter 10.

Two LSTM encoder-decoders (``lstmlib.seq2seq``) learn to reverse strings of
random digits, one with additive attention and one without (everything it
knows about the source must pass through the encoder's final state). Both
train on the same batches, lengths drawn from MIN_LEN..MAX_LEN (one length
per batch), with the same budget of steps. Written to
``lstmlib/data/seq2seq_attention.json``:

* the configuration, the CPU it ran on and the seconds each model took;
* the training loss of each model, averaged over every LOG_EVERY steps;
* the exact-match accuracy (greedy decoding, whole string right) and the
  per-digit accuracy of each model on fresh strings of every length;
* the attention weights of the attention model on a few example strings;
* greedy decoding against beam search (width BEAM_WIDTH, without and with
  length normalisation) on the same BEAM_N fresh strings of every length.

Regenerate (about a minute on one idle CPU core, numpy with one BLAS thread)
from the repository root:

    python book/scripts/10_seq2seq_attention.py
"""

import os

# Small matrices: BLAS threads cost more than they save. Set before numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from lstmlib import losses  # noqa: E402
from lstmlib.optim import Adam  # noqa: E402
from lstmlib.seq2seq import EOS, Seq2Seq, beam_search, reversal_batch  # noqa: E402
from lstmlib.train import train  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "lstmlib" / "data" / "seq2seq_attention.json"

HIDDEN = 48
ATTENTION = 32
BATCH = 32
STEPS = 3000
LR = 5e-3                 # Adam
CLIP = 5.0
MIN_LEN, MAX_LEN = 2, 16  # training lengths
EVAL_LENGTHS = list(range(2, 21))   # beyond MAX_LEN too
EVAL_N = 300
LOG_EVERY = 25
EXAMPLES = (8, 14)        # lengths of the strings whose weights are kept
BEAM_WIDTH = 5
BEAM_N = 100              # strings per length for greedy against beam search
BEAM_ALPHAS = (0.0, 1.0)  # without and with length normalisation
SEED = 0
PROGRESS = True


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def evaluate(model, rng):
    exact, digits = [], []
    for L in EVAL_LENGTHS:
        src, _, tgt_out = reversal_batch(rng, EVAL_N, L)
        tokens, _ = model.decode(src, L + 1)
        exact.append(float(np.mean(np.all(tokens == tgt_out, axis=0))))
        digits.append(float(np.mean(tokens[:L] == tgt_out[:L])))
    return exact, digits


def evaluate_beam(model, rng):
    """Exact match of greedy decoding and of beam search on the same strings,
    for every length; beam search may stop early or late, so its output is
    compared whole with the target (EOS included)."""
    result = {"greedy": []} | {f"beam_alpha{a:g}": [] for a in BEAM_ALPHAS}
    for L in EVAL_LENGTHS:
        src, _, tgt_out = reversal_batch(rng, BEAM_N, L)
        tokens, _ = model.decode(src, L + 1)
        result["greedy"].append(float(np.mean(np.all(tokens == tgt_out, axis=0))))
        for a in BEAM_ALPHAS:
            best = beam_search(model.params, src, BEAM_WIDTH, L + 1, a)
            result[f"beam_alpha{a:g}"].append(float(np.mean(
                [np.array_equal(h.tokens, tgt_out[:, b]) for b, h in enumerate(best)])))
    return result


def main(steps, hidden, out):
    rng_len = np.random.default_rng(SEED)
    lengths = rng_len.integers(MIN_LEN, MAX_LEN + 1, steps)
    record = {"config": {"hidden": hidden, "attention_size": ATTENTION,
                         "batch": BATCH, "steps": steps, "lr": LR, "clip": CLIP,
                         "train_lengths": [MIN_LEN, MAX_LEN],
                         "eval_lengths": EVAL_LENGTHS, "eval_n": EVAL_N,
                         "log_every": LOG_EVERY, "seed": SEED, "eos": EOS,
                         "beam_width": BEAM_WIDTH, "beam_n": BEAM_N,
                         "beam_alphas": list(BEAM_ALPHAS)},
              "cpu": cpu_model(),
              "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "models": {}}
    for name, attention in (("attention", True), ("no_attention", False)):
        model = Seq2Seq(10, 12, hidden, np.random.default_rng(SEED + 1),
                        attention=attention, attention_size=ATTENTION)
        data = np.random.default_rng(SEED + 2)       # same batches for both

        def batch(step):
            src, tgt_in, tgt_out = reversal_batch(data, BATCH, int(lengths[step]))
            return (src, tgt_in), tgt_out

        t0 = time.perf_counter()
        hist = train(model, batch, losses.softmax_cross_entropy,
                     Adam(model.params, lr=LR), steps, clip=CLIP,
                     progress=PROGRESS)
        seconds = time.perf_counter() - t0
        loss = np.asarray(hist.loss)
        n = len(loss) // LOG_EVERY * LOG_EVERY
        exact, digits = evaluate(model, np.random.default_rng(SEED + 3))
        entry = {"train_seconds": round(seconds, 1),
                 "loss": loss[:n].reshape(-1, LOG_EVERY).mean(axis=1).round(5).tolist(),
                 "exact_match": exact, "digit_accuracy": digits,
                 "beam": evaluate_beam(model, np.random.default_rng(SEED + 5))}
        if attention:
            examples = []
            ex_rng = np.random.default_rng(SEED + 4)
            for L in EXAMPLES:
                src, _, _ = reversal_batch(ex_rng, 1, L)
                tokens, weights = model.decode(src, L + 1)
                examples.append({"src": src[:, 0].tolist(),
                                 "out": tokens[:, 0].tolist(),
                                 "weights": weights[:, :, 0].round(4).tolist()})
            entry["examples"] = examples
        record["models"][name] = entry
        print(f"{name}: {seconds:.0f} s, exact match by length "
              f"{dict(zip(EVAL_LENGTHS, np.round(exact, 2)))}")
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    PROGRESS = not args.no_progress
    main(args.steps, args.hidden, args.out)
