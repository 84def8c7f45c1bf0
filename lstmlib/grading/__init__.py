"""The grader's side of the course's grading (never imported in a graded kernel).

``checks``: the checks of every graded part (one module per assignment), run
in the grader's process on cases drawn afresh for each grading; ``protocol``: the
plain data that crosses to and from a graded kernel; ``trusted``: the
nbgrader preprocessor that decides the graded test cells here;
``assignments``: the manifest of the assignments; ``sandbox`` (the box)
and ``resources`` (its limits: cgroups or a watchdog); the instructor's
pipeline: ``config`` (nbgrader_config.py), ``course`` (the nbgrader steps),
``job`` (one submission graded apart), ``driver`` (a class on an executor:
a thread or process pool, or Dask through ``cluster``), ``ledger`` and
``merge`` (each result written once into the gradebook), ``scratch`` (its
folders and copies); ``__main__``: the command line.

What may run inside a student's kernel lives in :mod:`lstmlib.selfcheck`;
nothing here imports it.
"""
