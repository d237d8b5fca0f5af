"""The files in examples/ work against a real iR Engine database (the ConfigMaps' TOML:
tests/ops/test_deployment.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics_cli.config.load import load
from analytics_cli.timeutil import utcnow
from tests.conftest import Databases, cli
from tests.mariadb_server import MySQLPlatform
from tests.ops.test_ops import BUILTINS, _uid, env, seed_platform  # noqa: F401  (env is a fixture)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# feathers*.toml read an HTTP API: tests/engines/test_mysql_feathers.py runs them against a local one.
# *.mysql.toml are written for the iR Engine's MySQL/MariaDB database, the others for
# PostgreSQL: each is checked against its own engine.
TOML_EXAMPLES = sorted(
    p
    for p in EXAMPLES.glob("*.toml")
    if not p.name.startswith("feathers") and not p.name.endswith(".mysql.toml")
)
MYSQL_EXAMPLES = sorted(EXAMPLES.glob("*.mysql.toml"))
# What the custom metric examples count in the platform of seed_platform (hand-counted there).
CUSTOM_VALUES = {
    "registeredUsers": "3",
    "guestUsersNow": "1",
    "lobbyUsers": "2",
    # The seeded attendance rows were created two hours ago.
    "joinsPerInterval": "0",
    "weeklyNewScenes": "0",
    "usersPerInstance": "1.5",
    "instanceFillPercent": "15",
    "busiestChannelMessages": "0",
}
DASHBOARD = EXAMPLES / "grafana-dashboard.json"


def check_values(path: Path) -> dict[str, str]:
    """Run ``config check`` on a file; every metric must succeed. Returns type -> value."""
    result = cli("-c", str(path), "config", "check")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    values = {}
    for line in lines[6:-2]:
        status, type_, count, _when = line.split()
        assert status == "ok", line
        values[type_] = count
    assert lines[-1] == f"{len(values)} metrics ok, 0 failed; nothing was written"
    return values


def test_examples_exist() -> None:
    assert [p.name for p in TOML_EXAMPLES] == ["analytics-cli.toml", "custom-metrics.toml"]
    assert [p.name for p in MYSQL_EXAMPLES] == ["custom-metrics.mysql.toml"]
    assert (EXAMPLES / "feathers.toml").is_file()
    assert DASHBOARD.is_file()


@pytest.mark.parametrize("path", TOML_EXAMPLES, ids=lambda p: p.name)
def test_example_toml_passes_config_check(path: Path, env: Databases) -> None:  # noqa: F811
    with env.source_conn() as conn:
        seed_platform(conn)
    settings = load(path, env={})
    values = check_values(path)
    assert list(values) == [*BUILTINS, *(m.type for m in settings.custom)]
    assert values["activeInstances"] == "2"


def test_custom_metric_examples_count_what_they_say(env: Databases) -> None:  # noqa: F811
    with env.source_conn() as conn:
        seed_platform(conn)
    values = check_values(EXAMPLES / "custom-metrics.toml")
    custom = {k: v for k, v in values.items() if k not in BUILTINS}
    assert custom == CUSTOM_VALUES


def seed_platform_mysql(platform: MySQLPlatform) -> None:
    """seed_platform's rows in a MariaDB database with the iR Engine schema."""
    then = (utcnow() - timedelta(hours=2)).astimezone(UTC).replace(tzinfo=None)
    with platform.connect() as conn, conn.cursor() as cur:
        for name, guest in (("u1", 0), ("u2", 0), ("u3", 1), ("u4", 0)):
            cur.execute(
                "INSERT INTO `user` (`id`, `name`, `isGuest`, `createdAt`, `updatedAt`) "
                "VALUES (%s, %s, %s, %s, %s)",
                (str(_uid(name)), name, guest, then, then),
            )
        for name, lobby in (("lobby", 1), ("plaza", 0)):
            cur.execute(
                "INSERT INTO `location` (`id`, `name`, `slugifiedName`, `isLobby`, "
                "`maxUsersPerInstance`, `createdAt`, `updatedAt`) "
                "VALUES (%s, %s, %s, %s, 10, %s, %s)",
                (str(_uid(name)), name, name, lobby, then, then),
            )
        for name, location, ended in (("i1", "lobby", 0), ("i2", "plaza", 0), ("i3", "plaza", 1)):
            cur.execute(
                "INSERT INTO `instance` (`id`, `roomCode`, `ended`, `locationId`, `createdAt`, "
                "`updatedAt`) VALUES (%s, %s, %s, %s, %s, %s)",
                (str(_uid(name)), name, ended, str(_uid(location)), then, then),
            )
        for name, user, instance, ended in (
            ("a1", "u1", "i1", 0),
            ("a2", "u2", "i1", 0),
            ("a3", "u3", "i2", 0),
            ("a4", "u4", "i3", 1),
        ):
            cur.execute(
                "INSERT INTO `instance-attendance` (`id`, `isChannel`, `ended`, `userId`, "
                "`instanceId`, `createdAt`, `updatedAt`) VALUES (%s, 0, %s, %s, %s, %s, %s)",
                (str(_uid(name)), ended, str(_uid(user)), str(_uid(instance)), then, then),
            )


def test_mysql_custom_metric_examples_count_what_they_say(
    mysql_platform: MySQLPlatform, dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MySQL texts count what the PostgreSQL ones count, on the same rows in MariaDB
    (the history on PostgreSQL, as the README's MySQL section sets it up)."""
    seed_platform_mysql(mysql_platform)
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", mysql_platform.url)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    values = check_values(EXAMPLES / "custom-metrics.mysql.toml")
    assert list(values)[: len(BUILTINS)] == BUILTINS
    assert values["activeInstances"] == "2"
    custom = {k: v for k, v in values.items() if k not in BUILTINS}
    assert custom == CUSTOM_VALUES


def test_mysql_examples_are_the_postgresql_ones_in_their_dialect() -> None:
    mysql = load(EXAMPLES / "custom-metrics.mysql.toml", env={}).custom
    postgresql = load(EXAMPLES / "custom-metrics.toml", env={}).custom
    assert [(m.type, m.description) for m in mysql] == [(m.type, m.description) for m in postgresql]
    for metric in mysql:
        assert '"' not in metric.sql, metric.type  # backticks, not PostgreSQL's quotes
        assert "%(interval)s" not in metric.sql, metric.type


def test_example_custom_metrics_use_the_documented_parameters() -> None:
    settings = load(EXAMPLES / "custom-metrics.toml", env={})
    texts = [m.sql for m in settings.custom]
    assert any("%(slot)s" in t for t in texts)
    assert any("%(interval)s" in t for t in texts)
    for text in texts:
        assert set(re.findall(r"%\((\w+)\)s", text)) <= {"slot", "interval"}
        assert all(m.description for m in settings.custom)


# ---------------------------------------------------------------------------- Grafana


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def queries() -> list[tuple[str, str]]:
    """(where, SQL) for every panel target and query variable of the dashboard."""
    doc = dashboard()
    found = []
    for panel in doc["panels"]:
        for target in panel["targets"]:
            found.append((f"panel {panel['title']!r} {target['refId']}", target["rawSql"]))
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["query"]))
    return found


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def expand_macros(text: str, *, start: datetime, end: datetime, types: list[str]) -> str:
    """Replace Grafana's PostgreSQL macros and variables the way Grafana does."""
    start_sql, end_sql = f"'{start.isoformat()}'", f"'{end.isoformat()}'"

    def group(match: re.Match[str]) -> str:
        column, amount, unit = match.group(2), int(match.group(3)), match.group(4)
        seconds = amount * _UNITS[unit]
        alias = ' AS "time"' if match.group(1) == "Alias" else ""
        return f"floor(extract(epoch from {column})/{seconds})*{seconds}{alias}"

    text = re.sub(r"\$__timeGroup(Alias)?\(([^,]+),\s*'?(\d+)([smhd])'?\)", group, text)
    text = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} BETWEEN {start_sql} AND {end_sql}",
        text,
    )
    text = text.replace("$__timeFrom()", start_sql).replace("$__timeTo()", end_sql)
    quoted = ",".join("'" + t.replace("'", "''") + "'" for t in types)
    text = text.replace("${type}", quoted).replace("$type", quoted)
    assert "$" not in text, f"unexpanded macro in: {text}"
    return text


def test_expand_macros() -> None:
    start = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    end = datetime.fromisoformat("2026-01-02T00:00:00+00:00")
    assert expand_macros(
        'SELECT $__timeGroupAlias("timestamp", 1h) WHERE $__timeFilter("timestamp") '
        "AND type IN ($type)",
        start=start,
        end=end,
        types=["a", "b"],
    ) == (
        'SELECT floor(extract(epoch from "timestamp")/3600)*3600 AS "time" WHERE '
        "\"timestamp\" BETWEEN '2026-01-01T00:00:00+00:00' AND '2026-01-02T00:00:00+00:00' "
        "AND type IN ('a','b')"
    )
    with pytest.raises(AssertionError):
        expand_macros("SELECT $__unixEpochFilter(x)", start=start, end=end, types=[])


def test_dashboard_uses_a_postgresql_data_source() -> None:
    doc = dashboard()
    (source,) = [v for v in doc["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "grafana-postgresql-datasource"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        assert panel["datasource"] == {
            "type": "grafana-postgresql-datasource",
            "uid": "${datasource}",
        }
        for target in panel["targets"]:
            assert target["rawQuery"] is True
            assert target["format"] in ("time_series", "table")
            if target["format"] == "time_series":
                assert '"time"' in target["rawSql"]
    assert len(queries()) >= 7


def test_dashboard_sql_runs_on_a_real_store(env: Databases) -> None:  # noqa: F811
    with env.source_conn() as conn:
        seed_platform(conn)
    result = cli("-c", str(EXAMPLES / "custom-metrics.toml"), "collect")
    assert result.exit_code == 0, result.stderr
    now = utcnow()
    with env.store_conn() as conn:
        types = [str(r[0]) for r in conn.execute("SELECT DISTINCT type FROM analytics ORDER BY 1")]
        assert len(types) == len(BUILTINS) + 8
        rows_by_query = {}
        for where, sql in queries():
            text = expand_macros(
                sql, start=now - timedelta(days=7), end=now + timedelta(minutes=1), types=types
            )
            rows_by_query[where] = conn.execute(text.encode()).fetchall()
    for where, rows in rows_by_query.items():
        assert rows, f"{where} returned no rows"
    assert sorted(str(r[0]) for r in rows_by_query["variable type"]) == types
    now_rows = {r[0]: r[1] for r in rows_by_query["panel 'Now' A"]}
    assert now_rows["instanceUsers"] == 3
    assert now_rows["usersPerInstance"] == pytest.approx(1.5)
    health = rows_by_query["panel 'Collection health' A"]
    assert len(health) == len(types)
    assert {r[3] for r in health} == {1}
    assert {r[4] for r in health} == {336}
