"""The real series shipped in lstmlib/data (their files, sources and
licences, and the loaders), the sliding windows, and the delayed-echo
stream."""

import csv
from pathlib import Path

import numpy as np
import pytest

from lstmlib.data.series import (SERIES, load_nile, load_series, load_sunspots,
                                 sliding_windows)
from lstmlib.data.streams import delayed_echo
from lstmlib.data.texts import TEXTS, load_text

DATA = Path(__file__).resolve().parents[2] / "lstmlib" / "data"


def test_nile_is_the_classic_series():
    years, flow = load_nile()
    assert years.dtype == np.int64 and flow.dtype == np.float64
    np.testing.assert_array_equal(years, np.arange(1871, 1971))
    # values published by Cobb (1978) and in R's datasets::Nile
    assert (flow[0], flow[1], flow[-1]) == (1120.0, 1160.0, 740.0)
    assert flow.min() == 456.0 and flow.max() == 1370.0
    # the change point the book shows: the mean drops around 1899
    assert flow[years < 1899].mean() - flow[years >= 1899].mean() > 200


def test_sunspots_is_the_yearly_series():
    years, spots = load_sunspots()
    np.testing.assert_array_equal(years, np.arange(1700, 2009))
    assert (spots[0], spots[1]) == (5.0, 11.0)
    assert spots.min() >= 0
    # a cycle of about 11 years: the autocorrelation peaks near lag 11
    s = spots - spots.mean()
    ac = [np.dot(s[:-k], s[k:]) / np.dot(s, s) for k in range(2, 20)]
    assert 9 <= 2 + int(np.argmax(ac)) <= 12


@pytest.mark.parametrize("name", sorted(SERIES))
def test_every_csv_states_source_and_licence(name):
    filename, column = SERIES[name]
    lines = (DATA / filename).read_text(encoding="utf-8").splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    assert any(ln.startswith("# source:") for ln in header)
    assert any("public domain" in ln for ln in header if ln.startswith("# copyright:"))
    rows = list(csv.reader(ln for ln in lines if not ln.startswith("#")))
    assert rows[0] == ["year", column]
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert f"`{filename}`" in readme


def test_load_series_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"^name: expected one of \['nile', 'sunspots'\]"):
        load_series("thames")


def test_sliding_windows():
    x, y = sliding_windows(np.arange(10.0), 3, horizon=2)
    assert x.shape == (3, 6, 1) and y.shape == (6, 2)
    np.testing.assert_array_equal(x[:, 0, 0], [0, 1, 2])
    np.testing.assert_array_equal(y[0], [3, 4])
    np.testing.assert_array_equal(x[:, -1, 0], [5, 6, 7])
    np.testing.assert_array_equal(y[-1], [8, 9])
    with pytest.raises(ValueError, match=r"^window: expected window \+ horizon <= 10"):
        sliding_windows(np.arange(10.0), 9, horizon=2)
    with pytest.raises(ValueError, match="^values: expected a 1-D series"):
        sliding_windows(np.zeros((3, 3)), 1)
    with pytest.raises(ValueError, match="^horizon: expected a positive integer"):
        sliding_windows(np.arange(10.0), 2, horizon=0)


def test_delayed_echo():
    x, y = delayed_echo(5, 30, 4, np.random.default_rng(0))
    assert x.shape == (30, 5, 2) and y.shape == (30, 5)
    bits = x.argmax(-1)
    np.testing.assert_array_equal(y[4:], bits[:-4])
    assert (y[:4] == -1).all()
    with pytest.raises(ValueError, match="^delay: expected fewer than T=30"):
        delayed_echo(5, 30, 30, np.random.default_rng(0))
    with pytest.raises(ValueError, match="^rng: expected a numpy.random.Generator"):
        delayed_echo(5, 30, 3, 0)


def test_texts():
    import lstmlib
    assert load_text("sonnets") == lstmlib.data.load_corpus()
    hamlet = load_text("hamlet")
    assert len(hamlet) > 25 * len(load_text("sonnets"))
    assert hamlet.startswith("Hamlet\n\nACT I\n")
    assert "To be, or not to be" in hamlet
    assert "**" not in hamlet and "# " not in hamlet
    vocab = lstmlib.data.CharVocab(hamlet)
    assert len(vocab) < 100
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert all(f"`{f}`" in readme for f in TEXTS.values())
    with pytest.raises(ValueError, match="^name: expected one of"):
        load_text("macbeth")
