"""The grading sandbox: each submission's kernel runs under bubblewrap.

nbgrader executes a student's notebook with a Jupyter kernel that runs as
whoever runs ``nbgrader autograde``. This module builds the command line
that puts that kernel in a box:

* a private mount namespace where ``/`` is read-only and the course
  (repository, source notebooks with hidden tests, gradebook, exchange,
  every student's files, ``/tmp``, home folders, ``/run``) is covered by
  empty tmpfs mounts; only the Python installation and the ``lstmlib``
  package are mapped back (read-only), and one scratch folder, a copy of
  the student's own files, is writable;
* no network (``--unshare-net``), its own PID/IPC/UTS namespaces, a new
  session (no terminal injection), killed with its parent;
* an unprivileged user: when grading runs as root, bwrap (as root) builds
  the namespaces and ``setpriv`` then drops to a dedicated uid with no
  capabilities and ``no_new_privs``, so the per-user process limit holds;
  when grading runs as an ordinary user, bwrap runs unprivileged (it needs
  unprivileged user namespaces) and the kernel keeps that user's uid;
* resource limits (``setrlimit``): address space, CPU seconds for the
  kernel's whole life (so for the whole notebook), processes, file size,
  open files, no core dumps.

The kernel talks to nbgrader over Unix-domain sockets (ZeroMQ ``ipc``
transport) in a folder mapped into the box, because it has no network.

The launcher that applies all of this is :mod:`lstmlib.grading._launch`;
the pipeline (:mod:`lstmlib.grading.pipeline`) writes one policy file per
submission and a kernelspec pointing at the launcher.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

GiB = 1 << 30
MiB = 1 << 20

#: Name of the kernelspec the pipeline installs in each scratch folder.
KERNEL_NAME = "lstmlib-sandbox"

#: Paths always covered by an empty tmpfs inside the box (when they exist).
ALWAYS_HIDDEN = (
    "/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run", "/root", "/home",
    "/srv", "/mnt", "/media", "/var/mail", "/var/spool", "/var/lib",
    "/var/log", "/var/backups", "/etc/ssh",
)

#: Hidden paths that get an empty *writable* tmpfs of bounded size instead.
WRITABLE_TMP = ("/tmp", "/var/tmp", "/dev/shm")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create the namespaces it needs."""


@dataclasses.dataclass
class Limits:
    """Resource limits for one notebook's kernel (and its children)."""

    memory_bytes: int = 4 * GiB        # RLIMIT_AS of the kernel
    cpu_seconds: int = 120             # RLIMIT_CPU: the whole notebook
    max_processes: int = 64            # RLIMIT_NPROC: tasks of the uid
    max_file_bytes: int = 64 * MiB     # RLIMIT_FSIZE: largest file written
    max_open_files: int = 512          # RLIMIT_NOFILE
    tmp_bytes: int = 256 * MiB         # size of the box's /tmp (a tmpfs)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"{field.name}: expected a positive int, received {value!r}")


def find_bwrap() -> str | None:
    """The bwrap executable (``$LSTMLIB_BWRAP``, else PATH, else /usr/bin)."""
    override = os.environ.get("LSTMLIB_BWRAP")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("bwrap") or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)


def find_setpriv() -> str | None:
    return shutil.which("setpriv") or (
        "/usr/bin/setpriv" if os.access("/usr/bin/setpriv", os.X_OK) else None)


def _real(path) -> str:
    return os.path.realpath(os.fspath(path))


def python_exposures() -> list[str]:
    """Folders the kernel must read: the interpreter, its libraries, lstmlib."""
    import lstmlib

    paths = {
        _real(sys.prefix), _real(sys.base_prefix), _real(sys.exec_prefix),
        os.path.dirname(_real(sys.executable)),
        os.path.dirname(_real(lstmlib.__file__)),
    }
    # The venv's python is often a symlink into the base installation.
    exe = os.path.join(sys.prefix, "bin", "python")
    if os.path.exists(exe):
        paths.add(os.path.dirname(os.path.dirname(_real(exe))))
    for entry in sys.path:
        if entry and os.path.isdir(entry) and "site-packages" in entry:
            paths.add(_real(entry))
    return sorted(p for p in paths if p and p != "/")


def default_hidden(course_paths=()) -> list[str]:
    """Folders covered inside the box: the course's and the usual private ones."""
    import lstmlib

    hidden = {_real(p) for p in ALWAYS_HIDDEN if os.path.lexists(p)}
    # The repository lstmlib lives in (it holds solutions/ and grading/).
    hidden.add(os.path.dirname(os.path.dirname(_real(lstmlib.__file__))))
    home = os.path.expanduser("~")
    if home and home != "/":
        hidden.add(_real(home))
    for path in course_paths:
        if path:
            hidden.add(_real(path))
    return sorted(p for p in hidden if p != "/" and os.path.exists(p))


def bwrap_command(*, bwrap: str, hidden, expose_ro, binds, chdir: str,
                  env: dict, as_root: bool, uid: int | None,
                  setpriv: str | None, command: list[str],
                  tmp_bytes: int = 256 << 20) -> list[str]:
    """The full argv: bwrap [namespaces, mounts, env] [setpriv] command.

    ``binds`` maps an outside folder to the path it gets inside (read-write).
    """
    argv = [bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname", "sandbox",
            "--die-with-parent", "--new-session",
            "--clearenv"]
    inside = set()

    def under_hidden(path):
        return any(path == h or path.startswith(h.rstrip("/") + "/") for h in inside)

    for path in sorted(set(hidden), key=lambda p: (p.count("/"), p)):
        if under_hidden(path):
            continue
        if path in WRITABLE_TMP:
            argv += ["--perms", "01777", "--size", str(tmp_bytes), "--tmpfs", path]
        elif os.path.isdir(path) and not os.path.islink(path):
            argv += ["--size", str(1 << 20), "--tmpfs", path]
        elif os.path.isfile(path):
            argv += ["--ro-bind", "/dev/null", path]
        inside.add(path)

    made = set()

    def parents(path):
        # bwrap makes missing mount points 0700; make them 0755 ourselves so
        # the unprivileged kernel can walk down to what is mapped there.
        out = []
        parent = os.path.dirname(path)
        while parent not in ("/", "") and under_hidden(parent) and parent not in inside:
            if parent not in made:
                out.append(parent)
                made.add(parent)
            parent = os.path.dirname(parent)
        return [arg for p in reversed(out) for arg in ("--perms", "0755", "--dir", p)]

    for path in sorted(set(expose_ro), key=lambda p: (p.count("/"), p)):
        if os.path.isdir(path) and under_hidden(path):
            argv += parents(path) + ["--ro-bind", path, path]
    for outside, target in binds:
        argv += parents(target) + ["--bind", outside, target]
    argv += ["--chdir", chdir]
    for key, value in sorted(env.items()):
        argv += ["--setenv", key, value]
    if as_root:
        if uid is None or setpriv is None:
            raise SandboxUnavailable(
                "grading runs as root, so the kernel must drop to another uid, "
                "which needs setpriv (util-linux)")
        argv += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return argv + list(command)


def kernel_env(home: str) -> dict:
    """The kernel's whole environment (bwrap --clearenv drops the rest)."""
    bindir = os.path.dirname(sys.executable)
    env = {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": "/tmp",
        "IPYTHONDIR": "/tmp/.ipython",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "MPLBACKEND": "Agg",
        "NUMBA_CACHE_DIR": "/tmp/.numba",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
        "NBGRADER_EXECUTION": "autograde",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = "1"
    return env


_PROBE_CACHE: dict = {}


def probe(uid: int = 61999) -> tuple[bool, str]:
    """Can we build the box here? Returns (ok, reason). Runs bwrap once."""
    key = (os.geteuid(), uid)
    if key in _PROBE_CACHE:
        return _PROBE_CACHE[key]
    result = _probe(uid)
    _PROBE_CACHE[key] = result
    return result


def _probe(uid: int) -> tuple[bool, str]:
    bwrap = find_bwrap()
    if bwrap is None:
        return False, ("bubblewrap (bwrap) is not installed; on Debian/Ubuntu: "
                       "apt-get install bubblewrap (or run scripts/system-deps.sh)")
    as_root = os.geteuid() == 0
    setpriv = find_setpriv()
    if as_root and setpriv is None:
        return False, "grading runs as root but setpriv (util-linux) is missing"
    code = ("import os, socket, sys\n"
            "s = socket.socket()\n"
            "try:\n"
            "    s.connect(('1.1.1.1', 53)); print('NET')\n"
            "except OSError:\n"
            "    pass\n"
            "print(os.getuid())\n")
    argv = bwrap_command(
        bwrap=bwrap, hidden=default_hidden(), expose_ro=python_exposures(),
        binds=[], chdir="/", env=kernel_env("/tmp"), as_root=as_root,
        uid=uid, setpriv=setpriv,
        command=[sys.executable, "-I", "-c", code])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap could not run: {exc}"
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        hint = ""
        if not as_root:
            hint = (" (unprivileged bwrap needs user namespaces: sysctl "
                    "kernel.unprivileged_userns_clone=1 on Debian; on Ubuntu 24.04 "
                    "an AppArmor profile allowing bwrap to create them)")
        return False, f"bwrap failed: {msg[-1] if msg else proc.returncode}{hint}"
    if "NET" in proc.stdout:
        return False, "bwrap ran but the network was reachable inside the box"
    if as_root and proc.stdout.split()[-1] != str(uid):
        return False, "bwrap ran but the kernel did not drop to the grading uid"
    mode = (f"as root: namespaces built by bwrap, kernel dropped to uid {uid}"
            if as_root else "unprivileged bwrap (user namespace)")
    return True, f"bubblewrap works ({bwrap}, {mode})"


def require(unsafe_no_sandbox: bool = False) -> str:
    """Raise SandboxUnavailable (with the reason) unless the box works."""
    ok, reason = probe()
    if ok:
        return reason
    if unsafe_no_sandbox:
        return f"UNSANDBOXED (--unsafe-no-sandbox): {reason}"
    raise SandboxUnavailable(
        f"refusing to grade without a sandbox: {reason}. Students' code would run "
        "with your permissions and could read the hidden tests, rewrite the "
        "gradebook or other submissions. Install bubblewrap, or pass "
        "--unsafe-no-sandbox to grade trusted notebooks anyway.")


def write_kernelspec(dest: Path, policy_file: Path, *, display_name="Python (graded, sandboxed)") -> Path:
    """A kernelspec whose argv wraps ipykernel_launcher in the launcher."""
    folder = Path(dest) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-s", os.path.join(os.path.dirname(__file__), "_launch.py"),
                 os.fspath(policy_file), "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        # The kernel has no way to receive our signals through bwrap's PID
        # namespace, so interrupts travel as messages on the control channel.
        "interrupt_mode": "message",
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder


def write_policy(path: Path, *, sandboxed: bool, limits: Limits, hidden, expose_ro,
                 kernel_dir: Path, runtime_dir: Path, exit_file: Path,
                 scratch_root: Path, uid: int | None) -> Path:
    policy = {
        "sandboxed": bool(sandboxed),
        "bwrap": find_bwrap(),
        "setpriv": find_setpriv(),
        "limits": dataclasses.asdict(limits),
        "hidden": list(hidden),
        "expose_ro": list(expose_ro),
        "kernel_dir": os.fspath(kernel_dir),
        "runtime_dir": os.fspath(runtime_dir),
        "exit_file": os.fspath(exit_file),
        "scratch_root": os.fspath(scratch_root),
        "uid": uid,
        "python": sys.executable,
    }
    Path(path).write_text(json.dumps(policy, indent=1))
    return Path(path)
