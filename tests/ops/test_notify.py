"""Alert delivery: `status` and `collect` findings reach a real Alertmanager (API v2) and a
webhook; failures are one warning line; secrets never show."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from analytics_cli.config.dump import notify_document
from analytics_cli.config.load import load
from analytics_cli.config.validate import notify_settings
from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import iso
from tests.conftest import Databases, cli
from tests.helpers import wait_for
from tests.ops.test_anomalies import config_file, env, findings, generate  # noqa: F401 (env)
from tests.prometheus_servers import Server, alertmanager

WEEK = timedelta(days=7)


# ---------------------------------------------------------------------------- local servers


@dataclass
class Received:
    """What a local HTTP server was sent."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [json.loads(body) for _, _, _, body in self.requests]

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@contextlib.contextmanager
def http_server(
    *,
    upstream: str | None = None,
    status: int = 200,
    reply: bytes = b"",
    tls: tuple[Path, Path] | None = None,
    location: str | None = None,
) -> Iterator[tuple[str, Received]]:
    """A local HTTP(S) server that records each request; with ``upstream``, it passes the
    request on (a counting proxy in front of a real Alertmanager)."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with received.lock:
                received.requests.append((self.command, self.path, dict(self.headers), body))
            if upstream is None:
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                return
            request = urllib.request.Request(
                upstream + self.path,
                data=body if self.command == "POST" else None,
                headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
                method=self.command,
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    code, data = response.status, response.read()
            except urllib.error.HTTPError as exc:
                with exc:
                    code, data = exc.code, exc.read()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def am() -> Iterator[Server]:
    """One real Alertmanager for this module (each test uses its own label values)."""
    with alertmanager() as server:
        yield server


def am_alerts(server: Server, **labels: str) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds (active ones and those not yet expired) matching labels."""
    alerts: list[dict[str, Any]] = server.get_json("/api/v2/alerts")
    return [a for a in alerts if all(a["labels"].get(k) == v for k, v in labels.items())]


def heal(dbs: Databases, name: str, newest: Any) -> None:
    """Give the newest slot of ``name`` the value it had a week before (an ordinary one)."""
    with dbs.store_conn() as conn:
        conn.execute(
            'UPDATE analytics SET count = (SELECT count FROM analytics WHERE type = %s AND "timestamp" = %s) '
            'WHERE type = %s AND "timestamp" = %s',
            (name, newest - WEEK, name, newest),
        )


# ---------------------------------------------------------------------------- config


def test_notify_table_is_validated_and_dumped(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text(
        "[notify]\n"
        'alertmanager = "http://am.example:9093"\n'
        'webhook = "https://hooks.example.com/services/T000/B000/XYZsecret"\n'
        'webhook_format = "slack"\n'
        'token_file = "/run/secrets/am-token"\n'
        'timeout = "3s"\nretries = 1\nresolve_after = "2h"\n'
        'labels = { env = "prod", team = "platform" }\n'
    )
    settings = load(path, env={})
    notify = settings.notify
    assert notify.alertmanager == "http://am.example:9093"
    assert notify.webhook_format == "slack"
    assert (notify.timeout, notify.retries, notify.resolve_after) == (
        timedelta(seconds=3),
        1,
        timedelta(hours=2),
    )
    assert notify.labels == (("env", "prod"), ("team", "platform"))
    shown = cli("-c", str(path), "config", "show")
    assert shown.exit_code == 0, shown.stderr
    # A webhook's path is its credential: shown redacted, like a DSN's password.
    assert "XYZsecret" not in shown.stdout
    assert 'webhook = "https://hooks.example.com/***"' in shown.stdout
    assert 'alertmanager = "http://am.example:9093"' in shown.stdout
    assert 'token_file = "/run/secrets/am-token"' in shown.stdout
    # The dumped table reads back to the same settings (the secret path aside).
    assert notify_settings(path, notify_document(notify, redact=False)) == notify


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('alertmanager = "am:9093"', "notify.alertmanager must be an http:// or https:// URL"),
        ('webhook = "ftp://x/y"', "notify.webhook must be an http:// or https:// URL"),
        ('webhook_format = "teams"', "notify.webhook_format must be one of json, slack"),
        ('username = "u"', "notify.username needs notify.password_file"),
        ('password_file = "/p"', "notify.password_file needs notify.username"),
        ('timeout = "2m"', "notify.timeout must be more than 0 and at most 1m"),
        ("retries = 9", "notify.retries must be between 0 and 5"),
        ('labels = { alertname = "x" }', "notify.labels: 'alertname' is set by analytics-cli"),
        ('labels = { "bad-name" = "x" }', "notify.labels: 'bad-name' is not a valid label name"),
        ('colour = "red"', "unknown key notify.colour"),
        ('alertmanager = "http://me:pw@am:9093"', "notify.alertmanager must not carry a user"),
    ],
)
def test_bad_notify_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "n.toml"
    path.write_text(f"[notify]\n{text}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(path, env={})
    result = cli("-c", str(path), "config", "show")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "pw@" not in result.stderr


def test_a_bad_flag_url_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("-c", config_file(tmp_path), "status", "--alertmanager", "localhost:9093")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "error: --alertmanager must be an http:// or https:// URL with a host"
    )


# ---------------------------------------------------------------------------- Alertmanager


def test_an_anomaly_fires_is_resent_and_resolves_in_alertmanager(
    env: Databases,  # noqa: F811
    tmp_path: Path,
    am: Server,
) -> None:
    newest = generate(env, weeks=4, last={"busy": 20})
    conf = config_file(tmp_path, '[notify]\nlabels = { env = "test-resolve" }\n')
    with http_server(upstream=am.url) as (proxy, got):
        plain = cli("-c", conf, "status", "--anomalies")
        assert got.count() == 0  # nothing configured: nothing sent
        first = cli("-c", conf, "status", "--anomalies", "--alertmanager", proxy)
        # Delivery changes neither the exit code nor what is printed.
        assert first.exit_code == plain.exit_code == 1
        assert table(first.stdout) == table(plain.stdout)
        assert findings(first.stderr) == findings(plain.stderr)
        assert "warning" not in first.stderr
        # One request per run, whatever the number of alerts in it.
        assert [(m, p) for m, p, _, _ in got.requests] == [("POST", "/api/v2/alerts")]
        [sent] = got.bodies()
        [alert] = am_alerts(am, env="test-resolve")
        assert alert["labels"] == {
            "alertname": "AnalyticsAnomaly",
            "type": "busy",
            "kind": "drop",
            "severity": "warning",
            "env": "test-resolve",
        }
        annotations = alert["annotations"]
        [line] = findings(first.stderr)
        assert annotations["summary"] == line.removeprefix("anomaly: ")
        assert annotations["command"] == "analytics-cli show --type busy --since 2d"
        assert annotations["slot"] == iso(newest)
        assert annotations["value"] == "20"
        low, high = annotations["expected"].split(" to ")
        assert float(low) > 20 and float(high) > float(low)
        assert alert["status"]["state"] == "active"
        # endsAt: three [collect] intervals (30m) ahead of the run.
        assert sent[0]["endsAt"] > sent[0]["startsAt"]
        # Run again: sent again (Alertmanager keeps it alive), same start.
        again = cli("-c", conf, "status", "--anomalies", "--alertmanager", proxy)
        assert again.exit_code == 1
        assert got.count() == 2
        assert got.bodies()[1][0]["startsAt"] == sent[0]["startsAt"]
        heal(env, "busy", newest)
        healed = cli("-c", conf, "status", "--anomalies", "--alertmanager", proxy)
        assert healed.exit_code == 0, healed.stderr
        assert findings(healed.stderr) == []
        assert got.count() == 3
        [resolved] = got.bodies()[2]
        assert resolved["labels"]["kind"] == "drop"
        assert resolved["endsAt"] <= iso_now_plus_minute()
        # Alertmanager no longer lists it as active.
        wait_for(
            "the alert to resolve",
            lambda: (
                True
                if all(
                    a["status"]["state"] != "active" or a["endsAt"] <= resolved["endsAt"]
                    for a in am_alerts(am, env="test-resolve")
                )
                else None
            ),
        )
        # Nothing firing, nothing healed: no request at all.
        quiet = cli("-c", conf, "status", "--anomalies", "--alertmanager", proxy)
        assert quiet.exit_code == 0
        assert got.count() == 3


def table(stdout: str) -> str:
    """The anomaly table of ``status --anomalies`` (the status part holds the clock)."""
    return stdout[stdout.index("\nanomalies: ") :]


def iso_now_plus_minute() -> str:
    from analytics_cli.timeutil import utcnow

    return iso(utcnow() + timedelta(minutes=1))


def test_a_delivery_failure_is_one_warning_and_changes_nothing_else(
    env: Databases,  # noqa: F811
    tmp_path: Path,
) -> None:
    generate(env, weeks=4, last={"busy": 20})
    conf = config_file(tmp_path, "[notify]\nretries = 2\n")
    plain = cli("-c", conf, "status", "--anomalies")
    with http_server(status=503, reply=b"overloaded\n") as (url, got):
        failed = cli("-c", conf, "status", "--anomalies", "--alertmanager", url)
    assert failed.exit_code == plain.exit_code == 1
    assert table(failed.stdout) == table(plain.stdout)
    # Bounded retries: the first try and two more, then one line.
    assert got.count() == 3
    warnings = [x for x in failed.stderr.splitlines() if x.startswith("warning: ")]
    port = url.rsplit(":", 1)[1]
    assert warnings == [
        f"warning: alerts not delivered to Alertmanager at 127.0.0.1:{port} after 3 attempts: "
        "HTTP 503 (overloaded)"
    ]
    # The finding is still printed, before the warning.
    assert findings(failed.stderr) == findings(plain.stderr)
    # A 4xx is the request's fault: not tried again.
    with http_server(status=400, reply=b"bad alert\n") as (url, got):
        refused = cli("-c", conf, "status", "--anomalies", "--alertmanager", url)
    assert refused.exit_code == 1
    assert got.count() == 1
    # Nobody listening: the same single line.
    conf0 = config_file(tmp_path, "[notify]\nretries = 0\n")
    down = cli("-c", conf0, "status", "--anomalies", "--alertmanager", "http://127.0.0.1:1")
    assert down.exit_code == 1
    [warning] = [x for x in down.stderr.splitlines() if x.startswith("warning: ")]
    assert warning.startswith("warning: alerts not delivered to Alertmanager at 127.0.0.1:1: ")
    assert "Connection refused" in warning
    # Something that is not an HTTP server answers: still one line.
    with garbage_server() as port:
        odd = cli(
            "-c", conf0, "status", "--anomalies", "--alertmanager", f"http://127.0.0.1:{port}"
        )
    assert odd.exit_code == 1
    [warning] = [x for x in odd.stderr.splitlines() if x.startswith("warning: ")]
    assert warning.startswith(
        f"warning: alerts not delivered to Alertmanager at 127.0.0.1:{port}: "
    )
    assert "Traceback" not in odd.stderr
    # A server that never answers: the timeout ends the wait, with one line.
    slow = config_file(tmp_path, '[notify]\nretries = 0\ntimeout = "1s"\n')
    with garbage_server(reply=None) as port:
        hung = cli(
            "-c", slow, "status", "--anomalies", "--alertmanager", f"http://127.0.0.1:{port}"
        )
    assert hung.exit_code == 1
    [warning] = [x for x in hung.stderr.splitlines() if x.startswith("warning: ")]
    assert (
        warning == f"warning: alerts not delivered to Alertmanager at 127.0.0.1:{port}: timed out"
    )


@contextlib.contextmanager
def garbage_server(reply: bytes | None = b"SSH-2.0-OpenSSH_9.2\r\n") -> Iterator[int]:
    """A TCP server that answers every connection with a line that is not HTTP (or, with
    ``reply`` None, reads the request and never answers)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                if reply is None:
                    stop.wait()
                else:
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_finding_not_delivered_is_sent_when_the_target_is_back(
    env: Databases,  # noqa: F811
    tmp_path: Path,
    am: Server,
) -> None:
    newest = generate(env, weeks=4, last={"busy": 20})
    conf = config_file(tmp_path, '[notify]\nretries = 0\nlabels = { env = "test-back" }\n')
    assert cli("-c", conf, "status", "--anomalies", "--alertmanager", am.url).exit_code == 1
    assert [a["labels"]["kind"] for a in am_alerts(am, env="test-back")] == ["drop"]
    heal(env, "busy", newest)
    # Healed while Alertmanager is out of reach: the resolution waits for the next run.
    down = cli("-c", conf, "status", "--anomalies", "--alertmanager", "http://127.0.0.1:1")
    assert down.exit_code == 0
    assert "warning: alerts not delivered" in down.stderr
    with http_server(upstream=am.url) as (proxy, got):
        back = cli("-c", conf, "status", "--anomalies", "--alertmanager", proxy)
        assert back.exit_code == 0
        [[resolved]] = got.bodies()
    assert resolved["labels"]["type"] == "busy"
    assert resolved["endsAt"] <= iso_now_plus_minute()


def make_tls(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("auth", ["token", "basic"])
def test_credentials_travel_over_tls_and_never_show(
    env: Databases,  # noqa: F811
    tmp_path: Path,
    auth: str,
) -> None:
    generate(env, weeks=4, last={"busy": 20})
    secret = "s3cr3t-T0ken-4711"
    (tmp_path / "secret").write_text(secret + "\n")
    cert, key = make_tls(tmp_path)
    creds = (
        f'token_file = "{tmp_path / "secret"}"\n'
        if auth == "token"
        else f'username = "alerts"\npassword_file = "{tmp_path / "secret"}"\n'
    )
    conf = config_file(tmp_path, f'[notify]\nretries = 0\nca_file = "{cert}"\n{creds}')
    expected = (
        f"Bearer {secret}"
        if auth == "token"
        else "Basic " + base64.b64encode(f"alerts:{secret}".encode()).decode()
    )
    with http_server(tls=(cert, key)) as (url, got):
        ok = cli("--log-format", "json", "-c", conf, "status", "--anomalies", "--alertmanager", url)
        assert ok.exit_code == 1
        [(_, _, headers, _)] = got.requests
        assert headers["Authorization"] == expected
    # A server that echoes the credentials in its refusal: the warning shows none of them.
    echo = f"denied for {expected} ({secret})".encode()
    with http_server(tls=(cert, key), status=401, reply=echo) as (url, got):
        refused = cli("-c", conf, "status", "--anomalies", "--alertmanager", url)
        assert refused.exit_code == 1
        assert got.count() == 1
    for result in (ok, refused):
        assert secret not in result.stdout + result.stderr
        assert expected.split()[1] not in result.stdout + result.stderr
    assert "HTTP 401 (denied for " in refused.stderr
    # Without the CA the server is not trusted: one warning, the token never sent.
    plain = config_file(tmp_path, f"[notify]\nretries = 0\n{creds}")
    with http_server(tls=(cert, key)) as (url, got):
        untrusted = cli("-c", plain, "status", "--anomalies", "--alertmanager", url)
        assert got.count() == 0
    assert untrusted.exit_code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    # An unreadable credentials file: a warning naming the file, not a traceback.
    (tmp_path / "secret").unlink()
    missing = cli("-c", conf, "status", "--anomalies", "--alertmanager", "https://127.0.0.1:1")
    assert missing.exit_code == 1
    assert f"cannot read the notify.{'token' if auth == 'token' else 'password'}_file file " in (
        missing.stderr
    )
    assert "Traceback" not in missing.stderr


def test_a_redirect_is_not_followed_with_the_credentials(
    env: Databases,  # noqa: F811
    tmp_path: Path,
) -> None:
    """urllib would repeat a redirected POST elsewhere with its Authorization header: the
    token must stay with the Alertmanager it was configured for."""
    generate(env, weeks=4, last={"busy": 20})
    secret = "s3cr3t-T0ken-0815"
    (tmp_path / "secret").write_text(secret + "\n")
    conf = config_file(tmp_path, f'[notify]\nretries = 0\ntoken_file = "{tmp_path / "secret"}"\n')
    with (
        http_server() as (elsewhere, other),
        http_server(status=302, location=elsewhere) as (
            url,
            got,
        ),
    ):
        result = cli("-c", conf, "status", "--anomalies", "--alertmanager", url)
        assert got.count() == 1
        assert other.count() == 0
    assert result.exit_code == 1  # the finding's own exit code, delivery or not
    assert "HTTP 302" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_collect_reports_its_failed_metric_and_the_store_down(
    env: Databases,  # noqa: F811
    tmp_path: Path,
    am: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "collect.toml"
    path.write_text(
        '[collect]\nmetrics = []\nretries = 0\nconnect_timeout = "1s"\n'
        '[notify]\nretries = 0\nlabels = { env = "test-collect" }\n'
        '[[metric]]\ntype = "later"\nsql = "SELECT count(*) AS count FROM later"\n'
        '[[metric]]\ntype = "fine"\nsql = "SELECT 7 AS count"\n'
    )
    conf = str(path)
    failed = cli("-c", conf, "collect", "--alertmanager", am.url)
    assert failed.exit_code == 1, failed.stderr
    [alert] = am_alerts(am, env="test-collect")
    assert alert["labels"] == {
        "alertname": "AnalyticsMetricFailing",
        "type": "later",
        "kind": "failing",
        "severity": "warning",
        "env": "test-collect",
    }
    assert alert["annotations"]["summary"].startswith("metric later failed at slot ")
    assert 'relation "later" does not exist' in alert["annotations"]["summary"]
    # The store goes away: the cycle is spooled and says so, as a critical alert.
    monkeypatch.setenv("ANALYTICS_STORE_DSN", "postgresql://nobody:Pw-0f-St0re@127.0.0.1:1/x")
    down = cli("-c", conf, "collect", "--alertmanager", am.url)
    assert "Pw-0f-St0re" not in down.stdout + down.stderr
    assert "Pw-0f-St0re" not in json.dumps(am_alerts(am, env="test-collect"))
    assert down.exit_code == 3, down.stderr
    assert down.stderr.startswith("error: ")
    kinds = {
        a["labels"]["alertname"]: a["labels"]["kind"] for a in am_alerts(am, env="test-collect")
    }
    assert kinds["AnalyticsStoreDown"] == "spooled"
    [store] = am_alerts(am, env="test-collect", alertname="AnalyticsStoreDown")
    assert store["labels"]["severity"] == "critical"
    assert store["annotations"]["summary"] == down.stderr.splitlines()[0].removeprefix("error: ")
    # Back to health: the table exists, the store is back. Both resolve.
    monkeypatch.setenv("ANALYTICS_STORE_DSN", env.store)
    with env.source_conn() as conn:
        conn.execute("CREATE TABLE later (n int)")
    with http_server(upstream=am.url) as (proxy, got):
        healed = cli("-c", conf, "collect", "--alertmanager", proxy)
        assert healed.exit_code == 0, healed.stderr
        [sent] = got.bodies()
    assert sorted(a["labels"]["alertname"] for a in sent) == [
        "AnalyticsMetricFailing",
        "AnalyticsStoreDown",
    ]
    assert all(a["endsAt"] <= iso_now_plus_minute() for a in sent)
    # A usage error says nothing about the metrics: the state is left as it is.
    assert cli("-c", conf, "collect", "--only", "nope", "--alertmanager", proxy).exit_code == 2


def test_the_webhook_gets_one_body_per_change_json_and_slack(
    env: Databases,  # noqa: F811
    tmp_path: Path,
) -> None:
    newest = generate(env, weeks=4, last={"busy": 20, "quiet": 500})
    with http_server() as (url, got):
        conf = config_file(tmp_path, f'[notify]\nwebhook = "{url}/hook/T0/B0/S3CRETpath"\n')
        first = cli("-c", conf, "status", "--anomalies")
        assert first.exit_code == 1
        [body] = got.bodies()
        assert set(body) == {"version", "sender", "command", "status", "sent_at", "text", "alerts"}
        assert (body["version"], body["sender"], body["command"], body["status"]) == (
            1,
            "analytics-cli",
            "status",
            "firing",
        )
        assert sorted(
            (a["labels"]["type"], a["labels"]["kind"], a["status"]) for a in body["alerts"]
        ) == [
            ("busy", "drop", "firing"),
            ("quiet", "spike", "firing"),
        ]
        lines = body["text"].splitlines()
        assert lines[0] == "analytics-cli status: 2 firing, 0 resolved"
        assert sorted(lines[1:]) == sorted(
            "[FIRING] " + x.removeprefix("anomaly: ") for x in findings(first.stderr)
        )
        # No change: chat is not told again.
        assert cli("-c", conf, "status", "--anomalies").exit_code == 1
        assert got.count() == 1
        heal(env, "busy", newest)
        assert cli("-c", conf, "status", "--anomalies").exit_code == 1
        [_, change] = got.bodies()
        assert change["status"] == "firing"
        assert [(a["labels"]["type"], a["status"]) for a in change["alerts"]] == [
            ("quiet", "firing"),
            ("busy", "resolved"),
        ]
        assert change["text"].splitlines()[0] == "analytics-cli status: 1 firing, 1 resolved"
        assert change["text"].splitlines()[2].startswith("[RESOLVED] busy = 20 at ")
        # Slack's incoming webhook takes {"text": ...}: the same text, nothing else.
        heal(env, "quiet", newest)
        slack = config_file(
            tmp_path,
            f'[notify]\nwebhook = "{url}/hook/T0/B0/S3CRETpath"\nwebhook_format = "slack"\n',
        )
        assert cli("-c", slack, "status", "--anomalies").exit_code == 0
        [*_, last] = got.bodies()
        assert last == {
            "text": "analytics-cli status: 0 firing, 1 resolved\n" + last["text"].split("\n", 1)[1]
        }
        assert last["text"].splitlines()[1].startswith("[RESOLVED] quiet = 500 at ")
        assert [path for _, path, _, _ in got.requests] == ["/hook/T0/B0/S3CRETpath"] * 3
    # A failed webhook names the host only: its path is the credential.
    with env.store_conn() as conn:
        conn.execute(
            "UPDATE analytics SET count = 20 WHERE type = 'busy' AND \"timestamp\" = %s", (newest,)
        )
    gone = cli("-c", conf, "status", "--anomalies")
    [warning] = [x for x in gone.stderr.splitlines() if x.startswith("warning: ")]
    assert "S3CRETpath" not in gone.stderr
    assert warning.startswith("warning: alerts not delivered to webhook at 127.0.0.1:")
    # The webhook is back: the alert it missed is still news.
    with http_server() as (url, got):
        back = config_file(tmp_path, f'[notify]\nwebhook = "{url}/hook"\n')
        assert cli("-c", back, "status", "--anomalies").exit_code == 1
        [body] = got.bodies()
        assert [(a["labels"]["type"], a["status"]) for a in body["alerts"]] == [("busy", "firing")]


def many_limits(dbs: Databases, tmp_path: Path, count: int) -> str:
    """``count`` metrics stored at the current slot, each above its [alert] limit."""
    from analytics_cli.timeutil import floor_slot, utcnow

    slot = floor_slot(utcnow(), timedelta(minutes=30))
    with dbs.store_conn() as conn, conn.cursor() as cur:
        cur.executemany(
            'INSERT INTO analytics (type, count, "timestamp", collected_at) VALUES (%s, 5, %s, %s)',
            [(f"m{i:03d}", slot, slot) for i in range(count)],
        )
    limits = "".join(f"m{i:03d} = {{ above = 1 }}\n" for i in range(count))
    return config_file(tmp_path, f"[alert]\n{limits}")


@pytest.mark.parametrize("count", [1, 40])
def test_delivery_costs_one_request_per_run_whatever_the_findings(
    env: Databases,  # noqa: F811
    tmp_path: Path,
    am: Server,
    count: int,
) -> None:
    conf = many_limits(env, tmp_path, count)
    with http_server(upstream=am.url) as (proxy, got):
        for run in range(1, 4):
            result = cli("-c", conf, "status", "--anomalies", "--alertmanager", proxy)
            assert result.exit_code == 1
            assert len(findings(result.stderr)) == count
            # The measurable form of the cost: one round trip per run, all alerts in it.
            assert got.count() == run
            assert len(got.bodies()[-1]) == count
    kinds = {a["labels"]["kind"] for a in am_alerts(am, alertname="AnalyticsAnomaly")}
    assert "above_limit" in kinds


def test_the_commented_notify_example_loads(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "examples" / "analytics-cli.toml").read_text()
    block = re.search(r"^# \[notify\]\n(?:# .*\n)+", text, re.M)
    assert block is not None
    path = tmp_path / "n.toml"
    path.write_text("".join(line[2:] + "\n" for line in block.group(0).splitlines()))
    notify = load(path, env={}).notify
    assert notify.alertmanager == "http://alertmanager:9093"
    assert notify.webhook_format == "slack"
    assert notify.labels == (("env", "prod"),)
