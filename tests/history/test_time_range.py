"""Times that make no sense: refused before anything is counted or written, never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from analytics_cli.timeutil import floor_slot, iso
from tests.conftest import Databases, cli
from tests.helpers import write_config

HALF = timedelta(minutes=30)


@pytest.fixture
def store_env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def _stored(dbs: Databases) -> list[tuple[datetime, str]]:
    with psycopg.connect(dbs.store) as conn:
        found = conn.execute("SELECT to_regclass('analytics')").fetchone()
        if found is None or found[0] is None:
            return []
        return [(r[0], r[1]) for r in conn.execute('SELECT "timestamp", type FROM analytics')]


@pytest.mark.parametrize(
    ("at", "message"),
    [
        (
            "9999-12-31T23:59:59Z",
            "error: invalid --at 9999-12-31T23:59:59Z: in the future (now is ",
        ),
        (
            "2099-01-01T00:00:00Z",
            "error: invalid --at 2099-01-01T00:00:00Z: in the future (now is ",
        ),
        ("0001-01-01T00:00:00Z", "error: invalid --at 0001-01-01T00:00:00Z: before 2000-01-01"),
        ("1999-12-31T23:59:59Z", "error: invalid --at 1999-12-31T23:59:59Z: before 2000-01-01"),
    ],
)
def test_at_out_of_range_is_refused_before_anything_is_written(
    store_env: Databases, clean_env: Path, at: str, message: str
) -> None:
    result = cli("collect", "--at", at, "--json")
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr
    error, hint = result.stderr.splitlines()
    assert error.startswith(message), error
    assert hint.startswith("hint: give a time ")
    assert "Traceback" not in result.stderr
    # Nothing counted, nothing written, nothing spooled: not even the table was made.
    assert _stored(store_env) == []
    assert [p for p in clean_env.rglob("*") if p.is_file()] == []


def test_at_inside_the_range_is_collected(store_env: Databases) -> None:
    # The first instant accepted, and a time less than one interval ahead (clock skew).
    ahead = datetime.now(UTC) + timedelta(minutes=20)
    for at in ("2000-01-01T00:00:00Z", iso(ahead)):
        result = cli("-q", "collect", "--at", at, "--only", "activeInstances")
        assert result.exit_code == 0, result.stderr
    slots = sorted(t for t, _ in _stored(store_env))
    assert slots == [datetime(2000, 1, 1, tzinfo=UTC), floor_slot(ahead, HALF)]


def _insert(dbs: Databases, rows: list[tuple[str, datetime]]) -> None:
    assert cli("db", "init").exit_code == 0
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        for type_, at in rows:
            conn.execute(
                'INSERT INTO analytics (type, count, "timestamp", collected_at) '
                "VALUES (%s, 1, %s, now())",
                (type_, at),
            )


def test_status_never_takes_a_row_from_the_future_as_fresh(store_env: Databases) -> None:
    # A row written by a version that took any --at (or by a clock far ahead), and the
    # real history: its newest row two days old.
    now = datetime.now(UTC)
    real = floor_slot(now, HALF) - timedelta(days=2)
    _insert(
        store_env,
        [("activeInstances", real), ("activeInstances", datetime(2099, 1, 1, tzinfo=UTC))],
    )
    result = cli("status", "--json")
    assert result.exit_code == 1, result.stderr  # stale: the real row is two days old
    doc = json.loads(result.stdout)
    assert doc["newest"] == iso(real)
    assert doc["newest_age_seconds"] >= 2 * 86400
    assert doc["stale"] is True
    assert doc["future"] == {"activeInstances": "2099-01-01T00:00:00Z"}
    metric = next(m for m in doc["metrics"] if m["type"] == "activeInstances")
    assert (metric["latest"], metric["stale"]) == (iso(real), True)
    assert metric["age_seconds"] >= 0
    assert result.stderr.splitlines()[0] == (
        "warning: rows dated in the future (up to 2099-01-01T00:00:00Z) of activeInstances: "
        "freshness is judged by the newest row up to now"
    )
    text = cli("status")
    assert text.exit_code == 1
    assert f"newest row: {iso(real)} (2d" in text.stdout


def test_status_with_only_future_rows_is_stale_and_never_negative(store_env: Databases) -> None:
    _insert(store_env, [("activeInstances", datetime(2099, 1, 1, tzinfo=UTC))])
    result = cli("status", "--json")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["newest"], doc["newest_age_seconds"], doc["stale"]) == (None, None, True)


@pytest.mark.parametrize(
    "args",
    [
        ["show", "--since", "0001-01-01", "--tz", "Pacific/Kiritimati"],
        ["show", "--until", "9999-12-31T23:59:59Z"],
        ["export", "--since", "0001-01-01T00:00:00Z"],
        ["report", "--html", "r.html", "--since", "0001-01-01"],
        ["report", "--html", "r.html", "--until", "9999-12-31T23:59:59Z"],
    ],
)
def test_reading_windows_far_out_are_refused_not_a_traceback(
    store_env: Databases, args: list[str]
) -> None:
    result = cli(*args)
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr
    index = next(i for i, a in enumerate(args) if a in ("--since", "--until"))
    option, value = args[index], args[index + 1]
    error, hint = result.stderr.splitlines()
    assert error == f"error: invalid {option} {value!r}: out of range"
    assert hint == "hint: give a time from 1970 to 2999 (or a duration ago: 30d)"
    assert not Path("r.html").exists()


def test_a_long_backfill_logs_progress_every_100_slots(
    store_env: Databases, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    write_config(
        config,
        '[collect]\nmetrics = []\ncatch_up = "0"\n'
        '[[metric]]\ntype = "filled"\nbackfill = true\nsql = "SELECT 1 AS count"\n',
    )
    # Five days of 30-minute slots: 240 to fill, with no terminal (as under cron).
    result = cli("-c", str(config), "collect", "--at", "2026-01-06T00:00:00Z", "--backfill", "5d")
    assert result.exit_code == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("backfill: ")]
    assert progress == [
        f"backfill: {n}/240 slots written" for n in (1, 60, 100, 120, 180, 200, 240)
    ]
    assert len(_stored(store_env)) == 241


LONG = "a" * 10_000


@pytest.mark.parametrize(
    ("args", "config", "start"),
    [
        (["collect", "--only", LONG], None, "error: unknown metric type 'aaaa"),
        (["show", "-t", LONG], None, "error: unknown metric type 'aaaa"),
        (["--log-format", "json", "export", "--type", LONG], None, '{"level": "error"'),
        (["collect"], f'[[metric]]\ntype = "{LONG}"\nsql = "SELECT 1 AS count"\n', "error: "),
        (["collect"], f'[store]\ntable = "{LONG}"\n', "error: "),
    ],
)
def test_a_10000_character_name_is_cut_in_the_message(
    store_env: Databases, tmp_path: Path, args: list[str], config: str | None, start: str
) -> None:
    assert cli("db", "init").exit_code == 0  # show and export check types against the table
    if config is not None:
        path = tmp_path / "c.toml"
        write_config(path, config)
        args = ["-c", str(path), *args]
    result = cli(*args)
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr[:500]
    error = result.stderr.splitlines()[0]
    assert error.startswith(start), error[:500]
    # Named by its start and its length, not echoed whole.
    assert "a" * 50 + "..." in error
    assert "(10002 characters)" in error  # the name and its quotes
    assert len(result.stderr) < 1000, result.stderr[:500]
