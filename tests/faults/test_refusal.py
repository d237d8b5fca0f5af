"""Outage or refusal: a row the store refuses for its content fails that metric alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from analytics_cli import spool
from analytics_cli.config.schema import Settings
from analytics_cli.samples import Sample
from tests.conftest import Databases, proc_env, run_proc
from tests.helpers import custom_config, spool_file, write_config
from tests.mariadb_server import MySQLPlatform

BASE = datetime(2026, 1, 1, tzinfo=UTC)
NUL_SQL = "SELECT concat('L', char(0), 'x') AS location, 3 AS count"


def _slot(i: int) -> str:
    return (BASE + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(tmp: Path) -> dict[str, str]:
    return proc_env(XDG_STATE_HOME=str(tmp / "state"))


def _folder(tmp: Path) -> Path:
    return tmp / "state" / "analytics-cli" / "spool"


def _stored(dsn: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('analytics')").fetchone()
        if exists is None or exists[0] is None:
            return []
        rows = conn.execute(
            "SELECT type, to_char(\"timestamp\" AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), count::text, metadata::text '
            "FROM analytics ORDER BY 2, 1, 4"
        ).fetchall()
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def _nul_config(tmp: Path, source: str, store: str) -> Path:
    path = tmp / "nul.toml"
    doc = {
        "collect": {"metrics": [], "retries": 0},
        "source": {"dsn": source},
        "store": {"dsn": store},
        "metric": [
            {"type": "byLocation", "sql": NUL_SQL, "dimensions": ["location"]},
            {"type": "plain", "sql": "SELECT 7 AS count"},
        ],
    }
    write_config(path, doc)
    return path


def test_nul_in_a_dimension_fails_that_metric_only(
    mysql_platform: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    config = _nul_config(tmp_path, mysql_platform.url, dbs.store)
    env = _env(tmp_path)
    for i in range(3):
        result = run_proc("-c", str(config), "collect", "--at", _slot(i), env=env)
        assert result.exit_code == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if "byLocation" in line]
        assert len(errors) == 1, result.stderr
        assert "NUL" in errors[0] and "location" in errors[0], errors[0]
        assert "spool" not in result.stderr
    assert _stored(dbs.store) == [("plain", _slot(i), "7", "{}") for i in range(3)]
    assert not _folder(tmp_path).exists()
    # A dry run says the same before anything is written.
    dry = run_proc("-c", str(config), "collect", "--dry-run", "--at", _slot(5), env=env)
    assert dry.exit_code == 1, dry.stderr
    [line] = [line for line in dry.stderr.splitlines() if "type=byLocation" in line]
    assert "status=failed" in line and "holds a NUL byte" in line, line


def _markers_config(tmp: Path, dbs: Databases, metrics: list[tuple[str, str]]) -> Path:
    return custom_config(
        tmp / "c.toml",
        metrics,
        collect={"retries": 0, "connect_timeout": "1s"},
        source={"dsn": dbs.source},
        store={"dsn": dbs.store},
    )


def _spool_file(tmp: Path, dbs: Databases, i: int, rows: dict[str, int]) -> Path:
    """A cycle of this store for slot ``i`` spooled by hand: one plain row per type."""
    slot = BASE + timedelta(minutes=30 * i)
    identity = spool.store_identity(Settings(store_dsn=dbs.store))
    outcomes = [Sample(name, Decimal(value)) for name, value in rows.items()]
    return spool_file(_folder(tmp), slot, outcomes, identity)


def test_nul_in_a_spooled_type_is_set_aside_and_collection_goes_on(
    dbs: Databases, tmp_path: Path
) -> None:
    config = _markers_config(tmp_path, dbs, [("plain", "SELECT 7 AS count")])
    env = _env(tmp_path)
    bad = _spool_file(tmp_path, dbs, 0, {"pl\x00ain": 5})
    assert "\\u0000" in bad.read_text()  # the file really holds the NUL, escaped as JSON does
    for i in (1, 2):
        result = run_proc("-c", str(config), "collect", "--at", _slot(i), env=env)
        assert result.exit_code == 0, result.stderr
    aside = _folder(tmp_path) / "rejected"
    assert (aside / bad.name).exists()
    assert spool.pending(_folder(tmp_path)) == []
    assert _stored(dbs.store) == [("plain", _slot(i), "7", "{}") for i in (1, 2)]


def test_warning_names_the_set_aside_file_and_the_nul(dbs: Databases, tmp_path: Path) -> None:
    config = _markers_config(tmp_path, dbs, [("plain", "SELECT 7 AS count")])
    bad = _spool_file(tmp_path, dbs, 0, {"pl\x00ain": 5})
    result = run_proc("-c", str(config), "collect", "--at", _slot(1), env=_env(tmp_path))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: spool file {bad.name} set aside in {_folder(tmp_path)}/rejected: "
        "type 'pl\\x00ain' is not a valid metric type"
    ]


def _check_constraint(dbs: Databases) -> None:
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        conn.execute("ALTER TABLE analytics ADD CONSTRAINT no_negatives CHECK (count >= 0)")


def test_check_violation_fails_that_metric_and_stores_the_rest(
    dbs: Databases, tmp_path: Path
) -> None:
    config = _markers_config(
        tmp_path, dbs, [("negative", "SELECT -1 AS count"), ("plain", "SELECT 7 AS count")]
    )
    env = _env(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env).exit_code == 0
    _check_constraint(dbs)
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), env=env)
    assert result.exit_code == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "negative" in line]
    assert len(lines) == 1, result.stderr
    assert "status=failed" in lines[0]
    assert "the store refused its rows" in lines[0] and "no_negatives" in lines[0]
    assert "spool" not in result.stderr
    assert _stored(dbs.store) == [("plain", _slot(0), "7", "{}")]
    assert not _folder(tmp_path).exists()
    report = run_proc("-c", str(config), "collect", "--at", _slot(1), "--json", env=env)
    assert report.exit_code == 1
    doc = json.loads(report.stdout)
    assert [(m["type"], m["status"]) for m in doc["metrics"]] == [
        ("negative", "failed"),
        ("plain", "stored"),
    ]


def test_a_spooled_cycle_the_store_refuses_is_set_aside_once(
    dbs: Databases, tmp_path: Path
) -> None:
    config = _markers_config(tmp_path, dbs, [("plain", "SELECT 7 AS count")])
    env = _env(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env).exit_code == 0
    _check_constraint(dbs)
    refused = _spool_file(tmp_path, dbs, 0, {"negative": -4, "plain": 3})
    result = run_proc("-c", str(config), "collect", "--at", _slot(1), env=env)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith(
        f"warning: spool file {refused.name} set aside in {_folder(tmp_path)}/rejected: "
        "the store refused negative: "
    )
    assert "no_negatives" in warnings[0]
    assert warnings[0].endswith("; its other 1 row(s) were stored")
    assert "spooled_written=1" in result.stderr
    assert _stored(dbs.store) == [
        ("plain", _slot(0), "3", "{}"),
        ("plain", _slot(1), "7", "{}"),
    ]
    assert spool.pending(_folder(tmp_path)) == []
    assert (_folder(tmp_path) / "rejected" / refused.name).exists()
    again = run_proc("-c", str(config), "collect", "--at", _slot(2), env=env)
    assert again.exit_code == 0, again.stderr
    assert "warning" not in again.stderr
    shown = run_proc("-c", str(config), "status", env=env)
    assert (
        f"spool: 1 file(s) set aside in {_folder(tmp_path)}/rejected (never replayed): "
        "read the warnings, then delete them"
    ) in shown.stdout.splitlines()
    dropped = run_proc("-c", str(config), "spool", "drop", "--rejected", "--yes", env=env)
    assert dropped.exit_code == 0, dropped.stderr
    assert list((_folder(tmp_path) / "rejected").iterdir()) == []
    assert "set aside" not in run_proc("-c", str(config), "status", env=env).stdout


def test_an_outage_while_replaying_names_the_file(dbs: Databases, tmp_path: Path) -> None:
    config = _markers_config(tmp_path, dbs, [("plain", "SELECT 7 AS count")])
    env = _env(tmp_path)
    assert run_proc("-c", str(config), "db", "init", env=env).exit_code == 0
    waiting = _spool_file(tmp_path, dbs, 0, {"plain": 3})
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbs.store_name}" SET default_transaction_read_only = on')
    result = run_proc("-c", str(config), "collect", "--at", _slot(1), env=env)
    assert result.exit_code == 3, result.stderr
    first = result.stderr.splitlines()[0]
    assert "read-only transaction" in first
    assert f"(replaying spool file {waiting})" in first
    # An outage is not a refusal: the file waits for the store, with the new cycle behind it.
    assert waiting in spool.pending(_folder(tmp_path))
    assert len(spool.pending(_folder(tmp_path))) == 2
    assert not (_folder(tmp_path) / "rejected").exists()


def test_a_check_the_mariadb_store_fails_refuses_that_metric(
    mysql_platform: MySQLPlatform, tmp_path: Path
) -> None:
    # The platform's own analytics table in MariaDB as the store; MariaDB reports a failed
    # CHECK as error 4025, which PyMySQL raises as an OperationalError.
    with mysql_platform.connect() as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE analytics ADD CONSTRAINT no_negatives CHECK (count >= 0)")
    config = custom_config(
        tmp_path / "my.toml",
        [("negative", "SELECT -1 AS count"), ("plain", "SELECT 7 AS count")],
        collect={"retries": 0},
        source={"dsn": mysql_platform.url},
        store={"dsn": mysql_platform.url},
    )
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), env=_env(tmp_path))
    assert result.exit_code == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "type=negative" in line]
    assert "status=failed" in line and "no_negatives" in line, line
    assert "spool" not in result.stderr
    assert not _folder(tmp_path).exists()
    with mysql_platform.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT type, count FROM analytics ORDER BY type")
        assert list(cur.fetchall()) == [("plain", 7)]
