"""Debian's Prometheus, node_exporter and Alertmanager as private servers for the tests.

Each runs on a free 127.0.0.1 port with its own temporary data folder and is stopped by its
own process id. Without the binaries the tests that need them are skipped with the reason,
unless ``ANALYTICS_REQUIRE_PROMETHEUS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import required
from tests.helpers import free_port, wait_for


def binary(name: str) -> str:
    """The path of a Debian binary; skip (or fail in CI) when it is not installed."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        package = {
            "promtool": "prometheus",
            "amtool": "prometheus-alertmanager",
        }.get(name, name)
        required.unavailable("PROMETHEUS", f"{name} is not installed (apt-get install {package})")
    return found


def http_get(url: str) -> str:
    """The body of a GET, as text. An error answer (a server's 503 while it starts) is
    raised with its connection already closed."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        exc.close()
        raise


@dataclass
class Server:
    """One running server: its process, address and folder."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What it wrote (for failure messages)."""
        path = self.folder / "log"
        return path.read_text("utf-8", "replace")[-3000:] if path.exists() else ""

    def get_json(self, path: str) -> Any:
        """GET a JSON document from it."""
        return json.loads(http_get(self.url + path))


@contextlib.contextmanager
def _run(name: str, args: list[str], folder: Path, port: int, ready: str) -> Iterator[Server]:
    log = (folder / "log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Server(name, process, port, folder)
    try:

        def up() -> bool | None:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}: {server.log()}")
            http_get(server.url + ready)
            return True

        wait_for(f"{name} on port {port}", up)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def alertmanager(folder: Path | None = None) -> Iterator[Server]:
    """A private Alertmanager (no cluster), receivers that deliver nowhere."""
    exe = binary("prometheus-alertmanager")
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="am-")))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alertmanager.yml").write_text(
            "route:\n  receiver: sink\n  group_wait: 1s\n  group_interval: 1s\n"
            "receivers:\n  - name: sink\n"
        )
        port = free_port()
        args = [
            exe,
            f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        yield stack.enter_context(_run("alertmanager", args, folder, port, "/-/ready"))


@contextlib.contextmanager
def node_exporter(textfile_dir: Path) -> Iterator[Server]:
    """A private node_exporter with only the textfile collector, on ``textfile_dir``."""
    exe = binary("prometheus-node-exporter")
    with tempfile.TemporaryDirectory(prefix="ne-") as tmp:
        port = free_port()
        args = [
            exe,
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfile_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with _run("node_exporter", args, Path(tmp), port, "/metrics") as server:
            yield server


@contextlib.contextmanager
def prometheus(config_text: Callable[[int], str], rules: list[Path]) -> Iterator[Server]:
    """A private Prometheus; ``config_text(port)`` is its prometheus.yml (rules copied in)."""
    exe = binary("prometheus")
    with tempfile.TemporaryDirectory(prefix="prom-") as tmp:
        folder = Path(tmp)
        for rule in rules:
            shutil.copy(rule, folder / rule.name)
        port = free_port()
        (folder / "prometheus.yml").write_text(config_text(port))
        args = [
            exe,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with _run("prometheus", args, folder, port, "/-/ready") as server:
            yield server


def scrape(server: Server) -> dict[str, float]:
    """node_exporter's /metrics as {series: value} (comments dropped)."""
    values = {}
    for line in http_get(server.url + "/metrics").splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values
