"""Numerical gradient checking by central differences (as in cs231n)."""

import numpy as np


def rel_error(a, b):
    """max |a - b| / max(1e-8, |a| + |b|), elementwise: ~1e-7 or less means
    a correct float64 gradient."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"b: expected shape {a.shape} (the shape of a), received {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def numerical_gradient(f, x, df=None, h=1e-5):
    """dL/dx for L = sum(f(x) * df), by central differences.

    ``f`` is called with no argument after ``x`` is changed in place (so it
    may close over several arrays); ``df`` defaults to ones.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.array(f(), dtype=float, copy=True)
        x[i] = old - h
        minus = np.array(f(), dtype=float, copy=True)
        x[i] = old
        d = plus - minus if df is None else (plus - minus) * df
        grad[i] = d.sum() / (2 * h)
    return grad


def check_layer_gradients(layer, x, state=None, lengths=None, rng=None, h=1e-5):
    """Compare ``layer.backward`` with central differences.

    Uses L = sum(output * G) + sum(state_n * G_n) for random G, G_n; returns
    a dict name -> relative error for "x", each initial state and each
    parameter. Needs float64.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    out, state_n = layer.forward(x, state, lengths)
    n_states = 2 if isinstance(state_n, tuple) else 1
    finals = state_n if n_states == 2 else (state_n,)
    g_out = rng.standard_normal(out.shape)
    g_fin = tuple(rng.standard_normal(s.shape) for s in finals)
    if state is None:
        state = tuple(np.zeros_like(s) for s in finals)
        state = state if n_states == 2 else state[0]
    states = state if n_states == 2 else (state,)

    def loss():
        o, s = layer.forward(x, state, lengths)
        s = s if n_states == 2 else (s,)
        return np.array([(o * g_out).sum() + sum((a * g).sum() for a, g in zip(s, g_fin))])

    layer.forward(x, state, lengths)
    dx, d0 = layer.backward(g_out, g_fin if n_states == 2 else g_fin[0])
    d0 = d0 if n_states == 2 else (d0,)
    analytic = {"x": dx, **{f"state[{j}]": d for j, d in enumerate(d0)},
                **{k: v.copy() for k, v in layer.grads.items()}}
    arrays = {"x": x, **{f"state[{j}]": s for j, s in enumerate(states)}, **layer.params}
    return {k: rel_error(analytic[k], numerical_gradient(loss, arrays[k], h=h))
            for k in analytic}
