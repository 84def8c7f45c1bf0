"""The Persian edition of the book: search, right-to-left pages, the links
between the two editions.

Loaded by both builds (_config.yml: sphinx local_extensions). The English
edition is built into _build/html, the Persian one (language "fa", the
translations in locale/fa/LC_MESSAGES, _config.fa.yml) into _build/html/fa;
scripts/build_book_fa.py runs the Persian build.

- Every page links to the same page in the other edition: a link at the
  top of the article and a <link rel="alternate" hreflang> in its head.
- A search language for Persian (``fa``): the index and the query are
  normalised alike (Arabic yeh and kaf to their Persian forms, diacritics
  and tatweel dropped), a word written with a zero-width non-joiner
  (می‌شود) is indexed whole and by its parts, so that a query typed with
  or without the joiner finds it, and the commonest Persian stop words are
  left out. Latin words go through the English stemmer, as in the English
  edition.
- Persian pages: ``dir="rtl"`` on <html>, the stylesheet persian.css (the
  layout mirrored with logical properties; code, math, outputs and tables of
  numbers kept left to right) and the bundled Vazirmatn font (SIL OFL,
  _ext/static/fonts; the English edition loads it too, for the Persian of
  its glossary, and the browser fetches it only for Persian letters). A run
  of Latin words inside Persian text is a bidi isolate (span.latin), so a
  line break inside "(forget gate)" keeps its words in order.
- Alt text of every image is translated, figures that notebook cells make
  included (Sphinx alone leaves those out of the catalogs).
- Pages that stay English in the Persian edition (persian_english_only in
  _config.fa.yml: the exercises' notebooks, the instructor guide) get no
  catalog; their Persian page says so in Persian above the English text,
  which keeps its left-to-right layout.
- Numbers glued into the text ({glue:text} roles) work in translations
  too: the roles read the page's glue data.
- Kept in step: the Persian build records every message of a translated
  page that its catalog does not translate (a sentence added to the English
  text since the catalog was last updated) in _build/.fa/untranslated.json,
  which tests/book/test_catalogs.py reads.
- The theme's strings in Persian: Sphinx and pydata-sphinx-theme read
  locale/fa/LC_MESSAGES/sphinx.po, sphinx-book-theme its own catalog,
  booktheme.po, compiled here since the theme ships none for Persian; the
  search page's strings that Sphinx's own Persian leaves in English go into
  the page's translations.js.
"""

import fnmatch
import json
import re
import uuid
from pathlib import Path

from docutils import nodes
from sphinx.search.en import SearchEnglish
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.i18n import CatalogInfo, docname_to_domain
from sphinx.util.nodes import extract_messages, traverse_parent

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOCALE = ROOT / "locale"

PERSIAN = "fa"
# Where each edition lives, relative to the site's root (_build/html).
EDITION_DIRS = {"en": "", PERSIAN: "fa/"}
EDITION_NAMES = {"en": "English", PERSIAN: "فارسی"}
LINK_TEXT = {"en": "Read this page in Persian:",
             PERSIAN: "این صفحه به انگلیسی:"}

# --------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------

ZWNJ = "\u200c"
PERSIAN_LETTER = re.compile("[\u0600-\u06ff]")
# Arabic letters typed for their Persian forms, and the marks a query may or
# may not carry (fathatan..sukun, superscript alef, hamza above, tatweel).
_FOLD = str.maketrans({"\u064a": "\u06cc", "\u0649": "\u06cc",
                       "\u0643": "\u06a9", "\u0629": "\u0647"})
_MARKS = re.compile("[\u064b-\u065f\u0670\u0640]")
_WORD = re.compile(r"[\w\u200c]+")

# The commonest Persian function words, normalised as the index is.
PERSIAN_STOPWORDS = set("""
و در به از که این آن را با است برای یک تا هم بر نیز یا اما می نمی
ها های هر خود ما او شود شده کند کرد بود باشد دارد شد نه اگر پس چه
همه ای آنها اینها هست بین روی زیر پیش پیش از چون ولی بی
""".split())


def normalise(text):
    """The form in which the index stores Persian text (and the query)."""
    text = _MARKS.sub("", text.translate(_FOLD))
    return text.replace("\u200d", "").replace("\u00a0", " ")


def split_words(text):
    """Words of `text`, normalised; one written with a zero-width
    non-joiner counts whole (joined) and by its parts."""
    words = []
    for token in _WORD.findall(normalise(text)):
        parts = [p for p in token.split(ZWNJ) if p]
        if not parts:
            continue
        words.append("".join(parts))
        if len(parts) > 1:
            words.extend(parts)
    return words


# The same in the browser: the query is split and normalised as the index
# was, and Persian words are kept as they are (no stemming); Latin words go
# through the English Porter stemmer of the English edition.
JS_SPLITTER = r"""
function splitQuery(query) {
  const folded = query
    .replace(/[\u064a\u0649]/g, '\u06cc').replace(/\u0643/g, '\u06a9')
    .replace(/\u0629/g, '\u0647')
    .replace(/[\u064b-\u065f\u0670\u0640\u200d]/g, '')
    .replace(/\u200c/g, '');
  return folded.split(/[^\p{Letter}\p{Number}_\p{Emoji_Presentation}]+/gu)
    .filter(term => term);
}
"""

JS_STEMMER_WRAPPER = r"""
// Persian and Arabic forms folded alike (the zero-width non-joiner kept):
// applied to the query and to the index's section titles, so that a query
// typed without the ezafe mark or with Arabic letters finds a title as a
// phrase.
function foldPersian(s) {
  return s.replace(/[يى]/g, 'ی').replace(/ك/g, 'ک')
    .replace(/ة/g, 'ه').replace(/[ً-ٰٟـ‍]/g, '');
}
if (typeof Search !== "undefined") {
  const setIndex = Search.setIndex;
  Search.setIndex = (index) => {
    if (index && index.alltitles) {
      const folded = {};
      for (const [title, where] of Object.entries(index.alltitles)) {
        const key = foldPersian(title);
        folded[key] = (folded[key] || []).concat(where);
      }
      index.alltitles = folded;
    }
    return setIndex(index);
  };
  const performSearch = Search._performSearch;
  if (performSearch) {
    Search._performSearch = (query, ...rest) =>
      performSearch(foldPersian(query), ...rest);
  }
}
var PorterStemmer = Stemmer;
Stemmer = function() {
  const porter = new PorterStemmer();
  this.stemWord = function(w) {
    return /^[\x00-\x7f]+$/.test(w) ? porter.stemWord(w) : w;
  };
};
"""


class SearchPersian(SearchEnglish):
    """Persian search: normalised words, ZWNJ-aware, Persian stop words."""

    lang = PERSIAN
    language_name = "Persian"
    stopwords = SearchEnglish.stopwords | PERSIAN_STOPWORDS
    js_splitter_code = JS_SPLITTER
    js_stemmer_code = SearchEnglish.js_stemmer_code + JS_STEMMER_WRAPPER

    def split(self, input):
        return split_words(input)

    def stem(self, word):
        if word.isascii():
            return super().stem(word)
        return normalise(word)

    def word_filter(self, word):
        return bool(word) and word not in self.stopwords


# --------------------------------------------------------------------------
# The two editions
# --------------------------------------------------------------------------

def _edition(app):
    return PERSIAN if app.config.language == PERSIAN else "en"


def counterpart(pagename, edition):
    """(language, URL relative to the page) of `pagename` in the other
    edition."""
    other = "en" if edition == PERSIAN else PERSIAN
    depth = pagename.count("/") + (1 if edition == PERSIAN else 0)
    return other, "../" * depth + EDITION_DIRS[other] + pagename + ".html"


def _link_editions(app, pagename, templatename, context, doctree):
    if app.builder.name != "html" or doctree is None:
        return  # search, index: no counterpart worth a link
    edition = _edition(app)
    other, url = counterpart(pagename, edition)
    direction = "rtl" if other == PERSIAN else "ltr"
    context["metatags"] = context.get("metatags", "") + (
        f'\n<link rel="alternate" hreflang="{other}" href="{url}">')
    link = (f'<p class="edition-switch">{LINK_TEXT[edition]} '
            f'<a class="edition-link" href="{url}" hreflang="{other}" '
            f'lang="{other}" dir="{direction}">{EDITION_NAMES[other]}</a></p>\n')
    context["body"] = link + context.get("body", "")


_HTML_TAG = re.compile(r"<html\b([^>]*)>")


def _right_to_left(app, exception):
    """dir="rtl" on every page of the Persian edition."""
    if (exception is not None or app.builder.name != "html"
            or _edition(app) != PERSIAN):
        return

    def add_dir(match):
        # The forwarding page at the edition's root is written in English
        # by _ext/website.py.
        attrs = match.group(1).replace('lang="en"', 'lang="fa"')
        if "dir=" in attrs:
            return f"<html{attrs}>"
        return f'<html{attrs} dir="rtl">'

    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = _HTML_TAG.sub(add_dir, text, count=1)
        if new != text:
            page.write_text(new, encoding="utf-8")


ENGLISH_ONLY_NOTE = (
    '<div class="admonition note english-only" lang="fa" dir="rtl">\n'
    '<p class="admonition-title">یادداشت</p>\n<p>{text}</p>\n</div>\n')
ENGLISH_ONLY_TEXT = {
    "book/instructor_guide": "راهنمای مدرس برای کادر آموزشی دوره است و به "
                             "انگلیسی می‌ماند: انتشار تمرین‌ها، گردآوری و "
                             "نمره‌دهی خودکار پاسخ‌ها و آزمون‌های آن. متن "
                             "انگلیسی در ادامه می‌آید.",
    "exercises/": "دفترچه‌های تمرین فعلاً به انگلیسی‌اند. شرح فارسی هر تمرین "
                  "در صفحهٔ «تمرین‌ها» آمده است؛ متن انگلیسی تمرین در ادامه "
                  "می‌آید.",
    "": "این صفحه فعلاً فقط به انگلیسی است و متن انگلیسی آن در ادامه "
        "می‌آید.",
}


def english_only(config, docname):
    return any(fnmatch.fnmatch(docname, pattern)
               for pattern in config.persian_english_only)


def _english_only_page(app, pagename, templatename, context, doctree):
    """A page that stays English in the Persian edition says so in Persian
    and keeps its English text left to right."""
    if (doctree is None or _edition(app) != PERSIAN
            or not english_only(app.config, pagename)):
        return
    text = next(v for k, v in ENGLISH_ONLY_TEXT.items()
                if pagename.startswith(k))
    context["body"] = (ENGLISH_ONLY_NOTE.format(text=text)
                       + '<div lang="en" dir="ltr">\n'
                       + context.get("body", "") + "</div>\n")


def _translated_message(document):
    """Sphinx parses each translation as a small document of its own."""
    return str(document.get("source", "")).endswith(":<translated>")


# Glue in translations: Sphinx parses a translated paragraph as a document
# of its own (plain MyST, not a notebook), which has none of the page's
# glue data, so a {glue:text} role in a translation would find no value.
# The glue roles then read the page's glue data from the file myst-nb wrote
# for the page (<output folder>/<docname>.glue.json). Only {glue:text} is
# used in the book's prose; it needs the value, not a notebook renderer.
def _glue_from_the_page():
    try:
        from myst_nb.core.variables import VariableOutput
        from myst_nb.ext.glue import roles, utils
    except ImportError:
        return
    original = utils.retrieve_glue_data
    if getattr(roles.retrieve_glue_data, "persian_edition", False):
        return

    def retrieve_glue_data(document, key):
        try:
            return original(document, key)
        except utils.RetrievalError:
            env = getattr(document.settings, "env", None)
            config = getattr(env, "mystnb_config", None)
            if config is None or not _translated_message(document):
                raise
            saved = Path(config.output_folder,
                         *f"{env.docname}.glue.json".split("/"))
            glue = (json.loads(saved.read_text(encoding="utf-8"))
                    if saved.is_file() else {})
            if key not in glue:
                raise
            return VariableOutput(data=glue[key]["data"],
                                  metadata=glue[key].get("metadata", {}),
                                  nb_renderer=document.get("nb_renderer"),
                                  vtype="glue")

    retrieve_glue_data.persian_edition = True
    roles.retrieve_glue_data = retrieve_glue_data


# A run of Latin words inside Persian text ("(long short-term memory)"):
# when a line breaks inside it, the bidirectional algorithm reorders its
# pieces across the two lines. Wrapped in an isolate (span.latin, see
# persian.css) it reads left to right on each line, and its parentheses
# stay with it.
_LATIN_RUN = re.compile(
    r"[A-Za-z][A-Za-z0-9'’.,:;/+=-]*(?: [A-Za-z0-9'’.,:;/+=-]+)+")
_NO_ISOLATE = (nodes.literal, nodes.literal_block, nodes.math,
               nodes.math_block, nodes.raw, nodes.FixedTextElement)


class IsolateLatinRuns(SphinxPostTransform):
    default_priority = 900
    builders = ("html",)

    def run(self, **kwargs):
        if self.config.language != PERSIAN or english_only(
                self.config, self.env.docname):
            return
        # A link whose text is a Latin phrase (a citation such as
        # "Hochreiter and Schmidhuber, 1997") is isolated as a whole.
        for ref in self.document.findall(nodes.reference):
            label = ref.astext()
            if (" " in label.strip() and _LATIN_RUN.search(label)
                    and not PERSIAN_LETTER.search(label)):
                ref["classes"].append("latin")
        for text in list(self.document.findall(nodes.Text)):
            parent = text.parent
            if parent is None or any(isinstance(p, _NO_ISOLATE)
                                     for p in traverse_parent(parent)):
                continue
            value = str(text)
            if not PERSIAN_LETTER.search(value):
                continue
            pieces, last = [], 0
            for match in _LATIN_RUN.finditer(value):
                start, run = match.start(), match.group(0).rstrip(".,:;")
                if " " not in run or start < last:
                    continue
                end = start + len(run)
                # Parentheses around the phrase go with it, left to right.
                if (start > 0 and value[start - 1] == "("
                        and value[end:end + 1] == ")"):
                    start, end = start - 1, end + 1
                    run = value[start:end]
                pieces.append(nodes.Text(value[last:start]))
                pieces.append(nodes.inline(run, run, classes=["latin"]))
                last = end
            if not pieces:
                continue
            pieces.append(nodes.Text(value[last:]))
            index = parent.index(text)
            parent.remove(text)
            for offset, piece in enumerate(p for p in pieces
                                           if not isinstance(p, nodes.Text)
                                           or str(p)):
                parent.insert(index + offset, piece)


_NOT_WORDS = re.compile(r"\{[\w:-]+\}`[^`]*`|`[^`]*`|\$[^$]*\$|<[^>]*>")


def _has_words(msg):
    """Whether a message has words to translate (two Latin letters in a
    row outside roles, code, maths and markup)."""
    return bool(re.search(r"[A-Za-z]{2}", _NOT_WORDS.sub(" ", msg)))


class RecordUntranslated(SphinxTransform):
    """After Sphinx's Locale transform: which messages of this page did its
    catalog leave untranslated?"""

    default_priority = 21

    def apply(self, **kwargs):
        if (self.config.language != PERSIAN
                or self.app.builder.name == "gettext"
                or _translated_message(self.document)):
            return
        docname = self.env.docname
        if english_only(self.config, docname):
            return
        domain = docname_to_domain(docname, self.config.gettext_compact)
        catalogs = [Path(self.env.srcdir, d, PERSIAN, "LC_MESSAGES",
                         domain + ".po") for d in self.config.locale_dirs]
        if not any(c.is_file() for c in catalogs):
            missing = [f"no catalog {domain}.po"]
        else:
            # The front matter (docinfo, a field list) is metadata, never
            # shown nor extracted into the catalogs; images' alt text is
            # checked once the page is resolved (_translate_alt_text).
            # Numbers and symbols alone (a table of timings measured at
            # build time) read the same in Persian.
            missing = [msg for node, msg in extract_messages(self.document)
                       if node.get("translated") is False
                       and _has_words(msg)
                       and not isinstance(node, nodes.image)
                       and not any(isinstance(p, (nodes.docinfo,
                                                  nodes.field_list))
                                   for p in traverse_parent(node))]
        store = self.env.__dict__.setdefault("persian_untranslated", {})
        store.pop(docname, None)
        if missing:
            store[docname] = list(dict.fromkeys(missing))


def _page_catalog(app, docname):
    from sphinx.locale import init as init_locale

    domain = docname_to_domain(docname, app.config.gettext_compact)
    dirs = [str(Path(app.srcdir, d)) for d in app.config.locale_dirs]
    catalog, has_catalog = init_locale(dirs, app.config.language, domain)
    return catalog if has_catalog else None


def _translate_alt_text(app, doctree, docname):
    """Alt text of every image, figures made by notebook cells included.

    Sphinx translates the alt text of images written in the page, but not of
    images that a notebook's output or a glue figure adds to the page: the
    message templates leave them out (they have no uid), and they are not
    there yet when the page is translated. Here, in a gettext build, they
    get a uid so that their alt text joins the page's messages; in the
    Persian build their alt text is translated from the page's catalog, and
    an alt text still in English is recorded as untranslated. Text without
    words (cells of numbers) is kept out of the message templates."""
    if app.builder.name == "gettext":
        for image in doctree.findall(nodes.image):
            if image.get("alt") and not hasattr(image, "uid"):
                image.uid = uuid.uuid4().hex
                image.source = image.source or doctree.get("source")
        # Cells of numbers (timings measured at build time) read the same
        # in Persian: kept out of the catalogs, which they would churn.
        for node in doctree.findall(nodes.TextElement):
            if "translatable" not in node and not _has_words(node.astext()):
                node["translatable"] = False
        return
    if (_edition(app) != PERSIAN or app.builder.name != "html"
            or english_only(app.config, docname)):
        return
    catalog = _page_catalog(app, docname)
    missing = []
    for image in doctree.findall(nodes.image):
        alt = image.get("alt")
        if not alt or PERSIAN_LETTER.search(alt):
            continue
        persian = catalog.gettext(alt) if catalog else alt
        if persian != alt and persian.strip():
            image["alt"] = persian
        else:
            missing.append(alt)
    store = app.__dict__.setdefault("persian_untranslated_alt", {})
    store[docname] = missing


def _translate_toctree_captions(app, doctree):
    """The captions of the table of contents ("Chapters"...), which
    sphinx-external-toc inserts after Sphinx has translated the page."""
    if _edition(app) != PERSIAN:
        return
    from sphinx import addnodes

    toctrees = [t for t in doctree.findall(addnodes.toctree) if t.get("caption")]
    if not toctrees:
        return
    catalog = _page_catalog(app, app.env.docname)
    for toctree in toctrees:
        if catalog is not None:
            toctree["caption"] = catalog.gettext(toctree["caption"])


def _purge(app, env, docname):
    getattr(env, "persian_untranslated", {}).pop(docname, None)


def _merge(app, env, docnames, other):
    store = env.__dict__.setdefault("persian_untranslated", {})
    store.update(getattr(other, "persian_untranslated", {}))


def _write_untranslated(app, exception):
    if (exception is not None or _edition(app) != PERSIAN
            or app.builder.name != "html"):
        return
    store = dict(getattr(app.env, "persian_untranslated", {}))
    for doc, alts in app.__dict__.get("persian_untranslated_alt", {}).items():
        if alts:
            store[doc] = list(dict.fromkeys(store.get(doc, []) + alts))
    report = Path(app.doctreedir).parent / "untranslated.json"
    report.write_text(json.dumps(
        {doc: store[doc] for doc in sorted(store) if doc in app.env.all_docs},
        ensure_ascii=False, indent=1), encoding="utf-8")


_TRANSLATIONS = re.compile(r"(Documentation\.addTranslations\()(.*)(\);)",
                           re.S)


def _complete_js_translations(app, exception):
    """Sphinx's Persian translations.js leaves a few strings of the search
    page in English ("Search finished, found N page(s)..."): the page's copy
    gets them from locale/fa/LC_MESSAGES/sphinx.po."""
    if (exception is not None or app.builder.name != "html"
            or _edition(app) != PERSIAN):
        return
    from babel.messages.pofile import read_po

    js = Path(app.outdir, "_static", "translations.js")
    po = LOCALE / PERSIAN / "LC_MESSAGES" / "sphinx.po"
    match = _TRANSLATIONS.search(js.read_text(encoding="utf-8")) \
        if js.is_file() else None
    if match is None or not po.is_file():
        return
    data = json.loads(match.group(2))
    with open(po, "rb") as f:
        ours = {m.id: m.string for m in read_po(f) if m.id and m.string}
    data["messages"].update(ours)
    js.write_text(match.group(1) + json.dumps(data, ensure_ascii=False,
                                              indent=1) + match.group(3) + "\n",
                  encoding="utf-8")


def _forget_js_translations(app):
    """Sphinx copies its translations.js afresh on every build and warns
    when it would overwrite a changed copy: the completed copy of the last
    build goes first."""
    if _edition(app) == PERSIAN:
        Path(app.outdir, "_static", "translations.js").unlink(missing_ok=True)


def _configure(app, config):
    static = str(HERE / "static")
    if static not in config.html_static_path:
        config.html_static_path.append(static)


def _theme_catalog(app):
    """sphinx-book-theme's strings in Persian (it ships no Persian)."""
    catalog = CatalogInfo(str(LOCALE / PERSIAN / "LC_MESSAGES"), "booktheme",
                          "utf-8")
    if Path(catalog.po_path).is_file():
        if catalog.is_outdated():
            catalog.write_mo(PERSIAN)
        app.add_message_catalog("booktheme", str(LOCALE))


def setup(app):
    app.add_config_value("persian_english_only", [], "env")
    app.add_search_language(SearchPersian)
    app.add_transform(RecordUntranslated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _translate_alt_text)
    # Before Sphinx's table-of-contents collector reads the captions.
    app.connect("doctree-read", _translate_toctree_captions, priority=400)
    app.connect("html-page-context", _english_only_page)
    app.connect("build-finished", _write_untranslated)
    app.connect("config-inited", _configure)
    app.add_css_file("vazirmatn.css")
    if app.config.language == PERSIAN:
        app.add_css_file("persian.css")
        _theme_catalog(app)
        app.add_post_transform(IsolateLatinRuns)
        _glue_from_the_page()
    app.connect("html-page-context", _link_editions)
    app.connect("build-finished", _right_to_left)
    app.connect("builder-inited", _forget_js_translations)
    app.connect("build-finished", _complete_js_translations)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
