"""The graded test cells, decided in the grader's process.

:class:`TrustedExecute` is the Execute preprocessor of the grading
pipeline (nbgrader's autograde runs it in its own process, the kernel runs
boxed by :mod:`lstmlib.grading.sandbox`). It runs the student's cells in
the kernel as usual, but never a graded test cell listed in the manifest
(:mod:`lstmlib.grading.assignments`). For each of those it runs the part's
check *here*, with the cases drawn from a seed made afresh for this grading
(:func:`secrets.randbits`); each time the check calls the student's function
it sends the kernel only the function's name and the inputs, as plain data
(:mod:`lstmlib.grading.protocol`), the kernel calls the function
(:mod:`lstmlib.selfcheck._harness`) and sends back what it returned, and the
check compares it here with the reference. The check's message (which
gate, which step, the likely cause) becomes the cell's error output, which
is what nbgrader scores and what the feedback shows.

Limits per call: ``call_timeout`` seconds and ``max_answer_bytes`` of
answer. A call that runs over, an answer over the limit, or a kernel that
dies fails that test cell only: the kernel is restarted, the student's
cells that ran before are run again (without their outputs), and grading
goes on with the next cell. A student cell that dies or hangs is handled
the same way.

The kernel runs in the grading sandbox (:mod:`lstmlib.grading.sandbox`),
set up here for every notebook, whoever runs nbgrader: the course's
``python -m lstmlib.grading autograde``, plain ``nbgrader autograde`` or
nbgrader's API (the formgrader's Autograde button). Its file system holds no
course files and, instead of the lstmlib package, the assignment's kernel
edition (:mod:`lstmlib.grading.kernel_edition`): what the notebook hands
out, never the reference of a graded function, so a kernel has nothing to
compute an answer with but the student's own code. Only an explicit opt-out
(``LSTMLIB_UNSANDBOXED_AUTOGRADE=1``, for trusted notebooks) grades without
the sandbox.

What the kernel prints while it answers a call stays out of the graded
notebook (and so out of the feedback): the inputs are the grader's.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from jupyter_core.utils import ensure_async
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from traitlets import Bool, Integer, Unicode

from nbgrader import utils

from . import assignments, checks, resources, sandbox
from .checks._compare import GradingError
from ._nbext import GuardedExecute

MIME = "text/x-lstmlib-answer"

_SNIPPET = ("from lstmlib.selfcheck._harness import serve as _lstmlib_grader_serve\n"
            "_lstmlib_grader_serve(globals(), {request!r})\n"
            "del _lstmlib_grader_serve\n")


class _Lost(Exception):
    """The call got no answer (timeout, dead kernel, answer over the limit)."""


class RemoteFunction:
    """A notebook function (or variable), known here by its name only."""

    def __init__(self, name, channel, cells=()):
        self.name = name
        self._channel = channel
        # the notebook's code cells that ran so far (a check that judges a
        # function from its source reads them: checks.performance)
        self.cells = tuple(cells)

    def ask(self, request):
        request = {k: v for k, v in request.items() if k != "_handles"}
        return self._channel.call(request)

    def __repr__(self):
        return f"<function {self.name} of the graded notebook>"


class TrustedExecute(GuardedExecute):
    """Execute with the graded test cells decided in this process."""

    call_timeout = Integer(
        60, help="Seconds one call of a student's function may take").tag(config=True)
    max_answer_bytes = Integer(
        16 << 20, help="Largest answer (JSON bytes) one call may send back").tag(config=True)
    exit_file = Unicode(
        "", help="Where the kernel launcher records how the kernel ended").tag(config=True)
    inputs_file = Unicode(
        "", help="JSON-lines file receiving a digest of the inputs of every graded "
                 "cell").tag(config=True)
    box_dir = Unicode(
        "", help="Folder for the sandbox of this grading (policy, kernelspec, kernel "
                 "edition, the kernel's sockets); empty: a temporary folder per "
                 "notebook").tag(config=True)
    box_uid = Integer(
        61999, help="uid the kernel runs as when grading runs as root").tag(config=True)
    unsandboxed = Bool(
        False, help="Run the kernel without the sandbox (trusted notebooks only; also "
                    "set by LSTMLIB_UNSANDBOXED_AUTOGRADE=1)").tag(config=True)

    # ------------------------------------------------------------------ set-up
    def preprocess(self, nb, resources=None, km=None):
        info = (resources or {}).get("nbgrader", {})
        assignment = info.get("assignment", "")
        self._manifest = {}
        self._assignment = assignment
        self._replay = []
        self._calls = 0
        self._digests = {}
        self._broken = ""
        self._call_indices = set()
        self._events = []
        self._quiet_outputs = 0
        if assignment in assignments.ASSIGNMENTS:
            a = assignments.ASSIGNMENTS[assignment]
            if info.get("notebook", a.notebook) == a.notebook:
                self._manifest = a.cells()
        # a fresh seed for every grading: never derivable from the repository
        self._salt = secrets.randbits(128)
        if self._manifest:
            start = time.monotonic()
            checks.prepare(assignment, salt=self._salt)
            self.log.info("cases of %s drawn in %.2f s", assignment, time.monotonic() - start)
        workdir = ((resources or {}).get("metadata", {}) or {}).get("path") or os.getcwd()
        with _Box(self, assignment, workdir) as box:
            self._box = box
            try:
                return super().preprocess(nb, resources, km=km)
            finally:
                if self._quiet_outputs:
                    self.log.info("%d outputs printed by the kernel during graded calls "
                                  "were left out of the notebook", self._quiet_outputs)
                if self.inputs_file and self._digests:
                    with open(self.inputs_file, "a") as fh:
                        fh.write(json.dumps({"notebook": info.get("notebook", ""),
                                             "cells": self._digests}) + "\n")

    def create_kernel_manager(self):
        """The kernel is the box's: its kernelspec, its socket folder."""
        from jupyter_client.kernelspec import KernelSpecManager
        box = self._box
        self.kernel_name = sandbox.KERNEL_NAME
        self.km = self.kernel_manager_class(
            kernel_name=sandbox.KERNEL_NAME, config=self.config,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(box.kernels)]),
            transport="ipc", ip=str(box.runtime / "k"))
        return self.km

    # ------------------------------------------------------------------ cells
    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        self._current = cell_index
        meta = cell.metadata.get("nbgrader", {}) if cell.cell_type == "code" else {}
        grade_id = meta.get("grade_id")
        if cell.cell_type == "code" and utils.is_grade(cell) and grade_id in self._manifest:
            return await self._grade(cell, cell_index, grade_id)
        try:
            cell = await super().async_execute_cell(
                cell, cell_index, execution_count=execution_count, store_history=store_history)
        except (DeadKernelError, CellTimeoutError) as exc:
            why = self._why(exc)
            cell.outputs.append(_error("GraderError", f"this cell did not finish: {why}"))
            self._events.append(f"kernel died in cell {grade_id or '#' + str(cell_index)} "
                                f"({why}): restarted, the later cells graded")
            await self._restart()
            return cell
        if cell.cell_type == "code" and not utils.is_grade(cell):
            timed_out = any(o.get("output_type") == "error" and
                            o.get("ename") == "CellTimeoutError" for o in cell.outputs)
            if timed_out:
                self._events.append(f"cell {grade_id or '#' + str(cell_index)} ran over "
                                    f"{self.timeout} s: kernel restarted")
                await self._restart()
            else:
                self._replay.append(cell.source)
        return cell

    execute_cell = run_sync(async_execute_cell)

    async def _grade(self, cell, cell_index, grade_id):
        part, which, _points = self._manifest[grade_id]
        check = checks.check_function(self._assignment, part)
        loop = asyncio.get_running_loop()
        self._cell_inputs = hashlib.sha256()
        handles = [RemoteFunction(name, _Channel(self, loop), self._replay)
                   for name in part.functions]
        start = time.monotonic()
        cell.outputs = []
        try:
            await asyncio.to_thread(check, *handles, which)
        except GradingError as exc:
            cell.outputs.append(_error("AssertionError", str(exc)))
        except Exception as exc:            # a bug on this side: the cell fails, visibly
            cell.outputs.append(_error("GraderError", f"the grader could not run this test: "
                                                      f"{type(exc).__name__}: {exc}"))
        self.log.info("graded cell %s in %.2f s (%d calls so far)", grade_id,
                      time.monotonic() - start, self._calls)
        self._digests[grade_id] = self._cell_inputs.hexdigest()
        self._status[cell_index] = "trusted"
        return cell

    # ------------------------------------------------------------------ calls
    async def call(self, request):
        """Run one request in the kernel; the reply as a dict."""
        if self._broken:
            return {"lost": self._broken}
        self._calls += 1
        request = dict(request, token=secrets.token_hex(8))
        payload_text = json.dumps(request, separators=(",", ":"))
        self._cell_inputs.update(payload_text.encode())
        tmp = NotebookNode(cell_type="code", source=_SNIPPET.format(request=payload_text),
                           metadata={}, outputs=[], execution_count=None, id=f"call{self._calls}")
        saved = self.timeout
        self.timeout = self.call_timeout
        try:
            index = await _plain_execute(self, tmp)
        except (DeadKernelError, CellTimeoutError) as exc:
            why = self._why(exc)
            self._events.append(f"kernel died in a call of {', '.join(request['functions'])} "
                                f"({why}): restarted, the later cells graded")
            await self._restart()
            return {"lost": f"your function did not return: {why}"}
        finally:
            self.timeout = saved
        if index in self._over:
            await self._restart()
            return {"lost": f"your function's answer is larger than the grader accepts "
                            f"({self.max_answer_bytes} bytes)"}
        reply = None
        for out in tmp.outputs:
            if out.get("output_type") == "display_data" and MIME in out.get("data", {}):
                try:
                    candidate = json.loads(out["data"][MIME])
                except ValueError:
                    continue
                if isinstance(candidate, dict) and candidate.get("token") == request["token"]:
                    reply = candidate
            elif out.get("output_type") in ("stream", "display_data", "execute_result"):
                self._quiet_outputs += 1
        timed_out = any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
                        for o in tmp.outputs)
        if timed_out:
            await self._restart()
            return {"lost": f"your function ran longer than the {self.call_timeout} s "
                            f"the grader allows for one call"}
        if reply is None:
            errors = [f"{o.get('ename')}: {str(o.get('evalue'))[:200]}" for o in tmp.outputs
                      if o.get("output_type") == "error"]
            return {"lost": "the kernel sent no answer" +
                            (f" ({errors[-1]})" if errors else "")}
        reply.pop("token", None)
        return reply

    def _why(self, exc):
        if isinstance(exc, CellTimeoutError):
            return f"it ran longer than {self.timeout} s"
        reason = ""
        if self.exit_file and os.path.isfile(self.exit_file):
            try:
                with open(self.exit_file) as fh:
                    reason = json.load(fh).get("reason", "")
            except (OSError, ValueError):
                pass
        return reason or "the kernel died"

    async def _restart(self):
        """A fresh kernel with the student's cells that ran so far."""
        try:
            await ensure_async(self.km.restart_kernel(now=True))
            await ensure_async(self.kc.wait_for_ready(timeout=self.startup_timeout))
        except Exception as exc:            # noqa: BLE001
            self._broken = f"the kernel could not be restarted ({type(exc).__name__})"
            return
        saved = self.timeout
        for k, source in enumerate(list(self._replay)):
            self._calls += 1
            tmp = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[],
                               execution_count=None, id=f"replay{k}")
            try:
                await _plain_execute(self, tmp)
            except (DeadKernelError, CellTimeoutError):
                self._broken = "the kernel died again while the notebook's cells ran again"
                return
            finally:
                self.timeout = saved

    # ------------------------------------------------------------------ budget
    def _over_budget(self, cell_index, content):
        if cell_index in self._call_indices:
            size = len(json.dumps(content, default=str)) if not isinstance(content, str) \
                else len(content)
            used = self._cell_bytes.get(cell_index, 0)
            if cell_index in self._over or used + size > self.max_answer_bytes:
                self._over.add(cell_index)
                return True
            self._cell_bytes[cell_index] = used + size
            return False
        return super()._over_budget(cell_index, content)

    def output(self, outs, msg, display_id, cell_index):
        if cell_index in self._call_indices:
            if self._over_budget(cell_index, msg.get("content", {})):
                return None
            return super(GuardedExecute, self).output(outs, msg, display_id, cell_index)
        return super().output(outs, msg, display_id, cell_index)

    def on_cell_executed(self, **kwargs):
        if kwargs.get("cell_index") in self._call_indices:
            return
        super().on_cell_executed(**kwargs)


async def _plain_execute(self, cell, _index=None):
    """nbclient's own cell execution (no canary, no grade logic) of a cell
    that is not in the notebook: it is appended for the time of the call
    (nbclient writes the executed cell back at its index), its outputs
    counted against the answer budget, then removed."""
    from nbclient.client import NotebookClient
    cells = self.nb["cells"]
    index = len(cells)
    cells.append(cell)
    self._call_indices.add(index)
    self._cell_bytes.pop(index, None)
    self._over.discard(index)
    try:
        await NotebookClient.async_execute_cell(self, cell, index, store_history=False)
    finally:
        del cells[index:]
        self._call_indices.discard(index)
    return index


class _Channel:
    """Calls from the check's thread into the kernel, via the event loop."""

    def __init__(self, executor, loop):
        self.executor = executor
        self.loop = loop

    def call(self, request):
        future = asyncio.run_coroutine_threadsafe(self.executor.call(request), self.loop)
        return future.result()


def _error(ename, evalue):
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {line}" if i == 0 else line
                                   for i, line in enumerate(evalue.split("\n"))])


UNSAFE_ENV = "LSTMLIB_UNSANDBOXED_AUTOGRADE"


def box_limits(config) -> "resources.Limits":
    """The sandbox's limits from the ``GradingSandbox`` section of a
    traitlets config (nbgrader_config.py); the defaults elsewhere."""
    import dataclasses
    section = config.get("GradingSandbox", {}) if config is not None else {}
    return resources.Limits(**{f.name: int(section[f.name])
                               for f in dataclasses.fields(resources.Limits) if f.name in section})


class _Box:
    """The sandbox of one notebook's grading: a folder holding the policy,
    the kernelspec that starts the kernel through the launcher, the kernel
    edition and the kernel's sockets. The grading pipeline gives each
    submission's folder (``box_dir``); plain ``nbgrader autograde`` and the
    formgrader get a temporary one, removed afterwards."""

    def __init__(self, executor, assignment, workdir):
        self.executor = executor
        self.assignment = assignment
        self.workdir = os.path.realpath(workdir)
        self.temporary = not executor.box_dir

    def __enter__(self):
        ex = self.executor
        unsafe = bool(ex.unsandboxed) or os.environ.get(UNSAFE_ENV) == "1"
        if unsafe:
            ex.log.warning("grading %s WITHOUT the sandbox (%s): only for trusted notebooks",
                           self.assignment or "a notebook",
                           "TrustedExecute.unsandboxed" if ex.unsandboxed else f"{UNSAFE_ENV}=1")
        else:
            # refuses, with the reason and what to do, where bwrap cannot run
            ex.log.info("sandbox: %s", sandbox.require())
        self.root = Path(tempfile.mkdtemp(prefix="lstmlib-box-") if self.temporary
                         else ex.box_dir).resolve()
        self.runtime = self.root / "rt"
        for sub in ("rt", "kernel", "share"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not ex.exit_file:
            ex.exit_file = str(self.root / "exit.json")
        inside = self.workdir == str(self.root) or self.workdir.startswith(str(self.root) + "/")
        # the kernel's uid walks down to the edition (mkdtemp makes 0700)
        os.chmod(self.root, 0o711)
        if self.assignment in assignments.ASSIGNMENTS:
            # the assignment's kernel edition: what its notebook hands out
            python_path, distributions = sandbox.kernel_contents(
                self.assignment, self.root / "edition")
        else:       # a notebook of no assignment of the manifest: no lstmlib at all
            python_path, distributions = [], sandbox.KERNEL_DISTRIBUTIONS
        policy = sandbox.write_policy(
            self.root / "policy.json", sandboxed=not unsafe, limits=box_limits(ex.config),
            python_path=python_path, distributions=distributions,
            kernel_dir=self.root / "kernel", runtime_dir=self.runtime,
            exit_file=Path(ex.exit_file),
            scratch_root=self.root if inside else Path(self.workdir), uid=ex.box_uid)
        self.kernels = sandbox.write_kernelspec(self.root / "share", policy).parent
        return self

    def __exit__(self, *exc):
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)
        return False
