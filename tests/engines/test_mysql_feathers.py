"""The Feathers data path: examples/feathers.toml against a local Feathers-like REST server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import Databases, cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "feathers.toml"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.feathers-test.sig"
AT = "2026-11-29T10:10:00Z"
# What the platform holds, per service: the totals a find with $limit=0 reports.
TOTALS = {"channel": 12, "instance": 40}
RUNNING = 7  # instances with ended=false


@dataclass
class Feathers:
    """A local server answering like a Feathers service find; it records what it was sent."""

    url: str
    seen: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(state: Feathers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, code: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            state.seen.append((self.path, auth))
            if auth != f"Bearer {TOKEN}":
                # Feathers' own answer for a missing or wrong JWT.
                self.reply(
                    401, {"name": "NotAuthenticated", "code": 401, "message": "jwt malformed"}
                )
                return
            url = urlsplit(self.path)
            service = url.path.strip("/")
            query = parse_qs(url.query)
            if service not in TOTALS or query.get("$limit") != ["0"]:
                self.reply(404, {"name": "NotFound", "code": 404})
                return
            total = RUNNING if query.get("ended") == ["false"] else TOTALS[service]
            self.reply(200, {"total": total, "limit": 0, "skip": 0, "data": []})

    return Handler


@pytest.fixture
def feathers() -> Iterator[Feathers]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Feathers(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = _handler(state)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _example(feathers: Feathers, token: Path, tmp_path: Path) -> Path:
    """The example file, pointed at the local server and a token file of the test."""
    text = EXAMPLE.read_text()
    assert text.count("https://api.example.com") == 2
    assert text.count("/etc/analytics-cli/feathers-token") == 2
    text = text.replace("https://api.example.com", feathers.url)
    text = text.replace("/etc/analytics-cli/feathers-token", str(token))
    path = tmp_path / "feathers.toml"
    path.write_text(text)
    return path


def test_feathers_example_counts_with_a_bearer_token(
    feathers: Feathers, dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    config = _example(feathers, token, tmp_path)
    result = cli("-c", str(config), "collect", "--at", AT, "--json",
                 "--only", "feathersChannels", "--only", "feathersRunningInstances")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"] == [
        {"type": "feathersChannels", "status": "stored", "count": 12},
        {"type": "feathersRunningInstances", "status": "stored", "count": 7},
    ]
    assert feathers.seen == [
        ("/channel?$limit=0", f"Bearer {TOKEN}"),
        ("/instance?$limit=0&ended=false", f"Bearer {TOKEN}"),
    ]
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count, metadata FROM analytics ORDER BY type").fetchall()
    assert rows == [
        ("feathersChannels", Decimal(12), {}),
        ("feathersRunningInstances", Decimal(7), {}),
    ]


def test_a_wrong_token_fails_only_the_feathers_metrics(
    feathers: Feathers, dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    token = tmp_path / "token"
    token.write_text("not-the-token")
    config = _example(feathers, token, tmp_path)
    result = cli("-c", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 1
    metrics = json.loads(result.stdout)["metrics"]
    failed = {m["type"]: m["error"] for m in metrics if m["status"] == "failed"}
    assert set(failed) == {"feathersChannels", "feathersRunningInstances"}
    assert all(error.startswith("HTTP 401") for error in failed.values()), failed
    assert "not-the-token" not in result.stdout + result.stderr
    stored = {m["type"] for m in metrics if m["status"] == "stored"}
    assert len(stored) == 9  # the built-ins, read from the database as usual
