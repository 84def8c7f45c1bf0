"""Entry point of the nbgrader process that grades one submission.

``python -m lstmlib.grading._child autograde ...`` is ``nbgrader autograde
...`` with one change: nbgrader opens its gradebook many times per
submission and each opening runs ``alembic heads`` in a new Python process
to learn the schema version, a constant of the installed nbgrader. The
pipeline asks once and passes the answer in ``LSTMLIB_ALEMBIC_HEAD``.
"""
import os
import sys


def cache_alembic_head():
    import nbgrader.api as api

    head = os.environ.get("LSTMLIB_ALEMBIC_HEAD")
    if not head:
        bindir = os.path.dirname(sys.executable)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        head = api.get_alembic_version()
        os.environ["LSTMLIB_ALEMBIC_HEAD"] = head
    api.get_alembic_version = lambda: head
    return head


def main(argv=None):
    cache_alembic_head()
    from nbgrader.apps.nbgraderapp import NbGraderApp

    NbGraderApp.launch_instance(argv=list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()


def preload():
    """Imported once by the fork server, so each graded submission's
    process starts with nbgrader already loaded."""
    import nbgrader.apps.nbgraderapp  # noqa: F401
    import nbgrader.converters.autograde  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401
    import nbconvert.exporters  # noqa: F401
    import jupyter_client  # noqa: F401
    import zmq  # noqa: F401

    from . import _nbext, assignments, checks, trusted  # noqa: F401
    for name in assignments.ASSIGNMENTS:
        checks.module(name)
    import lstmlib.analysis  # noqa: F401  (the references the checks use)
    import lstmlib.bidirectional  # noqa: F401
    import lstmlib.data  # noqa: F401

    cache_alembic_head()


def run(cwd, env, argv, log_path, limits):
    """Target of one forked grading process: nbgrader with argv in cwd."""
    import resource

    os.setsid()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["nbgrader", *argv]
    try:
        main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
