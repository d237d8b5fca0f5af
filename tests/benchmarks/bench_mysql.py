"""Benchmark: `collect` from a large iR Engine platform in MariaDB vs the `mariadb` client.

Run by hand (not part of pytest):

    python tests/benchmarks/bench_mysql.py [--users 1000000] [--attendance 5000000] [--runs 5]
    python tests/benchmarks/bench_mysql.py --quick      # 100 k users, 500 k attendance

It starts a throwaway MariaDB (Debian's mariadb-server, as in the tests) and a throwaway
embedded PostgreSQL for the store (or --store-dsn), builds the platform server-side with
MariaDB's Sequence engine (``seq_1_to_N``), then measures in the same run:
- `analytics-cli collect --replace` (MariaDB source, PostgreSQL store) vs the `mariadb`
  client running the same nine statements in one consistent-snapshot transaction (median
  wall time, ratio), both over the server's unix socket;
- the tool's peak RSS;
- `analytics-cli export --csv` from the platform's own `analytics` table as the store
  (--export-rows rows of the nine built-in types, one each per 30-minute slot) vs the
  `mariadb` client printing the table (`SELECT * FROM analytics`, batch mode), both to
  /dev/null, and vs the client reading the same rows in the export's order: the tool's
  peak RSS (target <= 100 MB, as for a PostgreSQL store) and, for reference, the ratios.
  MySQL has no COPY: the server writes each row's fields as text and the tool reads them
  through an unbuffered cursor, so the ratios are reported, not targets.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analytics_cli.engines.mysql.snapshot import bound_parameters
from analytics_cli.metrics import builtin_metrics
from tests.benchmarks.common import Result, admin_server, median_runs, print_table, timed
from tests.mariadb_server import ADMIN_PASSWORD, ADMIN_USER, SCHEMA_SQL, MariaDB, server
from tests.metric_definitions import MYSQL
from tests.scratch import with_db as pg_with_db

SLOT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
TOOL = [sys.executable, "-m", "analytics_cli"]

# Deterministic char(36) ids, so that rows can point at each other without joins.
BUILD = """
SET SESSION foreign_key_checks = 0, unique_checks = 0;
INSERT INTO `user` (id, name, `createdAt`, `updatedAt`)
SELECT CONCAT('u', LPAD(seq, 35, '0')), CONCAT('user', seq),
       {slot} - INTERVAL (seq % 90) DAY - INTERVAL (seq % 1440) MINUTE, {slot}
FROM seq_1_to_{users};
INSERT INTO `static-resource` (id, hash, name, `createdAt`, `updatedAt`)
SELECT CONCAT('s', LPAD(seq, 35, '0')), CONCAT('h', seq), CONCAT('scene', seq), {slot}, {slot}
FROM seq_1_to_500;
INSERT INTO location (id, name, `sceneId`, `slugifiedName`, `createdAt`, `updatedAt`)
SELECT CONCAT('l', LPAD(seq, 35, '0')), CONCAT('loc', seq),
       CONCAT('s', LPAD(1 + seq % 500, 35, '0')), CONCAT('loc', seq), {slot}, {slot}
FROM seq_1_to_2000;
INSERT INTO instance (id, `roomCode`, `locationId`, `channelId`, ended, `createdAt`, `updatedAt`)
SELECT CONCAT('i', LPAD(seq, 35, '0')), CONCAT('room', seq),
       IF(seq % 3 <> 0, CONCAT('l', LPAD(1 + seq % 2000, 35, '0')), NULL),
       IF(seq % 3 = 0, CONCAT('channel', seq % 5000), NULL),
       seq % 10 <> 0, {slot} - INTERVAL (seq % 1000) HOUR, {slot}
FROM seq_1_to_50000;
INSERT INTO `instance-attendance`
    (id, `isChannel`, ended, `userId`, `instanceId`, `createdAt`, `updatedAt`)
SELECT CONCAT('a', LPAD(seq, 35, '0')), seq % 3 = 0, seq % 50 <> 0,
       CONCAT('u', LPAD(1 + (seq * 7919) % {users}, 35, '0')),
       CONCAT('i', LPAD(1 + (seq * 104729) % 50000, 35, '0')),
       {slot} - INTERVAL (seq % (60 * 24 * 60)) MINUTE, {slot}
FROM seq_1_to_{attendance};
INSERT INTO message (id, text, `isNotification`, `createdAt`, `updatedAt`)
SELECT CONCAT('m', LPAD(seq, 35, '0')), 'hello', seq % 20 = 0,
       {slot} - INTERVAL (seq % (60 * 24 * 30)) MINUTE, {slot}
FROM seq_1_to_{messages};
ANALYZE TABLE `user`, instance, location, `instance-attendance`, message;
"""

# The platform's own analytics table as a collector fills it: the built-in pack's types
# (nine), one row each a 30-minute slot.
STORED = """
INSERT INTO analytics (id, count, type, `createdAt`, `updatedAt`)
SELECT CONCAT('x', LPAD(seq, 35, '0')), seq % 1000, ELT(1 + seq % {n}, {types}),
       {slot} - INTERVAL (30 * ({rows} DIV {n} - seq DIV {n})) MINUTE,
       {slot} - INTERVAL (30 * ({rows} DIV {n} - seq DIV {n})) MINUTE + INTERVAL 3 SECOND
FROM seq_1_to_{rows}
"""


def build(db: MariaDB, args: argparse.Namespace) -> str:
    """Create the platform database and fill it; its name."""
    name = "bench_platform"
    slot = f"TIMESTAMP'{SLOT.replace(tzinfo=None).isoformat(' ')}'"
    started = time.monotonic()
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
        cur.execute(f"USE {name}")
        cur.execute(SCHEMA_SQL.read_text())
        while cur.nextset():
            pass
        script = BUILD.format(
            slot=slot, users=args.users, attendance=args.attendance, messages=args.messages
        )
        for statement in script.split(";\n"):
            if statement.strip():
                cur.execute(statement)
                while cur.nextset():
                    pass
    print(f"built the MariaDB platform in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return name


def client_script(path: Path) -> None:
    """The nine built-in metrics as separate MySQL statements in one consistent read-only snapshot."""
    params = bound_parameters(SLOT, timedelta(minutes=30))
    values = {
        "slot": f"'{params['slot'].isoformat(' ')}'",
        "interval_seconds": str(params["interval_seconds"]),
    }
    lines = [
        "SET time_zone = '+00:00';",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;",
    ]
    # The nine definitions as separate statements (the pack itself fuses them).
    for spec in (m for m in builtin_metrics() if m.enabled):
        text = MYSQL[spec.type]
        lines.append((text % values).rstrip().rstrip(";") + ";")
    lines.append("COMMIT;")
    path.write_text("\n".join(lines) + "\n")


def measure(db: MariaDB, store: str, args: argparse.Namespace) -> list[Result]:
    """Build the platform and time collect against the mariadb client."""
    client = shutil.which("mariadb")
    if client is None:
        raise SystemExit("the mariadb client is not installed (apt-get install mariadb-client)")
    name = build(db, args)
    work = Path(tempfile.mkdtemp(prefix="analytics-cli-bench-mysql-"))
    try:
        script = work / "metrics.sql"
        client_script(script)
        source = f"mysql://{ADMIN_USER}:{ADMIN_PASSWORD}@localhost/{name}?unix_socket={db.socket}"
        env = {**os.environ, "ANALYTICS_SOURCE_DSN": source, "ANALYTICS_STORE_DSN": store}
        env.pop("ANALYTICS_DSN", None)
        at = SLOT.isoformat()
        collect = [*TOOL, "-q", "collect", "--replace", "--at", at]
        mariadb = [
            client, "--no-defaults", f"--socket={db.socket}", f"--user={ADMIN_USER}",
            f"--password={ADMIN_PASSWORD}", "--batch", "--silent", name,
            "-e", f"source {script}",
        ]  # fmt: skip
        # Warm the buffer pool once for both contenders.
        timed(mariadb)
        timed(collect, env)
        client_run = median_runs(args.runs, lambda: timed(mariadb))
        tool_run = median_runs(args.runs, lambda: timed(collect, env))
        results = measure_export(db, name, work, args.export_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = tool_run.seconds / client_run.seconds
    scale = f"{args.users:,} users, {args.attendance:,} attendance"
    return [
        Result(
            f"collect (MariaDB source) vs mariadb client (9 statements, one snapshot), {scale}",
            f"{tool_run.seconds:.3f} s / {client_run.seconds:.3f} s",
            f"{ratio:.2f}x",
            "<= 1.3x",
            ratio <= 1.3,
        ),
        Result(
            "collect (MariaDB source) peak RSS",
            f"{tool_run.max_rss_mb:.1f} MB",
            "",
            "<= 80 MB",
            tool_run.max_rss_mb <= 80,
        ),
        *results,
    ]


def measure_export(db: MariaDB, name: str, work: Path, rows: int) -> list[Result]:
    """Fill the platform's analytics table and time export --csv from it against the client."""
    client = shutil.which("mariadb")
    assert client is not None
    slot = f"TIMESTAMP'{SLOT.replace(tzinfo=None).isoformat(' ')}'"
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"USE {name}")
        cur.execute("TRUNCATE analytics")
        types = [spec.type for spec in builtin_metrics() if spec.enabled]
        quoted = ", ".join(f"'{t}'" for t in types)
        cur.execute(STORED.format(slot=slot, rows=rows, n=len(types), types=quoted))
        conn.commit()
    store = f"mysql://{ADMIN_USER}:{ADMIN_PASSWORD}@localhost/{name}?unix_socket={db.socket}"
    env = {**os.environ, "ANALYTICS_STORE_DSN": store, "HOME": str(work)}
    for key in ("ANALYTICS_DSN", "ANALYTICS_SOURCE_DSN", "ANALYTICS_CLI_CONFIG"):
        env.pop(key, None)
    export = [*TOOL, "export", "--csv"]
    mariadb = [
        client, "--no-defaults", f"--socket={db.socket}", f"--user={ADMIN_USER}",
        f"--password={ADMIN_PASSWORD}", "--batch", "--quick", name,
        "-e", "SELECT * FROM analytics",
    ]  # fmt: skip
    # The same rows in the export's order: MariaDB's sort is most of the export's time.
    ordered = [
        *mariadb[:-1],
        "SELECT type, count, createdAt, updatedAt FROM analytics ORDER BY createdAt, type, id",
    ]
    timed(mariadb)
    tool_run = median_runs(3, partial(timed, export, env))
    if tool_run.exit_code != 0:
        raise SystemExit(f"export from the MariaDB store failed: exit {tool_run.exit_code}")
    client_run = median_runs(3, partial(timed, mariadb))
    ordered_run = median_runs(3, partial(timed, ordered))
    return [
        Result(
            f"export --csv from the MariaDB analytics table, {rows:,} rows, vs mariadb client",
            f"{tool_run.seconds:.2f} s / {client_run.seconds:.2f} s",
            f"{tool_run.seconds / client_run.seconds:.2f}x",
            "report",
            None,
        ),
        Result(
            f"export --csv from the MariaDB analytics table, {rows:,} rows, vs mariadb same order",
            f"{tool_run.seconds:.2f} s / {ordered_run.seconds:.2f} s",
            f"{tool_run.seconds / ordered_run.seconds:.2f}x",
            "report",
            None,
        ),
        Result(
            f"export --csv from the MariaDB analytics table, peak RSS, {rows:,} rows",
            f"{tool_run.max_rss_mb:.1f} MB",
            "",
            "<= 100 MB",
            tool_run.max_rss_mb <= 100,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--store-dsn", help="PostgreSQL superuser DSN for the store")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--attendance", type=int, default=5_000_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100 k users, 500 k attendance")
    args = parser.parse_args()
    if args.quick:
        args.users, args.attendance, args.messages = 100_000, 500_000, 100_000
        args.export_rows = 100_000
    with admin_server(args.store_dsn) as admin, server(buffer_pool="3G", tls=False) as db:
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_mysql_store WITH (FORCE)")
            conn.execute("CREATE DATABASE bench_mysql_store")
        results = measure(db, pg_with_db(admin, "bench_mysql_store"), args)
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    version = row[0] if row else "?"
    print_table(f"median of {args.runs} runs ({machine}; MariaDB {version})", results)


if __name__ == "__main__":
    main()
