"""``python -m lstmlib.bench``: its table, its files, and its correctness gate.

Not a timing test: the shape is tiny and no time is asserted.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "lstmlib.bench", "--quick", "--shapes", "tiny",
         "--no-progress", "--repeats", "2", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_quick_run_writes_the_full_table(tmp_path):
    r = _bench(tmp_path, "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["rows"]
    got = {(row["cell"], row["dtype"], row["backend"]) for row in rows}
    want = {(c, d, b) for c in ("lstm", "gru") for d in ("float32", "float64")
            for b in ("numpy", "numba", "torch", "torch-nomkldnn")}
    assert got == want and len(rows) == len(want)
    for row in rows:
        assert row["correct"], row
        assert row["total_ms"] > 0 and row["fwd_ms"] > 0 and row["bwd_ms"] > 0
        assert abs(row["total_ms"] - row["us_per_step"] * row["T"] / 1e3) < 1e-6
        assert 0 < row["pct_peak"] and row["gflops"] > 0
        if row["backend"] == "torch":
            assert row["ratio_vs_torch"] == 1.0
    assert result["meta"]["threads"]["torch"] == 1
    assert result["meta"]["threads"]["numba"] == 1
    assert set(result["peak"]) == {"sgemm_gflops", "dgemm_gflops", "copy_gbs"}
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert "ERROR" not in r.stderr


def test_a_wrong_backend_is_caught_before_timing(tmp_path):
    r = _bench(tmp_path, "--cells", "lstm", "--dtypes", "float64",
               "--backends", "numpy,numba", "--inject-wrong", "numba",
               "--out", str(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "numba (lstm float64 tiny)" in r.stderr
    rows = {row["backend"]: row for row in
            json.loads((tmp_path / "results.json").read_text())["rows"]}
    assert rows["numba"]["correct"] is False and "total_ms" not in rows["numba"]
    assert rows["numpy"]["correct"] is True


def test_bad_option_is_refused(tmp_path):
    r = _bench(tmp_path, "--backends", "numpy,jax")
    assert r.returncode != 0 and "--backends" in r.stderr
