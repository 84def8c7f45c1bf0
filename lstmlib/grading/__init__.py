"""The grader's side of the course's grading (never imported in a graded kernel).

``checks``: the checks of every graded part (one module per assignment), run
in the grader's process on cases drawn afresh for each grading; ``protocol``: the
plain data that crosses to and from a graded kernel; ``trusted``: the
nbgrader preprocessor that decides the graded test cells here;
``assignments``: the manifest of the assignments; ``sandbox``, ``pipeline``
and ``__main__``: the sandbox, the instructor's pipeline and command line.

What may run inside a student's kernel lives in :mod:`lstmlib.selfcheck`;
nothing here imports it.
"""
