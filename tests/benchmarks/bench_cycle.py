"""Benchmark: the shape of one cycle, as ratios against a cycle that does less.

Run by hand (not part of pytest):

    python tests/benchmarks/bench_cycle.py [--runs 5] [--dsn DSN]

It starts a throwaway embedded PostgreSQL (or uses --dsn: a superuser connection string),
then measures in the same run, median of --runs:
- sources side by side: 8 ``[[source]]`` tables, each with one metric that takes 1 s
  (``pg_sleep(1)``), in one cycle, against the same cycle on one source and against
  psql running the eight statements one after another (target: the cycle <= 2.5 s);
- lean writes: a cycle storing one 5,000-series dimensional metric against a cycle storing
  one value (target <= 1.5x); every run writes a slot of its own, so both insert.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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

SOURCES = 8
SERIES = 5000
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _config(path: Path, store: str, body: str) -> Path:
    path.write_text(f"[store]\ndsn = {_toml_string(store)}\n\n{body}")
    return path


def _slots() -> list[str]:
    """A fresh slot for every cycle of this run: each one inserts, none finds its rows."""
    return [(BASE - timedelta(minutes=30 * k)).isoformat() for k in range(1, 10_000)]


def measure(admin: str, runs: int) -> list[Result]:
    """Measure sources side by side and lean writes on scratch databases of ``admin``."""
    work = Path(tempfile.mkdtemp(prefix="analytics-cli-bench-cycle-"))
    slots = iter(_slots())
    try:
        with (
            scratch_database(admin, "bench_cycle_source") as source,
            scratch_database(admin, "bench_cycle_store") as store,
        ):
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("ANALYTICS_DSN", "ANALYTICS_SOURCE_DSN", "ANALYTICS_STORE_DSN")
            }
            sleepy = '[[metric]]\ntype = "slow"\nsql = "SELECT 1 AS count FROM pg_sleep(1)"\n'
            sources = "".join(
                f'[[source]]\nname = "s{n}"\ndsn = {_toml_string(source)}\n\n'
                for n in range(1, SOURCES + 1)
            )
            many = _config(work / "many.toml", store, sources + sleepy)
            one = _config(
                work / "one.toml", store, f"[source]\ndsn = {_toml_string(source)}\n\n" + sleepy
            )
            wide = _config(
                work / "wide.toml",
                store,
                f"[source]\ndsn = {_toml_string(source)}\n\n"
                f'[[metric]]\ntype = "wide"\ndimensions = ["k"]\nmax_series = {SERIES}\n'
                f'sql = "SELECT g::text AS k, g AS count FROM generate_series(1, {SERIES}) g"\n\n'
                '[[metric]]\ntype = "single"\nsql = "SELECT 1 AS count"\n',
            )

            def cycle(config: Path, only: str) -> list[str]:
                return cli_command(
                    "-q", "--config", str(config), "collect", "--only", only, "--at", next(slots)
                )

            sleep_script = work / "sleep.sql"
            sleep_script.write_text("SELECT 1 AS count FROM pg_sleep(1);\n" * SOURCES)
            psql_sleeps = psql_command(source, "-o", "/dev/null", "-f", str(sleep_script))
            # Warm up: the store table exists and every contender has run once.
            for config, only in ((one, "slow"), (wide, "wide"), (wide, "single")):
                timed(cycle(config, only), env)
            many_t = median_runs(runs, lambda: timed(cycle(many, "slow"), env))
            one_t = median_runs(runs, lambda: timed(cycle(one, "slow"), env))
            psql_t = median_runs(max(1, runs // 2), lambda: timed(psql_sleeps, env))
            wide_t = median_runs(runs, lambda: timed(cycle(wide, "wide"), env))
            single_t = median_runs(runs, lambda: timed(cycle(wide, "single"), env))
            with psycopg.connect(store) as conn:
                row = conn.execute("SELECT count(*) FROM analytics WHERE type = 'wide'").fetchone()
            stored = int(row[0]) if row else 0
            # Every timed wide cycle (and the warm-up) stored all its series, each once.
            assert stored == SERIES * (runs + 1), stored
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        Result(
            f"{SOURCES} sources x 1 s metric, one cycle (vs 1 source)",
            f"{many_t.seconds:.2f} s / {one_t.seconds:.2f} s",
            f"{many_t.seconds / one_t.seconds:.2f}x",
            "<= 2.5 s",
            many_t.seconds <= 2.5,
        ),
        Result(
            f"{SOURCES} sources x 1 s metric vs psql, one after another",
            f"{many_t.seconds:.2f} s / {psql_t.seconds:.2f} s",
            f"{many_t.seconds / psql_t.seconds:.2f}x",
            "report",
            None,
        ),
        Result(
            f"cycle storing {SERIES:,} series vs one value",
            f"{wide_t.seconds:.3f} s / {single_t.seconds:.3f} s",
            f"{wide_t.seconds / single_t.seconds:.2f}x",
            "<= 1.5x",
            wide_t.seconds / single_t.seconds <= 1.5,
        ),
        Result(
            f"cycle storing {SERIES:,} series, peak RSS",
            f"{wide_t.max_rss_mb:.1f} MB",
            "",
            "<= 80 MB",
            wide_t.max_rss_mb <= 80,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dsn", help="superuser connection string (default: embedded server)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with admin_server(args.dsn) as admin:
        results = measure(admin, args.runs)
    print_table(f"median of {args.runs} runs", results)


if __name__ == "__main__":
    main()
