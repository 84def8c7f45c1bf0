"""Measurements for the vanishing/exploding-gradient experiment."""

import numpy as np


def input_gradient_norms(layer, x, state=None, rng=None):
    """||dL/dx_t|| for every step t, for a loss on the last step's output only.

    L = sum(output[T-1] * v) with v a fixed random unit direction (all ones
    normalised when ``rng`` is None). The gradient reaching x_t has crossed
    T-1-t recurrent Jacobians, so plotting the norms against T-1-t shows how
    fast the signal vanishes or explodes with distance. Returns (T,) with
    entry t for step t (time-major layers).
    """
    out, _ = layer.forward(x, state)
    d_out = np.zeros_like(out)
    if rng is None:
        v = np.ones(out.shape[1:], out.dtype)
    else:
        v = rng.standard_normal(out.shape[1:]).astype(out.dtype)
    d_out[-1] = v / np.linalg.norm(v)
    dx, _ = layer.backward(d_out)
    return np.sqrt((dx.astype(np.float64) ** 2).sum(axis=(1, 2)))
