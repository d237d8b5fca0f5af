"""A real headless Chromium driven over the DevTools protocol on a pipe (no extra package):
load a page, record every request and console error, evaluate, screenshot, print."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.required import unavailable

TIMEOUT = 60.0


def chromium_path() -> str | None:
    """Debian's chromium (or another Chromium-family browser on PATH)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _above(fd: int, lowest: int) -> int:
    """A close-on-exec copy of ``fd`` numbered ``lowest`` or more; ``fd`` is closed."""
    import fcntl

    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return copy


@dataclass
class Loaded:
    """What a page did while it loaded: every request, every console error."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Browser:
    """One headless Chromium; commands go down fd 3, answers and events come up fd 4."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # Moved above 10 first: a pipe end that already is fd 3 or 4 would otherwise be
        # dup2'ed onto itself and keep its close-on-exec flag, or be overwritten by the other.
        to_child, from_child = (_above(fd, 10) for fd in (to_child, from_child))

        def pipes() -> None:  # in the child, before exec: the protocol's two descriptors
            os.dup2(to_child, 3)  # dup2 makes inheritable copies
            os.dup2(from_child, 4)

        args = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            # Any request that did get out would go to a closed port: a failure, never the net.
            "--proxy-server=127.0.0.1:9",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses root
        self.log = profile / "chromium.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=False,  # fds 3 and 4 must survive; other pipes are non-inheritable
                preexec_fn=pipes,
            )
        os.close(to_child)
        os.close(from_child)
        self._next = 0
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        buffer = b""
        with os.fdopen(self._read, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    if "id" in message:
                        with self._lock:
                            answer = self._answers.get(message["id"])
                        if answer is not None:
                            answer.put(message)
                    else:
                        self.events.put(message)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One command; its result, or an AssertionError with the protocol's error."""
        with self._lock:
            self._next += 1
            ident = self._next
            answer: queue.Queue[dict[str, Any]] = queue.Queue()
            self._answers[ident] = answer
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        try:
            reply = answer.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"chromium did not answer {method}: {self._log_tail()}") from None
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def open(self, url: str) -> tuple[str, Loaded]:
        """A new tab that loads ``url``; returns its session and what happened until load."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=1100,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        loaded = Loaded()
        self.send("Page.navigate", session, url=url)
        while True:
            try:
                event = self.events.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"{url} did not load: {self._log_tail()}") from None
            if event.get("sessionId") != session:
                continue
            self._record(event, loaded)
            if event["method"] == "Page.loadEventFired":
                break
        # Anything still queued (a late console message) counts too.
        self.evaluate(session, "1")
        while not self.events.empty():
            event = self.events.get()
            if event.get("sessionId") == session:
                self._record(event, loaded)
        return session, loaded

    @staticmethod
    def _record(event: dict[str, Any], loaded: Loaded) -> None:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            loaded.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            loaded.errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            loaded.errors.append(json.dumps(params["args"])[:500])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            loaded.errors.append(params["entry"]["text"])

    def evaluate(self, session: str, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        reply = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, session: str, path: Path, width: int = 1100) -> bytes:
        """A PNG of the whole page (not only the viewport), written to ``path``."""
        height = int(self.evaluate(session, "document.documentElement.scrollHeight"))
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        data = base64.b64decode(self.send("Page.captureScreenshot", session, format="png")["data"])
        path.write_bytes(data)
        return data

    def pdf(self, session: str) -> bytes:
        """The page printed (A4, as its @page asks)."""
        reply = self.send("Page.printToPDF", session, preferCSSPageSize=True)
        return base64.b64decode(reply["data"])

    def close(self) -> None:
        """Ask the browser to quit; kill it if it does not."""
        with contextlib.suppress(AssertionError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless Chromium for the session; skipped without one unless
    ANALYTICS_REQUIRE_CHROMIUM=1 (CI), where a missing browser is a failure."""
    executable = chromium_path()
    if executable is None:
        unavailable("CHROMIUM", "chromium is not installed (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="analytics-cli-chromium-"))
    instance = Browser(executable, profile)
    try:
        yield instance
    finally:
        instance.close()
        shutil.rmtree(profile, ignore_errors=True)
