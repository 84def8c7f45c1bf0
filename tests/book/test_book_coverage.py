"""The book's sources and built site: coverage of the source articles,
cross-references, citations, the notation appendix and the glossary.

topics.md lists every topic of the two source articles (28 rows, R1..R15 with
R9b, and L1..L12). It is read from ../shared/seeds/topics.md next to the
repository when that exists, else from the copy in tests/data/topics.md.
The coverage appendix must list each row, link it to sections that exist and,
for rows marked "E:", to a graded exercise that exists.

The built-site checks run on _build/html (or $BOOK_HTML) when it exists
(`make test` builds the book before running pytest): nothing from solutions/ and no hidden tests
may be published, every executed figure must be there.
"""

import importlib
import importlib.util
import inspect
import json
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
SHARED_TOPICS = ROOT.parent / "shared" / "seeds" / "topics.md"
LOCAL_TOPICS = ROOT / "tests" / "data" / "topics.md"
COVERAGE = BOOK / "appendix_coverage.md"
# the built site; BOOK_HTML points elsewhere (e.g. a build with --path-output)
SITE = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))

ROW_ID = r"R\d+b?|L\d+"
ROLE = re.compile(r"\{(ref|numref|doc|eq|cite|cite:p|cite:t)\}`([^`]*)`")
REQUIRED_BIB_KEYS = {
    "rumelhart1986", "hochreiter1997", "schuster1997", "bengio1994",
    "pascanu2013", "cho2014", "greff2017", "graves2013", "sutskever2014",
    "vaswani2017", "diamos2016", "appleyard2016", "elman1990", "werbos1990",
    "chung2014", "zhang2023d2l", "karpathy2015",
}
ARABIC_SCRIPT = re.compile(r"[\u0600-\u06FF\uFB50-\uFDFF\uFE70-\uFEFF]")


# ---------------------------------------------------------------- helpers

def topics_file():
    return SHARED_TOPICS if SHARED_TOPICS.is_file() else LOCAL_TOPICS


def table_rows(text):
    """Cells of every markdown table row whose first cell is a topic id."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and re.fullmatch(ROW_ID, cells[0]):
            rows.append(cells)
    return rows


def topic_rows():
    return table_rows(topics_file().read_text(encoding="utf-8"))


def coverage_rows():
    text = COVERAGE.read_text(encoding="utf-8")
    # only the "Topics" table: from its heading to the next heading
    section = text.split("## Topics", 1)[1].split("\n## ", 1)[0]
    return table_rows(section)


def book_sources():
    """The book's Markdown pages that _toc.yml publishes."""
    listed = toc_files()
    return sorted(p for p in BOOK.glob("*.md")
                  if p.relative_to(ROOT).with_suffix("").as_posix() in listed)


def toc_files():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    return set(re.findall(r"file:\s*(\S+)", toc))


def defined_labels():
    """Section labels `(name)=`, directive `:name:` options and equation
    labels `$$ ... $$ (name)` in the book, plus labels in notebooks."""
    labels = set()
    texts = [p.read_text(encoding="utf-8") for p in book_sources()]
    for nb in ROOT.glob("exercises/*/*.ipynb"):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        texts += ["".join(c["source"]) for c in cells
                  if c["cell_type"] == "markdown"]
    for text in texts:
        labels |= set(re.findall(r"(?m)^\(([^()\s]+)\)=\s*$", text))
        labels |= set(re.findall(r"(?m)^:name:\s*(\S+)\s*$", text))
        labels |= set(re.findall(r"(?m)\$\$\s*\(([^()\s]+)\)\s*$", text))
    return labels


def role_target(text):
    """`title <target>` -> target; `target` -> target."""
    m = re.fullmatch(r"(?s).*<([^<>]+)>\s*", text)
    return (m.group(1) if m else text).strip()


def doc_exists(target, source):
    """A {doc} target (absolute from the root, or relative to the source)."""
    base = ROOT if target.startswith("/") else source.parent
    path = (base / target.lstrip("/")).resolve()
    rel = path.relative_to(ROOT).as_posix()
    found = [path.with_suffix(s) for s in (".md", ".ipynb")
             if path.with_suffix(s).is_file()]
    return bool(found) and rel in toc_files()


def bib_keys():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    return re.findall(r"(?m)^@\w+\{([^,\s]+),", bib)


# ------------------------------------------------------- topics.md itself

def test_topics_has_the_28_rows():
    ids = [row[0] for row in topic_rows()]
    assert len(ids) == 28, ids
    assert len(set(ids)) == 28, f"duplicate ids in {topics_file()}"
    assert {f"R{i}" for i in range(1, 16)} | {"R9b"} | \
        {f"L{i}" for i in range(1, 13)} == set(ids)


def test_local_copy_of_topics_matches_the_shared_one():
    if not SHARED_TOPICS.is_file():
        pytest.skip(f"{SHARED_TOPICS} is not present next to this checkout")
    assert LOCAL_TOPICS.read_text(encoding="utf-8") == \
        SHARED_TOPICS.read_text(encoding="utf-8"), \
        "tests/data/topics.md is out of date: copy ../shared/seeds/topics.md"


# ------------------------------------------------------ the coverage table

def test_every_topic_row_is_in_the_coverage_table_once():
    expected = [row[0] for row in topic_rows()]
    found = [row[0] for row in coverage_rows()]
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    assert not missing, f"topics missing from the coverage table: {missing}"
    assert not extra, f"coverage rows that are not in topics.md: {extra}"
    dupes = sorted({i for i in found if found.count(i) > 1})
    assert not dupes, f"rows listed twice: {dupes}"


def test_every_coverage_row_links_to_a_section_that_exists():
    labels = defined_labels()
    for row in coverage_rows():
        assert len(row) == 4, f"{row[0]}: expected 4 cells, found {len(row)}"
        section_cell = row[2]
        links = ROLE.findall(section_cell)
        assert links, f"{row[0]}: no {{ref}} or {{doc}} link in {section_cell!r}"
        for role, text in links:
            target = role_target(text)
            if role == "doc":
                assert doc_exists(target, COVERAGE), f"{row[0]}: no page {target}"
            else:
                assert role == "ref", f"{row[0]}: use {{ref}}, not {{{role}}}"
                assert target in labels, f"{row[0]}: no section labelled {target!r}"


def test_rows_marked_e_link_to_an_exercise_that_exists():
    marked = {row[0] for row in topic_rows() if "E:" in row[-1]}
    assert marked, "topics.md marks no row with 'E:'"
    rows = {row[0]: row for row in coverage_rows()}
    for rid in sorted(marked):
        cell = rows[rid][3]
        targets = [role_target(t) for r, t in ROLE.findall(cell) if r == "doc"]
        exercises = [t for t in targets if t.startswith("/exercises/")]
        assert exercises, f"{rid} is marked E in topics.md but has no exercise"
        for t in exercises:
            assert (ROOT / (t.lstrip("/") + ".ipynb")).is_file(), \
                f"{rid}: no notebook {t}.ipynb"
            assert doc_exists(t, COVERAGE), f"{rid}: {t} is not in _toc.yml"


# ------------------------------------------- cross-references, citations

def test_every_reference_in_the_book_resolves():
    labels = defined_labels()
    problems = []
    for path in book_sources():
        for role, text in ROLE.findall(path.read_text(encoding="utf-8")):
            target = role_target(text)
            if role in ("ref", "numref", "eq") and target not in labels:
                problems.append(f"{path.name}: {{{role}}}`{target}`")
            if role == "doc" and not doc_exists(target, path):
                problems.append(f"{path.name}: {{doc}}`{target}`")
    assert not problems, "unresolved references:\n" + "\n".join(problems)


def test_bibliography_has_the_required_entries_and_every_citation():
    keys = bib_keys()
    assert len(keys) == len(set(keys)), "duplicate keys in references.bib"
    missing = REQUIRED_BIB_KEYS - set(keys)
    assert not missing, f"references.bib lacks {sorted(missing)}"
    cited = set()
    for path in book_sources():
        for role, text in ROLE.findall(path.read_text(encoding="utf-8")):
            if role.startswith("cite"):
                cited |= {k.strip() for k in text.split(",")}
    assert cited, "the book cites nothing"
    assert not cited - set(keys), f"cited but not in references.bib: {cited - set(keys)}"


def test_one_bibliography_directive_in_the_references_appendix():
    where = [p.name for p in book_sources()
             for _ in re.findall(r"```\{bibliography\}",
                                 p.read_text(encoding="utf-8"))]
    assert where == ["appendix_references.md"], where


# ------------------------------------------------------------- appendices

NOTATION_MODULES = ["activations", "rnn", "lstm", "gru", "bidirectional",
                    "layers", "model", "interop", "losses", "optim", "train",
                    "gradcheck", "analysis", "data"]


def test_notation_appendix_lists_every_lstmlib_function():
    text = (BOOK / "appendix_notation.md").read_text(encoding="utf-8")
    missing = []
    for name in NOTATION_MODULES:
        module = importlib.import_module(f"lstmlib.{name}")
        for attr, obj in vars(module).items():
            if attr.startswith("_"):
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            if not re.search(rf"`(lstmlib\.\w+\.)?{re.escape(attr)}`", text):
                missing.append(f"lstmlib.{name}.{attr}")
    assert not missing, "not in the notation appendix: " + ", ".join(missing)


def test_glossary_marks_every_persian_entry_right_to_left():
    text = (BOOK / "appendix_glossary.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| English")]
    assert len(rows) >= 40, f"only {len(rows)} glossary entries"
    span = re.compile(r'<span dir="rtl" lang="fa">([^<]+)</span>')
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, line
        m = span.fullmatch(cells[1])
        assert m, f"Persian cell not wrapped in an rtl span: {cells[1]!r}"
        assert ARABIC_SCRIPT.search(m.group(1)), f"no Persian text in {cells[1]!r}"
        assert not ARABIC_SCRIPT.search(cells[0]), cells[0]
        assert ROLE.search(cells[2]), f"no section link for {cells[0]!r}"
    # no Persian text anywhere outside a right-to-left element
    rtl = re.compile(r'<(span|p) dir="rtl" lang="fa">[^<]+</\1>')
    assert not ARABIC_SCRIPT.search(rtl.sub("", text))


# ---------------------------------------------------------- the built site

def built_site():
    if not (SITE / "index.html").is_file():
        pytest.skip("the book is not built (_build/html); `make test` builds it")
    return SITE


def test_site_publishes_nothing_from_solutions_or_hidden_tests():
    site = built_site()
    assert not (site / "solutions").exists()
    assert not list(site.glob("**/solutions/**"))
    offenders = []
    for path in site.rglob("*"):
        if path.suffix not in (".html", ".ipynb", ".md", ".txt", ".js", ".json", ".py"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            if marker in text:
                offenders.append(f"{path.relative_to(site)}: {marker}")
    assert not offenders, "\n".join(offenders)


def test_site_has_every_page_of_the_toc():
    site = built_site()
    missing = [f for f in sorted(toc_files())
               if not (site / f"{f}.html").is_file()]
    assert not missing, f"pages not built: {missing}"


def test_executed_chapters_show_every_figure():
    """Each glued figure of an executed chapter is in its page, as an image
    with a caption: the chapter's code ran at build time."""
    site = built_site()
    checked = 0
    for src in book_sources():
        text = src.read_text(encoding="utf-8")
        if "kernelspec:" not in text:
            continue
        names = re.findall(r"```\{glue:figure\}\s+(\S+)", text)
        page = (site / "book" / f"{src.stem}.html").read_text(encoding="utf-8")
        for name in names:
            m = re.search(rf'<figure[^>]*id="{re.escape(name)}"(.*?)</figure>',
                          page, re.S)
            assert m, f"{src.name}: figure {name} missing from the page"
            assert "<img" in m.group(1), f"{src.name}: figure {name} has no image"
            assert "<figcaption" in m.group(1), f"{src.name}: {name} has no caption"
            checked += 1
    assert checked >= 7, f"only {checked} executed figures found"


def test_glossary_page_renders_persian_right_to_left():
    site = built_site()
    page = (site / "book" / "appendix_glossary.html").read_text(encoding="utf-8")
    spans = re.findall(r'<span dir="rtl" lang="fa">([^<]+)</span>', page)
    assert len(spans) >= 40
    assert all(ARABIC_SCRIPT.search(s) for s in spans)


# ------------------------------------------------------------ diagrams

FIGURES = BOOK / "figures"
DIAGRAMS = BOOK / "scripts" / "diagrams.py"
# every script that writes into book/figures (each takes --out FOLDER)
FIGURE_SCRIPTS = (DIAGRAMS,)
# a {figure} directive: its path and its options (":key: value" lines)
FIGURE_DIRECTIVE = re.compile(
    r"^(`{3,}|:{3,})\{(figure|glue:figure)\}\s+(\S+)\s*\n((?::[\w-]+:.*\n)*)",
    re.M)
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.M | re.S)


def figure_directives(text):
    """(kind, target, options) for every figure and glued figure."""
    found = []
    for m in FIGURE_DIRECTIVE.finditer(text):
        options = dict(re.findall(r"^:([\w-]+):\s*(.*)$", m.group(4), re.M))
        found.append((m.group(2), m.group(3), options))
    return found


def meaningful_alt(alt):
    """Alt text that describes: words, not a file name or a hash."""
    alt = (alt or "").strip()
    return (len(alt) >= 25 and len(alt.split()) >= 5
            and not re.search(r"\.(svg|png|jpe?g|gif)\b", alt, re.I)
            and not re.fullmatch(r"[0-9a-f]{16,}", alt))


def test_diagrams_are_up_to_date_with_their_source(tmp_path):
    """Regenerating book/figures from its scripts (diagrams.py and the
    others in FIGURE_SCRIPTS) changes nothing, and every committed SVG comes
    from one of them."""
    import subprocess
    import sys
    for script in FIGURE_SCRIPTS:
        subprocess.run([sys.executable, str(script), "--out", str(tmp_path)],
                       check=True, capture_output=True, text=True, timeout=300)
    fresh = {p.name: p.read_bytes() for p in tmp_path.glob("*.svg")}
    committed = {p.name: p.read_bytes() for p in FIGURES.glob("*.svg")}
    assert fresh, "the diagram script wrote no SVG"
    assert sorted(committed) == sorted(fresh), (
        f"book/figures differs from the script's figures: only committed "
        f"{sorted(set(committed) - set(fresh))}, only generated "
        f"{sorted(set(fresh) - set(committed))}")
    stale = sorted(n for n in fresh if fresh[n] != committed[n])
    assert not stale, (f"out of date: {stale}; run the scripts in "
                       "FIGURE_SCRIPTS (book/scripts/) and commit")
    big = sorted(n for n, b in committed.items() if len(b) > 200_000)
    assert not big, f"SVGs over 200 kB: {big}"


def test_every_figure_exists_and_has_alt_text():
    """Each {figure} names a file that exists; each figure and glued figure
    carries alt text that says what it shows, and a name."""
    problems, used = [], set()
    for path in book_sources():
        for kind, target, opts in figure_directives(
                path.read_text(encoding="utf-8")):
            where = f"{path.name}: {kind} {target}"
            if kind == "figure":
                file = (path.parent / target).resolve()
                if not file.is_file():
                    problems.append(f"{where}: no such file")
                used.add(file.name)
            if not meaningful_alt(opts.get("alt")):
                problems.append(f"{where}: no meaningful :alt: "
                                f"({opts.get('alt')!r})")
            if not opts.get("name"):
                problems.append(f"{where}: no :name:")
    assert not problems, "\n".join(problems)
    assert used, "the book shows none of book/figures"


def test_every_plot_shown_by_a_cell_has_alt_text_and_a_caption():
    """A cell that shows a plot itself (plt.show()) sets myst-nb's image alt
    text and figure caption in its metadata."""
    problems = []
    for path in book_sources():
        for m in CODE_CELL.finditer(path.read_text(encoding="utf-8")):
            body = m.group(1)
            if "plt.show()" not in body and "display(fig" not in body:
                continue
            meta = {}
            if body.startswith("---\n"):
                meta = yaml.safe_load(body[4:].split("\n---\n", 1)[0]) or {}
            nb = meta.get("mystnb", {})
            alt = nb.get("image", {}).get("alt")
            fig = nb.get("figure", {})
            if not meaningful_alt(alt):
                problems.append(f"{path.name}: a plot without mystnb image alt")
            if not (fig.get("caption") and fig.get("name")):
                problems.append(f"{path.name}: a plot without a figure "
                                "caption and name")
    assert not problems, "\n".join(problems)


# ------------------------------------------------- a textbook's apparatus

OBJECTIVES = re.compile(
    r"^:::\{admonition\} What you will be able to do\n:class: [^\n]*\bobjectives\b"
    r"\n((?:- .*\n(?:  .*\n)*)+):::", re.M)
DROPDOWN = re.compile(r"^ {3}:::\{dropdown\} Answer\n((?: {3}.*\n|\n)+?) {3}:::$",
                      re.M)


def chapters():
    """The numbered chapters the table of contents publishes."""
    return [p for p in book_sources() if re.match(r"\d\d_", p.name)]


def section(text, title):
    """The body of the `## title` section, up to the next `## ` heading."""
    m = re.search(rf"(?m)^## {re.escape(title)}\s*$", text)
    if not m:
        return None
    rest = text[m.end():]
    nxt = re.search(r"(?m)^## ", rest)
    return rest[:nxt.start()] if nxt else rest


def review_items(text):
    """The numbered questions of the review section, each with the indented
    lines under it."""
    body = section(text, "Review questions") or ""
    return re.findall(r"(?ms)^\d+\. .*?(?=^\d+\. |\Z)", body)


def test_every_chapter_opens_with_objectives():
    assert len(chapters()) >= 8
    problems = []
    for path in chapters():
        text = path.read_text(encoding="utf-8")
        m = OBJECTIVES.search(text)
        if not m:
            problems.append(f"{path.name}: no 'What you will be able to do'")
            continue
        first_section = re.search(r"(?m)^## ", text)
        if first_section and m.start() > first_section.start():
            problems.append(f"{path.name}: the objectives come after a section")
        if len(re.findall(r"(?m)^- ", m.group(1))) < 3:
            problems.append(f"{path.name}: fewer than three objectives")
    assert not problems, "\n".join(problems)


def test_every_chapter_ends_with_a_summary_then_review_questions():
    problems = []
    for path in chapters():
        text = path.read_text(encoding="utf-8")
        summary = section(text, "Summary")
        if summary is None:
            problems.append(f"{path.name}: no '## Summary'")
            continue
        if len(re.findall(r"(?m)^- ", summary)) < 3:
            problems.append(f"{path.name}: a summary of fewer than 3 points")
        order = [m.group(1) for m in re.finditer(r"(?m)^## (.+?)\s*$", text)]
        if "Review questions" not in order:
            problems.append(f"{path.name}: no '## Review questions'")
        elif order.index("Summary") > order.index("Review questions"):
            problems.append(f"{path.name}: the summary follows the questions")
    assert not problems, "\n".join(problems)


def test_every_review_question_has_a_folded_answer():
    """Each numbered review question is followed by its answer, folded in a
    dropdown: a real answer, not a placeholder."""
    problems, total = [], 0
    for path in chapters():
        items = review_items(path.read_text(encoding="utf-8"))
        if len(items) < 3:
            problems.append(f"{path.name}: {len(items)} review questions")
        for k, item in enumerate(items, 1):
            total += 1
            answers = DROPDOWN.findall(item)
            if len(answers) != 1:
                problems.append(f"{path.name}: question {k} has "
                                f"{len(answers)} answer dropdowns")
                continue
            words = re.sub(r"\$[^$]*\$", " x ", answers[0]).split()
            if len(words) < 12 or re.search(r"\b(TODO|TBD|FIXME)\b",
                                             answers[0]):
                problems.append(f"{path.name}: question {k}: the answer is "
                                f"a placeholder: {answers[0].strip()[:60]!r}")
    assert total >= 40, f"only {total} review questions in the book"
    assert not problems, "\n".join(problems)


def test_review_answers_fold_on_the_built_pages():
    """On the built site every answer is a closed <details> dropdown."""
    site = built_site()
    for path in chapters():
        page = (site / "book" / f"{path.stem}.html").read_text(encoding="utf-8")
        n_questions = len(review_items(path.read_text(encoding="utf-8")))
        folded = re.findall(r'<details class="[^"]*sd-dropdown[^"]*"(?![^>]*\bopen\b)',
                            page)
        assert len(folded) >= n_questions, \
            f"{path.name}: {len(folded)} folded answers, {n_questions} questions"


# ------------------------------------------------------ launching a page

def _install_script():
    spec = importlib.util.spec_from_file_location(
        "add_install_cell", ROOT / "scripts" / "add_install_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_launchable_notebook_installs_the_course_package():
    """Source and student notebooks carry one current install cell, hidden
    from the book's pages, that installs from the configured repository."""
    script = _install_script()
    source = script.install_source()
    import yaml as _yaml
    repo = _yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert f"git+{repo['url'].rstrip('/')}@{repo['branch']}" in source
    problems = []
    sources = sorted(ROOT.glob("solutions/*/*.ipynb"))
    students = sorted(ROOT.glob("exercises/*/*.ipynb"))
    assert len(sources) >= 9 and len(students) >= 9
    for path in sources + students:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not script.has_current_cell(nb, source):
            problems.append(f"{path.relative_to(ROOT)}: no current install cell")
            continue
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        if not code[0]["metadata"].get(script.MARK):
            problems.append(f"{path.relative_to(ROOT)}: the install cell is not "
                            "the first code cell")
    assert not problems, ("\n".join(problems) + "\nrun `python scripts/"
                          "add_install_cell.py`, then regenerate exercises/")


def test_install_cell_script_is_idempotent_and_repairs_a_stale_cell():
    script = _install_script()
    source = script.install_source()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# T"]},
                    {"cell_type": "code", "metadata": {}, "source": ["import lstmlib"],
                     "outputs": [], "execution_count": None}]}
    assert script.add_cell(nb, source) is True
    assert script.add_cell(nb, source) is False            # second run: no change
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "code", "code"]
    nb["cells"][1]["source"] = ["old text"]                # a stale cell
    assert not script.has_current_cell(nb, source)
    assert script.add_cell(nb, source) is True
    marked = [c for c in nb["cells"] if c["metadata"].get(script.MARK)]
    assert len(marked) == 1 and "".join(marked[0]["source"]) == source


def test_install_cell_runs_and_skips_pip_when_lstmlib_is_present():
    """The cell itself, executed: with lstmlib importable it must not call
    pip (a student's offline kernel, the grading sandbox)."""
    import subprocess
    import sys
    source = _install_script().install_source()
    guard = ("import subprocess\n"
             "def _no_pip(*a, **k):\n"
             "    raise SystemExit('pip was called')\n"
             "subprocess.check_call = _no_pip\n")
    proc = subprocess.run([sys.executable, "-c", guard + source],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------- claims about results stay computed

# Sentences about computed results, and the build-time assertion (in a
# remove-cell cell of the same chapter) that keeps each one true.
GUARDED_CLAIMS = [
    ("03_vanishing_gradients.md", "slightly above 1", r"assert 1 < s_max"),
    ("03_vanishing_gradients.md", "only with $+3$",
     r'assert decay\["LSTM, forget bias \+3"\] > '),
    ("05_gru.md", "sooner in every seed", r"assert all\(g < l for g, l in"),
    ("05_gru.md", "All three networks solve the task", r"assert all\(s is not None"),
    ("05_gru.md", "here it does not help", r"assert 0\.7 < fb_ratio < 1\.5"),
    ("06_bidirectional.md", "never rises above", r"assert uni\.max\(\) < "),
    ("06_bidirectional.md", "perfect accuracy", r"assert bi\[-1\] == 1\.0"),
    ("07_training.md", "never leaves the plateau", r'assert mse\[f"RNN_T\{long\}"\]'),
    ("07_training.md", "two to three orders of magnitude", r"assert 100 <= drop < 10_000"),
    ("07_training.md", "ending worse than a uniform", r"val\[-1\] > uniform"),
]
# Fixed figures that the book used to print as text; they are glued now.
STALE = [
    "a few hundred more steps", "within a couple of hundred steps",
    "about an order of magnitude every ten steps", "carries it over the whole sequence",
    "agree to about $10^{-8}$", "the best agreement is about $10^{-3}$",
    "lowest after\na couple of hundred steps",
]


def hidden_cells(text):
    """The source of every code cell tagged remove-cell."""
    return [m.group(1) for m in CODE_CELL.finditer(text)
            if re.search(r"(?m)^:tags: \[[^\]]*remove-cell", m.group(1))]


def test_claims_about_results_are_asserted_at_build_time():
    problems, present = [], 0
    for name, claim, guard in GUARDED_CLAIMS:
        text = (BOOK / name).read_text(encoding="utf-8")
        prose = re.sub(r"\s+", " ", CODE_CELL.sub("", text))
        if claim not in prose:
            continue  # the claim is gone: nothing to guard
        present += 1
        if not any(re.search(guard, cell) for cell in hidden_cells(text)):
            problems.append(f"{name}: {claim!r} has no build-time assertion")
    for path in chapters():
        text = path.read_text(encoding="utf-8")
        for phrase in STALE:
            if phrase in text:
                problems.append(f"{path.name}: fixed figure {phrase!r}")
    assert present >= 6, "the claims listed here were rewritten: update the list"
    assert not problems, "\n".join(problems)


def test_glued_values_are_glued_and_hidden_cells_assert():
    """Every {glue:text} key is glued by its own chapter, and a hidden
    check cell checks something (an assertion), it does not just print."""
    problems = []
    for path in chapters():
        text = path.read_text(encoding="utf-8")
        cells = "\n".join(m.group(1) for m in CODE_CELL.finditer(text))
        for key in re.findall(r"\{glue:text\}`([^`]+)`", text):
            key = key.split(":")[0]
            if not re.search(rf"glue\(\s*f?[\"']{re.escape(key)}[\"']", cells) and \
                    not re.search(r'glue\(\s*f"', cells):
                problems.append(f"{path.name}: {key} is never glued")
        for cell in hidden_cells(text):
            if "checked at build time" in cell and not re.search(
                    r"\bassert\b|np\.testing\.assert", cell):
                problems.append(f"{path.name}: a check cell without an assertion")
    assert not problems, "\n".join(problems)


def _chapter_notebooks_script():
    spec = importlib.util.spec_from_file_location(
        "chapter_notebooks", BOOK / "scripts" / "chapter_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_colab_notebooks_of_the_chapters_are_up_to_date(tmp_path):
    """book/NN_*.ipynb (what the Colab button opens) are regenerated from the
    chapters' .md with nothing changed; each starts with the setup cell."""
    script = _chapter_notebooks_script()
    script.main(["--out", str(tmp_path)])
    problems = []
    for name in script.CHAPTERS:
        committed = BOOK / f"{name}.ipynb"
        if not committed.is_file():
            problems.append(f"book/{name}.ipynb is missing")
        elif committed.read_bytes() != (tmp_path / f"{name}.ipynb").read_bytes():
            problems.append(f"book/{name}.ipynb is out of date with {name}.md")
    extra = sorted({p.stem for p in BOOK.glob("*.ipynb")} - set(script.CHAPTERS))
    assert not extra, f"notebooks in book/ that no chapter makes: {extra}"
    assert not problems, ("\n".join(problems) + "\nrun `python book/scripts/"
                          "chapter_notebooks.py` and commit")
    nb = json.loads((BOOK / f"{script.CHAPTERS[0]}.ipynb").read_text())
    first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert first_code["metadata"].get(script.MARK)
    assert "remove-cell" in first_code["metadata"]["tags"]


def test_chapter_setup_cell_works_without_myst_nb(tmp_path):
    """In Colab (no myst_nb) the setup cell provides a glue that shows a
    figure instead of failing at `from myst_nb import glue`."""
    import subprocess
    import sys
    source = _chapter_notebooks_script().setup_source()
    block = ("import sys\n"
             "class _NoMystNb:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name == 'myst_nb':\n"
             "            raise ImportError('no myst_nb here')\n"
             "sys.meta_path.insert(0, _NoMystNb())\n")
    use = ("import matplotlib\nmatplotlib.use('Agg')\n"
           "import matplotlib.pyplot as plt\n"
           "from myst_nb import glue\n"
           "fig, ax = plt.subplots()\n"
           "glue('fig', fig, display=False)\n"
           "glue('number', 3, display=False)\n")
    proc = subprocess.run([sys.executable, "-c", block + source + use],
                          capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Figure" in proc.stdout          # the figure was shown
    assert "3" not in proc.stdout           # a glued number stays quiet
