"""JupyterHub for the course, on one machine (``make hub``; see the
instructor guide, "The course on a JupyterHub").

Started by hub/launch.py, which sets the environment read below. What it
runs:

- the hub and configurable-http-proxy (installed by scripts/hub-deps.sh
  into .hub/node_modules), on 127.0.0.1 only;
- a demo authenticator: one password per user, handed out by the launcher.
  A course uses an OAuth or LTI authenticator instead (oauthenticator,
  ltiauthenticator), with the same user names as the gradebook's students;
- one server per user, all as the Unix user running the hub
  (SimpleLocalProcessSpawner), each in its own home folder under the
  runtime folder. A course uses DockerSpawner or KubeSpawner, which give
  each student their own container and files;
- nbgrader's extensions by role: the instructor's server runs in the course
  folder with the formgrader (whose Autograde button grades in the
  sandbox, nbgrader_config.py) and no assignment list; the students'
  servers have the assignment list and no formgrader (its pages answer 404);
- the exchange: the course's own exchange folder (Exchange.root in the
  course's nbgrader_config.py), shared by every server. On Kubernetes, where
  the servers share no disk, ngshare takes its place;
- the gradebook of the course's nbgrader_config.py (SQLite in grading/, or
  the PostgreSQL db_url written there): the same one the command line
  writes.
"""

import hmac
import json
import os
import sys
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Dict
from traitlets.config.loader import PyFileConfigLoader

c = get_config()  # noqa: F821  (provided by jupyterhub)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COURSE = Path(os.environ.get("LSTMLIB_HUB_COURSE", REPO)).resolve()
RUNTIME = Path(os.environ.get("LSTMLIB_HUB_RUNTIME", REPO / ".hub" / "runtime")).resolve()
INSTRUCTOR = os.environ.get("LSTMLIB_HUB_INSTRUCTOR", "instructor")
# {"user": "password", ...}; the launcher writes it (mode 600)
PASSWORDS = json.loads((RUNTIME / "passwords.json").read_text())
STUDENTS = sorted(set(PASSWORDS) - {INSTRUCTOR})

# The course's own nbgrader configuration: its course id and exchange
_course_cfg = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE)).load_config()
COURSE_ID = _course_cfg.CourseDirectory.course_id
EXCHANGE = Path(_course_cfg.Exchange.root)
# nbgrader's exchange is a folder every user may write to (its own checks
# refuse a missing or unwritable one)
EXCHANGE.mkdir(parents=True, exist_ok=True)
EXCHANGE.chmod(0o777)


class CoursePasswords(Authenticator):
    """A demo authenticator: each user name has its own password."""

    passwords = Dict(help="user name -> password").tag(config=True)

    async def authenticate(self, handler, data):
        expected = self.passwords.get(data["username"])
        if expected is None or not hmac.compare_digest(expected.encode(),
                                                       data["password"].encode()):
            return None
        return data["username"]


class CourseSpawner(SimpleLocalProcessSpawner):
    """Each user's server in its own home folder; the instructor's runs in
    the course folder (nbgrader finds the course there)."""

    def make_preexec_fn(self, name):
        home, workdir = self.home_dir, self.notebook_dir or self.home_dir

        def preexec():
            os.makedirs(home, 0o700, exist_ok=True)
            os.chdir(workdir)
        return preexec


def _write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def user_config(spawner):
    """Before a server starts: its Jupyter configuration folder, with
    nbgrader's extensions for the user's role and, for a student, the
    course and the exchange."""
    name = spawner.user.name
    confdir = RUNTIME / "config" / name
    instructor = name == INSTRUCTOR
    _write_json(confdir / "jupyter_server_config.json", {"ServerApp": {"jpserver_extensions": {
        "nbgrader.server_extensions.formgrader": instructor,
        "nbgrader.server_extensions.assignment_list": not instructor,
        "nbgrader.server_extensions.course_list": not instructor,
        "nbgrader.server_extensions.validate_assignment": True,
    }}})
    hidden = (["assignment-list", "course-list"] if instructor
              else ["formgrader", "create-assignment"])
    disabled = {f"@jupyter/nbgrader:{part}": True for part in hidden}
    disabled["@jupyterlab/apputils-extension:announcements"] = True   # no news pop-up
    _write_json(confdir / "labconfig" / "page_config.json", {"disabledExtensions": disabled})
    if instructor:
        spawner.notebook_dir = str(COURSE)
    else:
        # nbgrader names a submission after student_id; with every server
        # run by one Unix user, the hub's user name is given here
        _write_json(confdir / "nbgrader_config.json", {
            "CourseDirectory": {"course_id": COURSE_ID, "student_id": name},
            "Exchange": {"root": str(EXCHANGE)}})
    spawner.environment = {"JUPYTER_CONFIG_DIR": str(confdir),
                           "IPYTHONDIR": str(Path(spawner.home_dir) / ".ipython")}


c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ.get("LSTMLIB_HUB_PORT", "8010"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("LSTMLIB_HUB_API_PORT", "8011"))
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{os.environ.get('LSTMLIB_HUB_PROXY_API_PORT', '8012')}")
c.ConfigurableHTTPProxy.command = [str(REPO / ".hub" / "node_modules" / ".bin"
                                       / "configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{RUNTIME / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(RUNTIME / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(RUNTIME / "jupyterhub.pid")
# Every server stops with the hub (Ctrl-C stops everything)
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

c.JupyterHub.authenticator_class = CoursePasswords
c.CoursePasswords.passwords = PASSWORDS
c.Authenticator.allowed_users = set(PASSWORDS)

c.JupyterHub.spawner_class = CourseSpawner
c.CourseSpawner.home_dir_template = str(RUNTIME / "home" / "{username}")
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.pre_spawn_hook = user_config
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "TMPDIR",
                      "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
if os.getuid() == 0:
    # a container's root: the grading sandbox drops graded kernels to an
    # unprivileged uid, but Jupyter refuses root unless told
    c.Spawner.args = ["--allow-root"]
