"""What a run says about the spool: status with the store down, exit 3's report and summary,
rows written by a replay, the other stores' files and the command that removes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from analytics_cli import spool
from analytics_cli.config.schema import Settings
from analytics_cli.samples import Sample, Series
from tests.conftest import Databases, proc_env, run_proc
from tests.helpers import custom_config, spool_file

BASE = datetime(2026, 1, 1, tzinfo=UTC)
DOWN = "host=127.0.0.1 port=1 dbname=nowhere user=nobody connect_timeout=1"
SECRET = "N0tPr1nted"


def _slot(i: int) -> str:
    return (BASE + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(tmp: Path) -> dict[str, str]:
    return proc_env(XDG_STATE_HOME=str(tmp / "state"))


def _folder(tmp: Path) -> Path:
    return tmp / "state" / "analytics-cli" / "spool"


def _config(tmp: Path, dbs: Databases, store: str, name: str = "c.toml") -> Path:
    return custom_config(
        tmp / name,
        [("plain", "SELECT 7 AS count"), ("other", "SELECT 2 AS count")],
        collect={"retries": 0, "connect_timeout": "1s"},
        source={"dsn": dbs.source},
        store={"dsn": store},
    )


def _rows(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT type, to_char(\"timestamp\" AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), count::text FROM analytics ORDER BY 2, 1, 3'
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_status_with_the_store_down_lists_the_spool_and_exits_3(
    dbs: Databases, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    config = _config(tmp_path, dbs, f"{DOWN} password={SECRET}")
    spooled = run_proc("-c", str(config), "collect", "--at", _slot(0), env=env)
    assert spooled.exit_code == 3, spooled.stderr
    [path] = spool.pending(_folder(tmp_path))
    result = run_proc("-c", str(config), "status", env=env)
    assert result.exit_code == 3, result.stderr
    assert (
        f"spool: 1 slot(s) waiting in {_folder(tmp_path)}, oldest {_slot(0)}: "
        "the next run that reaches the store writes them"
    ) in result.stdout.splitlines()
    assert result.stderr.startswith("error: cannot connect to the store database")
    assert SECRET not in result.stdout + result.stderr
    doc = run_proc("-c", str(config), "status", "--json", env=env)
    assert doc.exit_code == 3
    listed = json.loads(doc.stdout)
    assert listed["exit_code"] == 3
    assert listed["spooled"] == [{"slot": _slot(0), "file": str(path)}]
    assert listed["store_error"].startswith("cannot connect to the store database")
    assert SECRET not in doc.stdout


def test_exit_3_keeps_the_json_report_and_the_summary_line(dbs: Databases, tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = _config(tmp_path, dbs, DOWN)
    result = run_proc("-c", str(config), "collect", "--at", _slot(0), "--json", env=env)
    assert result.exit_code == 3, result.stderr
    doc = json.loads(result.stdout)
    [path] = spool.pending(_folder(tmp_path))
    assert doc["exit_code"] == 3
    assert doc["slot"] == _slot(0)
    assert doc["spooled_rows"] == 2
    assert doc["error"].startswith("cannot connect to the store database")
    assert doc["error"].endswith(f"spooled (2 rows) to {path}")
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {doc['error']}"
    assert lines[-1].startswith(f"collect slot={_slot(0)} stored=0 present=0 failed=0 ")
    assert lines[-1].endswith(" spooled=2")
    plain = run_proc("-c", str(config), "collect", "--at", _slot(1), env=env)
    assert plain.exit_code == 3
    assert plain.stdout == ""
    assert plain.stderr.splitlines()[-1].startswith(f"collect slot={_slot(1)} stored=0 ")


def test_spooled_written_counts_rows_not_files(dbs: Databases, tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = _config(tmp_path, dbs, dbs.store)
    stored = run_proc("-c", str(config), "collect", "--at", _slot(0), "--no-spool", env=env)
    assert stored.exit_code == 0, stored.stderr
    identity = spool.store_identity(Settings(store_dsn=dbs.store))
    folder = _folder(tmp_path)
    # Slot 0 is already stored: its replay writes no row. Slot 1: a series of three rows.
    for i, outcomes in (
        (0, [Sample("plain", Decimal(99))]),
        (
            1,
            [
                Series(
                    "byRoom",
                    tuple(Sample("byRoom", Decimal(n), {"room": f"r{n}"}) for n in (1, 2, 3)),
                )
            ],
        ),
    ):
        slot = BASE + timedelta(minutes=30 * i)
        spool_file(folder, slot, outcomes, identity)
    result = run_proc("-c", str(config), "collect", "--at", _slot(2), env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1].endswith(" spooled_written=3")
    assert spool.pending(folder) == []
    assert [r for r in _rows(dbs.store) if r[1] != _slot(2)] == [
        ("other", _slot(0), "2"),
        ("plain", _slot(0), "7"),
        ("byRoom", _slot(1), "1"),
        ("byRoom", _slot(1), "2"),
        ("byRoom", _slot(1), "3"),
    ]
    doc = json.loads(
        run_proc("-c", str(config), "collect", "--at", _slot(3), "--json", env=env).stdout
    )
    assert "spooled_rows_written" not in doc


def test_files_of_another_store_are_listed_and_dropped(dbs: Databases, tmp_path: Path) -> None:
    env = _env(tmp_path)
    typo = _config(tmp_path, dbs, f"{DOWN} password={SECRET}", "typo.toml")
    assert run_proc("-c", str(typo), "collect", "--at", _slot(0), env=env).exit_code == 3
    [orphan] = spool.pending(_folder(tmp_path))
    fixed = _config(tmp_path, dbs, dbs.store)
    store = "postgresql database nowhere (user nobody, host 127.0.0.1, port 1), table analytics"
    shown = run_proc("-c", str(fixed), "status", env=env)
    assert shown.exit_code == 1  # nothing stored yet: stale
    assert f"spool: {orphan} is for another store ({store}): not replayed here" in shown.stdout
    assert "spool: remove the other stores' files with: analytics-cli spool drop --foreign" in (
        shown.stdout
    )
    assert "slot(s) waiting" not in shown.stdout
    for i in (1, 2):
        result = run_proc("-c", str(fixed), "collect", "--at", _slot(i), env=env)
        assert result.exit_code == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert warnings == [
            f"warning: 1 spool file(s) in {_folder(tmp_path)} are for another store ({store}) "
            "and are not replayed here; remove them with: analytics-cli spool drop --foreign"
        ]
        assert SECRET not in result.stderr
    listed = json.loads(run_proc("-c", str(fixed), "spool", "list", "--json", env=env).stdout)
    assert listed["files"] == [
        {"file": str(orphan), "slot": _slot(0), "rows": 2, "store": store, "problem": None}
    ]
    assert (listed["folder"], listed["rejected"]) == (str(_folder(tmp_path)), [])
    text = run_proc("-c", str(fixed), "spool", "list", env=env)
    assert (text.exit_code, text.stdout) == (
        0,
        f"spool folder {_folder(tmp_path)}: 1 file(s), 0 set aside\n"
        f"{orphan}  another store: {store}\n",
    )
    refused = run_proc("-c", str(fixed), "spool", "drop", "--foreign", env=env)
    assert refused.exit_code == 2
    assert orphan.exists()
    dropped = run_proc("-c", str(fixed), "spool", "drop", "--foreign", "--yes", env=env)
    assert dropped.exit_code == 0, dropped.stderr
    assert f"removed 1 spool file(s) from {_folder(tmp_path)}" in dropped.stderr
    assert spool.pending(_folder(tmp_path)) == []
    quiet = run_proc("-c", str(fixed), "collect", "--at", _slot(3), env=env)
    assert "warning" not in quiet.stderr
