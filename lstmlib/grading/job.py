"""One submission's grading, apart from the course: what a worker runs.

:func:`grade_submission` builds a scratch course in a private folder (a
copy of the submission, of the assignment's part of the gradebook and of
its data files), runs ``nbgrader autograde`` there in its own process with
a wall-clock limit, its kernel boxed by :mod:`lstmlib.grading.sandbox`, and
returns a :class:`Result` as plain data: the scores, comments and graded
notebooks the trusted driver merges into the real gradebook
(:mod:`lstmlib.grading.merge`). nbgrader restores the test cells (hidden
tests included) from the gradebook copy in the scratch course; the graded
test cells of the manifest are then decided in that nbgrader process, not
in the kernel (:mod:`lstmlib.grading.trusted`): the kernel only calls the
student's functions on inputs drawn afresh for the grading and sends back
what they return. The submission is read, checked (names, metadata
restored, review flags) and copied, never run outside the box; a failed
nbgrader process (not a time limit) gets one more attempt from a clean
slate. :func:`grade_task` is the form an executor runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import _child, sandbox
from .course import Course, check_assignment_name, check_student_name, env_with_venv_path
from .scratch import copy_regular, regular_files, scratch_root, sqlite_copy

#: Review flags: a pattern in the lines a student wrote (lines of the released
#: notebook, such as its install cell's subprocess call, never raise one).
SUSPICIOUS = {
    "get_ipython": r"\bget_ipython\b",
    "IPython internals": r"\bIPython\b|showtraceback|input_transformers|run_cell",
    "excepthook": r"excepthook",
    "tracing hooks": r"\bsettrace\b|\bsetprofile\b",
    "ctypes": r"\bctypes\b",
    "builtins": r"\b__builtins__\b|\bbuiltins\b",
    "patching numpy checks": (r"\bnp\.(allclose|isclose|array_equal|testing)\s*="
                              r"|numpy\.(allclose|isclose|testing)\s*="),
    "__eq__ override": r"def\s+__eq__",
    "ndarray subclass": r"class\s+\w+\s*\(\s*(np|numpy)\.ndarray",
    "process control": r"\bos\.(_exit|kill|fork|system|exec\w*)\b|\bsubprocess\b|\bsys\.exit\b",
    "network": r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b",
    "sys.modules": r"\bsys\.modules\b",
    "frame inspection": r"\binspect\b|\bsys\._getframe\b|\bgc\.get_referrers\b",
    "file access": (r"\bopen\s*\(|\bos\.(remove|unlink|rename|replace|chmod)\b"
                    r"|\bshutil\b|\bsqlite3\b"),
    "self-check harness": r"\b_harness\b|\b_codec\b|selfcheck\.\w+\.\w+\s*=",
    "numba internals": r"\bnumba\.core\b|\bCPUDispatcher\b|\bnumba\.\w+\s*=",
    "code objects": r"__code__|\bFunctionType\b|\bCodeType\b|__globals__|__closure__",
    "dynamic import": r"\bimportlib\b|\b__import__\b",
}


@dataclasses.dataclass
class Result:
    """One submission's outcome, as shown in the instructor's report."""

    student: str
    assignment: str
    status: str                 # "graded" | "ungradable"
    score: float = 0.0
    max_score: float = 0.0
    reason: str = ""
    notes: list = dataclasses.field(default_factory=list)
    flags: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    scratch: str = ""
    payload: dict = dataclasses.field(default_factory=dict)   # see grade_submission
    #: {notebook: {grade_id: digest of the inputs the grader sent}}: the
    #: cases are drawn afresh at each grading, so two gradings differ here
    inputs: dict = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        head = f"{self.student:<20} {self.status:<11} {self.score:6.2f}/{self.max_score:<6.2f}"
        tail = [self.reason] if self.reason else []
        tail += self.notes
        if self.flags:
            tail.append("review: " + ", ".join(self.flags))
        return head + (" " + "; ".join(tail) if tail else "")


_SCRATCH_CONFIG = '''\
# Written by lstmlib.grading for one submission's scratch course.
c = get_config()
load_subconfig({real_config!r})
c.CourseDirectory.root = {course!r}
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = {db_url!r}
c.Autograde.create_student = True
c.Autograde.autograde_preprocessors = [
    "lstmlib.grading.trusted.TrustedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata"]
c.OverwriteCells.add_missing_cells = True
c.Execute.timeout = {cell_timeout!r}
c.Execute.startup_timeout = 120
c.TrustedExecute.box_dir = {box_dir!r}
c.TrustedExecute.box_uid = {box_uid!r}
c.TrustedExecute.unsandboxed = {unsandboxed!r}
c.GuardedExecute.status_file = {status_file!r}
c.GuardedExecute.max_cell_output_bytes = {max_cell!r}
c.GuardedExecute.max_notebook_output_bytes = {max_nb!r}
c.TrustedExecute.call_timeout = {call_timeout!r}
c.TrustedExecute.exit_file = {exit_file!r}
c.TrustedExecute.inputs_file = {inputs_file!r}
'''

_LOG_NOTES = [
    (re.compile(r"Attribute '((?!checksum)\w+)' for cell (\S+) has changed"),
     lambda m: f"edited {m.group(1)} of cell {m.group(2)} (restored)"),
    (re.compile(r"Missing grade cell (\S+) encountered"),
     lambda m: f"deleted cell {m.group(1)} (restored)"),
    (re.compile(r"Cell '(\S+)' does not exist in the database"),
     lambda m: f"unknown cell id {m.group(1)} (ignored)"),
    (re.compile(r"Skipping unknown notebook: (\S+)"),
     lambda m: f"extra notebook {os.path.basename(m.group(1))} (ignored)"),
]


class _Job:
    """Grade one submission in its own scratch course."""

    def __init__(self, course, assignment, student, notebooks, scratch: Path,
                 *, uid, sandboxed):
        self.owner = course
        self.cfg = course.config
        self.assignment = assignment
        self.student = student
        self.notebooks = notebooks
        self.scratch = scratch
        self.course = scratch / "course"
        self.uid = uid
        self.sandboxed = sandboxed
        self._attempts = 0
        self._retry = False

    def _clear_attempt(self):
        """Forget what the nbgrader process of a failed attempt wrote (its
        log is kept beside as autograde-<n>.log)."""
        for name in ("status.jsonl", "inputs.jsonl", "exit.json"):
            (self.scratch / name).unlink(missing_ok=True)
        log = self.scratch / "autograde.log"
        if log.is_file():
            os.replace(log, self.scratch / f"autograde-{self._attempts}.log")
        shutil.rmtree(self.course / "autograded", ignore_errors=True)

    def run(self) -> Result:
        start = time.monotonic()
        result = Result(self.student, self.assignment, "ungradable", scratch=str(self.scratch))
        try:
            problem = self._prepare(result)
            if problem:
                result.reason = problem
            else:
                notes = list(result.notes)
                self._autograde(result)
                if result.status != "graded" and self._retry:
                    # the nbgrader process itself failed (not the time limit;
                    # the kernel's failures are handled inside nbgrader): it may
                    # be the machine's fault, so one more attempt from a clean
                    # slate decides
                    first = result.reason
                    self._clear_attempt()
                    result.notes[:] = notes
                    result.reason = ""
                    self._autograde(result)
                    result.notes.append(
                        f"graded on a second attempt (the first: {first})"
                        if result.status == "graded" else
                        f"a second attempt failed too (the first: {first})")
        finally:
            result.seconds = round(time.monotonic() - start, 2)
        return result

    # -- preparation (trusted, reads the submission only) -------------------
    def _prepare(self, result) -> str:
        import nbformat
        src = self.cfg.submitted / self.student / self.assignment
        sub = self.course / "submitted" / self.student / self.assignment
        sub.mkdir(parents=True)
        skipped = copy_regular(src, sub, max_bytes=self.cfg.max_submission_file_bytes)
        if skipped:
            result.notes.append("files over the size limit not copied: " + ", ".join(skipped))
        present = sorted(p.stem for p in sub.glob("*.ipynb"))
        missing = [nb for nb in self.notebooks if nb not in present]
        unknown = [nb for nb in present if nb not in self.notebooks]
        if len(missing) == 1 and len(unknown) == 1:
            os.replace(sub / f"{unknown[0]}.ipynb", sub / f"{missing[0]}.ipynb")
            result.notes.append(f"notebook renamed to {unknown[0]}.ipynb: graded as "
                                f"{missing[0]}.ipynb")
            missing, unknown = [], []
        if len(missing) == len(self.notebooks):
            return ("no notebook to grade: expected " +
                    ", ".join(f"{m}.ipynb" for m in missing) +
                    (f", found {', '.join(u + '.ipynb' for u in unknown)}" if unknown else ""))
        for m in missing:
            result.notes.append(f"notebook {m}.ipynb missing (scored 0)")
        for name in self.notebooks:
            path = sub / f"{name}.ipynb"
            if not path.exists():
                continue
            try:
                nb = nbformat.read(str(path), as_version=4)
                nbformat.validate(nb)
            except Exception as exc:  # JSON or schema errors
                msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                return f"corrupt notebook {name}.ipynb: {type(exc).__name__}: {msg}"
            self._review(nb, name, result)
            if self._restore_metadata(nb, name, result):
                nbformat.write(nb, str(path))
        # the gradebook copy, the assignment's data files, the config
        sqlite_copy(self.cfg.db_path, self.course / "gradebook.db")
        copy_regular(self.cfg.source / self.assignment, self.course / "source" / self.assignment,
                      exclude=lambda rel: rel.suffix == ".ipynb")
        for sub_dir in ("rt", "kernel", "share", "cfg", "data"):
            (self.scratch / sub_dir).mkdir(parents=True, exist_ok=True)
        (self.course / "nbgrader_config.py").write_text(_SCRATCH_CONFIG.format(
            real_config=str(self.cfg.config_file), course=str(self.course),
            course_id=self.cfg.course_id, db_url=f"sqlite:///{self.course / 'gradebook.db'}",
            cell_timeout=self.cfg.cell_timeout, box_dir=str(self.scratch),
            box_uid=self.uid, unsandboxed=not self.sandboxed,
            status_file=str(self.scratch / "status.jsonl"),
            max_cell=self.cfg.max_cell_output_bytes, max_nb=self.cfg.max_notebook_output_bytes,
            call_timeout=self.cfg.call_seconds, exit_file=str(self.scratch / "exit.json"),
            inputs_file=str(self.scratch / "inputs.jsonl")))
        return ""

    def _restore_metadata(self, nb, name, result) -> bool:
        """Put back the nbgrader metadata of the student version (points,
        grade_id, locked...); drop it from cells with an unknown grade_id."""
        import copy
        import nbformat
        release = self.cfg.release / self.assignment / f"{name}.ipynb"
        if not release.is_file():
            return False
        ref = {}
        for c in nbformat.read(str(release), as_version=4).cells:
            meta = c.metadata.get("nbgrader")
            if meta and meta.get("grade_id"):
                ref[meta["grade_id"]] = meta
        changed = False
        for c in nb.cells:
            meta = c.metadata.get("nbgrader")
            if meta is None:
                continue
            gid = meta.get("grade_id") if isinstance(meta, dict) else None
            if gid in ref:
                if meta != ref[gid]:
                    c.metadata["nbgrader"] = copy.deepcopy(ref[gid])
                    result.notes.append(f"edited nbgrader metadata of cell {gid} (restored)")
                    changed = True
            else:
                del c.metadata["nbgrader"]
                result.notes.append(f"unknown cell id {gid} (its nbgrader metadata removed)")
                changed = True
        return changed

    def _review(self, nb, name, result):
        """Flag student-editable code that touches the grader's machinery:
        the lines the student wrote, not those the released notebook has."""
        import nbformat
        release = self.cfg.release / self.assignment / f"{name}.ipynb"
        ref = None
        if release.is_file():
            try:
                ref = nbformat.read(str(release), as_version=4)
            except Exception:
                ref = None
        released = {line.strip() for c in (ref.cells if ref else ())
                    if c.cell_type == "code" for line in c.source.splitlines()}
        text = "\n".join(line for c in nb.cells if c.cell_type == "code"
                         and not c.metadata.get("nbgrader", {}).get("locked", False)
                         for line in c.source.splitlines() if line.strip() not in released)
        for label, pattern in SUSPICIOUS.items():
            if re.search(pattern, text) and label not in result.flags:
                result.flags.append(label)
        if ref is not None:
            order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in ref.cells]
            order = [g for g in order if g]
            got = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
            got = [g for g in got if g in order]
            if got != sorted(got, key=order.index):
                result.notes.append(f"cells of {name}.ipynb reordered (graded as submitted)")

    # -- the nbgrader process (untrusted notebook, boxed kernel) --------------
    def _autograde(self, result):
        env = {k: v for k, v in env_with_venv_path(os.environ).items()
               if not k.startswith(("JUPYTER", "JPY_"))}
        env.update(JUPYTER_PATH=str(self.scratch / "share"),
                   JUPYTER_RUNTIME_DIR=str(self.scratch / "rt"),
                   JUPYTER_CONFIG_DIR=str(self.scratch / "cfg"),
                   JUPYTER_DATA_DIR=str(self.scratch / "data"),
                   JUPYTER_PLATFORM_DIRS="1", PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "lstmlib.grading._child", "autograde", self.assignment,
               f"--student={self.student}", "--force"]
        log_path = self.scratch / "autograde.log"
        self._attempts += 1
        timed_out = False
        proc = _grader_context().Process(
            target=_child.run, args=(str(self.course), env, cmd[3:], str(log_path),
                                     {"RLIMIT_AS": 8 << 30, "RLIMIT_CORE": 0}))
        proc.start()
        proc.join(timeout=self.cfg.wall_seconds)
        if proc.is_alive():
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            proc.join()
        proc.returncode = proc.exitcode
        log_text = log_path.read_text(errors="replace")
        for pattern, describe in _LOG_NOTES:
            for m in pattern.finditer(log_text):
                note = describe(m)
                if note not in result.notes:
                    result.notes.append(note)
        statuses = []
        status_file = self.scratch / "status.jsonl"
        if status_file.is_file():
            statuses = [json.loads(line) for line in status_file.read_text().splitlines() if line]
        inputs_file = self.scratch / "inputs.jsonl"
        if inputs_file.is_file():
            for line in inputs_file.read_text().splitlines():
                if line:
                    entry = json.loads(line)
                    result.inputs[entry["notebook"]] = entry["cells"]
        for st in statuses:
            for event in st.get("events", []):
                note = f"{st['notebook']}.ipynb: {event}"
                if note not in result.notes:
                    result.notes.append(note)
            truncated = [c["grade_id"] or f"#{c['index']}" for c in st["cells"]
                         if c["output_truncated"]]
            if truncated:
                result.notes.append(f"output over the limit in {st['notebook']}: "
                                    + ", ".join(truncated))
        outputs = [self.course / "autograded" / self.student / self.assignment / f"{nb}.ipynb"
                   for nb in self.notebooks
                   if (self.course / "submitted" / self.student / self.assignment /
                       f"{nb}.ipynb").exists()]
        self._retry = False
        if timed_out:
            result.reason = (f"wall-clock limit of {self.cfg.wall_seconds} s for the "
                             "submission exceeded")
        elif proc.returncode != 0 or not all(p.is_file() for p in outputs):
            result.reason = self._failure_reason(log_text, statuses, proc.returncode)
            self._retry = self._attempts < 2
        else:
            result.status = "graded"

    def _failure_reason(self, log_text, statuses, returncode):
        died = next((st for st in statuses if st.get("died")), None)
        exit_info = {}
        if (self.scratch / "exit.json").is_file():
            try:
                exit_info = json.loads((self.scratch / "exit.json").read_text())
            except ValueError:
                pass
        parts = []
        if died:
            d = died["died"]
            where = f" in cell {d.get('grade_id') or '#' + str(d.get('cell_index'))}" \
                if d.get("cell_index") is not None else ""
            parts.append(f"{d['error']}{where} of {died['notebook']}.ipynb: "
                         f"{d.get('message', '')[:200]}")
        # the kernel's end says why only if it ended abnormally: a kernel shut
        # down cleanly (status 0) after nbgrader itself failed explains nothing
        if exit_info.get("reason") and exit_info.get("returncode", 1) != 0:
            parts.append(exit_info["reason"])
        if not died:
            # a traceback's last line; the name may be qualified, the message empty
            errors = re.findall(r"^((?:\w+\.)*\w+(?:Error|Exception|Exit))(?:: (.*))?$",
                                log_text, re.M)
            if errors:
                name, message = errors[-1]
                parts.append(f"{name.rpartition('.')[2]}: {message[:200]}" if message
                             else name.rpartition(".")[2])
            else:   # nbgrader's own words: its last ERROR line
                logged = re.findall(r"^\[\w+ \| ERROR\] (.+)$", log_text, re.M)
                if logged:
                    parts.append(f"nbgrader: {logged[-1][:200]}")
        if not parts:
            parts.append(exit_info.get("reason") or
                         f"nbgrader autograde exited with status {returncode}")
        return "; ".join(parts)


_CONTEXT = None


def _grader_context():
    """A fork server with nbgrader preloaded: each submission's grading
    process is a fresh fork of it (its own process, no import cost)."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["lstmlib.grading._child_preload"])
        _CONTEXT = ctx
    return _CONTEXT


def grade_submission(course_root, assignment, student, *, files=None, gradebook_template=None,
                     unsafe_no_sandbox=False, uid=61000, work_dir=None, scratch=None,
                     keep_scratch=False, log_bytes=65536) -> Result:
    """Grade one submission in its own scratch course and sandbox.

    Writes nothing into the course: the course folder is only read (its
    config, source data files and released notebooks). ``files`` (relative
    path -> bytes) is the submission; without it the files are read from the
    course's submitted folder. ``gradebook_template`` (bytes of a sqlite
    gradebook holding the assignment) replaces the course gradebook, so a
    worker never opens it. The scratch course is ``scratch`` (a new folder
    made here, in a private parent) or a new private folder in ``work_dir``
    (else the temporary folder); it is removed afterwards unless
    ``keep_scratch`` (then the result's ``scratch`` names it). Returns a
    picklable :class:`Result` whose ``payload`` holds what
    :func:`lstmlib.grading.merge.merge_result` needs: the submission
    timestamp, per notebook the late penalty, every cell's auto score and
    comment, the graded notebook files (bytes) and the tail of nbgrader's log.
    """
    course = Course(course_root, log=lambda msg: None)
    check_assignment_name(assignment)
    check_student_name(student)
    mode = sandbox.require(unsafe_no_sandbox)
    if scratch is None:
        work = scratch_root(work_dir)
        os.chmod(work, 0o711)
    else:
        work = Path(scratch)
        work.mkdir()
        os.chmod(work, 0o711)
    inputs = work / "in"     # what the task brought: the submission, the gradebook
    try:
        cfg = course.config
        changes = {}
        if files is not None:
            staging = inputs / "submitted"
            for rel, data in files.items():
                target = (staging / student / assignment / rel).resolve()
                if not str(target).startswith(str(staging.resolve()) + os.sep):
                    raise ValueError(f"files: expected relative paths inside the submission, "
                                     f"received {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            (staging / student / assignment).mkdir(parents=True, exist_ok=True)
            changes["submitted"] = staging
        if gradebook_template is not None:
            inputs.mkdir(exist_ok=True)
            (inputs / "gradebook.db").write_bytes(gradebook_template)
            changes.update(db_path=inputs / "gradebook.db", gradebook_url="")
        course.config = dataclasses.replace(cfg, **changes)
        notebooks = course.notebooks_of(assignment)
        job = _Job(course, assignment, student, notebooks, work, uid=uid,
                   sandboxed=not mode.startswith("UNSANDBOXED"))
        result = job.run()
        result.payload = payload(job, result, log_bytes)
        result.scratch = str(work) if keep_scratch else ""
        return result
    finally:
        if not keep_scratch:
            shutil.rmtree(work, ignore_errors=True)


def payload(job, result, log_bytes=65536) -> dict:
    """What :func:`lstmlib.grading.merge.merge_result` needs of a finished job's scratch course:
    the tail of nbgrader's log and, for a graded submission, its timestamp,
    per notebook the late penalty, every cell's auto score and comment, and
    the graded notebook files (bytes). Sets the result's score from the
    scratch gradebook."""
    payload = {"timestamp": None, "notebooks": [], "files": {}, "log": ""}
    log_path = job.scratch / "autograde.log"
    if log_path.is_file():
        payload["log"] = log_path.read_bytes()[-log_bytes:].decode(errors="replace")
    if result.status == "graded":
        from nbgrader.api import Gradebook
        with Gradebook(f"sqlite:///{job.course / 'gradebook.db'}") as sgb:
            ssub = sgb.find_submission(job.assignment, job.student)
            payload["timestamp"] = ssub.timestamp.isoformat() if ssub.timestamp else None
            for snb in ssub.notebooks:
                payload["notebooks"].append({
                    "name": snb.name, "late_submission_penalty": snb.late_submission_penalty,
                    "grades": [(g.name, g.auto_score) for g in snb.grades],
                    "comments": [(c.name, c.auto_comment) for c in snb.comments]})
            result.score, result.max_score = float(ssub.score), float(ssub.max_score)
        graded = job.course / "autograded" / job.student / job.assignment
        payload["files"] = {p.relative_to(graded).as_posix(): p.read_bytes()
                            for p in regular_files(graded)} if graded.is_dir() else {}
    return payload


# ------------------------------------------------------------------ on a worker
_UID_BASE, _UID_COUNT = 61000, 999


@contextlib.contextmanager
def uid_lease():
    """A sandbox uid no other grading job on this machine holds right now
    (a lock file per uid): two kernels never share a uid, hence never share
    its process limit or signal each other."""
    folder = Path(tempfile.gettempdir()) / "lstmlib-grading-uids"
    folder.mkdir(mode=0o700, exist_ok=True)
    start = os.getpid() % _UID_COUNT
    for i in range(_UID_COUNT):
        n = (start + i) % _UID_COUNT
        fh = open(folder / f"{n}.lock", "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        try:
            yield _UID_BASE + n
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
        return
    raise RuntimeError(f"no free sandbox uid among {_UID_COUNT}")


def grade_task(course_root, assignment, student, files, template, unsafe_no_sandbox,
               scratch=None, keep_scratch=False):
    """What an executor's worker (a pool's thread or process, a Dask worker)
    runs for one submission: :func:`grade_submission` under a uid leased for
    the job; returns the Result (plain data)."""
    import multiprocessing
    # Dask's worker processes are daemonic; the grader starts its own
    # processes (the nbgrader process, the sandboxed kernel), which a
    # daemonic process may not. They are joined or killed before we return.
    multiprocessing.current_process().daemon = False
    start = time.monotonic()
    with uid_lease() as uid:
        result = grade_submission(course_root, assignment, student, files=files,
                                  gradebook_template=template, uid=uid,
                                  unsafe_no_sandbox=unsafe_no_sandbox, scratch=scratch,
                                  keep_scratch=keep_scratch)
    result.payload["task_seconds"] = time.monotonic() - start
    result.payload["task_end"] = (os.uname().nodename, os.getpid(), time.time())
    return result
