"""The pipeline's files: scratch folders, copies of regular files only, a
consistent copy of an sqlite gradebook, time tags for backups and reports.

A submission is only ever read, and read as regular files: symlinks,
devices and fifos a student submits are never followed nor copied.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

from .config import PipelineError


def now_tag() -> str:
    return _dt.datetime.now().strftime("%Y%m%dT%H%M%S.%f")


def regular_files(root: Path):
    """Regular files under root, never following symlinks."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames
                       if stat.S_ISDIR(os.lstat(os.path.join(dirpath, d)).st_mode)]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                yield Path(path)


def copy_regular(src: Path, dst: Path, *, exclude=lambda rel: False, max_bytes=None):
    """Copy the regular files of src into dst; return skipped relative paths."""
    skipped = []
    src = Path(src)
    if os.path.isdir(src):
        for path in regular_files(src):
            rel = path.relative_to(src)
            if exclude(rel):
                continue
            if max_bytes is not None and os.lstat(path).st_size > max_bytes:
                skipped.append(str(rel))
                continue
            target = Path(dst) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target, follow_symlinks=False)
    return skipped


def sqlite_copy(src: Path, dest: Path):
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as source, \
            sqlite3.connect(dest) as target:
        source.backup(target)


#: A Unix socket's path holds at most 107 bytes; each kernel's sockets are
#: <scratch root>/<n>/rt/k-<port>, up to 20 bytes below the root.
_SOCKET_PATH_MAX, _BELOW_ROOT = 107, 20


def scratch_root(parent=None) -> Path:
    """A new private folder for the scratch courses, in ``parent`` or the
    temporary folder; refused, before any grading, where its path leaves
    no room for the kernels' sockets."""
    root = Path(tempfile.mkdtemp(prefix="lsg-", dir=parent))
    if len(os.fsencode(root)) + _BELOW_ROOT > _SOCKET_PATH_MAX:
        shutil.rmtree(root, ignore_errors=True)
        raise PipelineError(
            f"temporary folder: expected a path of at most "
            f"{_SOCKET_PATH_MAX - _BELOW_ROOT - len('/lsg-xxxxxxxx')} bytes (the kernels' "
            f"sockets live below it), received {root.parent} "
            f"({len(os.fsencode(root.parent))} bytes); set TMPDIR to a shorter folder")
    return root


def mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
