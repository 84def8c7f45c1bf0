"""The book as readers see it: every page of the built site in a real browser.

The built site (_build/html; built once here if missing) is served on
127.0.0.1 and visited page by page in Debian's headless Chromium through
selenium, in one browser session. Outside hosts are unreachable in that
browser (as on a student's poor connection, or the test machine): a page
that needs a CDN fails here.

Checked on every page: no console error, no failed or outside request, no
broken internal link or image, math typeset by the bundled MathJax, figures
rendered with a caption, page weight under 5 MB. Then: the search box finds
"forget gate" in the LSTM chapter, the Persian glossary is right to left,
exercise pages show the student version, notebook pages carry launch and
download buttons. Screenshots of key pages go to _build/screenshots/.

The Persian edition (_build/html/fa, built by `make book`) is crawled with
the English one, every check above included, and: its pages are right to
left (<html dir="rtl" lang="fa">) with code, math and outputs left to right
and the bundled Persian font in use; its images have Persian alt text; each
page links to its counterpart in the other edition, both ways; the Persian
query «دروازه فراموشی» (forget gate) finds the LSTM chapter first.

Without chromium and chromedriver these tests skip, except in CI (env CI
set), where a missing browser is a failure.
"""

import functools
import gzip
import html.parser
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests import notebooks

ROOT = Path(__file__).resolve().parents[2]

SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
REPORT = ROOT / "_build" / "website-report.json"

MAX_PAGE_BYTES = 5_000_000  # 5 MB
LSTM_PAGE = "book/04_lstm.html"
GLOSSARY_PAGE = "book/appendix_glossary.html"
PERSIAN = "fa/"  # the Persian edition, under the site's root
FA_INTRO_PAGE = PERSIAN + "book/intro.html"
FA_LSTM_PAGE = PERSIAN + LSTM_PAGE
SCREENSHOT_PAGES = {
    "intro": "index.html",
    "lstm": LSTM_PAGE,
    "glossary": GLOSSARY_PAGE,
    "fa-intro": FA_INTRO_PAGE,
    "fa-lstm": FA_LSTM_PAGE,
}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]


# --------------------------------------------------------------------------
# The site, the server, the browser
# --------------------------------------------------------------------------

def _browser_paths():
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def site():
    """The built book; built once (same command as `make book`) if missing."""
    if not (SITE / "index.html").is_file():
        jb = Path(sys.executable).with_name("jupyter-book")
        cmd = [str(jb) if jb.exists() else "jupyter-book",
               "build", str(ROOT), "-W", "-n", "--keep-going"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not (SITE / "index.html").is_file():
            pytest.fail("building the book failed:\n" + proc.stdout[-3000:]
                        + proc.stderr[-3000:])
    if not (SITE / PERSIAN / "index.html").is_file():
        cmd = [sys.executable, str(ROOT / "scripts" / "build_book_fa.py"), "-q"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail("building the Persian edition failed:\n"
                        + proc.stdout[-3000:] + proc.stderr[-3000:])
    return SITE


COMPRESSIBLE = {".html", ".js", ".css", ".json", ".svg", ".txt", ".map",
                ".ipynb", ".md", ".xml"}


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, gzip-compressed where GitHub Pages compresses them, so
    that measured transfer sizes are those readers will see."""

    _gzipped = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            if not urlsplit(self.path).path.endswith("/"):
                return super().do_GET()  # redirects to the folder's URL
            path = path / "index.html"
        if (path.suffix not in COMPRESSIBLE or not path.is_file()
                or "gzip" not in self.headers.get("Accept-Encoding", "")):
            return super().do_GET()
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._gzipped:
            self._gzipped[key] = gzip.compress(path.read_bytes(), 6)
        body = self._gzipped[key]
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server(site):
    """Base URL of the site served by http.server on a free local port."""
    handler = functools.partial(SiteHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def driver(skip_or_fail):
    chromium, chromedriver = _browser_paths()
    if not (chromium and chromedriver):
        missing = " and ".join(name for name, path in
                               [("chromium", chromium),
                                ("chromedriver", chromedriver)] if not path)
        skip_or_fail(f"{missing} not installed (scripts/system-deps.sh installs them; "
                     "Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="website-test-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-US",
        f"--user-data-dir={profile}",
        # Every host but the local server is unreachable, online or not.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs",
                           {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(chromedriver), options=options)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    # Every page is measured as a first visit: nothing from the cache.
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


# --------------------------------------------------------------------------
# Visiting a page
# --------------------------------------------------------------------------

# Waits until the page is done: MathJax has typeset, fonts and images loaded.
WAIT_READY_JS = """
const done = arguments[arguments.length - 1];
(async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    try { await mj.startup.promise; } catch (e) {}
  }
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  await Promise.all([...document.images].map(img => {
    if (img.loading === 'lazy') { img.loading = 'eager'; }
    if (img.complete) { return null; }
    return new Promise(resolve => {
      img.addEventListener('load', resolve);
      img.addEventListener('error', resolve);
      setTimeout(resolve, 10000);
    });
  }));
  done(performance.now());
})();
"""

# Everything the checks need from the rendered page, in one round trip.
COLLECT_JS = r"""
const visible = el => !!(el && el.getClientRects().length);
const refs = [];
for (const el of document.querySelectorAll(
    'a[href], link[href], script[src], img[src], source[src], iframe[src], '
    + 'video[src], audio[src], embed[src], object[data]')) {
  for (const attr of ['href', 'src', 'data']) {
    const raw = el.getAttribute(attr);
    if (raw === null) continue;
    let abs;
    try { abs = new URL(raw, document.baseURI).href; } catch (e) { abs = raw; }
    refs.push({tag: el.tagName.toLowerCase(), attr, raw, url: abs});
  }
}
const images = [...document.images].map(img => ({
  src: img.currentSrc || img.src, complete: img.complete,
  naturalWidth: img.naturalWidth, shown: visible(img),
  alt: img.getAttribute('alt'),
  decorative: !!img.closest('.navbar-brand, .logo, [aria-hidden=true]'),
}));
const figures = [...document.querySelectorAll('figure')].map(fig => {
  const media = [...fig.querySelectorAll('img, svg, canvas, object')];
  const cap = fig.querySelector('figcaption');
  return {
    id: fig.id,
    caption: cap ? cap.textContent.trim() : '',
    media: media.map(m => ({
      tag: m.tagName.toLowerCase(),
      width: m.getBoundingClientRect().width,
      height: m.getBoundingClientRect().height,
      naturalWidth: m.naturalWidth === undefined ? null : m.naturalWidth,
    })),
  };
});
const maths = [...document.querySelectorAll('.math')];
const untypeset = maths.filter(m => !m.querySelector('mjx-container'))
  .map(m => m.textContent.trim().slice(0, 100));
const mathErrors = [...document.querySelectorAll('mjx-merror')]
  .map(e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 100));
// Visible prose: text nodes outside code, scripts and typeset math.
const skip = 'pre, code, script, style, textarea, kbd, mjx-container, .highlight';
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const prose = [];
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const p = n.parentElement;
  if (!p || p.closest(skip) || !visible(p)) continue;
  if (n.nodeValue.trim()) prose.push(n.nodeValue);
}
const nav = performance.getEntriesByType('navigation')[0];
return {
  url: location.href,
  title: document.title,
  lang: document.documentElement.lang,
  dir: document.documentElement.dir,
  editionLinks: [...document.querySelectorAll('a.edition-link')].map(a => ({
    href: a.href, hreflang: a.getAttribute('hreflang'), shown: visible(a)})),
  refs, images, figures,
  mathCount: maths.length,
  mjxCount: document.querySelectorAll('mjx-container').length,
  untypeset, mathErrors,
  mathjaxLoaded: !!(window.MathJax && window.MathJax.startup),
  prose: prose.join('\n'),
  text: document.body.textContent,
  loadMs: nav ? nav.loadEventEnd - nav.startTime : null,
};
"""

# Text nodes with Persian (Arabic-script) letters, with their direction.
PERSIAN_JS = r"""
const re = /[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]/;
const main = document.querySelector('main') || document.body;
const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
const out = [];
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const p = n.parentElement;
  if (!p || !re.test(n.nodeValue) || p.closest('script, style')) continue;
  // The block the text sits in (table cell, paragraph, list item...).
  let block = p;
  while (block.parentElement && block !== main
         && getComputedStyle(block).display.startsWith('inline')) {
    block = block.parentElement;
  }
  out.push({text: n.nodeValue.trim().slice(0, 60), tag: p.tagName.toLowerCase(),
            direction: getComputedStyle(p).direction,
            block: block.tagName.toLowerCase(),
            blockDirection: getComputedStyle(block).direction,
            persianOnly: !/[A-Za-z]/.test(block.textContent),
            inTable: !!block.closest('td, th'),
            shown: p.getClientRects().length > 0});
}
return out;
"""


@dataclass
class Page:
    path: str                 # relative to the site root, e.g. book/04_lstm.html
    data: dict = field(default_factory=dict)
    console: list = field(default_factory=list)      # SEVERE console entries
    requests: list = field(default_factory=list)     # every URL requested
    failed: list = field(default_factory=list)       # (url, status or error)
    bytes: int = 0              # transferred (gzip as on GitHub Pages), cold cache
    raw_bytes: int = 0          # the same, uncompressed
    ready_ms: float = 0.0                             # until math typeset
    urls: dict = field(default_factory=dict)          # request id -> URL


def _network_events(driver):
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        yield msg["method"], msg.get("params", {})


def record_logs(driver, page):
    """Move what the browser logged since the last call into `page`."""
    page.console += [e for e in driver.get_log("browser")
                     if e["level"] == "SEVERE"]
    for method, params in _network_events(driver):
        rid = params.get("requestId")
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            page.urls[rid] = url
            page.requests.append(url)
        elif method == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                page.failed.append((params["response"]["url"], status))
        elif method == "Network.loadingFailed":
            page.failed.append((page.urls.get(rid, "?"),
                                params.get("errorText")))
        elif method == "Network.dataReceived":
            page.raw_bytes += int(params.get("dataLength", 0))
        elif method == "Network.loadingFinished":
            page.bytes += int(params.get("encodedDataLength", 0))


def visit(driver, base, path, screenshot=None):
    """Load one page, wait until it is done, and record what happened."""
    page = Page(path)
    driver.get(base + path)
    if driver.execute_script(
            "return !!document.querySelector('meta[http-equiv=refresh i]')"):
        # A forwarding page (index.html): check the page it forwards to.
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(driver, 10).until(
            lambda d: d.current_url != base + path and d.execute_script(
                "return document.readyState") == "complete",
            message=f"{path} does not forward anywhere")
    page.ready_ms = driver.execute_async_script(WAIT_READY_JS)
    time.sleep(0.05)  # let the last network events arrive in the log
    page.data = driver.execute_script(COLLECT_JS)
    if screenshot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"{screenshot}.png"))
    record_logs(driver, page)
    return page


def site_pages(site):
    """Every HTML page of the site, both editions (theme templates in
    _static excluded)."""
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if not any(part.startswith("_")
                             for part in p.relative_to(site).parts))


@pytest.fixture(scope="module")
def crawl(driver, site, server):
    """Visit every page once; the tests below check what was recorded."""
    exercise = next((p for p in site_pages(site) if p.startswith("exercises/")),
                    None)
    shots = {v: k for k, v in SCREENSHOT_PAGES.items()}
    if exercise:
        shots[exercise] = "exercise"
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get_log("performance")
    pages, page = {}, None
    for p in site_pages(site):
        if page:  # what the previous page did after it was checked
            record_logs(driver, page)
        pages[p] = page = visit(driver, server, p, screenshot=shots.get(p))
    driver.get("about:blank")
    record_logs(driver, page)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(
        {p: {"bytes": pg.bytes, "raw_bytes": pg.raw_bytes, "load_ms": pg.data.get("loadMs"),
             "ready_ms": pg.ready_ms, "requests": len(pg.requests)}
         for p, pg in pages.items()}, indent=1))
    return pages


def _fmt(problems):
    return "\n".join(f"  {p}" for p in problems[:60]) + (
        f"\n  ... and {len(problems) - 60} more" if len(problems) > 60 else "")


# --------------------------------------------------------------------------
# Every page
# --------------------------------------------------------------------------

def test_site_has_every_toc_page(site):
    """Every file of _toc.yml became a page (the crawl covers the book)."""
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", toc, re.M)
    assert files, "no files found in _toc.yml"
    missing = [f for f in files
               if not (site / Path(f).with_suffix(".html")).is_file()]
    assert not missing, "pages missing from the build:\n" + _fmt(missing)


def test_no_console_errors(crawl):
    problems = [f"{p}: {e['message'][:300]}"
                for p, pg in crawl.items() for e in pg.console]
    assert not problems, "console errors:\n" + _fmt(problems)


def test_every_page_names_its_icon(site):
    """A page without <link rel="icon"> makes the browser ask for
    /favicon.ico, which the site does not have (a 404 in the console, if the
    request happens to leave before the page goes on). The forwarding page at
    the root counts: a reader's first visit lands there."""
    pages = site_pages(site)
    assert "index.html" in pages
    missing = [p for p in pages
               if not re.search(r'<link[^>]+rel="(?:shortcut )?icon"[^>]*href="([^"]+)"',
                                (site / p).read_text(encoding="utf-8"))]
    assert not missing, "pages without an icon:\n" + _fmt(missing)
    icon = re.search(r'<link[^>]+rel="icon"[^>]*href="([^"]+)"',
                     (site / "index.html").read_text(encoding="utf-8")).group(1)
    assert (site / icon).is_file(), f"index.html names {icon}, which is not in the site"


def test_no_request_leaves_localhost(crawl, server):
    """The site works offline: no page asks an outside host for anything."""
    origin = server.rstrip("/")
    problems = sorted({f"{p}: {u[:200]}" for p, pg in crawl.items()
                       for u in pg.requests
                       if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                       and not u.startswith(origin + "/")})
    assert not problems, "requests to outside hosts:\n" + _fmt(problems)


def test_no_failed_requests(crawl):
    problems = [f"{p}: {u[:200]} -> {why}"
                for p, pg in crawl.items() for u, why in pg.failed]
    assert not problems, "failed requests:\n" + _fmt(problems)


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _anchors(path):
    parser = _Ids()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def test_no_broken_internal_links(crawl, server, site):
    """Every href/src into the site names an existing file (and anchor)."""
    problems = set()
    for p, pg in crawl.items():
        for ref in pg.data["refs"]:
            url = ref["url"]
            if not url.startswith(server):
                continue
            parts = urlsplit(url)
            rel = unquote(parts.path).lstrip("/")
            target = site / rel
            if rel == "" or rel.endswith("/"):
                target = target / "index.html"
            if not target.resolve().is_relative_to(site.resolve()) \
                    or not target.is_file():
                problems.add(f"{p}: <{ref['tag']} {ref['attr']}="
                             f"\"{ref['raw']}\"> -> missing {rel or '/'}")
                continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html" and ref["tag"] == "a" \
                    and frag not in _anchors(str(target)):
                problems.add(f"{p}: <a href=\"{ref['raw']}\"> -> no "
                             f"#{frag} in {rel}")
    assert not problems, "broken internal links:\n" + _fmt(sorted(problems))


def test_images_load(crawl):
    problems = [f"{p}: {img['src'][:200]}" for p, pg in crawl.items()
                for img in pg.data["images"]
                if not (img["complete"] and img["naturalWidth"] > 0)]
    assert not problems, "images that did not load:\n" + _fmt(problems)


def _meaningful_alt(alt):
    """Alt text that describes the image in words: not empty, not a file
    name, not the hash-named path Sphinx falls back to."""
    alt = (alt or "").strip()
    return (len(alt.split()) >= 5
            and not re.search(r"\.(svg|png|jpe?g|gif|webp)\b", alt, re.I)
            and not re.search(r"(^|/)_images/|[0-9a-f]{20,}", alt))


def test_every_image_has_meaningful_alt_text(crawl):
    """A screen reader reads out what each figure shows, never a file
    name: every content image of every page has descriptive alt text."""
    problems, checked = [], 0
    for p, pg in crawl.items():
        for img in pg.data["images"]:
            if img["decorative"] or not img["shown"]:
                continue
            checked += 1
            if not _meaningful_alt(img["alt"]):
                problems.append(f"{p}: {img['src'].rsplit('/', 1)[-1][:60]} "
                                f"alt={img['alt']!r}")
    assert checked >= 20, f"only {checked} images found on the site"
    assert not problems, "images without meaningful alt text:\n" + _fmt(problems)


def test_diagrams_load_as_svg(crawl):
    """Every diagram of book/figures is shown, as a vector image that loaded
    (an SVG has a natural width once the browser has parsed it)."""
    expected = {p.name for p in (ROOT / "book" / "figures").glob("*.svg")}
    assert expected, "no diagrams in book/figures"
    shown = {}
    for p, pg in crawl.items():
        for img in pg.data["images"]:
            name = unquote(urlsplit(img["src"]).path).rsplit("/", 1)[-1]
            if name.endswith(".svg") and name in expected:
                shown[name] = img["complete"] and img["naturalWidth"] > 0
    missing = sorted(expected - set(shown))
    broken = sorted(n for n, ok in shown.items() if not ok)
    assert not missing, f"diagrams on no page: {missing}"
    assert not broken, f"diagrams that did not load: {broken}"


def test_figures_render_with_captions(crawl):
    """Every figure shows an image of non-zero size and has a caption."""
    problems = []
    for p, pg in crawl.items():
        for fig in pg.data["figures"]:
            name = f"{p}#{fig['id']}" if fig["id"] else p
            if not fig["caption"]:
                problems.append(f"{name}: figure without a caption")
            if not fig["media"]:
                problems.append(f"{name}: figure without an image")
            for m in fig["media"]:
                if m["width"] <= 0 or m["height"] <= 0 or \
                        m["naturalWidth"] == 0:
                    problems.append(f"{name}: {m['tag']} not rendered "
                                    f"({m['width']:.0f}x{m['height']:.0f})")
    assert not problems, "figures:\n" + _fmt(problems)


RAW_TEX = re.compile(
    r"\$\$|\\begin\{|\\end\{|\\\(|\\\)|\\\[|\\\]"
    r"|\\(?:frac|mathbf|mathrm|boldsymbol|sigma|tanh|odot|sum|prod|partial"
    r"|cdot|left|right|top|operatorname|hat|tilde|text|mathcal|nabla)\b")


def test_math_is_typeset(crawl):
    """No raw TeX in what a reader sees; every math element is typeset."""
    problems = []
    for p, pg in crawl.items():
        d = pg.data
        raw = list(RAW_TEX.finditer(d["prose"]))
        for m in raw[:3]:
            lo, hi = max(0, m.start() - 40), m.end() + 40
            snippet = d["prose"][lo:hi].replace("\n", " ")
            problems.append(f"{p}: raw TeX {m.group()!r} in '...{snippet}...'")
        if len(raw) > 3:
            problems.append(f"{p}: ... {len(raw) - 3} more pieces of raw TeX")
        if d["mathCount"]:
            if not d["mathjaxLoaded"]:
                problems.append(f"{p}: {d['mathCount']} math elements but "
                                "MathJax did not load")
            for t in d["untypeset"][:3]:
                problems.append(f"{p}: not typeset: {t[:60]!r}")
            if len(d["untypeset"]) > 3:
                problems.append(f"{p}: ... {len(d['untypeset']) - 3} more "
                                "math elements not typeset")
            if d["mjxCount"] < d["mathCount"]:
                problems.append(f"{p}: {d['mjxCount']} MathJax elements for "
                                f"{d['mathCount']} math elements")
        for e in d["mathErrors"]:
            problems.append(f"{p}: MathJax error: {e}")
    assert not problems, "math:\n" + _fmt(problems)


def test_math_pages_exist_and_use_bundled_mathjax(crawl, server):
    """The chapters have math, and MathJax comes from the site itself."""
    with_math = [p for p, pg in crawl.items() if pg.data["mathCount"]]
    assert LSTM_PAGE in with_math, (
        f"{LSTM_PAGE} has no math; pages with math: {with_math}")
    for p in with_math:
        mathjax = [u for u in crawl[p].requests if "mathjax" in u.lower()]
        # Each edition serves its own copy (fa/_static for the Persian one).
        static = server + (PERSIAN if p.startswith(PERSIAN) else "") + "_static/"
        assert any(u.startswith(static + "mathjax/") for u in mathjax), (
            f"{p}: MathJax not loaded from its edition's _static/mathjax: "
            f"{mathjax}")


def test_page_weight(crawl, site, capsys):
    """No page (HTML and everything it loads) weighs over 5 MB."""
    on_disk = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    heaviest = max(crawl.values(), key=lambda pg: pg.bytes)
    slowest = max(crawl.values(), key=lambda pg: pg.ready_ms)
    total = sum(pg.bytes for pg in crawl.values())
    raw = sum(pg.raw_bytes for pg in crawl.values())
    mb = 1e6
    with capsys.disabled():
        print(f"\n[website] {len(crawl)} pages; site on disk {on_disk / mb:.1f} "
              f"MB; every page visited with a cold cache: {total / mb:.1f} MB "
              f"transferred (gzip), {raw / mb:.1f} MB uncompressed")
        print(f"[website] heaviest page {heaviest.path}: "
              f"{heaviest.bytes / mb:.2f} MB transferred "
              f"({heaviest.raw_bytes / mb:.2f} MB uncompressed), load event "
              f"{heaviest.data['loadMs']:.0f} ms, ready (math typeset) "
              f"{heaviest.ready_ms:.0f} ms")
        print(f"[website] slowest page {slowest.path}: ready "
              f"{slowest.ready_ms:.0f} ms, {slowest.bytes / mb:.2f} MB")
    too_heavy = [f"{p}: {pg.bytes / mb:.2f} MB" for p, pg in crawl.items()
                 if pg.bytes > MAX_PAGE_BYTES]
    assert not too_heavy, "pages over 5 MB:\n" + _fmt(too_heavy)
    assert all(pg.bytes > 0 for pg in crawl.values()), \
        "a page transferred nothing: the measurement is broken"


def test_screenshots_saved(crawl):
    names = list(SCREENSHOT_PAGES) + ["exercise"]
    for name in names:
        shot = SHOTS / f"{name}.png"
        assert shot.is_file(), f"no screenshot {shot}"
        head = shot.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n", f"{shot} is not a PNG"
        # A blank screenshot compresses to a few kB.
        assert shot.stat().st_size > 20_000, f"{shot} looks blank"


# --------------------------------------------------------------------------
# Search, glossary, exercises, buttons
# --------------------------------------------------------------------------

def search(driver, server, start, query, done, screenshot):
    """Type `query` in the search box of page `start`, wait until the search
    is done (its summary contains one of `done`), open the first result.
    Returns (path of the page landed on, titles of the top results, the
    text of that page's main element)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(server + start)
    # index.html forwards to the first chapter: wait for the real page.
    button = WebDriverWait(driver, 10).until(
        lambda d: next((b for b in d.find_elements(
            By.CSS_SELECTOR, "button.search-button__button")
            if b.is_displayed()), None),
        message=f"no visible search button on {start}")
    button.click()
    box = WebDriverWait(driver, 10).until(
        lambda d: next((e for e in d.find_elements(
            By.CSS_SELECTOR, "input[name='q']") if e.is_displayed()), None))
    box.send_keys(query, Keys.ENTER)
    WebDriverWait(driver, 10).until(
        lambda d: urlsplit(d.current_url).path.endswith("/search.html"))
    assert parse_qs(urlsplit(driver.current_url).query).get("q") == [query]

    def finished(d):
        summary = d.find_elements(By.CSS_SELECTOR,
                                  "#search-results .search-summary")
        text = summary[0].text if summary else ""
        return text if any(marker in text for marker in done) else None

    summary = WebDriverWait(driver, 30).until(finished)
    time.sleep(0.3)  # results are appended one by one
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / screenshot))
    results = driver.find_elements(By.CSS_SELECTOR,
                                   "#search-results ul.search > li a")
    assert results, f"no search results for {query!r}: {summary!r}"
    titles = [r.text for r in results[:5]]
    results[0].click()
    WebDriverWait(driver, 10).until(
        lambda d: not urlsplit(d.current_url).path.endswith("/search.html"))
    landed = urlsplit(driver.current_url).path
    return landed, titles, driver.find_element(By.TAG_NAME, "main").text


def test_search_finds_forget_gate_in_lstm_chapter(crawl, driver, server):
    """Type "forget gate" in the search box; the first result is the LSTM."""
    landed, titles, text = search(driver, server, "index.html", "forget gate",
                                  ("found", "did not match"), "search.png")
    assert landed == "/" + LSTM_PAGE, (
        f"first result for 'forget gate' is {landed}, not the LSTM chapter; "
        f"top results: {titles}")
    assert "forget gate" in text.lower()


def test_glossary_is_right_to_left(crawl, driver, server):
    """Every piece of Persian text in the glossary is laid out right to left,
    and Persian paragraphs are right-to-left blocks."""
    assert GLOSSARY_PAGE in crawl, f"no {GLOSSARY_PAGE} in the site"
    driver.get(server + GLOSSARY_PAGE)
    nodes = driver.execute_script(PERSIAN_JS)
    shown = [n for n in nodes if n["shown"]]
    assert shown, f"{GLOSSARY_PAGE}: no Persian text on the page"
    ltr = [f"<{n['tag']}> {n['text']!r}: direction {n['direction']}"
           for n in shown if n["direction"] != "rtl"]
    # Persian prose (a paragraph, a list item or definition holding only
    # Persian) starts at the right and wraps right to left: the block itself
    # must be RTL. A short term in a table cell may be RTL inline only.
    ltr += [f"<{n['block']}> {n['text']!r}: Persian-only block with "
            f"direction {n['blockDirection']}" for n in shown
            if n["persianOnly"] and not n["inTable"]
            and n["blockDirection"] != "rtl"]
    assert not ltr, (f"{GLOSSARY_PAGE}: Persian text not right to left "
                     f"({len(shown)} Persian text pieces checked):\n" + _fmt(ltr))


def test_exercises_page_has_the_manifests_table(site):
    """book/exercises.md's table is generated from the manifest at build
    time (_ext/website.py): every assignment, its points and its link."""
    from lstmlib.grading.assignments import ASSIGNMENTS
    page = (site / "book" / "exercises.html").read_text()
    assert "<table" in page and "the table of the exercises" not in page
    for n, a in enumerate(ASSIGNMENTS.values(), start=1):
        link = f'href="../exercises/{a.name}/{a.notebook}.html"'
        assert link in page, f"exercises page: no link {link}"
        assert f"{n}. {a.title}" in page, f"exercises page: no row for {a.title}"


def test_exercise_pages_show_student_version(crawl, site):
    from lstmlib.grading.assignments import ASSIGNMENTS
    pages = [p for p in crawl if p.startswith("exercises/")]
    assert len(pages) == len(ASSIGNMENTS), (
        f"expected one page per assignment of the manifest, found {pages}")
    problems = []
    for p in pages:
        text = crawl[p].data["text"]
        lines = {ln.strip() for ln in text.splitlines()}
        for marker in notebooks.MARKERS:
            if marker in text:
                problems.append(f"{p}: shows '{marker}'")
        # The .ipynb offered for download is the student version too.
        nb = (site / "_sources" / p).with_suffix(".ipynb")
        if nb.is_file():
            for marker in notebooks.MARKERS:
                if marker in nb.read_text():
                    problems.append(f"{nb.relative_to(site)}: has '{marker}'")
        source = (ROOT / "solutions" / Path(p).relative_to("exercises")
                  ).with_suffix(".ipynb")
        if source.is_file():
            leaked = sorted(ln for ln in notebooks.solution_only_lines(source)
                            if ln in lines)
            problems += [f"{p}: shows solution line {ln!r}" for ln in leaked]
    assert not problems, "exercise pages:\n" + _fmt(problems)


def _repository():
    import yaml
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg.get("repository", {})
    assert repo.get("url", "").startswith("https://github.com/"), \
        "_config.yml: repository.url must be a GitHub URL"
    org_repo = repo["url"].removeprefix("https://github.com/").strip("/")
    prefix = repo.get("path_to_book", "").strip("/")
    return cfg, org_repo, repo.get("branch", "main"), prefix


def test_notebook_pages_have_launch_and_download_buttons(crawl, site):
    """Binder, Colab and .ipynb download on notebook pages, pointing at
    files that exist in the repository configured in _config.yml."""
    cfg, org_repo, branch, prefix = _repository()
    launch = cfg.get("launch_buttons", {})
    binder = launch.get("binderhub_url", "").rstrip("/")
    colab = launch.get("colab_url", "").rstrip("/")
    assert binder and colab, "_config.yml: launch_buttons need Binder and Colab"
    notebooks = [p for p, pg in crawl.items()
                 if (site / "_sources" / p).with_suffix(".ipynb").is_file()]
    assert notebooks, "no notebook pages (with an .ipynb download) in the site"
    problems = []
    for p in notebooks:
        hrefs = [r["url"] for r in crawl[p].data["refs"] if r["tag"] == "a"]
        sources = [(ROOT / prefix / p).with_suffix(s) for s in (".ipynb", ".md")]
        source = next((s for s in sources if s.is_file()), None)
        if source is None:
            problems.append(f"{p}: no source notebook in the repository")
            continue
        rel = source.relative_to(ROOT).as_posix()
        b = [h for h in hrefs if h.startswith(f"{binder}/v2/gh/{org_repo}/{branch}")]
        if not b:
            problems.append(f"{p}: no Binder link to {org_repo}@{branch}")
        elif not any(parse_qs(urlsplit(h).query).get("urlpath", [""])[0]
                     .endswith("/" + rel) for h in b):
            problems.append(f"{p}: Binder link does not open {rel}: {b}")
        to_colab = [h for h in hrefs if h.startswith(colab + "/")]
        if source.suffix == ".ipynb":
            want = f"{colab}/github/{org_repo}/blob/{branch}/{rel}"
            if want not in to_colab:
                problems.append(f"{p}: no Colab link {want}")
        elif to_colab:  # Colab opens only .ipynb files
            problems.append(f"{p}: Colab link to a text notebook: {to_colab}")
        if not any(h.endswith(Path(p).with_suffix(".ipynb").as_posix())
                   and "/_sources/" in h for h in hrefs):
            problems.append(f"{p}: no .ipynb download link")
    assert not problems, "launch/download buttons:\n" + _fmt(problems)


def test_install_cell_is_in_the_notebook_but_not_on_the_page(crawl, site):
    """The guarded install cell travels with the downloadable/launchable
    notebook, and stays out of the printed page (tag remove-cell)."""
    pages = [p for p in crawl if p.startswith("exercises/")]
    assert pages, "no exercise pages"
    problems = []
    for p in pages:
        if "install the course package" in crawl[p].data["text"]:
            problems.append(f"{p}: the install cell is shown on the page")
        nb = (site / "_sources" / p).with_suffix(".ipynb")
        if nb.is_file() and "lstmlib @ git+" not in nb.read_text():
            problems.append(f"{nb.relative_to(site)}: no install cell")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# The Persian edition
# --------------------------------------------------------------------------

PERSIAN_LETTERS = re.compile("[\u0600-\u06ff]")
# What Sphinx's search page says when it is done, in Persian
# (locale/fa/LC_MESSAGES/sphinx.po and Sphinx's own Persian catalog).
FA_SEARCH_DONE = ("پایان یافت", "هم خوانی نداشت")


def _english_only(page):
    """Pages that stay English in the Persian edition (_config.fa.yml)."""
    import fnmatch
    import yaml
    cfg = yaml.safe_load((ROOT / "_config.fa.yml").read_text(encoding="utf-8"))
    patterns = cfg["sphinx"]["config"].get("persian_english_only", [])
    docname = page.removeprefix(PERSIAN).removesuffix(".html")
    return any(fnmatch.fnmatch(docname, p) for p in patterns)


def _toc_pages():
    toc = (ROOT / "_toc.yml").read_text()
    return [Path(f).with_suffix(".html").as_posix() for f in
            re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*(\S+)", toc, re.M)]


def test_persian_edition_has_every_page(site, crawl):
    missing = [p for p in _toc_pages() if not (site / PERSIAN / p).is_file()]
    assert not missing, "pages missing from the Persian edition:\n" + _fmt(missing)
    crawled = [p for p in crawl if p.startswith(PERSIAN)]
    assert len(crawled) >= len(_toc_pages()), \
        f"only {len(crawled)} Persian pages crawled"


def test_persian_pages_are_right_to_left(crawl):
    problems = [f"{p}: <html lang={pg.data['lang']!r} dir={pg.data['dir']!r}>"
                for p, pg in crawl.items() if p.startswith(PERSIAN)
                and (pg.data["lang"] != "fa" or pg.data["dir"] != "rtl")]
    problems += [f"{p}: <html dir={pg.data['dir']!r}> in the English edition"
                 for p, pg in crawl.items() if not p.startswith(PERSIAN)
                 and pg.data["dir"] == "rtl"]
    assert not problems, "page direction:\n" + _fmt(problems)


# Directions and fonts as laid out on a Persian page.
LAYOUT_JS = r"""
const dir = el => getComputedStyle(el).direction;
const shown = el => el.getClientRects().length > 0;
const pick = sel => [...document.querySelectorAll(sel)].filter(shown);
const persian = /[\u0600-\u06FF]/;
const paras = pick('main p').filter(p => persian.test(p.textContent)
                                     && !p.closest('pre, .cell_output'));
const adm = pick('main div.admonition')[0];
const side = document.querySelector('.bd-sidebar-primary');
const article = document.querySelector('.bd-article');
return {
  paragraphs: paras.length,
  ltrParagraphs: paras.filter(p => dir(p) !== 'rtl')
    .map(p => p.textContent.trim().slice(0, 60)),
  code: pick('main pre').map(dir),
  math: pick('main mjx-container').map(dir),
  outputs: pick('main div.cell_output').map(dir),
  fontFamily: paras.length ? getComputedStyle(paras[0]).fontFamily : '',
  vazirmatn: [...document.fonts].filter(f => f.family.replace(/"/g, '')
             === 'Vazirmatn').map(f => f.status),
  admonition: adm ? {right: parseFloat(getComputedStyle(adm).borderRightWidth),
                     left: parseFloat(getComputedStyle(adm).borderLeftWidth)}
                  : null,
  sidebarOnTheRight: side && article && shown(side)
    ? side.getBoundingClientRect().left > article.getBoundingClientRect().left
    : null,
};
"""


def test_persian_text_rtl_with_code_and_math_ltr(crawl, driver, server):
    """On the Persian LSTM chapter: Persian paragraphs right to left, in the
    bundled Vazirmatn font; code, math and outputs left to right; the
    admonitions' rule and the sidebar on the right."""
    assert FA_LSTM_PAGE in crawl, f"no {FA_LSTM_PAGE} in the site"
    driver.get(server + FA_LSTM_PAGE)
    driver.execute_async_script(WAIT_READY_JS)
    layout = driver.execute_script(LAYOUT_JS)
    assert layout["paragraphs"] >= 10, \
        f"{FA_LSTM_PAGE}: only {layout['paragraphs']} Persian paragraphs"
    assert not layout["ltrParagraphs"], (
        "Persian paragraphs left to right:\n" + _fmt(layout["ltrParagraphs"]))
    for what in ("code", "math", "outputs"):
        assert layout[what], f"{FA_LSTM_PAGE}: no {what} on the page"
        assert set(layout[what]) == {"ltr"}, \
            f"{FA_LSTM_PAGE}: {what} not left to right: {layout[what]}"
    assert "Vazirmatn" in layout["fontFamily"], layout["fontFamily"]
    assert "loaded" in layout["vazirmatn"], \
        f"the Vazirmatn font did not load: {layout['vazirmatn']}"
    adm = layout["admonition"]
    assert adm and adm["right"] > 0 and adm["left"] == 0, \
        f"admonition's rule not on the right (start) side: {adm}"
    assert layout["sidebarOnTheRight"] is True, "sidebar not on the right"


def test_persian_images_have_persian_alt_text(crawl):
    problems, checked = [], 0
    for p, pg in crawl.items():
        if not p.startswith(PERSIAN) or _english_only(p):
            continue
        for img in pg.data["images"]:
            if img["decorative"] or not img["shown"]:
                continue
            checked += 1
            if not PERSIAN_LETTERS.search(img["alt"] or ""):
                problems.append(f"{p}: {img['src'].rsplit('/', 1)[-1][:50]} "
                                f"alt={(img['alt'] or '')[:60]!r}")
    assert checked >= 10, f"only {checked} images in the Persian edition"
    assert not problems, "Persian pages with English alt text:\n" + _fmt(problems)


def test_every_page_links_to_its_counterpart(crawl, driver, server):
    """Each page of either edition shows a link to the same page in the
    other one; following it on the LSTM chapter and back lands where it
    should."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    problems, checked = [], 0
    for p in _toc_pages():
        for page, other in [(p, PERSIAN + p), (PERSIAN + p, p)]:
            if page not in crawl:
                problems.append(f"{page}: not crawled")
                continue
            checked += 1
            links = crawl[page].data["editionLinks"]
            if [(link["href"], link["shown"]) for link in links] != \
                    [(server + other, True)]:
                problems.append(f"{page}: links {links}, expected one "
                                f"visible link to {other}")
    assert checked >= 2 * len(_toc_pages())
    assert not problems, "links between the editions:\n" + _fmt(problems)

    driver.get(server + LSTM_PAGE)
    for target in (FA_LSTM_PAGE, LSTM_PAGE):
        driver.find_element(By.CSS_SELECTOR, "a.edition-link").click()
        WebDriverWait(driver, 10).until(
            lambda d: urlsplit(d.current_url).path == "/" + target,
            message=f"the edition link did not lead to {target}")


@pytest.mark.parametrize("query", [
    "دروازه فراموشی",
    # the same typed on an Arabic keyboard (yeh), with the ezafe mark
    "دروازهٔ فراموشي",
])
def test_persian_search_finds_the_lstm_chapter(crawl, driver, server, query):
    shot = "fa-search.png" if query == "دروازه فراموشی" else "fa-search-2.png"
    landed, titles, text = search(driver, server, PERSIAN + "index.html",
                                  query, FA_SEARCH_DONE, shot)
    assert landed == "/" + FA_LSTM_PAGE, (
        f"first result for {query!r} is {landed}, not the Persian LSTM "
        f"chapter; top results: {titles}")
    assert "دروازه" in text

