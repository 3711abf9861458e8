"""Open a report in headless Chromium and see what a reader sees: console errors, images that do
not decode, network requests, the sections; hover a point, take a screenshot.

It speaks the DevTools protocol over a pipe (``--remote-debugging-pipe``: NUL-terminated JSON on
file descriptors 3 and 4), so it needs only the ``chromium`` binary (Debian package ``chromium``;
``$DYNNAS_CHROMIUM`` names another) and the standard library. Every host name resolves to
nothing and the proxy is a closed port, so a page that needed the network would show it.

Example::

    with open_page(Path("runs/demo/report.html")) as page:
        print(page.errors, page.evaluate("document.title"))
        page.hover(".explore .fr")
        Path("shot.png").write_bytes(page.screenshot(".explore"))
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         "--disable-background-networking", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         "--remote-debugging-pipe")


class BrowserError(RuntimeError):
    """Chromium could not be started, stopped answering, or a protocol call failed."""


def find_chromium() -> str | None:
    """The Chromium binary: ``$DYNNAS_CHROMIUM`` if set, else the first of :data:`CHROMIUM_NAMES` on PATH."""
    env = os.environ.get("DYNNAS_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


@dataclass(eq=False)
class Page:
    """One loaded page: what its console and network said, and calls into it."""

    _send: Any
    session: str
    errors: list[str] = field(default_factory=list)  # uncaught exceptions, console.error, log entries at error
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._send(method, params or {}, self.session)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (awaited when it is a promise); :class:`BrowserError` if it throws."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise BrowserError(f"page script failed: {r['exceptionDetails'].get('text')} in {expression[:80]!r}")
        return r["result"].get("value")

    def hover(self, selector: str) -> None:
        """Move the mouse to the centre of the first element matching ``selector`` (scrolled into view)."""
        xy = self.evaluate(f"(() => {{const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                           "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                           "return [r.x + r.width / 2, r.y + r.height / 2];})()")
        if xy is None:
            raise BrowserError(f"nothing on the page matches {selector!r}")
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": xy[0], "y": xy[1]})

    def screenshot(self, selector: str | None = None, *, margin: int = 8,
                   clip: tuple[float, float, float, float] | None = None) -> bytes:
        """PNG of the viewport, of the element matching ``selector`` (plus ``margin`` px), or of ``clip``
        (x, y, width, height in page pixels)."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params |= {"clip": {"x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1},
                       "captureBeyondViewport": True}
        elif selector is not None:
            box = self.evaluate(f"(() => {{const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                                "const r = e.getBoundingClientRect();"
                                "return [r.x + scrollX, r.y + scrollY, r.width, r.height];})()")
            if box is None:
                raise BrowserError(f"nothing on the page matches {selector!r}")
            x, y, w, h = box
            params |= {"clip": {"x": max(0, x - margin), "y": max(0, y - margin), "width": w + 2 * margin,
                                "height": h + 2 * margin, "scale": 1}, "captureBeyondViewport": True}
        import base64

        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])


class _Pipe:
    """The DevTools connection: one request at a time, events kept for the page."""

    def __init__(self, proc: subprocess.Popen[bytes], write_fd: int, read_fd: int, timeout: float) -> None:
        self.proc, self.w, self.r, self.timeout = proc, write_fd, read_fd, timeout
        self.buf, self.next_id, self.events = b"", 0, []  # type: ignore[var-annotated]

    def _messages(self, deadline: float) -> Iterator[dict[str, Any]]:
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                yield json.loads(raw)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise BrowserError(f"chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the DevTools pipe (exit code {self.proc.poll()})")
            self.buf += chunk

    def send(self, method: str, params: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        for m in self._messages(time.monotonic() + self.timeout):
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise BrowserError(f"{method} failed: {m['error'].get('message')}")
                return m.get("result", {})
            self.events.append(m)
        raise AssertionError("unreachable")

    def wait_event(self, name: str) -> dict[str, Any]:
        for i, m in enumerate(self.events):
            if m.get("method") == name:
                return self.events.pop(i)
        for m in self._messages(time.monotonic() + self.timeout):
            if m.get("method") == name:
                return m
            self.events.append(m)
        raise AssertionError("unreachable")


def _collect(page: Page, events: list[dict[str, Any]]) -> None:
    """Move console errors and requests out of the protocol events into ``page``."""
    for m in events:
        method, p = m.get("method"), m.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            page.errors.append(f"uncaught: {(d.get('exception') or {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            page.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                           for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            page.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            page.requests.append(p.get("request", {}).get("url", ""))
    events.clear()


@contextmanager
def open_page(path: Path, *, width: int = 1280, height: int = 900, timeout: float = 60.0,
              binary: str | None = None) -> Iterator[Page]:
    """Load the local file ``path`` in a fresh headless Chromium and yield the :class:`Page`, once loaded."""
    binary = binary or find_chromium()
    if binary is None:
        raise BrowserError(f"no Chromium found (tried {', '.join(CHROMIUM_NAMES)}); install it with "
                           "`apt-get install -y chromium` or set DYNNAS_CHROMIUM.")
    profile = tempfile.mkdtemp(prefix="dynnas-chromium-")
    to_browser, from_browser = os.pipe(), os.pipe()  # (read, write) each
    # Chromium's ends, moved to fds >= 10 (close-on-exec) so that putting them on 3 and 4, where
    # --remote-debugging-pipe expects them, cannot overwrite one with the other; dup2 clears
    # close-on-exec on 3 and 4 only, so nothing else of this process leaks into the browser.
    r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser[0], from_browser[1]))
    os.close(to_browser[0])
    os.close(from_browser[1])

    def onto_3_and_4() -> None:  # runs in the child, between fork and exec
        os.dup2(r, 3)
        os.dup2(w, 4)

    try:
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                preexec_fn=onto_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        os.close(r)
        os.close(w)
    pipe = _Pipe(proc, to_browser[1], from_browser[0], timeout)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(pipe.send, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})
        page.call("Page.navigate", {"url": Path(path).resolve().as_uri()})
        pipe.wait_event("Page.loadEventFired")
        page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")  # let late scripts run
        _collect(page, pipe.events)
        yield page
        _collect(page, pipe.events)
    finally:
        try:
            pipe.send("Browser.close", {})
        except (BrowserError, OSError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for fd in (to_browser[1], from_browser[0]):
            os.close(fd)
        shutil.rmtree(profile, ignore_errors=True)


@dataclass(frozen=True)
class ReportCheck:
    """What a reader of a report sees in Chromium."""

    errors: list[str]
    requests: list[str]  # URLs other than the report itself and data: URIs
    images: list[dict[str, Any]]  # alt, decoded, width, height: one per <img>
    sections: list[str]  # ids of the <h2> headings, in order
    title: str

    @property
    def ok(self) -> bool:
        return not self.errors and not self.requests and all(i["decoded"] and i["width"] > 0 for i in self.images)


IMAGES_JS = ("Promise.all(Array.from(document.images).map(i => i.decode().then(() => true, () => false)"
             ".then(d => ({alt: i.alt, decoded: d, width: i.naturalWidth, height: i.naturalHeight}))))")


def check_report(path: Path, **kwargs: Any) -> ReportCheck:
    """Open ``path`` and check it: console errors, network requests, every image decoded, the sections."""
    with open_page(path, **kwargs) as page:
        images = page.evaluate(IMAGES_JS)
        sections = page.evaluate("Array.from(document.querySelectorAll('h2[id]')).map(h => h.id)")
        title = page.evaluate("document.title")
    own = Path(path).resolve().as_uri()
    return ReportCheck(errors=list(page.errors), requests=[u for u in page.requests if u != own and
                                                           not u.startswith("data:")],
                       images=images, sections=sections, title=title)
