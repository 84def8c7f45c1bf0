"""Data sets generated offline, seeded only through a numpy Generator.

Every generator returns time-major arrays: x (T, n, features).
"""

from importlib import resources

import numpy as np


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng: expected a numpy.random.Generator (e.g. "
                         f"np.random.default_rng(0)), received {type(rng).__name__}")


def _check_positive(**values):
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, received {v!r}")


def adding_problem(n, T, rng, dtype=np.float64):
    """The adding problem, in the simpler form later work adopted.

    Each step carries a value drawn from U(0, 1) and a marker; exactly two
    steps are marked, one in the first half and one in the second. The
    target is the sum of the two marked values, so the network must keep
    the first value for up to T steps. Returns x (T, n, 2), y (n, 1).

    This is a variant of Hochreiter & Schmidhuber's (1997) experiment 4,
    not that experiment itself: there the values are drawn from U(-1, 1),
    the markers are also -1 at the first and last steps, both marked steps
    lie in the first half (the first among the first ten), the lengths vary
    between T and T + T/10, and the target is the rescaled sum
    0.5 + (X1 + X2) / 4. Here the length is fixed, the second marked step
    lies anywhere in the second half and the target is the raw sum, so the
    mean squared error of always predicting its mean, 1, is 1/6.
    """
    _check_positive(n=n, T=T)
    _check_rng(rng)
    if T < 2:
        raise ValueError(f"T: expected at least 2 steps, received {T}")
    values = rng.uniform(0.0, 1.0, (T, n))
    first = rng.integers(0, T // 2, n)
    second = rng.integers(T // 2, T, n)
    markers = np.zeros((T, n))
    markers[first, np.arange(n)] = 1.0
    markers[second, np.arange(n)] = 1.0
    x = np.stack([values, markers], axis=2).astype(dtype)
    y = (values[first, np.arange(n)] + values[second, np.arange(n)])[:, None]
    return x, y.astype(dtype)


def copy_task(n, T_delay, n_symbols, rng, seq_len=5, dtype=np.float64):
    """The copy (memory) task: remember ``seq_len`` symbols across a delay.

    Input: the symbols, ``T_delay`` blanks, a delimiter, then blanks while
    the network answers. Target: blank everywhere except the last
    ``seq_len`` steps, which repeat the symbols. Symbols are 0..n_symbols-1,
    blank is n_symbols, the delimiter n_symbols + 1.
    Returns x one-hot (T, n, n_symbols + 2) and y int (T, n), with
    T = 2 * seq_len + T_delay + 1.
    """
    _check_positive(n=n, n_symbols=n_symbols, seq_len=seq_len)
    _check_rng(rng)
    if T_delay < 0:
        raise ValueError(f"T_delay: expected a non-negative integer, received {T_delay!r}")
    blank, delim = n_symbols, n_symbols + 1
    T = 2 * seq_len + T_delay + 1
    symbols = rng.integers(0, n_symbols, (seq_len, n))
    inp = np.full((T, n), blank)
    inp[:seq_len] = symbols
    inp[seq_len + T_delay] = delim
    y = np.full((T, n), blank)
    y[T - seq_len:] = symbols
    x = np.eye(n_symbols + 2, dtype=dtype)[inp]
    return x, y


def noisy_sine(n, T, horizon, noise, rng, dtype=np.float64):
    """Forecasting: continue a noisy sine wave.

    Each series is sin(w t + p) with random frequency w in [0.1, 0.3] and
    phase p, plus Gaussian noise of standard deviation ``noise`` on the
    inputs. Returns x (T, n, 1) and the clean next ``horizon`` values y (n, horizon).
    """
    _check_positive(n=n, T=T, horizon=horizon)
    _check_rng(rng)
    if noise < 0:
        raise ValueError(f"noise: expected a non-negative standard deviation, received {noise!r}")
    w = rng.uniform(0.1, 0.3, n)
    p = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(T + horizon)[:, None]
    clean = np.sin(w * t + p)
    x = clean[:T] + noise * rng.standard_normal((T, n))
    return x[:, :, None].astype(dtype), clean[T:].T.astype(dtype)


def future_tagging(n, T, rng, vocab=6, min_length=None, dtype=np.float64):
    """A tagging task whose tags need the future.

    Tokens are drawn from ``vocab`` symbols; the tag of step t is the token
    at step t+1 (the last real step is tagged ``vocab``, "end"). A
    left-to-right model cannot know the next token when it must tag the
    current one, so it stays near chance; a bidirectional one can read it.
    Sequences have random lengths in [min_length, T] (default T // 2);
    padding has token 0 in x (all-zero one-hot) and tag -1.
    Returns x one-hot (T, n, vocab), y int (T, n), lengths (n,).
    """
    _check_positive(n=n, T=T, vocab=vocab)
    _check_rng(rng)
    min_length = max(1, T // 2) if min_length is None else min_length
    if not 1 <= min_length <= T:
        raise ValueError(f"min_length: expected a value in [1, {T}], received {min_length!r}")
    lengths = rng.integers(min_length, T + 1, n)
    tokens = rng.integers(0, vocab, (T, n))
    real = np.arange(T)[:, None] < lengths[None, :]
    y = np.full((T, n), -1)
    y[:-1] = tokens[1:]
    y[lengths - 1, np.arange(n)] = vocab
    y[~real] = -1
    x = np.eye(vocab, dtype=dtype)[tokens] * real[:, :, None]
    return x, y, lengths


def load_corpus():
    """A small public-domain text (Shakespeare's sonnets, 1609) as one string."""
    return resources.files(__name__).joinpath("sonnets.txt").read_text(encoding="utf-8")


class CharVocab:
    """Characters <-> integer ids for a character-level language model."""

    def __init__(self, text):
        if not text:
            raise ValueError("text: expected a non-empty string, received ''")
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"text: expected characters of the vocabulary, "
                             f"received unknown {unknown[:5]}")
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)
