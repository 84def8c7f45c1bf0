"""The checks of the exercises' graded parts, one module per assignment.

``checks/<short>.py`` (``short``: the assignment's name without its number,
:attr:`lstmlib.grading.assignments.Assignment.short`) has a ``prepare()``
that draws the cases of its parts and one public function per part,
``<check>(handle, ..., which)``: it takes the part's cases (``which`` is
``"visible"`` or ``"hidden"``), whose expected values come from lstmlib's
reference implementation (itself tested against PyTorch), has the
student's function called on the inputs through ``handle`` and compares
what comes back. A part fails with a
:class:`~lstmlib.grading.checks._compare.GradingError` (an AssertionError)
that shows the student's value beside the expected one and names the likely
cause: which gate, which time step, which term.

The handle decides where the student's function runs. When a notebook is
graded it is a :class:`lstmlib.grading.trusted.RemoteFunction`: the checks
run in the grader's process, the sandboxed kernel receives the function's
name and plain-data inputs only, and the cases are drawn from a seed made
afresh for each grading (:func:`prepare` with ``salt``). At home, the
self-check cells call :mod:`lstmlib.selfcheck.checks`, whose handles call
the function in the student's kernel with the fixed seeds of the
notebook's self-checks.

The engine (:mod:`._engine`: registry, cases, calls, fixtures) and the
comparison (:mod:`._compare`: order type, shape, dtype, values; formatting
of the differences) are shared by every assignment's module.
"""
import importlib

from .. import assignments
from ._engine import _PARTS, _PREPARED, _SALT


def module(assignment):
    """The checks module of ``assignment`` (a name of the manifest)."""
    return importlib.import_module(f"{__name__}.{assignments.find(assignment).short}")


def check_function(assignment, part):
    """The check of ``part`` (a :class:`~lstmlib.grading.assignments.Part`
    of ``assignment``): the function ``part.check`` of its module."""
    return getattr(module(assignment), part.check)


def prepare(assignment, salt=None):
    """Draw the cases of ``assignment`` and compute their expected values.

    ``salt`` (an int): the grader's fresh seed for this grading; every case
    is then drawn from it (what a case tests stays as written). ``None``:
    the fixed seeds of the notebook's self-checks."""
    checks = module(assignment)             # a ValueError names the assignment
    if salt is not None and (type(salt) is not int or salt < 0):
        raise ValueError(f"salt: expected a non-negative int or None, received {salt!r}")
    if _SALT[0] != salt:
        _SALT[0] = salt
        _PARTS.clear()
        del _PREPARED[:]
    if assignment not in _PREPARED:
        checks.prepare()
        _PREPARED.append(assignment)
