"""A non-finite or NULL value in the store (written by hand, or the platform's own table with
its nullable count) is a gap in show, report and the anomalies: said once, never a crash."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from analytics_cli.timeutil import floor_slot, utcnow
from tests.conftest import Databases, proc_env, run_proc
from tests.helpers import custom_config
from tests.mariadb_server import MySQLPlatform

STEP = timedelta(minutes=30)


def _config(tmp: Path, store: str, source: str) -> Path:
    return custom_config(
        tmp / "c.toml",
        [("plain", "SELECT 7 AS count")],
        collect={"retries": 0},
        source={"dsn": source},
        store={"dsn": store},
    )


def _fill(dsn: str, ir_engine: bool, bad: list[str | None]) -> None:
    """Twelve recent slots of ``plain``: the last ones hold ``bad`` values, the rest 5."""
    last = floor_slot(utcnow(), STEP) - STEP
    values: list[str | None] = ["5"] * (12 - len(bad)) + bad
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, value in enumerate(values):
            at = last - STEP * (len(values) - 1 - i)
            if ir_engine:
                conn.execute(
                    'INSERT INTO analytics (id, count, type, "createdAt", "updatedAt") '
                    "VALUES (gen_random_uuid(), %s::int, 'plain', %s, %s)",
                    (value, at, at),
                )
            else:
                conn.execute(
                    'INSERT INTO analytics (type, count, "timestamp") '
                    "VALUES ('plain', %s::numeric, %s)",
                    (value, at),
                )


def _commands(tmp: Path) -> list[tuple[str, ...]]:
    return [
        ("show",),
        ("show", "plain", "--since", "1d"),
        ("show", "--format", "csv"),
        ("report", "--html", str(tmp / "r.html")),
        ("status", "--anomalies"),
    ]


def _check(tmp: Path, config: Path, gaps: int) -> None:
    env = proc_env(XDG_STATE_HOME=str(tmp / "state"))
    for command in _commands(tmp):
        result = run_proc("-c", str(config), *command, env=env)
        assert result.exit_code in (0, 1), (command, result.stderr)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        assert not result.stderr.startswith("error:"), (command, result.stderr)
        # Said once per command, however many queries read the window.
        said = [line for line in result.stderr.splitlines() if "no usable count" in line]
        assert said == [
            f"warning: {gaps} row(s) of table analytics hold no usable count "
            "(NULL, NaN or an infinity): shown as gaps"
        ], (command, result.stderr)


@pytest.mark.parametrize("bad", [["NaN"], ["Infinity"], ["-Infinity", "NaN"]])
def test_non_finite_values_in_the_native_store(
    dbs: Databases, tmp_path: Path, bad: list[str | None]
) -> None:
    config = _config(tmp_path, dbs.store, dbs.source)
    assert run_proc("-c", str(config), "db", "init").exit_code == 0
    _fill(dbs.store, False, bad)
    _check(tmp_path, config, len(bad))


def test_null_count_in_the_platform_table(dbs: Databases, tmp_path: Path) -> None:
    # The platform database holds the iR Engine's analytics table (nullable count).
    config = _config(tmp_path, dbs.source, dbs.source)
    _fill(dbs.source, True, [None])
    _check(tmp_path, config, 1)


def test_null_count_in_the_platform_table_on_mariadb(
    mysql_platform: MySQLPlatform, tmp_path: Path
) -> None:
    last = floor_slot(utcnow(), STEP) - STEP
    values: list[int | None] = [5] * 11 + [None]
    with mysql_platform.connect() as conn, conn.cursor() as cur:
        for i, value in enumerate(values):
            at = (last - STEP * (len(values) - 1 - i)).replace(tzinfo=None)
            cur.execute(
                "INSERT INTO analytics (id, count, type, createdAt, updatedAt) "
                "VALUES (UUID(), %s, 'plain', %s, %s)",
                (value, at, at),
            )
    config = _config(tmp_path, mysql_platform.url, mysql_platform.url)
    _check(tmp_path, config, 1)
