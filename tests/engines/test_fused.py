"""One query, several metrics: [[query]] tables, and the built-in pack's fused queries."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analytics_cli.metrics import builtin_metrics, groups
from tests import platform_data
from tests.conftest import Databases, cli
from tests.helpers import write_config
from tests.mariadb_server import MySQLPlatform
from tests.metric_definitions import POSTGRESQL

SLOT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
AT = "2026-11-29T10:00:00Z"
INTERVAL = timedelta(minutes=30)
FUSED = [m for m in builtin_metrics() if m.query is not None]


def test_the_pack_reads_instance_and_attendance_once_each() -> None:
    assert [[m.type for m in g] for g in groups(FUSED)] == [
        ["activeInstances", "activeLocations", "activeScenes", "activeChannels"],
        ["instanceUsers", "channelUsers", "dailyUsers"],
        ["weeklyUsers", "monthlyUsers"],
    ]


def _fused_values(conn: psycopg.Connection[Any]) -> dict[str, Decimal]:
    params = {"slot": SLOT, "interval": INTERVAL}
    out: dict[str, Decimal] = {}
    for group in groups(FUSED):
        cur = conn.execute(group[0].sql, params)
        row = cur.fetchone()
        assert row is not None and cur.fetchone() is None
        names = [d.name for d in cur.description or []]
        for spec in group:
            out[spec.type] = Decimal(row[names.index(spec.type)])
    return out


def _single_values(conn: psycopg.Connection[Any], types: list[str]) -> dict[str, Decimal]:
    params = {"slot": SLOT, "interval": INTERVAL}
    out = {}
    for name in types:
        row = conn.execute(POSTGRESQL[name], params).fetchone()
        assert row is not None
        out[name] = Decimal(row[0])
    return out


def test_fused_values_on_the_known_platform(dbs: Databases) -> None:
    with dbs.source_conn() as conn:
        platform_data.load(conn)
        fused = _fused_values(conn)
    expected = {k: Decimal(v) for k, v in platform_data.EXPECTED.items() if k in fused}
    assert {k: v for k, v in fused.items() if k in platform_data.EXPECTED} == expected
    # u1 (a1, a2), u2 (a3, 24 h before), u3 (a5, a6), u5 (a8), u6 (a9, 30 h before); a7 is
    # after the slot, a4 has no user.
    assert (fused["weeklyUsers"], fused["monthlyUsers"]) == (5, 5)


# Times around the edges of the daily window (slot - 24 h, slot], in seconds from the slot.
DAY = 86400
EDGES = [-DAY - 1, -DAY, -DAY + 1, -3600, -1, 0, 1, 3600]
EDGES += [-7 * DAY - 1, -7 * DAY, -7 * DAY + 1, -30 * DAY - 1, -30 * DAY, -30 * DAY + 1]
TRISTATE = st.sampled_from([True, False, None])


@st.composite
def platforms(draw: st.DrawFn) -> dict[str, Any]:
    """A small random platform: NULLs everywhere they are allowed, repeats, window edges."""
    scenes = draw(st.integers(0, 3))
    locations = draw(st.lists(st.one_of(st.none(), st.integers(0, max(scenes - 1, 0))), max_size=4))
    if scenes == 0:
        locations = [None for _ in locations]
    loc_choice = (
        st.one_of(st.none(), st.integers(0, len(locations) - 1)) if locations else st.none()
    )
    instances = draw(
        st.lists(
            st.tuples(
                loc_choice, st.one_of(st.none(), st.sampled_from(["c1", "c2", "c3"])), TRISTATE
            ),
            max_size=12,
        )
    )
    users = draw(st.integers(0, 5))
    user_choice = st.one_of(st.none(), st.integers(0, users - 1)) if users else st.none()
    attendance = draw(
        st.lists(st.tuples(user_choice, TRISTATE, TRISTATE, st.sampled_from(EDGES)), max_size=15)
    )
    return {
        "scenes": scenes,
        "locations": locations,
        "instances": instances,
        "users": users,
        "attendance": attendance,
    }


# Every window edge at once, with repeat visits (DISTINCT) and a visit of nobody: pinned so
# that no run of the property tests depends on drawing it (tests/engines/test_windows.py has the
# hand counts).
EDGE_PLATFORM: dict[str, Any] = {
    "scenes": 0,
    "locations": [],
    "instances": [(None, "c1", False)],
    "users": 5,
    "attendance": [
        (0, False, True, 0),
        (0, False, True, -3600),
        (0, True, False, -1),
        (1, False, True, -DAY),
        (1, False, False, -7 * DAY + 1),
        (2, False, True, -7 * DAY),
        (3, False, True, -30 * DAY),
        (3, None, None, -30 * DAY + 1),
        (4, None, None, 1),
        (None, False, False, -3600),
    ],
}


def _rows(p: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The platform as (table, column -> value), in an order foreign keys accept."""
    t0 = SLOT - timedelta(days=40)
    scene_ids = [uuid.uuid4() for _ in range(p["scenes"])]
    location_ids = [uuid.uuid4() for _ in p["locations"]]
    user_ids = [uuid.uuid4() for _ in range(p["users"])]
    out: list[tuple[str, dict[str, Any]]] = []
    stamps = {"createdAt": t0, "updatedAt": t0}
    for i, sid in enumerate(scene_ids):
        out.append(("static-resource", {"id": sid, "hash": f"h{i}", "name": f"s{i}", **stamps}))
    for i, (lid, scene) in enumerate(zip(location_ids, p["locations"], strict=True)):
        row = {"id": lid, "name": f"L{i}", "slugifiedName": f"l{i}", **stamps}
        out.append(
            ("location", {**row, "sceneId": scene_ids[scene] if scene is not None else None})
        )
    for i, uid in enumerate(user_ids):
        out.append(("user", {"id": uid, "name": f"u{i}", **stamps}))
    for i, (loc, channel, ended) in enumerate(p["instances"]):
        row = {"id": uuid.uuid4(), "roomCode": f"r{i}", "channelId": channel, "ended": ended}
        where = location_ids[loc] if loc is not None else None
        out.append(("instance", {**row, "locationId": where, **stamps}))
    for user, is_channel, ended, offset in p["attendance"]:
        at = SLOT + timedelta(seconds=offset)
        row = {"id": uuid.uuid4(), "isChannel": is_channel, "ended": ended}
        who = user_ids[user] if user is not None else None
        out.append(
            ("instance-attendance", {**row, "userId": who, "createdAt": at, "updatedAt": at})
        )
    return out


def _load(conn: psycopg.Connection[Any], p: dict[str, Any]) -> None:
    for table, row in _rows(p):
        names = ", ".join(f'"{name}"' for name in row)
        marks = ", ".join(["%s"] * len(row))
        conn.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', tuple(row.values()))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(platform=platforms())
@example(platform=EDGE_PLATFORM)
def test_fused_equals_single_definitions(dbs: Databases, platform: dict[str, Any]) -> None:
    with psycopg.connect(dbs.source) as conn:  # one transaction per example, rolled back
        _load(conn, platform)
        fused = _fused_values(conn)
        assert fused == _single_values(conn, list(fused))
        conn.rollback()


def _config(tmp: Path, body: str, dbs: Databases | None = None) -> Path:
    head = "[collect]\nmetrics = []\n"
    if dbs is not None:
        head += f"[source]\ndsn = {json.dumps(dbs.source)}\n"
        head += f"[store]\ndsn = {json.dumps(dbs.store)}\n"
    return write_config(tmp / "c.toml", head + body)


SHARED = """
[[query]]
name = "numbers"
sql = "SELECT 1 AS one, 2 AS two, 3 AS three"

[[metric]]
type = "one"
description = "The first column"
query = "numbers"

[[metric]]
type = "two"
query = "numbers"

[[metric]]
type = "three"
query = "numbers"
enabled = false

[[metric]]
type = "alone"
sql = "SELECT 7 AS count"
"""


def _report(result: Any) -> dict[str, Any]:
    assert result.stdout, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_shared_query_fills_its_metrics_and_respects_enabled(
    dbs: Databases, tmp_path: Path
) -> None:
    config = _config(tmp_path, SHARED, dbs)
    result = cli("-c", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    metrics = [(m["type"], m["status"], m["count"]) for m in _report(result)["metrics"]]
    assert metrics == [("one", "stored", 1), ("two", "stored", 2), ("alone", "stored", 7)]


def test_only_one_type_of_a_shared_query(dbs: Databases, tmp_path: Path) -> None:
    config = _config(tmp_path, SHARED, dbs)
    result = cli("-c", str(config), "collect", "--at", AT, "--only", "three", "--json")
    assert result.exit_code == 0, result.stderr
    assert [(m["type"], m["count"]) for m in _report(result)["metrics"]] == [("three", 3)]
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count FROM analytics ORDER BY type").fetchall()
    assert rows == [("three", Decimal(3))]


def test_a_failing_shared_query_fails_each_of_its_types(dbs: Databases, tmp_path: Path) -> None:
    body = SHARED.replace(
        "SELECT 1 AS one, 2 AS two, 3 AS three", "SELECT 1 AS one, 2 AS two, 1/0 AS three"
    )
    config = _config(tmp_path, body, dbs)
    result = cli(
        "-c",
        str(config),
        "collect",
        "--at",
        AT,
        "--json",
        "--only",
        "one",
        "--only",
        "three",
        "--only",
        "alone",
    )
    assert result.exit_code == 1
    metrics = {m["type"]: m for m in _report(result)["metrics"]}
    assert metrics["one"]["status"] == metrics["three"]["status"] == "failed"
    assert metrics["one"]["error"] == metrics["three"]["error"] == "division by zero"
    assert (metrics["alone"]["status"], metrics["alone"]["count"]) == ("stored", 7)


def test_a_missing_column_fails_only_its_own_metric(dbs: Databases, tmp_path: Path) -> None:
    body = SHARED.replace("3 AS three", "3 AS tree")
    config = _config(tmp_path, body, dbs)
    result = cli(
        "-c",
        str(config),
        "collect",
        "--at",
        AT,
        "--json",
        "--only",
        "one",
        "--only",
        "three",
    )
    assert result.exit_code == 1
    metrics = {m["type"]: m for m in _report(result)["metrics"]}
    assert (metrics["one"]["status"], metrics["one"]["count"]) == ("stored", 1)
    assert metrics["three"]["error"] == (
        "query 'numbers' returned no column named three (got ['one', 'two', 'tree'])"
    )


def test_a_dimensional_shared_query(dbs: Databases, tmp_path: Path) -> None:
    body = """
[[query]]
name = "per-colour"
dimensions = ["colour"]
sql = "SELECT colour, n AS small, n * 10 AS big FROM (VALUES ('red', 1), ('blue', 2)) AS v(colour, n)"

[[metric]]
type = "small"
query = "per-colour"

[[metric]]
type = "big"
query = "per-colour"
"""
    result = cli("-c", str(_config(tmp_path, body, dbs)), "collect", "--at", AT)
    assert result.exit_code == 0, result.stderr
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count, metadata FROM analytics ORDER BY 1, 2").fetchall()
    assert rows == [
        ("big", Decimal(10), {"colour": "red"}),
        ("big", Decimal(20), {"colour": "blue"}),
        ("small", Decimal(1), {"colour": "red"}),
        ("small", Decimal(2), {"colour": "blue"}),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[metric]]\ntype = "x"\nquery = "nope"\n', "metric[0].query names unknown query 'nope'"),
        ('[[query]]\nname = "q"\nsql = "SELECT 1 AS x"\n', "query 'q' fills no metric"),
        (
            '[[query]]\nname = "q"\nsql = "SELECT 1 AS x"\n[[metric]]\ntype = "x"\nquery = "q"\nsql = "SELECT 1"\n',
            "metric[0] is filled by query 'q'; its sql belongs to that [[query]]",
        ),
        ('[[query]]\nname = "q"\n', "query[0] is missing 'sql'"),
    ],
)
def test_query_config_errors(tmp_path: Path, body: str, message: str) -> None:
    result = cli("-c", str(_config(tmp_path, body)), "config", "show")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr.splitlines()[0]


def test_config_show_round_trips_queries(tmp_path: Path) -> None:
    config = _config(tmp_path, SHARED)
    shown = cli("-c", str(config), "config", "show")
    assert shown.exit_code == 0, shown.stderr
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)
    listed = cli("-c", str(again), "metrics", "--json", "--sql")
    assert listed.exit_code == 0, listed.stderr
    custom = [m for m in json.loads(listed.stdout) if m["kind"] == "custom"]
    assert [(m["type"], m["enabled"]) for m in custom] == [
        ("one", True),
        ("two", True),
        ("three", False),
        ("alone", True),
    ]
    assert custom[0]["sql"] == custom[1]["sql"] == "SELECT 1 AS one, 2 AS two, 3 AS three"


def _mysql_values(conn: Any, texts: dict[str, str]) -> dict[str, Decimal]:
    from analytics_cli.engines.mysql.snapshot import bound_parameters

    params = bound_parameters(SLOT, INTERVAL)
    out: dict[str, Decimal] = {}
    with conn.cursor() as cur:
        for name, text in texts.items():
            cur.execute(text, params)
            names = [d[0] for d in cur.description or ()]
            row = cur.fetchone()
            assert row is not None
            out[name] = Decimal(row[names.index(name) if name in names else names.index("count")])
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(platform=platforms())
@example(platform=EDGE_PLATFORM)
def test_fused_equals_single_definitions_on_mariadb(
    mysql_platform: MySQLPlatform, platform: dict[str, Any]
) -> None:
    from tests.metric_definitions import MYSQL
    from tests.platform_data import insert_mysql

    fused_texts = {m.type: m.sql_for("mysql") or "" for m in FUSED}
    conn = mysql_platform.connect()
    try:
        conn.begin()  # one transaction per example, rolled back
        insert_mysql(conn, _rows(platform))
        fused = _mysql_values(conn, fused_texts)
        assert fused == _mysql_values(conn, {name: MYSQL[name] for name in fused})
        conn.rollback()
    finally:
        conn.close()
