"""Real time series shipped with the package (small CSV files, read with the
standard library; see ``README.md`` beside them for sources and licences).

* ``load_nile()``: the Nile's annual flow at Aswan, 1871-1970 (100 years,
  10^8 m^3 per year): the river whose floods motivate chapter 1.
* ``load_sunspots()``: the yearly mean sunspot number, 1700-2008 (309
  years): a longer, quasi-periodic (about 11 years) real series.

Each returns ``(years, values)`` as numpy arrays (int64, float64).
"""

import csv
from importlib import resources

import numpy as np

SERIES = {"nile": ("nile.csv", "volume"), "sunspots": ("sunspots.csv", "sunactivity")}


def load_series(name):
    """``(years, values)`` of a shipped series by name (see ``SERIES``)."""
    if name not in SERIES:
        raise ValueError(f"name: expected one of {sorted(SERIES)}, received {name!r}")
    filename, column = SERIES[name]
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    rows = list(csv.DictReader(line for line in text.splitlines()
                               if not line.startswith("#")))
    years = np.array([int(r["year"]) for r in rows], dtype=np.int64)
    values = np.array([float(r[column]) for r in rows], dtype=np.float64)
    return years, values


def load_nile():
    """The Nile at Aswan: years 1871..1970 and annual flow (10^8 m^3)."""
    return load_series("nile")


def load_sunspots():
    """Yearly mean sunspot numbers: years 1700..2008 and values."""
    return load_series("sunspots")


def sliding_windows(values, window, horizon=1):
    """Inputs x (window, n, 1) of consecutive values and targets y (n,
    horizon) of the ``horizon`` values that follow each window, one window
    per possible start (n = len(values) - window - horizon + 1)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values: expected a 1-D series, received shape {values.shape}")
    for name, v in (("window", window), ("horizon", horizon)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, received {v!r}")
    n = len(values) - window - horizon + 1
    if n < 1:
        raise ValueError(f"window: expected window + horizon <= {len(values)} "
                         f"(the series' length), received {window} + {horizon}")
    idx = np.arange(n)[None, :] + np.arange(window)[:, None]
    y_idx = np.arange(n)[:, None] + window + np.arange(horizon)[None, :]
    return values[idx][:, :, None], values[y_idx]
