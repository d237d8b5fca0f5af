"""`show`: the overview, series tables and charts, on a terminal and into a pipe."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from analytics_cli.engines.postgresql.native import ensure_table
from tests.conftest import Databases, cli, proc_env, run_proc

T0 = datetime(2026, 1, 5, tzinfo=UTC)
WINDOW = ("--since", "2026-01-05T00:00:00Z", "--until", "2026-01-05T04:00:00Z")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Eight 30-minute slots from 00:00; activeInstances misses the 02:00 slot (one gap).
INSTANCES = [3, 5, 4, 6, None, 8, 7, 9]
USERS = ["10", "12.5", "11", "14", "13", "15.25", "16", "18"]


def load_fixed(dsn: str, table: str = "analytics") -> None:
    """The fixed dataset most tests read."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            ensure_table(conn, table)
        rows = []
        for i, (inst, users) in enumerate(zip(INSTANCES, USERS, strict=True)):
            slot = T0 + timedelta(minutes=30 * i)
            if inst is not None:
                rows.append(("activeInstances", Decimal(inst), slot))
            rows.append(("dailyUsers", Decimal(users), slot))
        with conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO {table} (type, count, "timestamp", collected_at) '
                "VALUES (%s, %s, %s, %s + interval '5 seconds')",
                [(t, c, s, s) for t, c, s in rows],
            )


@pytest.fixture
def fixed(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """The store of ``dbs`` holding the fixed dataset, selected through the environment."""
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    load_fixed(dbs.store)
    return dbs


def lines(text: str) -> list[str]:
    """Output lines without colour codes or trailing padding."""
    return [ANSI.sub("", line).rstrip() for line in text.splitlines()]


OVERVIEW_PLAIN = [
    "window 2026-01-05 00:00 to 2026-01-05 04:00 (4h), times in UTC",
    "type             latest  at                min    avg  max  points  gaps",
    "activeInstances       9  2026-01-05 03:30    3      6    9       7     1",
    "dailyUsers           18  2026-01-05 03:30   10  13.72   18       8     0",
]


def test_overview_into_a_pipe_is_plain(fixed: Databases) -> None:
    result = cli("show", *WINDOW)
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.splitlines() == OVERVIEW_PLAIN
    assert "\x1b[" not in result.stdout


def test_overview_on_a_terminal_has_a_table_and_sparklines(
    fixed: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = cli("show", *WINDOW)
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "\x1b[" in result.stdout
    # Borderless: two blanks between columns, as the plain table (every column fits at 100).
    assert lines(result.stdout) == [
        "window 2026-01-05 00:00 to 2026-01-05 04:00 (4h), times in UTC",
        "type             latest  at                min    avg  max  points  gaps  trend",
        "activeInstances       9  2026-01-05 03:30    3      6    9       7     1  ▁▃▂▅ ▇▆█",
        "dailyUsers           18  2026-01-05 03:30   10  13.72   18       8     0  ▁▃▂▅▄▆▇█",
    ]


def test_series_table_into_a_pipe(fixed: Databases) -> None:
    result = cli("show", "-t", "activeInstances", *WINDOW)
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "window 2026-01-05 00:00 to 2026-01-05 04:00 (4h), times in UTC",
        "time              activeInstances",
        "2026-01-05 00:00                3",
        "2026-01-05 00:30                5",
        "2026-01-05 01:00                4",
        "2026-01-05 01:30                6",
        "2026-01-05 02:30                8",
        "2026-01-05 03:00                7",
        "2026-01-05 03:30                9",
    ]


# Round y ticks (step 5) from 0 to 20 cover both series (3 to 18); x labels at round times,
# the midnight by its date, none with seconds.
CHART = [
    "20 ┤",
    "   │                                                                            ⣀⣀⣀⠤⠤⠤⠒⠒",
    "   │                                                          ⢀⣀⣀⣀⡠⠤⠤⠤⠤⠤⠔⠒⠒⠒⠒⠉⠉⠉",
    "15 ┤                                 ⣀⣀⠤⠤⠤⢄⣀⣀⣀⣀⣀⡀    ⣀⣀⡠⠤⠔⠒⠒⠉⠉⠁",
    "   │        ⢀⣀⡠⠤⠤⢄⣀⣀⣀⡀        ⢀⣀⠤⠔⠒⠊⠉           ⠈⠉⠉⠉⠉",
    "10 ┤⣀⡠⠤⠔⠒⠒⠉⠉⠁        ⠈⠉⠉⠉⠑⠒⠒⠊⠉⠁",
    "   │                                                                                ⣀⣀⡠⠤",
    "   │                                                           ⠈⠉⠑⠒⠒⠒⠢⠤⠤⠤⢄⣀⣀⣀⠤⠤⠔⠒⠊⠉⠉",
    " 5 ┤          ⢀⣀⣀⡀               ⢀⣀⣀⠤⠤⠔⠒",
    "   │ ⢀⣀⡠⠤⠤⠒⠒⠊⠉⠁  ⠈⠉⠉⠉⠑⠒⠒⠒⠢⠤⠤⠤⠒⠒⠊⠉⠁",
    "   │⠉⠁",
    " 0 ┤",
    "   └┬──────────┬───────────┬───────────┬───────────┬───────────┬───────────┬───────────┬───────────┬",
    "    01-05    00:30       01:00       01:30       02:00       02:30       03:00       03:30     04:00",
]
SUMMARY = OVERVIEW_PLAIN[1:]


def test_chart_on_a_terminal(fixed: Databases, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = cli("show", "-t", "activeInstances", "--type", "dailyUsers", *WINDOW)
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "\x1b[36m" in result.stdout  # the first series is coloured
    assert lines(result.stdout) == [
        "window 2026-01-05 00:00 to 2026-01-05 04:00 (4h), times in UTC",
        "● activeInstances   ● dailyUsers",
        *CHART,
        *SUMMARY,
    ]


def test_chart_asked_for_into_a_pipe_has_no_colour_or_box_drawing(fixed: Databases) -> None:
    result = cli("show", "activeInstances", "dailyUsers", "--format", "chart", *WINDOW)
    assert result.exit_code == 0
    assert result.stderr == ""
    plain = [
        line.replace("┤", "|")
        .replace("│", "|")
        .replace("└", "+")
        .replace("─", "-")
        .replace("┬", "+")
        for line in CHART
    ]
    assert result.stdout.splitlines() == [
        "window 2026-01-05 00:00 to 2026-01-05 04:00 (4h), times in UTC",
        "activeInstances  dailyUsers",
        *plain,
        *SUMMARY,
    ]


def test_json_and_csv_give_every_point(fixed: Databases) -> None:
    result = cli("show", "-t", "dailyUsers", "-f", "json", *WINDOW)
    assert result.exit_code == 0
    assert result.stderr == ""
    points = json.loads(result.stdout)
    assert points[1] == {
        "type": "dailyUsers",
        "timestamp": "2026-01-05T00:30:00Z",
        "count": 12.5,
        "metadata": {},
    }
    assert [p["count"] for p in points] == [float(u) for u in USERS]
    csv_out = cli("show", "-t", "activeInstances", "-f", "csv", "--bucket", "1h", *WINDOW)
    assert csv_out.exit_code == 0
    assert csv_out.stdout.splitlines() == [
        "type,count,timestamp",
        "activeInstances,4.0000000000000000,2026-01-05T00:00:00Z",
        "activeInstances,5.0000000000000000,2026-01-05T01:00:00Z",
        "activeInstances,8.0000000000000000,2026-01-05T02:00:00Z",
        "activeInstances,8.0000000000000000,2026-01-05T03:00:00Z",
    ]


def test_show_csv_has_the_export_column_order(fixed: Databases) -> None:
    shown = cli("show", "-t", "dailyUsers", "-f", "csv", *WINDOW)
    exported = cli("export", "--csv", "-t", "dailyUsers", *WINDOW)
    assert (shown.exit_code, shown.stderr) == (0, "")
    assert (exported.exit_code, exported.stderr) == (0, "")
    shown_rows = list(csv.reader(io.StringIO(shown.stdout)))
    exported_rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert shown_rows[0] == ["type", "count", "timestamp", "metadata"]
    assert exported_rows[0] == ["type", "count", "timestamp", "metadata", "collected_at"]
    # The same columns at the same places: a script reading one reads the other.
    assert [r[:4] for r in exported_rows] == shown_rows
    assert shown_rows[2] == ["dailyUsers", "12.5", "2026-01-05T00:30:00Z", "{}"]
    assert len(shown_rows) == len(USERS) + 1


def test_automatic_bucket_is_named(fixed: Databases) -> None:
    # 60 rows is the table's budget; a 2-day window of 30-minute slots would need 96.
    with psycopg.connect(fixed.store, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") SELECT 'dailyUsers', g, "
            "%s::timestamptz - g * interval '30 minutes' FROM generate_series(1, 96) g",
            (T0,),
        )
    result = cli("show", "-t", "dailyUsers", "--since", "2026-01-03", "--until", "2026-01-05")
    assert result.exit_code == 0
    out = result.stdout.splitlines()
    assert out[0] == (
        "window 2026-01-03 00:00 to 2026-01-05 00:00 (2d), times in UTC; bucket 1h (automatic), avg"
    )
    assert out[1:3] == ["time              dailyUsers", "2026-01-03 00:00        95.5"]
    assert len(out) == 2 + 48


def test_time_zone(fixed: Databases) -> None:
    result = cli("show", "-t", "activeInstances", "--tz", "Asia/Kolkata", *WINDOW)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:3] == [
        "window 2026-01-05 05:30 to 2026-01-05 09:30 (4h), times in Asia/Kolkata",
        "time              activeInstances",
        "2026-01-05 05:30                3",
    ]
    bad = cli("show", "--tz", "Mars/Olympus", *WINDOW)
    assert bad.exit_code == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "error: unknown time zone 'Mars/Olympus'",
        "hint: use UTC, local or an IANA name: Europe/Paris",
    ]


def test_unknown_type_suggests(fixed: Databases) -> None:
    result = cli("show", "-t", "activeinstance", *WINDOW)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: unknown metric type 'activeinstance'",
        "hint: did you mean 'activeInstances'?",
    ]


def _days_back() -> set[int]:
    """--since in whole days that reaches the fixed data's first slot (T0), rounded up."""
    now = datetime.now(UTC)
    return {
        -(-(now - T0) // timedelta(days=1)),
        -(-(now + timedelta(seconds=5) - T0) // timedelta(days=1)),
    }


def test_empty_window(fixed: Databases) -> None:
    before = _days_back()
    result = cli("show", "--since", "2025-01-01", "--until", "2025-01-02")
    assert result.exit_code == 0
    assert result.stdout == ""
    # The data lies after --until: the hint opens the end as well.
    assert result.stderr in {
        "no data in this window (window 2025-01-01 00:00 to 2025-01-02 00:00 (1d), times in UTC)\n"
        "the newest stored slot of any metric is 2026-01-05 03:30, the oldest 2026-01-05 00:00: "
        f"try --since {days}d --until now\n"
        for days in before | _days_back()
    }


def test_empty_window_says_where_the_data_is_and_the_hint_shows_it(fixed: Databases) -> None:
    result = cli("show", "-t", "dailyUsers", "--since", "3d")
    assert result.exit_code == 0
    assert result.stdout == ""
    first, second = result.stderr.splitlines()
    assert first.startswith("no data in this window (window ")
    hint = re.fullmatch(
        r"the newest stored slot of dailyUsers is 2026-01-05 03:30, the oldest 2026-01-05 00:00: "
        r"try --since (\d+)d",
        second,
    )
    assert hint is not None, second
    assert int(hint.group(1)) in _days_back()
    # The suggested --since brings the stored points back.
    shown = cli("show", "-t", "dailyUsers", "--since", f"{hint.group(1)}d", "-f", "csv")
    assert (shown.exit_code, shown.stderr) == (0, "")
    assert len(shown.stdout.splitlines()) == len(USERS) + 1


def test_empty_window_of_json_and_csv_says_where_the_data_is(fixed: Databases) -> None:
    days = _days_back()
    result = cli("show", "-t", "activeInstances", "-t", "dailyUsers", "--since", "1h", "-f", "csv")
    assert result.exit_code == 0
    assert result.stdout == "type,count,timestamp,metadata\n"
    assert result.stderr in {
        "no data in this window\n"
        "the newest stored slot of activeInstances, dailyUsers is 2026-01-05 03:30, "
        f"the oldest 2026-01-05 00:00: try --since {d}d\n"
        for d in days | _days_back()
    }
    # No stored row matches --where at all: nothing to point at.
    nowhere = cli("show", "-t", "dailyUsers", "--where", "location=Nowhere", "-f", "json")
    assert (nowhere.exit_code, nowhere.stdout) == (0, "[]\n")
    assert nowhere.stderr == "no data in this window\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "error: invalid --since 'yesterday'"),
        (("--since", "0d"), "error: invalid --since '0d': must be greater than zero"),
        (("--since", "1d", "--until", "2d"), "error: --since must be before --until"),
        (("--bucket", "soon"), "error: invalid --bucket 'soon'"),
    ],
)
def test_bad_window_exits_2(fixed: Databases, args: tuple[str, ...], message: str) -> None:
    result = cli("show", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == message


def test_store_without_table_says_no_data_yet(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_DSN", dbs.store)
    result = cli("show")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == (
        "no data yet: the store has no table analytics (run 'analytics-cli collect' first)\n"
    )


def test_foreign_table_is_refused(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_DSN", dbs.source)  # holds the iR Engine's own analytics
    with dbs.source_conn() as conn:
        # One more column: neither the analytics-cli nor the iR Engine layout any more.
        conn.execute("ALTER TABLE analytics ADD COLUMN note text")
    result = cli("show")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: table 'analytics' already exists with columns (")
    assert result.stderr.splitlines()[1] == (
        'hint: point [store] table at another name, for example table = "analytics_cli"'
    )


BUCKET_SQL = {
    "avg": "avg(count)",
    "min": "min(count)",
    "max": "max(count)",
    "sum": "sum(count)",
    "last": '(array_agg(count ORDER BY "timestamp" DESC))[1]',
}


@pytest.mark.parametrize("agg", sorted(BUCKET_SQL))
@pytest.mark.parametrize("bucket", [("1h", 3600), ("1d", 86400)])
def test_bucketed_values_match_sql(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch, agg: str, bucket: tuple[str, int]
) -> None:
    monkeypatch.setenv("ANALYTICS_DSN", dbs.store)
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        with conn.transaction():
            ensure_table(conn, "analytics")
        # Irregular times (every 7 minutes 13 seconds) and fractional counts over three days.
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp") SELECT t, '
            "round(((g * 37) % 101)::numeric / 7, 3), "
            "'2026-01-02T05:00:00Z'::timestamptz + g * interval '433 seconds' "
            "FROM generate_series(0, 600) g, unnest(array['a', 'b']) t"
        )
        # Independent: a slot's value is the sum of its rows (slots of the 30-minute interval,
        # several rows each here), buckets aggregate those values; both by epoch arithmetic
        # from the Monday 2000-01-03 origin.
        slots = (
            "SELECT type, sum(count) AS count, to_timestamp(946857600 + floor((extract(epoch "
            'FROM "timestamp") - 946857600) / 1800) * 1800) AS "timestamp" FROM analytics '
            "WHERE type = 'a' AND \"timestamp\" >= '2026-01-02T06:00:00Z' "
            "AND \"timestamp\" < '2026-01-04T00:00:00Z' GROUP BY 1, 3"
        )
        expected = conn.execute(
            f"SELECT type, to_char(b AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
            f"{BUCKET_SQL[agg]} FROM (SELECT *, to_timestamp(946857600 + floor((extract(epoch "
            f'FROM "timestamp") - 946857600) / %s) * %s) AS b FROM ({slots}) t) s '
            "GROUP BY type, b ORDER BY b",
            (bucket[1], bucket[1]),
        ).fetchall()
    window = ("--since", "2026-01-02T06:00:00Z", "--until", "2026-01-04T00:00:00Z")
    args = ("-t", "a", "--bucket", bucket[0], "--agg", agg, *window)
    shown = cli("show", "-f", "json", *args)
    assert shown.exit_code == 0, shown.stderr
    got = [(p["type"], p["timestamp"], Decimal(str(p["count"]))) for p in json.loads(shown.stdout)]
    assert len(got) == len(expected) > 1
    for (t, ts, value), (et, ets, evalue) in zip(got, expected, strict=True):
        assert (t, ts) == (et, ets)
        assert abs(value - evalue) < Decimal("1e-9")
    exported = cli("export", "--ndjson", *args)
    assert exported.exit_code == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [(r["type"], r["timestamp"], r["metadata"]) for r in rows] == [
        (e[0], e[1], {}) for e in expected
    ]
    for row, (_, _, evalue) in zip(rows, expected, strict=True):
        assert abs(Decimal(str(row["count"])) - evalue) < Decimal("1e-9")


def test_embedded_default_without_connection_string() -> None:
    # No DSN anywhere: the embedded server starts in the private HOME; nothing collected yet.
    result = run_proc("show", env=proc_env())
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err[0].startswith("using the embedded PostgreSQL in ")
    assert err[-1] == (
        "no data yet: the store has no table analytics (run 'analytics-cli collect' first)"
    )
