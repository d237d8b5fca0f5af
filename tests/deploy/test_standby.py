"""A streaming hot standby as the source: same values, lag is no error, a replay conflict fails one metric."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import tomli_w

from analytics_cli.engines.postgresql.connect import RECOVERY_CONFLICT_HINT
from tests import platform_data
from tests.conftest import Databases, cli
from tests.deploy.conftest import Replica
from tests.helpers import write_config

AT = "2026-11-29T10:10:00Z"  # inside platform_data.SLOT


def _config(path: Path, replica: Replica, dbs: Databases, **collect: Any) -> Path:
    doc = {
        "source": {"dsn": replica.standby},
        "store": {"dsn": dbs.store},
        "collect": {"retries": 0, **collect},
    }
    return write_config(path, doc)


def _counts(stdout: str) -> dict[str, int]:
    return {m["type"]: m["count"] for m in json.loads(stdout)["metrics"]}


def test_the_source_is_a_standby(replica: Replica) -> None:
    with psycopg.connect(replica.standby) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        status = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
    assert status == ("streaming",)


@pytest.mark.parametrize("parallel", [1, 2])
def test_standby_gives_the_fixture_values(
    replica: Replica, dbs: Databases, tmp_path: Path, parallel: int
) -> None:
    config = _config(tmp_path / "standby.toml", replica, dbs, parallel=parallel)
    result = cli("-c", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    assert _counts(result.stdout) == platform_data.EXPECTED
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count FROM analytics").fetchall()
    assert {t: int(c) for t, c in rows} == platform_data.EXPECTED
    for args in (["collect", "--at", AT, "--dry-run", "--json"], ["config", "check"]):
        checked = cli("-c", str(config), *args)
        assert checked.exit_code == 0, (args, checked.stderr)
    dry = cli("-c", str(config), "collect", "--at", AT, "--dry-run", "--json")
    assert _counts(dry.stdout) == platform_data.EXPECTED


def test_a_lagging_standby_is_no_error(replica: Replica, dbs: Databases, tmp_path: Path) -> None:
    config = _config(tmp_path / "lag.toml", replica, dbs, parallel=2)
    with psycopg.connect(replica.standby, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            with psycopg.connect(replica.primary, autocommit=True) as primary:
                primary.execute("UPDATE instance SET ended = true WHERE \"roomCode\" = 'i1'")
            # The standby still shows the state before the update: that is what is counted.
            result = cli("-c", str(config), "collect", "--at", AT, "--json")
            assert result.exit_code == 0, result.stderr
            assert "error" not in result.stderr and "warning" not in result.stderr
            assert _counts(result.stdout)["activeInstances"] == 7
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
            with psycopg.connect(replica.primary, autocommit=True) as primary:
                primary.execute("UPDATE instance SET ended = false WHERE \"roomCode\" = 'i1'")
    replica.caught_up()


def _when_running(replica: Replica, text: str) -> None:
    """Wait until the standby runs a query containing ``text``."""
    deadline = time.monotonic() + 60
    with psycopg.connect(replica.standby, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s",
                (f"%{text}%",),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"the standby never ran {text!r}")


def _remove_rows_on_primary(replica: Replica) -> None:
    """Dead rows, then VACUUM: replaying the cleanup conflicts with older standby snapshots."""
    with psycopg.connect(replica.primary, autocommit=True) as conn:
        conn.execute('UPDATE instance SET "updatedAt" = "updatedAt"')
        conn.execute("VACUUM instance")


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_recovery_conflict_fails_that_metric_alone(
    replica: Replica, dbs: Databases, tmp_path: Path, parallel: int
) -> None:
    config = tmp_path / "conflict.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "source": {"dsn": replica.standby},
                "store": {"dsn": dbs.store},
                "collect": {"retries": 0, "parallel": parallel, "metrics": ["activeInstances"],
                            "statement_timeout": "10m"},
                "metric": [
                    {"type": "slowScan", "sql": "SELECT count(*) AS count FROM instance, "
                     "pg_sleep(600) AS conflict_probe"},
                    {"type": "users", "sql": 'SELECT count(*) AS count FROM "user"'},
                ],
            }
        )
    )  # fmt: skip
    worker = threading.Thread(
        target=lambda: (_when_running(replica, "conflict_probe"), _remove_rows_on_primary(replica))
    )
    worker.start()
    started = time.monotonic()
    result = cli("-c", str(config), "collect", "--at", AT, "--json")
    worker.join()
    # Cancelled by replay, not slept out: the error below says so; the bound is generous,
    # ten times below the sleep.
    assert time.monotonic() - started < 60
    assert result.exit_code == 1, result.stderr
    report = {m["type"]: m for m in json.loads(result.stdout)["metrics"]}
    assert report["slowScan"]["status"] == "failed"
    assert report["slowScan"]["error"] == (
        f"terminating connection due to conflict with recovery ({RECOVERY_CONFLICT_HINT})"
    )
    assert {k: (v["status"], v["count"]) for k, v in report.items() if k != "slowScan"} == {
        "activeInstances": ("stored", 7),
        "users": ("stored", 6),
    }
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "warning: metric slowScan failed: terminating connection due to conflict with "
        f"recovery ({RECOVERY_CONFLICT_HINT})"
    )
    assert lines[1].startswith("collect slot=2026-11-29T10:00:00Z stored=2 present=0 failed=1 ")
    assert len(lines) == 2
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count FROM analytics ORDER BY type").fetchall()
    assert [(t, int(c)) for t, c in rows] == [("activeInstances", 7), ("users", 6)]
    replica.caught_up()
