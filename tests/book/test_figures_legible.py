"""The diagrams' legibility check: a label that would render under MIN_PX
pixels on a PAGE_PX column stops the figure from being saved."""

import importlib.util
from pathlib import Path

import pytest

DIAGRAMS = Path(__file__).resolve().parents[2] / "book" / "scripts" / "diagrams.py"


def _diagrams():
    spec = importlib.util.spec_from_file_location("diagrams", DIAGRAMS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rendered_size_scales_with_the_figure_width():
    d = _diagrams()
    # 12 pt on a figure exactly PAGE_PX pixels wide (72 points an inch) is 12 px
    assert d.rendered_px(12, width=d.PAGE_PX / 72) == pytest.approx(12)
    assert d.rendered_px(12, width=2 * d.PAGE_PX / 72) == pytest.approx(6)


def test_every_checked_figure_is_drawn_and_passes(tmp_path):
    d = _diagrams()
    assert d.LEGIBLE <= set(d.FIGURES)
    for name in sorted(d.LEGIBLE):
        d.FIGURES[name](tmp_path)
        assert d.rendered_px(min(d._drawn["sizes"])) >= d.MIN_PX, name
    assert {"lstm_chain", "attention", "lstm_cell", "gru_cell"} <= d.LEGIBLE


def test_a_small_label_is_refused(tmp_path):
    d = _diagrams()
    fig, ax = d.card(9.4, 3.0)                 # the old cells' width
    d.label(ax, 1, 1, "9 pt", size=9)
    with pytest.raises(ValueError, match=r"^lstm_cell: its smallest label \(9 pt"):
        d.save(fig, "lstm_cell", tmp_path)
    assert not (tmp_path / "lstm_cell.svg").exists()
