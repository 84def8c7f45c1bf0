"""Start the course's JupyterHub on 127.0.0.1 (``make hub``).

    python hub/launch.py [--port 8010] [--course .] [--students alice,bob]

It installs configurable-http-proxy if it is missing (scripts/hub-deps.sh),
writes a password for each user into the runtime folder (.hub/runtime,
mode 600), starts JupyterHub with hub/jupyterhub_config.py, prints the
address and the log-ins once the hub answers, and stops everything it
started on Ctrl-C. ``--port 0`` picks a free port; the hub's internal ports
are always picked free.
"""

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROXY = REPO / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _name(text, what):
    if not text or not text.replace("-", "").replace("_", "").isalnum() or not text.islower():
        raise ValueError(f"{what}: expected lower-case letters, digits, - or _, "
                         f"received {text!r}")
    return text


def install_proxy():
    """configurable-http-proxy from npm, into .hub/ (once)."""
    if not PROXY.exists():
        subprocess.run(["bash", str(REPO / "scripts" / "hub-deps.sh")], check=True)
    if not PROXY.exists():
        raise RuntimeError(f"configurable-http-proxy missing at {PROXY}: "
                           "install node and npm, then run scripts/hub-deps.sh")


class Hub:
    """A running course hub: ``url``, ``passwords`` (user -> password),
    ``instructor``, ``students``; ``stop()`` ends it and its servers."""

    def __init__(self, course, runtime, students=("alice", "bob"), instructor="instructor",
                 port=0, password=None, log=None):
        course, runtime = Path(course).resolve(), Path(runtime).resolve()
        if not (course / "nbgrader_config.py").is_file():
            raise ValueError(f"course: expected a folder with nbgrader_config.py, "
                             f"received {str(course)!r}")
        students = [_name(s, "students") for s in students]
        instructor = _name(instructor, "instructor")
        if instructor in students or len(set(students)) != len(students) or not students:
            raise ValueError(f"students: expected distinct names other than the "
                             f"instructor's ({instructor!r}), received {students!r}")
        install_proxy()
        runtime.mkdir(parents=True, exist_ok=True)
        self.instructor, self.students = instructor, students
        self.passwords = {u: password or secrets.token_urlsafe(9)
                          for u in [instructor, *students]}
        secret = runtime / "passwords.json"
        secret.touch(mode=0o600)
        secret.write_text(json.dumps(self.passwords))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ,
                   LSTMLIB_HUB_COURSE=str(course), LSTMLIB_HUB_RUNTIME=str(runtime),
                   LSTMLIB_HUB_INSTRUCTOR=instructor, LSTMLIB_HUB_PORT=str(self.port),
                   LSTMLIB_HUB_API_PORT=str(free_port()),
                   LSTMLIB_HUB_PROXY_API_PORT=str(free_port()),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        self.log_path = runtime / "jupyterhub.log"
        self._log = log or open(self.log_path, "ab")
        # its own process group: stop() reaches the proxy and every server
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"),
             "-f", str(REPO / "hub" / "jupyterhub_config.py")],
            cwd=runtime, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait(self, timeout=90):
        """Wait until the hub answers on its address."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited {self.proc.returncode}; "
                                   f"its log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/hub/api", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"jupyterhub did not answer at {self.url} within {timeout} s; "
                           f"its log: {self.log_path}")

    def stop(self, timeout=30):
        """SIGTERM to the hub (it stops the proxy and the servers it
        started), then SIGKILL to whatever of its process group is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8010, help="0 for a free port")
    parser.add_argument("--course", default=str(REPO), help="the course folder")
    parser.add_argument("--runtime", default=str(REPO / ".hub" / "runtime"),
                        help="the hub's database, log, passwords and home folders")
    parser.add_argument("--students", default="alice,bob")
    parser.add_argument("--instructor", default="instructor")
    parser.add_argument("--password", help="one password for every user (default: "
                                           "a random one each)")
    args = parser.parse_args(argv)
    # `kill` and a closing terminal stop it as Ctrl-C does
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.default_int_handler)
    hub = Hub(args.course, args.runtime, args.students.split(","), args.instructor,
              args.port, args.password, log=sys.stderr.buffer)
    try:
        hub.wait()
        print(f"\nThe course hub is at {hub.url}/ (Ctrl-C stops it)", flush=True)
        print(f"  course folder: {Path(args.course).resolve()}")
        for user, password in hub.passwords.items():
            role = "instructor (formgrader)" if user == hub.instructor else "student"
            print(f"  {user:12s} password {password:14s} {role}")
        print(flush=True)
        hub.proc.wait()
    except KeyboardInterrupt:
        print("\nStopping the hub and every server it started...", file=sys.stderr)
    finally:
        hub.stop()
    return hub.proc.returncode


if __name__ == "__main__":
    sys.exit(main())
