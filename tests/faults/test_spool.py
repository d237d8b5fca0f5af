"""The spool: a cycle the store cannot take waits on disk and lands, once, with the next run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from analytics_cli import spool, spool_format
from analytics_cli.config.schema import Settings
from analytics_cli.samples import Sample
from tests.conftest import Databases, run_proc, spawn
from tests.faults.conftest import (
    Proxy,
    finish,
    proc_env,
    tcp_dsn,
    unix_target,
)
from tests.helpers import custom_config, spool_file, wait_until
from tests.scratch import scratch_database

BASE = datetime(2026, 1, 1, tzinfo=UTC)
DOWN = "host=127.0.0.1 port=1 dbname=nowhere user=nobody connect_timeout=1"
# The test server trusts its socket (where the proxy connects): this password is never
# needed, only carried by the store's connection string, and must reach no spool file.
SECRET = "Sp00lS3cret"


def _slot(i: int) -> str:
    return (BASE + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prepare_source(dbs: Databases) -> None:
    with dbs.source_conn() as conn:
        conn.execute("CREATE TABLE marker (n int)")


def _mark(dbs: Databases) -> None:
    with dbs.source_conn() as conn:
        conn.execute("INSERT INTO marker VALUES (1)")


def _config(tmp: Path, dbs: Databases, store: str, **store_extra: object) -> Path:
    return custom_config(
        tmp / f"c-{abs(hash(store)) % 10_000}.toml",
        [("markers", "SELECT count(*) AS count FROM marker")],
        collect={"retries": 0, "connect_timeout": "1s"},
        source={"dsn": dbs.source},
        store={"dsn": store, **store_extra},
    )


def _stored(dbs: Databases, dsn: str | None = None) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn or dbs.store, autocommit=True) as conn:
        rows = conn.execute(
            'SELECT type, to_char("timestamp" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), '
            "count::text FROM analytics ORDER BY 2, 1"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def _written(dsn: str) -> list[tuple[str, datetime]]:
    """(slot, collected_at) of every row, in the order the rows were written (the identity)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            'SELECT to_char("timestamp" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), '
            "collected_at FROM analytics ORDER BY id"
        ).fetchall()
    return [(str(a), b) for a, b in rows]


def _identity(dsn: str) -> dict[str, str]:
    """The store identity a run with this store connection string gives its spool files."""
    return spool.store_identity(Settings(store_dsn=dsn))


class Switch(Proxy):
    """The store's TCP front, stopped (connections refused) and started again on its port:
    the same store, under the same connection string, goes away and comes back."""

    def stop(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.close()
        self.thread.join(timeout=10)

    def start(self) -> None:
        self.closed = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()


@pytest.fixture
def switch(dbs: Databases) -> Iterator[Switch]:
    proxy = Switch(unix_target(dbs.admin))
    yield proxy
    proxy.close()


@pytest.fixture
def other_store(dbs: Databases) -> Iterator[str]:
    """A second, empty store database on the same server."""
    with scratch_database(dbs.admin, "t_store_b") as dsn:
        yield dsn


def _env(tmp: Path) -> dict[str, str]:
    return proc_env(XDG_STATE_HOME=str(tmp / "state"))


def _folder(tmp: Path) -> Path:
    return tmp / "state" / "analytics-cli" / "spool"


def test_store_down_for_three_cycles_then_back(
    dbs: Databases, tmp_path: Path, switch: Switch
) -> None:
    _prepare_source(dbs)
    store = f"{tcp_dsn(dbs.store, switch.port)} password={SECRET}"
    config = _config(tmp_path, dbs, store)  # one config, one store DSN, in every run
    env = _env(tmp_path)
    _mark(dbs)
    first = run_proc("-c", str(config), "collect", "--at", _slot(0), env=env)
    assert first.exit_code == 0, first.stderr
    switch.stop()
    for i in range(1, 4):
        _mark(dbs)  # the platform changes between cycles: each slot has its own value
        result = run_proc("-c", str(config), "collect", "--at", _slot(i), env=env)
        assert result.exit_code == 3, result.stderr
        assert result.stdout == ""
        line = result.stderr.splitlines()[0]
        assert line.startswith("error: cannot connect to the store database"), line
        assert f"slot {_slot(i)} spooled (1 rows) to {_folder(tmp_path)}/" in line
        assert SECRET not in result.stderr
    files = spool.pending(_folder(tmp_path))
    assert len(files) == 3
    params = conninfo_to_dict(dbs.store)
    spooled_at = []
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert SECRET not in text
        doc = json.loads(text)
        assert doc["version"] == spool_format.VERSION
        assert doc["store"] == {
            "engine": "postgresql",
            "host": "127.0.0.1",
            "port": str(switch.port),
            "dbname": str(params["dbname"]),
            "user": str(params.get("user") or "postgres"),
            "table": "analytics",
        }
        spooled_at.append(spool_format.decode(text).batches[0].collected_at)
    switch.start()  # the store is back, under the same connection string
    shown = run_proc("-c", str(config), "status", env=env)
    assert (
        f"spool: 3 slot(s) waiting in {_folder(tmp_path)}, oldest {_slot(1)}: "
        "the next run that reaches the store writes them"
    ) in shown.stdout.splitlines()
    listed = json.loads(run_proc("-c", str(config), "status", "--json", env=env).stdout)
    assert [s["slot"] for s in listed["spooled"]] == [_slot(i) for i in range(1, 4)]
    _mark(dbs)
    result = run_proc("-c", str(config), "collect", "--at", _slot(4), env=env)
    assert result.exit_code == 0, result.stderr
    # Every slot once, with the value read at its own time.
    assert _stored(dbs) == [("markers", _slot(i), str(i + 1)) for i in range(5)]
    assert spool.pending(_folder(tmp_path)) == []
    # Replayed oldest first, before this cycle, with the time each slot was read.
    written = _written(dbs.store)
    assert [slot for slot, _ in written] == [_slot(i) for i in range(5)]
    assert [at for _, at in written[1:4]] == spooled_at
    assert spooled_at == sorted(spooled_at)
    # Running again adds nothing: the replayed slots and this one are stored once.
    again = run_proc("-c", str(config), "collect", "--at", _slot(4), env=env)
    assert again.exit_code == 0, again.stderr
    assert len(_stored(dbs)) == 5


def _spool_for(folder: Path, identity: dict[str, str] | None, i: int, value: int) -> Path:
    """A spooled slot ``i`` holding ``value``, read at the slot's time plus a minute."""
    slot = BASE + timedelta(minutes=30 * i)
    table = identity["table"] if identity else "analytics"
    return spool_file(
        folder,
        slot,
        [Sample("markers", Decimal(value))],
        identity,
        table=table,
        collected_at=slot + timedelta(minutes=1),
    )


def test_replay_takes_only_this_stores_files_oldest_first(
    dbs: Databases, tmp_path: Path, other_store: str
) -> None:
    _prepare_source(dbs)
    _mark(dbs)
    env = _env(tmp_path)
    folder = _folder(tmp_path)
    mine, theirs = _identity(dbs.store), _identity(other_store)
    assert mine != theirs and mine["table"] == theirs["table"] == "analytics"
    # Written out of order: the replay goes by slot, not by when a file was made.
    for i in (2, 0, 1):
        _spool_for(folder, mine, i, 10 + i)
    # Another config's store, sharing this state folder: the same table, even a same slot.
    foreign = [_spool_for(folder, theirs, i, 20 + i) for i in (0, 3)]
    before = {path: path.read_bytes() for path in foreign}
    config = _config(tmp_path, dbs, dbs.store)
    result = run_proc("-c", str(config), "collect", "--at", _slot(5), env=env)
    assert result.exit_code == 0, result.stderr
    # One warning for the other store's files, naming that store (no secret) and the command.
    theirs_text = (
        f"postgresql database {theirs['dbname']} (user {theirs['user']}, "
        f"host {theirs['host']}, port {theirs['port']}), table analytics"
    )
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [
        f"warning: 2 spool file(s) in {folder} are for another store ({theirs_text}) "
        "and are not replayed here; remove them with: analytics-cli spool drop --foreign"
    ]
    listed = json.loads(run_proc("-c", str(config), "status", "--json", env=env).stdout)
    assert listed["spooled"] == []
    assert listed["spool_foreign"] == [{"file": str(p), "store": theirs_text} for p in foreign]
    assert _stored(dbs) == [
        ("markers", _slot(0), "10"),
        ("markers", _slot(1), "11"),
        ("markers", _slot(2), "12"),
        ("markers", _slot(5), "1"),
    ]
    assert [slot for slot, _ in _written(dbs.store)] == [_slot(i) for i in (0, 1, 2, 5)]
    # The other store's files stay where they are, untouched, not set aside.
    assert spool.pending(folder) == sorted(foreign)
    assert {path: path.read_bytes() for path in foreign} == before
    assert not (folder / spool.REJECTED).exists()
    # The run writing to that store replays them there.
    other = _config(tmp_path, dbs, other_store)
    result = run_proc("-c", str(other), "collect", "--at", _slot(5), env=env)
    assert result.exit_code == 0, result.stderr
    assert _stored(dbs, other_store) == [
        ("markers", _slot(0), "20"),
        ("markers", _slot(3), "23"),
        ("markers", _slot(5), "1"),
    ]
    assert spool.pending(folder) == []


def test_file_of_the_old_format_is_replayed_by_its_table(dbs: Databases, tmp_path: Path) -> None:
    _prepare_source(dbs)
    _mark(dbs)
    folder = _folder(tmp_path)
    legacy = _spool_for(folder, None, 0, 7)
    doc = json.loads(legacy.read_text())
    assert doc["version"] == 1 and "store" not in doc  # as the first spool format wrote it
    kept = spool_file(folder, BASE, [Sample("markers", Decimal(9))], None, table="elsewhere")
    config = _config(tmp_path, dbs, dbs.store)
    result = run_proc("-c", str(config), "collect", "--at", _slot(1), env=_env(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert _stored(dbs) == [("markers", _slot(0), "7"), ("markers", _slot(1), "1")]
    assert spool.pending(folder) == [kept]


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

        pids = wait_until(waiting, "the run waiting for the slot lock")
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
    identity = spool.store_identity(settings)
    for i in range(n):
        slot = BASE + timedelta(minutes=30 * i)
        spool_file(folder, slot, [Sample("markers", Decimal(i))], identity)


def test_kill_9_while_flushing_loses_and_duplicates_nothing(dbs: Databases, tmp_path: Path) -> None:
    _prepare_source(dbs)
    config = _config(tmp_path, dbs, dbs.store)
    env = _env(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env).exit_code == 0
    total = 500
    _spool_many(tmp_path, Settings(store_dsn=dbs.store), total)
    proc = spawn("-c", str(config), "collect", "--at", _slot(total + 1), env=env)
    wait_until(lambda: len(_stored(dbs)) >= 3, "the first replayed slots", timeout=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert 0 < len(spool.pending(_folder(tmp_path))) < total
    result = run_proc("-c", str(config), "collect", "--at", _slot(total + 1), env=env)
    assert result.exit_code == 0, result.stderr
    stored = _stored(dbs)
    expected = [("markers", _slot(i), str(i)) for i in range(total)]
    assert stored == [*expected, ("markers", _slot(total + 1), "0")]
    assert spool.pending(_folder(tmp_path)) == []
    # Both runs replayed oldest first: the rows were written in slot order.
    order = [slot for slot, _ in _written(dbs.store)]
    assert order == [*(_slot(i) for i in range(total)), _slot(total + 1)]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "unreadable spool file"),
        (json.dumps({"kind": "something else"}), "not an analytics-cli spool file"),
        (json.dumps({"kind": spool_format.KIND, "version": 99}), "spool format version 99"),
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
