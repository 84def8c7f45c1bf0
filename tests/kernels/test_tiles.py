"""The packed matrix product of the Numba LSTM (lstmlib.kernels.tiles)
against numpy's, on every path through its tiles: full tiles of MR rows and
the 4-, 2- and 1-row tiles after them, full panels and the scratch panel of
the last columns, the inner dimension over one and several blocks, a
transposed operand, strided rows; the single-row product vecmat on every
path through its chunks of columns and sets of sums; the 64-byte alignment
of the copies; and the 32-byte tiles of CPUs without AVX-512, compiled in a
process of their own."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from lstmlib.kernels import tiles

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOL = {np.float32: 2e-6, np.float64: 1e-14}


@njit
def _run(a, bp, c, accumulate, trans_a):
    tiles.matmul_packed(a, bp, c, accumulate, trans_a)


def _case(rng, dtype, M, K, N, trans_a, transposed):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    w = rng.standard_normal((N, K) if transposed else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    b = w.T if transposed else w
    return a, w, c, (a.T if trans_a else a) @ b


def _rel(got, want):
    return np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)


# (M, K, N): rows past whole tiles (any MR), columns past whole panels, a
# deep inner dimension, a single row, a single column, an empty inner
# dimension.
SHAPES = [(32, 128, 512), (33, 70, 100), (15, 300, 48), (1, 16, 128),
          (7, 3, 5), (13, 1, 40), (4, 512, 33), (6, 0, 20)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_packed_product_matches_numpy(dtype, M, K, N, trans_a, transposed):
    rng = np.random.default_rng(M * 1000 + K + N)
    a, w, c, prod = _case(rng, dtype, M, K, N, trans_a, transposed)
    bp = tiles.pack(w, transposed)
    NR = tiles.panel_width(dtype)
    assert bp.shape == (-(-N // NR), K, NR)
    added = c.copy()
    _run(a, bp, added, True, trans_a)
    fresh = np.full_like(c, np.nan)      # every element must be written
    _run(a, bp, fresh, False, trans_a)
    scale = max(np.max(np.abs(prod)), 1.0)
    assert np.max(np.abs(fresh - prod)) / scale <= TOL[dtype] * max(K, 1)
    assert np.max(np.abs(added - (c + prod))) / scale <= TOL[dtype] * max(K, 1)


def test_packed_product_reads_and_writes_row_slices():
    """a and c as row slices of larger arrays (the LSTM's [x, h] rows and
    its step of pre-activations): the leading dimensions are the parents'."""
    rng = np.random.default_rng(5)
    parent = rng.standard_normal((3, 17, 40)).astype(np.float32)
    a = parent[1, :, 8:]                              # (17, 32), stride 40
    w = rng.standard_normal((70, 32)).astype(np.float32)
    out = np.zeros((17, 90), np.float32)
    c = out[:, 10:80]                                  # (17, 70), stride 90
    _run(a, tiles.pack(w, True), c, False, False)
    assert _rel(c, a @ w.T) < 1e-6
    assert not out[:, :10].any() and not out[:, 80:].any()


def test_packed_product_as_plain_python_is_numpys():
    rng = np.random.default_rng(6)
    a, w, c, prod = _case(rng, np.float64, 9, 20, 37, False, True)
    got = c.copy()
    tiles.matmul_packed(a, tiles.pack(w, True), got, True)
    assert _rel(got, c + prod) < 1e-14


@njit
def _vecmat(v, w, acc):
    tiles.vecmat(v, w, acc)


# (K, N): whole chunks of four vectors, then two, one and single columns in
# every combination; K a multiple of SPLIT, not one, below it, and zero.
VECMAT_SHAPES = [(32, 128), (128, 32), (16, 128), (128, 16), (7, 5), (1, 40),
                 (33, 100), (3, 64), (130, 200), (0, 8), (5, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,N", VECMAT_SHAPES)
def test_vecmat_adds_the_row_product(dtype, K, N):
    rng = np.random.default_rng(K * 1000 + N)
    v = rng.standard_normal(K).astype(dtype)
    w = rng.standard_normal((K, N)).astype(dtype)
    acc = rng.standard_normal(N).astype(dtype)
    want = acc.astype(np.float64) + v.astype(np.float64) @ w.astype(np.float64)
    got = acc.copy()
    _vecmat(v, w, got)
    scale = max(np.max(np.abs(want)), 1.0)
    assert np.max(np.abs(got - want)) / scale <= TOL[dtype] * max(K, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vecmat_reads_rows_in_place(dtype):
    """w with rows longer than N (the padded rows of aligned_rows, a column
    slice of a larger matrix) and acc a slice: nothing outside is touched."""
    rng = np.random.default_rng(7)
    parent = rng.standard_normal((48, 150)).astype(dtype)
    w = parent[:, 3:103]                              # (48, 100), stride 150
    v = rng.standard_normal(48).astype(dtype)
    out = np.zeros(120, dtype)
    _vecmat(v, w, out[10:110])
    assert _rel(out[10:110], v @ w) < 10 * TOL[dtype] * 48
    assert not out[:10].any() and not out[110:].any()
    padded = tiles.aligned_rows(w, False)
    assert padded.strides[0] > padded.shape[1] * padded.itemsize
    acc = np.zeros(100, dtype)
    _vecmat(v, padded, acc)
    assert np.array_equal(acc, out[10:110])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("R,C", [(32, 128), (128, 32), (5, 7), (33, 100)])
@pytest.mark.parametrize("transposed", [False, True])
def test_aligned_rows_start_every_row_at_a_cache_line(dtype, R, C, transposed):
    w = np.random.default_rng(R + C).standard_normal((R, C)).astype(dtype)
    got = tiles.aligned_rows(w, transposed)
    assert np.array_equal(got, w.T if transposed else w)
    assert got.strides[1] == got.itemsize
    for r in range(got.shape[0]):
        assert (got.ctypes.data + r * got.strides[0]) % tiles.ALIGN == 0
    assert tiles.pack(w, transposed).ctypes.data % tiles.ALIGN == 0


def test_vecmat_as_plain_python_is_numpys():
    rng = np.random.default_rng(8)
    v, w = rng.standard_normal(9), rng.standard_normal((9, 13))
    acc = np.ones(13)
    tiles.vecmat(v, w, acc)
    assert _rel(acc, 1.0 + v @ w) < 1e-14


def test_vector_width_follows_the_cpu_numba_compiles_for(monkeypatch):
    """NUMBA_CPU_NAME (a cache shared between machines, "generic") makes
    Numba compile for that CPU, not this one: the tiles then take its
    features, and 32-byte vectors unless those include AVX-512."""
    from numba import config
    monkeypatch.delenv("LSTMLIB_TILE_VECTOR_BYTES", raising=False)
    monkeypatch.setattr(config, "CPU_NAME", "generic")
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    assert tiles._vector_bytes() == 32
    monkeypatch.setattr(config, "CPU_NAME", "skylake-avx512")
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,+avx512f")
    assert tiles._vector_bytes() == 64


def test_vector_width_override_is_checked(monkeypatch):
    monkeypatch.setenv("LSTMLIB_TILE_VECTOR_BYTES", "48")
    with pytest.raises(ValueError, match="LSTMLIB_TILE_VECTOR_BYTES: expected 32 or 64"):
        tiles._vector_bytes()
    monkeypatch.setenv("LSTMLIB_TILE_VECTOR_BYTES", "32")
    assert tiles._vector_bytes() == 32


_OTHER_WIDTH = r"""
import numpy as np
from numba import njit
from lstmlib.kernels import tiles
from lstmlib.cells import get_cell
import backend_cases

assert tiles.VECTOR_BYTES == {width} and tiles.MR == {mr}, (tiles.VECTOR_BYTES, tiles.MR)
assert tiles.SPLIT == {split}, tiles.SPLIT

@njit
def run(a, bp, c, acc, ta):
    tiles.matmul_packed(a, bp, c, acc, ta)

@njit
def row(v, w, acc):
    tiles.vecmat(v, w, acc)

rng = np.random.default_rng(0)
for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-13)):
    for M, K, N in ((32, 128, 512), (13, 70, 50), (5, 3, 9)):
        for ta in (False, True):
            a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
            w = rng.standard_normal((N, K)).astype(dtype)
            c = np.full((M, N), np.nan, dtype)
            run(a, tiles.pack(w, True), c, False, ta)
            want = (a.T if ta else a) @ w.T
            err = np.abs(c - want).max() / np.abs(want).max()
            assert err < tol, (dtype, M, K, N, ta, err)
    for K, N in ((128, 32), (33, 100), (7, 5)):
        v = rng.standard_normal(K).astype(dtype)
        w = rng.standard_normal((K, N)).astype(dtype)
        acc = np.ones(N, dtype)
        row(v, w, acc)
        want = 1 + v @ w
        assert np.abs(acc - want).max() / np.abs(want).max() < tol, (K, N)
    for cell, mode in (("lstm", "blas"), ("lstm", "fused"), ("gru", "fused")):
        problem = backend_cases.problem(cell, dtype, 6, 13, 5, 24)
        backend_cases.assert_matches_reference(
            get_cell(cell, "numpy"), get_cell(cell, "numba"), problem,
            1e-9 if dtype == np.float64 else 2e-5, np.array([6, 2] + [6] * 11),
            False, mode=mode)
print("ok")
"""


def test_32_byte_tiles_compute_the_same(tmp_path):
    """The tiles of CPUs without AVX-512 (6 rows of two 32-byte vectors,
    two sets of sums in vecmat), compiled afresh in a process of their own,
    against numpy's product and the numpy reference of the LSTM (blas and
    fused modes) and the GRU (fused). (The native width runs in the tests
    above.)"""
    width = 32
    env = dict(os.environ, LSTMLIB_TILE_VECTOR_BYTES=str(width),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    script = _OTHER_WIDTH.format(width=width, mr=6, split=2)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
