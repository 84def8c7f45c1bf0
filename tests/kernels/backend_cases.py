"""What the backend tests share: random problems of a cell (sizes from the
cell registry) and the normwise comparison with the reference."""

import numpy as np

from lstmlib.cells import CELL_TYPES


def problem(kind, dtype, T, B, D, H, bias=True, seed=0):
    """x, the initial state(s), the weights (w_ih, w_hh, b_ih, b_hh), the
    output gradient and the final-state gradient(s) of a ``kind`` layer."""
    rng = np.random.default_rng(seed)
    spec = CELL_TYPES[kind]
    G = len(spec.gates)

    def r(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    x = r(T, B, D)
    state = tuple(r(B, H) for _ in spec.states)
    weights = (r(G * H, D, scale=0.5), r(G * H, H, scale=0.5),
               r(G * H) if bias else None, r(G * H) if bias else None)
    return x, state, weights, r(T, B, H), tuple(r(B, H) for _ in state)


def assert_close(ref, got, tol, what):
    """Same dtype and shape, and max |ref - got| <= tol * max |ref|."""
    if ref is None:
        assert got is None, f"{what}: expected None, received an array"
        return
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != {ref.dtype}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    err = np.max(np.abs(ref - got)) / max(np.max(np.abs(ref)), 1e-30)
    assert err <= tol, f"{what}: normwise error {err:.2e} > {tol:.0e}"
