"""Lock waits: a busy slot is waited for, and a table locked by another session says so."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Databases, cli
from tests.helpers import custom_config

SLOT = "2026-01-01T00:00:00Z"


def _config(tmp_path: Path) -> Path:
    # A one-second statement timeout: any wait longer than that used to read as a slow query.
    return custom_config(
        tmp_path / "c.toml",
        [("one", "SELECT 1 AS count")],
        collect={"statement_timeout": "1s", "retries": 0},
    )


def _rows(dbs: Databases) -> int:
    with dbs.store_conn() as conn:
        row = conn.execute("SELECT count(*) FROM analytics").fetchone()
    assert row is not None
    return int(row[0])


def test_a_table_locked_by_another_session_is_named_as_a_lock_wait(
    dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    env = {"ANALYTICS_SOURCE_DSN": dbs.source, "ANALYTICS_STORE_DSN": dbs.store}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli("-c", str(config), "db", "init").exit_code == 0
    holder = psycopg.connect(dbs.store)
    try:
        holder.execute("LOCK TABLE analytics IN ACCESS EXCLUSIVE MODE")
        result = cli("-c", str(config), "collect", "--no-spool", "--at", SLOT)
    finally:
        holder.rollback()
        holder.close()
    assert (result.exit_code, result.stdout) == (3, ""), result.stderr
    # The table is first touched to keep its monthly partitions ahead: that is where the
    # lock is met. Then the cycle's summary line: nothing stored.
    *said, summary = result.stderr.splitlines()
    assert said == [
        "error: cannot prepare the store table: gave up waiting for a lock held by "
        "another session (canceling statement due to lock timeout)",
        "hint: another session holds a lock this statement needs (a long transaction, a LOCK "
        "TABLE, a migration); find it in pg_locks / pg_stat_activity",
    ]
    assert summary.startswith("collect slot=") and " stored=0 " in summary
    assert _rows(dbs) == 0


def test_a_slot_held_longer_than_the_statement_timeout_is_waited_for(
    dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    for key, value in {
        "ANALYTICS_SOURCE_DSN": dbs.source,
        "ANALYTICS_STORE_DSN": dbs.store,
    }.items():
        monkeypatch.setenv(key, value)
    assert cli("-c", str(config), "db", "init").exit_code == 0
    holder = psycopg.connect(dbs.store)
    # The slot's own lock, as a concurrent run holds it, for three statement timeouts.
    holder.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('analytics-cli:slot:' || "
        "'analytics'::regclass::oid::text || ':' || %s, 0))",
        ("2026-01-01T00:00:00+00:00",),
    )
    release = threading.Timer(3.0, holder.rollback)
    release.start()
    try:
        result = cli("-c", str(config), "collect", "--no-spool", "--at", SLOT)
    finally:
        release.join()
        holder.close()
    # The wait outlasted the statement timeout and ended when the holder let go.
    assert result.exit_code == 0, result.stderr
    assert "statement timeout" not in result.stderr
    assert _rows(dbs) == 1
