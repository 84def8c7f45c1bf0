"""The test suite's own rules (CONTRIBUTING.md, Writing tests), read from the
source: no test changes ``sys.path`` (pytest's ``pythonpath`` does it),
scripts/ never import from tests/, every ``pytest.raises`` names the message
it expects, and no assertion is made true by an ``or True``."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = sorted((ROOT / "tests").rglob("*.py"))

#: scripts that still import from tests/, and why
SCRIPTS_IMPORTING_TESTS = {
    # the grading benchmark's class is made of the mistake bank (tests/mistakes)
    "scripts/synthetic_class.py",
}


def _calls(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(node):
    return ast.unparse(node.func)


def _where(found):
    return "; ".join(f"{path.relative_to(ROOT)} line {line}" for path, line in found)


def test_no_test_changes_sys_path():
    found = [(path, c.lineno) for path in TESTS for c in _calls(path)
             if _name(c) in ("sys.path.insert", "sys.path.append", "sys.path.extend")]
    assert not found, (f"sys.path changed in {_where(found)}: pyproject.toml's pythonpath "
                       "puts the repository root and scripts/ on it")


def test_every_raises_names_its_message():
    bare = [(path, c.lineno) for path in TESTS for c in _calls(path)
            if _name(c) == "pytest.raises" and not any(k.arg == "match" for k in c.keywords)]
    assert not bare, f"pytest.raises without match= in {_where(bare)}"


def test_no_assertion_is_made_true_by_or_true():
    found = [(path, n.lineno) for path in TESTS
             for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or)
             and any(isinstance(v, ast.Constant) and v.value is True for v in n.values)]
    assert not found, f"`or True` in {_where(found)}"


def test_scripts_do_not_import_from_tests():
    importing = set()
    for path in sorted((ROOT / "scripts").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "tests" or n.startswith("tests.") for n in names):
                importing.add(path.relative_to(ROOT).as_posix())
    assert importing == SCRIPTS_IMPORTING_TESTS, (
        f"scripts/ importing from tests/: {sorted(importing)} (tests may import scripts/, "
        "not the other way round)")
