"""Render pages of the built docs site in headless Chromium and fail on clipped or missing content.

Usage:

    mkdocs build --strict --site-dir site
    python docs/scripts/check_rendered_pages.py site --screenshots site-screenshots

Each page is loaded at 1280 px width (`--width`) from a local HTTP server over the site directory,
checked in the browser, and saved as a full-page PNG screenshot in the `--screenshots` directory for a
person to look at (a page taller than 8000 px in numbered pieces). A page fails, with a line naming the
page and the element, when:

- an element's content is wider than its box and cannot be seen whole: its overflow is `hidden` or
  `clip`, or it scrolls sideways but draws no scrollbar (an overlay scrollbar, as on macOS and phones,
  shows only while scrolling, so the reader sees a cut line and no sign that more follows);
- an element reaches past the right edge of the viewport, or the page itself scrolls sideways;
- content is missing: the page does not load (HTTP error, 404), its main heading is missing or is not
  the one of its Markdown source, an API entry (a `::: identifier` line of the source) has no entry on
  the page, an image does not load, a `:::` directive was left unrendered, the header does not show
  the package version, or the page's scripts raise an error.

By default the four pages are the home page, a layer guide, the benchmarks and an API page; `--page`
replaces them (a path inside the site, such as `api/tuning/`). Expectations that come from the
Markdown sources (headings, API entries) apply where `--docs-dir` holds the page's source.

The browser runs with overlay scrollbars, as on macOS and phones: a scrollbar that the site's
stylesheet does not draw itself takes no room and is reported. It cannot reach the internet (every
host but the local server is unresolvable), so the pages render with the fonts of the machine
instead of web fonts, the same on every run.

The browser is Chromium or Chrome found on PATH (or given with `--chromium` / `$CHROMIUM`), driven
through the DevTools protocol over a pipe: the standard library is all this script needs. Without a
browser it exits with status 2, or 0 with `--skip-without-browser`, saying so either way.
Exit status: 0 when every page passes, 1 when one fails, 2 when the check could not run.
"""

from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import dataclasses
import fcntl
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parents[1]
PACKAGE_INIT = DOCS_DIR.parent / "keras_adaptive_acts" / "__init__.py"
DEFAULT_PAGES = ("", "layers/competitive-relu/", "benchmarks/", "api/competitive-relu/")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
VIEWPORT_HEIGHT = 900
SCREENSHOT_HEIGHT = 8000  # px, the most one PNG holds; a longer page is saved in pieces
# Waits until the web fonts (if any) are in and two frames have been drawn.
SETTLE = (
    "document.fonts.ready.then(() => new Promise((done) =>"
    " requestAnimationFrame(() => requestAnimationFrame(done))))"
)
PAGE_TIMEOUT = 60.0  # s, for loading one page

# Runs in the page; returns what it found. Kept in plain ES2020 so that any recent Chromium runs it.
CHECK_SCRIPT = r"""
(expected) => {
  const problems = [];
  const viewportWidth = document.documentElement.clientWidth;
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")];

  const text = (node, length = 60) => {
    const value = (node.textContent || "").replace(/\s+/g, " ").replace(/¶/g, "").trim();
    return value.length > length ? value.slice(0, length - 1) + "…" : value;
  };
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += "#" + el.id;
    for (const cls of [...el.classList].slice(0, 3)) name += "." + cls;
    let path = name;
    let parent = el.parentElement;
    for (let depth = 0; parent && depth < 2; parent = parent.parentElement, depth++) {
      let label = parent.tagName.toLowerCase();
      if (parent.id) label += "#" + parent.id;
      else if (parent.classList.length) label += "." + parent.classList[0];
      path = label + " > " + path;
    }
    const before = (h) => h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING;
    const section = headings.filter(before).pop();
    const where = section ? ` under the heading "${text(section, 50)}"` : "";
    const content = text(el);
    return `${path}${where}` + (content ? ` (content: "${content}")` : "");
  };
  // (Both spellings of the options: older Chromium knows only the second pair.)
  const hidden = {
    opacityProperty: true, visibilityProperty: true, checkOpacity: true, checkVisibilityCSS: true,
  };
  const visible = (el) => el.checkVisibility(hidden) && el.getClientRects().length > 0;
  const clips = (style) => style.overflowX !== "visible";

  const pastEdge = new Set();
  for (const el of document.querySelectorAll("body *")) {
    if (!visible(el)) continue;
    const rect = el.getBoundingClientRect();
    if (rect.right <= 0) continue; // parked left of the page, as a closed navigation drawer is
    const style = getComputedStyle(el);
    const overflow = el.scrollWidth - el.clientWidth;
    if (el.clientWidth > 0 && overflow > 1) {
      if (style.overflowX === "hidden" || style.overflowX === "clip") {
        problems.push(`clipped: ${describe(el)} is ${el.scrollWidth} px wide inside a `
          + `${el.clientWidth} px box with overflow-x: ${style.overflowX}, `
          + `so ${overflow} px of it cannot be seen`);
      } else if (style.overflowX === "auto" || style.overflowX === "scroll") {
        const border = parseFloat(style.borderTopWidth) + parseFloat(style.borderBottomWidth);
        const scrollbar = el.offsetHeight - el.clientHeight - border;
        if (scrollbar < expected.minScrollbar) {
          problems.push(`clipped: ${describe(el)} scrolls sideways (${overflow} px more) but draws `
            + `no visible scrollbar (${Math.max(scrollbar, 0)} px high), so its right part looks cut off`);
        }
      }
    }
    if (rect.width > 0 && rect.right > viewportWidth + 1) {
      let contained = false;
      for (let parent = el.parentElement; parent && parent !== document.body; parent = parent.parentElement) {
        if (clips(getComputedStyle(parent))) { contained = true; break; }
      }
      if (!contained) {
        pastEdge.add(el);
        if (!pastEdge.has(el.parentElement)) {
          problems.push(`past the right edge: ${describe(el)} ends at x = ${Math.round(rect.right)} px, `
            + `beyond the ${viewportWidth} px wide viewport`);
        }
      }
    }
  }
  const pageWidth = document.documentElement.scrollWidth;
  if (pageWidth > viewportWidth + 1) {
    problems.push(`past the right edge: the page is ${pageWidth} px wide and scrolls sideways `
      + `in a ${viewportWidth} px viewport`);
  }

  const article = document.querySelector("article") || document.body;
  const h1 = article.querySelector("h1");
  for (const img of article.querySelectorAll("img")) {
    if (!img.complete || img.naturalWidth === 0) {
      problems.push(`missing: the image ${img.getAttribute("src")} did not load`);
    }
  }
  if (/(^|\n)\s*::: ?[\w.]+/.test(article.innerText)) {
    problems.push("missing: a `::: identifier` directive was left unrendered on the page");
  }
  for (const id of expected.entries) {
    const entry = document.getElementById(id);
    if (!entry) problems.push(`missing: the API entry ${id} (no element with that id)`);
    else if (!visible(entry)) problems.push(`missing: the API entry ${id} is on the page but not visible`);
  }
  const version = document.querySelector(".md-header .kaa-header-version");
  const probe = document.body.appendChild(document.createElement("div"));
  probe.style.cssText = "position: absolute; top: 0; width: 100px; height: 100px; overflow: scroll";
  const overlayScrollbars = probe.offsetWidth === probe.clientWidth;
  probe.remove();
  return {
    overlayScrollbars,
    problems,
    title: document.title,
    h1: h1 ? text(h1, 200) : null,
    version: version && visible(version) ? text(version) : null,
  };
}
"""


@dataclasses.dataclass
class PageResult:
    page: str
    problems: list[str]
    screenshots: list[Path] = dataclasses.field(default_factory=list)
    overlay_scrollbars: bool = True


# ----------------------------------------------------------------------------------------------
# What a page should contain, from its Markdown source


def source_of(page: str, docs_dir: Path) -> Path | None:
    """The Markdown file that `page` (a site path such as "api/tuning/") was built from, if found."""
    stem = page.strip("/")
    candidates = (
        [docs_dir / "index.md"] if not stem else [docs_dir / f"{stem}.md", docs_dir / stem / "index.md"]
    )
    return next((path for path in candidates if path.is_file()), None)


def expected_heading(markdown: str) -> str | None:
    """The text of the first `# ` heading, without Markdown markup."""
    for line in markdown.splitlines():
        if line.startswith("# "):
            heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line[2:])  # links: their text
            return re.sub(r"[`*_]", "", heading).strip()
    return None


def expected_entries(markdown: str) -> list[str]:
    """The identifiers of the page's `::: identifier` lines (mkdocstrings uses them as element ids)."""
    return re.findall(r"^:::\s+([\w.]+)\s*$", markdown, flags=re.MULTILINE)


def package_version() -> str | None:
    """`keras_adaptive_acts.__version__`, read from the source file without importing the package."""
    if not PACKAGE_INIT.is_file():
        return None
    for node in ast.parse(PACKAGE_INIT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__version__" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return None


# ----------------------------------------------------------------------------------------------
# A local server for the site, and the browser


@contextlib.contextmanager
def serve(directory: Path):
    """Serves `directory` on a free localhost port; yields the base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def list_directory(self, path):  # a folder without index.html is a missing page, as on a host
            self.send_error(404, "No index.html in this folder")

    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def find_browser(explicit: str | None) -> str | None:
    """The browser to run: `explicit` if given, else $CHROMIUM, else the first of BROWSERS on PATH."""
    explicit = explicit or os.environ.get("CHROMIUM")
    candidates = [explicit] if explicit else BROWSERS
    return next((found for candidate in candidates if (found := shutil.which(candidate))), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    """Headless Chromium driven through the DevTools protocol over `--remote-debugging-pipe`.

    The browser reads commands from its file descriptor 3 and writes replies and events to 4, each a
    JSON message ended by a NUL byte.
    """

    def __init__(self, executable: str, width: int):
        self.width = width
        self._profile = tempfile.TemporaryDirectory(prefix="kaa-docs-check-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def connect_pipes():  # in the child, before exec: the pipes become its fds 3 and 4
            # First above 4, so that making one of them 3 cannot overwrite the other.
            read_end = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)  # inheritable, unlike the descriptors Python opens
            os.dup2(write_end, 4)

        args = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--enable-features=OverlayScrollbar",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--force-device-scale-factor=1",
            f"--window-size={width},{VIEWPORT_HEIGHT}",
            f"--user-data-dir={self._profile.name}",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=False,  # keeps 3 and 4; Python's own descriptors are not inherited anyway
            preexec_fn=connect_pipes,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._messages: queue.Queue = queue.Queue()
        self._events: list[dict] = []
        self._next_id = 0
        self._stderr_tail: list[str] = []
        threading.Thread(target=self._read_messages, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_messages(self):
        buffer = b""
        with open(self._from_browser, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                *complete, buffer = buffer.split(b"\0")
                for message in complete:
                    self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser closed its end

    def _read_stderr(self):
        for line in self._process.stderr:
            self._stderr_tail = [*self._stderr_tail[-19:], line.decode(errors="replace").rstrip()]

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout=PAGE_TIMEOUT):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next_id, timeout, method)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_for_event(self, method: str, session: str, timeout=PAGE_TIMEOUT) -> dict:
        for index, event in enumerate(self._events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self._events.pop(index)
        return self._wait(
            lambda m: m.get("method") == method and m.get("sessionId") == session, timeout, method
        )

    def forget(self, session: str):
        """Drops the events kept for `session` (a closed page)."""
        self._events = [event for event in self._events if event.get("sessionId") != session]

    def events(self, method: str, session: str) -> list[dict]:
        """The events of `method` received so far (and not yet consumed) for `session`."""
        return [e for e in self._events if e.get("method") == method and e.get("sessionId") == session]

    def _wait(self, match, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no answer from the browser to {what} within {timeout:.0f} s")
            try:
                message = self._messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if message is None:
                stderr = "\n".join(self._stderr_tail)
                raise BrowserError(f"the browser exited while waiting for {what}:\n{stderr}")
            if match(message):
                return message
            if "method" in message:
                self._events.append(message)

    def close(self):
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=10)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        with contextlib.suppress(OSError):
            os.close(self._to_browser)
        self._profile.cleanup()


# ----------------------------------------------------------------------------------------------
# Checking one page


def check_page(
    browser: Browser,
    base_url: str,
    page: str,
    docs_dir: Path | None,
    version: str | None,
    screenshots: Path | None,
    min_scrollbar: int,
) -> PageResult:
    label = "/" + page.lstrip("/")
    source = source_of(page, docs_dir) if docs_dir else None
    markdown = source.read_text(encoding="utf-8") if source else ""
    heading = expected_heading(markdown) if source else None
    entries = expected_entries(markdown)

    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    problems: list[str] = []
    screenshot_paths: list[Path] = []
    overlay_scrollbars = True
    try:
        for domain in ("Page", "Runtime", "Network"):
            browser.send(f"{domain}.enable", session=session)
        # `mobile`: the overlay scrollbars of phones (and macOS). The command-line switch for them
        # (--enable-features=OverlayScrollbar) has no effect in recent Chromium (156 draws classic
        # ones with it); device emulation still gives them. The width stays that of a desktop.
        metrics = {"width": browser.width, "height": VIEWPORT_HEIGHT, "deviceScaleFactor": 1, "mobile": True}
        browser.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
        navigation = browser.send("Page.navigate", {"url": base_url + page.lstrip("/")}, session=session)
        if navigation.get("errorText"):
            return PageResult(label, [f"missing: the page did not load ({navigation['errorText']})"])
        browser.wait_for_event("Page.loadEventFired", session)
        browser.send("Runtime.evaluate", {"expression": SETTLE, "awaitPromise": True}, session=session)

        for event in browser.events("Network.responseReceived", session):
            response = event["params"]["response"]
            if event["params"].get("type") == "Document" and response.get("status", 200) >= 400:
                problems.append(f"missing: the server answered {response['status']} for {response['url']}")

        expected = {"entries": entries, "minScrollbar": min_scrollbar}
        expression = f"({CHECK_SCRIPT})({json.dumps(expected)})"
        reply = browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=session,
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"the check script failed: {reply['exceptionDetails'].get('text')}")
        found = reply["result"]["value"]
        overlay_scrollbars = found["overlayScrollbars"]
        problems += found["problems"]
        if not found["h1"]:
            problems.append("missing: the page has no main heading (h1)")
        elif heading and found["h1"] != heading:
            problems.append(
                f'missing: the main heading is "{found["h1"]}", not "{heading}" as in {source.name}'
            )
        if "404" in (found["h1"] or "") or "not found" in found["title"].lower():
            problems.append(f'missing: the page is an error page ("{found["title"]}")')
        if version and (not found["version"] or version not in found["version"]):
            shown = found["version"] or "nothing"
            problems.append(f"missing: the header shows {shown!r} where it should show the version {version}")
        for event in browser.events("Runtime.exceptionThrown", session):
            details = event["params"]["exceptionDetails"]
            message = details.get("exception", {}).get("description") or details.get("text")
            problems.append(f"script error on the page: {str(message).splitlines()[0]}")

        if screenshots is not None:
            screenshot_paths = take_screenshots(browser, session, metrics, screenshots, page)
    finally:
        browser.send("Target.closeTarget", {"targetId": target})
        browser.forget(session)
    return PageResult(label, problems, screenshot_paths, overlay_scrollbars)


def take_screenshots(browser: Browser, session: str, metrics: dict, directory: Path, page: str) -> list[Path]:
    """Saves the whole page as PNG files: `NAME.png`, or `NAME-1.png`, `NAME-2.png`, ... for a long one.

    The viewport is made as tall as the page, so that the sidebars and the header are drawn where a
    reader sees them, and the page is cut into pieces of at most SCREENSHOT_HEIGHT px.
    """
    name = page.strip("/").replace("/", "_") or "index"
    layout = browser.send("Page.getLayoutMetrics", session=session)
    height = int(layout["cssContentSize"]["height"] + 0.5)
    browser.send("Emulation.setDeviceMetricsOverride", {**metrics, "height": height}, session=session)
    browser.send("Runtime.evaluate", {"expression": SETTLE, "awaitPromise": True}, session=session)
    pieces = range(0, height, SCREENSHOT_HEIGHT)
    paths = []
    for number, top in enumerate(pieces, start=1):
        clip = {
            "x": 0,
            "y": top,
            "width": metrics["width"],
            "height": min(SCREENSHOT_HEIGHT, height - top),
            "scale": 1,
        }
        shot = browser.send("Page.captureScreenshot", {"format": "png", "clip": clip}, session=session)
        path = directory / (f"{name}.png" if len(pieces) == 1 else f"{name}-{number}.png")
        path.write_bytes(base64.b64decode(shot["data"]))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site directory (mkdocs build --site-dir)")
    parser.add_argument("--screenshots", type=Path, help="directory for the full-page PNG screenshots")
    parser.add_argument(
        "--page",
        action="append",
        dest="pages",
        metavar="PATH",
        help="a page to check instead of the default four",
    )
    parser.add_argument(
        "--docs-dir", type=Path, default=DOCS_DIR, help="the Markdown sources (default: %(default)s)"
    )
    parser.add_argument("--width", type=int, default=1280, help="viewport width in px (default: %(default)s)")
    parser.add_argument("--chromium", help="the browser executable (default: $CHROMIUM or chromium on PATH)")
    parser.add_argument(
        "--min-scrollbar",
        type=int,
        default=4,
        help="the height in px below which a sideways scrollbar counts as invisible (default: %(default)s)",
    )
    parser.add_argument(
        "--expect-version",
        default=package_version(),
        help="the version the header must show (default: keras_adaptive_acts.__version__, %(default)s; "
        "'' for none)",
    )
    parser.add_argument(
        "--skip-without-browser", action="store_true", help="exit 0, saying so, when no Chromium is installed"
    )
    args = parser.parse_args(argv)

    if not (args.site / "index.html").is_file():
        print(
            f"error: {args.site} is not a built site (no index.html); run `mkdocs build` first",
            file=sys.stderr,
        )
        return 2
    executable = find_browser(args.chromium)
    if executable is None:
        looked_for = args.chromium or os.environ.get("CHROMIUM") or f"{', '.join(BROWSERS)} on PATH"
        reason = f"no Chromium found (looked for {looked_for})"
        if args.skip_without_browser:
            print(
                f"SKIPPED: the rendered-page check did not run: {reason}. To run it: apt-get install chromium"
            )
            return 0
        print(f"error: {reason}; install it with `apt-get install chromium`", file=sys.stderr)
        return 2
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    docs_dir = args.docs_dir if args.docs_dir.is_dir() else None

    results = []
    with serve(args.site) as base_url:
        browser = Browser(executable, args.width)
        try:
            for page in args.pages or DEFAULT_PAGES:
                results.append(
                    check_page(
                        browser,
                        base_url,
                        page,
                        docs_dir,
                        args.expect_version,
                        args.screenshots,
                        args.min_scrollbar,
                    )
                )
        except BrowserError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        finally:
            browser.close()

    failed = [result for result in results if result.problems]
    for result in results:
        status = "FAIL" if result.problems else "ok  "
        shots = ", ".join(str(path) for path in result.screenshots)
        shot = f"  (screenshot{'s' if len(result.screenshots) > 1 else ''}: {shots})" if shots else ""
        print(f"{status} {result.page} at {args.width} px{shot}")
        for problem in result.problems:
            print(f"       {result.page}: {problem}")
    if not all(result.overlay_scrollbars for result in results):
        print(
            "note: this browser drew classic scrollbars (--enable-features=OverlayScrollbar had no effect), "
            "so a scrollbar that only shows while scrolling, as on macOS and phones, was not caught"
        )
    print(f"{len(results) - len(failed)} of {len(results)} pages passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
