"""Every command through pgbouncer, transaction and session pooling, pool of 2; no state left behind."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests import platform_data
from tests.conftest import Databases, cli, proc_env, spawn
from tests.pgbouncer_server import POOL_SIZE, Bouncer

AT = "2026-11-29T10:10:00Z"  # inside platform_data.SLOT
EXPECTED = {k: Decimal(v) for k, v in platform_data.EXPECTED.items()}


@pytest.fixture
def pooled(dbs: Databases, pgbouncer: Bouncer, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """The hand-counted platform; source and store both reached through pgbouncer."""
    with dbs.source_conn() as conn:
        platform_data.load(conn)
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", pgbouncer.dsn(dbs.source_name))
    monkeypatch.setenv("ANALYTICS_STORE_DSN", pgbouncer.dsn(dbs.store_name))
    return dbs


def rows_by_slot(dbs: Databases) -> dict[str, dict[str, Decimal]]:
    """Stored counts by slot of the platform's day and type; fails on a duplicate.

    Only the day of platform_data.SLOT: a plain ``collect`` stores the current slot too,
    whose time of day may be one of these.
    """
    with dbs.store_conn() as conn:
        rows = conn.execute(
            "SELECT to_char(\"timestamp\" AT TIME ZONE 'UTC', 'HH24:MI'), type, count, "
            "metadata::text FROM analytics "
            "WHERE (\"timestamp\" AT TIME ZONE 'UTC')::date = %s ORDER BY 1, 2",
            (platform_data.SLOT.astimezone(UTC).date(),),
        ).fetchall()
    out: dict[str, dict[str, Decimal]] = {}
    for slot, type_, count, metadata in rows:
        assert metadata == "{}"
        assert type_ not in out.setdefault(slot, {}), (slot, type_)
        out[slot][type_] = count
    return out


class Backends:
    """Samples, while it runs, how many server backends pgbouncer holds per database."""

    def __init__(self, admin: str, user: str, databases: tuple[str, ...]) -> None:
        self.admin, self.user, self.databases = admin, user, databases
        self.most: dict[str, int] = dict.fromkeys(databases, 0)
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            while not self.stop.is_set():
                for name, count in conn.execute(
                    "SELECT datname, count(*) FROM pg_stat_activity "
                    "WHERE usename = %s AND datname = ANY(%s) GROUP BY 1",
                    (self.user, list(self.databases)),
                ):
                    self.most[name] = max(self.most[name], int(count))
                self.samples += 1
                self.stop.wait(0.02)

    def __enter__(self) -> Backends:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def test_twenty_sequential_cycles(pooled: Databases, pgbouncer: Bouncer) -> None:
    # Ten slots in a row, then each again (present): the second collect through
    # transaction pooling used to fail with 'prepared statement "_pg3_0" already exists'.
    slots = [platform_data.SLOT + timedelta(minutes=30 * i) for i in range(10)]
    for n in range(20):
        at = (slots[n % 10] + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        result = cli("collect", "--at", at, "--json")
        assert result.exit_code == 0, (n, result.stderr, pgbouncer.log())
        statuses = {m["status"] for m in json.loads(result.stdout)["metrics"]}
        assert statuses == ({"stored"} if n < 10 else {"present"}), (n, result.stdout)
    stored = rows_by_slot(pooled)
    assert sorted(stored) == sorted(s.strftime("%H:%M") for s in slots)
    assert all(set(v) == set(EXPECTED) for v in stored.values())
    assert stored["10:00"] == EXPECTED


def test_sixteen_concurrent_cycles_for_one_slot(pooled: Databases, pgbouncer: Bouncer) -> None:
    env = proc_env(
        ANALYTICS_SOURCE_DSN=pgbouncer.dsn(pooled.source_name),
        ANALYTICS_STORE_DSN=pgbouncer.dsn(pooled.store_name),
    )
    names = (pooled.source_name, pooled.store_name)
    with Backends(pooled.admin, pgbouncer.user, names) as seen:
        procs = [spawn("collect", "--at", AT, "--json", env=env) for _ in range(16)]
        outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [err for _, err in outputs]
    stored_by = [
        {m["type"] for m in json.loads(out)["metrics"] if m["status"] == "stored"}
        for out, _ in outputs
    ]
    # Exactly one run stored the slot: the others found it present or its lock taken.
    assert sorted(len(s) for s in stored_by) == [0] * 15 + [9]
    assert rows_by_slot(pooled) == {"10:00": EXPECTED}
    # 16 clients, never more than the pool's server connections per database.
    assert seen.samples > 0
    assert max(seen.most.values()) <= POOL_SIZE, seen.most
    assert seen.most[pooled.store_name] >= 1


def test_every_command_exits_0(pooled: Databases, pgbouncer: Bouncer, tmp_path: Path) -> None:
    config = tmp_path / "pooled.toml"
    config.write_text("[collect]\nparallel = 2\n")
    commands: list[list[str]] = [
        ["db", "init"],
        ["collect"],  # now: status then finds fresh data
        ["collect", "--at", AT],
        ["collect", "--at", AT, "--replace"],
        ["-c", str(config), "collect", "--at", "2026-11-29T09:10:00Z"],  # parallel snapshot
        ["collect", "--dry-run"],
        ["status"],
        ["show", "--since", "3650d"],
        ["export", "--csv"],
        ["export", "--ndjson"],
        ["prune", "--older-than", "3650d", "--yes"],
        ["config", "check"],
        ["db", "init"],
    ]
    for args in commands:
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr, pgbouncer.log()[-2000:])
        assert "error" not in result.stderr, (args, result.stderr)
    assert rows_by_slot(pooled)["10:00"] == EXPECTED
    assert rows_by_slot(pooled)["09:00"].keys() == EXPECTED.keys()
    exported = cli("export", "--ndjson", "--type", "activeInstances", "--until", "2026-11-30")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [(r["timestamp"], r["count"]) for r in lines] == [
        ("2026-11-29T09:00:00Z", 7),
        ("2026-11-29T10:00:00Z", 7),
    ]
    pruned = cli("prune", "--older-than", "1d", "--yes")
    assert pruned.exit_code == 0, pruned.stderr
    assert pruned.stdout.startswith("deleted 18 rows older than ")


def test_one_connection_string_for_both(
    pooled: Databases, pgbouncer: Bouncer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The common deployment: source and store in one database, one pool of 2 per run.
    monkeypatch.delenv("ANALYTICS_SOURCE_DSN")
    monkeypatch.delenv("ANALYTICS_STORE_DSN")
    dsn = pgbouncer.dsn(pooled.source_name)
    for n in range(3):
        result = cli("--dsn", dsn, "collect", "--at", AT, "--json")
        assert result.exit_code == 0, (n, result.stderr)
    with psycopg.connect(pooled.source, autocommit=True) as conn:
        rows = conn.execute("SELECT type, count FROM analytics ORDER BY type").fetchall()
    assert dict(rows) == EXPECTED


STATE = (
    "SELECT pg_backend_pid(), "
    "(SELECT count(*) FROM pg_prepared_statements), (SELECT count(*) FROM pg_cursors), "
    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), "
    "current_setting('statement_timeout'), current_setting('lock_timeout'), "
    "current_setting('synchronous_commit'), current_setting('default_transaction_read_only'), "
    "current_setting('transaction_isolation'), current_setting('client_encoding')"
)


def _server_state(pgbouncer: Bouncer, dbname: str) -> list[tuple[object, ...]]:
    """The session state of every server connection of one pool.

    As many clients as the pool has connections each open a transaction at once, so in
    transaction mode every server connection answers once.
    """
    clients = [psycopg.connect(pgbouncer.dsn(dbname)) for _ in range(POOL_SIZE)]
    try:
        states = []
        for conn in clients:
            row = conn.execute(STATE).fetchone()
            assert row is not None
            states.append(row)
        return states
    finally:
        for conn in clients:
            conn.close()


def test_no_server_state_outlives_a_transaction(
    pooled: Databases, pgbouncer: Bouncer, tmp_path: Path
) -> None:
    config = tmp_path / "p.toml"
    config.write_text('[collect]\nparallel = 2\nstatement_timeout = "7s"\n')
    for args in (
        ["collect", "--at", AT],
        ["collect", "--at", AT, "--replace"],
        ["collect", "--at", "2026-11-29T09:10:00Z"],
        ["status"],
        ["show", "--since", "3650d"],
        ["export"],
        ["prune", "--older-than", "1d", "--yes"],
        ["config", "check"],
    ):
        result = cli("-c", str(config), *args)
        assert result.exit_code in (0, 1), (args, result.stderr)
    with psycopg.connect(pooled.store) as conn:
        fresh = conn.execute(STATE).fetchone()
    assert fresh is not None
    assert fresh[1:4] == (0, 0, 0)
    for dbname in (pooled.source_name, pooled.store_name):
        states = _server_state(pgbouncer, dbname)
        pids = {s[0] for s in states}
        if pgbouncer.mode == "transaction":
            assert len(pids) == POOL_SIZE, states  # every server connection was looked at
        for state in states:
            # No prepared statement, cursor or advisory lock; every setting as in a new session.
            assert state[1:] == fresh[1:], (dbname, state, fresh)


@pytest.mark.parametrize(("required", "code", "outcome"), [("", 0, "skipped"), ("1", 1, "errors")])
def test_missing_pgbouncer_skips_unless_required(required: str, code: int, outcome: str) -> None:
    env = proc_env(
        ANALYTICS_PGBOUNCER="/nonexistent/pgbouncer", ANALYTICS_REQUIRE_PGBOUNCER=required
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider",
         f"{__file__}::test_one_connection_string_for_both"],
        capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == code, done.stdout + done.stderr
    assert f"2 {outcome}" in done.stdout, done.stdout
    reason = "pgbouncer is not installed (/nonexistent/pgbouncer)"
    assert reason in done.stdout, done.stdout
    if required:
        assert "ANALYTICS_REQUIRE_PGBOUNCER=1 makes it required" in done.stdout, done.stdout
