"""Load: many concurrent runs for one slot, and a cycle while the platform is busy writing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from analytics_cli.metrics import builtin_metrics
from tests.conftest import Databases, run_proc, spawn
from tests.faults.conftest import SLOT, env_for, finish

RUNS = 30


@pytest.mark.slow
def test_concurrent_runs_for_one_slot_store_each_metric_once(dbs: Databases) -> None:
    procs = [spawn("collect", "--at", SLOT, "--json", env=env_for(dbs)) for _ in range(RUNS)]
    results = [finish(proc, timeout=600) for proc in procs]
    assert [code for code, _, _ in results] == [0] * RUNS, [err for _, _, err in results]
    reports = [json.loads(out) for _, out, _ in results]
    types = [m.type for m in builtin_metrics() if m.enabled]
    with dbs.store_conn() as conn:
        rows = conn.execute(
            'SELECT type, count(*) FROM analytics WHERE "timestamp" = %s GROUP BY type '
            "ORDER BY type",
            (SLOT,),
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM analytics").fetchone()
    assert rows == [(t, 1) for t in sorted(types)]
    assert total == (len(types),)
    # Exactly one run stored each metric; every other one found it already there.
    stored = [m["type"] for r in reports for m in r["metrics"] if m["status"] == "stored"]
    assert sorted(stored) == sorted(types)
    statuses = {m["status"] for r in reports for m in r["metrics"]}
    assert statuses == {"stored", "present"}


ATTENDANCE = 'INSERT INTO "instance-attendance" (id, "isChannel", ended, "createdAt", "updatedAt")'


def _writer(dsn: str, stop: threading.Event, written: list[int]) -> None:
    """Insert attendance rows in small committed batches until told to stop."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            conn.execute(
                ATTENDANCE + " SELECT gen_random_uuid(), false, false, now(), now() "
                "FROM generate_series(1, 20)"
            )
            written.append(20)


@pytest.mark.parametrize("parallel", [1, 3])
def test_collect_under_write_load_reads_one_snapshot(
    dbs: Databases, tmp_path: Path, parallel: int
) -> None:
    config = tmp_path / "load.toml"
    config.write_text(
        f"[collect]\nparallel = {parallel}\n"
        "[[metric]]\n"
        'type = "attendanceBefore"\n'
        "sql = 'SELECT count(*) AS count FROM \"instance-attendance\"'\n"
        "[[metric]]\n"
        'type = "pause"\n'
        "sql = 'SELECT 1 AS count FROM pg_sleep(1)'\n"
        "[[metric]]\n"
        'type = "attendanceAfter"\n'
        "sql = 'SELECT count(id) AS count FROM \"instance-attendance\" WHERE NOT ended'\n"
    )
    stop = threading.Event()
    written: list[int] = []
    writers = [threading.Thread(target=_writer, args=(dbs.source, stop, written)) for _ in range(3)]
    for thread in writers:
        thread.start()
    try:
        while len(written) < 10:  # the load is on before the cycle starts
            stop.wait(0.05)
        before_run = sum(written)
        result = run_proc(
            "-c", str(config), "collect", "--at", SLOT, "--json", env=env_for(dbs)
        )  # fmt: skip
        during = sum(written) - before_run
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    counts = {m["type"]: m["count"] for m in report["metrics"]}
    assert {m["status"] for m in report["metrics"]} == {"stored"}
    assert len(counts) == len([m for m in builtin_metrics() if m.enabled]) + 3
    # Rows kept arriving while the cycle ran, yet both counts come from one snapshot.
    assert during > 0
    assert counts["attendanceBefore"] == counts["attendanceAfter"]
    with dbs.source_conn() as conn:
        final = conn.execute('SELECT count(*) FROM "instance-attendance"').fetchone()
    assert final is not None
    assert final[0] == sum(written)
    assert before_run <= counts["attendanceBefore"] < final[0]
