"""The iR Engine's own analytics table in its MariaDB database as the store (layout ir-engine)."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import platform_data
from tests.conftest import cli, proc_env, spawn
from tests.helpers import write_config
from tests.mariadb_server import MySQLPlatform

AT = "2026-11-29T10:10:00Z"
SLOT = datetime(2026, 11, 29, 10, 0)  # UTC wall time, as the table holds it
# The old in-process collector's rows: odd minutes, counted the old way.
OLD_ROWS = [
    ("00000000-0000-4000-8000-000000000001", 11, "activeInstances", datetime(2026, 11, 28, 9, 17, 23)),
    ("00000000-0000-4000-8000-000000000002", 40, "activeChannels", datetime(2026, 11, 28, 9, 17, 24)),
    ("00000000-0000-4000-8000-000000000003", 12, "activeInstances", datetime(2026, 11, 29, 9, 47, 5)),
]  # fmt: skip


@pytest.fixture
def ir(mysql_platform: MySQLPlatform, monkeypatch: pytest.MonkeyPatch) -> MySQLPlatform:
    """The hand-counted platform in MariaDB, the old collector's rows in its analytics
    table, and ANALYTICS_DSN naming that one database (source and store)."""
    with mysql_platform.connect() as conn:
        platform_data.load_mysql(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO analytics (id, count, type, createdAt, updatedAt) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(i, c, t, at, at) for i, c, t, at in OLD_ROWS],
            )
    monkeypatch.setenv("ANALYTICS_DSN", mysql_platform.url)
    return mysql_platform


def table_rows(my: MySQLPlatform) -> list[tuple[Any, ...]]:
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, count, type, createdAt, updatedAt FROM analytics ORDER BY id")
        return list(cur.fetchall())


def at_slot(my: MySQLPlatform, slot: datetime = SLOT) -> dict[str, int]:
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT type, count FROM analytics WHERE createdAt = %s", (slot,))
        found = list(cur.fetchall())
    out = {str(t): int(c) for t, c in found}
    assert len(out) == len(found), f"two rows of one type at {slot}: {found}"
    return out


def create_statement(my: MySQLPlatform) -> str:
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW CREATE TABLE analytics")
        row = cur.fetchone()
        assert row is not None
        return str(row[1])


# ---------------------------------------------------------------------------- writing


def test_collect_writes_the_platforms_own_table(ir: MySQLPlatform) -> None:
    before = create_statement(ir)
    result = cli("collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    assert "table analytics has the iR Engine layout (id char(36), count int," in result.stderr
    assert at_slot(ir) == platform_data.EXPECTED
    rows = table_rows(ir)
    assert len(rows) == len(OLD_ROWS) + 9
    new = [r for r in rows if r[3] == SLOT]
    # A new UUID each, createdAt the slot start, updatedAt when it was counted (UTC).
    assert len({r[0] for r in new}) == 9
    assert all(len(r[0]) == 36 and r[0].count("-") == 4 for r in new)
    assert all(SLOT + timedelta(minutes=10) <= r[4] for r in new)
    # The old collector's rows are untouched; the table's definition is unchanged.
    assert [r for r in rows if r[0].startswith("00000000")] == [
        (i, c, t, at, at) for i, c, t, at in OLD_ROWS
    ]
    assert create_statement(ir) == before
    again = cli("collect", "--at", AT, "--json")
    assert again.exit_code == 0, again.stderr
    assert {m["status"] for m in json.loads(again.stdout)["metrics"]} == {"present"}
    assert len(table_rows(ir)) == len(OLD_ROWS) + 9


def test_eight_concurrent_runs_store_one_row_per_type(ir: MySQLPlatform) -> None:
    env = proc_env(ANALYTICS_DSN=ir.url)
    procs = [spawn("collect", "--at", AT, "--json", env=env) for _ in range(8)]
    outcomes = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    assert [code for _, _, code in outcomes] == [0] * 8, [err for _, err, _ in outcomes]
    stored = [
        m["type"]
        for out, _, _ in outcomes
        if out.strip()
        for m in json.loads(out)["metrics"]
        if m["status"] == "stored"
    ]
    assert sorted(stored) == sorted(platform_data.EXPECTED)
    assert at_slot(ir) == platform_data.EXPECTED
    assert len(table_rows(ir)) == len(OLD_ROWS) + 9


def test_replace_updates_the_slots_rows_in_place(ir: MySQLPlatform) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    ids = {r[2]: r[0] for r in table_rows(ir) if r[3] == SLOT}
    with ir.connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE instance SET ended = 1 WHERE ended = 0 LIMIT 2")
    result = cli("collect", "--at", AT, "--replace", "--json")
    assert result.exit_code == 0, result.stderr
    assert {m["status"] for m in json.loads(result.stdout)["metrics"]} == {"replaced"}
    after = {r[2]: r for r in table_rows(ir) if r[3] == SLOT}
    assert {t: r[0] for t, r in after.items()} == ids
    assert after["activeInstances"][1] == platform_data.EXPECTED["activeInstances"] - 2
    assert len(table_rows(ir)) == len(OLD_ROWS) + 9


def test_a_fraction_or_an_int_overflow_fails_alone(ir: MySQLPlatform, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        {
            "store": {"layout": "ir-engine"},
            "metric": [
                {"type": "cpuCores", "sql": "SELECT 1.5 AS count"},
                {"type": "huge", "sql": "SELECT 3000000000 AS count"},
            ],
        },
    )
    result = cli("-c", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 1, result.stderr
    by_type = {m["type"]: m for m in json.loads(result.stdout)["metrics"]}
    assert by_type["cpuCores"]["status"] == "failed"
    assert "not a whole number" in by_type["cpuCores"]["error"]
    assert by_type["huge"]["status"] == "failed"
    assert "does not fit" in by_type["huge"]["error"]
    assert at_slot(ir) == platform_data.EXPECTED


def test_dimensions_and_sources_are_refused_before_counting(
    ir: MySQLPlatform, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "c.toml",
        {
            "metric": [
                {
                    "type": "usersPerLocation",
                    "sql": "SELECT locationId AS location, count(*) AS count FROM instance "
                    "GROUP BY locationId",
                    "dimensions": ["location"],
                }
            ]
        },
    )
    result = cli("-c", str(config), "collect", "--at", AT)
    assert result.exit_code == 2
    assert "has dimensions, which the iR Engine analytics table" in result.stderr
    assert at_slot(ir) == {}


def test_a_native_table_on_mysql_is_refused(ir: MySQLPlatform, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", {"store": {"table": "analytics_cli"}})
    result = cli("-c", str(config), "collect", "--at", AT)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "error: table 'analytics_cli' does not exist in the MySQL store, and analytics-cli "
        "creates its own table only on PostgreSQL"
    )
    with ir.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'analytics_cli'")
        assert cur.fetchall() == ()
    native = write_config(tmp_path / "n.toml", {"store": {"layout": "native"}})
    refused = cli("-c", str(native), "collect", "--at", AT)
    assert refused.exit_code == 2
    assert 'but [store] layout is "native"' in refused.stderr
    other = write_config(tmp_path / "o.toml", {"store": {"table": "channel"}})
    assert cli("-c", str(other), "collect", "--at", AT).exit_code == 2
    assert len(table_rows(ir)) == len(OLD_ROWS)


def test_without_the_platform_table_and_layout_ir_engine_exit_2(
    ir: MySQLPlatform, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", {"store": {"table": "nope", "layout": "ir-engine"}})
    result = cli("-c", str(config), "collect", "--at", AT)
    assert result.exit_code == 2
    assert "[store] layout is \"ir-engine\" but table 'nope' does not exist" in result.stderr


# ---------------------------------------------------------------------------- reading


def test_export_returns_old_and_new_rows(ir: MySQLPlatform, tmp_path: Path) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    result = cli("export", "--csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["type", "count", "timestamp", "metadata", "collected_at"]
    assert len(rows) == len(OLD_ROWS) + 9
    # By time, then type: the old collector's rows first, at their own minutes.
    assert [(r["type"], r["count"], r["timestamp"]) for r in rows[:3]] == [
        ("activeInstances", "11", "2026-11-28T09:17:23Z"),
        ("activeChannels", "40", "2026-11-28T09:17:24Z"),
        ("activeInstances", "12", "2026-11-29T09:47:05Z"),
    ]
    new = {r["type"]: int(r["count"]) for r in rows[3:]}
    assert new == platform_data.EXPECTED
    assert {r["timestamp"] for r in rows[3:]} == {"2026-11-29T10:00:00Z"}
    assert {r["metadata"] for r in rows} == {"{}"}
    as_json = cli("export", "--json", "--type", "activeInstances")
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"type": "activeInstances", "count": 11, "timestamp": "2026-11-28T09:17:23Z",
         "metadata": {}, "collected_at": "2026-11-28T09:17:23Z"},
        {"type": "activeInstances", "count": 12, "timestamp": "2026-11-29T09:47:05Z",
         "metadata": {}, "collected_at": "2026-11-29T09:47:05Z"},
        {"type": "activeInstances", "count": 7, "timestamp": "2026-11-29T10:00:00Z",
         "metadata": {}, "collected_at": json.loads(as_json.stdout)[2]["collected_at"]},
    ]  # fmt: skip
    ndjson = cli("export", "--ndjson", "--type", "activeChannels")
    assert [json.loads(line)["count"] for line in ndjson.stdout.splitlines()] == [40, 1]
    out = tmp_path / "all.csv"
    written = cli("export", "--csv", "--output", str(out))
    assert written.exit_code == 0, written.stderr
    assert out.read_text() == result.stdout
    empty = cli("export", "--json", "--since", "2020-01-01", "--until", "2020-01-02")
    assert (empty.exit_code, empty.stdout) == (0, "[]\n")


ODD_TYPES = ["plain", "with,comma", 'with "quotes"', "two\nlines", "cr\rhere", "", "Zürich 🙂",
             "tab\tand\x01control", "back\\slash", "\\.", "100%Y"]  # fmt: skip


# The bytes export and show write for the rows below: RFC 4180 quoting (a field with a comma,
# quote, CR or LF is quoted, quotes doubled; the empty text is "" and so told from no value),
# JSON escapes (\\, \", \t, \r, \n, \u0001), UTF-8 as it is, and "%" left alone.
# fmt: off
EXPORT_CSV = (
    "type,count,timestamp,metadata,collected_at\n"
    "activeInstances,11,2026-11-28T09:17:23Z,{},2026-11-28T09:17:23Z\n"
    "activeChannels,40,2026-11-28T09:17:24Z,{},2026-11-28T09:17:24Z\n"
    "activeInstances,12,2026-11-29T09:47:05Z,{},2026-11-29T09:47:05Z\n"
    "100%Y,-10,2026-11-29T09:50:00Z,{},2026-11-29T09:50:03Z\n"
    "\\.,-9,2026-11-29T09:51:00Z,{},2026-11-29T09:51:03Z\n"
    "back\\slash,-8,2026-11-29T09:52:00Z,{},2026-11-29T09:52:03Z\n"
    "tab\tand\x01control,-7,2026-11-29T09:53:00Z,{},2026-11-29T09:53:03Z\n"
    "Zürich 🙂,-6,2026-11-29T09:54:00Z,{},2026-11-29T09:54:03Z\n"
    '"",-5,2026-11-29T09:55:00Z,{},2026-11-29T09:55:03Z\n'
    '"cr\r'
    'here",-4,2026-11-29T09:56:00Z,{},2026-11-29T09:56:03Z\n'
    '"two\n'
    'lines",-3,2026-11-29T09:57:00Z,{},2026-11-29T09:57:03Z\n'
    '"with ""quotes""",-2,2026-11-29T09:58:00Z,{},2026-11-29T09:58:03Z\n'
    '"with,comma",-1,2026-11-29T09:59:00Z,{},2026-11-29T09:59:03Z\n'
    "plain,0,2026-11-29T10:00:00Z,{},2026-11-29T10:00:03Z\n"
)
SHOW_CSV = (
    "type,count,timestamp,metadata\n"
    '"",-5,2026-11-29T09:55:00Z,{}\n'
    "100%Y,-10,2026-11-29T09:50:00Z,{}\n"
    "activeChannels,40,2026-11-28T09:17:24Z,{}\n"
    "activeInstances,11,2026-11-28T09:17:23Z,{}\n"
    "activeInstances,12,2026-11-29T09:47:05Z,{}\n"
    "back\\slash,-8,2026-11-29T09:52:00Z,{}\n"
    '"cr\r'
    'here",-4,2026-11-29T09:56:00Z,{}\n'
    "plain,0,2026-11-29T10:00:00Z,{}\n"
    "tab\tand\x01control,-7,2026-11-29T09:53:00Z,{}\n"
    '"two\n'
    'lines",-3,2026-11-29T09:57:00Z,{}\n'
    '"with ""quotes""",-2,2026-11-29T09:58:00Z,{}\n'
    '"with,comma",-1,2026-11-29T09:59:00Z,{}\n'
    "Zürich 🙂,-6,2026-11-29T09:54:00Z,{}\n"
    "\\.,-9,2026-11-29T09:51:00Z,{}\n"
)
EXPORT_NDJSON = (
    '{"type" : "activeInstances", "count" : 11, "timestamp" : "2026-11-28T09:17:23Z", "metadata" : {}, "collected_at" : "2026-11-28T09:17:23Z"}\n'
    '{"type" : "activeChannels", "count" : 40, "timestamp" : "2026-11-28T09:17:24Z", "metadata" : {}, "collected_at" : "2026-11-28T09:17:24Z"}\n'
    '{"type" : "activeInstances", "count" : 12, "timestamp" : "2026-11-29T09:47:05Z", "metadata" : {}, "collected_at" : "2026-11-29T09:47:05Z"}\n'
    '{"type" : "100%Y", "count" : -10, "timestamp" : "2026-11-29T09:50:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:50:03Z"}\n'
    '{"type" : "\\\\.", "count" : -9, "timestamp" : "2026-11-29T09:51:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:51:03Z"}\n'
    '{"type" : "back\\\\slash", "count" : -8, "timestamp" : "2026-11-29T09:52:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:52:03Z"}\n'
    '{"type" : "tab\\tand\\u0001control", "count" : -7, "timestamp" : "2026-11-29T09:53:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:53:03Z"}\n'
    '{"type" : "Zürich 🙂", "count" : -6, "timestamp" : "2026-11-29T09:54:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:54:03Z"}\n'
    '{"type" : "", "count" : -5, "timestamp" : "2026-11-29T09:55:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:55:03Z"}\n'
    '{"type" : "cr\\rhere", "count" : -4, "timestamp" : "2026-11-29T09:56:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:56:03Z"}\n'
    '{"type" : "two\\nlines", "count" : -3, "timestamp" : "2026-11-29T09:57:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:57:03Z"}\n'
    '{"type" : "with \\"quotes\\"", "count" : -2, "timestamp" : "2026-11-29T09:58:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:58:03Z"}\n'
    '{"type" : "with,comma", "count" : -1, "timestamp" : "2026-11-29T09:59:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:59:03Z"}\n'
    '{"type" : "plain", "count" : 0, "timestamp" : "2026-11-29T10:00:00Z", "metadata" : {}, "collected_at" : "2026-11-29T10:00:03Z"}\n'
)
SHOW_JSON = (
    "[\n"
    '{"type" : "", "count" : -5, "timestamp" : "2026-11-29T09:55:00Z", "metadata" : {}},\n'
    '{"type" : "100%Y", "count" : -10, "timestamp" : "2026-11-29T09:50:00Z", "metadata" : {}},\n'
    '{"type" : "activeChannels", "count" : 40, "timestamp" : "2026-11-28T09:17:24Z", "metadata" : {}},\n'
    '{"type" : "activeInstances", "count" : 11, "timestamp" : "2026-11-28T09:17:23Z", "metadata" : {}},\n'
    '{"type" : "activeInstances", "count" : 12, "timestamp" : "2026-11-29T09:47:05Z", "metadata" : {}},\n'
    '{"type" : "back\\\\slash", "count" : -8, "timestamp" : "2026-11-29T09:52:00Z", "metadata" : {}},\n'
    '{"type" : "cr\\rhere", "count" : -4, "timestamp" : "2026-11-29T09:56:00Z", "metadata" : {}},\n'
    '{"type" : "plain", "count" : 0, "timestamp" : "2026-11-29T10:00:00Z", "metadata" : {}},\n'
    '{"type" : "tab\\tand\\u0001control", "count" : -7, "timestamp" : "2026-11-29T09:53:00Z", "metadata" : {}},\n'
    '{"type" : "two\\nlines", "count" : -3, "timestamp" : "2026-11-29T09:57:00Z", "metadata" : {}},\n'
    '{"type" : "with \\"quotes\\"", "count" : -2, "timestamp" : "2026-11-29T09:58:00Z", "metadata" : {}},\n'
    '{"type" : "with,comma", "count" : -1, "timestamp" : "2026-11-29T09:59:00Z", "metadata" : {}},\n'
    '{"type" : "Zürich 🙂", "count" : -6, "timestamp" : "2026-11-29T09:54:00Z", "metadata" : {}},\n'
    '{"type" : "\\\\.", "count" : -9, "timestamp" : "2026-11-29T09:51:00Z", "metadata" : {}}\n'
    "]\n"
)
EXPORT_JSON = (
    "[\n"
    '{"type" : "activeInstances", "count" : 11, "timestamp" : "2026-11-28T09:17:23Z", "metadata" : {}, "collected_at" : "2026-11-28T09:17:23Z"},\n'
    '{"type" : "activeChannels", "count" : 40, "timestamp" : "2026-11-28T09:17:24Z", "metadata" : {}, "collected_at" : "2026-11-28T09:17:24Z"},\n'
    '{"type" : "activeInstances", "count" : 12, "timestamp" : "2026-11-29T09:47:05Z", "metadata" : {}, "collected_at" : "2026-11-29T09:47:05Z"},\n'
    '{"type" : "100%Y", "count" : -10, "timestamp" : "2026-11-29T09:50:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:50:03Z"},\n'
    '{"type" : "\\\\.", "count" : -9, "timestamp" : "2026-11-29T09:51:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:51:03Z"},\n'
    '{"type" : "back\\\\slash", "count" : -8, "timestamp" : "2026-11-29T09:52:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:52:03Z"},\n'
    '{"type" : "tab\\tand\\u0001control", "count" : -7, "timestamp" : "2026-11-29T09:53:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:53:03Z"},\n'
    '{"type" : "Zürich 🙂", "count" : -6, "timestamp" : "2026-11-29T09:54:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:54:03Z"},\n'
    '{"type" : "", "count" : -5, "timestamp" : "2026-11-29T09:55:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:55:03Z"},\n'
    '{"type" : "cr\\rhere", "count" : -4, "timestamp" : "2026-11-29T09:56:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:56:03Z"},\n'
    '{"type" : "two\\nlines", "count" : -3, "timestamp" : "2026-11-29T09:57:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:57:03Z"},\n'
    '{"type" : "with \\"quotes\\"", "count" : -2, "timestamp" : "2026-11-29T09:58:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:58:03Z"},\n'
    '{"type" : "with,comma", "count" : -1, "timestamp" : "2026-11-29T09:59:00Z", "metadata" : {}, "collected_at" : "2026-11-29T09:59:03Z"},\n'
    '{"type" : "plain", "count" : 0, "timestamp" : "2026-11-29T10:00:00Z", "metadata" : {}, "collected_at" : "2026-11-29T10:00:03Z"}\n'
    "]\n"
)
# fmt: on
EXPORTED = {"csv": EXPORT_CSV, "json": EXPORT_JSON, "ndjson": EXPORT_NDJSON}
SHOWN = {"csv": SHOW_CSV, "json": SHOW_JSON}


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_export_text_of_odd_names_is_exactly_this(ir: MySQLPlatform, fmt: str) -> None:
    """The server-written fields (unbucketed rows) and the Python-written ones (what buckets
    use) both give the literal text above, for any type text."""
    from decimal import Decimal

    from analytics_cli.engines.mysql import store as mysql_store
    from analytics_cli.engines.reading import row_lines
    from analytics_cli.engines.shapes import EXPORT_KEYS
    from analytics_cli.history import SHOW_KEYS

    with ir.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO analytics (id, count, type, createdAt, updatedAt) "
            "VALUES (UUID(), %s, %s, %s, %s)",
            [(-i, t, SLOT - timedelta(minutes=i), SLOT - timedelta(minutes=i, seconds=-3))
             for i, t in enumerate(ODD_TYPES)],
        )  # fmt: skip

    def python_written(order: str, keys: tuple[str, ...]) -> str:
        with ir.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT type, count, createdAt, updatedAt FROM analytics "
                + mysql_store._ORDERS[order]
            )
            found = [(t, Decimal(c), a.replace(tzinfo=UTC), u.replace(tzinfo=UTC))
                     for t, c, a, u in cur.fetchall()]  # fmt: skip
        lines = "".join(row_lines(found, fmt, keys))
        if fmt == "csv":
            return ",".join(keys) + "\n" + lines
        if fmt == "json":
            return "[\n" + lines[:-1].replace("\n", ",\n") + "\n]\n"
        return lines

    exported = cli("export", f"--{fmt}")
    assert exported.exit_code == 0, exported.stderr
    assert exported.stdout == EXPORTED[fmt]
    assert python_written("time", EXPORT_KEYS) == EXPORTED[fmt]
    if fmt != "ndjson":
        shown = cli("show", "--since", "2026-11-01", "--until", "2026-12-01", "--format", fmt)
        assert shown.exit_code == 0, shown.stderr
        assert shown.stdout == SHOWN[fmt]
        assert python_written("type", SHOW_KEYS) == SHOWN[fmt]
    # Read back, the text gives the names it was made of.
    if fmt == "csv":
        names = [row[0] for row in csv.reader(io.StringIO(exported.stdout, newline=""))][1:]
    else:
        body = (
            exported.stdout if fmt == "json" else "[" + ",".join(exported.stdout.splitlines()) + "]"
        )
        names = [row["type"] for row in json.loads(body)]
    assert names[3:] == sorted(ODD_TYPES, key=ODD_TYPES.index, reverse=True)


def test_show_and_status_read_the_table(ir: MySQLPlatform) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    shown = cli("show", "--type", "activeInstances", "--since", "2026-11-28", "--until",
                "2026-11-30", "--format", "csv")  # fmt: skip
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "type,count,timestamp,metadata",
        "activeInstances,11,2026-11-28T09:17:23Z,{}",
        "activeInstances,12,2026-11-29T09:47:05Z,{}",
        "activeInstances,7,2026-11-29T10:00:00Z,{}",
    ]
    table = cli("show", "--since", "2026-11-28", "--until", "2026-11-30", "--format", "table")
    assert table.exit_code == 0, table.stderr
    assert "activeInstances" in table.stdout and "dailyUsers" in table.stdout
    bucketed = cli("show", "--type", "activeInstances", "--since", "2026-11-28", "--until",
                   "2026-11-30", "--bucket", "1d", "--agg", "max", "--format", "csv")  # fmt: skip
    assert bucketed.stdout.splitlines()[1:] == [
        "activeInstances,11,2026-11-28T00:00:00Z",
        "activeInstances,12,2026-11-29T00:00:00Z",
    ]
    nothing = cli("show", "--type", "activeInstances", "--since", "2020-01-01", "--until",
                  "2020-01-02")  # fmt: skip
    assert nothing.exit_code == 0
    assert "2026-11-28" in nothing.stdout + nothing.stderr
    status = cli("status", "--json")
    doc = json.loads(status.stdout)
    latest = {m["type"]: m["latest"] for m in doc["metrics"]}
    assert latest["activeInstances"] == "2026-11-29T10:00:00Z"
    assert status.exit_code == 1  # the slot is days old: stale, as on PostgreSQL


def test_prune_deletes_only_older_rows(ir: MySQLPlatform) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    # A cutoff in the last hour of 2026-11-28: between the two old days.
    since = datetime.now(UTC).replace(tzinfo=None) - datetime(2026, 11, 29)
    hours = math.ceil(since / timedelta(hours=1))
    assert cli("prune", "--older-than", f"{hours}h", "--dry-run").exit_code == 0
    result = cli("prune", "--older-than", f"{hours}h", "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("deleted 2 rows older than 2026-11-28T23:")
    assert [r[0] for r in table_rows(ir) if r[0].startswith("00000000")] == [OLD_ROWS[2][0]]
    assert at_slot(ir) == platform_data.EXPECTED


def test_rollups_do_not_apply_to_the_platform_table(ir: MySQLPlatform) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    rebuilt = cli("db", "rollup", "--rebuild")
    assert rebuilt.exit_code == 2
    assert rebuilt.stderr.splitlines()[0] == (
        "error: rollups do not apply to the iR Engine layout (the platform's table): "
        "its history is read from its rows"
    )
    assert "Traceback" not in rebuilt.stderr
    status = cli("status")
    assert "rollups: do not apply to the iR Engine's table (its rows are read)" in (
        status.stdout.splitlines()
    )
    assert json.loads(cli("status", "--json").stdout)["rollups"] is None


def test_the_dashboards_query_reads_the_new_rows(ir: MySQLPlatform) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    # The admin dashboard's Feathers find: per type, createdAt within 30 days of the
    # newest row here, newest first, the default page of 10.
    with ir.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, count, type, createdAt, updatedAt FROM analytics WHERE type = %s "
            "AND createdAt > %s ORDER BY createdAt DESC LIMIT 10",
            ("activeInstances", SLOT - timedelta(days=30)),
        )
        page = list(cur.fetchall())
    assert [(r[1], r[3]) for r in page] == [
        (7, SLOT),
        (12, datetime(2026, 11, 29, 9, 47, 5)),
        (11, datetime(2026, 11, 28, 9, 17, 23)),
    ]


def test_report_and_anomalies_read_the_table(ir: MySQLPlatform, tmp_path: Path) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    page = tmp_path / "r.html"
    made = cli("report", "--html", str(page), "--since", "2026-11-28", "--until", "2026-11-30")
    assert made.exit_code == 0, made.stderr
    text = page.read_text()
    assert "activeInstances" in text and "<svg" in text
    found = cli("status", "--anomalies", "--json")
    assert found.exit_code in (0, 1), found.stderr
    doc = json.loads(found.stdout)
    assert doc["metrics"], doc


def test_the_documented_grants_and_what_a_narrower_account_is_told(
    ir: MySQLPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "ir-engine.md").read_text()
    section = page[page.index("## On MySQL or MariaDB (the iR Engine's own database)") :]
    grants = section[section.index("CREATE USER 'analytics'") :]
    grants = grants[: grants.index("```")].replace("platform.", f"{ir.name}.")
    grants = grants.replace("'analytics'", "'collector'").replace("'change-me'", "'st-pw-77'")
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON" in grants
    with ir.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'collector'@'%', 'collector'@'localhost'")
        # First only what collect needs: --replace and prune are told what to grant.
        narrow = grants.replace("SELECT, INSERT, UPDATE, DELETE", "SELECT, INSERT")
        cur.execute(narrow)
        while cur.nextset():
            pass
    monkeypatch.setenv("ANALYTICS_DSN", ir.server.url(ir.name, "collector", "st-pw-77"))
    assert cli("collect", "--at", AT).exit_code == 0
    assert at_slot(ir) == platform_data.EXPECTED
    replaced = cli("collect", "--at", AT, "--replace")
    assert (replaced.exit_code, replaced.stdout) == (3, ""), replaced.stderr
    assert "UPDATE command denied" in replaced.stderr
    assert f"GRANT UPDATE, DELETE ON {ir.name}.analytics TO 'collector'@'%'" in replaced.stderr
    assert "spool" not in replaced.stderr
    pruned = cli("prune", "--older-than", "1d", "--yes")
    assert (pruned.exit_code, pruned.stdout) == (3, ""), pruned.stderr
    assert pruned.stderr.splitlines()[-2:] == [
        "error: prune stopped after 0 rows: DELETE command denied to user "
        f"'collector'@'127.0.0.1' for table `{ir.name}`.`analytics`",
        f"hint: prune needs DELETE on {ir.name}.analytics: "
        f"GRANT DELETE ON {ir.name}.analytics TO 'collector'@'%'",
    ]
    assert "st-pw-77" not in replaced.stderr + pruned.stderr
    with ir.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER 'collector'@'%', 'collector'@'localhost'")
        cur.execute(grants)
        while cur.nextset():
            pass
    assert cli("collect", "--at", AT, "--replace").exit_code == 0
    assert cli("prune", "--older-than", "1d", "--yes").exit_code == 0
    assert table_rows(ir) == []


def test_status_never_takes_a_future_row_of_the_platform_table_as_fresh(
    ir: MySQLPlatform,
) -> None:
    # A row dated 2099 (a clock far ahead) beside the old collector's rows of 2026-11-29.
    with ir.connect() as conn, conn.cursor() as cur:
        ahead = datetime(2099, 1, 1, 0, 0)
        cur.execute(
            "INSERT INTO analytics (id, count, type, createdAt, updatedAt) "
            "VALUES (%s, 1, 'activeInstances', %s, %s)",
            ("00000000-0000-4000-8000-000000000099", ahead, ahead),
        )
    status = cli("status", "--json")
    assert status.exit_code == 1, status.stderr  # the real rows are days old: stale
    doc = json.loads(status.stdout)
    assert doc["future"] == {"activeInstances": "2099-01-01T00:00:00Z"}
    latest = {m["type"]: m["latest"] for m in doc["metrics"]}
    assert latest["activeInstances"] == "2026-11-29T09:30:00Z"
    assert doc["newest_age_seconds"] > 0
    assert (
        "\nwarning: rows dated in the future (up to 2099-01-01T00:00:00Z) of activeInstances:"
        in (status.stderr)
    )
