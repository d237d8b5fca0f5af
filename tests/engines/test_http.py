"""HTTP JSON metrics: Kubernetes quantities, the path language, a local metrics.k8s.io server."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_cli.config.schema import HttpSpec, MetricSpec
from analytics_cli.errors import ConfigError
from analytics_cli.jsonpath import evaluate, parse_path, parse_quantity
from analytics_cli.metrics import builtin_metrics
from analytics_cli.sources import http as http_source
from tests.conftest import Databases, cli
from tests.helpers import stored_counts

AT = "2026-11-29T10:10:00Z"
TOKEN = "k8s-token-abc.def"

# The shape metrics-server answers GET /apis/metrics.k8s.io/v1beta1/nodes with.
NODE_METRICS = {
    "kind": "NodeMetricsList",
    "apiVersion": "metrics.k8s.io/v1beta1",
    "metadata": {},
    "items": [
        {
            "metadata": {
                "name": "node-a",
                "creationTimestamp": "2026-11-29T10:09:55Z",
                "labels": {"kubernetes.io/hostname": "node-a", "kubernetes.io/os": "linux"},
            },
            "timestamp": "2026-11-29T10:09:41Z",
            "window": "20.036s",
            "usage": {"cpu": "250m", "memory": "1024Ki"},
        },
        {
            "metadata": {"name": "node-b", "creationTimestamp": "2026-11-29T10:09:55Z"},
            "timestamp": "2026-11-29T10:09:43Z",
            "window": "20.012s",
            "usage": {"cpu": "1500000000n", "memory": "2Gi"},
        },
        {
            "metadata": {"name": "node-c", "creationTimestamp": "2026-11-29T10:09:55Z"},
            "timestamp": "2026-11-29T10:09:44Z",
            "window": "19.998s",
            "usage": {"cpu": "2", "memory": "524288k"},
        },
    ],
}
CPU = Decimal("0.25") + Decimal("1.5") + 2
MEMORY = 1024 * 1024 + 2 * 2**30 + 524288 * 1000


# ---------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("1Gi", Decimal(2**30)),
        ("2Ki", Decimal(2048)),
        ("1e3", Decimal(1000)),
        ("500n", Decimal("0.0000005")),
        ("1.5", Decimal("1.5")),
        ("0", Decimal(0)),
        ("1024Ki", Decimal(1048576)),
        ("1500000000n", Decimal("1.5")),
        ("3u", Decimal("0.000003")),
        ("2k", Decimal(2000)),
        ("5M", Decimal(5000000)),
        ("1.5Gi", Decimal(1610612736)),
        ("7E", Decimal(7 * 10**18)),
        ("1Ei", Decimal(2**60)),
        ("2E-3", Decimal("0.002")),
        ("-1.25", Decimal("-1.25")),
        ("+.5", Decimal("0.5")),
        ("12.", Decimal(12)),
        ("123456789012345678901234567890123n", Decimal("123456789012345678901234.567890123")),
    ],
)
def test_quantities_parse_exactly(text: str, value: Decimal) -> None:
    got = parse_quantity(text)
    assert got == value
    assert got.as_tuple().exponent == got.as_tuple().exponent  # a Decimal, never a float
    assert isinstance(got, Decimal)


@pytest.mark.parametrize(
    "text", ["", "m", "1 m", "1mi", "1KI", "0x10", "1e", "1e1.5", "1.2.3", "Gi", "1e999", "1" * 70]
)
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(1000),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


@given(
    number=st.decimals(
        min_value=-(10**12), max_value=10**12, places=6, allow_nan=False, allow_infinity=False
    ),
    suffix=st.sampled_from(sorted(SUFFIXES)),
)
def test_quantity_property(number: Decimal, suffix: str) -> None:
    text = f"{number:f}{suffix}"
    with localcontext() as ctx:
        ctx.prec = 100  # the expectation must not be rounded either
        assert parse_quantity(text) == number * SUFFIXES[suffix]
        assert parse_quantity(f"{number:f}e3") == number * 1000


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=-30, max_value=30))
def test_exponent_property(mantissa: int, exponent: int) -> None:
    assert parse_quantity(f"{mantissa}e{exponent}") == Decimal(mantissa).scaleb(exponent)


# ---------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sum(items[*].usage.cpu)", CPU),
        ("sum(items[*].usage.memory)", Decimal(MEMORY)),
        ("count(items)", Decimal(3)),
        ("count(items[*].usage)", Decimal(3)),
        ("items[0].usage.cpu", Decimal("0.25")),
        ("items[-1].usage.memory", Decimal(524288000)),
        ("max(items[*].usage.cpu)", Decimal(2)),
        ("min(items[*].usage.cpu)", Decimal("0.25")),
        ("avg(items[*].usage.cpu)", CPU / 3),
        ('count(items[0].metadata.labels["kubernetes.io/hostname"])', Decimal(1)),
        ("sum(metadata.none[*].x)", None),
    ],
)
def test_path_language(path: str, value: Decimal | None) -> None:
    expr = parse_path(path)
    if value is None:
        with pytest.raises(ValueError, match=r"^metadata\.none: no such key$"):
            evaluate(NODE_METRICS, expr)
        return
    assert evaluate(NODE_METRICS, expr) == value


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("items[*].usage.cpu", "items[*].usage.cpu selects 3 values; use sum(), count(), ..."),
        ("items[3].usage", "items[3]: index out of range (array of 3)"),
        ("kind[0]", "kind[0]: not an array"),
        ("items.usage", "items.usage: not an object"),
        (
            "items[0].metadata.name",
            "items[0].metadata.name: 'node-a' is not a number or a Kubernetes quantity",
        ),
        ("min(metadata.missing)", "metadata.missing: no such key"),
    ],
)
def test_path_errors(path: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        evaluate(NODE_METRICS, parse_path(path))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("median(items)", "path: unknown function 'median'"),
        ("[0]", "path: '[0]' must start with a key name"),
        ("items[x]", "path: cannot read 'items[x]' at '[x]'"),
        ("items..a", "path: cannot read 'items..a' at '..a'"),
    ],
)
def test_path_syntax_errors(path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_path(path)
    assert str(info.value) == message


# ---------------------------------------------------------------------------- a local server


@dataclass
class Server:
    """A local HTTP server answering like the metrics API (and failing on purpose)."""

    url: str
    seen: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def make_handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep stderr for the command under test

        def reply(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            state.seen.append((self.path, auth, self.headers.get("Accept")))
            if self.path == "/apis/metrics.k8s.io/v1beta1/nodes":
                if auth != f"Bearer {TOKEN}":
                    self.reply(401, b'{"kind":"Status","code":401,"reason":"Unauthorized"}')
                    return
                self.reply(200, json.dumps(NODE_METRICS).encode())
            elif self.path == "/open":
                self.reply(200, json.dumps(NODE_METRICS).encode())
            elif self.path == "/fail":
                self.reply(500, b"internal error")
            elif self.path == "/slow":
                state.release.wait(60)
                self.reply(200, b'{"items": []}')
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/open")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/html":
                self.reply(200, b"<html>not json</html>", "text/html")
            elif self.path == "/garbled":
                # Not HTTP: http.client raises BadStatusLine, which is not an OSError.
                self.wfile.write(b"HTTP/1.1 2xx Weird\r\n\r\n")
                self.close_connection = True
            else:
                self.reply(404, b"{}")

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = make_handler(state)
    httpd.daemon_threads = True
    # A client that gave up (the timeout test) makes the late reply fail: not a test error.
    httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def http_metric(name: str, url: str, path: str, **extra: str) -> str:
    fields = {"url": url, "path": path, **extra}
    inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())
    return f'[[metric]]\ntype = "{name}"\nhttp = {{ {inline} }}\n\n'


@pytest.fixture
def store_only(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def test_node_metrics_with_a_bearer_token(
    server: Server, store_only: Databases, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    nodes = f"{server.url}/apis/metrics.k8s.io/v1beta1/nodes"
    config = tmp_path / "c.toml"
    config.write_text(
        http_metric("cpu", nodes, "sum(items[*].usage.cpu)", token_file=str(token))
        + http_metric("memory", nodes, "sum(items[*].usage.memory)", token_file=str(token))
        + http_metric("nodes", nodes, "count(items)", token_file=str(token))
    )
    result = cli("--config", str(config), "collect", "--at", AT, "--only", "cpu",
                 "--only", "memory", "--only", "nodes", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"] == [
        {"type": "cpu", "status": "stored", "count": 3.75},
        {"type": "memory", "status": "stored", "count": MEMORY},
        {"type": "nodes", "status": "stored", "count": 3},
    ]
    assert stored_counts(store_only) == {"cpu": CPU, "memory": Decimal(MEMORY), "nodes": Decimal(3)}
    assert (
        server.seen
        == [("/apis/metrics.k8s.io/v1beta1/nodes", f"Bearer {TOKEN}", "application/json")] * 3
    )


def test_wrong_token_500_and_timeout_fail_only_their_metric(
    server: Server, store_only: Databases, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    nodes = f"{server.url}/apis/metrics.k8s.io/v1beta1/nodes"
    config = tmp_path / "c.toml"
    config.write_text(
        http_metric("cpu", f"{server.url}/open", "sum(items[*].usage.cpu)")
        + http_metric("denied", nodes, "count(items)", token_file=str(wrong))
        + http_metric("broken", f"{server.url}/fail", "count(items)")
        + http_metric("slow", f"{server.url}/slow", "count(items)", timeout="1s")
        + http_metric("moved", f"{server.url}/redirect", "count(items)")
        + http_metric("html", f"{server.url}/html", "count(items)")
        + http_metric("gone", "http://127.0.0.1:1/x", "count(items)")
    )
    args = ["--config", str(config), "collect", "--at", AT, "--json"]
    for name in ("activeInstances", "cpu", "denied", "broken", "slow", "moved", "html", "gone"):
        args += ["--only", name]
    result = cli(*args)
    server.release.set()
    assert result.exit_code == 1
    metrics = {m["type"]: m for m in json.loads(result.stdout)["metrics"]}
    assert metrics["activeInstances"] == {"type": "activeInstances", "status": "stored", "count": 0}
    assert metrics["cpu"] == {"type": "cpu", "status": "stored", "count": 3.75}
    errors = {name: m["error"] for name, m in metrics.items() if m["status"] == "failed"}
    assert errors == {
        "denied": f"HTTP 401 Unauthorized from {nodes}",
        "broken": f"HTTP 500 Internal Server Error from {server.url}/fail",
        "slow": f"no answer from {server.url}/slow within 1s",
        "moved": f"HTTP 302 Found from {server.url}/redirect",
        "html": f"response from {server.url}/html is not JSON",
        "gone": errors["gone"],
    }
    assert errors["gone"].startswith("cannot fetch http://127.0.0.1:1/x: ")
    assert stored_counts(store_only) == {"activeInstances": Decimal(0), "cpu": CPU}
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("collect slot=2026-11-29T10:00:00Z stored=2 present=0 failed=6 ")
    assert lines[0] == f"warning: metric denied failed: HTTP 401 Unauthorized from {nodes}"
    assert len(lines) == 7
    # The redirect was refused, never followed (a token must not travel to another place).
    assert [p for p, _, _ in server.seen].count("/open") == 1


def test_response_size_is_bounded(
    server: Server, store_only: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_source, "MAX_RESPONSE_BYTES", 100)
    config = tmp_path / "c.toml"
    config.write_text(http_metric("cpu", f"{server.url}/open", "sum(items[*].usage.cpu)"))
    result = cli("--config", str(config), "collect", "--at", AT, "--only", "cpu", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["metrics"][0]["error"] == (
        f"response from {server.url}/open is larger than 100 bytes"
    )


def test_in_cluster_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(http_source, "SERVICE_ACCOUNT", account)
    spec = next(m for m in builtin_metrics() if m.type == "nodeCpuCores")
    assert spec.http is not None
    assert spec.http.url == "https://kubernetes.default.svc/apis/metrics.k8s.io/v1beta1/nodes"
    assert spec.enabled is False
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert http_source.credentials(spec, pod) == (str(account / "token"), str(account / "ca.crt"))
    assert http_source.credentials(spec, {}) == (None, None)
    mine = MetricSpec("x", "", http=HttpSpec("https://h/x", "count(items)", "/t", "/ca"))
    assert http_source.credentials(mine, pod) == ("/t", "/ca")
    off = MetricSpec("x", "", http=HttpSpec("https://h/x", "count(items)", "", ""))
    assert http_source.credentials(off, pod) == (None, None)
    memory = next(m for m in builtin_metrics() if m.type == "nodeMemoryBytes")
    assert memory.http is not None and memory.http.path == "sum(items[*].usage.memory)"


def test_https_with_a_ca_file(store_only: Databases, tmp_path: Path) -> None:
    import ssl

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Server(f"https://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = make_handler(state)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        config = tmp_path / "c.toml"
        config.write_text(
            http_metric("trusted", f"{state.url}/open", "count(items)", ca_file=str(cert))
            + http_metric("untrusted", f"{state.url}/open", "count(items)")
        )
        result = cli("--config", str(config), "collect", "--at", AT, "--only", "trusted",
                     "--only", "untrusted", "--json")  # fmt: skip
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert result.exit_code == 1
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics[0] == {"type": "trusted", "status": "stored", "count": 3}
    assert metrics[1]["status"] == "failed"
    assert "CERTIFICATE_VERIFY_FAILED" in metrics[1]["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'http = { url = "http://h/x", path = "count(items)" }\nsql = "SELECT 1 AS count"',
            "metric[0] has both sql and http; choose one",
        ),
        ('http = { path = "count(items)" }', "metric[0].http is missing 'url'"),
        ('http = { url = "ftp://h/x", path = "count(a)" }', "metric[0].http.url must start with"),
        ('http = { url = "http://h/x", path = "median(a)" }', "unknown function 'median'"),
        (
            'http = { url = "http://h/x", path = "a", timeout = "0s" }',
            "metric[0]: invalid http.timeout '0s': must be greater than zero",
        ),
        (
            'http = { url = "http://h/x", path = "a", verify = false }',
            "unknown key metric[0].http.verify",
        ),
        (
            'http = { url = "http://h/x", path = "a" }\ndimensions = ["x"]',
            "an http metric gives one number; it cannot have dimensions",
        ),
    ],
)
def test_http_config_errors(tmp_path: Path, body: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[[metric]]\ntype = "x"\n{body}\n')
    result = cli("--config", str(config), "metrics")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr.splitlines()[0]


def test_http_metrics_listed_and_shown_in_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(http_metric("cpu", "http://h/x", "sum(items[*].usage.cpu)", timeout="3s"))
    listing = cli("--config", str(config), "metrics", "--json")
    assert listing.exit_code == 0, listing.stderr
    kinds = {m["type"]: (m["kind"], m["enabled"]) for m in json.loads(listing.stdout)}
    assert kinds["cpu"] == ("custom", True)
    assert kinds["nodeCpuCores"] == ("builtin", False)
    assert kinds["nodeMemoryBytes"] == ("builtin", False)
    shown = cli("--config", str(config), "config", "show")
    assert shown.exit_code == 0, shown.stderr
    assert 'path = "sum(items[*].usage.cpu)"' in shown.stdout
    assert 'timeout = "3s"' in shown.stdout


def test_a_garbled_answer_fails_its_metric_alone(
    server: Server, store_only: Databases, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[collect]\nmetrics = []\n"
        + http_metric("garbled", f"{server.url}/garbled", "count(items)")
        + '[[metric]]\ntype = "fine"\nsql = "SELECT 7 AS count"\n'
    )
    result = cli("--config", str(config), "collect", "--json")
    assert result.exit_code == 1, result.stderr
    metrics = {m["type"]: m for m in json.loads(result.stdout)["metrics"]}
    assert metrics["garbled"]["status"] == "failed"
    assert (
        metrics["garbled"]["error"] == f"bad HTTP answer from {server.url}/garbled: BadStatusLine"
    )
    assert "Traceback" not in result.stderr
    assert stored_counts(store_only) == {"fine": Decimal(7)}


def test_urls_in_errors_carry_no_credentials(store_only: Databases, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[collect]\nmetrics = []\n"
        + http_metric(
            "secretive", "http://bob:hunter2@127.0.0.1:1/nodes?token=qs-secret", "count(items)"
        )
    )
    result = cli("--config", str(config), "collect", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["metrics"][0]["error"]
    assert error.startswith("cannot fetch http://127.0.0.1:1/nodes: ")
    for secret in ("hunter2", "qs-secret", "bob"):
        assert secret not in result.stdout + result.stderr
