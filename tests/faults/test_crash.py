"""Crash safety: kill -9, SIGTERM and SIGINT mid-cycle leave no row of the slot, or all of them."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Databases, run_proc, spawn
from tests.faults.conftest import (
    SLOT,
    SLOW_SQL,
    backends,
    env_for,
    finish,
    slot_rows,
)
from tests.helpers import custom_config, wait_until

METRICS = [
    ("first", "SELECT 1 AS count"),
    ("slowMetric", SLOW_SQL),
    ("last", "SELECT 3 AS count"),
]
COMPLETE = [("first", "1"), ("last", "3"), ("slowMetric", "2")]


def _config(tmp_path: Path) -> Path:
    return custom_config(tmp_path / "faults.toml", METRICS)


def _start_slow(dbs: Databases, config: Path) -> tuple[subprocess.Popen[str], int]:
    """A collect stuck in the slow metric; returns the process and the source backend pid."""
    proc = spawn(
        "-c", str(config), "collect", "--at", SLOT,
        env=env_for(dbs, PGOPTIONS="-c analytics_test.sleep=600"),
    )  # fmt: skip
    running = wait_until(
        lambda: backends(dbs.admin, dbs.source_name, wait_event="PgSleep"),
        "the slow metric to run",
    )
    return proc, running[0]["pid"]


def _terminate(dbs: Databases, pid: int) -> None:
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _no_backends_left(dbs: Databases) -> None:
    wait_until(
        lambda: not backends(dbs.admin, dbs.store_name),
        "the killed run's store session to end",
    )


def _rerun_completes(dbs: Databases, config: Path) -> None:
    again = run_proc("-c", str(config), "collect", "--at", SLOT, "--json", env=env_for(dbs))
    assert again.exit_code == 0, again.stderr
    report = json.loads(again.stdout)
    assert [(m["type"], m["status"]) for m in report["metrics"]] == [
        ("first", "stored"),
        ("slowMetric", "stored"),
        ("last", "stored"),
    ]
    assert slot_rows(dbs) == COMPLETE


def test_kill9_while_a_metric_runs_writes_nothing(dbs: Databases, tmp_path: Path) -> None:
    config = _config(tmp_path)
    proc, source_pid = _start_slow(dbs, config)
    proc.kill()
    code, out, err = finish(proc)
    assert (code, out, err) == (-signal.SIGKILL, "", "")
    _terminate(dbs, source_pid)  # the orphaned server process would sleep on otherwise
    _no_backends_left(dbs)
    assert slot_rows(dbs) == []
    _rerun_completes(dbs, config)


def test_kill9_while_rows_are_written_writes_nothing(dbs: Databases, tmp_path: Path) -> None:
    config = _config(tmp_path)
    init = run_proc("-c", str(config), "db", "init", env=env_for(dbs))
    assert (init.exit_code, init.stdout, init.stderr) == (0, "", "table analytics: created\n")
    # An uncommitted row with the key of 'slowMetric' makes the collector's INSERT of it wait
    # after 'first' is already inserted in its transaction: the kill lands mid-write.
    blocker = psycopg.connect(dbs.store)
    try:
        blocker.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('slowMetric', 99, %s)",
            (SLOT,),
        )
        proc = spawn("-c", str(config), "collect", "--at", SLOT, env=env_for(dbs))
        wait_until(
            lambda: backends(dbs.admin, dbs.store_name, wait_event_type="Lock", query="INSERT"),
            "the collector's INSERT to wait",
        )
        proc.kill()
        code, out, err = finish(proc)
        assert (code, out, err) == (-signal.SIGKILL, "", "")
    finally:
        blocker.rollback()
        blocker.close()
    _no_backends_left(dbs)
    assert slot_rows(dbs) == []
    _rerun_completes(dbs, config)


@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [
        (signal.SIGTERM, 143, "error: terminated (SIGTERM); open transactions were rolled back\n"),
        (signal.SIGINT, 130, "error: interrupted (SIGINT); open transactions were rolled back\n"),
    ],
)
def test_signal_while_a_metric_runs(
    dbs: Databases, tmp_path: Path, signum: int, code: int, message: str
) -> None:
    config = _config(tmp_path)
    proc, _pid = _start_slow(dbs, config)
    proc.send_signal(signum)
    got = finish(proc)
    assert got == (code, "", message)
    # The query was cancelled and both transactions rolled back: no session lingers.
    _no_backends_left(dbs)
    assert backends(dbs.admin, dbs.source_name) == []
    assert slot_rows(dbs) == []
    _rerun_completes(dbs, config)


@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [
        (signal.SIGTERM, 143, "error: terminated (SIGTERM); open transactions were rolled back\n"),
        (signal.SIGINT, 130, "error: interrupted (SIGINT); open transactions were rolled back\n"),
    ],
)
def test_signal_while_rows_are_written(
    dbs: Databases, tmp_path: Path, signum: int, code: int, message: str
) -> None:
    config = _config(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env_for(dbs)).exit_code == 0
    blocker = psycopg.connect(dbs.store)
    try:
        blocker.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('last', 99, %s)", (SLOT,)
        )
        proc = spawn("-c", str(config), "collect", "--at", SLOT, env=env_for(dbs))
        wait_until(
            lambda: backends(dbs.admin, dbs.store_name, wait_event_type="Lock", query="INSERT"),
            "the collector's INSERT to wait",
        )
        proc.send_signal(signum)
        got = finish(proc)
        assert got == (code, "", message)
    finally:
        blocker.rollback()
        blocker.close()
    _no_backends_left(dbs)
    assert slot_rows(dbs) == []
    _rerun_completes(dbs, config)
