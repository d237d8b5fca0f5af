"""The monthly-partitioned native store: db init, partitions on demand, prune by drop."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from analytics_cli.config import Settings
from analytics_cli.prune import prune
from analytics_cli.store.layout import ensure
from analytics_cli.store.partitions import create_month, month_of, next_month
from analytics_cli.timeutil import utcnow
from tests.conftest import Databases, cli

# The native table as releases before partitioning created it (it must keep working).
PLAIN_SCHEMA = """
CREATE TABLE {t} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL, count numeric NOT NULL, "timestamp" timestamptz NOT NULL,
    collected_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    UNIQUE (type, "timestamp", metadata));
CREATE INDEX ON {t} (type, "timestamp");
"""


@pytest.fixture
def env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def where_rows(dbs: Databases, table: str = "analytics") -> list[tuple[str, str, datetime]]:
    """(partition holding it, type, slot) of every row."""
    with dbs.store_conn() as conn:
        query = sql.SQL('SELECT tableoid::regclass::text, type, "timestamp" FROM {} ORDER BY 3, 2')
        return [
            (str(a), str(b), c) for a, b, c in conn.execute(query.format(sql.Identifier(table)))
        ]  # type: ignore[misc]


def part_names(dbs: Databases, table: str = "analytics") -> list[str]:
    with dbs.store_conn() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits "
                "WHERE inhparent = %s::regclass ORDER BY 1",
                (table,),
            )
        ]


def test_db_init_makes_this_and_next_month_and_a_default(env: Databases) -> None:
    result = cli("db", "init")
    assert result.exit_code == 0, result.stderr
    this = month_of(utcnow())
    expected = sorted(
        ["analytics_default", f"analytics_p{this:%Y%m}", f"analytics_p{next_month(this):%Y%m}"]
    )
    assert part_names(env) == expected
    with env.store_conn() as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'analytics'::regclass")
        assert kind.fetchone() == ("p",)


def test_month_arithmetic_crosses_the_year() -> None:
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month(december) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_month(datetime(2027, 1, 1, tzinfo=UTC)) == datetime(2027, 2, 1, tzinfo=UTC)
    # The last microsecond of a month belongs to it; its end belongs to the next.
    edge = datetime(2027, 1, 1, tzinfo=UTC)
    assert month_of(edge - timedelta(microseconds=1)) == december
    assert month_of(edge) == edge


def test_a_slot_without_a_partition_lands_in_its_own_month(env: Databases) -> None:
    assert cli("db", "init").exit_code == 0
    # A row written by hand for an old month lands in the DEFAULT partition...
    with env.store_conn() as conn:
        conn.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('old', 7, %s)",
            (datetime(2024, 3, 2, tzinfo=UTC),),
        )
    assert where_rows(env)[0][0] == "analytics_default"
    # ...and a cycle for that month creates the month, which takes that row along.
    result = cli("collect", "--at", "2024-03-15T10:00:00Z", "--only", "activeInstances")
    assert result.exit_code == 0, result.stderr
    assert where_rows(env) == [
        ("analytics_p202403", "old", datetime(2024, 3, 2, tzinfo=UTC)),
        ("analytics_p202403", "activeInstances", datetime(2024, 3, 15, 10, tzinfo=UTC)),
    ]
    # The unique key still holds across the partitioned table: a second run adds nothing.
    again = cli("collect", "--at", "2024-03-15T10:00:00Z", "--only", "activeInstances")
    assert again.exit_code == 0, again.stderr
    assert len(where_rows(env)) == 2


def test_concurrent_creators_make_one_month(env: Databases) -> None:
    settings = Settings(store_dsn=env.store)
    with psycopg.connect(env.store) as conn:
        ensure(conn, settings)
        conn.commit()
    month = datetime(2023, 6, 1, tzinfo=UTC)
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def make() -> None:
        with psycopg.connect(env.store) as conn:
            barrier.wait()
            results.append(create_month(conn, "analytics", month))
            conn.commit()

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert part_names(env).count("analytics_p202306") == 1


def test_an_unpartitioned_table_keeps_working(env: Databases) -> None:
    with env.store_conn() as conn:
        conn.execute(PLAIN_SCHEMA.format(t="analytics"))  # type: ignore[arg-type]
    result = cli("collect", "--at", "2024-03-15T10:00:00Z", "--only", "activeInstances")
    assert result.exit_code == 0, result.stderr
    assert where_rows(env) == [
        ("analytics", "activeInstances", datetime(2024, 3, 15, 10, tzinfo=UTC))
    ]
    assert part_names(env) == []
    done = cli("prune", "--older-than", "1d", "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("deleted 1 rows older than ")
    assert done.stdout.endswith(" (1 batch)\n")


def _fill(dbs: Databases, table: str, start: datetime, hours: int) -> None:
    """Two series, one row an hour each, from ``start``: the same rows in any table."""
    with dbs.store_conn() as conn:
        conn.execute(
            sql.SQL(
                'INSERT INTO {} (type, count, "timestamp", metadata) '
                "SELECT t, h, %s + make_interval(hours => h), "
                "jsonb_build_object('n', h %% 3) "
                "FROM generate_series(0, %s - 1) AS h, unnest(ARRAY['a', 'b']) AS t"
            ).format(sql.Identifier(table)),
            (start, hours),
        )


def _rows(dbs: Databases, table: str) -> list[tuple[object, ...]]:
    with dbs.store_conn() as conn:
        query = sql.SQL('SELECT type, count, "timestamp", metadata FROM {} ORDER BY 3, 1')
        return list(conn.execute(query.format(sql.Identifier(table))))


@pytest.mark.parametrize(
    "cutoff",
    [
        datetime(2025, 4, 1, tzinfo=UTC),  # exactly a month's end: whole partitions only
        datetime(2025, 4, 1, tzinfo=UTC) - timedelta(microseconds=1),  # one row short of it
        datetime(2025, 4, 17, 5, 30, tzinfo=UTC),  # a partial edge month
        datetime(2024, 12, 31, tzinfo=UTC),  # before every row: nothing
    ],
)
def test_prune_by_drop_removes_exactly_what_delete_removes(
    env: Databases, cutoff: datetime
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    hours = 24 * 150  # January to the end of May
    with env.store_conn() as conn:
        conn.execute(PLAIN_SCHEMA.format(t="plain"))  # type: ignore[arg-type]
        ensure(conn, Settings(store_dsn=env.store))
        month = start
        while month < start + timedelta(hours=hours):
            create_month(conn, "analytics", month)
            month = next_month(month)
    _fill(env, "plain", start, hours)
    _fill(env, "analytics", start, hours)
    assert _rows(env, "plain") == _rows(env, "analytics")
    dropped_before = part_names(env)

    by_delete = prune(Settings(store_dsn=env.store, table="plain"), cutoff, batch_size=1000)
    by_drop = prune(Settings(store_dsn=env.store), cutoff, batch_size=1000)

    assert _rows(env, "plain") == _rows(env, "analytics")
    assert by_drop.rows == by_delete.rows
    # Independently counted: the hours from the start up to the cutoff, two series each.
    expected = max(0, -(-int((cutoff - start).total_seconds()) // 3600)) * 2
    assert by_delete.rows == expected
    months = [datetime(2025, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4, 5)]
    whole = [f"{m:%Y%m}" for m in months if next_month(m) <= cutoff]
    assert by_drop.dropped == len(whole)
    assert by_delete.dropped == 0
    assert part_names(env) == [p for p in dropped_before if p[-6:] not in whole]
