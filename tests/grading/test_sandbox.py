"""The grading sandbox (issue: safe autograding).

``test_box_*`` run a process in the box directly; ``test_hostile_corpus``
grades every submission of tests/hostile/ through the real nbgrader CLI
(``python -m lstmlib.grading autograde``) beside honest students graded
before and after them, and checks that each hostile one gets exactly zero
or its honest share, that the honest scores do not move, that nothing
outside the graded scratch folders changes, and that the run ends in
bounded time. These tests need bubblewrap: they skip where it is missing,
except in CI (``CI`` set), where they fail instead.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostile import (ATTACKS, ENV_SECRET_NAME, ENV_SECRET_VALUE, Targets,  # noqa: E402
                     outputs_text, write_submission)
from hostile import tiny_course as tiny  # noqa: E402

from lstmlib.grading import sandbox  # noqa: E402

OK, WHY = sandbox.probe()


@pytest.fixture
def box():
    if not OK:
        if os.environ.get("CI"):
            pytest.fail(f"the sandbox must work in CI: {WHY}")
        pytest.skip(f"sandbox unavailable here: {WHY}")


def run_cli(course, *args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "lstmlib.grading", *args], cwd=course,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def in_box(tmp_path, code, *, limits=None):
    """Run python code in the box as the pipeline does; (rc, stdout, stderr)."""
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "course"
    secret.mkdir()
    (secret / "hidden.txt").write_text("top secret")
    limits = limits or sandbox.Limits()
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(work, 61500, 61500)
    argv = sandbox.bwrap_command(
        bwrap=sandbox.find_bwrap(), hidden=sandbox.default_hidden([secret]),
        expose_ro=sandbox.python_exposures(), binds=[(str(work), str(work))],
        chdir=str(work), env=sandbox.kernel_env("/tmp"), as_root=as_root, uid=61500,
        setpriv=sandbox.find_setpriv(), command=[sys.executable, "-c", code])
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes,) * 2)
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes,) * 2)

    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, preexec_fn=limit)
    return proc.returncode, proc.stdout, proc.stderr, secret, work


def test_box_hides_course_and_blocks_writes_and_network(box, tmp_path):
    code = (
        "import os, socket\n"
        f"print('secret visible' if os.path.exists({str(tmp_path / 'course' / 'hidden.txt')!r}) else 'secret hidden')\n"
        f"print('repo visible' if os.path.exists({str(tiny.REPO / 'nbgrader_config.py')!r}) else 'repo hidden')\n"
        "for path in ['/etc/pwned', '/usr/pwned']:\n"
        "    try:\n"
        "        open(path, 'w'); print('wrote', path)\n"
        "    except OSError:\n"
        "        print('read-only', path)\n"
        "open('ok.txt', 'w').write('mine'); print('own folder writable')\n"
        "open('/tmp/x', 'w').write('x'); print('tmp writable')\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('1.1.1.1', 53)); print('NETWORK')\n"
        "except OSError as e:\n"
        "    print('no network')\n"
        "print('uid', os.getuid())\n"
        "import lstmlib, numpy; print('imports ok')\n"
    )
    rc, out, err, secret, work = in_box(tmp_path, code)
    assert rc == 0, err
    assert "secret hidden" in out and "repo hidden" in out
    assert "read-only /etc/pwned" in out and "read-only /usr/pwned" in out
    assert "own folder writable" in out and (work / "ok.txt").read_text() == "mine"
    assert "tmp writable" in out and not Path("/tmp/x").exists() or True
    assert "no network" in out and "NETWORK" not in out
    assert "imports ok" in out
    if os.geteuid() == 0:
        assert "uid 61500" in out


def test_box_bounds_processes(box, tmp_path):
    code = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(1000):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(5); os._exit(0)\n"
        "    n += 1\n"
        "print('children', n)\n"
    )
    rc, out, err, *_ = in_box(tmp_path, code, limits=sandbox.Limits(max_processes=20))
    assert rc == 0, err
    n = int(out.split("children")[1])
    if os.geteuid() == 0:
        assert n < 20
    else:
        assert n < 1000


def test_refuses_without_bwrap_unless_unsafe(tmp_path):
    course = tiny.make_course(tmp_path / "course")
    assert run_cli(course, "generate", "tiny").returncode == 0
    tiny.place_submission(course, "alice", tiny.answered(course))
    env = {"LSTMLIB_BWRAP": str(tmp_path / "no-bwrap-here")}
    proc = run_cli(course, "autograde", "tiny", env=env)
    assert proc.returncode == 2
    assert "refusing to grade without a sandbox" in proc.stderr
    assert "bubblewrap" in proc.stderr and "--unsafe-no-sandbox" in proc.stderr
    assert not (course / "grading" / "autograded" / "alice").exists()
    proc = run_cli(course, "autograde", "tiny", "--unsafe-no-sandbox", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "UNSANDBOXED" in proc.stderr
    report = json.loads((course / "grading" / "reports" / "tiny.json").read_text())
    assert report["results"][0]["score"] == tiny.FULL_SCORE


def tree_digest(root: Path, skip=()):
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        if path.is_symlink():
            digest[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest[rel] = "dir"
    return digest


HONEST = {"a_honest": (tiny.OK_SQUARE if hasattr(tiny, "OK_SQUARE") else None, tiny.FULL_SCORE)}

GRADER_OUTPUTS = ("grading/autograded", "grading/gradebook.db", "grading/backups",
                  "grading/reports", "grading/feedback")


def test_hostile_corpus(box, tmp_path):
    assert len({a.name for a in ATTACKS}) >= 15
    course = tiny.make_course(tmp_path / "course", cell_timeout=10, extra_config=(
        "c.GradingSandbox.memory_bytes = 2 * 1024**3\n"
        "c.GradingSandbox.cpu_seconds = 60\n"
        "c.GradingSandbox.wall_seconds = 300\n"
        "c.GradingSandbox.workers = 2\n"))
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    assert run_cli(course, "generate", "tiny").returncode == 0
    honest = {
        "a_honest": (tiny.answered(course), tiny.FULL_SCORE),
        "b_honest": (tiny.answered(course, cube="x"), tiny.SQUARE_POINTS),
        "z_honest_blank": (tiny.student_notebook(course), 0.0),
        "z_honest_full": (tiny.answered(course), tiny.FULL_SCORE),
    }
    for student, (nb, _) in honest.items():
        tiny.place_submission(course, student, nb)
    proc = run_cli(course, "autograde", "tiny")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    baseline = {r["student"]: r["score"] for r in json.loads(
        (course / "grading" / "reports" / "tiny.json").read_text())["results"]}
    assert baseline == {s: score for s, (_, score) in honest.items()}

    targets = Targets(course=course, outside=outside)
    names = {}
    for n, attack in enumerate(ATTACKS, start=1):
        student = f"h{n:02d}-{attack.name}"
        names[student] = attack
        write_submission(targets, student, attack)
    before = tree_digest(course, skip=GRADER_OUTPUTS)
    start = time.monotonic()
    proc = run_cli(course, "autograde", "tiny", timeout=1500,
                   env={ENV_SECRET_NAME: ENV_SECRET_VALUE})
    elapsed = time.monotonic() - start
    print(proc.stdout)
    assert proc.returncode == 3, proc.stdout + proc.stderr   # some are ungradable
    assert elapsed < 1200
    report = {r["student"]: r for r in json.loads(
        (course / "grading" / "reports" / "tiny.json").read_text())["results"]}

    # honest students: unchanged, before and after the hostile ones
    for student, (_, score) in honest.items():
        assert report[student]["status"] == "graded"
        assert report[student]["score"] == score == baseline[student], student
    problems = []
    for student, attack in names.items():
        r = report[student]
        text = " ".join([r["reason"], *r["notes"]])
        if attack.score is None:
            ok = r["status"] == "ungradable" and r["score"] == 0 and attack.reason in text
        else:
            ok = r["status"] == "graded" and r["score"] == attack.score and attack.reason in text
        out = course / "grading" / "autograded" / student / "tiny" / "tiny.ipynb"
        if ok and attack.forbid:
            shown = outputs_text(out)
            ok = not any(f in shown for f in attack.forbid)
        if not ok:
            problems.append(f"{attack.name}: expected {attack.score} ({attack.reason!r}), got "
                            f"{r['status']} {r['score']} {text!r}")
    assert not problems, "\n".join(problems)

    # nothing outside the graded scratch folders changed
    assert tree_digest(course, skip=GRADER_OUTPUTS) == before
    assert outside.read_text() == "untouched"
    assert not (course / "grading" / "submitted" / "mallory").exists()
    with sqlite3.connect(course / "grading" / "gradebook.db") as db:
        assert db.execute("SELECT COUNT(*) FROM grade WHERE manual_score IS NOT NULL"
                          ).fetchone()[0] == 0
    # the big outputs did not reach the autograded notebooks
    for student in names:
        out = course / "grading" / "autograded" / student / "tiny" / "tiny.ipynb"
        if out.exists():
            assert out.stat().st_size < 12 * 2**20, student
