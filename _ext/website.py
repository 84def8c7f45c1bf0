"""Fixes to the theme, the search and the launch buttons of the website.

Loaded from _config.yml (sphinx: local_extensions). The first three fixes
answer an error a reader would otherwise get in the browser console
(tests/book/test_website.py checks there is none):

- jupyter-book 1 with Sphinx 7.4 emits the inline configuration scripts of
  sphinx-thebe and sphinx-togglebutton twice per page; the second copy of
  ``const THEBE_JS_URL = ...`` is a SyntaxError. Identical scripts are
  written once.
- pydata-sphinx-theme logs "Got invalid theme mode" on a first visit unless
  a default light/dark mode is set (html_context default_mode): "auto".
- Without a favicon every browser asks for /favicon.ico and gets a 404: the
  site ships its own icon, and the forwarding page at the site's root
  (index.html, which sphinx-external-toc would write as a bare meta refresh)
  names it too, so no page of the site leaves the browser to guess.

Search: a query of several words found as a phrase in a section title ranks
that section first (search_scorer.js; Sphinx ranks word by word).

And one fix to the launch buttons: Colab opens only .ipynb files from GitHub,
so chapters written as MyST Markdown notebooks (.md) get no Colab button (it
would lead to an error page); they keep Binder and the .ipynb download.
"""

import html
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _configure(app, config):
    config.html_context.setdefault("default_mode", "auto")
    if not config.html_favicon:
        config.html_favicon = str(HERE / "favicon.svg")
    if not config.html_search_scorer:
        config.html_search_scorer = str(HERE / "search_scorer.js")


def _script_key(script):
    """What the browser sees of a script: its file and attributes (including
    the body of an inline script), not its priority."""
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""  # None or "": inline
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in sorted(scripts, key=lambda js: getattr(js, "priority", 500)):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _drop_colab_for_text_notebooks(app, pagename, templatename, context,
                                   doctree):
    for group in context.get("header_buttons") or []:
        if isinstance(group, dict) and group.get("label") == "launch-buttons":
            group["buttons"] = [
                b for b in group.get("buttons", [])
                if not (b.get("text") == "Colab"
                        and not b.get("url", "").endswith(".ipynb"))]


FORWARD_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" href="{icon}">
<meta http-equiv="Refresh" content="0; url={target}">
</head>
<body><p>This book starts at <a href="{target}">{target}</a>.</p></body>
</html>
"""


def _write_forwarding_page(app, exception):
    """The site's root page forwards to the book's first page."""
    if exception is not None or app.builder.name != "html":
        return
    root = app.config.root_doc
    if root == "index":
        return
    icon = Path(app.config.html_favicon or "favicon.svg").name
    Path(app.outdir, "index.html").write_text(FORWARD_PAGE.format(
        title=html.escape(app.config.html_title or app.config.project),
        icon=f"_static/{icon}", target=f"{root}.html"), encoding="utf-8")


#: the line of book/exercises.md that the manifest's table replaces
EXERCISE_TABLE = "<!-- the table of the exercises, from the manifest -->"


def _exercise_table(app, docname, source):
    """book/exercises.md: the table of the exercises is generated from the
    assignments' manifest (lstmlib/grading/assignments.py) at each build."""
    if docname != "book/exercises" or EXERCISE_TABLE not in source[0]:
        return
    from lstmlib.grading.assignments import markdown_table
    source[0] = source[0].replace(EXERCISE_TABLE, markdown_table())


def setup(app):
    app.connect("config-inited", _configure)
    app.connect("source-read", _exercise_table)
    # After every extension has added its scripts for the page.
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _drop_colab_for_text_notebooks,
                priority=900)
    # Before sphinx-external-toc's own handler, which keeps an existing page.
    app.connect("build-finished", _write_forwarding_page, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
