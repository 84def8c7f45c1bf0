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
