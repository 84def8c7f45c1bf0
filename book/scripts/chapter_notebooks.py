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

Chapters 7 and 8 are left out: they read recorded results and scripts
from the repository (book/data, book/scripts) or need Numba's CUDA simulator
setup, which a notebook opened alone in Colab does not have. Chapters 9 and
10 read their recorded runs from package data (lstmlib/data), so they travel
with lstmlib; chapter 11 needs nothing else.

Colab renders Markdown, not MyST's roles: in the notebooks' text cells a
citation becomes "(Author Year)" from book/references.bib, a {doc} link the
chapter's title, a {ref} its text or the section's heading, a {numref} or
{eq} plain words, and a glued number the name it was glued under. Its
directives become Markdown too: a figure an image from the configured
repository with its caption, a glued figure its caption (the figure shows
where the code makes it), an admonition or note a quotation under its title,
a dropdown a ``<details>`` block, and a literalinclude the code it includes.
"""

import argparse
import ast
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat

BOOK = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BOOK.parent / "scripts"))
from add_install_cell import install_source, repository  # noqa: E402
ROOT = BOOK.parent
CHAPTERS = ["01_sequences", "02_bptt", "03_vanishing_gradients", "04_lstm",
            "05_gru", "06_bidirectional", "09_practice", "10_seq2seq_attention",
            "11_beyond"]
ROLE = re.compile(r"\{(cite|cite:p|cite:t|doc|ref|numref|eq|glue:text)\}`([^`]*)`")
LATEX_ACCENTS = {'{\\"u}': "ü", '{\\"o}': "ö", '{\\"a}': "ä", "{\\'e}": "é",
                 "{\\'a}": "á", "{\\`e}": "è", "{\\'i}": "í", "{\\'o}": "ó"}
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


def _plain_latex(text):
    for accent, letter in LATEX_ACCENTS.items():
        text = text.replace(accent, letter)
    return text.replace("{", "").replace("}", "").strip()


def bibliography(path=BOOK / "references.bib"):
    """key -> "Author Year", "A and B Year" or "A et al. Year"."""
    names = {}
    for entry in re.split(r"\n@", "\n" + path.read_text(encoding="utf-8"))[1:]:
        key = entry.split("{", 1)[1].split(",", 1)[0].strip()
        author = re.search(r"(?m)^\s*author\s*=\s*\{(.*)\},?\s*$", entry)
        year = re.search(r"(?m)^\s*year\s*=\s*\{?(\d{4})", entry)
        people = [_plain_latex(a) for a in author.group(1).split(" and ")] \
            if author else [key]
        surnames = [a.split(",")[0] if "," in a else a.split()[-1] for a in people]
        who = (surnames[0] if len(surnames) == 1 else
               " and ".join(surnames) if len(surnames) == 2 else
               f"{surnames[0]} et al.")
        names[key] = f"{who} {year.group(1)}" if year else who
    return names


def _headings():
    """Each page's title and each (label)= section's heading, from the
    book's Markdown."""
    titles, labels = {}, {}
    for path in sorted(BOOK.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title = re.search(r"(?m)^# (.+)$", text)
        titles[path.stem] = title.group(1).strip() if title else path.stem
        for label, heading in re.findall(
                r"(?m)^\(([^()\s]+)\)=\s*\n(?:\([^()\s]+\)=\s*\n)*#+ (.+)$", text):
            labels[label] = heading.strip()
    return titles, labels


def plain_roles(text, cites, titles, labels):
    """MyST roles in a Markdown cell -> text that Colab shows as meant."""
    def explicit(body):
        m = re.fullmatch(r"(?s)(.*?)\s*<([^<>]+)>\s*", body)
        return (m.group(1).strip(), m.group(2).strip()) if m else (None, body.strip())

    def one(m):
        role, body = m.group(1), m.group(2)
        if role.startswith("cite"):
            return "(" + "; ".join(cites.get(k.strip(), k.strip())
                                   for k in body.split(",")) + ")"
        if role == "glue:text":
            return f"`{body.split(':')[0]}`"
        shown, target = explicit(body)
        if role == "doc":
            return shown or f"*{titles.get(target.rstrip('/').split('/')[-1], target)}*"
        if role == "ref":
            return shown or f"*{labels.get(target, target)}*"
        if role == "numref":
            if shown:
                return shown.replace("%s", "").replace("{number}", "").strip()
            return {"fig": "the figure", "tbl": "the table"}.get(
                target.split("-")[0], "the section")
        return f"equation ({target})"                     # eq
    return ROLE.sub(one, text)


FENCED = re.compile(r"(?ms)^([ \t]*)(```|:::)\{([\w:-]+)\}[ \t]*([^\n]*)\n"
                    r"((?:\1:[\w-]+:[^\n]*\n)*)\n?(.*?)^\1\2[ \t]*$")


def _options(block):
    return dict(re.findall(r"(?m)^:([\w-]+):[ \t]*(.*)$", block))


def _included(path, options):
    """The code a literalinclude shows: the whole file or one :pyobject:."""
    text = path.read_text(encoding="utf-8")
    name = options.get("pyobject")
    if not name:
        return text.rstrip("\n")
    for node in ast.parse(text).body:
        if getattr(node, "name", None) == name:
            return ast.get_source_segment(text, node)
    raise ValueError(f"{path}: no top-level {name!r} for a literalinclude")


def plain_directives(text, raw_base):
    """MyST directives in a Markdown cell -> Markdown Colab renders:
    ``raw_base`` is the address of the repository's raw files."""
    def one(m):
        indent = m.group(1)
        out = directive(m.group(3), m.group(4).strip(), _options(m.group(5)),
                        "\n".join(ln[len(indent):] if ln.startswith(indent) else ln
                                  for ln in m.group(6).strip("\n").splitlines()))
        if out is None:
            return m.group(0)
        return "\n".join(indent + ln if ln else ln for ln in out.splitlines())

    def directive(kind, argument, options, body):
        if kind == "figure":
            alt = options.get("alt", "").replace("]", ")")
            return f"![{alt}]({raw_base}/book/{argument})\n\n*{body.strip()}*"
        if kind == "glue:figure":
            return f"*Figure (above, where the code draws it): {body.strip()}*"
        if kind in ("admonition", "note", "tip", "important", "warning"):
            title = argument or kind.capitalize()
            lines = [f"**{title}**", ""] + plain_directives(body, raw_base).splitlines()
            return "\n".join("> " + ln if ln else ">" for ln in lines)
        if kind == "dropdown":
            return (f"<details><summary>{argument or 'Show'}</summary>\n\n"
                    f"{plain_directives(body, raw_base)}\n\n</details>")
        if kind == "literalinclude":
            code = _included((BOOK / argument).resolve(), options)
            return f"```{options.get('language', 'python')}\n{code}\n```"
        return None
    return FENCED.sub(one, text)


def chapter_notebook(name):
    """The chapter's cells as a notebook dict, setup cell first."""
    nb = jupytext.read(BOOK / f"{name}.md")
    nb.metadata.pop("jupytext", None)
    cells = [c for c in nb.cells if not c.metadata.get(MARK)]
    cites, (titles, labels) = bibliography(), _headings()
    url, branch = repository()
    raw_base = url.replace("https://github.com/", "https://raw.githubusercontent.com/") \
        + f"/{branch}"
    for cell in cells:
        if cell.cell_type == "markdown":
            cell.source = plain_directives(
                plain_roles(cell.source, cites, titles, labels), raw_base)
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
