"""The spool: a cycle the store cannot take waits on disk and lands, once, with the next run."""

from __future__ import annotations

import json
import os
import signal
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from analytics_cli import spool
from analytics_cli.config import Settings
from analytics_cli.metrics import Sample
from tests.conftest import Databases, run_proc, spawn
from tests.faults.conftest import finish, proc_env, wait_for, write_config

BASE = datetime(2026, 1, 1, tzinfo=UTC)
DOWN = "host=127.0.0.1 port=1 dbname=nowhere user=nobody connect_timeout=1"


def _slot(i: int) -> str:
    return (BASE + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prepare_source(dbs: Databases) -> None:
    with dbs.source_conn() as conn:
        conn.execute("CREATE TABLE marker (n int)")


def _mark(dbs: Databases) -> None:
    with dbs.source_conn() as conn:
        conn.execute("INSERT INTO marker VALUES (1)")


def _config(tmp: Path, dbs: Databases, store: str, **store_extra: object) -> Path:
    return write_config(
        tmp / f"c-{abs(hash(store)) % 10_000}.toml",
        [("markers", "SELECT count(*) AS count FROM marker")],
        collect={"retries": 0, "connect_timeout": "1s"},
        source={"dsn": dbs.source},
        store={"dsn": store, **store_extra},
    )


def _stored(dbs: Databases) -> list[tuple[str, str, str]]:
    with dbs.store_conn() as conn:
        rows = conn.execute(
            'SELECT type, to_char("timestamp" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), '
            "count::text FROM analytics ORDER BY 2, 1"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def _env(tmp: Path) -> dict[str, str]:
    return proc_env(XDG_STATE_HOME=str(tmp / "state"))


def _folder(tmp: Path) -> Path:
    return tmp / "state" / "analytics-cli" / "spool"


def test_store_down_for_three_cycles_then_back(dbs: Databases, tmp_path: Path) -> None:
    _prepare_source(dbs)
    down, up = _config(tmp_path, dbs, DOWN), _config(tmp_path, dbs, dbs.store)
    env = _env(tmp_path)
    for i in range(3):
        _mark(dbs)  # the platform changes between cycles: each slot has its own value
        result = run_proc("-c", str(down), "collect", "--at", _slot(i), env=env)
        assert result.exit_code == 3, result.stderr
        assert result.stdout == ""
        first = result.stderr.splitlines()[0]
        assert first.startswith("error: cannot connect to the store database"), first
        assert f"slot {_slot(i)} spooled (1 rows) to {_folder(tmp_path)}/" in first
        assert "password" not in result.stderr
    files = spool.pending(_folder(tmp_path))
    assert len(files) == 3
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = run_proc("-c", str(up), "status", env=env)
    assert (
        f"spool: 3 slot(s) waiting in {_folder(tmp_path)}, oldest {_slot(0)}: "
        "the next run that reaches the store writes them"
    ) in shown.stdout.splitlines()
    listed = json.loads(run_proc("-c", str(up), "status", "--json", env=env).stdout)
    assert [s["slot"] for s in listed["spooled"]] == [_slot(i) for i in range(3)]
    _mark(dbs)
    result = run_proc("-c", str(up), "collect", "--at", _slot(3), env=env)
    assert result.exit_code == 0, result.stderr
    assert _stored(dbs) == [("markers", _slot(i), str(i + 1)) for i in range(4)]
    assert spool.pending(_folder(tmp_path)) == []
    # Running again adds nothing: the replayed slots and this one are stored once.
    again = run_proc("-c", str(up), "collect", "--at", _slot(3), env=env)
    assert again.exit_code == 0, again.stderr
    assert len(_stored(dbs)) == 4


def test_read_only_store_spools_and_replays(dbs: Databases, tmp_path: Path) -> None:
    _prepare_source(dbs)
    _mark(dbs)
    config = _config(tmp_path, dbs, dbs.store)
    env = _env(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env).exit_code == 0
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbs.store_name}" SET default_transaction_read_only = on')
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), env=env)
    assert result.exit_code == 3, result.stderr
    assert "read-only transaction" in result.stderr
    assert f"slot {_slot(0)} spooled (1 rows)" in result.stderr
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbs.store_name}" RESET default_transaction_read_only')
    result = run_proc("-c", str(config), "collect", "--at", _slot(1), env=env)
    assert result.exit_code == 0, result.stderr
    assert _stored(dbs) == [("markers", _slot(0), "1"), ("markers", _slot(1), "1")]
    assert spool.pending(_folder(tmp_path)) == []


def test_connection_killed_mid_write_spools(dbs: Databases, tmp_path: Path) -> None:
    _prepare_source(dbs)
    _mark(dbs)
    config = _config(tmp_path, dbs, dbs.store)
    env = _env(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env).exit_code == 0
    # Hold the slot's lock so that the run waits inside its write transaction; then kill
    # its store connection there.
    with psycopg.connect(dbs.store, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended("
            "'analytics-cli:slot:' || to_regclass('analytics')::oid::text || ':' || %s, 0))",
            ((BASE).isoformat(),),
        )
        proc = spawn("-c", str(config), "collect", "--at", _slot(0), env=env)

        def waiting() -> list[int]:
            # Another connection: inside a transaction, pg_stat_activity is a frozen snapshot.
            with dbs.store_conn() as watcher:
                rows = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'analytics-cli' "
                    "AND wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchall()
            return [int(r[0]) for r in rows]

        pids = wait_for(waiting, "the run waiting for the slot lock")
        holder.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
        code, out, err = finish(proc)
        holder.execute("ROLLBACK")
    assert code == 3, err
    assert out == ""
    assert "store write failed, nothing was stored" in err
    assert f"slot {_slot(0)} spooled (1 rows)" in err
    assert _stored(dbs) == []
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), env=env)
    assert result.exit_code == 0, result.stderr
    assert "present=1" in result.stderr  # the replay wrote the slot; this cycle found it
    assert _stored(dbs) == [("markers", _slot(0), "1")]


def _spool_many(tmp: Path, settings: Settings, n: int) -> None:
    folder = spool.spool_dir(settings, {"XDG_STATE_HOME": str(tmp / "state")})
    for i in range(n):
        slot = BASE + timedelta(minutes=30 * i)
        batch = spool.from_outcomes(None, slot, [Sample("markers", Decimal(i))])
        spool.write(folder, spool.Spooled("analytics", slot, False, (batch,)))


def test_kill_9_while_flushing_loses_and_duplicates_nothing(dbs: Databases, tmp_path: Path) -> None:
    _prepare_source(dbs)
    config = _config(tmp_path, dbs, dbs.store)
    env = _env(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env).exit_code == 0
    total = 500
    _spool_many(tmp_path, Settings(), total)
    proc = spawn("-c", str(config), "collect", "--at", _slot(total + 1), env=env)
    wait_for(lambda: len(_stored(dbs)) >= 3, "the first replayed slots", timeout=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert 0 < len(spool.pending(_folder(tmp_path))) < total
    result = run_proc("-c", str(config), "collect", "--at", _slot(total + 1), env=env)
    assert result.exit_code == 0, result.stderr
    stored = _stored(dbs)
    expected = [("markers", _slot(i), str(i)) for i in range(total)]
    assert stored == [*expected, ("markers", _slot(total + 1), "0")]
    assert spool.pending(_folder(tmp_path)) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "unreadable spool file"),
        (json.dumps({"kind": "something else"}), "not an analytics-cli spool file"),
        (json.dumps({"kind": spool.KIND, "version": 99}), "spool format version 99"),
    ],
)
def test_foreign_or_corrupt_file_is_set_aside(
    dbs: Databases, tmp_path: Path, content: str, reason: str
) -> None:
    _prepare_source(dbs)
    _mark(dbs)
    config = _config(tmp_path, dbs, dbs.store)
    env = _env(tmp_path)
    folder = _folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "20260101T000000Z-bad.json").write_text(content)
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), env=env)
    assert result.exit_code == 0, result.stderr
    assert f"warning: spool file 20260101T000000Z-bad.json set aside in {folder}/rejected: " in (
        result.stderr
    )
    assert reason in result.stderr
    assert (folder / "rejected" / "20260101T000000Z-bad.json").read_text() == content
    assert spool.pending(folder) == []
    assert _stored(dbs) == [("markers", _slot(0), "1")]


def test_spool_off_loses_the_cycle_and_says_nothing_was_stored(
    dbs: Databases, tmp_path: Path
) -> None:
    _prepare_source(dbs)
    config = _config(tmp_path, dbs, DOWN, spool=False)
    env = _env(tmp_path)
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), env=env)
    assert result.exit_code == 3
    assert not _folder(tmp_path).exists()
    flag = run_proc("-c", str(_config(tmp_path, dbs, DOWN)), "collect", "--no-spool", env=env)
    assert flag.exit_code == 3
    assert "spooled" not in flag.stderr
    assert result.exit_code == 3
    assert "spooled" not in result.stderr
    assert result.stderr.startswith("error: cannot connect to the store database")
    assert not _folder(tmp_path).exists()


def test_spool_folder_from_config(dbs: Databases, tmp_path: Path) -> None:
    _prepare_source(dbs)
    folder = tmp_path / "my-spool"
    config = _config(tmp_path, dbs, DOWN, spool=str(folder))
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), env=_env(tmp_path))
    assert result.exit_code == 3
    assert f"spooled (1 rows) to {folder}/" in result.stderr
    assert len(spool.pending(folder)) == 1
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
