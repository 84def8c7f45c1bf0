"""Long synthetic streams for truncated BPTT, seeded only through a numpy
Generator. Time-major: x (T, n, features), y (T, n)."""

import numpy as np

from . import _check_positive, _check_rng


def delayed_echo(n, T, delay, rng, dtype=np.float64):
    """A stream of random bits whose target is the bit ``delay`` steps back.

    x one-hot (T, n, 2) of the bits b_t; y (T, n) int with y_t = b_{t-delay}
    for t >= delay and -1 (ignored by ``softmax_cross_entropy``) before.
    A network must hold each bit for exactly ``delay`` steps: trained with
    truncated BPTT it learns this only if ``delay`` fits in the window the
    gradient reaches.
    """
    _check_positive(n=n, T=T)
    _check_rng(rng)
    if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
        raise ValueError(f"delay: expected a non-negative integer, received {delay!r}")
    if delay >= T:
        raise ValueError(f"delay: expected fewer than T={T} steps, received {delay}")
    bits = rng.integers(0, 2, (T, n))
    y = np.full((T, n), -1)
    y[delay:] = bits[:T - delay]
    return np.eye(2, dtype=dtype)[bits], y
