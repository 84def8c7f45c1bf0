"""Extract the real series that ``lstmlib.data.series`` ships, once, from
statsmodels' bundled data sets (no network: statsmodels carries them in its
wheel). statsmodels is needed only here, not at run time:

    pip install statsmodels
    python book/scripts/practice_extract_series.py

Writes ``lstmlib/data/nile.csv`` and ``lstmlib/data/sunspots.csv``, each
with a comment header giving its source, licence and the statsmodels
version it came from. An existing file with different content is not
overwritten unless ``--force`` is given.
"""

import argparse
import sys
from pathlib import Path

import statsmodels
from statsmodels.datasets import nile, sunspots

OUT = Path(__file__).resolve().parents[2] / "lstmlib" / "data"


def render(module, name, source_columns, columns):
    frame = module.load_pandas().data
    lines = [f"# {name}: statsmodels.datasets.{module.__name__.rsplit('.', 1)[-1]} "
             f"(statsmodels {statsmodels.__version__})"]
    for field in ("TITLE", "SOURCE", "COPYRIGHT"):
        for line in str(getattr(module, field, "")).strip().splitlines():
            if line.strip():
                lines.append(f"# {field.lower()}: {line.strip()}")
    lines.append(",".join(columns))
    for _, row in frame.iterrows():
        lines.append(f"{int(row[source_columns[0]])},{row[source_columns[1]]:g}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true",
                        help="replace existing files whose content differs")
    args = parser.parse_args()
    status = 0
    for module, name, source_columns in ((nile, "nile", ("year", "volume")),
                                         (sunspots, "sunspots", ("YEAR", "SUNACTIVITY"))):
        path = OUT / f"{name}.csv"
        text = render(module, name, source_columns,
                      ("year", source_columns[1].lower()))
        if path.exists() and path.read_text() != text and not args.force:
            print(f"{path} exists with different content; not overwritten "
                  "(use --force)", file=sys.stderr)
            status = 1
            continue
        path.write_text(text)
        print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
