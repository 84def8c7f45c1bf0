"""The grading sandbox: each submission's kernel runs under bubblewrap.

nbgrader executes a student's notebook with a Jupyter kernel that runs as
whoever runs ``nbgrader autograde``. This module builds the command line
that puts that kernel in a box built from an allow-list:

* a private mount namespace that starts *empty* and maps read-only only
  what the Python runtime needs: ``/usr`` and the ``/lib*``, ``/bin``
  links, a handful of ``/etc`` files, the interpreter and its standard
  library, and from the virtual environment's site-packages only the
  distributions the assignment hands out (the dependency closure of
  ``ipykernel`` and ``numpy`` plus, say, ``matplotlib``), each top-level
  file or folder bound one by one. lstmlib comes from folders the caller
  names (``python_path``: the assignment's kernel edition), never from the
  repository. Everything else (the course, other courses, the repository,
  torch, ``/root``, ``/home``, the host's ``/tmp``) is simply absent;
* writable: only the working folder and ``/tmp``, two size-limited tmpfs
  (``disk_bytes`` in all). A small trusted bootstrap (``_bootstrap.py``)
  fills the working folder with a copy of the student's files, mounted
  read-only, then executes the kernel; writing past the limit fails with
  ENOSPC inside the kernel;
* importing a module the box lacks (``torch``, the grader) fails with a
  message saying so (``sitecustomize`` in ``_bootstrap.py``);
* no network (``--unshare-net``), its own PID/IPC/UTS namespaces, a new
  session (no terminal injection), killed with its parent;
* an unprivileged user: when grading runs as root, bwrap (as root) builds
  the namespaces and ``setpriv`` then drops to a dedicated uid with no
  capabilities and ``no_new_privs``; when grading runs as an ordinary user,
  bwrap runs unprivileged (it needs unprivileged user namespaces);
* resources bounded per submission, all its processes together: the
  limits and their enforcement (cgroups or a watchdog, rlimits) live in
  :mod:`lstmlib.grading.resources`.

The kernel talks to nbgrader over Unix-domain sockets (ZeroMQ ``ipc``
transport) in a folder mapped into the box, because it has no network.

The launcher that applies all of this is :mod:`lstmlib.grading._launch`
(it loads this file and ``resources.py`` by path, without the package);
the nbgrader preprocessor (:mod:`lstmlib.grading.trusted`) writes one policy
file per notebook and a kernelspec pointing at the launcher. :func:`run_python`
runs a piece of the grader's own code in a fresh box of the same kind.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path


#: Name of the kernelspec the pipeline installs in each scratch folder.
KERNEL_NAME = "lstmlib-sandbox"

#: Paths covered when a caller names them and they fall under a mapped
#: folder (the allow-list leaves everything else out anyway).
ALWAYS_HIDDEN = (
    "/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run", "/root", "/home",
    "/srv", "/mnt", "/media", "/var/mail", "/var/spool", "/var/lib",
    "/var/log", "/var/backups", "/etc/ssh",
)

#: What a graded kernel always gets from site-packages (with their
#: dependencies); an assignment adds its own (matplotlib, numba...).
KERNEL_DISTRIBUTIONS = ("ipykernel", "numpy")

#: Top-level modules whose import fails with a clear message in the box.
ABSENT_MODULES = ("torch",)

#: The system part of the box: mapped read-only where it exists (the
#: ``/lib*`` and ``/bin`` links are recreated as links).
SYSTEM_PATHS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/nsswitch.conf", "/etc/passwd", "/etc/group",
)

#: Inside the box: the trusted helpers (bootstrap, sitecustomize), the
#: read-only copy of the student's files and the python_path folders.
BOX_DIR = "/run/lstmlib-box"

_HERE = os.path.dirname(os.path.abspath(__file__))
BOOTSTRAP = os.path.join(_HERE, "_bootstrap.py")

if __package__:
    from . import resources
else:  # loaded by path (the kernel launcher, without the lstmlib package)
    import importlib.util as _util

    resources = sys.modules.get("_lstmlib_grading_resources")
    if resources is None:
        _spec = _util.spec_from_file_location("_lstmlib_grading_resources",
                                              os.path.join(_HERE, "resources.py"))
        resources = _util.module_from_spec(_spec)
        sys.modules[_spec.name] = resources
        _spec.loader.exec_module(resources)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create the namespaces it needs."""


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


def _under(path, root) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# ------------------------------------------------------------ what is mapped
def python_exposures() -> list[str]:
    """The Python runtime without its packages: the venv's python and
    pyvenv.cfg, the base interpreter, its shared library and standard
    library. (No site-packages: :func:`distribution_paths` adds those.)"""
    import sysconfig

    paths = set()
    for name in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        exe = os.path.join(sys.prefix, "bin", name)
        if os.path.lexists(exe):
            paths.add(exe)
    if os.path.lexists(sys.executable):
        paths.add(sys.executable)
    cfg = os.path.join(sys.prefix, "pyvenv.cfg")
    if os.path.isfile(cfg):
        paths.add(cfg)
    base = getattr(sys, "_base_executable", "") or ""
    if base and os.path.exists(base):
        paths.add(base)
    paths.add(_real(sys.executable))
    stdlib = sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix,
                                                "base": sys.base_prefix})
    if stdlib and os.path.isdir(stdlib):
        paths.add(stdlib)
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        for name in os.listdir(libdir):
            if name.startswith("libpython"):
                paths.add(os.path.join(libdir, name))
    return sorted(p for p in paths if p and p != "/")


def _stdlib_site_packages() -> list[str]:
    """The base installation's own site-packages (pip's home, not the venv's)."""
    import sysconfig

    out = []
    for key in ("purelib", "platlib"):
        path = sysconfig.get_path(key, vars={"base": sys.base_prefix,
                                             "platbase": sys.base_exec_prefix})
        if path and os.path.isdir(path) and not _under(_real(path), _real(sys.prefix)):
            out.append(path)
    return sorted(set(out))


_CLOSURE_CACHE: dict = {}
_PATHS_CACHE: dict = {}


def distribution_closure(names) -> list[str]:
    """Canonical names of ``names`` and everything they require (no extras)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    key = tuple(sorted(set(names)))
    if key in _CLOSURE_CACHE:
        return list(_CLOSURE_CACHE[key])
    seen, todo = {}, list(key)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise ValueError(f"distributions: expected distributions installed in "
                             f"{sys.prefix}, received {name!r} (not installed)") from None
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    _CLOSURE_CACHE[key] = sorted(seen)
    return sorted(seen)


def distribution_paths(names) -> list[str]:
    """Top-level files and folders (``numpy``, ``numpy.libs``, the
    ``.dist-info``...) of the closure of ``names`` in site-packages; no
    ``.pth`` files, no ``__pycache__``, nothing outside site-packages."""
    import importlib.metadata as md

    key = tuple(sorted(set(names)))
    if key in _PATHS_CACHE:
        return list(_PATHS_CACHE[key])
    paths = set()
    for name in distribution_closure(names):
        dist = md.distribution(name)
        root = _real(dist.locate_file(""))
        for f in dist.files or []:
            top = f.parts[0] if f.parts else ""
            if top in ("", "..", "__pycache__") or top.endswith(".pth"):
                continue
            path = os.path.join(root, top)
            if os.path.lexists(path):
                paths.add(path)
    _PATHS_CACHE[key] = sorted(paths)
    return sorted(paths)


def default_hidden(course_paths=()) -> list[str]:
    """Folders covered inside the box should they fall under a mapped folder:
    the course's and the usual private ones. (The box maps nothing but what
    it lists, so these are mostly absent anyway.)"""
    hidden = {_real(p) for p in ALWAYS_HIDDEN if os.path.lexists(p)}
    # The repository lstmlib lives in (it holds solutions/ and grading/).
    hidden.add(os.path.dirname(os.path.dirname(_HERE)))
    home = os.path.expanduser("~")
    if home and home != "/":
        hidden.add(_real(home))
    for path in course_paths:
        if path:
            hidden.add(_real(path))
    return sorted(p for p in hidden if p != "/" and os.path.exists(p))


#: Distributions a kernel gets where its caller names none (with the whole
#: lstmlib package standing in for the assignment's kernel edition).
STANDIN_DISTRIBUTIONS = (*KERNEL_DISTRIBUTIONS, "tqdm", "matplotlib", "numba", "llvmlite")


def standin_contents() -> tuple[list[str], tuple[str, ...]]:
    """(python_path, distributions) of a kernel whose caller names no kernel
    edition: the lstmlib package folder itself, and what any assignment
    imports (those of :data:`STANDIN_DISTRIBUTIONS` installed here)."""
    import importlib.metadata as md

    names = []
    for name in STANDIN_DISTRIBUTIONS:
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            continue
        names.append(name)
    return [os.path.dirname(_HERE)], tuple(names)


def kernel_contents(assignment: str, dest) -> tuple[list[str], tuple[str, ...]]:
    """What a graded kernel of ``assignment`` imports: (python_path folders,
    distribution names), from its kernel edition
    (``lstmlib.grading.kernel_edition``, built into ``dest``). Never the
    whole package: an edition that cannot be built fails the grading."""
    from . import kernel_edition
    folder = kernel_edition.build(assignment, Path(dest))
    names = [*KERNEL_DISTRIBUTIONS, *kernel_edition.packages(assignment)]
    return [os.fspath(folder)], tuple(dict.fromkeys(names))


def _check_python_path(python_path, other_uid: bool):
    """Folders for the kernel's PYTHONPATH: existing, and readable by the
    kernel's uid when it is not the grader's (a mkdtemp folder is 0700)."""
    for folder in python_path:
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise ValueError(f"python_path: expected existing folders, received {folder!r}")
        mode = os.stat(folder).st_mode & 0o777
        if other_uid and mode & 0o005 != 0o005:
            raise ValueError(
                f"python_path: expected folders the kernel's uid may read (mode o+rx), "
                f"received {folder!r} with mode {mode:04o}")


class _Mounts:
    """bwrap arguments for an empty root filled path by path, in order."""

    def __init__(self):
        self.argv = []
        self.present = set()     # made inside the box: dirs, tmpfs, links
        self.mapped = set()      # folders bound from outside (their insides exist)
        self.files = set()

    def exists(self, path):
        return (path in self.present or path in self.files
                or any(_under(path, m) for m in self.mapped))

    def parents(self, path):
        todo, parent = [], os.path.dirname(path)
        while parent not in ("/", "") and not self.exists(parent):
            todo.append(parent)
            parent = os.path.dirname(parent)
        for p in reversed(todo):
            # bwrap makes missing mount points 0700; 0755 lets the kernel's
            # unprivileged uid walk down to what is mapped there
            self.argv += ["--perms", "0755", "--dir", p]
            self.present.add(p)

    def ro(self, path, target=None, _depth=0):
        """Map ``path`` read-only at ``target`` (default: the same path);
        a symlink is recreated as a link and its target mapped too."""
        path = os.path.normpath(path)
        target = os.path.normpath(target or path)
        if _depth > 16 or not os.path.lexists(path):
            return
        if os.path.islink(path) and target == path:
            if not self.exists(path):
                self.parents(path)
                self.argv += ["--symlink", os.readlink(path), path]
                self.present.add(path)
            self.ro(os.path.join(os.path.dirname(path), os.readlink(path)), None, _depth + 1)
            return
        if target in self.mapped or target in self.files:
            return
        if any(_under(target, m) for m in self.mapped) and _real(path) == target:
            return    # already inside a mapped folder
        self.parents(target)
        self.argv += ["--ro-bind", _real(path), target]
        (self.mapped if os.path.isdir(path) else self.files).add(target)

    def tmpfs(self, path, size, perms="01777"):
        self.parents(path)
        self.argv += ["--perms", perms, "--size", str(int(size)), "--tmpfs", path]
        self.present.add(path)     # empty: what lies below it must be made

    def bind(self, outside, target):
        self.parents(target)
        self.argv += ["--bind", outside, target]
        self.mapped.add(target)

    def cover(self, path):
        """An empty read-only tmpfs (or /dev/null) over a mapped path."""
        if not any(_under(path, m) and path != m for m in self.mapped):
            return
        if os.path.isdir(path):
            self.argv += ["--perms", "0755", "--size", "4096", "--tmpfs", path,
                          "--remount-ro", path]
        elif os.path.exists(path):
            self.argv += ["--ro-bind", "/dev/null", path]


def box_mounts(*, distributions=KERNEL_DISTRIBUTIONS, python_path=(), expose_ro=(),
               binds=(), hidden=(), tmp_bytes=256 << 20, work=None) -> tuple[list[str], list[str]]:
    """The mount arguments of a box, and the PYTHONPATH inside it.

    ``python_path``: folders put on the kernel's PYTHONPATH, mounted
    read-only at ``BOX_DIR/path/N``; a package folder itself (one with
    ``__init__.py``) is mounted under its name there. ``expose_ro``: extra
    paths mapped read-only where they are. ``binds``: (outside, inside)
    read-write folders. ``work``: (source, target, size): a tmpfs of
    ``size`` bytes at ``target``, which the bootstrap fills from ``source``
    (mounted read-only). ``hidden``: paths covered if they fall under
    something mapped.
    """
    m = _Mounts()
    for path in SYSTEM_PATHS:
        if os.path.lexists(path):
            m.ro(path)
    m.argv += ["--dev", "/dev", "--proc", "/proc"]
    m.present.update({"/dev", "/proc"})
    m.argv += ["--perms", "01777", "--size", str(1 << 20), "--tmpfs", "/dev/shm"]
    m.tmpfs("/tmp", tmp_bytes)
    for path in python_exposures():
        m.ro(path)
    for path in distribution_paths(distributions):
        m.ro(path)
    for path in expose_ro:
        m.ro(os.fspath(path))
    m.ro(BOOTSTRAP, f"{BOX_DIR}/bootstrap.py")
    m.ro(BOOTSTRAP, f"{BOX_DIR}/site/sitecustomize.py")
    pythonpath = [f"{BOX_DIR}/site"]
    for n, folder in enumerate(python_path):
        folder = _real(folder)
        inside = f"{BOX_DIR}/path/{n}"
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            m.ro(folder, f"{inside}/{os.path.basename(folder)}")
        else:
            m.ro(folder, inside)
        pythonpath.append(inside)
    for outside, target in binds:
        m.bind(os.fspath(outside), os.fspath(target))
    if work is not None:
        source, target, size = work
        m.ro(os.fspath(source), f"{BOX_DIR}/submission")
        m.tmpfs(os.fspath(target), size)
    keep = [os.fspath(t) for _, t in binds] + ([os.fspath(work[1])] if work else [])
    for path in [*hidden, *_stdlib_site_packages()]:
        path = os.fspath(path)
        if not any(_under(k, path) for k in keep):
            m.cover(path)
    return m.argv, pythonpath


def bwrap_command(*, bwrap: str, chdir: str, env: dict, as_root: bool, uid: int | None,
                  setpriv: str | None, command: list[str], expose_ro=(), binds=(),
                  hidden=(), tmp_bytes: int = 256 << 20, distributions=KERNEL_DISTRIBUTIONS,
                  python_path=(), absent=ABSENT_MODULES, work=None) -> list[str]:
    """The full argv: bwrap [namespaces, mounts, env] [setpriv] [bootstrap] command.

    See :func:`box_mounts` for the mounts. With ``work``, the command runs
    after the bootstrap has copied the student's files into the working
    folder's tmpfs.
    """
    _check_python_path(python_path, as_root)
    mounts, pythonpath = box_mounts(
        distributions=distributions, python_path=python_path, expose_ro=expose_ro,
        binds=binds, hidden=hidden, tmp_bytes=tmp_bytes, work=work)
    argv = [bwrap, *mounts,
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname", "sandbox",
            "--die-with-parent", "--new-session",
            "--clearenv",
            "--chdir", chdir]
    env = dict(env)
    env["PYTHONPATH"] = ":".join(pythonpath)
    env["LSTMLIB_ABSENT"] = ",".join(absent)
    for key, value in sorted(env.items()):
        argv += ["--setenv", key, value]
    if as_root:
        if uid is None or setpriv is None:
            raise SandboxUnavailable(
                "grading runs as root, so the kernel must drop to another uid, "
                "which needs setpriv (util-linux)")
        argv += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    if work is not None:
        argv += [command[0], "-I", "-S", f"{BOX_DIR}/bootstrap.py",
                 f"{BOX_DIR}/submission", os.fspath(work[1]), "--"]
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


# ------------------------------------------------------------ checks
_PROBE_CACHE: dict = {}


def probe(uid: int = 61999) -> tuple[bool, str]:
    """Can we build the box here? Returns (ok, reason). Runs bwrap once."""
    key = (os.geteuid(), uid, os.environ.get(resources.CGROUP_ENV))
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
            f"print('COURSE' if os.path.exists({__file__!r}) else 'no course')\n"
            "import numpy\n"
            "print(os.getuid())\n")
    try:
        argv = bwrap_command(
            bwrap=bwrap, chdir="/", env=kernel_env("/tmp"), as_root=as_root,
            uid=uid, setpriv=setpriv, distributions=("numpy",),
            command=[sys.executable, "-c", code])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, ValueError, SandboxUnavailable, subprocess.TimeoutExpired) as exc:
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
    if "COURSE" in proc.stdout:
        return False, "bwrap ran but the course's files were visible inside the box"
    if as_root and proc.stdout.split()[-1] != str(uid):
        return False, "bwrap ran but the kernel did not drop to the grading uid"
    mode = (f"as root: namespaces built by bwrap, kernel dropped to uid {uid}"
            if as_root else "unprivileged bwrap (user namespace)")
    return True, (f"bubblewrap works ({bwrap}, {mode}, file system from an allow-list); "
                  f"resources per submission: {resources.resource_mode()}")


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


def run_python(code: str, stdin: bytes = b"", *, distributions=("numpy",), python_path=(),
               limits: resources.Limits | None = None, timeout: float = 60, uid: int = 61998,
               unsafe_no_sandbox: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a fresh box: no course files, no network,
    only ``distributions`` (and their dependencies) and ``python_path``,
    nothing of any student's. Returns the CompletedProcess (stdout and
    stderr as bytes); raises subprocess.TimeoutExpired past ``timeout``
    seconds (the box killed), SandboxUnavailable where the box cannot be
    built, unless ``unsafe_no_sandbox`` (the pipeline's explicit opt-out)
    runs it unboxed."""
    if not isinstance(code, str):
        raise ValueError(f"code: expected a str, received {type(code).__name__}")
    if not isinstance(stdin, (bytes, bytearray)):
        raise ValueError(f"stdin: expected bytes, received {type(stdin).__name__}")
    limits = resources.as_limits(limits or resources.Limits())
    sandboxed = not require(unsafe_no_sandbox).startswith("UNSANDBOXED")
    as_root = os.geteuid() == 0
    env = kernel_env("/tmp")
    command = [sys.executable, "-c", code]
    if sandboxed:
        argv = bwrap_command(
            bwrap=find_bwrap(), chdir="/tmp", env=env, as_root=as_root, uid=uid,
            setpriv=find_setpriv(), command=command, distributions=tuple(distributions),
            python_path=python_path, tmp_bytes=limits.tmp_bytes)
        run_env = {}
    else:
        argv = command
        run_env = dict(os.environ, **env)
        run_env["PYTHONPATH"] = ":".join(os.fspath(p) for p in python_path)
    sup = resources.Supervisor(limits, tag="run-" + uuid.uuid4().hex[:8])
    try:
        nproc = None if as_root else limits.max_processes + resources.count_tasks(os.getuid())
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=run_env, cwd="/",
                                preexec_fn=sup.preexec(nproc))
        out = {}
        import threading

        def pump():
            out["stdout"], out["stderr"] = proc.communicate(bytes(stdin))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        returncode = sup.wait(proc, timeout)
        reader.join()
        if sup.reason.startswith("still running"):
            raise subprocess.TimeoutExpired(argv, timeout, out.get("stdout"), out.get("stderr"))
        stderr = out.get("stderr", b"")
        end = sup.describe_end(returncode)
        if end:
            stderr += f"\n[sandbox] {end}\n".encode()
        return subprocess.CompletedProcess(argv, returncode, out.get("stdout", b""), stderr)
    finally:
        sup.close()



def write_kernelspec(dest: Path, policy_file: Path, *,
                     display_name="Python (graded, sandboxed)") -> Path:
    """A kernelspec whose argv wraps ipykernel_launcher in the launcher."""
    folder = Path(dest) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-s", os.path.join(_HERE, "_launch.py"),
                 os.fspath(policy_file), "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        # The kernel has no way to receive our signals through bwrap's PID
        # namespace, so interrupts travel as messages on the control channel.
        "interrupt_mode": "message",
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder


def write_policy(path: Path, *, sandboxed: bool, limits: resources.Limits, kernel_dir: Path,
                 runtime_dir: Path, exit_file: Path, scratch_root: Path, uid: int | None,
                 hidden=(), expose_ro=(), python_path=None, distributions=None,
                 absent=ABSENT_MODULES) -> Path:
    """The launcher's instructions for one kernel. ``python_path``: folders
    on the kernel's PYTHONPATH (the kernel edition); ``distributions``: what
    it gets from site-packages (with their dependencies); both None: the
    stand-in of :func:`standin_contents`. ``absent``: top-level names whose
    import fails with a clear message; ``expose_ro``: any further paths
    mapped read-only; ``hidden``: paths covered should they fall under
    something mapped."""
    if python_path is None and distributions is None:
        python_path, distributions = standin_contents()
    python_path = list(python_path or ())
    distributions = tuple(distributions or KERNEL_DISTRIBUTIONS)
    _check_python_path(python_path, sandboxed and uid is not None and os.geteuid() == 0)
    closure = distribution_closure(distributions)   # refuses unknown names now
    policy = {
        "sandboxed": bool(sandboxed),
        "bwrap": find_bwrap(),
        "setpriv": find_setpriv(),
        "limits": dataclasses.asdict(resources.as_limits(limits)),
        "hidden": [os.fspath(p) for p in hidden],
        "expose_ro": [os.fspath(p) for p in expose_ro],
        "python_path": [_real(p) for p in python_path],
        "distributions": list(distributions),
        "distribution_closure": closure,
        "absent": list(absent),
        "kernel_dir": os.fspath(kernel_dir),
        "runtime_dir": os.fspath(runtime_dir),
        "exit_file": os.fspath(exit_file),
        "scratch_root": os.fspath(scratch_root),
        "uid": uid,
        "python": sys.executable,
    }
    Path(path).write_text(json.dumps(policy, indent=1))
    return Path(path)
