"""Give every exercise notebook one guarded cell that installs the course
package where it is missing (Colab, a fresh Python at home).

    python scripts/add_install_cell.py          # update solutions/*/*.ipynb
    python scripts/add_install_cell.py --check  # exit 1 if a notebook lacks it

The cell is inserted before the notebook's first code cell, tagged
`remove-cell` (the book's pages do not show it) and marked with the metadata
key `course_install` so that a second run updates it in place instead of
adding another one: the script is idempotent, and safe to rerun after merges.
The package is installed from the repository configured in _config.yml
(`repository.url`, `repository.branch`), the same one the launch buttons use.

Only the source notebooks (solutions/) are edited; regenerate the student
versions afterwards, as for any change to an exercise:

    python -m lstmlib.grading generate <assignment>
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARK = "course_install"


def repository(config=ROOT / "_config.yml"):
    """(url, branch) of the repository configured in _config.yml."""
    repo = yaml.safe_load(config.read_text(encoding="utf-8"))["repository"]
    url = repo["url"].rstrip("/")
    if not url.startswith("https://"):
        raise ValueError(f"_config.yml repository.url: expected an https URL, "
                         f"received {url!r}")
    return url, repo.get("branch", "main")


def install_source(config=ROOT / "_config.yml"):
    """The cell's code, pointing at the configured repository and branch."""
    url, branch = repository(config)
    spec = f"lstmlib @ git+{url}@{branch}"
    return (
        "# Colab or a fresh Python: install the course package if it is missing.\n"
        "try:\n"
        "    import lstmlib  # noqa: F401\n"
        "except ImportError:\n"
        "    import subprocess, sys\n"
        "    subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\",\n"
        f"                           \"--quiet\", \"{spec}\"])\n"
    )


def install_cell(source):
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": "course-install",
        "metadata": {"tags": ["remove-cell"], MARK: True},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def has_current_cell(nb, source):
    cells = [c for c in nb["cells"] if c.get("metadata", {}).get(MARK)]
    return (len(cells) == 1
            and "".join(cells[0]["source"]) == source
            and "remove-cell" in cells[0]["metadata"].get("tags", []))


def add_cell(nb, source):
    """Insert (or update) the install cell; return True if nb changed."""
    if has_current_cell(nb, source):
        return False
    nb["cells"] = [c for c in nb["cells"]
                   if not c.get("metadata", {}).get(MARK)]
    first_code = next((k for k, c in enumerate(nb["cells"])
                       if c["cell_type"] == "code"), len(nb["cells"]))
    nb["cells"].insert(first_code, install_cell(source))
    return True


def notebooks(root=ROOT):
    return sorted((root / "solutions").glob("*/*.ipynb"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook lacks the cell")
    parser.add_argument("paths", nargs="*", type=Path,
                        help="notebooks (default: solutions/*/*.ipynb)")
    args = parser.parse_args(argv)
    source = install_source()
    missing = []
    for path in args.paths or notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        if args.check:
            if not has_current_cell(nb, source):
                missing.append(path)
            continue
        if add_cell(nb, source):
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")
            print(f"updated {path.relative_to(ROOT)}")
    if missing:
        print("no current install cell in:\n  "
              + "\n  ".join(str(p.relative_to(ROOT)) for p in missing),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
