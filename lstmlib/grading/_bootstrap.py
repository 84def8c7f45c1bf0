"""Trusted code that runs inside the grading box, in two roles.

As a script (``python -I -S bootstrap.py SOURCE DEST -- COMMAND...``), before
the kernel: copy the student's files (folders and regular files only) from
SOURCE, mounted read-only, into DEST, the working folder's size-limited
tmpfs, then replace itself with COMMAND (``python -m ipykernel_launcher``).
What the kernel writes afterwards stays in the tmpfs and is bounded by its
size: past it, writes fail with ENOSPC.

As ``sitecustomize`` (mounted first on the kernel's PYTHONPATH): make the
import of a module the box lacks on purpose (``LSTMLIB_ABSENT``, a comma
separated list of names such as ``torch``) fail with a message saying why.

It imports nothing from lstmlib: the box holds no grader code.
"""
import os
import sys

ABSENT_ENV = "LSTMLIB_ABSENT"


class AbsentModuleFinder:
    """A meta-path finder that refuses the names the grading box leaves out."""

    def __init__(self, names):
        self.names = tuple(n for n in names if n)

    def find_spec(self, fullname, path=None, target=None):
        for name in self.names:
            if fullname == name or fullname.startswith(name + "."):
                raise ModuleNotFoundError(
                    f"{fullname} is not available in a graded notebook: the grading "
                    f"kernel holds only what the assignment hands out, and {name} is "
                    "not part of it", name=fullname)
        return None


def install_finder(environ=os.environ):
    names = [n.strip() for n in environ.get(ABSENT_ENV, "").split(",")]
    if any(names):
        sys.meta_path.insert(0, AbsentModuleFinder(names))


def copy_tree(src, dst):
    """Copy folders and regular files only (no links, devices, fifos)."""
    import shutil
    import stat

    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = os.path.relpath(dirpath, src)
        target = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target, exist_ok=True)
        dirnames[:] = [d for d in dirnames
                       if stat.S_ISDIR(os.lstat(os.path.join(dirpath, d)).st_mode)]
        for name in filenames:
            source = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(source).st_mode):
                shutil.copyfile(source, os.path.join(target, name), follow_symlinks=False)


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        print("usage: bootstrap.py SOURCE DEST -- COMMAND...", file=sys.stderr)
        return 2
    source, dest, command = argv[0], argv[1], argv[3:]
    try:
        copy_tree(source, dest)
    except OSError as exc:   # a submission larger than the working folder
        print(f"grading box: the student's files do not fit in the working folder: {exc}",
              file=sys.stderr)
        return 75
    os.chdir(dest)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
elif __name__ == "sitecustomize":
    install_finder()
