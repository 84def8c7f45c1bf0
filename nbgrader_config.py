"""nbgrader configuration for the course.

The hand-edited source notebooks live in solutions/, the generated student
versions in exercises/. Everything produced while grading (submissions,
autograded copies, feedback, the sqlite gradebook) lives under grading/,
which git ignores.
"""

# A fresh clone has no grading/ folder, and nbgrader cannot create the
# sqlite gradebook inside a missing folder: it would report a misleading
# "error accessing the nbgrader database ... run nbgrader db upgrade".
# nbgrader also runs the `alembic` command of its own environment, which is
# not on PATH when .venv/bin/nbgrader is called without activating .venv.
import os as _os_fresh_clone
import sys as _sys_fresh_clone

_os_fresh_clone.makedirs(_os_fresh_clone.path.join(
    _os_fresh_clone.path.dirname(_os_fresh_clone.path.abspath(__file__)),
    "grading"), exist_ok=True)
_fresh_clone_bin = _os_fresh_clone.path.dirname(_sys_fresh_clone.executable)
_fresh_clone_path = _os_fresh_clone.environ.get("PATH", "")
if _fresh_clone_bin not in _fresh_clone_path.split(_os_fresh_clone.pathsep):
    _os_fresh_clone.environ["PATH"] = (_fresh_clone_bin + _os_fresh_clone.pathsep
                                       + _fresh_clone_path)

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "rnn-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "grading/submitted"
c.CourseDirectory.autograded_directory = "grading/autograded"
c.CourseDirectory.feedback_directory = "grading/feedback"
c.CourseDirectory.solution_directory = "grading/solution"
c.CourseDirectory.db_url = "sqlite:///grading/gradebook.db"

# nbgrader 0.9 reads the execution time limit from Execute (the old
# ExecutePreprocessor.timeout key is ignored).
c.Execute.timeout = 120

# ---------------------------------------------------------------------------
# Grading pipeline (python -m lstmlib.grading ...; see book/instructor_guide.md)
# ---------------------------------------------------------------------------
import os as _os

_course = _os.path.dirname(_os.path.abspath(__file__))

# Keeping solutions and hidden tests private when this repository is public:
# keep the source notebooks in a private folder (a private repository cloned
# next to this one, say) and point nbgrader at it. An absolute path works.
#   export LSTMLIB_GRADING_SOURCE=/home/me/rnn-course-private/solutions
if _os.environ.get("LSTMLIB_GRADING_SOURCE"):
    c.CourseDirectory.source_directory = _os.environ["LSTMLIB_GRADING_SOURCE"]

# The local exchange (release_assignment / fetch_assignment / submit /
# collect on one machine). A course server uses a shared folder such as
# /srv/nbgrader/exchange instead.
c.Exchange.root = _os.path.join(_course, "grading", "exchange")

# Deleted test cells are put back (from the gradebook) before grading.
c.OverwriteCells.add_missing_cells = True

# Every way of grading runs the students' code in the grading sandbox
# (lstmlib/grading/sandbox.py) and decides the graded test cells in
# nbgrader's process (lstmlib/grading/trusted.py): `python -m lstmlib.grading
# autograde` (per submission, in parallel, resumable), plain `nbgrader
# autograde`, and nbgrader's API, which the formgrader's Autograde button
# calls. Only LSTMLIB_UNSANDBOXED_AUTOGRADE=1 (trusted notebooks) grades
# without the sandbox.
c.Autograde.autograde_preprocessors = [
    "lstmlib.grading.trusted.TrustedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Feedback must not show hidden tests: nbgrader's default feedback prints the
# whole autograded cell, hidden tests and their tracebacks included.
# (Classes named as strings: loading this file stays cheap.)
c.GenerateFeedback.preprocessors = [
    "lstmlib.grading._nbext.StripHiddenTests",
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# The sandbox every graded kernel runs in (lstmlib/grading/sandbox.py) and
# its limits (lstmlib/grading/resources.py). Memory, tasks and CPU time count
# all of a submission's processes together (a cgroup per box, else a
# watchdog: `python -m lstmlib.grading
# sandbox-check` says which is in force here).
c.GradingSandbox.memory_bytes = 4 * 1024**3       # memory of the box, all processes
c.GradingSandbox.cpu_seconds = 300                # CPU time of the box, whole notebook
c.GradingSandbox.max_processes = 64               # tasks in the box at once
c.GradingSandbox.max_file_bytes = 64 * 1024**2    # largest file it may write
c.GradingSandbox.tmp_bytes = 256 * 1024**2        # its /tmp (a tmpfs)
c.GradingSandbox.disk_bytes = 512 * 1024**2       # all it may write: /tmp + working folder
c.GradingSandbox.max_cell_output_bytes = 1024**2  # output kept per cell
c.GradingSandbox.max_notebook_output_bytes = 8 * 1024**2
c.GradingSandbox.wall_seconds = 900               # one submission, end to end
c.GradingSandbox.workers = 2                      # submissions graded at once
c.GradingSandbox.call_seconds = 60                # one call of a graded function
# The box maps only what the kernel needs (an allow-list: the Python runtime,
# the assignment's packages and its kernel edition of lstmlib); the course,
# other courses, /tmp, /home and torch are absent.
