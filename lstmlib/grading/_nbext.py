"""nbgrader preprocessors used by the grading pipeline.

``GuardedExecute``
    nbgrader's ``Execute`` with a byte budget on outputs, enforced while the
    messages arrive (nbgrader's ``LimitOutput`` only counts lines, after
    the fact, so one 30 MB line passes it and a flood of output fills the
    grader's memory first), and a record of every cell's execution status
    written to a side file read by the pipeline. A graded cell whose output
    went over budget, whose reply was not ``ok`` yet shows no error (error
    display suppressed), or that did not run to its last line (a canary
    line appended for execution only must print its token), gets an error
    output, so nbgrader scores it zero.

``StripHiddenTests``
    Used by ``generate_feedback``: removes the ``### BEGIN HIDDEN TESTS``
    regions (taken from the gradebook, not from the student's notebook)
    from the cells, the tracebacks of cells that contain hidden tests, and
    any line of hidden-test code that shows up in an output.
"""
from __future__ import annotations

import json
import re
import secrets

from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from traitlets import Bool, Integer, Unicode

from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

HIDDEN_BEGIN = "BEGIN HIDDEN TESTS"
HIDDEN_END = "END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: not shown in feedback)"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _size(obj) -> int:
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, dict):
        return sum(_size(k) + _size(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return sum(_size(v) for v in obj)
    return 8


class GuardedExecute(Execute):
    """Execute with an output byte budget and a per-cell status record."""

    max_cell_output_bytes = Integer(
        1 << 20, help="Largest output (bytes of text/data) kept for one cell").tag(config=True)
    max_notebook_output_bytes = Integer(
        8 << 20, help="Largest output kept for the whole notebook").tag(config=True)
    status_file = Unicode(
        "", help="JSON-lines file receiving each notebook's cell statuses").tag(config=True)
    canary = Bool(
        True, help="Check that each graded cell ran to its last line").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._cell_bytes = {}
        self._total_bytes = 0
        self._over = set()
        self._status = {}
        self._current = None
        self._canary_missing = set()
        notebook = (resources or {}).get("nbgrader", {}).get("notebook", "")
        died = None
        try:
            return super().preprocess(nb, resources, km=km)
        except BaseException as exc:
            died = {"error": type(exc).__name__, "message": str(exc)[:500],
                    "cell_index": self._current}
            raise
        finally:
            self._write_status(nb, notebook, died)

    def _write_status(self, nb, notebook, died):
        if not self.status_file:
            return
        cells = []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            meta = cell.metadata.get("nbgrader", {})
            cells.append({
                "index": index,
                "grade_id": meta.get("grade_id"),
                "grade": bool(utils.is_grade(cell)),
                "solution": bool(utils.is_solution(cell)),
                "status": self._status.get(index),
                "output_truncated": index in self._over,
                "did_not_finish": index in self._canary_missing,
            })
        if died is not None and died.get("cell_index") is not None:
            cell = nb.cells[died["cell_index"]]
            died["grade_id"] = cell.metadata.get("nbgrader", {}).get("grade_id")
        with open(self.status_file, "a") as fh:
            fh.write(json.dumps({"notebook": notebook, "cells": cells, "died": died,
                                 "events": list(getattr(self, "_events", []))}) + "\n")

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        self._current = cell_index
        if not (self.canary and cell.cell_type == "code" and utils.is_grade(cell)
                and cell.source.strip()):
            return await super().async_execute_cell(
                cell, cell_index, execution_count=execution_count, store_history=store_history)
        # A graded cell must run to its last line: it prints a fresh token
        # there. A kernel that skips or rewrites the test code (IPython hooks,
        # patched run_cell) and so shows no error, also shows no token.
        token = "grader-canary-" + secrets.token_hex(12)
        original = cell.source
        cell.source = original + f"\nprint({token!r})\n"
        try:
            cell = await super().async_execute_cell(
                cell, cell_index, execution_count=execution_count, store_history=store_history)
        finally:
            cell.source = original
        seen = False
        for output in cell.outputs:
            if output.get("output_type") == "stream" and token in output.get("text", ""):
                seen = True
                output.text = output.text.replace(token + "\n", "").replace(token, "")
        cell.outputs = [o for o in cell.outputs
                        if not (o.get("output_type") == "stream" and o.get("text") == "")]
        has_error = any(o.get("output_type") == "error" for o in cell.outputs)
        if not seen and not has_error:
            self._canary_missing.add(cell_index)
            cell.outputs.append(NotebookNode(
                output_type="error", ename="GraderError",
                evalue="the test cell did not run to its end",
                traceback=["GraderError: the test cell did not run to its end "
                           "(its code was skipped or altered inside the kernel)"]))
        return cell

    # nbclient binds execute_cell to the base class's coroutine: rebind it.
    execute_cell = run_sync(async_execute_cell)

    def _over_budget(self, cell_index, content) -> bool:
        size = _size(content)
        used = self._cell_bytes.get(cell_index, 0)
        if (cell_index in self._over or used + size > self.max_cell_output_bytes
                or self._total_bytes + size > self.max_notebook_output_bytes):
            first = cell_index not in self._over
            self._over.add(cell_index)
            return "first" if first else True
        self._cell_bytes[cell_index] = used + size
        self._total_bytes += size
        return False

    def output(self, outs, msg, display_id, cell_index):
        over = self._over_budget(cell_index, msg.get("content", {}))
        if over == "first":
            outs.append(NotebookNode(
                output_type="stream", name="stderr",
                text=f"\n... output over the grader's limit of "
                     f"{self.max_cell_output_bytes} bytes per cell "
                     f"({self.max_notebook_output_bytes} per notebook): dropped ...\n"))
        if over:
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _update_display_id(self, display_id, msg):
        if self._over_budget(self._current, msg.get("content", {})):
            return
        return super()._update_display_id(display_id, msg)

    def handle_comm_msg(self, outs, msg, cell_index):
        if self._over_budget(cell_index, msg.get("content", {})):
            return
        return super().handle_comm_msg(outs, msg, cell_index)

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        cell = kwargs["cell"]
        index = kwargs["cell_index"]
        reply = kwargs["execute_reply"] or {}
        status = reply.get("content", {}).get("status")
        self._status[index] = status
        has_error = any(o.get("output_type") == "error" for o in cell.outputs)
        if index in self._over:
            cell.outputs.append(NotebookNode(
                output_type="error", ename="OutputLimitExceeded",
                evalue="the cell printed more than the grader keeps",
                traceback=["OutputLimitExceeded: the cell printed more than the grader keeps"]))
        elif utils.is_grade(cell) and status != "ok" and not has_error:
            cell.outputs.append(NotebookNode(
                output_type="error", ename="GraderError",
                evalue=f"execution status {status!r} without an error shown",
                traceback=[f"GraderError: the kernel replied {status!r} but showed no error"]))


def hidden_regions(source: str):
    """(visible source with a note where hidden tests were, hidden lines)."""
    visible, hidden, inside, found = [], [], False, False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            inside, found = True, True
            visible.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif HIDDEN_END in line:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            visible.append(line)
    return ("\n".join(visible) if found else source), hidden


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", _ANSI.sub("", text))


def secret_lines(lines, min_chars=8):
    """Whitespace-free forms of hidden lines long enough to be telling."""
    out = set()
    for line in lines:
        squashed = _squash(line)
        if len(squashed) >= min_chars and not squashed.startswith("#"):
            out.add(squashed)
    return out


class StripHiddenTests(NbGraderPreprocessor):
    """Feedback preprocessor: no hidden-test code reaches the student."""

    def preprocess(self, nb, resources):
        self._sources = {}
        info = resources.get("nbgrader", {})
        db_url, notebook, assignment = (info.get("db_url"), info.get("notebook"),
                                        info.get("assignment"))
        if db_url and notebook and assignment:
            from nbgrader.api import Gradebook, MissingEntry
            with Gradebook(db_url) as gb:
                try:
                    source_nb = gb.find_notebook(notebook, assignment)
                    for cell in source_nb.source_cells:
                        self._sources[cell.name] = cell.source
                except MissingEntry:
                    pass
        hidden = []
        for source in self._sources.values():
            hidden += hidden_regions(source)[1]
        for cell in nb.cells:
            hidden += hidden_regions(cell.source)[1]
        self._secrets = secret_lines(hidden)
        return super().preprocess(nb, resources)

    def _scrub(self, text):
        if not self._secrets:
            return text
        kept = [line for line in text.split("\n")
                if not any(s in _squash(line) for s in self._secrets)]
        return "\n".join(kept)

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        had_hidden = False
        if grade_id in self._sources:
            visible, hidden = hidden_regions(self._sources[grade_id])
            if hidden:
                cell.source, had_hidden = visible, True
        visible, hidden = hidden_regions(cell.source)
        if hidden:
            cell.source, had_hidden = visible, True
        cell.source = self._scrub(cell.source)
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                if had_hidden:
                    output.traceback = [
                        f"{output.get('ename', 'Error')}: {self._scrub(output.get('evalue', ''))}",
                        "(traceback not shown: it would show hidden tests)"]
                else:
                    output.traceback = [self._scrub(t) for t in output.get("traceback", [])]
                output.evalue = self._scrub(output.get("evalue", ""))
            elif kind == "stream":
                output.text = self._scrub(output.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                for mime, value in list(output.get("data", {}).items()):
                    if isinstance(value, str):
                        output.data[mime] = self._scrub(value)
                    elif isinstance(value, list):
                        output.data[mime] = [self._scrub(v) for v in value]
        return cell, resources
