"""Benchmark: `collect` on a large iR Engine platform vs psql running the same nine statements.

Run by hand (not part of pytest):

    python tests/benchmarks/bench_collect.py [--users 1000000] [--attendance 5000000] [--runs 5]

It starts a throwaway embedded PostgreSQL (or uses --dsn: a superuser connection string),
builds the platform server-side with generate_series, then measures in the same run:
- `analytics-cli collect --replace` (the built-in pack, fused: one scan of `instance`, one of
  `"instance-attendance"`) vs `psql` running the nine single-metric statements in one
  REPEATABLE READ transaction (median wall time, ratio; target <= 0.8x) and the tool's peak
  RSS (target <= 80 MB);
- the old collector's approach (load the joined rows, count in the client) as a ratio;
- `[collect] parallel = 4` vs 1 on the same snapshot-consistent cycle;
- start-up: `analytics-cli --help` and `analytics-cli metrics` median wall time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analytics_cli.engines.postgresql import embedded
from analytics_cli.metrics import builtin_metrics
from tests.benchmarks.common import Result, admin_server, print_table
from tests.benchmarks.common import timed as common_timed
from tests.metric_definitions import POSTGRESQL
from tests.scratch import with_db

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "analytics_cli" / "ir_engine_schema.sql"
SLOT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
TOOL = [sys.executable, "-m", "analytics_cli"]


BUILD = """
INSERT INTO "user" (id, name, "createdAt", "updatedAt")
SELECT gen_random_uuid(), 'user' || g, %(slot)s - (g %% 90) * interval '1 day' - (g %% 1440) * interval '1 minute', %(slot)s
FROM generate_series(1, %(users)s) g;

INSERT INTO "static-resource" (id, hash, name, "createdAt", "updatedAt")
SELECT gen_random_uuid(), 'h' || g, 'scene' || g, %(slot)s, %(slot)s FROM generate_series(1, 500) g;

INSERT INTO location (id, name, "sceneId", "slugifiedName", "createdAt", "updatedAt")
SELECT gen_random_uuid(), 'loc' || g,
       (SELECT id FROM "static-resource" ORDER BY hash OFFSET (g %% 500) LIMIT 1),
       'loc' || g, %(slot)s, %(slot)s
FROM generate_series(1, 2000) g;

INSERT INTO instance (id, "roomCode", "locationId", "channelId", ended, "createdAt", "updatedAt")
SELECT gen_random_uuid(), 'room' || g,
       CASE WHEN g %% 3 <> 0 THEN l.id END,
       CASE WHEN g %% 3 = 0 THEN 'channel' || (g %% 5000) END,
       g %% 10 <> 0, %(slot)s - (g %% 1000) * interval '1 hour', %(slot)s
FROM generate_series(1, 50000) g
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM location) l ON l.n = g %% 2000;

CREATE TEMP TABLE u AS SELECT id, row_number() OVER () AS n FROM "user";
CREATE TEMP TABLE i AS SELECT id, row_number() OVER () AS n FROM instance;
CREATE INDEX ON u (n);
CREATE INDEX ON i (n);

INSERT INTO "instance-attendance" (id, "isChannel", ended, "userId", "instanceId", "createdAt", "updatedAt")
SELECT gen_random_uuid(), g %% 3 = 0, g %% 50 <> 0,
       (SELECT id FROM u WHERE u.n = 1 + (g * 7919) %% %(users)s),
       (SELECT id FROM i WHERE i.n = 1 + (g * 104729) %% 50000),
       %(slot)s - (g %% (60 * 24 * 60)) * interval '1 minute', %(slot)s
FROM generate_series(1::bigint, %(attendance)s) g;

INSERT INTO message (id, text, "isNotification", "createdAt", "updatedAt")
SELECT gen_random_uuid(), 'hello', g %% 20 = 0, %(slot)s - (g %% (60 * 24 * 30)) * interval '1 minute', %(slot)s
FROM generate_series(1, %(messages)s) g;
"""

# The old in-process collector: fetch rows, count them in the client.
OLD_COLLECTOR = [
    "SELECT * FROM instance WHERE ended = false",
    'SELECT i.*, l.* FROM instance i LEFT JOIN location l ON l.id = i."locationId" WHERE i.ended = false',
    "SELECT * FROM channel",
    'SELECT a.* FROM "instance-attendance" a WHERE a.ended = false AND a."isChannel" = false',
    'SELECT a.* FROM "instance-attendance" a WHERE a.ended = false AND a."isChannel" = true',
    'SELECT a.* FROM "instance-attendance" a WHERE a."createdAt" > %(slot)s - interval \'24 hours\'',
    'SELECT * FROM "user" WHERE "createdAt" > %(slot)s - interval \'24 hours\'',
    'SELECT * FROM message WHERE "isNotification" = false AND "createdAt" > %(slot)s - interval \'30 minutes\'',
]


def build(admin: str, args: argparse.Namespace) -> str:
    name = "bench_platform"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS bench_store WITH (FORCE)"))
        conn.execute(sql.SQL("CREATE DATABASE bench_store"))
    dsn = with_db(admin, name)
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())  # type: ignore[call-overload]
        params = {
            "slot": SLOT,
            "users": args.users,
            "attendance": args.attendance,
            "messages": args.messages,
        }
        with conn.transaction():
            for statement in BUILD.split(";\n"):
                if statement.strip():
                    conn.execute(statement, params)  # type: ignore[call-overload]
        conn.execute("VACUUM ANALYZE")
    print(f"built the platform in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return dsn


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (kB) of one command, measured by a small parent process."""
    run = common_timed(command, env)
    return run.seconds, int(run.max_rss_mb * 1024)


def median_of(runs: int, measure: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    results = [measure() for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def psql_script(path: Path) -> None:
    interval = "interval '30 minutes'"
    slot = f"'{SLOT.isoformat()}'::timestamptz"
    lines = []
    # The nine definitions as separate statements (the pack itself fuses them).
    for spec in (m for m in builtin_metrics() if m.enabled):
        text = POSTGRESQL[spec.type].replace("%(slot)s", slot).replace("%(interval)s", interval)
        lines.append(text.rstrip().rstrip(";") + ";")
    path.write_text(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n" + "\n".join(lines) + "\nCOMMIT;\n"
    )


def old_collector(dsn: str) -> None:
    """Count like the old collector: every row travels to the client."""
    with psycopg.connect(dsn) as conn:
        for query in OLD_COLLECTOR:
            rows = conn.execute(query, {"slot": SLOT}).fetchall()  # type: ignore[call-overload]
            len(rows)


def measure(admin: str, users: int, attendance: int, messages: int, runs: int) -> list[Result]:
    """Build the platform on ``admin``'s server and measure collect against psql."""
    args = argparse.Namespace(users=users, attendance=attendance, messages=messages)
    psql = shutil.which("psql") or str(embedded.bin_dir() / "psql")
    source = build(admin, args)
    store = with_db(admin, "bench_store")
    work = Path(tempfile.mkdtemp(prefix="analytics-cli-bench-work-"))
    try:
        script = work / "metrics.sql"
        psql_script(script)
        env = {**os.environ, "ANALYTICS_SOURCE_DSN": source, "ANALYTICS_STORE_DSN": store}
        env.pop("ANALYTICS_DSN", None)
        config1 = work / "p1.toml"
        config1.write_text("[collect]\nparallel = 1\n")
        config4 = work / "p4.toml"
        config4.write_text("[collect]\nparallel = 4\n")
        at = SLOT.isoformat()
        collect = [*TOOL, "-q", "--config", str(config1), "collect", "--replace", "--at", at]
        collect4 = [*TOOL, "-q", "--config", str(config4), "collect", "--replace", "--at", at]
        psql_run = [psql, "-q", "-X", "-o", "/dev/null", "-d", source, "-f", str(script)]
        # Warm the caches once for every contender.
        timed(psql_run)
        timed(collect, env)
        psql_t, _ = median_of(runs, lambda: timed(psql_run))
        tool_t, tool_rss = median_of(runs, lambda: timed(collect, env))
        par_t, _ = median_of(runs, lambda: timed(collect4, env))
        old_started = time.monotonic()
        old_collector(source)
        old_t = time.monotonic() - old_started
        help_t, _ = median_of(max(runs, 10), lambda: timed([*TOOL, "--help"]))
        metrics_t, _ = median_of(max(runs, 10), lambda: timed([*TOOL, "metrics"], env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    scale = f"{users:,} users, {attendance:,} attendance"
    return [
        Result(
            f"collect vs psql (9 statements, one session), {scale}",
            f"{tool_t:.3f} s / {psql_t:.3f} s",
            f"{tool_t / psql_t:.2f}x",
            "<= 0.8x",
            tool_t / psql_t <= 0.8,
        ),
        Result(
            "collect peak RSS", f"{tool_rss / 1024:.1f} MB", "", "<= 80 MB", tool_rss / 1024 <= 80
        ),
        Result(
            "collect parallel=4 vs parallel=1",
            f"{par_t:.3f} s / {tool_t:.3f} s",
            f"{par_t / tool_t:.2f}x",
            "report",
            None,
        ),
        Result(
            "old collector (rows to the client) vs collect",
            f"{old_t:.3f} s / {tool_t:.3f} s",
            f"{old_t / tool_t:.1f}x",
            "report",
            None,
        ),
        Result("analytics-cli --help, median", f"{help_t:.3f} s", "", "<= 0.2 s", help_t <= 0.2),
        Result(
            "analytics-cli metrics, median",
            f"{metrics_t:.3f} s",
            "",
            "<= 0.25 s",
            metrics_t <= 0.25,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dsn", help="superuser connection string (default: embedded server)")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--attendance", type=int, default=5_000_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with admin_server(args.dsn) as admin:
        results = measure(admin, args.users, args.attendance, args.messages, args.runs)
    print_table(f"median of {args.runs} runs", results)


if __name__ == "__main__":
    main()
