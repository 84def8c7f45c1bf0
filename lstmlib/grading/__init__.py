"""What the graded test cells of the exercises call.

``checks``: one function per graded part, comparing the student's result
with lstmlib's reference (type, then shape, then dtype, then values) and
naming the likely cause of a mismatch. ``guards``: refuses a part whose
function delegates to the reference implementation or to torch's recurrent
modules. Import this package in the first cell of a notebook, before any
student code, so that the functions it relies on are captured untouched.
"""

from . import _core, checks, guards

__all__ = ["checks", "guards"]
