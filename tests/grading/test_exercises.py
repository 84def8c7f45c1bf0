"""The graded exercises: solutions pass, student versions fail, the student
versions are generated from the solutions and reveal nothing, and the graded
checks resist tampering (delegation: tests/grading/test_kernel_edition.py).

Every assignment of the manifest (``lstmlib.grading.assignments``) is
tested, each under its own marker. ``nbgrader validate`` runs through the
real CLI (slow); the student versions are checked against nbgrader's
generate_assignment run in this process (fast); the full autograding of the
mistake bank is driven by the grading-pipeline tests and by
``tests/mistakes/autograde_bank.py``.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmlib.grading import assignments as manifest
from lstmlib.grading import checks as grader_checks
from lstmlib.selfcheck import checks
from tests import mistakes, notebooks
from tests.notebooks import load, nbgrader_meta, source

# one pytest-xdist worker: the nbgrader fixtures (validate, regenerate) run once
pytestmark = pytest.mark.xdist_group("exercises")

ROOT = Path(__file__).resolve().parents[2]

BIN = Path(sys.executable).parent
NBGRADER = str(BIN / "nbgrader")
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

#: every assignment of the manifest: its notebook's name
ASSIGNMENTS = {name: a.notebook for name, a in sorted(manifest.ASSIGNMENTS.items())}


def solution(a):
    return ROOT / "solutions" / a / f"{ASSIGNMENTS[a]}.ipynb"


def release(a, root=ROOT):
    return Path(root) / "exercises" / a / f"{ASSIGNMENTS[a]}.ipynb"


def nbgrader(args, cwd=ROOT, timeout=900):
    return subprocess.run([NBGRADER, *args], cwd=cwd, capture_output=True,
                          text=True, env=ENV, timeout=timeout)


# ---------------------------------------------------------------------------
# nbgrader validate: one process for every solution and student version

@pytest.fixture(scope="module")
def validation():
    paths = [solution(a) for a in ASSIGNMENTS] + [release(a) for a in ASSIGNMENTS]
    # one stream, so that each notebook's result follows its "Validating" line
    r = subprocess.run([NBGRADER, "validate", *map(str, paths)], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=ENV, timeout=900)
    text = r.stdout
    sections = {}
    for chunk in re.split(r"\[ValidateApp \| INFO\] Validating '", text)[1:]:
        path, _, rest = chunk.partition("'")
        sections[Path(path).resolve()] = rest
    return sections, text


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_passes_validate(validation, assignment):
    sections, text = validation
    out = sections.get(solution(assignment).resolve())
    assert out is not None, text[-3000:]
    assert "Success! Your notebook passes all the tests." in out, out[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_fails_validate(validation, assignment):
    sections, text = validation
    out = sections.get(release(assignment).resolve())
    assert out is not None, text[-3000:]
    assert "VALIDATION FAILED" in out, out[-4000:]
    assert "Success!" not in out


# ---------------------------------------------------------------------------
# exercises/ are generated from solutions/ and up to date: nbgrader's
# generate_assignment in this process, every assignment at once (a fraction
# of a second; the CLI in a fresh clone: test_nbgrader_fresh_clone.py)

@pytest.fixture(scope="module")
def regenerated(make_course):
    return make_course(ASSIGNMENTS, generate=True)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_up_to_date(regenerated, assignment):
    fix = (f"run `nbgrader generate_assignment {assignment} --force` from the "
           f"repository root and commit exercises/{assignment}")
    fresh_folder, folder = regenerated / "exercises" / assignment, ROOT / "exercises" / assignment
    files = sorted(p.name for p in fresh_folder.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == files, f"exercises/{assignment}: {fix}"
    for name in files:
        if not name.endswith(".ipynb"):
            assert (folder / name).read_bytes() == (fresh_folder / name).read_bytes(), \
                f"exercises/{assignment}/{name}: {fix}"
            continue
        fresh = notebooks.comparable(load(fresh_folder / name))
        committed = notebooks.comparable(load(folder / name))
        assert committed["kernelspec"] == fresh["kernelspec"], f"{name}: {fix}"
        assert len(committed["cells"]) == len(fresh["cells"]), f"{name}: {fix}"
        for i, (c, f) in enumerate(zip(committed["cells"], fresh["cells"])):
            assert c == f, f"{name}, cell {i} differs from the generated one: {fix}"


# ---------------------------------------------------------------------------
# the student versions reveal no solution and no hidden test

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_hides_solutions_and_hidden_tests(assignment):
    sol = load(solution(assignment))
    student = load(release(assignment))
    text = "\n".join(source(c) for c in student["cells"])
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS",
                   '"hidden")'):
        assert marker not in text, f"{assignment}: {marker!r} in the student version"
    hidden_lines = notebooks.solution_only_lines(sol)
    assert hidden_lines, "the solution notebook has no solution region"
    # the markdown states the equations on purpose; the code must not
    code = "\n".join(source(c) for c in student["cells"] if c["cell_type"] == "code")
    leaked = [line for line in hidden_lines if line in code]
    assert not leaked, f"{assignment}: solution text in the student version: {leaked[:3]}"
    solution_cells = [c for c in student["cells"] if nbgrader_meta(c).get("solution")
                      and c["cell_type"] == "code"]
    assert solution_cells and all("raise NotImplementedError()" in source(c) or
                                  "YOUR CODE HERE" in source(c) for c in solution_cells)
    # a written answer (graded by hand) reaches students as the stub alone
    assert all(source(c) == "YOUR ANSWER HERE" for c in student["cells"]
               if nbgrader_meta(c).get("solution") and c["cell_type"] == "markdown")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_structure(assignment):
    """Setup cell first (before any student code), a link to the chapter,
    several graded parts each with a visible and a hidden test cell."""
    nb = load(solution(assignment))
    # the guarded install cell (scripts/add_install_cell.py) may come first
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and not c.get("metadata", {}).get("course_install")]
    first = code[0]
    assert nbgrader_meta(first).get("locked") and \
        f'checks.prepare("{assignment}")' in source(first)
    assert "lstmlib.selfcheck" in source(first)
    intro = source(nb["cells"][0])
    assert re.search(r"\]\(\.\./\.\./book/\d\d_\w+\.md\)", intro), "no chapter link"
    for md in re.findall(r"\]\(\.\./\.\./(book/\w+\.md)\)", intro):
        assert (ROOT / md).exists(), md
    tests = [c for c in code if nbgrader_meta(c).get("grade")]
    visible = [c for c in tests if nbgrader_meta(c)["grade_id"].endswith("_visible")]
    hidden = [c for c in tests if nbgrader_meta(c)["grade_id"].endswith("_hidden")]
    assert len(visible) >= 2 and len(visible) == len(hidden)
    assert all("### BEGIN HIDDEN TESTS" in source(c) for c in hidden)
    bank = mistakes.load(assignment)
    assert sum(nbgrader_meta(c)["points"] for c in tests) == bank.FULL_SCORE


# ---------------------------------------------------------------------------
# the mistake bank is well formed

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mistake_bank(assignment):
    assert assignment in mistakes.available(), (
        f"{assignment} needs a mistake bank: tests/mistakes/{assignment}.py with NOTEBOOK, "
        f"FULL_SCORE and MISTAKES (CONTRIBUTING.md, A new assignment)")
    bank = mistakes.load(assignment)
    assert len(bank.MISTAKES) >= 5
    sol = load(solution(assignment))
    for m in bank.MISTAKES:
        assert 0 <= m.expected_score < bank.FULL_SCORE, m.name
        changed = mistakes.apply(sol, m)
        cell = [c for c in changed["cells"] if nbgrader_meta(c).get("grade_id") == m.cell][0]
        assert nbgrader_meta(cell).get("solution"), f"{m.name}: not a solution cell"
        assert source(cell) != [source(c) for c in sol["cells"]
                                if nbgrader_meta(c).get("grade_id") == m.cell][0]
    bad = bank.MISTAKES[0]._replace(old="this text is not in the cell")
    with pytest.raises(ValueError, match="exactly once"):
        mistakes.apply(sol, bad)


# ---------------------------------------------------------------------------
# the self-checks, in-process (the same checks the grader runs, with the
# student's function called here instead of in a graded kernel)


@pytest.fixture(autouse=True)
def _self_check_cases():
    """Every test starts from the self-checks' fixed seeds: a test of the
    grader's fresh seeds (``prepare(..., salt=...)``) leaves its cases behind
    in the worker, and the tests after it may be any."""
    for assignment in ("04_lstm_cell", "02_bptt", "07_bidirectional"):
        checks.prepare(assignment)


def _lstm_step_forward(x, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    H = h_prev.shape[1]
    a = x @ w_ih.T + h_prev @ w_hh.T
    if b_ih is not None:
        a = a + b_ih + b_hh
    s = 1 / (1 + np.exp(-a))
    i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]
    g = np.tanh(a[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    return (o * np.tanh(c), c), None


def _swapped_if(x, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None):
    H = h_prev.shape[1]
    order = np.r_[H:2 * H, 0:H, 2 * H:4 * H]
    return _lstm_step_forward(x, h_prev, c_prev, w_ih[order], w_hh[order],
                              None if b_ih is None else b_ih[order],
                              None if b_hh is None else b_hh[order])


def test_correct_function_passes():
    checks.lstm_step_forward(_lstm_step_forward, "visible")
    checks.lstm_step_forward(_lstm_step_forward, "hidden")


def test_message_names_the_gate_and_shows_both_values():
    with pytest.raises(AssertionError, match="gates i and f are swapped") as e:
        checks.lstm_step_forward(_swapped_if, "visible")
    msg = str(e.value)
    assert "yours:" in msg and "expected:" in msg


def test_objects_claiming_equality_get_zero():
    class Always(np.ndarray):
        def __eq__(self, other):
            return True

        def __sub__(self, other):
            return np.zeros(self.shape)

    def liar(x, h_prev, c_prev, w_ih, w_hh, b_ih=None, b_hh=None):
        (h, c), _ = _swapped_if(x, h_prev, c_prev, w_ih, w_hh, b_ih, b_hh)
        return (h.view(Always), c.view(Always)), None

    class Eq:
        shape = (3, 5)

        def __eq__(self, other):
            return True

    with pytest.raises(AssertionError, match="subclass of np.ndarray"):
        checks.lstm_step_forward(liar, "visible")
    with pytest.raises(AssertionError, match="numpy array"):
        checks.lstm_step_forward(lambda *a: ((Eq(), Eq()), None), "visible")


def test_reassigning_the_reference_does_not_move_the_expected_values(monkeypatch):
    import lstmlib.lstm
    monkeypatch.setattr(lstmlib.lstm, "lstm_step_forward", _swapped_if)
    with pytest.raises(AssertionError, match="gates i and f are swapped"):
        checks.lstm_step_forward(_swapped_if, "visible")


def test_bptt_message_names_the_time_step():
    from collections import namedtuple
    Grads = namedtuple("Grads", "dx dh_prev dw_ih dw_hh db_ih")
    Step = namedtuple("Step", "x h_prev h w_ih w_hh")

    def step_backward(dh, c):
        da = dh * (1 - c.h ** 2)
        return Grads(da @ c.w_ih, da @ c.w_hh, da.T @ c.x, da.T @ c.h_prev,
                     da.sum(axis=0))

    def no_carry(d_out, dh_n, cache):
        T = cache.x.shape[0]
        dx = np.zeros_like(cache.x)
        dw_ih, dw_hh = np.zeros_like(cache.w_ih), np.zeros_like(cache.w_hh)
        db = np.zeros(cache.w_hh.shape[0])
        for t in reversed(range(T)):
            h_prev = cache.h0 if t == 0 else cache.hs[t - 1]
            g = step_backward(d_out[t] + (dh_n if t == T - 1 else 0),
                              Step(cache.x[t], h_prev, cache.hs[t],
                                   cache.w_ih, cache.w_hh))
            dx[t] = g.dx
            dw_ih += g.dw_ih
            dw_hh += g.dw_hh
            db += g.db_ih
        return dx, g.dh_prev, dw_ih, dw_hh, db, db.copy()

    with pytest.raises(AssertionError, match="first differs at t = 3") as e:
        checks.rnn_backward(no_carry, "visible")
    assert "dh_next" in str(e.value)


# Delegation (to lstmlib's graded functions, to torch's recurrent modules,
# to lstm_forward(..., reverse=True) in exercise 7) has nothing to reach in a
# graded kernel, which holds only its assignment's edition of lstmlib:
# tests/grading/test_kernel_edition.py.


# ---------------------------------------------------------------------------
# the manifest of the assignments is the one list: notebooks, book, grader

def test_every_assignment_folder_is_in_the_manifest():
    for folder in ("solutions", "exercises"):
        found = {p.name for p in (ROOT / folder).iterdir() if p.is_dir()}
        assert found <= set(manifest.ASSIGNMENTS), (
            f"{folder}/: {sorted(found - set(manifest.ASSIGNMENTS))} not in "
            f"lstmlib/grading/assignments.py")


@pytest.mark.parametrize("assignment", sorted(manifest.ASSIGNMENTS))
def test_manifest_matches_the_notebook(assignment):
    a = manifest.ASSIGNMENTS[assignment]
    nb = load(ROOT / "solutions" / assignment / f"{a.notebook}.ipynb")
    # the manifest lists the autograded test cells; a written answer graded
    # by hand (a markdown cell) is not one of its parts
    graded = {nbgrader_meta(c)["grade_id"]: nbgrader_meta(c)["points"]
              for c in nb["cells"] if nbgrader_meta(c).get("grade") and c["cell_type"] == "code"}
    listed = {gid: points for gid, (_, _, points) in a.cells().items()}
    assert graded == listed, f"{assignment}: notebook {graded} != manifest {listed}"
    code = "\n".join(source(c) for c in nb["cells"] if nbgrader_meta(c).get("solution"))
    for part in a.parts:
        grader_checks.check_function(assignment, part)      # the check exists
        for name in part.functions:
            assert re.search(rf"^(def {name}\(|{name}\s*=)", code, re.M), \
                f"{assignment}: no solution cell defines {name}"
        for gid in (part.visible[0], part.hidden[0]):
            cell = [c for c in nb["cells"] if nbgrader_meta(c).get("grade_id") == gid][0]
            assert part.functions[0] in source(cell), f"{gid} does not test {part.functions}"
    if assignment in mistakes.available():
        assert mistakes.load(assignment).FULL_SCORE == a.points


def test_exercises_page_shows_the_manifest():
    """The page holds the line the book's build replaces with the manifest's
    table (_ext/website.py); the built page's table is checked in
    tests/book/test_website.py."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("website", ROOT / "_ext" / "website.py")
    website = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(website)
    page = (ROOT / "book" / "exercises.md").read_text()
    assert website.EXERCISE_TABLE in page
    source = [page]
    website._exercise_table(None, "book/exercises", source)
    assert manifest.markdown_table() in source[0]
    assert "| [1. " in source[0] and f"| [{len(manifest.ASSIGNMENTS)}. " in source[0]
    toc = (ROOT / "_toc.yml").read_text()
    for a in manifest.ASSIGNMENTS.values():
        assert f"exercises/{a.name}/{a.notebook}" in toc, a.name


def test_the_grader_never_imports_the_kernel_side():
    """lstmlib.grading (the trusted side) does not import lstmlib.selfcheck."""
    import ast
    for path in (ROOT / "lstmlib" / "grading").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [n.name for n in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.level and node.module is None:
                    names = [n.name for n in node.names]
            assert not any("selfcheck" in n for n in names), f"{path} imports {names}"
    code = ("import sys, lstmlib.grading.trusted, lstmlib.grading.driver, "
            "lstmlib.grading.checks.performance, lstmlib.grading.__main__; "
            "print(sorted(m for m in sys.modules if 'selfcheck' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def _namespace(assignment, which="solutions"):
    """The notebook's code cells (not the test cells) run in a namespace."""
    import contextlib
    import io
    a = manifest.ASSIGNMENTS[assignment]
    root = ROOT / which / assignment / f"{a.notebook}.ipynb"
    ns = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in load(root)["cells"]:
            if cell["cell_type"] == "code" and not nbgrader_meta(cell).get("grade"):
                try:
                    exec(source(cell), ns)
                except Exception:           # a blank answer, or what depends on one
                    if which == "solutions":
                        raise
    return ns


@pytest.mark.parametrize("assignment", sorted(set(manifest.ASSIGNMENTS) - {"09_performance"}))
def test_fresh_cases_pass_the_solution_and_differ(assignment):
    """The grader's checks with a fresh seed (the student's function called
    in this process): the solution passes every part, the blank notebook
    none, and two seeds draw different inputs."""
    from lstmlib.grading import checks as trusted
    from lstmlib.selfcheck.checks import LocalFunction
    a = manifest.ASSIGNMENTS[assignment]
    ns, blank = _namespace(assignment), _namespace(assignment, "exercises")
    seen = []

    class Recording(LocalFunction):
        def ask(self, request):
            seen.append(request["payload"])
            return super().ask(request)

    try:
        for salt in (1, 2):
            trusted.prepare(assignment, salt=salt)
            for part in a.parts:
                check = trusted.check_function(assignment, part)
                for which in ("visible", "hidden"):
                    check(*[Recording(ns[f], f) for f in part.functions], which)
                    with pytest.raises(AssertionError, match="NotImplementedError"):
                        check(*[LocalFunction(blank[f], f) for f in part.functions], which)
    finally:
        trusted.prepare(assignment)
    half = len(seen) // 2
    assert half and seen[:half] != seen[half:]


# ---------------------------------------------------------------------------
# what a kernel used to report about itself (08's training, 03's experiment,
# 02's count of f's calls) is decided by the grader: the mistake banks and
# the matching attacks of tests/hostile/real.py, graded in this process with
# fresh cases (the CLI runs the same through test_grading_pipeline)

from tests.hostile import real as hostile_real  # noqa: E402

_DECIDED_HERE = ("02_bptt", "03_gradient_norms", "08_training")


def _run_cells(nb):
    """The code cells of notebook ``nb`` (a dict) that are not test cells,
    run in a fresh namespace; a cell that raises is skipped."""
    import contextlib
    import io
    ns = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and not nbgrader_meta(cell).get("grade"):
                try:
                    exec(source(cell), ns)
                except Exception:           # a blank answer, or what depends on one
                    pass
    return ns


def _score(assignment, nb, salt=5):
    """The points notebook ``nb`` gets from the grader's checks (fresh cases
    from ``salt``), its functions called in this process; and the message
    of every failed cell."""
    from lstmlib.grading import checks as trusted
    from lstmlib.selfcheck.checks import LocalFunction
    a = manifest.ASSIGNMENTS[assignment]
    ns = _run_cells(nb)
    total, failed = 0.0, {}
    trusted.prepare(assignment, salt=salt)
    try:
        for part in a.parts:
            check = trusted.check_function(assignment, part)
            for which, (gid, points, _) in (("visible", part.visible), ("hidden", part.hidden)):
                missing = [f for f in part.functions if f not in ns]
                try:
                    if missing:
                        raise AssertionError(f"not defined: {missing}")
                    check(*[LocalFunction(ns[f], f) for f in part.functions], which)
                except AssertionError as exc:
                    failed[gid] = str(exc)
                else:
                    total += points
    finally:
        trusted.prepare(assignment)
    return total, failed


@pytest.mark.parametrize("assignment", _DECIDED_HERE)
def test_mistakes_keep_their_scores_with_fresh_cases(assignment):
    bank = mistakes.load(assignment)
    sol = load(solution(assignment))
    total, failed = _score(assignment, sol)
    assert total == bank.FULL_SCORE, failed
    wrong = {}
    for m in bank.MISTAKES:
        total, failed = _score(assignment, mistakes.apply(sol, m))
        if total != m.expected_score:
            wrong[m.name] = (total, m.expected_score, failed)
    assert not wrong, wrong


@pytest.mark.parametrize("assignment", _DECIDED_HERE)
def test_attacks_on_what_the_kernel_reported_score_zero_for_their_part(assignment):
    a = manifest.ASSIGNMENTS[assignment]
    blank, sol = load(release(assignment)), load(solution(assignment))
    builders = hostile_real.MATCHED_ATTACKS[assignment]
    assert builders
    for name, build in builders.items():
        nb, expected, _ = build(a, blank, sol)
        total, failed = _score(assignment, nb)
        assert total == expected, (name, total, expected, failed)
        assert expected < a.points, name


def test_training_messages_name_the_step_and_the_cause():
    """Part D of 08 through the self-check: a train_step that returns 0.0
    fails at step 0 with the expected loss; one that forgets the update
    fails on the next step's loss and says that the parameters did not
    change; one that returns the sum of squares instead of the mean is
    told its updates are right."""
    ns = _run_cells(load(solution("08_training")))
    checks.prepare("08_training")

    def zero(model, optimizer, x, y, max_norm=1.0):
        return 0.0

    def no_update(model, optimizer, x, y, max_norm=1.0):
        loss, d = ns["mse"](model.forward(x), y)
        model.backward(d)
        return loss

    def summed(model, optimizer, x, y, max_norm=1.0):
        loss = ns["train_step"](model, optimizer, x, y, max_norm)
        return loss * y.size

    with pytest.raises(AssertionError, match=r"step 0: train_step returned the loss 0\.0"):
        checks.training(ns["build_model"], zero, "visible")
    with pytest.raises(AssertionError, match=r"step 1: .*\n.*did not change during steps 0-49"):
        checks.training(ns["build_model"], no_update, "visible")
    with pytest.raises(AssertionError, match="your updates are right"):
        checks.training(ns["build_model"], summed, "visible")


def test_training_refuses_what_the_grader_cannot_replay():
    ns = _run_cells(load(solution("08_training")))
    checks.prepare("08_training")
    lstmlib = ns["lstmlib"]

    def two_layers(rng):
        model = lstmlib.SequenceModel(lstmlib.LSTM(2, 8, num_layers=2, rng=rng),
                                      lstmlib.Linear(8, 1, rng=rng))
        return model, lstmlib.Adam(model.params, lr=0.02)

    def huge(rng):
        model = lstmlib.SequenceModel(lstmlib.LSTM(2, 512, rng=rng),
                                      lstmlib.Linear(512, 1, rng=rng))
        return model, lstmlib.Adam(model.params, lr=0.02)

    with pytest.raises(AssertionError, match="one layer, one direction"):
        checks.training(two_layers, ns["train_step"], "visible")
    with pytest.raises(AssertionError, match="hidden_size should be an int from 1 to 128"):
        checks.training(huge, ns["train_step"], "visible")


def test_numerical_gradient_gets_f_at_the_central_points_only():
    """f returns NaN away from x and x +/- h e_i: one-sided differences are
    told apart from central ones (rtol 1e-7), an evaluation elsewhere is
    named, and f's closure holds no formula."""
    seen = {}

    def central(f, x, df=None, h=1e-5):
        seen["closure"] = {c.cell_contents.__class__.__name__ for c in f.__closure__}
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] += h                       # lands a few ulps off old + h - 2h
            plus = f()
            x[i] -= 2 * h
            minus = f()
            x[i] = old
            d = plus - minus if df is None else (plus - minus) * df
            grad[i] = d.sum() / (2 * h)
        return grad

    def one_sided(f, x, df=None, h=1e-5):
        base, grad = f(), np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            d = f() - base if df is None else (f() - base) * df
            x[i] = old
            grad[i] = d.sum() / h
        return grad

    def all_at_once(f, x, df=None, h=1e-5):
        x += h
        plus = f()
        x -= h
        return np.full_like(x, (plus - f()).sum() / h)

    checks.prepare("02_bptt")
    for which in ("visible", "hidden"):
        checks.numerical_gradient(central, which)
    assert "function" not in seen["closure"] and "ndarray" in seen["closure"]
    with pytest.raises(AssertionError, match="one-sided differences"):
        checks.numerical_gradient(one_sided, "visible")
    with pytest.raises(AssertionError, match=r"f was evaluated 1 time\(s\) at a point other"):
        checks.numerical_gradient(all_at_once, "visible")


def test_experiment_runs_the_students_functions_on_the_graders_configuration():
    """Part D of 03 never reads ``ratios``: with Parts A-C blank it fails
    whatever the notebook holds; the hidden case's configuration is drawn
    (another near and far than the notebook's); a wrong forget bias is
    named in the message."""
    from lstmlib.grading import checks as trusted
    from lstmlib.grading.checks import _compare
    ns = _run_cells(load(solution("03_gradient_norms")))
    fns = [ns[f] for f in ("input_gradient_norms", "set_forget_bias", "gradient_ratio")]
    checks.prepare("03_gradient_norms")
    for which in ("visible", "hidden"):
        checks.experiment(*fns, which)
    hidden = trusted._PARTS["experiment"].cases["hidden"][0]
    config = _compare.thaw(hidden.extra)["config"]
    assert (config["near"], config["far"]) != (1, 20)

    def both_biases(layer, value):
        H = layer.hidden_size
        layer.params["bias_ih_l0"][H:2 * H] = value
        layer.params["bias_hh_l0"][H:2 * H] = value

    with pytest.raises(AssertionError, match=r"'lstm_forget_bias'.*\n.*set_forget_bias"):
        checks.experiment(fns[0], both_biases, fns[2], "hidden")
    blank = _run_cells(load(release("03_gradient_norms")))
    with pytest.raises(AssertionError, match="raised NotImplementedError"):
        checks.experiment(*[blank[f] for f in ("input_gradient_norms", "set_forget_bias",
                                               "gradient_ratio")], "visible")
