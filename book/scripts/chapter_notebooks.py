"""Jupyter notebooks (.ipynb) of the chapters that run in Google Colab.

The chapters are MyST Markdown text notebooks (book/NN_*.md), which Colab
cannot open. For the chapters that need nothing but `lstmlib` and what Colab
already has (numpy, matplotlib, PyTorch), this script writes a paired
book/NN_*.ipynb next to the .md: the same cells, without outputs, with one
extra cell first (tagged remove-cell) that installs `lstmlib` from the
repository configured in _config.yml when it is missing. The theme's Colab
and Binder buttons then open the .ipynb (the book itself is still built from
the .md; _config.yml excludes book/*.ipynb).

    python book/scripts/chapter_notebooks.py            # rewrite them
    python book/scripts/chapter_notebooks.py --out DIR  # write elsewhere

A test regenerates them and fails if a committed notebook is out of date with
its chapter: edit the .md, rerun this script, commit both.

Chapters 7, 8 and 9 are left out: they read recorded results and scripts
from the repository (book/data, book/scripts) or need Numba's CUDA simulator
setup, which a notebook opened alone in Colab does not have. Chapter 10's
recorded run is package data (lstmlib/data), so it travels with lstmlib;
chapter 11 needs nothing else.
"""

import argparse
import json
import sys
from pathlib import Path

import jupytext
import nbformat

BOOK = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BOOK.parent / "scripts"))
from add_install_cell import install_source  # noqa: E402  (one install cell)
ROOT = BOOK.parent
CHAPTERS = ["01_sequences", "02_bptt", "03_vanishing_gradients", "04_lstm",
            "05_gru", "06_bidirectional", "10_seq2seq_attention", "11_beyond"]
MARK = "course_install"


def setup_source(config=ROOT / "_config.yml"):
    """The first cell: install lstmlib if missing; outside the book's build,
    show glued figures instead of keeping them for the page."""
    return install_source(config) + (
        "# The book pastes figures into its pages with myst_nb.glue; in a plain\n"
        "# notebook, show them where they are made.\n"
        "try:\n"
        "    import myst_nb  # noqa: F401\n"
        "except ImportError:\n"
        "    import sys, types\n"
        "    from IPython.display import display as _display\n"
        "    def glue(name, variable, display=True):\n"
        "        if display or hasattr(variable, 'savefig'):\n"
        "            _display(variable)\n"
        "    sys.modules['myst_nb'] = types.SimpleNamespace(glue=glue)\n"
    )


def chapter_notebook(name):
    """The chapter's cells as a notebook dict, setup cell first."""
    nb = jupytext.read(BOOK / f"{name}.md")
    nb.metadata.pop("jupytext", None)
    cells = [c for c in nb.cells if not c.metadata.get(MARK)]
    first_code = next((k for k, c in enumerate(cells) if c.cell_type == "code"),
                      len(cells))
    setup = nbformat.v4.new_code_cell(
        setup_source(), metadata={"tags": ["remove-cell"], MARK: True})
    cells.insert(first_code, setup)
    nb.cells = cells
    data = json.loads(jupytext.writes(nb, fmt="ipynb"))
    for k, cell in enumerate(data["cells"]):   # stable ids, stable diffs
        cell["id"] = f"{name}-{k}"
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BOOK,
                        help="folder for the notebooks (default: book/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in CHAPTERS:
        path = args.out / f"{name}.ipynb"
        path.write_text(json.dumps(chapter_notebook(name), indent=1,
                                   ensure_ascii=False) + "\n", encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
