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
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lstmlib.grading import resources, sandbox
from tests.hostile import (ATTACKS, ENV_SECRET_NAME, ENV_SECRET_VALUE, Targets, outputs_text,
                           write_submission)
from tests.hostile import tiny_course as tiny


@pytest.fixture
def box(sandbox_mode):
    """Skip without the sandbox (fail in CI, where it must work)."""
    sandbox_mode.require()


def run_cli(course, *args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "lstmlib.grading", *args], cwd=course,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def edition_folder(tmp_path):
    """A small folder standing in for an assignment's kernel edition."""
    folder = tmp_path / "edition"
    (folder / "lstmlib").mkdir(parents=True)
    (folder / "lstmlib" / "__init__.py").write_text("HANDED_OUT = 'lstm_step_forward'\n")
    return folder


def in_box(tmp_path, code, *, limits=None, distributions=("ipykernel", "numpy"),
           python_path=None, mode="cgroup"):
    """Run python code in a box built as the launcher builds a kernel's: the
    working folder a tmpfs filled from a copy of the student's files, the
    resources bounded by a Supervisor (``mode`` "watchdog": without a cgroup).
    Returns (rc, stdout, stderr, work, why the box ended, memory peak, supervisor)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "student.txt").write_text("my answer")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "student.txt").write_text("my answer")
    limits = limits or resources.Limits()
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(copy / "student.txt", 61500, 61500)
    python_path = [edition_folder(tmp_path)] if python_path is None else python_path
    argv = sandbox.bwrap_command(
        bwrap=sandbox.find_bwrap(), hidden=sandbox.default_hidden([tmp_path]),
        distributions=distributions, python_path=python_path,
        work=(str(copy), str(work), limits.work_bytes), tmp_bytes=limits.tmp_bytes,
        chdir=str(work), env=sandbox.kernel_env("/tmp"), as_root=as_root, uid=61500,
        setpriv=sandbox.find_setpriv(), command=[sys.executable, "-c", code])
    sup = resources.Supervisor(limits, cgroup=mode != "watchdog")
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=sup.preexec(
                                    None if as_root else 10_000))
        rc = sup.wait(proc, timeout=120)
        out, err = proc.communicate()
        why = sup.describe_end(rc)
        peak = sup.cgroup.memory_peak() if sup.cgroup else None
    finally:
        sup.close()
    return rc, out, err, work, why, peak, sup


def test_box_holds_only_its_allow_list(box, tmp_path):
    """A box built for exercise 5 (a stand-in edition): no torch, no course
    (this one, another beside it, the repository), no /root, no host /tmp."""
    other = tmp_path.parent / f"othercourse-{os.getpid()}"
    (other / "source").mkdir(parents=True, exist_ok=True)
    (other / "source" / "hidden_tests.py").write_text("secret")
    srv = None
    if os.geteuid() == 0:
        srv = Path(f"/srv/othercourse-{os.getpid()}")
        srv.mkdir(exist_ok=True)
        (srv / "gradebook.db").write_text("secret")
    host_tmp = Path(tempfile.mkstemp(dir="/tmp", prefix="host-secret-")[1])
    secrets_ = [other / "source" / "hidden_tests.py", tiny.REPO / "nbgrader_config.py",
                tiny.REPO / "solutions", host_tmp, Path("/root/.bashrc"),
                Path(os.path.expanduser("~/.bashrc")), *([srv / "gradebook.db"] if srv else [])]
    code = (
        "import os, socket, sys\n"
        f"for path in {[str(p) for p in secrets_]!r}:\n"
        "    try:\n"
        "        open(path).read(); print('READ', path)\n"
        "    except OSError as e:\n"
        "        print('unreadable', path, type(e).__name__)\n"
        "for name in ['torch', 'lstmlib.grading', 'nbgrader', 'sklearn']:\n"
        "    try:\n"
        "        __import__(name); print('IMPORTED', name)\n"
        "    except ImportError as e:\n"
        "        print('absent', name, '|', e)\n"
        "import numpy, ipykernel, lstmlib; print('imports ok', lstmlib.HANDED_OUT)\n"
        "print('student file', open('student.txt').read())\n"
        "for path in ['/etc/pwned', '/usr/pwned', sys.prefix + '/pwned']:\n"
        "    try:\n"
        "        open(path, 'w'); print('WROTE', path)\n"
        "    except OSError:\n"
        "        print('read-only', path)\n"
        "open('ok.txt', 'w').write('mine'); print('own folder writable')\n"
        "open('/tmp/x', 'w').write('x'); print('tmp writable')\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('1.1.1.1', 53)); print('NETWORK')\n"
        "except OSError:\n"
        "    print('no network')\n"
        "print('uid', os.getuid())\n"
        "print('root holds', sorted(os.listdir('/')))\n"
    )
    try:
        rc, out, err, work, *_ = in_box(tmp_path, code)
    finally:
        host_tmp.unlink()
        if srv:
            shutil.rmtree(srv)
        shutil.rmtree(other)
    assert rc == 0, err
    assert "READ" not in out, out
    for path in secrets_:
        assert f"unreadable {path}" in out, out
    assert "IMPORTED" not in out, out
    assert "absent torch | torch is not available in a graded notebook" in out, out
    assert "imports ok lstm_step_forward" in out and "student file my answer" in out
    assert "WROTE" not in out and out.count("read-only") == 3, out
    assert "own folder writable" in out and "tmp writable" in out
    # what the kernel wrote stayed in the box
    assert not (work / "ok.txt").exists() and not Path("/tmp/x").exists()
    assert "no network" in out and "NETWORK" not in out
    root = eval(out.split("root holds")[1].strip())
    assert not {"srv", "home", "mnt", "opt", "var", "boot"} & set(root), root
    if os.geteuid() == 0:
        assert "uid 61500" in out


def test_distributions_are_the_closure_without_editable_installs():
    paths = sandbox.distribution_paths(("ipykernel", "numpy"))
    names = {os.path.basename(p) for p in paths}
    assert {"numpy", "ipykernel", "zmq", "traitlets", "IPython"} <= names
    assert not any(n.endswith(".pth") or n == "__pycache__" for n in names)
    assert not any(n.split("-")[0] in ("torch", "lstmlib", "nbgrader") for n in names), names
    with pytest.raises(ValueError, match="distributions: expected .* received 'no-such-dist'"):
        sandbox.distribution_closure(["no-such-dist"])


def test_absent_modules_fail_with_a_clear_message():
    from lstmlib.grading import _bootstrap

    finder = _bootstrap.AbsentModuleFinder(["torch", "lstmlib.grading"])
    assert finder.find_spec("numpy") is None and finder.find_spec("lstmlib") is None
    with pytest.raises(ModuleNotFoundError, match="torch.nn is not available in a graded"):
        finder.find_spec("torch.nn")
    with pytest.raises(ModuleNotFoundError, match="lstmlib.grading is not available"):
        finder.find_spec("lstmlib.grading")


def test_python_path_must_be_readable_by_the_kernels_uid(tmp_path):
    private = tmp_path / "edition"
    private.mkdir()
    os.chmod(private, 0o700)
    with pytest.raises(ValueError, match="python_path: expected folders the kernel's uid "
                                         "may read .* with mode 0700"):
        sandbox.bwrap_command(bwrap="bwrap", chdir="/tmp", env={}, as_root=True, uid=61500,
                              setpriv="setpriv", command=["python"], python_path=[private])
    with pytest.raises(ValueError, match="python_path: expected existing folders"):
        sandbox.bwrap_command(bwrap="bwrap", chdir="/tmp", env={}, as_root=False, uid=None,
                              setpriv=None, command=["python"],
                              python_path=[tmp_path / "missing"])


def test_supervisor_kills_a_box_filling_the_folder_of_its_sockets(tmp_path):
    """The sockets' folder is the one host folder a kernel may write into:
    past RUNTIME_DIR_BYTES there, the whole box is killed."""
    rt = tmp_path / "rt"
    rt.mkdir()
    writer = ("import os, sys, time\n"
              "for n in range(64):\n"
              "    open(os.path.join(sys.argv[1], f'f{n}'), 'wb').write(b'x' * 65536)\n"
              "time.sleep(60)\n")
    sup = resources.Supervisor(resources.Limits(), runtime_dir=str(rt), cgroup=False)
    try:
        proc = subprocess.Popen([sys.executable, "-c", writer, str(rt)],
                                preexec_fn=sup.preexec(None if os.geteuid() == 0 else 10_000))
        start = time.monotonic()
        rc = sup.wait(proc, timeout=50)
    finally:
        sup.close()
    assert rc == -9 and time.monotonic() - start < 40
    assert sup.describe_end(rc) == (f"box killed: it wrote more than "
                                    f"{resources.RUNTIME_DIR_BYTES} bytes into the folder of "
                                    "its sockets")


def test_limits_refuse_a_disk_smaller_than_tmp():
    with pytest.raises(ValueError, match="disk_bytes: expected more than tmp_bytes"):
        resources.Limits(tmp_bytes=64 << 20, disk_bytes=32 << 20)
    assert resources.Limits(tmp_bytes=16 << 20, disk_bytes=48 << 20).work_bytes == 32 << 20


MODES = ["cgroup", "watchdog"]


def _mode(mode):
    if mode == "cgroup" and not resources.resource_mode().startswith("cgroup"):
        pytest.skip(f"no cgroup here: {resources.resource_mode()}")
    return mode


@pytest.mark.parametrize("mode", MODES)
def test_box_bounds_memory_of_all_its_processes(box, tmp_path, mode):
    """4 children of 300 MB each under a 1 GiB limit for the box: with a
    cgroup the kernel's OOM killer kills processes of the box (SIGKILL) and
    its peak stays under the limit; with the watchdog the whole box is killed."""
    _mode(mode)
    code = (
        "import os, time\n"
        "kids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        b = b'x' * (300 << 20)\n"
        "        time.sleep(4); os._exit(0)\n"
        "    kids.append(pid)\n"
        "killed = 0\n"
        "for pid in kids:\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "    killed += os.WIFSIGNALED(status)\n"
        "    print('child', 'killed' if os.WIFSIGNALED(status) else 'done', flush=True)\n"
        "print('parent alive')\n"
        "raise SystemExit(3 if killed else 0)\n"
    )
    limits = resources.Limits(memory_bytes=1 << 30)
    rc, out, err, _, why, peak, sup = in_box(tmp_path, code, limits=limits, mode=mode)
    if mode == "cgroup":
        assert sup.cgroup is not None
        assert rc == 3 and out.count("child killed") >= 1, (out, err)
        assert peak is not None and peak <= 1 << 30
        assert "reached the memory limit of 1024 MiB" in why
    else:
        assert sup.cgroup is None
        assert rc != 0 and "parent alive" not in out
        assert why.startswith("box killed: its processes together held"), why
        assert "over the limit of 1024 MiB" in why
    if sup.cgroup is not None:   # the box's groups are gone
        assert not [d for d in sup.cgroup.dirs.values() if os.path.exists(d)]


@pytest.mark.parametrize("mode", MODES)
def test_box_bounds_cpu_time_of_all_its_processes(box, tmp_path, mode):
    """4 processes spinning, each under the per-process CPU limit, together
    over the box's: the whole box is killed, and the reason says so."""
    _mode(mode)
    code = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        break\n"
        "start = time.monotonic()\n"
        "while time.monotonic() - start < 30:\n"
        "    pass\n"
        "print('finished')\n"
    )
    start = time.monotonic()
    rc, out, err, _, why, *_ = in_box(tmp_path, code, limits=resources.Limits(cpu_seconds=2),
                                      mode=mode)
    assert rc != 0 and "finished" not in out
    assert why.startswith("box killed: its processes together used"), why
    assert "over the notebook's limit of 2 s" in why
    assert time.monotonic() - start < 25


@pytest.mark.parametrize("where", ["work", "/tmp"])
def test_box_bounds_what_it_writes(box, tmp_path, where):
    """Writing past the box's disk budget fails with ENOSPC; the kernel goes on."""
    limits = resources.Limits(tmp_bytes=16 << 20, disk_bytes=48 << 20)
    folder = "." if where == "work" else "/tmp"
    code = (
        "import errno, os\n"
        "written = 0\n"
        "try:\n"
        "    for n in range(100):\n"
        f"        with open(os.path.join({folder!r}, f'f{{n}}'), 'wb') as fh:\n"
        "            fh.write(b'x' * (4 << 20)); fh.flush()\n"
        "        written += 4 << 20\n"
        "except OSError as e:\n"
        "    print('error', errno.errorcode[e.errno])\n"
        "print('written MiB', written >> 20)\n"
        "print('alive')\n"
    )
    rc, out, err, *_ = in_box(tmp_path, code, limits=limits)
    assert rc == 0, err
    assert "error ENOSPC" in out and "alive" in out, out
    written = int(out.split("written MiB")[1].split()[0])
    budget = limits.work_bytes if where == "work" else limits.tmp_bytes
    assert 0 < written <= budget >> 20


@pytest.mark.parametrize("mode", MODES)
def test_box_bounds_processes(box, tmp_path, mode):
    """A fork bomb: every process forks until it cannot, and the box holds at
    most max_processes at once."""
    _mode(mode)
    if mode == "watchdog" and os.geteuid() != 0:
        pytest.skip("RLIMIT_NPROC of an unprivileged grader counts all its processes")
    code = (
        "import os, time\n"
        "made = 0\n"
        "start = time.monotonic()\n"
        "while time.monotonic() - start < 3:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.05); continue\n"
        "    if pid == 0:\n"
        "        made = 0; continue\n"
        "    made += 1\n"
        "if made:\n"
        "    print('forked', made, flush=True)\n"
        "time.sleep(1)\n"
    )
    limits = resources.Limits(max_processes=20)
    rc, out, err, *_, sup = in_box(tmp_path, code, limits=limits, mode=mode)
    assert "forked" in out, err
    # every process that forked printed once: together fewer than the limit
    assert 1 <= out.count("forked") < 20, out


def test_run_python_returns_numpy_result_and_sees_no_course(box, tmp_path):
    secret = tmp_path / "course" / "source" / "hidden.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text("secret")
    code = (
        "import json, os, sys, numpy as np\n"
        "x = np.array(json.loads(sys.stdin.read()))\n"
        "print(json.dumps({'sum': float(x.sum()),\n"
        f"    'course': os.path.exists({str(secret)!r}),\n"
        f"    'repo': os.path.exists({str(tiny.REPO / 'nbgrader_config.py')!r}),\n"
        "    'cwd': os.getcwd()}))\n"
        "import torch\n"
    )
    proc = sandbox.run_python(code, b"[1.5, 2.5, 3.0]", timeout=60)
    result = json.loads(proc.stdout.decode().splitlines()[0])
    assert result == {"sum": 7.0, "course": False, "repo": False, "cwd": "/tmp"}
    assert proc.returncode == 1
    assert b"torch is not available in a graded notebook" in proc.stderr
    with pytest.raises(subprocess.TimeoutExpired, match="timed out after 2"):
        sandbox.run_python("while True: pass", timeout=2)
    with pytest.raises(ValueError, match="stdin: expected bytes, received str"):
        sandbox.run_python("pass", "text")


def test_run_python_refuses_without_bwrap_unless_unsafe(monkeypatch):
    monkeypatch.setenv("LSTMLIB_BWRAP", "/nonexistent/bwrap")
    monkeypatch.setattr(sandbox, "_PROBE_CACHE", {})
    with pytest.raises(sandbox.SandboxUnavailable, match="refusing to grade without"):
        sandbox.run_python("print(1)")
    proc = sandbox.run_python("import numpy; print(numpy.add(2, 3))", unsafe_no_sandbox=True)
    assert proc.stdout.decode().split() == ["5"]


def test_resource_mode_falls_back_to_the_watchdog(monkeypatch):
    monkeypatch.setenv(resources.CGROUP_ENV, "0")
    assert resources.resource_mode().startswith(
        f"watchdog per box (turned off by {resources.CGROUP_ENV}=0)")
    assert resources.Cgroup.create(resources.Limits()) is None


def test_sandbox_check_names_the_resource_bound(box):
    proc = subprocess.run([sys.executable, "-m", "lstmlib.grading", "sandbox-check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resources per submission: " + resources.resource_mode() in proc.stdout


@pytest.mark.slow
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


@pytest.mark.slow
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
