"""Launching the book's notebooks: one repository setting for every launch
button, install cell and install command; chapters that open alone in Colab
find their recorded data in the package; Colab copies show no raw MyST roles.
"""

import fnmatch
import importlib.util
import json
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
# where the course's own repository is named: a clone, a Colab or Binder link
GITHUB = re.compile(r"(?:git clone https://github\.com/|colab\.research\.google\.com/"
                    r"github/|mybinder\.org/v2/gh/)([\w.-]+/[\w.-]+?)(?:\.git)?"
                    r"(?=[/@\s\"'`)]|$)")
GIT_SPEC = re.compile(r"git\+(https://[^\s\"'`@]+)@([\w./-]+)")


def _chapter_notebooks():
    spec = importlib.util.spec_from_file_location(
        "chapter_notebooks", BOOK / "scripts" / "chapter_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _colab_chapters():
    """CHAPTERS of chapter_notebooks.py, read without importing jupytext."""
    import ast
    tree = ast.parse((BOOK / "scripts" / "chapter_notebooks.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "CHAPTERS":
            return ast.literal_eval(node.value)
    raise AssertionError("chapter_notebooks.py has no CHAPTERS list")


def _repository():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    url = repo["url"].rstrip("/")
    return url, url.split("github.com/", 1)[1], repo.get("branch", "main")


def _sources():
    """Everything a reader or a launched notebook takes an address from."""
    paths = [ROOT / "README.md", *sorted(BOOK.glob("*.md")),
             *sorted(BOOK.glob("*.ipynb")), *sorted((ROOT / "binder").glob("*")),
             *sorted(ROOT.glob("solutions/*/*.ipynb")),
             *sorted(ROOT.glob("exercises/*/*.ipynb"))]
    return [p for p in paths if p.is_file()]


def test_every_repository_address_is_the_configured_one():
    url, org_repo, branch = _repository()
    problems, seen = [], 0
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for found in GITHUB.findall(text):
            seen += 1
            if found != org_repo:
                problems.append(f"{path.relative_to(ROOT)}: github.com/{found}")
        for found_url, found_branch in GIT_SPEC.findall(text):
            if (found_url.rstrip("/").removesuffix(".git"), found_branch) != (url, branch):
                problems.append(f"{path.relative_to(ROOT)}: git+{found_url}@{found_branch}")
    assert seen >= 1, "no repository address found: the pattern is stale"
    assert not problems, (f"addresses other than _config.yml's {url}@{branch}:\n"
                          + "\n".join(problems))


def test_the_checker_catches_a_stray_address(tmp_path):
    """The patterns above find what they must (so the test can fail)."""
    text = ('git clone https://github.com/someone/fork.git\n'
            'pip install "lstmlib @ git+https://github.com/someone/fork@dev"\n')
    assert GITHUB.findall(text) == ["someone/fork"]
    assert GIT_SPEC.findall(text) == [("https://github.com/someone/fork", "dev")]


def test_colab_chapters_read_recorded_runs_from_the_package():
    """A chapter that Colab opens alone reads no file from the repository's
    folders; what it reads from lstmlib.data exists and is package data."""
    chapters = _colab_chapters()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["lstmlib"]
    cell = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)
    problems, read = [], 0
    for name in chapters:
        code = "\n".join(cell.findall((BOOK / f"{name}.md").read_text()))
        if re.search(r"Path\(\s*[\"'](\.\./)?data|[\"']book/(data|scripts)", code):
            problems.append(f"{name}: reads a repository folder")
        for f in re.findall(r"joinpath\(\s*f?[\"']([^\"']+)[\"']", code):
            pattern = re.sub(r"\{\w+\}", "*", f)     # an f-string field: any
            matches = list((ROOT / "lstmlib" / "data").glob(pattern))
            read += 1
            if not matches:
                problems.append(f"{name}: lstmlib/data/{f} does not exist")
            for m in matches:
                rel = m.relative_to(ROOT / "lstmlib").as_posix()
                if not any(fnmatch.fnmatch(rel, g) for g in globs):
                    problems.append(f"{name}: {rel} is not package data")
    assert "09_practice" in chapters and read >= 4
    assert not problems, "\n".join(problems)


def test_colab_copies_show_no_raw_roles():
    roles = re.compile(r"\{(cite|cite:p|cite:t|doc|ref|numref|eq|glue:text)\}`"
                       r"|(```|:::)\{[\w:-]+\}")
    problems = []
    for name in _colab_chapters():
        nb = json.loads((BOOK / f"{name}.ipynb").read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                problems += [f"{name}: {m.group(0)}" for m in
                             roles.finditer("".join(cell["source"]))]
    assert not problems, "\n".join(problems[:20])


def test_directives_become_markdown():
    """A figure becomes an image from the configured repository with its
    caption, an admonition a quotation, an indented dropdown a <details>
    block at the same indentation, a literalinclude the included code."""
    script = _chapter_notebooks()
    text = ("```{figure} figures/a.svg\n:name: fig-a\n:alt: A diagram\n\nThe caption.\n```\n\n"
            ":::{admonition} Note well\nBody line.\n:::\n\n"
            "1. Question?\n\n   :::{dropdown} Answer\n   Because.\n   :::\n\n"
            "```{literalinclude} ../lstmlib/mingru.py\n:pyobject: linear_scan_sequential\n```")
    out = script.plain_directives(text, "https://raw.example/repo/main")
    assert "![A diagram](https://raw.example/repo/main/book/figures/a.svg)\n\n*The caption.*" in out
    assert "> **Note well**\n>\n> Body line." in out
    assert "   <details><summary>Answer</summary>\n\n   Because.\n\n   </details>" in out
    assert "```python\ndef linear_scan_sequential(a, b, h0):" in out
    assert "{" + "figure}" not in out and ":::" not in out


def test_roles_become_text():
    script = _chapter_notebooks()
    cites = script.bibliography()
    titles, labels = script._headings()
    out = script.plain_roles(
        "{cite}`hochreiter1997,gers2000` in {doc}`/book/04_lstm`; "
        "{ref}`the section <init-recurrent>`, {ref}`tbptt`", cites, titles, labels)
    assert out == ("(Hochreiter and Schmidhuber 1997; Gers et al. 2000) in "
                   f"*{titles['04_lstm']}*; the section, "
                   "*Truncated backpropagation through time*")
    assert titles["04_lstm"].startswith("Long short-term memory")


def _requirement_name(requirement):
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_extras_by_audience_list_each_dependency_once():
    """pyproject.toml: one extra per audience, each dependency in one place
    only, ``dev`` all of them (the CUDA backend aside) by self-reference,
    torch pinned (an open range pulls CUDA wheels); Binder installs the
    book's extra and make the maintainers' one."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == {"book", "grading", "test", "cuda", "hub", "dev"}
    assert extras["dev"] == ["lstmlib[book,grading,test,hub]"]
    where = {}
    for extra, requirements in [("core", project["dependencies"]),
                                *((e, r) for e, r in extras.items() if e != "dev")]:
        for requirement in requirements:
            name = _requirement_name(requirement)
            assert name not in where, f"{name} is listed in [{where.get(name)}] and [{extra}]"
            where[name] = extra
    assert [r for r in extras["book"] if _requirement_name(r) == "torch"] == ["torch==2.13.0"]
    assert where["ruff"] == "test"
    binder = [line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
              if line and not line.startswith(("#", "--"))]
    assert binder == ["-e .[book]"]
    assert "pip install --quiet -e '.[dev]'" in (ROOT / "Makefile").read_text()
