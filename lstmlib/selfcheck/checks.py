"""Self-checks of the exercises, run in the student's kernel.

Each function has the name of the graded part it checks and is called by the
notebook's self-check cell as ``checks.<part>(function, "visible")``. The
cases and messages are the grader's own (the assignment's module of
:mod:`lstmlib.grading.checks`, imported when a check first runs); the
student's function is called here, in this kernel, through the same
recipes that a graded kernel uses (:mod:`lstmlib.selfcheck._harness`), and
its answer goes through the same plain-data format, so a self-check passes
or fails as the graded cell does. When the notebook is graded these cells
are not run in the kernel.

The kernels of exercise 9 (``fused_step``, ``gates_kernel``) are judged
from their source, as the grader judges them
(:mod:`lstmlib.grading.checks.performance`): the handle gives the cell that
defines the function, which the check compiles and runs in a fresh Python
process of its own.
"""
import linecache
import os
import types

from lstmlib.grading import assignments as _manifest

from . import _codec, _harness

#: the check of every graded part -> the assignment it belongs to
_PARTS = {p.check: a.name for a in _manifest.ASSIGNMENTS.values() for p in a.parts}


class LocalFunction:
    """A function of this kernel, handed to a check."""

    #: the self-checks run the kernels' source without the grading sandbox
    at_home = True

    def __init__(self, obj, name):
        self.obj = obj
        self.name = name

    @property
    def cells(self):
        """The source of the cell (or file) that defines the function, as
        IPython recorded it; empty if there is none (not a function)."""
        fn = getattr(self.obj, "py_func", self.obj)
        code = getattr(fn, "__code__", None)
        if not isinstance(code, types.CodeType):
            return ()
        lines = linecache.getlines(code.co_filename)
        return ("".join(lines),) if lines else ()

    def ask(self, request):
        objects = [f.obj for f in request.pop("_handles")]
        request["payload"] = _codec.decode(request["payload"])
        try:
            value = _harness.run(None, request, objects=objects)
        except _harness.Refused as exc:
            return {"refused": str(exc)}
        except _harness.Raised as exc:
            return {"raised": str(exc)}
        return {"ok": _codec.encode(value)}


def _grader_checks(assignment):
    from lstmlib.grading import checks
    return checks.module(assignment)


def _graded_here():
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def prepare(assignment):
    """Check the assignment's name (the cases are drawn when a check runs)."""
    if _graded_here():
        return
    from lstmlib.grading import checks
    checks.prepare(assignment)


def _make(part):
    def check(*functions_and_which):
        *functions, which = functions_and_which \
            if functions_and_which and isinstance(functions_and_which[-1], str) \
            else (*functions_and_which, "visible")
        handles = [LocalFunction(f, getattr(f, "__name__", part)) for f in functions]
        return getattr(_grader_checks(_PARTS[part]), part)(*handles, which)
    check.__name__ = part
    check.__doc__ = f"Self-check of the part {part}: ``{part}(function, 'visible')``."
    return check


for _name in _PARTS:
    globals()[_name] = _make(_name)

__all__ = ["prepare", *_PARTS]
