"""Benchmark: `prune` of one year by dropping monthly partitions vs the batched DELETE.

Run by hand (not part of pytest):

    python tests/benchmarks/bench_prune.py [--series 120] [--dsn DSN]

It starts a throwaway embedded PostgreSQL (or uses --dsn: a superuser connection string),
creates a scratch database with two native tables holding the same rows, loaded
server-side with generate_series: --series series every 30 minutes from 2025-01-01 to
2026-02-01 (13 months). `plain` is the unpartitioned table of earlier releases, `analytics`
the monthly-partitioned one of `db init`. Then, in the same run, the
prune of one year (cutoff 2026-01-01: twelve whole months) through the tool's own prune,
partition drop vs batched DELETE (10,000 rows a transaction): wall-time ratio, target
<= 0.01x. Both report the same count and leave the same rows (checked).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analytics_cli.config.schema import Settings
from analytics_cli.engines.postgresql.partitions import create_month, next_month
from analytics_cli.prune import prune
from tests.benchmarks.common import Result, admin_server, print_table
from tests.scratch import scratch_database

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)
COLUMNS = """(
    id bigint GENERATED ALWAYS AS IDENTITY,
    type text NOT NULL, count numeric NOT NULL, "timestamp" timestamptz NOT NULL,
    collected_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb)"""
# The keys and index of each table, as schema.sql (partitioned) and earlier releases
# (plain) make them; built after the load, which is several times faster than inserting
# through them (the rows and the finished tables are the same).
KEYS = {
    "plain": 'ALTER TABLE plain ADD PRIMARY KEY (id), ADD UNIQUE (type, "timestamp", metadata)',
    "analytics": 'ALTER TABLE analytics ADD PRIMARY KEY (id, "timestamp"), '
    'ADD UNIQUE (type, "timestamp", metadata)',
}


def load(dsn: str, series: int) -> tuple[int, float]:
    """The same rows in both tables: (rows, seconds)."""
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE plain {COLUMNS}")  # type: ignore[call-overload]
        conn.execute(  # type: ignore[call-overload]
            f'CREATE TABLE analytics {COLUMNS} PARTITION BY RANGE ("timestamp")'
        )
        conn.execute("CREATE TABLE analytics_default PARTITION OF analytics DEFAULT")
        with conn.transaction():
            month = START
            while month < END:
                create_month(conn, "analytics", month)
                month = next_month(month)
        for table in ("plain", "analytics"):
            conn.execute(
                sql.SQL(
                    'INSERT INTO {} (type, count, "timestamp", collected_at, metadata) '
                    "SELECT 'activeInstances', s, t, t, jsonb_build_object('location', 'l' || s) "
                    "FROM generate_series(%s::timestamptz, %s::timestamptz - interval '30 min', "
                    "interval '30 min') AS t, generate_series(1, %s) AS s"
                ).format(sql.Identifier(table)),
                (START, END, series),
            )
            conn.execute(KEYS[table])  # type: ignore[call-overload]
            conn.execute(
                sql.SQL('CREATE INDEX ON {} (type, "timestamp")').format(sql.Identifier(table))
            )
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        row = conn.execute("SELECT count(*) FROM plain").fetchone()
    return (int(row[0]) if row else 0), time.perf_counter() - started


def _rows(dsn: str, table: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        query = sql.SQL('SELECT type, count, "timestamp", metadata FROM {} ORDER BY 3, 4')
        return list(conn.execute(query.format(sql.Identifier(table))))


def _timed_prune(dsn: str, table: str, cutoff: datetime) -> tuple[float, int]:
    started = time.perf_counter()
    done = prune(Settings(store_dsn=dsn, table=table), cutoff)
    return time.perf_counter() - started, done.rows


def measure(admin: str, series: int) -> list[Result]:
    """Build, prune both ways at two cutoffs, check they agree; the table's lines."""
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)  # one year: twelve whole months
    with scratch_database(admin, "bench_prune") as dsn:
        total, build = load(dsn, series)
        print(f"built {total:,} rows x 2 tables in {build:.1f} s", file=sys.stderr)
        delete_s, deleted = _timed_prune(dsn, "plain", cutoff)
        drop_s, dropped = _timed_prune(dsn, "analytics", cutoff)
        if deleted != dropped or _rows(dsn, "plain") != _rows(dsn, "analytics"):
            raise SystemExit("prune by drop and by DELETE disagree")
    ratio = drop_s / delete_s
    return [
        Result(
            f"prune one year, {deleted:,} of {total:,} rows: partition drop vs batched DELETE",
            f"{drop_s:.3f} s / {delete_s:.2f} s",
            f"{ratio:.4f}x",
            "<= 0.01x",
            ratio <= 0.01,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", help="superuser connection string (default: embedded server)")
    parser.add_argument("--series", type=int, default=120, help="series per 30-minute slot")
    args = parser.parse_args()
    with admin_server(args.dsn) as admin:
        print_table("prune: partition drop vs batched DELETE", measure(admin, args.series))


if __name__ == "__main__":
    main()
