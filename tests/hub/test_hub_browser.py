"""One assignment through the course hub, in a real browser (Chromium).

The hub of ``make hub`` (hub/launch.py, hub/jupyterhub_config.py) on a
free loopback port, with a temporary copy of the course (its
nbgrader_config.py and assignment 04's source notebook). Each person has
their own browser. The steps it plays:

1. the instructor logs in, generates and releases 04_lstm_cell from the
   formgrader;
2. alice and bob log in, open Nbgrader > Assignment List, fetch 04 and
   answer it (alice with the solution, bob with a mistake from the mistake
   bank; both write the short answer of Part C), then submit;
3. the instructor collects; bob is autograded by the course's command line
   and the formgrader shows that grade; then both are autograded with the
   formgrader's Autograde button (the sandboxed path: its log says so);
   the formgrader shows alice 6 and bob the mistake's expected score (3)
   of the 6 autograded points, 8 in all; the instructor grades Part C by
   hand (2/2, 1/2 with a comment), sees 8 and 4, generates and releases
   feedback;
4. each student fetches their feedback and reads their own score in it; a
   student's browser gets a refusal for the other student's server and
   for the formgrader (404 from their own server, 403/404 from the hub
   for the instructor's).

Screenshots of steps 1-4 go to LSTMLIB_HUB_SCREENSHOTS when it is set
(scripts/hub_screenshots.py writes the instructor guide's book/images/hub-*.png).
Without Chromium, chromedriver, bubblewrap, npm or jupyterhub it skips (fails in CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests import mistakes
from tests.notebooks import cell, nbgrader_meta, source

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.lstm_cell, pytest.mark.xdist_group("hub")]

ASSIGNMENT, NOTEBOOK = "04_lstm_cell", "lstm_cell"
WRITTEN = "written_cell_state"                 # Part C, graded by hand
BANK = mistakes.load(ASSIGNMENT)
MISTAKE = next(m for m in BANK.MISTAKES if m.name == "wrong gate activation (sigmoid for g)")
AUTOGRADED = BANK.FULL_SCORE                   # 6 points of code cells
SHOTS = os.environ.get("LSTMLIB_HUB_SCREENSHOTS")
WAIT = 120                                     # seconds, the longest single step


def _missing():
    tools = {"chromium": shutil.which("chromium"), "chromedriver": shutil.which("chromedriver"),
             "bwrap (bubblewrap)": shutil.which("bwrap"), "npm": shutil.which("npm"),
             "jupyterhub (pip install -e '.[hub]')":
                 shutil.which("jupyterhub", path=os.path.dirname(sys.executable))}
    return [name for name, path in tools.items() if not path]


@pytest.fixture(scope="module")
def hub(tmp_path_factory, make_course, hub_launch, skip_or_fail):
    missing = _missing()
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed (make setup system-deps installs "
                     f"them); the hub's browser test needs them")
    course = make_course([ASSIGNMENT])
    running = hub_launch.Hub(course, tmp_path_factory.mktemp("hub") / "runtime",
                             ["alice", "bob"])
    try:
        running.wait()
        running.course = course
        yield running
    finally:
        running.stop()
        log = running.log_path.read_text(errors="replace")
        assert "Traceback" not in log.split("Received signal SIGTERM")[0], log[-5000:]


def click_first(elements):
    """Click the first of ``elements``: True when there was one to click,
    False (try again) when there was none yet."""
    if not elements:
        return False
    elements[0].click()
    return True


class Person:
    """One user's own browser (its own profile: its own cookies)."""

    def __init__(self, hub, user):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.hub, self.user = hub, user
        self.profile = tempfile.mkdtemp(prefix=f"hub-test-{user}-")
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run", "--disable-sync",
                     "--disable-background-networking", "--disable-component-update",
                     "--window-size=1100,720", "--lang=en-US", f"--user-data-dir={self.profile}",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
            options.add_argument(flag)
        self.d = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                  options=options)
        self.d.set_page_load_timeout(WAIT)
        self.d.set_script_timeout(WAIT)

    def quit(self):
        self.d.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- helpers -------------------------------------------------------------
    def get(self, path):
        self.d.get(self.hub.url + path)

    def until(self, condition, timeout=WAIT, what=""):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait
        # the pages redraw their tables and lists: an element found may go
        return WebDriverWait(self.d, timeout, poll_frequency=0.2,
                             ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: condition(), message=f"{self.user}: {what}")

    def css(self, selector):
        from selenium.webdriver.common.by import By
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def shot(self, name):
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.d.save_screenshot(str(Path(SHOTS) / f"hub-{name}.png"))

    def login(self, then=""):
        """Submit the hub's log-in form (the server then starts); ``then``:
        the page to go to once it runs."""
        if then:        # the hub starts the server, then goes to ``then``
            then = "/hub/spawn?next=" + quote(then, safe="")
        self.get("/hub/login" + (f"?next={quote(then, safe='')}" if then else ""))
        self.until(lambda: self.css("#username_input"), what="the log-in form")
        self.css("#username_input")[0].send_keys(self.user)
        self.css("#password_input")[0].send_keys(self.hub.passwords[self.user])
        self.css("#login_submit")[0].click()

    def wait_for_server(self, page="lab", ready=".lm-MenuBar-itemLabel"):
        self.until(lambda: f"/user/{self.user}/{page}" in self.d.current_url
                   and self.css(ready), what=f"the server and its page {page}")

    def status(self, path):
        """Open ``path`` in this browser: the HTTP status of the page it
        ends on (redirects followed) and its text."""
        self.get(path)
        status = self.d.execute_script(
            "return performance.getEntriesByType('navigation')[0].responseStatus")
        return status, self.css("body")[0].text if self.css("body") else ""

    def api(self, method, path, body=None):
        """A call of the user's own Jupyter server from their page (the
        page's cookies and XSRF token, as the page's own scripts do)."""
        reply = self.d.execute_async_script(
            "const [method, path, body, done] = arguments;"
            "const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';"
            "fetch(path, {method, credentials: 'same-origin',"
            "  headers: {'X-XSRFToken': decodeURIComponent(xsrf),"
            "            'Content-Type': 'application/json'},"
            "  body: body === null ? undefined : JSON.stringify(body)})"
            ".then(async r => done([r.status, await r.text()]), e => done([0, String(e)]));",
            method, path, body)
        assert 200 <= reply[0] < 300, (self.user, method, path, reply)
        return json.loads(reply[1]) if reply[1] else None

    # -- the formgrader (instructor) ------------------------------------------
    def modal(self):
        """Wait for the formgrader's result dialog; its title and log; close it."""
        from selenium.webdriver.common.by import By

        def shown():
            return [m for m in self.css(".modal") if m.is_displayed() and m.find_element(
                By.CSS_SELECTOR, ".modal-title").get_attribute("textContent").strip()]
        self.until(shown, what="the formgrader's dialog")
        m = shown()[0]
        title = m.find_element(By.CSS_SELECTOR, ".modal-title").get_attribute("textContent")
        body = m.find_element(By.CSS_SELECTOR, ".modal-body").get_attribute("textContent")
        m.find_element(By.CSS_SELECTOR, ".modal-footer button").click()

        def closed():
            # a click that lands while the dialog still fades in is lost: click again
            from selenium.common.exceptions import WebDriverException
            shown_now = [m for m in self.css(".modal") if m.is_displayed()]
            for m in shown_now:
                try:
                    m.find_element(By.CSS_SELECTOR, ".modal-footer button").click()
                except WebDriverException:
                    pass                    # fading out: the next poll sees it gone
            return not shown_now
        self.until(closed, what="the dialog to close")
        return title, body

    def row_action(self, key, column):
        """Click the link in ``column`` of the formgrader's table row whose
        first cell is ``key``; the dialog's title and log."""
        def link():
            return [a for td in self.css(f'td[data-order="{key}"]')
                    for a in td.find_elements("xpath", f'../td[contains(@class, "{column}")]/a')]
        self.until(lambda: click_first(link()), what=f"{column} of {key}")
        return self.modal()

    def cell_text(self, key, column):
        from selenium.webdriver.common.by import By
        from selenium.common.exceptions import StaleElementReferenceException
        try:
            td = self.css(f'td[data-order="{key}"]')
            return td[0].find_element(By.XPATH, f'../td[contains(@class, "{column}")]').text \
                if td else ""
        except StaleElementReferenceException:      # the table redrawn meanwhile
            return ""

    # -- the assignment list (students) ----------------------------------------
    def open_assignment_list(self):
        def click(selector, text):
            return click_first([e for e in self.css(selector) if e.text == text])
        self.until(lambda: click(".lm-MenuBar-itemLabel", "Nbgrader"), what="Nbgrader menu")
        self.until(lambda: click(".lm-Menu-itemLabel", "Assignment List"),
                   what="Assignment List")

    def list_button(self, section, label):
        """Click ``label`` in the assignment list's ``section`` once it shows."""
        def button():
            return [b for b in self.css(f"#{section}_assignments_list button")
                    if b.text == label and b.is_enabled()]
        self.until(lambda: click_first(button()), what=f"{label} in {section}")


def answered(released, submission):
    """The released notebook with the solution cells of ``submission`` (a
    notebook of the solution folder, possibly carrying a mistake): a
    student's answer, without the solution markers."""
    ids = {nbgrader_meta(c)["grade_id"]: source(c)
           for c in submission["cells"] if nbgrader_meta(c).get("solution")}
    out = json.loads(json.dumps(released))
    for c in out["cells"]:
        meta = nbgrader_meta(c)
        if meta.get("solution"):
            text = ids[meta["grade_id"]]
            c["source"] = "".join(line for line in text.splitlines(keepends=True)
                                  if line.strip() not in ("### BEGIN SOLUTION",
                                                          "### END SOLUTION"))
    return out


def test_one_assignment_through_the_hub(hub):
    start = time.monotonic()
    people = {u: Person(hub, u) for u in ["instructor", "alice", "bob"]}
    try:
        _play(hub, people)
    finally:
        for p in people.values():
            p.quit()
    print(f"the whole term in the browser: {time.monotonic() - start:.0f} s")


def _play(hub, people):
    teacher, alice, bob = people["instructor"], people["alice"], people["bob"]
    fg = f"/user/{hub.instructor}/formgrader"
    clock = time.monotonic()

    def done(step):
        print(f"{time.monotonic() - clock:6.1f} s  {step}", flush=True)

    # everyone logs in at once, so the three servers start side by side; the
    # instructor goes to the formgrader's page (JupyterLab's Formgrader tab
    # shows the same page), the students to JupyterLab
    teacher.login(then=f"{fg}/manage_assignments")
    alice.login()
    bob.login()
    teacher.wait_for_server("formgrader/manage_assignments", f'td[data-order="{ASSIGNMENT}"]')
    alice.wait_for_server()
    bob.wait_for_server()

    done("logged in, three servers started")

    # 1. generate and release from the formgrader
    title, log = teacher.row_action(ASSIGNMENT, "assign")
    assert title == "Success", log
    title, log = teacher.row_action(ASSIGNMENT, "release")
    assert title == "Success", log
    teacher.until(lambda: teacher.cell_text(ASSIGNMENT, "status") == "released",
                  what="released")
    teacher.shot("1-formgrader-released")

    done("generated and released")

    # 2. fetch, answer, submit from the assignment list
    solution = json.loads((hub.course / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
                          .read_text())
    # what each student writes in the solution cells (copied below into the
    # notebook they fetched)
    answers = {
        alice: answered(solution, solution),
        bob: answered(solution, mistakes.apply(solution, MISTAKE)),
    }
    # bob's written answer: half right
    cell(answers[bob], WRITTEN)["source"] = ("`dc_prev = dc * f`: the cell state is added "
                                             "to, not multiplied, so its gradient does not "
                                             "vanish.")
    for student in (alice, bob):
        student.open_assignment_list()
        student.list_button("released", "Fetch")
        student.until(lambda s=student: s.css("#fetched_assignments_list .list_item"),
                      what="the fetched assignment")
        path = f"/user/{student.user}/api/contents/{ASSIGNMENT}/{NOTEBOOK}.ipynb"
        released = student.api("GET", path)["content"]
        assert "YOUR ANSWER HERE" in json.dumps(released)
        student.api("PUT", path, {"type": "notebook", "format": "json",
                                  "content": answered(released, answers[student])})
        if student is alice:
            student.shot("2-student-fetched")
        student.list_button("fetched", "Submit")
        student.until(lambda s=student: s.css("#submitted_assignments_list .list_item"),
                      what="the submission listed")

    done("fetched, answered, submitted")

    # 3. collect, autograde with the formgrader's button, grade by hand
    teacher.get(f"{fg}/manage_assignments")
    title, log = teacher.row_action(ASSIGNMENT, "collect")
    assert title == "Success", log
    # bob first with the course's command line (in one process here; on
    # Dask for a large class), whose grade the formgrader shows; then both
    # with the formgrader's Autograde button: one gradebook
    expected_auto = {"alice": AUTOGRADED, "bob": MISTAKE.expected_score}
    total = AUTOGRADED + 2                    # Part C: 2 points by hand
    cli = subprocess.run([sys.executable, "-m", "lstmlib.grading", "autograde", ASSIGNMENT,
                          "--student", "bob", "--workers", "1"], cwd=hub.course,
                         capture_output=True, text=True, timeout=WAIT)
    graded = rf"^bob +graded +{MISTAKE.expected_score:.2f}/{total:.2f}"
    assert cli.returncode == 0 and re.search(graded, cli.stdout, re.M), \
        cli.stdout + cli.stderr[-3000:]
    assert "sandbox: bubblewrap works" in cli.stdout + cli.stderr

    def scores(students):
        for student in students:
            want = f"{expected_auto[student]:g} / {total:g}"
            teacher.until(lambda s=student, w=want: teacher.cell_text(s, "score") == w,
                          what=f"{student}'s score {want}")
            assert teacher.cell_text(student, "status") == "needs manual grading"
    teacher.get(f"{fg}/manage_submissions/{ASSIGNMENT}")
    scores(["bob"])
    for student in ("alice", "bob"):
        title, log = teacher.row_action(student, "autograde")
        assert title == "Success", log
        assert "sandbox: bubblewrap works" in log, log[-3000:]
    teacher.get(f"{fg}/manage_submissions/{ASSIGNMENT}")
    scores(["alice", "bob"])
    teacher.shot("3-formgrader-autograded")

    done("collected and autograded")
    hand = {"alice": (2, ""), "bob": (1, "Right term, but say why no weight matrix "
                                         "or tanh' shrinks it.")}
    for student, (points, comment) in hand.items():
        teacher.get(f"{fg}/gradebook/{ASSIGNMENT}/{NOTEBOOK}")
        href = teacher.until(lambda s=student: next(
            (a.get_attribute("href") for a in teacher.css("a.name-shown")
             if a.get_attribute("textContent") == s), None), what=f"{student}'s submission")
        submission = href.rstrip("/").rsplit("/", 1)[1]
        teacher.get(href.replace(hub.url, ""))
        # the page's script fills the boxes from the gradebook: type after it
        teacher.until(lambda: teacher.css(f"input.score.needs_manual_grade#{WRITTEN}"),
                      what="Part C's score box")
        from selenium.webdriver.common.keys import Keys
        box = teacher.css(f"input.score#{WRITTEN}")[0]
        box.clear()
        box.send_keys(str(points), Keys.TAB)          # leaving the box saves it
        if comment:
            teacher.css(f"#{WRITTEN}-comment")[0].send_keys(comment, Keys.TAB)

        def saved(s=submission, p=points, c=comment):
            grades = teacher.api("GET", f"{fg}/api/grades?submission_id={s}")
            notes = teacher.api("GET", f"{fg}/api/comments?submission_id={s}")
            return ([g["manual_score"] for g in grades if g["name"] == WRITTEN] == [p]
                    and (not c or c in [n["manual_comment"] for n in notes]))
        teacher.until(saved, what=f"{student}'s hand grade saved")
        if student == "bob":
            teacher.shot("4-formgrader-hand-grade")
    teacher.get(f"{fg}/manage_submissions/{ASSIGNMENT}")
    for student, score in expected_auto.items():
        want = f"{score + hand[student][0]:g} / {total:g}"
        teacher.until(lambda s=student, w=want: teacher.cell_text(s, "score") == w,
                      what=f"{student}'s total {want}")
    teacher.get(f"{fg}/manage_assignments")
    title, log = teacher.row_action(ASSIGNMENT, "generate-feedback")
    assert title == "Success", log
    title, log = teacher.row_action(ASSIGNMENT, "release-feedback")
    assert title == "Success", log

    done("graded by hand, feedback released")

    # 4. each student reads their own feedback, and nothing of the other's
    for student in (alice, bob):
        student.list_button("submitted", "Fetch Feedback")
        student.until(lambda s=student: [a for a in s.css("#submitted_assignments_list a")
                                         if "view feedback" in a.text],
                      what="the fetched feedback")
        folder = student.api("GET", f"/user/{student.user}/api/contents/{ASSIGNMENT}/feedback")
        (stamp,) = [item["name"] for item in folder["content"]]
        student.get(f"/user/{student.user}/files/{ASSIGNMENT}/feedback/{stamp}/{NOTEBOOK}.html")
        student.until(lambda s=student: s.css("body") and "Score" in s.css("body")[0].text,
                      what="the feedback page")
        page = student.css("body")[0].text
        name = student.user
        want = expected_auto[name] + hand[name][0]
        assert f"Score: {want:g} / {total:g}" in page.replace(".0 ", " "), page[:800]
        if hand[name][1]:
            assert hand[name][1] in page
        assert "BEGIN HIDDEN TESTS" not in page
        if student is bob:
            student.shot("5-student-feedback")
    for student, other in ((alice, bob), (bob, alice)):
        feedback = f"/api/contents/{ASSIGNMENT}/feedback"
        mine = student.status(f"/user/{student.user}{feedback}")
        assert mine[0] == 200 and '"type": "directory"' in mine[1].replace('":"', '": "'), mine
        theirs = student.status(f"/user/{other.user}{feedback}")
        assert theirs[0] in (403, 404) and '"type"' not in theirs[1], theirs
        own_formgrader = student.status(f"/user/{student.user}/formgrader/manage_assignments")
        assert own_formgrader[0] == 404, own_formgrader
        instructors = student.status(f"{fg}/manage_assignments")
        assert instructors[0] in (403, 404) and ASSIGNMENT not in instructors[1], instructors
    done("feedback read; the other's server and the formgrader refused")
