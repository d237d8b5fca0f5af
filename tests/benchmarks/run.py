"""The benchmark suite's one entry point: every target of the project in one table.

    python tests/benchmarks/run.py [--quick] [--dsn SUPERUSER_DSN]

Starts one throwaway embedded PostgreSQL (or uses --dsn), then runs:
- bench_collect: collect on a platform of 1 M users / 5 M attendance rows vs psql running
  the same nine statements, peak RSS, parallel snapshot workers, the old collector's
  approach, and start-up time of --help and metrics;
- bench_cycle: 8 sources of a 1 s metric in one cycle, and a 5,000-series cycle vs one value;
- bench_show_export: export --csv over 2 M stored rows vs psql's raw \\copy of the table, and
  show --bucket over the same rows vs psql;
- bench_prune: prune of one year by dropping monthly partitions vs the batched DELETE of the
  same rows (120 series every 30 minutes for 13 months, 2.3 M rows);
- bench_rollup: show --since 2y --bucket 1d on the hourly/daily rollups vs the stored rows
  (200 series every 30 minutes for two years, 7 M rows), a collect cycle with rollup
  upkeep vs without, and the peak RSS of every command on that store.
Every ratio compares the tool and psql measured in the same run on the same server.
--quick shrinks the data (100 k users, 500 k attendance, 1 M stored rows) for a smoke run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import (
    bench_collect,
    bench_cycle,
    bench_prune,
    bench_rollup,
    bench_show_export,
)
from tests.benchmarks.common import admin_server, print_table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dsn", help="superuser connection string (default: embedded server)")
    parser.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    users, attendance, messages, rows = (
        (100_000, 500_000, 100_000, 1_000_000)
        if args.quick
        else (1_000_000, 5_000_000, 1_000_000, 2_000_000)
    )
    with admin_server(args.dsn) as admin:
        with psycopg.connect(admin) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        server = row[0] if row else "?"
        results = bench_collect.measure(admin, users, attendance, messages, args.runs)
        results += bench_cycle.measure(admin, args.runs)
        results += bench_show_export.measure(admin, rows, max(3, args.runs // 2))
        results += bench_prune.measure(admin, 10 if args.quick else 120)
        results += bench_rollup.measure(admin, 10 if args.quick else 200, max(1, args.runs // 2))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print_table(f"analytics-cli benchmarks ({machine}; PostgreSQL {server})", results)


if __name__ == "__main__":
    main()
