"""Benchmark: `export --csv` and `show --bucket` over N stored rows vs psql doing the same work.

Run by hand (not part of pytest):

    python tests/benchmarks/bench_show_export.py [--rows 10000000] [--repeat 3] [--dsn DSN]

It starts a throwaway embedded PostgreSQL (or uses --dsn: a superuser connection string),
creates a scratch database with the analytics table, loads N rows server-side with
generate_series (one metric type, spread over the last 30 days, so both measurements
read every row: the worst case), then measures in the same run, median of --repeat:
- `analytics-cli export --csv` vs psql's raw copy of the table,
  `\\copy (SELECT * FROM analytics) to stdout csv header` (no order, no conversion), both to
  /dev/null: wall-time ratio (target <= 1.5) and the tool's peak RSS (target <= 100 MB); and,
  for reference, vs psql running the tool's own COPY statement;
- `analytics-cli show --type activeInstances --since 30d --bucket 1h` vs psql running the
  same date_bin query: wall-time ratio (target <= 1.5);
- for reference, export vs the raw copy again on a store shaped like years of the built-in
  pack: N rows of nine types, one row each per 30-minute slot, stored slot by slot (whole
  seconds: shorter rows, so the raw copy is cheaper and the tool's fixed start-up and its
  sort weigh more).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analytics_cli.engines.postgresql import read
from analytics_cli.engines.postgresql.native import ensure_table
from analytics_cli.engines.shapes import EXPORT_KEYS, Selection
from analytics_cli.metrics import builtin_metrics
from tests.benchmarks.common import (
    Result,
    admin_server,
    cli_command,
    median_runs,
    print_table,
    psql_command,
    timed,
)
from tests.scratch import scratch_database

TYPE = "activeInstances"
RAW_COPY = "\\copy (SELECT * FROM analytics) to stdout csv header"
SPAN = timedelta(days=30)


def load(dsn: str, rows: int) -> float:
    """N rows of one type, evenly spread over the last 30 days (minus a minute).

    Inserted oldest first, as a collector stores them.
    """
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            ensure_table(conn, "analytics")
        step = (SPAN - timedelta(minutes=1)).total_seconds() / rows
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp", collected_at) '
            "SELECT %s, (g %% 1000) + (g %% 7) / 4.0, now() - make_interval(secs => g * %s), "
            "now() - make_interval(secs => g * %s) FROM generate_series(%s, 1, -1) g",
            (TYPE, step, step, rows),
        )
        conn.execute("VACUUM ANALYZE analytics")
    return time.perf_counter() - started


PACK = tuple(spec.type for spec in builtin_metrics() if spec.enabled)


def load_pack(dsn: str, rows: int) -> float:
    """About N rows of the nine built-in types, one each per 30-minute slot, oldest first."""
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            ensure_table(conn, "analytics")
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp", collected_at) '
            "SELECT t, g %% 1000, date_trunc('hour', now()) - make_interval(mins => g * 30), "
            "date_trunc('hour', now()) - make_interval(mins => g * 30, secs => 3) "
            "FROM generate_series(%s, 1, -1) g, unnest(%s::text[]) t",
            (-(-rows // len(PACK)), list(PACK)),
        )
        conn.execute("VACUUM ANALYZE analytics")
    return time.perf_counter() - started


def export_psql_query(conn: psycopg.Connection[object]) -> str:
    """The tool's own COPY statement, as psql's one-line \\copy of the same SELECT.

    The statement's timestamps rely on the session being on UTC: the psql runs get PGTZ.
    """
    statement = read.copy_statement(Selection("analytics"), "csv", EXPORT_KEYS).as_string(conn)
    prefix, suffix = "COPY (", ") TO STDOUT (FORMAT csv)"
    assert statement.startswith(prefix) and statement.endswith(suffix), statement
    inner = statement[len(prefix) : -len(suffix)]
    return f"\\copy ({inner}) to stdout csv"


def show_psql_query(conn: psycopg.Connection[object]) -> str:
    """The date_bin query `show --bucket 1h` runs, with the window computed by the server."""
    sel = Selection(
        "analytics",
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2000, 1, 2, tzinfo=UTC),
        (TYPE,),
        timedelta(hours=1),
        "avg",
    )
    text = read.select_rows(sel, literal=True).as_string(conn)
    text = text.replace("'2000-01-01 00:00:00+00:00'::timestamptz", "now() - interval '30 days'")
    text = text.replace("'2000-01-02 00:00:00+00:00'::timestamptz", "now()")
    assert "now() - interval '30 days'" in text and "now()" in text, text
    return text


def measure(admin: str, rows: int, repeat: int, keep: bool = False) -> list[Result]:
    """Load ``rows`` into a scratch store and measure export and show against psql."""
    with scratch_database(admin, "bench_show", keep) as dsn:
        print(f"loading {rows:,} rows ...", file=sys.stderr, flush=True)
        print(f"loaded in {load(dsn, rows):.1f}s", file=sys.stderr, flush=True)
        with psycopg.connect(dsn) as conn:
            copy_query = export_psql_query(conn)
            show_query = show_psql_query(conn)
        env = {**os.environ, "ANALYTICS_DSN": dsn, "PGTZ": "UTC", "PGDATESTYLE": "ISO, YMD"}
        for key in ("ANALYTICS_SOURCE_DSN", "ANALYTICS_STORE_DSN", "ANALYTICS_CLI_CONFIG"):
            env.pop(key, None)

        tool_export = cli_command("export", "--csv")
        psql_export = psql_command(dsn, "-c", copy_query)
        # What a user would run instead: the table as it is, no order, no conversion.
        psql_raw = psql_command(dsn, "-c", RAW_COPY)
        tool_show = cli_command(
            "show", "--type", TYPE, "--since", "30d", "--bucket", "1h", "--format", "table"
        )
        psql_show = psql_command(dsn, "-c", show_query)

        # Warm the caches once so neither side pays for the first read from disk.
        timed(psql_export, env)
        results = []
        for name, tool, psql, rss_target, target in (
            (f"export --csv, {rows:,} rows, vs psql raw \\copy", tool_export, psql_raw, 100.0, 1.5),
            (
                f"export --csv, {rows:,} rows, vs psql same query",
                tool_export,
                psql_export,
                None,
                None,
            ),
            (f"show --bucket 1h, {rows:,} rows, vs psql date_bin", tool_show, psql_show, None, 1.5),
        ):
            ours = median_runs(repeat, partial(timed, tool, env))
            theirs = median_runs(repeat, partial(timed, psql, env))
            ratio = ours.seconds / theirs.seconds
            results.append(
                Result(
                    name,
                    f"{ours.seconds:.2f} s / {theirs.seconds:.2f} s",
                    f"{ratio:.2f}x",
                    "report" if target is None else f"<= {target}x",
                    None if target is None else ratio <= target,
                )
            )
            if rss_target is not None:
                results.append(
                    Result(
                        f"export --csv peak RSS, {rows:,} rows",
                        f"{ours.max_rss_mb:.1f} MB",
                        "",
                        f"<= {rss_target:.0f} MB",
                        ours.max_rss_mb <= rss_target,
                    )
                )
    with scratch_database(admin, "bench_pack", keep) as dsn:
        print(f"loading {rows:,} rows of the built-in pack ...", file=sys.stderr, flush=True)
        print(f"loaded in {load_pack(dsn, rows):.1f}s", file=sys.stderr, flush=True)
        pack_env = {**env, "ANALYTICS_DSN": dsn}
        pack_raw = psql_command(dsn, "-c", RAW_COPY)
        ours = median_runs(repeat, partial(timed, tool_export, pack_env))
        theirs = median_runs(repeat, partial(timed, pack_raw, pack_env))
        results.append(
            Result(
                f"export --csv, {rows:,} rows of the 9 built-in types, vs psql raw \\copy",
                f"{ours.seconds:.2f} s / {theirs.seconds:.2f} s",
                f"{ours.seconds / theirs.seconds:.2f}x",
                "report",
                None,
            )
        )
    return results


def main() -> None:
    """Load, measure, print ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", help="superuser connection string (default: embedded server)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    with admin_server(args.dsn) as admin:
        results = measure(admin, args.rows, args.repeat, args.keep)
    print_table(f"median of {args.repeat} runs, stdout to /dev/null", results)


if __name__ == "__main__":
    main()
