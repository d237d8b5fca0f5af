"""The textfile and the shipped rules in front of the real thing: Debian's promtool, a private
node_exporter (textfile collector only), and once, end to end, Prometheus and Alertmanager."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics_cli.monitor import textfile_text
from tests.conftest import Databases, cli
from tests.prometheus_servers import Server, binary, http_get, node_exporter

ROOT = Path(__file__).resolve().parent.parent
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
