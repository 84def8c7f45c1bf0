"""``python -m lstmlib.bench``: its table, its files, and its correctness gate.

Not a timing test: the shape is tiny and no time is asserted. The runs of
the benchmark (a subprocess each) are ``slow``; its options are checked in
this process.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "lstmlib.bench", "--quick", "--shapes", "tiny",
         "--no-progress", "--repeats", "2", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_quick_run_writes_the_full_table(tmp_path):
    r = _bench(tmp_path, "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["rows"]
    got = {(row["cell"], row["dtype"], row["backend"]) for row in rows}
    want = {(c, d, b) for c in ("lstm", "gru") for d in ("float32", "float64")
            for b in ("numpy", "numpy-fast", "numba", "numba-layer", "torch",
                      "torch-nomkldnn")}
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


@pytest.mark.slow
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


def _refused(capsys, *args):
    """What the benchmark's argument parser says when it refuses ``args``."""
    from lstmlib import bench
    with pytest.raises(SystemExit, match="^2$"):       # argparse's status for a usage error
        bench.parse_args(list(args))
    return capsys.readouterr().err


def test_bad_option_is_refused(capsys):
    assert "--backends: expected values from" in _refused(capsys, "--backends", "numpy,jax")
    err = _refused(capsys, "--clock", "cpu", "--threads", "2")
    assert "--clock cpu" in err and "--threads 2" in err


@pytest.mark.slow
def test_cpu_clock_and_note_are_recorded(tmp_path):
    r = _bench(tmp_path, "--clock", "cpu", "--cells", "lstm", "--dtypes",
               "float32", "--backends", "numba,torch", "--out", str(tmp_path),
               "--note", "machine busy")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["meta"]["clock"] == "cpu"
    assert result["meta"]["notes"] == "machine busy"
    assert all(row["correct"] and row["total_ms"] > 0 for row in result["rows"])


def test_goal_report_marks_met_and_missed():
    from lstmlib import bench
    from lstmlib.bench import goal_report

    def row(cell, dtype, shape, backend, ratio, correct=True):
        return dict(cell=cell, dtype=dtype, shape=shape, backend=backend,
                    ratio_vs_torch=ratio, correct=correct)

    rows = [row("lstm", "float64", "small", "numba", 0.04),    # 25x: met
            row("gru", "float64", "small", "numba", 0.06),     # 16.7x: missed
            row("lstm", "float32", "medium", "numpy-fast", 1.31),   # missed
            row("gru", "float32", "medium", "numpy-fast", 0.7),     # met
            row("lstm", "float64", "large", "numpy-fast", 1.01),    # missed
            row("lstm", "float32", "medium", "numpy", 9.0),    # no goal
            row("gru", "float32", "small", "numba-layer", 0.4),     # missed
            row("lstm", "float32", "small", "numba", 0.1, correct=False)]
    got = {(g["cell"], g["shape"], g["goal"].split(",")[0]): g["met"]
           for g in goal_report(rows)}
    assert got == {
        ("lstm", "small", "Numba 20x faster than torch"): True,
        ("gru", "small", "Numba 20x faster than torch"): False,
        ("lstm", "medium", "numpy-fast within 1.3x of torch"): False,
        ("gru", "medium", "numpy-fast within 1.3x of torch"): True,
        ("lstm", "large", "numpy-fast faster than torch in float64"): False,
        ("gru", "small", "Numba 3x faster than torch via layer API"): False,
    }
    gpu = [dict(cell="lstm", dtype="float32", shape=shape,
                backend="cuda-persistent", correct=True, ratio_vs_cudnn=r)
           for shape, r in (("small", 1.4), ("medium", 1.6), ("large-B4", 0.6))]
    assert [g["met"] for g in goal_report(gpu, bench.GPU_GOALS,
                                          "ratio_vs_cudnn")] == [True, False, False]


def test_recording_never_overwrites(tmp_path, monkeypatch):
    import datetime

    from lstmlib import bench
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    first = bench.record_path("cpu", when)
    first.write_text("{}")
    second = bench.record_path("cpu", when)
    assert second != first and not second.exists()
    assert first.name == "cpu-2026-01-02T030405.json"


def test_the_newest_recording_is_loaded(tmp_path, monkeypatch):
    from lstmlib import bench
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    for name, date in (("cpu-2026-11-22.json", "2026-11-22T12:53:30"),
                       ("cpu-2026-11-22T150000.json", "2026-11-22T15:00:00"),
                       ("cpu-2026-11-22T150000-2.json", "2026-11-22T15:00:01")):
        (tmp_path / name).write_text(json.dumps({"meta": {"date": date}}))
    assert bench.load_results()["meta"]["date"] == "2026-11-22T15:00:01"


def test_custom_shapes_leave_the_shape_table_alone(tmp_path):
    """A TxBxDxH shape is parsed where it is used; SHAPES is not rewritten."""
    from lstmlib import bench
    before = dict(bench.SHAPES)
    a, shapes, *_ = bench.parse_args(["--shapes", "3x2x4x5,tiny",
                                      "--backends", "numpy,numpy-fast"])
    assert shapes == ["3x2x4x5", "tiny"] and bench.SHAPES == before
    assert bench.shape_dims("3x2x4x5") == (3, 2, 4, 5)
    p = bench.Problem("gru", "float64", "3x2x4x5")
    assert p.x.shape == (3, 2, 4) and p.weights[0].shape == (15, 4)
    with pytest.raises(SystemExit, match="^2$"):
        bench.parse_args(["--shapes", "3x2x4"])


def test_layer_api_path_agrees_with_the_kernel_path():
    """numba-layer (from_torch, layer.forward/backward) computes what the
    cell called directly computes."""
    from lstmlib import bench
    from lstmlib.cells import get_cell
    p = bench.Problem("lstm", "float64", "tiny")
    ref = bench._results(bench.LstmlibPath("numpy", get_cell("lstm"), p))
    assert bench.check_path(bench.LayerPath("numba-layer", "numba", p), ref) < 1e-12
