"""Shared test set-up: the repository and this folder importable (``import
lstmlib`` without an install, ``import mistakes`` and ``hostile`` from
here), and one marker per assignment.

Markers: every test that concerns one assignment carries that assignment's
marker, named after its folder in solutions/ without the number
(``01_rnn_forward`` -> ``rnn_forward``), so ``pytest -m lstm_sequence`` runs
everything about exercise 5. The markers are registered in pyproject.toml.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir()
                     if p.is_dir() and p.name[:2].isdigit())


def assignment_marker(assignment):
    """``05_lstm_sequence`` -> ``lstm_sequence``."""
    return assignment.split("_", 1)[1]


def pytest_collection_modifyitems(config, items):
    import pytest
    for item in items:
        text = item.nodeid
        params = getattr(getattr(item, "callspec", None), "params", {})
        text += " " + " ".join(str(v) for v in params.values())
        for a in ASSIGNMENTS:
            if a in text:
                item.add_marker(getattr(pytest.mark, assignment_marker(a)))


def pytest_configure(config):
    """Every assignment's marker must be registered (pyproject.toml), so a
    new assignment cannot slip in with an unknown marker."""
    registered = {line.split(":")[0].strip()
                  for line in config.getini("markers")}
    missing = [assignment_marker(a) for a in ASSIGNMENTS
               if assignment_marker(a) not in registered]
    if missing:
        raise ValueError(f"pyproject.toml [tool.pytest.ini_options] markers: "
                         f"expected a marker for every assignment, missing "
                         f"{missing}")
