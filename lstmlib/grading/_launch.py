"""Kernel launcher named in the sandbox kernelspec.

Usage (written into kernel.json by :func:`lstmlib.grading.sandbox.write_kernelspec`)::

    python .../lstmlib/grading/_launch.py POLICY.json -f CONNECTION_FILE [ipykernel args]

It runs in the trusted grading process (nbgrader's autograde in one
submission's scratch folder), prepares the kernel's writable folder, then
starts ``ipykernel_launcher`` inside bubblewrap with resource limits and
waits for it, recording how it ended (exit status or signal) in the
policy's ``exit_file`` so the instructor's report can say why a kernel died.

The kernel's working folder is a *copy* of the folder nbgrader executes in
(regular files only): it is mounted read-only inside the box, and the
bootstrap copies it into a size-limited tmpfs at the same path, so the
student's code sees the usual layout, but nothing it writes (a symlink named
like the output notebook, say) ever reaches the folder nbgrader writes into,
and the total it writes is bounded. All the box's processes together are
held to the policy's limits by :class:`resources.Supervisor` (a cgroup per
box where the machine allows it, else a watchdog), which is removed when
the kernel ends.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

if __package__:
    from . import resources, sandbox
else:  # run by path from the kernelspec: skip importing the lstmlib package
    import importlib.util as _util

    def _by_path(name):
        spec = _util.spec_from_file_location(
            f"_lstmlib_grading_{name}", os.path.join(os.path.dirname(__file__), f"{name}.py"))
        module = _util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    resources = _by_path("resources")     # sandbox.py finds it in sys.modules
    sandbox = _by_path("sandbox")

PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _inside(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def copy_regular_tree(src, dst, uid=None):
    """Copy folders and regular files only (no symlinks, devices, fifos)."""
    os.makedirs(dst, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = os.path.relpath(dirpath, src)
        target_dir = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target_dir, exist_ok=True)
        if uid is not None:
            os.chown(target_dir, uid, uid)
        dirnames[:] = [d for d in dirnames
                       if stat.S_ISDIR(os.lstat(os.path.join(dirpath, d)).st_mode)]
        for name in filenames:
            source = os.path.join(dirpath, name)
            if not stat.S_ISREG(os.lstat(source).st_mode):
                continue
            target = os.path.join(target_dir, name)
            shutil.copyfile(source, target, follow_symlinks=False)
            if uid is not None:
                os.chown(target, uid, uid)


def _describe(returncode, limits):
    if returncode is None:
        return "still running"
    sig = -returncode if returncode < 0 else (returncode - 128 if returncode > 128 else None)
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        why = {
            "SIGXCPU": f"CPU time limit of {limits['cpu_seconds']} s for the notebook exceeded",
            "SIGKILL": "killed (SIGKILL: CPU hard limit, out of memory, or os.kill)",
            "SIGSEGV": "crashed (segmentation fault)",
            "SIGABRT": "aborted (often an allocation failing under the memory limit)",
            "SIGXFSZ": f"file size limit of {limits['max_file_bytes']} bytes exceeded",
        }.get(name, f"killed by {name}")
        return f"kernel {why}"
    return f"kernel exited with status {returncode} (sys.exit/os._exit or a crash)"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or "-f" not in argv:
        print("usage: _launch.py POLICY -f CONNECTION_FILE [ipykernel args]",
              file=sys.stderr)
        return 2
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:
        return 1
    with open(argv[0]) as fh:
        policy = json.load(fh)
    kernel_args = argv[1:]
    conn = kernel_args[kernel_args.index("-f") + 1]
    limits = policy["limits"]
    cwd = os.getcwd()
    if not _inside(cwd, policy["scratch_root"]):
        print(f"launcher: refusing to start a graded kernel outside the scratch "
              f"folder {policy['scratch_root']} (cwd {cwd})", file=sys.stderr)
        return 2

    as_root = os.geteuid() == 0
    sandboxed = policy["sandboxed"]
    uid = policy["uid"] if (sandboxed and as_root) else None
    kernel_dir = policy["kernel_dir"]
    runtime_dir = policy["runtime_dir"]
    if os.path.lexists(kernel_dir):
        shutil.rmtree(kernel_dir)
    copy_regular_tree(cwd, kernel_dir, uid)
    # The connection file may live anywhere (often /tmp, hidden in the box):
    # give the kernel a copy in the runtime folder, which is mapped inside.
    kernel_conn = os.path.join(runtime_dir, "connection.json")
    shutil.copyfile(conn, kernel_conn)
    os.chmod(kernel_conn, 0o600)
    kernel_args[kernel_args.index("-f") + 1] = kernel_conn
    if uid is not None:
        os.chown(runtime_dir, uid, uid)
        os.chmod(runtime_dir, 0o700)
        os.chown(kernel_conn, uid, uid)

    python_cmd = [policy["python"], "-m", "ipykernel_launcher", *kernel_args]
    box_limits = resources.as_limits(limits)
    if sandboxed:
        command = sandbox.bwrap_command(
            bwrap=policy["bwrap"], hidden=policy.get("hidden", ()),
            expose_ro=policy.get("expose_ro", ()),
            distributions=policy.get("distributions", sandbox.KERNEL_DISTRIBUTIONS),
            python_path=policy.get("python_path", ()),
            absent=policy.get("absent", sandbox.ABSENT_MODULES),
            binds=[(runtime_dir, runtime_dir)],
            work=(kernel_dir, cwd, box_limits.work_bytes),
            chdir=cwd, env=sandbox.kernel_env("/tmp"), as_root=as_root,
            uid=uid, setpriv=policy["setpriv"], command=python_cmd,
            tmp_bytes=box_limits.tmp_bytes)
        env, run_cwd = {}, "/"
    else:
        command = python_cmd
        env = dict(os.environ, **sandbox.kernel_env(kernel_dir))
        env["TMPDIR"] = env["IPYTHONDIR"] = kernel_dir
        env["MPLCONFIGDIR"] = env["NUMBA_CACHE_DIR"] = kernel_dir
        run_cwd = kernel_dir
    supervisor = resources.Supervisor(box_limits, runtime_dir=runtime_dir if sandboxed else None)
    # An unprivileged instructor cannot switch uid: RLIMIT_NPROC counts all
    # their tasks, so allow what they already run plus the budget.
    nproc = None if as_root else box_limits.max_processes + resources.count_tasks(os.getuid())
    try:
        proc = subprocess.Popen(command, cwd=run_cwd, env=env, stdin=subprocess.DEVNULL,
                                preexec_fn=supervisor.preexec(nproc))
    except BaseException:
        supervisor.close()
        raise

    def forward(signum, _frame):
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        returncode = supervisor.wait(proc)
        reason = supervisor.describe_end(returncode) or _describe(returncode, limits)
    finally:
        supervisor.close()
    try:
        with open(policy["exit_file"], "w") as fh:
            json.dump({"returncode": returncode, "reason": reason}, fh)
    except OSError:
        pass
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main())
