"""Resource limits of one graded box: all its processes together.

:class:`Limits` are the bounds of one submission's kernel (memory, CPU
time, tasks, file sizes, open files, and the disk it may write: the sizes of
the box's two tmpfs, ``/tmp`` and the working folder, which
:mod:`lstmlib.grading.sandbox` mounts). :class:`Supervisor` holds a box to
them: a cgroup per box where the machine allows it (:class:`Cgroup`, v1 or
v2: memory, number of tasks, one core, CPU time watched), else a watchdog
that sums the memory and CPU time of the box's processes and kills the box
when over; :func:`resource_mode` says which. Per-process ``setrlimit``
limits stay as a second line (address space, CPU seconds, processes of the
uid, file size, open files, no core dumps).

The kernel launcher (``_launch.py``) loads this file by path, without the
lstmlib package: it imports only the standard library.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
import uuid

GiB = 1 << 30
MiB = 1 << 20

#: Most the kernel may write into the (host) folder of its sockets; over
#: it, the box is killed.
RUNTIME_DIR_BYTES = 1 << 20

#: Set to 0 to bound resources by the watchdog even where cgroups work.
CGROUP_ENV = "LSTMLIB_SANDBOX_CGROUPS"


@dataclasses.dataclass
class Limits:
    """Resource limits of one submission's kernel, all its processes together."""

    memory_bytes: int = 4 * GiB        # memory of the box (and RLIMIT_AS per process)
    cpu_seconds: int = 120             # CPU time of the box: the whole notebook
    max_processes: int = 64            # tasks in the box (and RLIMIT_NPROC of the uid)
    max_file_bytes: int = 64 * MiB     # RLIMIT_FSIZE: largest file written
    max_open_files: int = 512          # RLIMIT_NOFILE
    tmp_bytes: int = 256 * MiB         # size of the box's /tmp (a tmpfs)
    disk_bytes: int = 512 * MiB        # all it may write: /tmp plus the working folder

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"{field.name}: expected a positive int, received {value!r}")
        if self.disk_bytes <= self.tmp_bytes:
            raise ValueError(
                f"disk_bytes: expected more than tmp_bytes ({self.tmp_bytes}), since the "
                f"working folder gets the rest, received {self.disk_bytes}")

    @property
    def work_bytes(self) -> int:
        """Size of the working folder's tmpfs."""
        return self.disk_bytes - self.tmp_bytes


def as_limits(limits) -> Limits:
    """A Limits from a Limits or a policy's dict (older policies lack fields)."""
    if isinstance(limits, Limits):
        return limits
    known = {f.name for f in dataclasses.fields(Limits)}
    values = {k: v for k, v in dict(limits or {}).items() if k in known}
    if "disk_bytes" not in values and "tmp_bytes" in values:
        values["disk_bytes"] = max(2 * values["tmp_bytes"], Limits.disk_bytes)
    return Limits(**values)


def _mountinfo():
    """(fstype, mount point, super options) of the cgroup file systems."""
    out = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields, rfields = left.split(), right.split()
                if rfields and rfields[0] in ("cgroup", "cgroup2"):
                    out.append((rfields[0], fields[4], rfields[2] if len(rfields) > 2 else ""))
    except OSError:
        pass
    return out


def _own_cgroups():
    """Controller (or '' for cgroup2) -> this process's cgroup path."""
    own = {}
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    own[c] = path
    except OSError:
        pass
    return own


def _write(path, value):
    with open(path, "w") as fh:
        fh.write(str(value))


def _read(path) -> str:
    with open(path) as fh:
        return fh.read()


class Cgroup:
    """One box's cgroup(s): memory, tasks and CPU of all its processes.

    cgroup v1 (one hierarchy per controller: memory, pids, cpu, cpuacct)
    or cgroup v2 (one group with memory, pids and cpu enabled). Made by
    :meth:`create`, which returns None where the machine does not let us.
    """

    def __init__(self, version, dirs):
        self.version = version
        self.dirs = dirs          # role -> folder (v1) or {"all": folder} (v2)

    @classmethod
    def create(cls, limits: Limits, tag: str | None = None) -> "Cgroup | None":
        if os.environ.get(CGROUP_ENV) == "0":
            return None
        tag = f"lstmlib-box-{tag or uuid.uuid4().hex[:12]}"
        own = _own_cgroups()
        mounts = _mountinfo()
        v1 = {}
        for fstype, point, opts in mounts:
            if fstype == "cgroup":
                for c in ("memory", "pids", "cpu", "cpuacct"):
                    if c in opts.split(",") and c in own:
                        v1.setdefault(c, os.path.join(point, own[c].lstrip("/")))
        if "memory" in v1 and "pids" in v1:
            group = cls._make_v1(v1, limits, tag)
            if group is not None:
                return group
        for fstype, point, _ in mounts:
            if fstype == "cgroup2" and "" in own:
                group = cls._make_v2(os.path.join(point, own[""].lstrip("/")), limits, tag)
                if group is not None:
                    return group
        return None

    @staticmethod
    def _sweep(parent, age=120.0):
        """Remove the empty groups of boxes whose launcher was killed before
        it could (rmdir fails on a group that still holds a process)."""
        try:
            names = [n for n in os.listdir(parent) if n.startswith("lstmlib-box-")]
        except OSError:
            return
        now = time.time()
        for name in names:
            folder = os.path.join(parent, name)
            try:
                if now - os.stat(folder).st_mtime > age:
                    os.rmdir(folder)
            except OSError:
                pass

    @classmethod
    def _make_v1(cls, parents, limits, tag):
        for parent in parents.values():
            cls._sweep(parent)
        dirs = {}
        try:
            for role, parent in parents.items():
                os.mkdir(os.path.join(parent, tag))
                dirs[role] = os.path.join(parent, tag)
            group = cls("v1", dirs)
            _write(os.path.join(dirs["memory"], "memory.limit_in_bytes"), limits.memory_bytes)
            swap = os.path.join(dirs["memory"], "memory.memsw.limit_in_bytes")
            if os.path.exists(swap):
                _write(swap, limits.memory_bytes)
            _write(os.path.join(dirs["pids"], "pids.max"), limits.max_processes)
            if "cpu" in dirs:
                period = int(_read(os.path.join(dirs["cpu"], "cpu.cfs_period_us")))
                _write(os.path.join(dirs["cpu"], "cpu.cfs_quota_us"), period)
            return group
        except (OSError, ValueError):
            cls("v1", dirs).remove()
            return None

    @classmethod
    def _make_v2(cls, parent, limits, tag):
        try:
            enabled = _read(os.path.join(parent, "cgroup.subtree_control")).split()
        except OSError:
            return None
        if not {"memory", "pids"} <= set(enabled):
            return None
        cls._sweep(parent)
        folder = os.path.join(parent, tag)
        try:
            os.mkdir(folder)
        except OSError:
            return None
        group = cls("v2", {"all": folder})
        try:
            _write(os.path.join(folder, "memory.max"), limits.memory_bytes)
            if os.path.exists(os.path.join(folder, "memory.swap.max")):
                _write(os.path.join(folder, "memory.swap.max"), 0)
            _write(os.path.join(folder, "pids.max"), limits.max_processes)
            if os.path.exists(os.path.join(folder, "cpu.max")):
                _write(os.path.join(folder, "cpu.max"), "100000 100000")
            return group
        except OSError:
            group.remove()
            return None

    def describe(self) -> str:
        if self.version == "v2":
            return ("cgroup v2 per box: memory.max, pids.max, cpu.max (one core), "
                    "CPU time from cpu.stat")
        parts = ["memory.limit_in_bytes", "pids.max"]
        if "cpu" in self.dirs:
            parts.append("cpu.cfs_quota_us (one core)")
        parts.append("CPU time from cpuacct.usage" if "cpuacct" in self.dirs
                     else "CPU time summed by the watchdog")
        return "cgroup v1 per box: " + ", ".join(parts)

    def join(self, pid: int):
        """Move ``pid`` (and so everything it starts) into the box's groups."""
        for folder in self.dirs.values():
            _write(os.path.join(folder, "cgroup.procs"), pid)

    def cpu_seconds(self) -> float | None:
        try:
            if self.version == "v2":
                for line in _read(os.path.join(self.dirs["all"], "cpu.stat")).splitlines():
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) / 1e6
            elif "cpuacct" in self.dirs:
                return int(_read(os.path.join(self.dirs["cpuacct"], "cpuacct.usage"))) / 1e9
        except (OSError, ValueError):
            pass
        return None

    def oom_kills(self) -> int:
        name, folder = (("memory.events", self.dirs["all"]) if self.version == "v2"
                        else ("memory.oom_control", self.dirs["memory"]))
        try:
            for line in _read(os.path.join(folder, name)).splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def memory_peak(self) -> int | None:
        name, folder = (("memory.peak", self.dirs["all"]) if self.version == "v2"
                        else ("memory.max_usage_in_bytes", self.dirs["memory"]))
        try:
            return int(_read(os.path.join(folder, name)))
        except (OSError, ValueError, KeyError):
            return None

    def pids(self) -> list[int]:
        found = set()
        for folder in self.dirs.values():
            try:
                found.update(int(p) for p in _read(os.path.join(folder, "cgroup.procs")).split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def kill(self, wait: float = 5.0):
        """SIGKILL every process of the box, until none is left."""
        kill_file = os.path.join(self.dirs.get("all", ""), "cgroup.kill")
        deadline = time.monotonic() + wait
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return not pids
            if self.version == "v2" and os.path.exists(kill_file):
                try:
                    _write(kill_file, 1)
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)

    def remove(self):
        """Kill what is left and remove the groups."""
        self.kill()
        for folder in self.dirs.values():
            for _ in range(50):
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _proc_table():
    """pid -> (ppid, cpu seconds incl. reaped children, resident bytes)."""
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[1] ppid; [11..14] utime stime cutime cstime; [21] rss pages
        try:
            table[int(name)] = (int(fields[1]),
                                sum(int(x) for x in fields[11:15]) / tick,
                                int(fields[21]) * page)
        except (IndexError, ValueError):
            continue
    return table


def _descendants(root: int, table) -> list[int]:
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


_MODE_CACHE: dict = {}


def resource_mode() -> str:
    """Which bound on a submission's resources is in force here (a line for
    the grading log and ``sandbox-check``)."""
    key = (os.geteuid(), os.environ.get(CGROUP_ENV))
    if key not in _MODE_CACHE:
        group = Cgroup.create(Limits(), "probe-" + uuid.uuid4().hex[:8])
        if group is not None:
            mode = group.describe()
            group.remove()
        else:
            why = ("turned off by " + CGROUP_ENV + "=0" if os.environ.get(CGROUP_ENV) == "0"
                   else "no cgroup could be made here")
            mode = (f"watchdog per box ({why}): memory and CPU time of the box's processes "
                    "summed every 0.2 s, the box killed when over; processes bounded by "
                    "RLIMIT_NPROC of its uid")
        _MODE_CACHE[key] = mode
    return _MODE_CACHE[key]


class Supervisor:
    """Bounds everything one ``Popen`` starts, together: a cgroup where the
    machine allows it, else a watchdog over the process tree (the box has its
    own PID namespace, so every process in it descends from bwrap)."""

    POLL = 0.2

    def __init__(self, limits, *, tag=None, runtime_dir=None, cgroup=True):
        self.limits = as_limits(limits)
        self.cgroup = Cgroup.create(self.limits, tag) if cgroup else None
        self.runtime_dir = runtime_dir
        self.reason = ""

    @property
    def mode(self) -> str:
        return self.cgroup.describe() if self.cgroup else "watchdog per box"

    def preexec(self, nproc: int | None = None):
        """The child's set-up before bwrap runs: the cgroup, then rlimits."""
        import ctypes
        import resource

        lim = self.limits
        nproc = lim.max_processes if nproc is None else nproc
        cgroup = self.cgroup

        def run():
            if cgroup is not None:
                cgroup.join(os.getpid())
            resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes,) * 2)
            resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 5))
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim.max_file_bytes,) * 2)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lim.max_open_files,) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.setsid()
            try:   # die with the launcher
                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
            except (OSError, AttributeError):
                pass

        return run

    def _runtime_bytes(self) -> int:
        total = 0
        try:
            with os.scandir(self.runtime_dir) as it:
                for entry in it:
                    try:
                        total += entry.stat(follow_symlinks=False).st_size + 512
                    except OSError:
                        pass
        except OSError:
            pass
        return total

    def check(self, proc) -> str:
        """'' while within the limits, else why the box must go."""
        lim = self.limits
        table = None
        cpu = self.cgroup.cpu_seconds() if self.cgroup else None
        if cpu is None:
            table = _proc_table()
            cpu = sum(table[p][1] for p in _descendants(proc.pid, table))
        if cpu > lim.cpu_seconds:
            return (f"its processes together used {cpu:.0f} s of CPU, over the "
                    f"notebook's limit of {lim.cpu_seconds} s")
        if self.cgroup is None:
            rss = sum(table[p][2] for p in _descendants(proc.pid, table))
            if rss > lim.memory_bytes:
                return (f"its processes together held {rss / MiB:.0f} MiB of memory, over "
                        f"the limit of {lim.memory_bytes / MiB:.0f} MiB")
        if self.runtime_dir and self._runtime_bytes() > RUNTIME_DIR_BYTES:
            return (f"it wrote more than {RUNTIME_DIR_BYTES} bytes into the folder of its "
                    "sockets")
        return ""

    def kill(self, proc):
        if self.cgroup is not None:
            self.cgroup.kill()
        else:
            table = _proc_table()
            for pid in _descendants(proc.pid, table):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            proc.kill()
        except OSError:
            pass

    def wait(self, proc, timeout: float | None = None) -> int:
        """Wait for ``proc``, killing the whole box when over a limit or past
        ``timeout`` seconds (then ``self.reason`` says why)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return proc.wait(self.POLL)
            except subprocess.TimeoutExpired:
                pass
            why = self.check(proc)
            if not why and deadline is not None and time.monotonic() > deadline:
                why = f"still running after {timeout:g} s"
            if why:
                self.reason = why
                self.kill(proc)
                return proc.wait()

    def describe_end(self, returncode: int) -> str:
        """Why the box ended, if its bounds ended it ('' otherwise)."""
        if self.reason:
            return f"box killed: {self.reason}"
        if returncode != 0 and self.cgroup is not None and self.cgroup.oom_kills():
            return (f"a process of the box was killed: the box's processes together reached "
                    f"the memory limit of {self.limits.memory_bytes / MiB:.0f} MiB")
        return ""

    def close(self):
        if self.cgroup is not None:
            self.cgroup.remove()


def count_tasks(uid):
    """Tasks (threads) the uid runs now: an unprivileged grader's
    RLIMIT_NPROC must allow them plus the box's budget."""
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
