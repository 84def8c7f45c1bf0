"""Static analysis of the submissions, on the grader's side: the
delegation and similarity report an instructor reads after grading.

Nothing here runs a submission: notebooks are read as JSON and their
answer cells parsed with :mod:`ast`. Grading does not depend on it. The
graded kernel runs in an allow-list bubblewrap sandbox with a kernel
edition of lstmlib that holds only what the assignment hands out, and the
checks run on the grader's side; an answer that calls lstmlib's own
implementation finds nothing there and its part fails. The report says who
tried, and which answers are too close to the reference implementation,
the published solution or each other.

Modules, one job each:

* :mod:`.notebooks`: reading the student-written code out of a notebook
  (answer cells, the released skeleton, the assignment it belongs to);
* :mod:`.resolver`: what a notebook's names and expressions refer to,
  followed statically through aliases, imports, ``getattr``, ``exec`` of
  constant strings and names built from string pieces;
* :mod:`.delegation`: the delegation analysis, with each assignment's rules
  read from its manifest entry (``delegation=`` in
  :mod:`lstmlib.grading.assignments`);
* :mod:`.similarity`: normalised answer code, winnowed fingerprints and
  the flagged pairs;
* :mod:`.report`: the report (CSV, Markdown, HTML) and its command,
  ``python -m lstmlib.grading similarity <assignment>``.

It imports the standard library, tqdm for a progress bar and, of lstmlib,
the manifest alone (plain data); nothing of what a graded kernel holds.
"""
from .delegation import delegating_functions, find_delegation
from .report import similarity_report, write_report

__all__ = ["delegating_functions", "find_delegation", "similarity_report", "write_report"]
