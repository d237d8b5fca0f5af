"""Database faults: a restarted server, a killed connection, retries and the connect timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from analytics_cli.engines.postgresql import embedded
from tests.conftest import SCHEMA_SQL, Databases, proc_env, run_proc, spawn
from tests.faults.conftest import (
    SLOT,
    SLOW_SQL,
    Proxy,
    backends,
    env_for,
    finish,
    slot_rows,
    tcp_dsn,
)
from tests.helpers import custom_config, wait_until


def _pg_ctl(server: embedded.EmbeddedServer, action: str) -> None:
    """Stop or start the dedicated server the way an operator (or a crash and restart) would."""
    pgdata = server.pgdata
    args = [str(embedded.server_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-w"]
    if action == "stop":
        args += ["-m", "fast", "stop"]
    else:
        options = f"-c listen_addresses='' -k {server.socket_dir} -p {embedded.PORT}"
        args += ["-l", str(pgdata / "server.log"), "-o", options, "start"]
    done = embedded._run(args, timeout=120)
    assert done.returncode == 0, done.stderr


def test_server_restart_between_runs(tmp_path: Path) -> None:
    home = tmp_path / "pg"
    with embedded.server(home) as server:
        with psycopg.connect(server.dsn(embedded.SOURCE_DB), autocommit=True) as conn:
            conn.execute(SCHEMA_SQL.read_text())  # type: ignore[call-overload]
        env = proc_env(
            ANALYTICS_SOURCE_DSN=server.dsn(embedded.SOURCE_DB),
            ANALYTICS_STORE_DSN=server.dsn(embedded.STORE_DB),
        )
        first = run_proc("-q", "collect", "--at", "2026-01-01T00:00:00Z", env=env)
        assert (first.exit_code, first.stdout) == (0, "")
        assert first.stderr.startswith(
            "collect slot=2026-01-01T00:00:00Z stored=9 present=0 failed=0 duration="
        )
        _pg_ctl(server, "stop")
        down = run_proc("-q", "collect", "--at", "2026-01-01T00:30:00Z", env=env)
        assert down.exit_code == 3
        assert down.stdout == ""
        assert down.stderr.startswith(
            f"error: cannot connect to the store database (postgres@{server.socket_dir}:5432/"
            f"analytics): "
        )
        _pg_ctl(server, "start")
        after = run_proc("-q", "collect", "--at", "2026-01-01T00:30:00Z", env=env)
        assert (after.exit_code, after.stdout) == (0, "")
        assert after.stderr.startswith(
            "collect slot=2026-01-01T00:30:00Z stored=9 present=0 failed=0 duration="
        )
        with psycopg.connect(server.dsn(embedded.STORE_DB)) as conn:
            slots = conn.execute(
                'SELECT "timestamp"::text, count(*) FROM analytics GROUP BY 1 ORDER BY 1'
            ).fetchall()
        assert slots == [("2026-01-01 00:00:00+00", 9), ("2026-01-01 00:30:00+00", 9)]


def _who(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("user") or "postgres")


METRICS = [("first", "SELECT 1 AS count"), ("slowMetric", SLOW_SQL)]


def test_source_connection_killed_mid_cycle(
    dbs: Databases, tmp_path: Path, proxy_factory: Callable[..., Proxy]
) -> None:
    proxy = proxy_factory()
    config = custom_config(
        tmp_path / "c.toml",
        METRICS,
        collect={"retries": 3},
        source={"dsn": tcp_dsn(dbs.source, proxy.port)},
        store={"dsn": dbs.store},
    )
    proc = spawn(
        "-c", str(config), "collect", "--at", SLOT,
        env=proc_env(PGOPTIONS="-c analytics_test.sleep=600"),
    )  # fmt: skip
    running = wait_until(
        lambda: backends(dbs.admin, dbs.source_name, wait_event="PgSleep"), "the slow metric"
    )
    connections = len(proxy.accepted)
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (running[0]["pid"],))
    code, out, err = finish(proc)
    assert (code, out) == (3, "")
    assert err.startswith(
        "error: lost the connection to the source database while running slowMetric: "
        "terminating connection due to administrator command"
    )
    # The error line, then the cycle's summary line (exit 3 keeps it: nothing stored).
    assert len(err.splitlines()) == 2
    assert err.splitlines()[1].startswith(f"collect slot={SLOT} stored=0 present=0 failed=0 ")
    # A connection lost after the cycle began is not retried, even with retries = 3.
    assert len(proxy.accepted) == connections
    assert slot_rows(dbs) == []


def test_store_connection_killed_mid_write(dbs: Databases, tmp_path: Path) -> None:
    config = custom_config(
        tmp_path / "c.toml", [("a", "SELECT 1 AS count"), ("b", "SELECT 2 AS count")]
    )
    assert run_proc("-c", str(config), "db", "init", env=env_for(dbs)).exit_code == 0
    blocker = psycopg.connect(dbs.store)
    try:
        blocker.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('b', 99, %s)", (SLOT,)
        )
        proc = spawn("-c", str(config), "collect", "--at", SLOT, env=env_for(dbs))
        waiting = wait_until(
            lambda: backends(dbs.admin, dbs.store_name, wait_event_type="Lock", query="INSERT"),
            "the collector's INSERT to wait",
        )
        with psycopg.connect(dbs.admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (waiting[0]["pid"],))
        code, out, err = finish(proc)
    finally:
        blocker.rollback()
        blocker.close()
    assert (code, out) == (3, "")
    assert err.startswith("error: store write failed, nothing was stored: ")
    lines = err.splitlines()
    assert "terminating connection due to administrator command" in lines[0]
    # The values read survive in the spool (test_spool.py replays them).
    assert f"; slot {SLOT} spooled (2 rows) to " in lines[0]
    assert lines[1] == "hint: the next run that reaches the store writes it first"
    # The summary line says what waits in the spool.
    assert lines[2].startswith(f"collect slot={SLOT} stored=0 present=0 failed=0 ")
    assert lines[2].endswith(" spooled=2")
    assert len(lines) == 3
    assert slot_rows(dbs) == []


@pytest.mark.parametrize(("retries", "code"), [(1, 0), (0, 3)])
def test_one_retry_for_a_refused_first_connection(
    dbs: Databases,
    tmp_path: Path,
    proxy_factory: Callable[..., Proxy],
    retries: int,
    code: int,
) -> None:
    proxy = proxy_factory(refuse_first=1)
    config = custom_config(
        tmp_path / "c.toml",
        [("one", "SELECT 1 AS count")],
        collect={"retries": retries},
        store={"dsn": tcp_dsn(dbs.store, proxy.port)},
        source={"dsn": dbs.source},
    )
    result = run_proc("-c", str(config), "-q", "collect", "--at", SLOT)
    assert result.exit_code == code
    assert result.stdout == ""
    if retries:
        assert result.stderr.startswith(
            f"collect slot={SLOT} stored=1 present=0 failed=0 duration="
        )
        assert slot_rows(dbs) == [("one", "1")]
        # The refused attempt, then its retry: one store connection finds the table and
        # writes the slot.
        assert len(proxy.accepted) == 2
    else:
        assert result.stderr.startswith(
            f"error: cannot connect to the store database ({_who(dbs.store)}@127.0.0.1:{proxy.port}/"
        )
        assert "server closed the connection unexpectedly" in result.stderr
        assert len(proxy.accepted) == 1
        assert slot_rows(dbs) == []


def test_retries_are_bounded_and_back_off(
    dbs: Databases, tmp_path: Path, proxy_factory: Callable[..., Proxy]
) -> None:
    proxy = proxy_factory(refuse_first=1000)
    config = custom_config(
        tmp_path / "c.toml",
        [("one", "SELECT 1 AS count")],
        collect={"retries": 2},
        store={"dsn": tcp_dsn(dbs.store, proxy.port)},
        source={"dsn": dbs.source},
    )
    result = run_proc("-c", str(config), "-q", "collect", "--at", SLOT)
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr.startswith("error: cannot connect to the store database (")
    assert len(proxy.accepted) == 3  # the first attempt and exactly two retries
    first_wait = proxy.accepted[1] - proxy.accepted[0]
    second_wait = proxy.accepted[2] - proxy.accepted[1]
    assert second_wait > first_wait  # the backoff grows


def test_connect_timeout_against_a_silent_server(
    dbs: Databases, tmp_path: Path, proxy_factory: Callable[..., Proxy]
) -> None:
    silent = proxy_factory(mute=True)
    config = custom_config(
        tmp_path / "c.toml",
        [("one", "SELECT 1 AS count")],
        collect={"retries": 0, "connect_timeout": "2s"},
        source={"dsn": f"host=127.0.0.1 port={silent.port} dbname=x user=x"},
    )
    started = time.monotonic()
    result = run_proc("-c", str(config), "collect", "--at", SLOT, timeout=300)
    elapsed = time.monotonic() - started
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr.startswith(
        f"error: cannot connect to the store database (x@127.0.0.1:{silent.port}/x): "
    )
    assert "timeout" in result.stderr
    assert len(silent.accepted) >= 1
    assert elapsed < 120  # returned on its own, far below the subprocess bound
    assert len(result.stderr.splitlines()) == 2  # the error, then the summary line
