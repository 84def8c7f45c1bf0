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

Delegation is decided here too, from the notebook's code
(:func:`lstmlib.grading.similarity.delegating_functions`): a part whose
function calls lstmlib's own implementation of it (or torch's recurrent
modules) fails with the reason, whatever the kernel's guards said (the
kernel's guards run in the student's process and can be switched off).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import time

from jupyter_core.utils import ensure_async
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from traitlets import Integer, Unicode

from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

from . import assignments, checks, similarity
from ._core import GradingError
from ._nbext import GuardedExecute

MIME = "text/x-lstmlib-answer"

_SNIPPET = ("from lstmlib.selfcheck._harness import serve as _lstmlib_grader_serve\n"
            "_lstmlib_grader_serve(globals(), {request!r})\n"
            "del _lstmlib_grader_serve\n")


class _Lost(Exception):
    """The call got no answer (timeout, dead kernel, answer over the limit)."""


class RemoteFunction:
    """A notebook function (or variable), known here by its name only."""

    def __init__(self, name, channel):
        self.name = name
        self._channel = channel

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

    # ------------------------------------------------------------------ set-up
    def preprocess(self, nb, resources=None, km=None):
        info = (resources or {}).get("nbgrader", {})
        assignment = info.get("assignment", "")
        self._manifest = {}
        self._replay = []
        self._calls = 0
        self._digests = {}
        self._broken = ""
        self._call_indices = set()
        self._events = []
        self._delegating = {}
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
            self._delegating = _delegation(nb, assignment, self.log)
        try:
            return super().preprocess(nb, resources, km=km)
        finally:
            if self.inputs_file and self._digests:
                with open(self.inputs_file, "a") as fh:
                    fh.write(json.dumps({"notebook": info.get("notebook", ""),
                                         "cells": self._digests}) + "\n")

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
        check = assignments.check_function(part)
        loop = asyncio.get_running_loop()
        self._cell_streams = []
        self._cell_inputs = hashlib.sha256()
        handles = [RemoteFunction(name, _Channel(self, loop)) for name in part.functions]
        start = time.monotonic()
        cell.outputs = []
        delegating = [f"Part {part.letter} ({part.title}): your {name} "
                      f"{self._delegating[name]}"
                      for name in part.functions if name in self._delegating]
        try:
            if delegating:
                raise GradingError("\n".join(delegating) + "\nWrite it yourself with numpy: "
                                   "this part scores zero.")
            await asyncio.to_thread(check, *handles, which)
        except GradingError as exc:
            cell.outputs.extend(self._cell_streams)
            cell.outputs.append(_error("AssertionError", str(exc)))
        except Exception as exc:            # a bug on this side: the cell fails, visibly
            cell.outputs.extend(self._cell_streams)
            cell.outputs.append(_error("GraderError", f"the grader could not run this test: "
                                                      f"{type(exc).__name__}: {exc}"))
        else:
            cell.outputs.extend(self._cell_streams)
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
            elif out.get("output_type") == "stream" and len(self._cell_streams) < 20:
                self._cell_streams.append(out)
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


def _delegation(nb, assignment, log):
    """{function: reason} of the graded functions that delegate (an analysis
    that fails leaves the checks to decide, and is logged)."""
    try:
        return similarity.delegating_functions(nb, assignment)
    except Exception as exc:                # noqa: BLE001
        log.warning("the delegation check of %s failed: %s: %s", assignment,
                    type(exc).__name__, exc)
        return {}


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


class RequirePipeline(NbGraderPreprocessor):
    """First autograde preprocessor of the course's nbgrader_config.py.

    Plain ``nbgrader autograde`` runs every student's code as the
    instructor, outside any sandbox: it is refused with the command to use
    instead, unless the instructor sets LSTMLIB_UNSANDBOXED_AUTOGRADE=1
    (trusted notebooks only). The grading pipeline replaces the list of
    preprocessors in its own configuration and never meets this one.
    """

    def preprocess(self, nb, resources):
        if os.environ.get(UNSAFE_ENV) == "1":
            self.log.warning("%s=1: grading without the sandbox", UNSAFE_ENV)
            return nb, resources
        assignment = resources.get("nbgrader", {}).get("assignment", "ASSIGNMENT")
        raise RuntimeError(
            "plain `nbgrader autograde` would run the students' code as you, outside "
            "the grading sandbox. Grade with `python -m lstmlib.grading autograde "
            f"{assignment}` (sandboxed; the same checks), or set "
            f"{UNSAFE_ENV}=1 to grade trusted notebooks without the sandbox.")
