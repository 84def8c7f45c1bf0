"""The course's grading configuration: ``nbgrader_config.py`` read once.

:func:`load_config` reads the course folder's ``nbgrader_config.py`` (nbgrader's
``CourseDirectory``, ``Execute`` and ``Exchange`` sections and the grader's
own ``GradingSandbox`` section) into a :class:`CourseConfig`: the folders of
the course, the gradebook's URL, the time and resource limits of a
submission, the number of submissions graded at once.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from . import resources

CONFIG_NAME = "nbgrader_config.py"


class PipelineError(RuntimeError):
    """A step of the grading pipeline failed (an nbgrader command, a missing
    gradebook, a scratch folder that cannot hold the kernels' sockets...).
    Not a failed check: that is :class:`lstmlib.grading.checks` ``GradingError``,
    an AssertionError that becomes a student's score."""


@dataclasses.dataclass
class CourseConfig:
    root: Path
    config_file: Path
    course_id: str
    source: Path
    release: Path
    submitted: Path
    autograded: Path
    feedback: Path
    db_path: Path
    exchange: Path
    cell_timeout: int
    wall_seconds: int
    limits: resources.Limits
    max_cell_output_bytes: int
    max_notebook_output_bytes: int
    max_submission_file_bytes: int
    workers: int
    gradebook_url: str = ""     # a PostgreSQL db_url (else the sqlite db_path)
    call_seconds: int = 60

    @property
    def db_url(self) -> str:
        return self.gradebook_url or f"sqlite:///{self.db_path}"

    @property
    def grading_dir(self) -> Path:
        return self.db_path.parent

    @property
    def reports(self) -> Path:
        return self.grading_dir / "reports"

    @property
    def backups(self) -> Path:
        return self.grading_dir / "backups"


def load_config(root) -> CourseConfig:
    """Read nbgrader_config.py (and its GradingSandbox section) from root."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root).resolve()
    config_file = root / CONFIG_NAME
    if not config_file.is_file():
        raise ValueError(f"root: expected a course folder containing {CONFIG_NAME}, "
                         f"received {root}")
    cfg = PyFileConfigLoader(CONFIG_NAME, path=str(root)).load_config()
    cd = cfg.get("CourseDirectory", {})
    sb = cfg.get("GradingSandbox", {})

    def path(value, default):
        value = value if isinstance(value, str) and value else default
        return (root / value).resolve() if not os.path.isabs(value) else Path(value).resolve()

    db_url = cd.get("db_url", "sqlite:///gradebook.db")
    if not isinstance(db_url, str) or not db_url.startswith(("sqlite:///", "postgresql")):
        raise ValueError(f"CourseDirectory.db_url: expected a sqlite:/// or postgresql:// URL, "
                         f"received {db_url!r}")
    gradebook_url = "" if db_url.startswith("sqlite:///") else db_url
    if gradebook_url:   # reports and backups go next to the submissions
        db_url = "sqlite:///" + os.path.join(
            os.path.dirname(cd.get("submitted_directory") or "submitted") or ".", "gradebook.db")
    limits = resources.Limits(**{f.name: int(sb[f.name])
                                 for f in dataclasses.fields(resources.Limits) if f.name in sb})
    execute = cfg.get("Execute", {})
    exchange = cfg.get("Exchange", {}).get("root", "/srv/nbgrader/exchange")
    return CourseConfig(
        root=root, config_file=config_file,
        course_id=str(cd.get("course_id", "course")),
        source=path(cd.get("source_directory"), "source"),
        release=path(cd.get("release_directory"), "release"),
        submitted=path(cd.get("submitted_directory"), "submitted"),
        autograded=path(cd.get("autograded_directory"), "autograded"),
        feedback=path(cd.get("feedback_directory"), "feedback"),
        db_path=path(db_url[len("sqlite:///"):], "gradebook.db"),
        exchange=path(exchange if isinstance(exchange, str) else None, "/srv/nbgrader/exchange"),
        cell_timeout=int(execute.get("timeout", 30) or 30),
        wall_seconds=int(sb.get("wall_seconds", 600)),
        limits=limits,
        max_cell_output_bytes=int(sb.get("max_cell_output_bytes", 1 << 20)),
        max_notebook_output_bytes=int(sb.get("max_notebook_output_bytes", 8 << 20)),
        max_submission_file_bytes=int(sb.get("max_submission_file_bytes", 50 << 20)),
        workers=int(sb.get("workers", max(1, min(4, os.cpu_count() or 1)))),
        gradebook_url=gradebook_url,
        call_seconds=int(sb.get("call_seconds", 60)),
    )
