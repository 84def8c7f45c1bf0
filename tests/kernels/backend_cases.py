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


def assert_matches_reference(ref, cell, problem_, tol, lengths=None, reverse=False,
                             shared=None, **options):
    """``cell`` (a backend) against ``ref`` (the numpy reference) on one
    problem: outputs, final states and every gradient. ``shared``: keyword
    arguments of both (e.g. the nonlinearity); ``options``: the backend's."""
    shared = shared or {}
    x, state, weights, d_out, d_state = problem_
    out_r, st_r, cache_r = ref.forward(x, state, weights, lengths=lengths, reverse=reverse,
                                       **shared)
    out, st, cache = cell.forward(x, state, weights, lengths=lengths, reverse=reverse,
                                  **shared, **options)
    assert_close(out_r, out, tol, "out")
    for i, (a, b) in enumerate(zip(st_r, st)):
        assert_close(a, b, tol, f"state_n[{i}]")
    dx_r, ds_r, dw_r = ref.backward(d_out, d_state, cache_r)
    dx, ds, dw = cell.backward(d_out, d_state, cache)
    assert_close(dx_r, dx, tol, "dx")
    for i, (a, b) in enumerate(zip(ds_r, ds)):
        assert_close(a, b, tol, f"d_state0[{i}]")
    for name, a, b in zip(("dw_ih", "dw_hh", "db_ih", "db_hh"), dw_r, dw):
        assert_close(a, b, tol, name)
