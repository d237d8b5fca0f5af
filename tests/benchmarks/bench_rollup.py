"""Benchmark: reads from the hourly and daily rollups vs the stored rows, their upkeep, RSS.

Run by hand (not part of pytest):

    python tests/benchmarks/bench_rollup.py [--series 200] [--runs 3] [--dsn DSN]

It starts a throwaway embedded PostgreSQL (or uses --dsn: a superuser connection string),
creates a scratch database with the monthly-partitioned native table holding two years of
--series series every 30 minutes up to now (200: about 7 M rows), loaded server-side with
generate_series, then `db init` builds its rollups. In the same run, median of --runs:
- `show --since 2y --bucket 1d` on the rollups vs the same command on the stored rows
  (rollups switched off in their state table): target <= 0.05x; both print the same text;
- a collect cycle storing the 200-series metric with rollup upkeep vs without: <= 1.1x;
- the peak RSS of show, export, report, status, prune, collect and db rollup --rebuild on
  that store: <= 100 MB each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analytics_cli.engines.postgresql.partitions import create_month, month_of, next_month
from tests.benchmarks.common import (
    Result,
    Run,
    admin_server,
    cli_command,
    median_runs,
    print_table,
    timed,
)
from tests.scratch import scratch_database

SLOT = timedelta(minutes=30)
COLUMNS = """(
    id bigint GENERATED ALWAYS AS IDENTITY,
    type text NOT NULL, count numeric NOT NULL, "timestamp" timestamptz NOT NULL,
    collected_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb)"""


def _now_slot() -> datetime:
    now = datetime.now(UTC)
    return now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)


def load(dsn: str, series: int) -> tuple[int, datetime]:
    """Two years of ``series`` series every 30 minutes up to now: (rows, first slot)."""
    end = _now_slot()
    # From the second whole hour of the window `--since 2y` opens: while the run lasts, no
    # slot lies in the window's first partial hour, whose rows no rollup can tell apart.
    start = (end - timedelta(days=730)).replace(minute=0) + timedelta(hours=2)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE analytics {COLUMNS} PARTITION BY RANGE ("timestamp")')  # type: ignore[call-overload]
        conn.execute("CREATE TABLE analytics_default PARTITION OF analytics DEFAULT")
        with conn.transaction():
            month = month_of(start - timedelta(days=40))
            while month <= next_month(month_of(end)):
                create_month(conn, "analytics", month)
                month = next_month(month)
        # Counts with fractions, a value per series and slot; the keys after the load (the
        # rows and the finished table are the same, several times faster).
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp", collected_at, metadata) '
            "SELECT 'usage', ((s * 7 + extract(epoch FROM t)::bigint / 1800) %% 1000) / 4.0, "
            "t, t, jsonb_build_object('location', 'l' || s) "
            "FROM generate_series(%s::timestamptz, %s::timestamptz, interval '30 min') AS t, "
            "generate_series(1, %s) AS s",
            (start, end, series),
        )
        conn.execute(
            'ALTER TABLE analytics ADD PRIMARY KEY (id, "timestamp"), '
            'ADD UNIQUE (type, "timestamp", metadata)'
        )
        conn.execute('CREATE INDEX ON analytics (type, "timestamp")')
        conn.execute("VACUUM ANALYZE analytics")
        row = conn.execute("SELECT count(*) FROM analytics").fetchone()
    return (int(row[0]) if row else 0), start


def _set_built(dsn: str, built: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE analytics_rollup_state SET built = %s", (built,))


def _output(cmd: list[str], env: dict[str, str]) -> str:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout


def measure(admin: str, series: int, runs: int) -> list[Result]:
    """Build the store, then measure reads, upkeep and peak RSS; the table's lines."""
    work = Path(tempfile.mkdtemp(prefix="analytics-cli-bench-rollup-"))
    try:
        with scratch_database(admin, "bench_rollup") as dsn:
            started = time.perf_counter()
            rows, first = load(dsn, series)
            loaded = time.perf_counter() - started
            print(f"loaded {rows:,} rows in {loaded:.0f} s", file=sys.stderr)
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("ANALYTICS_DSN", "ANALYTICS_SOURCE_DSN", "ANALYTICS_STORE_DSN")
            }
            env["ANALYTICS_SOURCE_DSN"] = env["ANALYTICS_STORE_DSN"] = dsn
            config = work / "c.toml"
            config.write_text(
                '[[metric]]\ntype = "usage"\ndimensions = ["location"]\n'
                f"max_series = {series}\n"
                "sql = \"SELECT 'l' || g AS location, g / 4.0 AS count "
                f'FROM generate_series(1, {series}) g"\n'
            )

            def cli(*args: str) -> list[str]:
                return cli_command("-q", "--config", str(config), *args)

            started = time.perf_counter()
            init = timed(cli("db", "init"), env)  # builds the rollups of the rows there
            print(f"db init built the rollups in {init.seconds:.0f} s", file=sys.stderr)
            show = cli("show", "--type", "usage", "--since", "2y", "--bucket", "1d", "-f", "csv")
            rolled_text = _output(show, env)
            rolled = median_runs(runs, lambda: timed(show, env))
            rolled_read = _read_seconds(dsn, runs)
            _set_built(dsn, False)
            raw_text = _output(show, env)
            raw = median_runs(max(1, runs // 2 + 1), lambda: timed(show, env))
            raw_read = _read_seconds(dsn, max(1, runs // 2 + 1))
            if raw_text != rolled_text or len(raw_text.splitlines()) < 700:
                raise SystemExit("show on rollups and on rows disagree")
            # Cycles into fresh slots a month before the history (outside the window `show`
            # reads): each inserts its rows and keeps its hour and day rolled up.
            slots = iter(first - timedelta(days=30) - SLOT * k for k in range(1, 1000))

            def cycle() -> Run:
                return timed(
                    cli("collect", "--only", "usage", "--at", next(slots).isoformat()), env
                )

            cycle()  # warm-up
            without = median_runs(runs * 2, cycle)
            _set_built(dsn, True)
            cycle()
            upkeep = median_runs(runs * 2, cycle)
            peaks: dict[str, Run] = {
                "show --since 2y --bucket 1d": rolled,
                f"collect ({series} series, upkeep)": upkeep,
                f"db init (rollups of {rows:,} rows)": init,
            }
            for name, args in (
                ("show --since 2y (auto bucket)", ("show", "--type", "usage", "--since", "2y")),
                ("show (overview)", ("show", "--since", "2y")),
                ("export --bucket 1d --since 2y", ("export", "--bucket", "1d", "--since", "2y")),
                ("export --since 30d (rows)", ("export", "--since", "30d")),
                ("report --since 2y", ("report", "--html", str(work / "r.html"), "--since", "2y")),
                ("status", ("status",)),
                ("db rollup --rebuild", ("db", "rollup", "--rebuild")),
                ("prune --older-than 180d", ("prune", "--older-than", "180d", "--yes")),
            ):
                peaks[name] = timed(cli(*args), env) if name != "status" else _status(cli, env)
            after = _output(show, env)
            if after != rolled_text:
                (work.parent / "bench-rollup-before.csv").write_text(rolled_text)
                (work.parent / "bench-rollup-after.csv").write_text(after)
                raise SystemExit("show --since 2y --bucket 1d changed after prune")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = rolled.seconds / raw.seconds
    read_ratio = rolled_read / raw_read
    cost = upkeep.seconds / without.seconds
    results = [
        Result(
            f"show --since 2y --bucket 1d, {rows:,} rows: rollups vs rows",
            f"{rolled.seconds:.3f} s / {raw.seconds:.2f} s",
            f"{ratio:.3f}x",
            "<= 0.05x",
            ratio <= 0.05,
        ),
        Result(
            "the same read in one process (no interpreter start-up): rollups vs rows",
            f"{rolled_read:.3f} s / {raw_read:.2f} s",
            f"{read_ratio:.3f}x",
            "<= 0.05x",
            read_ratio <= 0.05,
        ),
        Result(
            f"collect cycle of {series} series: rollup upkeep vs none",
            f"{upkeep.seconds:.3f} s / {without.seconds:.3f} s",
            f"{cost:.2f}x",
            "<= 1.1x",
            cost <= 1.1,
        ),
        Result(
            "show --since 2y --bucket 1d after prune --older-than 180d", "same text", "", "", True
        ),
    ]
    for name, run in peaks.items():
        results.append(
            Result(
                f"peak RSS: {name}",
                f"{run.max_rss_mb:.1f} MB ({run.seconds:.2f} s)",
                "",
                "<= 100 MB",
                run.max_rss_mb <= 100,
            )
        )
    return results


def _read_seconds(dsn: str, runs: int) -> float:
    """Median time of show's read (history.show_data) of two years in daily buckets."""
    import statistics

    from analytics_cli.config.schema import Settings
    from analytics_cli.engines.shapes import Selection
    from analytics_cli.history import show_data

    settings = Settings(store_dsn=dsn)
    times = []
    for _ in range(runs):
        now = datetime.now(UTC)
        sel = Selection("analytics", now - timedelta(days=730), now, ("usage",), timedelta(days=1))
        started = time.perf_counter()
        data = show_data(settings, sel, series=True, summary=False)
        times.append(time.perf_counter() - started)
        if len(data.points) < 700:
            raise SystemExit(f"show read {len(data.points)} points")
    return statistics.median(times)


def _status(cli: object, env: dict[str, str]) -> Run:
    """status exits 1 on this store (the metric is no built-in, the built-ins are stale)."""
    from tests.benchmarks.common import _MEASURE

    assert callable(cli)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as peak:
        subprocess.run(
            [sys.executable, "-c", _MEASURE, peak.name, *cli("status")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        rss_kib, seconds = peak.read().split()
    return Run(float(seconds), int(rss_kib) / 1024, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", help="superuser connection string (default: embedded server)")
    parser.add_argument("--series", type=int, default=200, help="series per 30-minute slot")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with admin_server(args.dsn) as admin:
        print_table("rollups: reads, upkeep, peak RSS", measure(admin, args.series, args.runs))


if __name__ == "__main__":
    main()
