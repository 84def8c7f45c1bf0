"""The ledger of grading jobs: what makes grading on a cluster idempotent.

A job is one submission of one student to one assignment, named by its
*job key*: a SHA-256 of the course id, the assignment, the student, every
submitted file (path and bytes) and the grader's version (lstmlib's version,
the grading code and the assignment's source notebooks). The ledger is a
table, ``lstmlib_grading_jobs``, in the gradebook's own database (the sqlite
file or the PostgreSQL database of nbgrader's ``db_url``), one row per job
key: state, attempts, the submission's time, a summary of the result, the
error of the last failed attempt.

States: ``pending`` (planned), ``running`` (sent to a worker), ``done``
(merged into the gradebook: graded or ungradable), ``failed`` (the
infrastructure failed it too often, or the grader itself broke: graded
again by the next run), ``superseded`` (a newer submission of the same
student was merged first: its result is never merged).

Delivery from an executor is at least once (a lost worker's task runs
again), so merging (:func:`lstmlib.grading.merge.merge`) is idempotent: a
result whose job is ``done`` is dropped, scores are set and never added,
and the job becomes ``done`` only after the gradebook has committed. If the
driver dies between the two, the next run grades that job again and sets
the same scores. Only the driver (the trusted process) opens the ledger;
workers never see it.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path

TABLE = "lstmlib_grading_jobs"
STATES = ("pending", "running", "done", "failed", "superseded")


def _utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def job_key(course_id: str, assignment: str, student: str, files: dict,
            grader_version: str) -> str:
    """SHA-256 (hex) of everything that decides a submission's grade."""
    if not isinstance(files, dict):
        raise ValueError(f"files: expected a dict of relative path -> bytes, "
                         f"received {type(files).__name__}")
    h = hashlib.sha256()
    for part in (course_id, assignment, student, grader_version):
        data = str(part).encode()
        h.update(len(data).to_bytes(8, "big") + data)
    for rel in sorted(files):
        data = files[rel]
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"files[{rel!r}]: expected bytes, received {type(data).__name__}")
        name = rel.encode()
        h.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def grader_version(source_dir: Path) -> str:
    """lstmlib's version plus a hash of the grading code and of the
    assignment's source folder: change a hidden test, a check or the
    sandbox, and every submission is graded again."""
    import lstmlib
    h = hashlib.sha256()
    code = Path(__file__).resolve().parent
    paths = sorted(code.glob("*.py"))
    if Path(source_dir).is_dir():
        paths += sorted(p for p in Path(source_dir).rglob("*") if p.is_file())
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return f"{getattr(lstmlib, '__version__', '0')}+{h.hexdigest()[:16]}"


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.close()


def engine_for(db_url: str):
    """An SQLAlchemy engine on the gradebook; sqlite gets a write-ahead log
    (readers never block the writer: the formgrader stays usable while a
    class is graded) and a 30 s busy timeout."""
    import sqlalchemy as sa
    if not isinstance(db_url, str) or not db_url.startswith(("sqlite:///", "postgresql")):
        raise ValueError(f"db_url: expected a sqlite:/// or postgresql:// URL, received {db_url!r}")
    if db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///"):]
        if not os.path.isfile(path):
            raise ValueError(f"db_url: expected an existing gradebook, received {db_url!r}")
        engine = sa.create_engine(db_url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        return engine
    return sa.create_engine(db_url, pool_pre_ping=True)


def enable_wal(db_url: str):
    """Switch an sqlite gradebook to write-ahead logging (persistent)."""
    if db_url.startswith("sqlite:///"):
        engine_for(db_url).dispose()


class Ledger:
    """The job table next to the gradebook (see the module's docstring)."""

    def __init__(self, db_url: str):
        import sqlalchemy as sa
        self.db_url = db_url
        self.engine = engine_for(db_url)
        meta = sa.MetaData()
        self.jobs = sa.Table(
            TABLE, meta,
            sa.Column("job_key", sa.String(64), primary_key=True),
            sa.Column("course", sa.String(128), nullable=False),
            sa.Column("assignment", sa.String(128), nullable=False, index=True),
            sa.Column("student", sa.String(128), nullable=False, index=True),
            sa.Column("submitted_at", sa.String(40)),
            sa.Column("grader_version", sa.String(80)),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False, default=0),
            sa.Column("status", sa.String(16)),
            sa.Column("score", sa.Float),
            sa.Column("max_score", sa.Float),
            sa.Column("reason", sa.Text),
            sa.Column("error", sa.Text),
            sa.Column("seconds", sa.Float),
            sa.Column("created_at", sa.String(40)),
            sa.Column("updated_at", sa.String(40)),
        )
        meta.create_all(self.engine)

    def close(self):
        self.engine.dispose()

    # -- reading -----------------------------------------------------------
    def get(self, key: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.jobs.select().where(self.jobs.c.job_key == key)).mappings() \
                .first()
        return dict(row) if row else None

    def rows(self, assignment: str | None = None) -> list:
        q = self.jobs.select()
        if assignment is not None:
            q = q.where(self.jobs.c.assignment == assignment)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(self.jobs.c.student,
                                                             self.jobs.c.created_at)).mappings()]

    def newest_done(self, assignment: str, student: str, *, other_than: str = "") -> str | None:
        """The submission time of the newest merged job of this student."""
        import sqlalchemy as sa
        c = self.jobs.c
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(c.submitted_at)).where(
                c.assignment == assignment, c.student == student, c.state == "done",
                c.job_key != other_than)).scalar()

    # -- writing -----------------------------------------------------------
    def plan(self, jobs, *, regrade=False) -> list:
        """Record each job (dicts with job_key, course, assignment, student,
        submitted_at, grader_version) as pending unless known; return the
        jobs still to grade (neither done nor superseded; with ``regrade``,
        the done ones too, pending again)."""
        todo = []
        now = _utcnow()
        with self.engine.begin() as conn:
            for job in jobs:
                row = conn.execute(self.jobs.select().where(
                    self.jobs.c.job_key == job["job_key"])).mappings().first()
                if row is None:
                    conn.execute(self.jobs.insert().values(
                        state="pending", attempts=0, created_at=now, updated_at=now,
                        **{k: job[k] for k in ("job_key", "course", "assignment", "student",
                                               "submitted_at", "grader_version")}))
                elif row["state"] == "done" and regrade:
                    conn.execute(self.jobs.update().where(
                        self.jobs.c.job_key == job["job_key"]).values(
                        state="pending", updated_at=now))
                elif row["state"] in ("done", "superseded"):
                    continue
                todo.append(job)
        return todo

    def _update(self, key: str, **values):
        values["updated_at"] = _utcnow()
        with self.engine.begin() as conn:
            n = conn.execute(self.jobs.update().where(self.jobs.c.job_key == key)
                             .values(**values)).rowcount
        if n != 1:
            raise KeyError(f"job {key[:12]}... is not in the ledger")

    def start(self, key: str) -> int:
        """Mark a job sent to a worker; returns its attempt number (1, 2, ...)."""
        with self.engine.begin() as conn:
            conn.execute(self.jobs.update().where(self.jobs.c.job_key == key).values(
                state="running", attempts=self.jobs.c.attempts + 1, updated_at=_utcnow()))
            return conn.execute(self.jobs.select().where(self.jobs.c.job_key == key)) \
                .mappings().first()["attempts"]

    def fail(self, key: str, error: str):
        self._update(key, state="failed", error=error)

    def retrying(self, key: str, error: str):
        self._update(key, state="pending", error=error)

    def superseded(self, key: str, newer: str):
        self._update(key, state="superseded",
                     error=f"a newer submission ({newer}) was merged first")

    def done(self, key: str, result):
        self._update(key, state="done", status=result.status, score=result.score,
                     max_score=result.max_score, reason=result.reason or None, error=None,
                     seconds=result.seconds)


def utc_iso(stamp) -> str:
    """A datetime (naive = UTC, as nbgrader stores it) as an ISO string in UTC,
    so that string order is time order."""
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return stamp.isoformat(timespec="microseconds")
