"""The Persian edition's catalogs: complete, in step with the English text,
faithful to the code and the maths, and written with one terminology.

locale/fa/LC_MESSAGES/<page>.po holds the Persian of every message of a
page (`make catalogs` writes the English messages in; CONTRIBUTING.md says
how). Checked here, on the catalogs alone (fast):

- every page of the book but those that stay English (persian_english_only
  in _config.fa.yml) has a catalog, and no catalog is left for a page the
  book no longer has;
- no message is untranslated or fuzzy;
- inline code, inline maths, roles ({ref}, {glue:text}...) and HTML tags
  of a message are all in its translation, character for character, and
  numbers keep their Latin digits;
- a message kept in English (no Persian letter in its translation) says
  why, in a translator's comment;
- the terminology of locale/fa/terminology.csv: a message that uses a key
  English term (or one of its variants, "a|b") has the listed Persian term
  in its translation, and the first translation in a page that uses the
  Persian term gives the English term beside it, "(forget gate)";
- the theme's strings (pydata-sphinx-theme, sphinx-book-theme) in Persian;
- the Persian search language normalises Arabic and Persian forms, the
  zero-width non-joiner and the stop words.

And after a build of the Persian edition (slow; `make book` builds it): no
message of a translated page went untranslated, i.e. the catalogs were
updated since the English text last changed.
"""

import csv
import fnmatch
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "locale" / "fa"
MESSAGES = LOCALE / "LC_MESSAGES"
TERMINOLOGY = LOCALE / "terminology.csv"
UNTRANSLATED = ROOT / "_build" / ".fa" / "untranslated.json"
THEME_CATALOGS = {"sphinx", "booktheme"}

# the book's Sphinx extension (_ext/persian.py), loaded from its file
_spec = importlib.util.spec_from_file_location("persian", ROOT / "_ext" / "persian.py")
persian = sys.modules["persian"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(persian)

PERSIAN_LETTER = re.compile("[\u0600-\u06ff\ufb50-\ufdff\ufe70-\ufeff]")


def _fmt(items, limit=40):
    items = list(items)
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n".join("  " + str(i) for i in items[:limit]) + more


def english_only_patterns():
    cfg = yaml.safe_load((ROOT / "_config.fa.yml").read_text(encoding="utf-8"))
    return cfg["sphinx"]["config"].get("persian_english_only", [])


def book_pages():
    """Every page of the table of contents (docnames)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


def translated_pages():
    patterns = english_only_patterns()
    return [p for p in book_pages()
            if not any(fnmatch.fnmatch(p, pat) for pat in patterns)]


def catalog_path(docname):
    return MESSAGES / f"{docname}.po"


def load(path):
    with open(path, "rb") as f:
        return read_po(f, locale="fa")


def page_catalogs():
    """(docname, catalog) for every page catalog that exists."""
    out = []
    for doc in translated_pages():
        path = catalog_path(doc)
        if path.is_file():
            out.append((doc, load(path)))
    return out


def entries(catalog):
    return [m for m in catalog if m.id]


# --------------------------------------------------------------------------
# Completeness
# --------------------------------------------------------------------------

def test_every_translated_page_has_a_catalog():
    missing = [f"{doc}: no {catalog_path(doc).relative_to(ROOT)}"
               for doc in translated_pages() if not catalog_path(doc).is_file()]
    pages = set(translated_pages())
    stray = sorted(
        p.relative_to(ROOT).as_posix() for p in MESSAGES.rglob("*.po")
        if p.relative_to(MESSAGES).with_suffix("").as_posix() not in pages
        and p.stem not in THEME_CATALOGS)
    assert not missing, "pages without a Persian catalog:\n" + _fmt(missing)
    assert not stray, ("catalogs of pages the book does not have (or that "
                       "stay English):\n" + _fmt(stray))


def test_no_untranslated_or_fuzzy_message():
    problems = []
    counted = 0
    for doc, catalog in page_catalogs():
        for m in entries(catalog):
            counted += 1
            if not (m.string or "").strip():
                problems.append(f"{doc}: untranslated: {m.id[:80]!r}")
            elif m.fuzzy:
                problems.append(f"{doc}: fuzzy: {m.id[:80]!r}")
    assert counted > 0, "no message in any catalog: nothing was checked"
    print(f"[catalogs] {counted} messages in "
          f"{len(page_catalogs())} page catalogs")
    assert not problems, (f"{len(problems)} of {counted} messages not "
                          "translated (make catalogs, then translate; "
                          "CONTRIBUTING.md):\n" + _fmt(problems))


# --------------------------------------------------------------------------
# Code, maths, roles and markup kept
# --------------------------------------------------------------------------

# Inline pieces that a translation carries over unchanged.
KEPT = [
    re.compile(r"\{[\w:-]+\}`[^`]*`"),      # roles: {ref}`x`, {glue:text}`y`
    re.compile(r"(?<![`}])(`+)(?!`)(.+?)(?<!`)\1(?!`)"),   # inline code
    re.compile(r"\$\$.+?\$\$|(?<![\\$])\$(?!\$)[^$]+?(?<!\\)\$"),  # maths
    re.compile(r"</?[A-Za-z][^>]*>"),       # HTML tags
]
ROLE = KEPT[0]


def kept_pieces(text):
    pieces = []
    rest = text
    for pattern in KEPT:
        found = [m.group(0) for m in pattern.finditer(rest)]
        pieces += found
        rest = pattern.sub(" ", rest)
    return sorted(pieces)


def test_translations_keep_code_maths_and_roles():
    problems = []
    for doc, catalog in page_catalogs():
        for m in entries(catalog):
            if not m.string:
                continue
            want = kept_pieces(m.id)
            got = kept_pieces(m.string)
            lost = [p for p in want if p not in got]
            extra = [p for p in got if p not in want]
            # A role's link text may be translated: {ref}`text <label>`.
            lost = [p for p in lost if not (ROLE.fullmatch(p) and "<" in p)]
            extra = [p for p in extra if not (ROLE.fullmatch(p) and "<" in p)]
            if lost or extra:
                problems.append(f"{doc}: {m.id[:60]!r}: lost {lost} "
                                f"added {extra}")
    assert not problems, ("translations that changed code, maths, roles or "
                          "markup:\n" + _fmt(problems))


def test_numbers_stay_latin():
    """Numbers are written with Latin digits, as in the code and the maths
    they sit beside (no Persian or Arabic-Indic digits)."""
    digits = re.compile("[\u06f0-\u06f9\u0660-\u0669]")
    problems = [f"{doc}: {m.string[:70]!r}" for doc, catalog in page_catalogs()
                for m in entries(catalog) if digits.search(m.string or "")]
    assert not problems, "Persian digits in translations:\n" + _fmt(problems)


# --------------------------------------------------------------------------
# Terminology
# --------------------------------------------------------------------------

def terminology():
    with open(TERMINOLOGY, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, f"{TERMINOLOGY} is empty"
    terms = []
    for row in rows:
        # "recurrent neural network|recurrent network": English variants
        variants = [v.strip() for v in row["english"].split("|")]
        english = variants[0]
        pattern = re.compile("|".join(
            r"\b" + r"[- ]?".join(map(re.escape, re.split(r"[- ]", v)))
            + r"(?:s|es)?\b" for v in variants), re.IGNORECASE)
        forms = [persian.normalise(f).strip()
                 for f in (row["match"] or row["persian"]).split("|")]
        # The English beside a Persian term may be inflected: "gated".
        beside = re.compile("|".join(
            r"\b" + r"[- ]?".join(map(re.escape, re.split(r"[- ]", v)))
            + r"\w*" for v in variants), re.IGNORECASE)
        terms.append((english, pattern, forms, beside))
    return terms


PROSE_NOISE = [re.compile(p) for p in [
    r"\{[\w:-]+\}`[^`]*`", r"`[^`]*`", r"\$\$.+?\$\$", r"\$[^$]+\$",
    r"<[^>]*>", r"\]\([^)]*\)", r"https?://\S+", r"\([\w-]+\)="]]


def uses(text, forms):
    """Whether `text` uses one of the Persian `forms` as a word or the start
    of one (a form inside a longer word does not count: «توجه» is not used
    in «متوجه»)."""
    return any(re.search(r"(?<![\u0600-\u06ff])" + re.escape(f), text)
               for f in forms)


def prose(text):
    for pattern in PROSE_NOISE:
        text = pattern.sub(" ", text)
    return text


def display_maths(msgid):
    """A displayed equation (MyST's $$...$$ or amsmath block): its message
    is the LaTeX between two newlines, and stays as it is."""
    return msgid.startswith("\n") and msgid.endswith("\n")


def kept_in_english(message):
    return not PERSIAN_LETTER.search(message.string or "")


def checked_for_terms(message):
    """A translation the terminology applies to: in Persian, and not the
    English source's own Persian copied over (the glossary's Persian
    column)."""
    return (bool(message.string) and not kept_in_english(message)
            and message.string != message.id)


def test_terminology_file_is_well_formed():
    terms = terminology()
    englishes = [t[0].lower() for t in terms]
    assert len(englishes) == len(set(englishes)), "a term listed twice"
    for english, _, forms, _ in terms:
        assert all(PERSIAN_LETTER.search(f) for f in forms), \
            f"{english}: a Persian form without Persian letters: {forms}"


def test_key_terms_follow_the_terminology():
    terms = terminology()
    problems = []
    for doc, catalog in page_catalogs():
        for m in entries(catalog):
            if not checked_for_terms(m):
                continue
            source = prose(m.id)
            target = persian.normalise(prose(m.string))
            for english, pattern, forms, _ in terms:
                if pattern.search(source) and not uses(target, forms):
                    problems.append(
                        f"{doc}: '{english}' not translated as "
                        f"{' or '.join(forms)}: {m.string[:70]!r}")
    assert not problems, ("translations off the terminology "
                          f"({TERMINOLOGY.relative_to(ROOT)}):\n"
                          + _fmt(problems))


def test_english_term_beside_the_first_use_in_each_page():
    terms = terminology()
    problems = []
    for doc, catalog in page_catalogs():
        for english, _, forms, beside in terms:
            first = next((m for m in entries(catalog)
                          if checked_for_terms(m)
                          and uses(persian.normalise(prose(m.string)),
                                   forms)), None)
            if first is not None and not beside.search(prose(first.string)):
                problems.append(f"{doc}: first use of {forms[0]} without "
                                f"'({english})': {first.string[:70]!r}")
    assert not problems, ("the English term belongs in parentheses at the "
                          "first use of a key term in each page:\n"
                          + _fmt(problems))


def test_messages_kept_in_english_say_why():
    problems = []
    for doc, catalog in page_catalogs():
        for m in entries(catalog):
            if not m.string or not kept_in_english(m) or display_maths(m.id):
                continue
            words = re.findall(r"[A-Za-z]{3,}", prose(m.id))
            if len(words) >= 2 and not any(
                    "english" in c.lower() for c in m.user_comments):
                problems.append(f"{doc}: {m.id[:70]!r}")
    assert not problems, (
        "messages left in English without a translator's comment saying "
        "why (a line '# English: <reason>' above the entry):\n"
        + _fmt(problems))


# --------------------------------------------------------------------------
# The theme in Persian
# --------------------------------------------------------------------------

def _theme_messages():
    import pydata_sphinx_theme
    import sphinx_book_theme

    pydata = Path(pydata_sphinx_theme.__file__).parent / "locale" / "sphinx.pot"
    book = next(Path(sphinx_book_theme.__file__).parent.rglob(
        "locales/ar/LC_MESSAGES/booktheme.po"))
    return {"sphinx": {m.id for m in load(pydata) if m.id},
            "booktheme": {m.id for m in load(book) if m.id}}


def test_theme_strings_are_translated():
    problems = []
    for domain, ids in _theme_messages().items():
        path = MESSAGES / f"{domain}.po"
        assert path.is_file(), f"no {path.relative_to(ROOT)}"
        catalog = load(path)
        for msgid in sorted(ids):
            key = msgid if isinstance(msgid, str) else msgid[0]
            m = catalog.get(msgid)
            if m is None or not m.string or m.fuzzy or not (
                    PERSIAN_LETTER.search(m.string if isinstance(m.string, str)
                                          else m.string[0])):
                problems.append(f"{domain}: {key!r}")
    assert not problems, "theme strings not in Persian:\n" + _fmt(problems)


# --------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------

def test_search_normalises_arabic_forms_and_the_joiner():
    lang = persian.SearchPersian({})
    # Arabic yeh and kaf, as typed on an Arabic keyboard, index as Persian.
    assert lang.split("\u064a\u0643") == lang.split("\u06cc\u06a9")
    assert persian.normalise("كلي") == "کلی"
    # Diacritics and the ezafe hamza do not change a word.
    assert persian.normalise("دروازهٔ") == "دروازه"
    assert persian.normalise("حافِظه") == "حافظه"
    # A word with a zero-width non-joiner: whole, and by its parts.
    words = lang.split("گرادیان\u200cها ناپدید می\u200cشوند")
    assert "گرادیانها" in words and "گرادیان" in words
    assert "میشوند" in words and "شوند" in words


def test_search_drops_persian_stop_words_and_keeps_terms():
    lang = persian.SearchPersian({})
    kept = [w for w in lang.split("دروازه فراموشی در این فصل و از آن")
            if lang.word_filter(lang.stem(w))]
    assert kept == ["دروازه", "فراموشی", "فصل"]
    # Latin words are stemmed as in the English edition.
    assert lang.stem("gates") == lang.stem("gate")


# --------------------------------------------------------------------------
# After the Persian build
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_persian_build_translated_every_message(skip_or_fail):
    """The catalogs are up to date with the English text: the Persian build
    (make book) found a translation for every message of every translated
    page."""
    if not UNTRANSLATED.is_file():
        skip_or_fail(f"no {UNTRANSLATED.relative_to(ROOT)}: the Persian edition is not "
                     "built (make book)")
    report = json.loads(UNTRANSLATED.read_text(encoding="utf-8"))
    problems = [f"{doc}: {msg[:80]!r}" for doc, msgs in report.items()
                for msg in msgs]
    assert not problems, (
        f"{len(problems)} messages of the English text have no Persian "
        "translation (run `make catalogs`, translate, rebuild):\n"
        + _fmt(problems))
