"""Several platform databases: [[source]] tables, tagged rows, one source down, --source."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests import location_data, platform_data
from tests.conftest import Databases, cli, with_db

AT = "2026-11-29T10:10:00Z"
SLOT = "2026-11-29T10:00:00Z"
# The second platform (location_data) counted by hand: instances i1, i2, i3, i5, i7 run.
US_EXPECTED = {"activeInstances": 5, "activeLocations": 3, "activeChannels": 1}


@pytest.fixture
def second(dbs: Databases, platform_template: str) -> Iterator[str]:
    """Another platform database on the same server, holding the per-location dataset."""
    name = dbs.source_name + "_us"
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(platform_template)
            )
        )
    dsn = with_db(dbs.admin, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        location_data.load(conn)
    yield dsn
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def two(dbs: Databases, second: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A config with two sources: eu (dsn in the file) and us (dsn from the environment)."""
    with dbs.source_conn() as conn:
        platform_data.load(conn)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    monkeypatch.setenv("US_DSN", second)
    path = tmp_path / "sources.toml"
    path.write_text(
        "[collect]\nretries = 0\n\n"
        f'[[source]]\nname = "eu"\ndsn = "{dbs.source}"\n\n'
        '[[source]]\nname = "us"\ndsn_env = "US_DSN"\n'
    )
    return path


def rows(dbs: Databases, table: str = "analytics") -> list[tuple[str, int, dict[str, str]]]:
    with dbs.store_conn() as conn:
        got = conn.execute(
            sql.SQL("SELECT type, count::int, metadata FROM {} ORDER BY 1, 3::text").format(
                sql.Identifier(table)
            )
        ).fetchall()
    return [(str(t), int(str(c)), m) for t, c, m in got]  # type: ignore[misc]


def per_source(dbs: Databases) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for type_, count, metadata in rows(dbs):
        out.setdefault(metadata["source"], {})[type_] = count
    return out


def test_every_metric_runs_on_every_source_and_is_tagged(
    two: Path, dbs: Databases, second: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli("--config", str(two), "collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    metrics = report["metrics"]
    assert [(m["type"], m["source"]) for m in metrics[:4]] == [
        ("activeInstances", "eu"),
        ("activeInstances", "us"),
        ("activeLocations", "eu"),
        ("activeLocations", "us"),
    ]
    assert {m["status"] for m in metrics} == {"stored"}
    assert len(metrics) == 18
    assert {json.dumps(m) for _, _, m in rows(dbs)} == {'{"source": "eu"}', '{"source": "us"}'}
    stored = per_source(dbs)
    assert stored["eu"] == platform_data.EXPECTED
    assert {k: stored["us"][k] for k in US_EXPECTED} == US_EXPECTED
    # The second run finds every (metric, source) pair already stored.
    again = cli("--config", str(two), "collect", "--at", AT, "--json")
    assert again.exit_code == 0, again.stderr
    assert {m["status"] for m in json.loads(again.stdout)["metrics"]} == {"present"}
    assert 'note="slot already collected"' in again.stderr
    # Each tagged row equals what the single-source setup stores for that database.
    single = tmp_path / "single.toml"
    single.write_text('[store]\ntable = "single"\n')
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", second)
    alone = cli("--config", str(single), "collect", "--at", AT)
    assert alone.exit_code == 0, alone.stderr
    assert {t: c for t, c, m in rows(dbs, "single")} == stored["us"]
    assert {json.dumps(m) for _, _, m in rows(dbs, "single")} == {"{}"}


def test_a_source_that_is_down_fails_alone(two: Path, dbs: Databases) -> None:
    gone = with_db(dbs.admin, "no_such_platform_db")
    two.write_text(two.read_text() + f'\n[[source]]\nname = "gone"\ndsn = "{gone}"\n')
    result = cli("--config", str(two), "collect", "--at", AT, "--json")
    assert result.exit_code == 1
    metrics = json.loads(result.stdout)["metrics"]
    failed = [m for m in metrics if m["status"] == "failed"]
    assert [m["source"] for m in failed] == ["gone"] * 9
    assert all(
        m["error"].startswith("cannot connect to the source database (")
        and "/no_such_platform_db): " in m["error"]
        for m in failed
    )
    assert 'database "no_such_platform_db" does not exist' in failed[0]["error"]
    assert {m["status"] for m in metrics if m["source"] != "gone"} == {"stored"}
    summary = result.stderr.splitlines()[-1]
    assert summary.startswith(f"collect slot={SLOT} stored=18 present=0 failed=9 duration=")
    stored = per_source(dbs)
    assert sorted(stored) == ["eu", "us"]
    assert stored["eu"] == platform_data.EXPECTED
    # Text mode names the source of every failed metric.
    text = cli("--config", str(two), "collect", "--at", "2026-11-29T10:40:00Z")
    assert text.exit_code == 1
    assert text.stdout == ""
    failed_lines = [line for line in text.stderr.splitlines() if "status=failed" in line]
    assert len(failed_lines) == 9
    assert all(" source=gone " in line for line in failed_lines)


def test_source_option_limits_a_run(two: Path, dbs: Databases) -> None:
    only_us = cli("--config", str(two), "collect", "--at", AT, "--source", "us", "--json")
    assert only_us.exit_code == 0, only_us.stderr
    assert {m["source"] for m in json.loads(only_us.stdout)["metrics"]} == {"us"}
    assert sorted(per_source(dbs)) == ["us"]
    everything = cli("--config", str(two), "collect", "--at", AT, "--json")
    assert everything.exit_code == 0, everything.stderr
    statuses = {(m["source"], m["status"]) for m in json.loads(everything.stdout)["metrics"]}
    assert statuses == {("us", "present"), ("eu", "stored")}
    unknown = cli("--config", str(two), "collect", "--at", AT, "--source", "uss")
    assert unknown.exit_code == 2
    assert unknown.stdout == ""
    assert unknown.stderr == "error: unknown source 'uss'\nhint: did you mean 'us'?\n"


def test_metric_sources_and_dimensions_per_source(two: Path, dbs: Databases) -> None:
    two.write_text(
        two.read_text()
        + '\n[[metric]]\ntype = "usOnly"\nsources = ["us"]\nsql = "SELECT 7 AS count"\n'
    )
    text = two.read_text().replace(
        "[collect]\nretries = 0\n",
        '[collect]\nretries = 0\nmetrics = ["instanceUsersByLocation"]\n',
    )
    two.write_text(text)
    result = cli("--config", str(two), "collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    got = [(m["type"], m["source"], m.get("series")) for m in json.loads(result.stdout)["metrics"]]
    assert got == [
        ("instanceUsersByLocation", "eu", 0),
        ("instanceUsersByLocation", "us", 3),
        ("usOnly", "us", None),
    ]
    assert rows(dbs) == [
        ("instanceUsersByLocation", 1, {"source": "us", "location": "Arena"}),
        ("instanceUsersByLocation", 1, {"source": "us", "location": "Garden"}),
        ("instanceUsersByLocation", 2, {"source": "us", "location": "Lobby"}),
        ("usOnly", 7, {"source": "us"}),
    ]
    shown = cli("--config", str(two), "export", "--ndjson", "--where", "source=us",
                "--where", "location=Lobby")  # fmt: skip
    assert shown.exit_code == 0, shown.stderr
    assert [json.loads(line)["count"] for line in shown.stdout.splitlines()] == [2]
    bad = two.read_text().replace('sources = ["us"]', 'sources = ["asia"]')
    two.write_text(bad)
    refused = cli("--config", str(two), "metrics")
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"error: {two}: metric[0].sources names unknown source 'asia'\nhint: sources: eu, us\n"
    )


def test_single_and_several_sources_do_not_mix(tmp_path: Path, dbs: Databases) -> None:
    path = tmp_path / "mixed.toml"
    path.write_text(f'[source]\ndsn = "{dbs.source}"\n\n[[source]]\nname = "eu"\ndsn = "x"\n')
    result = cli("--config", str(path), "collect")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == (
        f"error: {path}: both [source] and [[source]] are declared; use one of them"
    )


def test_source_configuration_errors(
    two: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dbs: Databases
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    env = cli("--config", str(two), "collect")
    assert env.exit_code == 2
    assert env.stderr.splitlines()[0] == (
        f"error: {two}: $ANALYTICS_SOURCE_DSN is set but the file has [[source]] tables"
    )
    monkeypatch.delenv("ANALYTICS_SOURCE_DSN")
    monkeypatch.delenv("US_DSN")
    missing = cli("--config", str(two), "collect")
    assert missing.exit_code == 2
    assert missing.stderr.splitlines()[0] == (
        f"error: {two}: source 'us': environment variable US_DSN is not set"
    )
    plain = cli("collect", "--source", "eu")
    assert plain.exit_code == 2
    assert (
        plain.stderr.splitlines()[0] == "error: --source needs [[source]] tables in the config file"
    )
    for body, message in [
        ('[[source]]\nname = "a"\n', "source[0] needs exactly one of dsn or dsn_env"),
        ('[[source]]\ndsn = "x"\n', "source[0] is missing 'name'"),
        ('[[source]]\nname = "a b"\ndsn = "x"\n', "source[0].name 'a b' is not a valid source name"),
        ('[[source]]\nname = "a"\ndsn = "x"\n[[source]]\nname = "a"\ndsn = "y"\n',
         "source 'a' is defined twice"),
        ('[[source]]\nname = "a"\ndsn = "x"\nport = 5\n', "unknown key source[0].port"),
    ]:  # fmt: skip
        path = tmp_path / "bad.toml"
        path.write_text(body)
        result = cli("--config", str(path), "metrics")
        assert result.exit_code == 2, body
        assert result.stderr.splitlines()[0] == f"error: {path}: {message}"


def test_config_show_keeps_dsn_env_and_redacts_passwords(two: Path) -> None:
    two.write_text(
        two.read_text() + '\n[[source]]\nname = "pw"\ndsn = "postgresql://u:s3cret@db/x"\n'
    )
    result = cli("--config", str(two), "config", "show")
    assert result.exit_code == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    # tomli-w writes [[source]] tables or an inline array depending on line length.
    sources = tomllib.loads(result.stdout)["source"]
    assert sources[1:] == [
        {"name": "us", "dsn_env": "US_DSN"},
        {"name": "pw", "dsn": "postgresql://u:***@db/x"},
    ]
    assert "# sources: eu, us, pw ([[source]] tables)" in result.stdout


def test_config_check_reads_every_source(two: Path, dbs: Databases) -> None:
    result = cli("--config", str(two), "config", "check")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    user = conninfo_to_dict(dbs.admin)["user"]
    assert lines[1].startswith(f"source: eu ({user}@") and f", us ({user}@" in lines[1]
    rows = [line.split()[:4] for line in lines[6:-2]]
    assert rows[:2] == [
        ["ok", "activeInstances", '{"source":', '"eu"}'],
        ["ok", "activeLocations", '{"source":', '"eu"}'],
    ]
    assert len(rows) == 18
    assert lines[-1] == "18 metrics ok, 0 failed; nothing was written"
    with dbs.store_conn() as conn:
        assert conn.execute("SELECT to_regclass('analytics')").fetchone() == (None,)
