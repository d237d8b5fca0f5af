"""One meaning of a slot's value: the sum of its rows (every series of a dimensional metric,
every [[source]]), in show's table and chart, --bucket, export --bucket, the report and the
textfile; ``points`` counts slots. Each command against an independent SQL of that
definition, on PostgreSQL and on the iR Engine's table in MariaDB."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import Databases, cli
from tests.helpers import insert_store_rows, write_config
from tests.mariadb_server import MySQLPlatform

T0 = datetime(2026, 2, 2, tzinfo=UTC)
SLOT = timedelta(minutes=30)
SINCE, UNTIL = "2026-02-02T00:00:00Z", "2026-02-04T00:00:00Z"
WINDOW = ("--since", SINCE, "--until", UNTIL)
SHORT = ("--since", SINCE, "--until", "2026-02-02T12:00:00Z")  # 24 slots: no auto bucket
TYPES = ("plain", "roomsByLocation", "usersBySource")


def load_pg(dsn: str) -> None:
    """Two days of slots: a plain metric, one with three locations (Gallery missing from
    every fifth slot) and one collected from two [[source]]s."""
    rows: list[tuple[str, int, datetime, dict[str, str]]] = []
    for k in range(96):
        at = T0 + k * SLOT
        rows.append(("plain", k % 9, at, {}))
        for i, place in enumerate(("Lobby", "Arena", "Gallery")):
            if place == "Gallery" and k % 5 == 0:
                continue
            rows.append(("roomsByLocation", (k * 3 + i * 7) % 17 + i * 10, at, {"location": place}))
        rows.append(("usersBySource", (k * 11) % 13 + 5, at, {"source": "eu"}))
        rows.append(("usersBySource", (k * 5) % 7 + 1, at, {"source": "us"}))
    insert_store_rows(dsn, rows)


@pytest.fixture
def pg(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    load_pg(dbs.store)
    return dbs


# The definition, written again in SQL: per type and slot start, the sum of the rows.
PG_TOTALS = (
    'SELECT type, "timestamp" AS slot, sum(count) AS total FROM analytics '
    'WHERE "timestamp" >= %(since)s AND "timestamp" < %(until)s GROUP BY 1, 2'
)


def pg_query(dsn: str, query: str, until: str = UNTIL) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, {"since": SINCE, "until": until}).fetchall()


def summary_sql(totals: str) -> str:
    """latest, min, avg (two decimals, as shown), max and slots of each type's totals."""
    return (
        f"SELECT type, (array_agg(total ORDER BY slot DESC))[1], min(total), "
        f"round(avg(total), 2), max(total), count(*) FROM ({totals}) t GROUP BY 1 ORDER BY 1"
    )


def overview(stdout: str) -> dict[str, tuple[Decimal, ...]]:
    """show's plain overview: type → latest, min, avg, max, points."""
    out = {}
    for line in stdout.splitlines()[2:]:
        name, latest, _day, _time, low, mean, high, points, _gaps = line.split()
        out[name] = tuple(Decimal(v) for v in (latest, low, mean, high, points))
    return out


def test_show_overview_uses_slot_totals(pg: Databases) -> None:
    result = cli("show", *WINDOW)
    assert result.exit_code == 0, result.stderr
    expected = pg_query(pg.store, summary_sql(PG_TOTALS))
    assert overview(result.stdout) == {r[0]: tuple(Decimal(v) for v in r[1:]) for r in expected}
    # The latest slot: Lobby 13 + Arena 13 (Gallery has no row there), not the last row.
    assert overview(result.stdout)["roomsByLocation"][0] == Decimal(13 + 13)


@pytest.mark.parametrize("name", ["roomsByLocation", "usersBySource"])
def test_show_series_table_and_chart_use_slot_totals(pg: Databases, name: str) -> None:
    until = "2026-02-02T12:00:00Z"
    table = cli("show", "-t", name, *SHORT)
    assert table.exit_code == 0, table.stderr
    expected = pg_query(
        pg.store, f"SELECT slot, total FROM ({PG_TOTALS}) t WHERE type = '{name}' ORDER BY 1", until
    )
    got = [line.split() for line in table.stdout.splitlines()[2:]]
    assert [(f"{d} {t}", Decimal(v)) for d, t, v in got] == [
        (s.strftime("%Y-%m-%d %H:%M"), v) for s, v in expected
    ]
    chart = cli("show", "-t", name, "--format", "chart", *SHORT)
    assert chart.exit_code == 0, chart.stderr
    [row] = [r for r in pg_query(pg.store, summary_sql(PG_TOTALS), until) if r[0] == name]
    [fields] = [
        ln.split()
        for ln in chart.stdout.splitlines()
        if ln.split()[:1] == [name] and len(ln.split()) == 9
    ]
    assert [Decimal(v) for v in (fields[1], *fields[4:8])] == [*row[1:5], 24]


BUCKET_AGG = {
    "avg": "avg(total)",
    "max": "max(total)",
    "sum": "sum(total)",
    "last": "(array_agg(total ORDER BY slot DESC))[1]",
}


@pytest.mark.parametrize("agg", sorted(BUCKET_AGG))
def test_show_and_export_buckets_aggregate_slot_totals(pg: Databases, agg: str) -> None:
    expected = pg_query(
        pg.store,
        f"SELECT type, to_char(date_trunc('day', slot AT TIME ZONE 'UTC'), "
        f'\'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), {BUCKET_AGG[agg]} FROM ({PG_TOTALS}) t '
        "GROUP BY 1, 2 ORDER BY 1, 2",
    )
    args = ("--bucket", "1d", "--agg", agg, *WINDOW)
    shown = cli("show", "-t", "roomsByLocation", "-t", "usersBySource", "-f", "json", *args)
    assert shown.exit_code == 0, shown.stderr
    got = [(p["type"], p["timestamp"], Decimal(str(p["count"]))) for p in json.loads(shown.stdout)]
    want = [(t, ts, v) for t, ts, v in expected if t != "plain"]
    assert len(got) == len(want) == 4
    for (t, ts, value), (et, ets, evalue) in zip(got, want, strict=True):
        assert (t, ts) == (et, ets) and abs(value - evalue) < Decimal("1e-9")
    exported = cli("export", "--ndjson", *args)
    assert exported.exit_code == 0, exported.stderr
    rows = sorted(
        (r["type"], r["timestamp"], Decimal(str(r["count"])))
        for r in map(json.loads, exported.stdout.splitlines())
    )
    assert len(rows) == len(expected) == 6
    for (t, ts, value), (et, ets, evalue) in zip(rows, expected, strict=True):
        assert (t, ts) == (et, ets) and abs(value - evalue) < Decimal("1e-9")


def latest_totals(rows: list[tuple[Any, ...]]) -> dict[str, tuple[datetime, Decimal]]:
    """Per type, its newest slot and that slot's total, from (type, slot, total) rows."""
    out: dict[str, tuple[datetime, Decimal]] = {}
    for name, slot, total in rows:
        if name not in out or slot > out[name][0]:
            out[name] = (slot, Decimal(total))
    return out


def anomaly_values(env: dict[str, str], now: datetime) -> dict[str, tuple[Any, Any]]:
    """What the anomaly check judges: each metric's latest value and its slot."""
    from analytics_cli.anomalies import anomalies
    from analytics_cli.config.load import load

    settings = load(None, env=env, discover=False)
    return {c.type: (c.at, c.value) for c in anomalies(settings, now=now).checks if c.value}


def test_anomalies_judge_the_slot_total(pg: Databases) -> None:
    now = T0 + timedelta(days=2)
    expected = latest_totals(pg_query(pg.store, PG_TOTALS))
    got = anomaly_values({"ANALYTICS_STORE_DSN": pg.store, "ANALYTICS_SOURCE_DSN": pg.source}, now)
    assert got == expected
    assert got["usersBySource"][1] == Decimal((95 * 11) % 13 + 5 + (95 * 5) % 7 + 1)


def headline(path: Path) -> dict[str, dict[str, str]]:
    """The report's headline cells by metric type and data-key."""
    text = path.read_text()
    out: dict[str, dict[str, str]] = {}
    for name, cells in re.findall(r'<tr data-type="([^"]+)">(.*?)</tr>', text):
        out[name] = dict(re.findall(r'<td data-key="([^"]+)"[^>]*>([^<]*)</td>', cells))
    return out


def report_matches(path: Path, expected: list[tuple[Any, ...]]) -> None:
    cells = headline(path)
    for name, latest, low, mean, high, slots in expected:
        got = cells[name]
        assert Decimal(got["latest"]) == latest and Decimal(got["min"]) == low, name
        assert Decimal(got["avg"]) == mean and Decimal(got["max"]) == high, name
        assert int(got["slots"]) == slots, name


def test_report_uses_slot_totals(pg: Databases, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    result = cli("report", "--html", str(page), *WINDOW)
    assert result.exit_code == 0, result.stderr
    report_matches(page, pg_query(pg.store, summary_sql(PG_TOTALS)))


def test_show_by_picks_series_and_keeps_the_null_one(pg: Databases) -> None:
    with psycopg.connect(pg.store, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO analytics (type, count, \"timestamp\", metadata) SELECT 'roomsByLocation', "
            "100 + k, %s::timestamptz + k * interval '30 minutes', '{\"location\": null}' "
            "FROM generate_series(0, 23) k",
            (T0,),
        )
    csv_out = cli("show", "-t", "roomsByLocation", "--by", "location", "-f", "csv", *SHORT)
    assert '{""location"": null}' in csv_out.stdout
    result = cli(
        "show", "-t", "roomsByLocation", "--by", "location", "--top", "4", "-f", "chart", *SHORT
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["(none)", "Gallery", "Arena", "Lobby"]  # by average, highest first
    rows = {ln.split()[0]: ln.split() for ln in lines if ln.split()[:1] != ["location"]}
    expected = pg_query(
        pg.store,
        "SELECT coalesce(metadata->>'location', '(none)'), min(count), max(count), count(*) "
        "FROM analytics WHERE type = 'roomsByLocation' AND \"timestamp\" >= %(since)s "
        'AND "timestamp" < %(until)s GROUP BY 1',
        "2026-02-02T12:00:00Z",
    )
    for value, low, high, slots in expected:
        assert [Decimal(v) for v in (rows[value][4], rows[value][6], rows[value][7])] == [
            low,
            high,
            slots,
        ]


def test_textfile_gives_the_slot_total_of_dimensional_and_sourced_metrics(
    dbs: Databases, tmp_path: Path
) -> None:
    # Two [[source]]s (the same platform twice) and a dimensional metric beside a plain one.
    config = tmp_path / "c.toml"
    write_config(
        config,
        f'[store]\ndsn = "{dbs.store}"\n'
        '[collect]\nmetrics = ["activeInstances", "instanceUsersByLocation"]\n'
        f'[[source]]\nname = "eu"\ndsn = "{dbs.source}"\n'
        f'[[source]]\nname = "us"\ndsn = "{dbs.source}"\n',
    )
    textfile = tmp_path / "analytics.prom"
    at = "2026-11-29T10:10:00Z"
    result = cli("-c", str(config), "collect", "--at", at, "--textfile", str(textfile))
    assert result.exit_code == 0, result.stderr
    with psycopg.connect(dbs.store) as conn:
        found = conn.execute(
            'SELECT type, sum(count), count(*) FROM analytics WHERE "timestamp" = %s GROUP BY 1',
            ("2026-11-29T10:00:00Z",),
        ).fetchall()
    totals = {t: total for t, total, _ in found}
    rows = {t: n for t, _, n in found}
    gauges = re.findall(r'^analytics_metric\{type="([^"]+)"\} (\S+)$', textfile.read_text(), re.M)
    assert rows["activeInstances"] == 2  # one row from each source
    assert {t: Decimal(v) for t, v in gauges} == totals


# ---------------------------------------------------------------------------- MySQL


def load_mysql(my: MySQLPlatform) -> None:
    """The old collector's habit: several rows of a type in one 30-minute slot, at odd
    minutes (two or three per slot), for 24 slots; plus one plain row a slot."""
    rows = []
    for k in range(24):
        start = datetime(2026, 2, 2) + k * SLOT
        for j, minute in enumerate((3, 17, 29)):
            if minute == 29 and k % 4 == 0:
                continue
            at = start + timedelta(minutes=minute, seconds=j * 7)
            rows.append(
                (f"00000000-0000-4000-8000-{k:06d}{j:06d}", (k * 7 + j * 5) % 11, "rooms", at)
            )
        rows.append((f"00000000-0000-4000-9000-{k:012d}", k % 6, "plain", start))
    with my.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO analytics (id, count, type, createdAt, updatedAt) VALUES (%s, %s, %s, %s, %s)",
            [(i, c, t, at, at) for i, c, t, at in rows],
        )


MY_TOTALS = (
    "SELECT type, createdAt - INTERVAL (MINUTE(createdAt) % 30) MINUTE "
    "- INTERVAL SECOND(createdAt) SECOND AS slot, SUM(count) AS total FROM analytics "
    "WHERE type IN ('rooms', 'plain') GROUP BY 1, 2"
)


def my_query(my: MySQLPlatform, query: str) -> list[tuple[Any, ...]]:
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


@pytest.fixture
def my(mysql_platform: MySQLPlatform, monkeypatch: pytest.MonkeyPatch) -> MySQLPlatform:
    load_mysql(mysql_platform)
    monkeypatch.setenv("ANALYTICS_DSN", mysql_platform.url)
    return mysql_platform


def test_mysql_store_reads_slot_totals(my: MySQLPlatform, tmp_path: Path) -> None:
    window = ("--since", SINCE, "--until", "2026-02-02T12:00:00Z")
    stats = my_query(
        my,
        f"SELECT type, (SELECT t2.total FROM ({MY_TOTALS}) t2 WHERE t2.type = t.type "
        "ORDER BY t2.slot DESC LIMIT 1), MIN(total), ROUND(AVG(total), 2), MAX(total), COUNT(*) "
        f"FROM ({MY_TOTALS}) t GROUP BY type ORDER BY type",
    )
    shown = cli("show", "-t", "plain", "-t", "rooms", "--format", "chart", *window)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for name, latest, low, mean, high, slots in stats:
        [fields] = [ln.split() for ln in lines if ln.split()[:1] == [name] and len(ln.split()) == 9]
        assert [Decimal(v) for v in (fields[1], *fields[4:8])] == [latest, low, mean, high, slots]
    series = cli("show", "-t", "rooms", *window)
    per_slot = my_query(
        my, f"SELECT slot, total FROM ({MY_TOTALS}) t WHERE type = 'rooms' ORDER BY slot"
    )
    assert [ln.split()[-1] for ln in series.stdout.splitlines()[2:]] == [
        str(v) for _, v in per_slot
    ]
    hourly = my_query(
        my,
        "SELECT type, DATE_FORMAT(slot - INTERVAL MINUTE(slot) MINUTE, '%Y-%m-%dT%H:%i:%sZ'), "
        f"MAX(total) FROM ({MY_TOTALS}) t GROUP BY 1, 2 ORDER BY 1, 2",
    )
    exported = cli("export", "--ndjson", "--bucket", "1h", "--agg", "max", *window)
    assert exported.exit_code == 0, exported.stderr
    rows = sorted(
        (r["type"], r["timestamp"], Decimal(str(r["count"])))
        for r in map(json.loads, exported.stdout.splitlines())
    )
    assert rows == [(t, ts, Decimal(v)) for t, ts, v in hourly]
    assert len(rows) == 24
    page = tmp_path / "r.html"
    result = cli("report", "--html", str(page), *window)
    assert result.exit_code == 0, result.stderr
    report_matches(page, stats)
    expected = {
        t: (slot.replace(tzinfo=UTC), v)
        for t, (slot, v) in latest_totals(my_query(my, MY_TOTALS)).items()
    }
    assert anomaly_values({"ANALYTICS_DSN": my.url}, datetime(2026, 2, 2, 12, tzinfo=UTC)) == (
        expected
    )
