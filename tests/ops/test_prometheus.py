"""The textfile and the shipped rules in front of the real thing: Debian's promtool, a private
node_exporter (textfile collector only), and once, end to end, Prometheus and Alertmanager."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics_cli.monitor import textfile_text
from tests.conftest import Databases, cli
from tests.prometheus_servers import Server, binary, http_get, node_exporter

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "examples" / "prometheus"
RULES = RULES_DIR / "analytics-cli.rules.yml"
RULE_TESTS = RULES_DIR / "analytics-cli.rules.test.yml"

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


# ---------------------------------------------------------------------------- promtool


def test_the_shipped_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "analytics_cli_last_success_timestamp_seconds > 3600",
            "analytics_cli_last_success_timestamp_seconds > 7200",
        ),
        ("analytics_cli_last_run_exit_code >= 2", "analytics_cli_last_run_exit_code >= 4"),
        (
            "analytics_cli_spool_files > 0\n        for: 1h",
            "analytics_cli_spool_files > 0\n        for: 2h",
        ),
        ("analytics_cli_metric_up == 0", "analytics_cli_metric_up < 0"),
    ],
)
def test_the_rule_unit_tests_catch_a_changed_rule(tmp_path: Path, old: str, new: str) -> None:
    text = RULES.read_text()
    assert old in text
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode == 1, tested.stdout
    assert "FAILED" in tested.stdout + tested.stderr


def test_the_rules_use_only_series_the_textfile_has() -> None:
    written = textfile_text(
        values={"a": Decimal(1)},
        failed=["b"],
        exit_code=1,
        finished=datetime(2026, 1, 1, tzinfo=UTC),
        duration=0.5,
        last_success=1.0,
        spooled=0,
    )
    names = {f.name for f in text_string_to_metric_families(written)}
    used = set(re.findall(r"\banalytics_cli_[a-z_]+", RULES.read_text()))
    assert used and used <= names, used - names


# ---------------------------------------------------------------------------- node_exporter


def scrape(server: Server) -> Samples:
    """node_exporter's /metrics, parsed by the Prometheus client's own parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(http_get(server.url + "/metrics")):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """The tool pointed at the test databases."""
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def test_node_exporter_serves_the_textfile_of_good_and_failed_runs(
    env: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    prom = folder / "analytics-cli.prom"
    conf = tmp_path / "c.toml"
    conf.write_text(
        '[collect]\nmetrics = []\nretries = 0\nconnect_timeout = "1s"\n'
        # Every character a type may hold besides letters and digits.
        '[[metric]]\ntype = "odd.type:name-1_x"\nsql = "SELECT 42 AS count"\n'
        '[[metric]]\ntype = "fraction"\nsql = "SELECT 0.25 AS count"\n'
        '[[metric]]\ntype = "broken"\nsql = "SELECT 1/0 AS count"\n'
    )
    with node_exporter(folder) as server:
        run = cli("-c", str(conf), "collect", "--textfile", str(prom))
        assert run.exit_code == 1, run.stderr
        got = scrape(server)
        assert got["node_textfile_scrape_error"] == {(): 0.0}
        assert got["analytics_metric"] == {
            (("type", "fraction"),): 0.25,
            (("type", "odd.type:name-1_x"),): 42.0,
        }
        assert got["analytics_cli_metric_up"] == {
            (("type", "broken"),): 0.0,
            (("type", "fraction"),): 1.0,
            (("type", "odd.type:name-1_x"),): 1.0,
        }
        assert got["analytics_cli_last_run_exit_code"] == {(): 1.0}
        assert got["analytics_cli_spool_files"] == {(): 0.0}
        # node_exporter read this run's file.
        [(labels, mtime)] = got["node_textfile_mtime_seconds"].items()
        assert dict(labels)["file"] in (str(prom), prom.name)
        assert mtime == pytest.approx(prom.stat().st_mtime, abs=1)

        # The store goes down: exit 3, the cycle spooled; the file still parses.
        monkeypatch.setenv("ANALYTICS_STORE_DSN", "host=127.0.0.1 port=1 dbname=x user=nobody")
        down = cli("-c", str(conf), "collect", "--textfile", str(prom))
        assert down.exit_code == 3, down.stderr
        got = scrape(server)
        assert got["node_textfile_scrape_error"] == {(): 0.0}
        assert got["analytics_cli_last_run_exit_code"] == {(): 3.0}
        assert got["analytics_cli_spool_files"] == {(): 1.0}
        assert "analytics_metric" not in got

        # Hostile label values (quotes, backslashes, newlines, braces, non-ASCII) as the
        # writer escapes them: node_exporter reads every one back unchanged.
        hostile = ['we"ird', "back\\slash", "new\nline", "br{ace}=,x", "ünï €", "trail\\"]
        prom.write_text(
            textfile_text(
                values={name: Decimal(i) for i, name in enumerate(hostile)},
                failed=[],
                exit_code=0,
                finished=datetime(2026, 1, 1, tzinfo=UTC),
                duration=None,
                last_success=None,
            )
        )
        got = scrape(server)
        assert got["node_textfile_scrape_error"] == {(): 0.0}
        assert got["analytics_metric"] == {
            (("type", name),): float(i) for i, name in enumerate(hostile)
        }


# ---------------------------------------------------------------------------- end to end


def test_end_to_end_prometheus_and_the_tool_alert_into_one_alertmanager(
    env: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """node_exporter serves the textfile, Prometheus scrapes it and evaluates the shipped
    rules, Alertmanager receives its alert and the tool's own; the anomaly resolves."""
    from analytics_cli.timeutil import utcnow
    from tests.helpers import wait_for
    from tests.ops.test_anomalies import generate
    from tests.ops.test_notify import heal
    from tests.prometheus_servers import alertmanager, prometheus

    folder = tmp_path / "textfile"
    folder.mkdir()
    prom = folder / "analytics-cli.prom"
    # An earlier run's file: its last success two hours ago.
    earlier = utcnow().timestamp() - 7200
    prom.write_text(
        textfile_text(
            values={},
            failed=[],
            exit_code=0,
            finished=datetime.fromtimestamp(earlier, UTC),
            duration=1.0,
            last_success=earlier,
        )
    )
    conf = tmp_path / "c.toml"
    conf.write_text(
        '[collect]\nmetrics = []\nretries = 0\nconnect_timeout = "1s"\n'
        '[[metric]]\ntype = "fine"\nsql = "SELECT 1 AS count"\n'
        '[notify]\nretries = 0\nlabels = { env = "e2e" }\n'
    )
    assert cli("db", "init").exit_code == 0
    newest = generate(env, weeks=4, last={"busy": 20})
    with (
        alertmanager(tmp_path / "am") as am,
        node_exporter(folder) as ne,
        prometheus(
            lambda _port: (
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                f"rule_files: [{RULES.name}]\n"
                "alerting:\n  alertmanagers:\n"
                f"    - static_configs: [{{targets: ['127.0.0.1:{am.port}']}}]\n"
                "scrape_configs:\n  - job_name: node\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{ne.port}']}}]\n"
            ),
            [RULES],
        ) as prometheus_server,
    ):
        # The store is down: the run fails (exit 3) and the last success stays two hours old.
        monkeypatch.setenv("ANALYTICS_STORE_DSN", "host=127.0.0.1 port=1 dbname=x user=nobody")
        down = cli("-c", str(conf), "collect", "--textfile", str(prom), "--alertmanager", am.url)
        assert down.exit_code == 3, down.stderr
        monkeypatch.setenv("ANALYTICS_STORE_DSN", env.store)
        anomaly = cli("-c", str(conf), "status", "--anomalies", "--alertmanager", am.url)
        assert anomaly.exit_code == 1, anomaly.stderr

        def alerts() -> dict[str, dict[str, Any]]:
            listed = am.get_json("/api/v2/alerts")
            return {a["labels"]["alertname"]: a for a in listed}

        def all_there() -> dict[str, dict[str, Any]] | None:
            got = alerts()
            wanted = {"AnalyticsCollectorStale", "AnalyticsLastRunFailed", "AnalyticsAnomaly"}
            return got if wanted <= set(got) else None

        got = wait_for("Prometheus's and the tool's alerts in Alertmanager", all_there)
        ne_target = f"127.0.0.1:{ne.port}"
        assert got["AnalyticsCollectorStale"]["labels"] == {
            "alertname": "AnalyticsCollectorStale",
            "severity": "critical",
            "instance": ne_target,
            "job": "node",
        }
        assert got["AnalyticsCollectorStale"]["annotations"]["summary"].startswith(
            f"analytics-cli on {ne_target} has not collected successfully for 2h"
        )
        assert got["AnalyticsLastRunFailed"]["annotations"]["summary"] == (
            f"analytics-cli on {ne_target}: the last run exited 3"
        )
        assert got["AnalyticsAnomaly"]["labels"] == {
            "alertname": "AnalyticsAnomaly",
            "type": "busy",
            "kind": "drop",
            "severity": "warning",
            "env": "e2e",
        }
        # The tool's own alert for the failed run, beside Prometheus's.
        assert got["AnalyticsStoreDown"]["labels"]["kind"] == "spooled"
        # amtool, the operator's view, lists the same.
        listed = subprocess.run(
            [binary("amtool"), f"--alertmanager.url={am.url}", "alert", "query", "-o", "simple"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert {"AnalyticsCollectorStale", "AnalyticsAnomaly"} <= set(listed.stdout.split())
        # The value heals: the next status resolves the anomaly in Alertmanager.
        heal(env, "busy", newest)
        healed = cli("-c", str(conf), "status", "--anomalies", "--alertmanager", am.url)
        assert healed.exit_code == 0, healed.stderr
        wait_for(
            "the anomaly to resolve",
            lambda: True if "AnalyticsAnomaly" not in alerts() else None,
        )
        # Prometheus's alert stays: the collector has still not succeeded.
        assert "AnalyticsCollectorStale" in alerts()
        # A good run: the textfile's last success is now, the rule resolves (Prometheus
        # sends the resolution), and so does the tool's own store alert.
        good = cli("-c", str(conf), "collect", "--textfile", str(prom), "--alertmanager", am.url)
        assert good.exit_code == 0, good.stderr
        wait_for(
            "the collector alerts to resolve",
            lambda: (
                True
                if not {"AnalyticsCollectorStale", "AnalyticsLastRunFailed", "AnalyticsStoreDown"}
                & set(alerts())
                else None
            ),
        )
        assert prometheus_server.get_json("/api/v1/rules")["status"] == "success"


def test_the_documented_route_sends_each_alert_where_it_says(tmp_path: Path) -> None:
    """The manual's Alertmanager route, checked by amtool, routes the tool's alerts."""
    section = (ROOT / "docs" / "alerting.md").read_text()
    route = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert route is not None
    receivers = "receivers:\n  - name: team-mail\n  - name: pager\n"
    path = tmp_path / "alertmanager.yml"
    path.write_text(route.group(1) + receivers)
    amtool = binary("amtool")
    checked = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    def routed(*labels: str) -> str:
        done = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={path}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert routed("alertname=AnalyticsStoreDown", "severity=critical", "kind=spooled") == "pager"
    assert routed("alertname=AnalyticsCollectorStale", "severity=critical") == "pager"
    assert routed("alertname=AnalyticsAnomaly", "severity=warning", "kind=drop") == "team-mail"
    assert routed("alertname=AnalyticsMetricStale", "severity=warning") == "team-mail"


# ---------------------------------------------------------------------------- the helpers


def test_waiting_through_error_answers_leaves_no_connection_open() -> None:
    """A server that answers 503 while it starts (Prometheus's /-/ready): the probes' error
    answers are closed, not kept alive for a garbage collection in some later test."""
    import gc
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.helpers import wait_for

    answered: list[int] = []

    class Starting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answered.append(503 if len(answered) < 3 else 200)
            body = b"Service Unavailable" * 100
            self.send_response(answered[-1])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    unraisable: list[str] = []
    hook = sys.unraisablehook
    with ThreadingHTTPServer(("127.0.0.1", 0), Starting) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/-/ready"
            assert wait_for("the server", lambda: http_get(url)) == "Service Unavailable" * 100
            sys.unraisablehook = lambda u: unraisable.append(
                f"{u.exc_type.__name__}: {u.exc_value}"
            )
            gc.collect()
        finally:
            sys.unraisablehook = hook
            server.shutdown()
            thread.join()
    assert answered == [503, 503, 503, 200]
    assert unraisable == []
