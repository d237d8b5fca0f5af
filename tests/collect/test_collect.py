"""The collect cycle against a real PostgreSQL: exact values, idempotency, failures, signals."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests import platform_data
from tests.conftest import Databases, cli, proc_env, run_proc, spawn
from tests.helpers import stored_rows, write_config

AT = "2026-11-29T10:10:00Z"  # inside the slot starting at platform_data.SLOT


@pytest.fixture
def platform(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """The hand-counted dataset loaded; source and store configured through the environment."""
    with dbs.source_conn() as conn:
        platform_data.load(conn)
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def test_builtin_metrics_exact_values(platform: Databases) -> None:
    result = cli("collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["slot"] == "2026-11-29T10:00:00Z"
    assert {m["type"]: m["count"] for m in report["metrics"]} == platform_data.EXPECTED
    rows = stored_rows(platform)
    assert {r[0]: int(r[1]) for r in rows} == platform_data.EXPECTED
    assert {r[2] for r in rows} == {platform_data.SLOT}
    assert {json.dumps(r[3]) for r in rows} == {"{}"}
    assert "collect slot=2026-11-29T10:00:00Z stored=9 present=0 failed=0" in result.stderr


def test_interval_is_a_bound_parameter(platform: Databases, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[collect]\ninterval = "15m"\n')
    result = cli("--config", str(config), "collect", "--at", AT, "--only", "chatMessages", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # slot 10:00 with 15-minute slots; window (09:45, 10:00] holds m1 and m6 only
    assert report["slot"] == "2026-11-29T10:00:00Z"
    assert [(m["type"], m["count"]) for m in report["metrics"]] == [("chatMessages", 2)]


def test_second_run_stores_nothing_new(platform: Databases) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    first = stored_rows(platform)
    again = cli("collect", "--at", AT, "--json")
    assert again.exit_code == 0
    assert {m["status"] for m in json.loads(again.stdout)["metrics"]} == {"present"}
    assert 'note="slot already collected"' in again.stderr
    assert stored_rows(platform) == first


def test_eight_concurrent_runs_store_each_metric_once(platform: Databases) -> None:
    env = proc_env(ANALYTICS_SOURCE_DSN=platform.source, ANALYTICS_STORE_DSN=platform.store)
    procs = [spawn("collect", "--at", AT, env=env) for _ in range(8)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    rows = stored_rows(platform)
    assert len(rows) == 9
    assert {r[0]: int(r[1]) for r in rows} == platform_data.EXPECTED


def test_replace_overwrites_the_slot(platform: Databases) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    with platform.source_conn() as conn:
        conn.execute("UPDATE instance SET ended = true WHERE \"roomCode\" = 'i1'")
    assert cli("collect", "--at", AT).exit_code == 0
    assert dict((r[0], int(r[1])) for r in stored_rows(platform))["activeInstances"] == 7
    result = cli("collect", "--at", AT, "--replace", "--json")
    assert result.exit_code == 0, result.stderr
    assert {m["status"] for m in json.loads(result.stdout)["metrics"]} == {"replaced"}
    rows = stored_rows(platform)
    assert len(rows) == 9
    assert dict((r[0], int(r[1])) for r in rows)["activeInstances"] == 6


def test_dry_run_writes_nothing(platform: Databases) -> None:
    result = cli("collect", "--at", AT, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert {m["type"]: m["count"] for m in report["metrics"]} == platform_data.EXPECTED
    with platform.store_conn() as conn:
        assert conn.execute("SELECT to_regclass('analytics')").fetchone() == (None,)


def test_only_runs_a_subset_and_rejects_unknown_types(platform: Databases) -> None:
    result = cli("collect", "--at", AT, "--only", "activeInstances", "--only", "dailyUsers")
    assert result.exit_code == 0, result.stderr
    assert sorted(r[0] for r in stored_rows(platform)) == ["activeInstances", "dailyUsers"]
    bad = cli("collect", "--only", "activeInstance")
    assert bad.exit_code == 2
    assert bad.stdout == ""
    lines = bad.stderr.splitlines()
    assert lines[0] == "error: unknown metric type 'activeInstance'"
    assert lines[1].startswith("hint: did you mean 'activeInstances'")
    assert len(lines) == 2


def test_broken_custom_metric_fails_alone(platform: Databases, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        '[[metric]]\ntype = "broken"\nsql = "SELECT count(*) AS count FROM no_such_table"\n'
        '[[metric]]\ntype = "noCount"\nsql = "SELECT 1 AS total"\n'
        '[[metric]]\ntype = "twoRows"\nsql = "SELECT 1 AS count UNION ALL SELECT 2"\n'
        '[[metric]]\ntype = "textCount"\nsql = "SELECT \'x\'::text AS count"\n',
    )
    result = cli("--config", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    errors = {m["type"]: m.get("error") for m in report["metrics"] if m["status"] == "failed"}
    assert errors == {
        "broken": 'relation "no_such_table" does not exist',
        "noCount": "query returned no column named count (got ['total'])",
        "twoRows": "query must return exactly one row, got more than one row",
        "textCount": "count is of type str, not numeric",
    }
    assert {r[0] for r in stored_rows(platform)} == set(platform_data.EXPECTED)
    assert 'warning: metric broken failed: relation "no_such_table" does not exist' in result.stderr
    assert "failed=4" in result.stderr


def test_metric_past_statement_timeout_fails_alone(platform: Databases, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        '[collect]\nstatement_timeout = "1s"\n'
        '[[metric]]\ntype = "slow"\nsql = "SELECT count(*) AS count FROM pg_sleep(5)"\n',
    )
    result = cli("--config", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    failed = [m for m in report["metrics"] if m["status"] == "failed"]
    assert [m["type"] for m in failed] == ["slow"]
    assert "statement timeout" in failed[0]["error"]
    assert {r[0] for r in stored_rows(platform)} == set(platform_data.EXPECTED)


def test_unreachable_database_exit_3_without_password() -> None:
    result = run_proc("--dsn", "postgresql://scott:tiger-pw-9@127.0.0.1:1/platform", "collect")
    assert result.exit_code == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    # The --dsn warning, the error line, then the cycle's summary line: nothing stored.
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith("warning: --dsn holds a password")
    assert lines[1].startswith(
        "error: cannot connect to the store database (scott@127.0.0.1:1/platform)"
    )
    assert lines[2].startswith("collect slot=") and " stored=0 present=0 failed=0 " in lines[2]
    assert "tiger-pw-9" not in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_during_slow_metric_exits_143_and_writes_nothing(
    platform: Databases, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "c.toml",
        '[[metric]]\ntype = "slow"\nsql = "SELECT count(*) AS count FROM pg_sleep(30)"\n',
    )
    env = proc_env(ANALYTICS_SOURCE_DSN=platform.source, ANALYTICS_STORE_DSN=platform.store)
    proc = spawn("--config", str(config), "collect", "--at", AT, env=env)
    with platform.source_conn() as conn:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"collect ended early: {proc.communicate()}")
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND application_name = 'analytics-cli'"
            ).fetchone()
            if busy and busy[0]:
                break
            time.sleep(0.1)
        else:
            proc.kill()
            proc.communicate()
            pytest.fail("the slow metric never started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    with platform.store_conn() as conn:
        assert conn.execute("SELECT count(*) FROM analytics").fetchone() == (0,)


def test_foreign_analytics_table_is_left_untouched(dbs: Databases) -> None:
    # The source database holds the iR Engine's own analytics table; with one more column it
    # is neither the analytics-cli nor the iR Engine layout (see tests/store/test_irengine.py for that).
    with dbs.source_conn() as conn:
        conn.execute("ALTER TABLE analytics ADD COLUMN note text")
        conn.execute(
            'INSERT INTO analytics (id, count, type, "createdAt", "updatedAt") '
            "VALUES (gen_random_uuid(), 5, 'activeInstances', now(), now())"
        )
        before = _definition(conn)
    result = cli("--dsn", dbs.source, "collect")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: table 'analytics' already exists with columns (id, count, type, createdAt, "
        "updatedAt, note), which is not the analytics-cli layout (id, type, count, timestamp, "
        "collected_at, metadata); it was left untouched",
        'hint: point [store] table at another name, for example table = "analytics_cli"',
    ]
    with dbs.source_conn() as conn:
        assert _definition(conn) == before
        assert conn.execute("SELECT count(*) FROM analytics").fetchone() == (1,)


def _definition(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return (
        conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull, "
            "pg_get_expr(adbin, adrelid) FROM pg_attribute LEFT JOIN pg_attrdef "
            "ON adrelid = attrelid AND adnum = attnum WHERE attrelid = 'analytics'::regclass "
            "AND attnum > 0 ORDER BY attnum"
        ).fetchall()
        + conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'analytics'::regclass ORDER BY conname"
        ).fetchall()
    )


def test_schema_qualified_store_table(platform: Databases, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[store]\ntable = "metrics.history"\n')
    assert cli("--config", str(config), "db", "init").exit_code == 0
    again = cli("--config", str(config), "db", "init")
    assert again.exit_code == 0
    assert again.stderr.strip() == "table metrics.history: already exists"
    result = cli("--config", str(config), "collect", "--at", AT)
    assert result.exit_code == 0, result.stderr
    assert len(stored_rows(platform, "metrics.history")) == 9


def test_json_log_format_is_one_object_per_line(platform: Databases) -> None:
    result = cli("--log-format", "json", "collect", "--at", AT)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    metrics = [r for r in records if r.get("event") == "metric"]
    assert {r["type"]: int(r["count"]) for r in metrics} == platform_data.EXPECTED
    assert records[-1]["event"] == "summary"
    assert records[-1]["stored"] == 9


def test_quiet_prints_only_the_summary(platform: Databases) -> None:
    result = cli("-q", "collect", "--at", AT)
    assert result.exit_code == 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("collect slot=2026-11-29T10:00:00Z stored=9 present=0 failed=0 ")


SNAPSHOT_PROBE = """
[[metric]]
type = "snapshotMode"
sql = '''
SELECT CASE WHEN current_setting('transaction_isolation') = 'repeatable read'
             AND current_setting('transaction_read_only') = 'on' THEN 1 ELSE 0 END AS count
'''
"""


@pytest.mark.parametrize("parallel", [1, 3])
def test_metrics_run_read_only_in_one_repeatable_read_snapshot(
    platform: Databases, tmp_path: Path, parallel: int
) -> None:
    config = write_config(
        tmp_path / "c.toml", f"[collect]\nparallel = {parallel}\n" + SNAPSHOT_PROBE
    )
    result = cli("--config", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    values = {m["type"]: m["count"] for m in json.loads(result.stdout)["metrics"]}
    assert values == {**platform_data.EXPECTED, "snapshotMode": 1}


def test_parallel_workers_share_the_snapshot(platform: Databases, tmp_path: Path) -> None:
    # Rows committed after the snapshot was exported must be invisible to every worker.
    config = write_config(
        tmp_path / "c.toml",
        "[collect]\nparallel = 4\n"
        '[[metric]]\ntype = "waitThenCount"\n'
        "sql = 'SELECT count(*) AS count FROM instance, pg_sleep(1.5) AS s'\n",
    )
    env = proc_env(ANALYTICS_SOURCE_DSN=platform.source, ANALYTICS_STORE_DSN=platform.store)
    proc = spawn("--config", str(config), "collect", "--at", AT, "--json", env=env)
    with platform.source_conn() as conn:
        for _ in range(300):
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND application_name = 'analytics-cli'"
            ).fetchone()
            if busy and busy[0]:
                break
            time.sleep(0.05)
        conn.execute(
            'INSERT INTO instance (id, "roomCode", ended, "createdAt", "updatedAt") '
            "SELECT gen_random_uuid(), 'late' || g, false, now(), now() FROM generate_series(1, 5) g"
        )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    values = {m["type"]: m["count"] for m in json.loads(out)["metrics"]}
    # instance holds 10 rows at the snapshot; the 5 late rows are not seen by any worker.
    assert values["waitThenCount"] == 10
    assert values["activeInstances"] == platform_data.EXPECTED["activeInstances"]
