"""Build the Persian edition of the book, or the message templates it is
translated from.

    python scripts/build_book_fa.py            # HTML into _build/html/fa
    python scripts/build_book_fa.py --gettext  # templates into _build/gettext

The Persian edition is the English sources built with _config.fa.yml merged
over _config.yml (language fa, the catalogs in locale/). It reads the
notebooks' outputs from the jupyter cache (.jupyter_cache) that the English
build filled, so `make book` executes every chapter once: this build runs
after the English one. The templates (.pot, one per page) are what
`sphinx-intl update` merges into the catalogs (`make catalogs`).

Warnings are errors in the Persian build, as in `make book` (-W -n
--keep-going): a translation whose references differ from the English text
fails the build.
"""

import argparse
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
OUTPUT = BUILD / "html" / "fa"


def merged(base, override):
    """`override` over `base`: dictionaries merged key by key, anything
    else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def config(persian):
    base = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    # The merged file is written under _build: paths that jupyter-book reads
    # relative to the configuration file are made absolute.
    sphinx = base.setdefault("sphinx", {})
    sphinx["local_extensions"] = {
        name: str(ROOT / path)
        for name, path in (sphinx.get("local_extensions") or {}).items()}
    execute = base.setdefault("execute", {})
    execute["cache"] = str(ROOT / execute.get("cache", ".jupyter_cache"))
    if persian:
        fa = yaml.safe_load((ROOT / "_config.fa.yml").read_text(
            encoding="utf-8"))
        return merged(base, fa)
    # The templates come from the English text, one per page, and from what
    # the HTML shows: notebook outputs are chosen as for HTML (images, with
    # their alt text, rather than the plain-text fallback gettext would
    # pick).
    from myst_nb.core.render import get_mime_priority

    as_html = [["gettext", mime, 10 * rank] for rank, mime in
               enumerate(get_mime_priority("html", []), start=1)]
    return merged(base, {"sphinx": {"config": {
        "gettext_compact": False, "nb_mime_priority_overrides": as_html}}})



def build(gettext=False, force_all=True, quiet=False):
    from jupyter_book.sphinx import build_sphinx

    name = "gettext" if gettext else "fa"
    scratch = BUILD / f".{name}"
    scratch.mkdir(parents=True, exist_ok=True)
    path_config = scratch / "_config.yml"
    path_config.write_text(yaml.safe_dump(config(persian=not gettext),
                                          allow_unicode=True),
                           encoding="utf-8")
    # The HTML is built in _build/.fa/html and copied to _build/html/fa:
    # myst-nb writes the notebooks' outputs next to the output folder
    # (jupyter_execute), which must stay out of the published site.
    result = build_sphinx(
        ROOT,
        BUILD / "gettext" if gettext else scratch / "html",
        use_external_toc=True,
        noconfig=True,
        path_config=str(path_config),
        confoverrides={"external_toc_path": "_toc.yml",
                       "latex_individualpages": False,
                       "nitpicky": True},
        doctreedir=scratch / "doctrees",
        builder="gettext" if gettext else "html",
        force_all=force_all,
        # The English build reports the English text's warnings; the
        # templates are written whatever they are.
        warningiserror=not gettext,
        keep_going=True,
        quiet=quiet,
    )
    if not gettext and (scratch / "html" / "index.html").is_file():
        shutil.rmtree(OUTPUT, ignore_errors=True)
        shutil.copytree(scratch / "html", OUTPUT,
                        ignore=shutil.ignore_patterns(".buildinfo"))
    return 1 if isinstance(result, Exception) else int(result or 0)


def prune_templates():
    """Drop the templates of pages that stay English in the Persian edition
    (persian_english_only in _config.fa.yml): they get no catalog."""
    import fnmatch

    patterns = config(persian=True)["sphinx"]["config"].get(
        "persian_english_only", [])
    templates = BUILD / "gettext"
    for pot in sorted(templates.rglob("*.pot")):
        docname = pot.relative_to(templates).with_suffix("").as_posix()
        if any(fnmatch.fnmatch(docname, p) for p in patterns):
            pot.unlink()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gettext", action="store_true",
                        help="write the message templates (.pot) into "
                             "_build/gettext instead of the Persian HTML")
    parser.add_argument("--changed", action="store_true",
                        help="rebuild only the pages whose sources or "
                             "catalogs changed (default: every page)")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    status = build(gettext=args.gettext, force_all=not args.changed,
                   quiet=args.quiet)
    if args.gettext:
        prune_templates()
    elif status == 0:
        print(f"The Persian edition is at {OUTPUT / 'index.html'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
