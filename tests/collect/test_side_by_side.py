"""Sources read side by side: each in its own snapshot, bounded, cut off by its own timeouts."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import psycopg

from tests.conftest import Databases, proc_env, run_proc, spawn
from tests.faults.conftest import finish
from tests.helpers import wait_until, write_config

AT = "2026-11-29T10:00:00Z"
# Waits on an advisory lock the test holds: a source that runs it shows as waiting.
GATED = "SELECT count(*) AS count FROM (SELECT pg_advisory_xact_lock_shared(4242)) AS gate"
DOWN = "host=127.0.0.1 port=1 dbname=nowhere user=nobody connect_timeout=1"


def _config(
    tmp: Path, dbs: Databases, sources: list[tuple[str, str]], metrics: str, **collect: object
) -> Path:
    text = "[collect]\nmetrics = []\nretries = 0\n"
    text += "".join(f"{k} = {json.dumps(v)}\n" for k, v in collect.items())
    text += f"[store]\ndsn = {json.dumps(dbs.store)}\n"
    for name, dsn in sources:
        text += f"[[source]]\nname = {json.dumps(name)}\ndsn = {json.dumps(dsn)}\n"
    return write_config(tmp / "c.toml", text + metrics)


def _waiting(dbs: Databases) -> int:
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'analytics-cli' "
            "AND datname = %s AND wait_event_type = 'Lock'",
            (dbs.source_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def _run_gated(
    dbs: Databases, config: Path, expect_waiting: int
) -> tuple[subprocess.Popen[str], int]:
    holder = psycopg.connect(dbs.source)
    holder.execute("SELECT pg_advisory_xact_lock(4242)")
    proc = spawn("-c", str(config), "collect", "--at", AT, "--json", env=proc_env())
    try:
        wait_until(lambda: _waiting(dbs) >= expect_waiting, f"{expect_waiting} sources waiting")
        seen = _waiting(dbs)
    finally:
        holder.rollback()
        holder.close()
    return proc, seen


def test_sources_are_read_at_the_same_time(dbs: Databases, tmp_path: Path) -> None:
    names = [("a", dbs.source), ("b", dbs.source), ("c", dbs.source)]
    metric = f'[[metric]]\ntype = "gated"\nsql = "{GATED}"\n'
    proc, seen = _run_gated(dbs, _config(tmp_path, dbs, names, metric), 3)
    code, out, err = finish(proc)
    # All three snapshots were open and waiting at once: they are read side by side.
    assert seen == 3
    assert code == 0, err
    report = json.loads(out)
    assert [(m["type"], m["source"], m["status"]) for m in report["metrics"]] == [
        ("gated", "a", "stored"),
        ("gated", "b", "stored"),
        ("gated", "c", "stored"),
    ]


def test_source_concurrency_bounds_how_many_at_once(dbs: Databases, tmp_path: Path) -> None:
    names = [("a", dbs.source), ("b", dbs.source), ("c", dbs.source)]
    metric = f'[[metric]]\ntype = "gated"\nsql = "{GATED}"\n'
    config = _config(tmp_path, dbs, names, metric, source_concurrency=2)
    proc, seen = _run_gated(dbs, config, 2)
    code, out, err = finish(proc)
    assert seen == 2
    assert code == 0, err
    assert [m["source"] for m in json.loads(out)["metrics"]] == ["a", "b", "c"]


def test_slow_unreachable_and_fine_sources_each_reported_in_order(
    dbs: Databases, tmp_path: Path
) -> None:
    metrics = (
        '[[metric]]\ntype = "slow"\nsql = "SELECT count(*) AS count FROM pg_sleep(30)"\n'
        'sources = ["slow"]\n'
        '[[metric]]\ntype = "fine"\nsql = "SELECT 5 AS count"\nsources = ["down", "fine"]\n'
    )
    names = [("slow", dbs.source), ("down", DOWN), ("fine", dbs.source)]
    config = _config(tmp_path, dbs, names, metrics, statement_timeout="1s", connect_timeout="1s")
    result = run_proc("-c", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    got = [(m["type"], m["source"], m["status"]) for m in report["metrics"]]
    assert got == [
        ("slow", "slow", "failed"),
        ("fine", "down", "failed"),
        ("fine", "fine", "stored"),
    ]
    errors = {m["source"]: m.get("error", "") for m in report["metrics"]}
    assert errors["slow"] == "canceling statement due to statement timeout"
    assert errors["down"].startswith("cannot connect to the source database (nobody@127.0.0.1:1/")
    with psycopg.connect(dbs.store) as conn:
        rows = conn.execute("SELECT type, count, metadata FROM analytics").fetchall()
    assert rows == [("fine", Decimal(5), {"source": "fine"})]


SERIES = (
    '[[metric]]\ntype = "wide"\ndimensions = ["k"]\nmax_series = 5000\n'
    'sql = "SELECT g::text AS k, g AS count FROM generate_series(1, 5000) AS g"\n'
)


def test_a_5000_series_cycle_is_stored_once_under_8_concurrent_runs(
    dbs: Databases, tmp_path: Path
) -> None:
    path = tmp_path / "wide.toml"
    path.write_text(
        f"[collect]\nmetrics = []\n[source]\ndsn = {json.dumps(dbs.source)}\n"
        f"[store]\ndsn = {json.dumps(dbs.store)}\n" + SERIES
    )
    procs = [spawn("-c", str(path), "-q", "collect", "--at", AT) for _ in range(8)]
    codes = [finish(p)[0] for p in procs]
    assert codes == [0] * 8
    with psycopg.connect(dbs.store) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT metadata->>'k'), sum(count) FROM analytics"
        ).fetchone()
    assert row == (5000, 5000, Decimal(5000 * 5001 // 2))
