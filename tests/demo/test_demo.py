"""The demo: zero-setup run on the embedded server, honest collected values, safe on real databases."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from analytics_cli import demo
from analytics_cli.cli import app
from analytics_cli.engines.postgresql import embedded
from analytics_cli.timeutil import floor_slot
from tests.conftest import Databases, cli, run_proc
from tests.scratch import scratch_database

HALF_HOUR = timedelta(minutes=30)
METRICS = [
    "activeChannels",
    "activeInstances",
    "activeLocations",
    "activeScenes",
    "channelUsers",
    "chatMessages",
    "dailyNewUsers",
    "dailyUsers",
    "instanceUsers",
]


def _commands() -> set[str]:
    return {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}


def postgres_processes(pgdata: Path) -> list[int]:
    """Live (not zombie) processes whose command line names this data directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(pgdata) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@contextmanager
def outside_tmp() -> Iterator[Path]:
    """A scratch folder outside pytest's base temp folder.

    As root the server runs as an unprivileged account that needs search permission on every
    parent of its data folder; a pytest session starting meanwhile resets its own base folder
    to mode 0700, which would cut a server started there from its files.
    """
    folder = Path(tempfile.mkdtemp(prefix="analytics-cli-embedded-test-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def assert_server_gone(home: Path) -> None:
    """No postmaster for this data folder: no process, no pid file, pg_ctl says stopped."""
    pgdata = embedded.pgdata_dir(home)
    assert postgres_processes(pgdata) == []
    assert not (pgdata / "postmaster.pid").exists()
    assert not embedded._running(embedded.server_bin_dir(), pgdata)


@pytest.fixture
def user_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh HOME with no configuration, outside pytest's base temp folder."""
    with outside_tmp() as folder:
        monkeypatch.setenv("HOME", str(folder))
        yield folder


def test_demo_one_day_on_the_embedded_default(user_home: Path) -> None:
    home = user_home / ".local" / "share" / "analytics-cli"
    before = floor_slot(datetime.now(UTC), HALF_HOUR)
    result = run_proc("demo", "--days", "1", timeout=300)
    after = floor_slot(datetime.now(UTC), HALF_HOUR)
    assert result.exit_code == 0, result.stderr
    announce = f"using the embedded PostgreSQL in {home} (no connection string set)"
    assert result.stderr.splitlines()[0] == announce
    assert result.stderr.count("using the embedded PostgreSQL") == 1
    assert "demo: 0/48 slots collected" in result.stderr.splitlines()
    assert "demo: 48/48 slots collected" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert "Next, try:\n  analytics-cli show " in result.stdout
    assert "activeInstances" in result.stdout
    assert_server_gone(home)

    # The history is in the embedded store: 48 consecutive slots, every metric once each.
    with (
        embedded.server(home) as server,
        psycopg.connect(server.dsn(embedded.STORE_DB)) as conn,
    ):
        rows = conn.execute(
            'SELECT "timestamp", count(*), array_agg(type ORDER BY type) '
            'FROM analytics GROUP BY "timestamp" ORDER BY "timestamp"'
        ).fetchall()
    assert_server_gone(home)
    assert len(rows) == 48
    assert rows[-1][0] in (before, after)
    assert [r[0] for r in rows] == [rows[0][0] + i * HALF_HOUR for i in range(48)]
    assert {r[1] for r in rows} == {9}
    assert all(r[2] == METRICS for r in rows)

    # The other commands work on the same data with no configuration either.
    if "show" in _commands():
        shown = run_proc("show")
        assert shown.exit_code == 0, shown.stderr
        assert "activeInstances" in shown.stdout
    if "export" in _commands():
        exported = run_proc("export", "--format", "csv")
        assert exported.exit_code == 0, exported.stderr
        assert exported.stdout.count("activeInstances") == 48
    collected = run_proc("collect")
    assert collected.exit_code == 0, collected.stderr
    assert_server_gone(home)


@pytest.fixture
def empty_source(dbs: Databases) -> Iterator[str]:
    """An empty database to serve as the demo's platform."""
    with scratch_database(dbs.admin, "t_demo") as dsn:
        yield dsn


INDEPENDENT = {
    # The definitions of IR_ENGINE_SCHEMA.md, at a past moment %(t)s: a row existed when it was
    # created at or before t, and was running unless it had ended by then ("updatedAt" records
    # when the platform set ended = true).
    "activeInstances": """SELECT count(*) FROM instance
        WHERE "createdAt" <= %(t)s AND NOT (coalesce(ended, false) AND "updatedAt" <= %(t)s)""",
    "activeLocations": """SELECT count(DISTINCT "locationId") FROM instance
        WHERE "createdAt" <= %(t)s AND NOT (coalesce(ended, false) AND "updatedAt" <= %(t)s)""",
    "activeScenes": """SELECT count(DISTINCT l."sceneId") FROM instance i
        JOIN location l ON l.id = i."locationId"
        WHERE i."createdAt" <= %(t)s AND NOT (coalesce(i.ended, false) AND i."updatedAt" <= %(t)s)""",
    "activeChannels": """SELECT count(DISTINCT "channelId") FROM instance
        WHERE "createdAt" <= %(t)s AND NOT (coalesce(ended, false) AND "updatedAt" <= %(t)s)""",
    "instanceUsers": """SELECT count(DISTINCT "userId") FROM "instance-attendance"
        WHERE "isChannel" = false AND "createdAt" <= %(t)s
          AND NOT (coalesce(ended, false) AND "updatedAt" <= %(t)s)""",
    "channelUsers": """SELECT count(DISTINCT "userId") FROM "instance-attendance"
        WHERE "isChannel" = true AND "createdAt" <= %(t)s
          AND NOT (coalesce(ended, false) AND "updatedAt" <= %(t)s)""",
    "dailyUsers": """SELECT count(DISTINCT "userId") FROM "instance-attendance"
        WHERE "createdAt" > %(t)s - interval '24 hours' AND "createdAt" <= %(t)s""",
    "dailyNewUsers": """SELECT count(*) FROM "user"
        WHERE "createdAt" > %(t)s - interval '24 hours' AND "createdAt" <= %(t)s""",
    "chatMessages": """SELECT count(*) FROM message WHERE NOT "isNotification"
        AND "createdAt" > %(t)s - interval '30 minutes' AND "createdAt" <= %(t)s""",
}


def test_collected_values_match_an_independent_count(
    dbs: Databases, empty_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", empty_source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    result = cli("demo", "--days", "1", "--seed", "7", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "using the embedded" not in result.stderr
    with psycopg.connect(dbs.store) as conn:
        stored = {
            (t, ts): c
            for t, ts, c in conn.execute('SELECT type, "timestamp", count FROM analytics')
        }
    slots = sorted({ts for _, ts in stored})
    assert len(slots) == 48
    with psycopg.connect(empty_source) as conn:
        # Every row was written by the demo and no later than the last slot.
        for table in ("user", "instance", "instance-attendance", "message"):
            latest = conn.execute(
                sql.SQL('SELECT max("createdAt") FROM {}').format(sql.Identifier(table))
            ).fetchone()
            assert latest is not None and latest[0] <= slots[-1]
        for slot in (slots[0], slots[17], slots[30], slots[-1]):
            for metric, query in INDEPENDENT.items():
                row = conn.execute(query, {"t": slot}).fetchone()  # type: ignore[arg-type]
                assert row is not None
                assert stored[(metric, slot)] == Decimal(row[0]), (metric, slot)
    # The platform is alive: the numbers are not all zero.
    for metric in ("instanceUsers", "dailyUsers", "chatMessages", "activeScenes"):
        assert max(stored[(metric, s)] for s in slots) > 0, metric
    # Scenes are shared and one location has none: the two metrics differ somewhere.
    assert any(stored[("activeScenes", s)] < stored[("activeLocations", s)] for s in slots)


def test_configured_database_needs_yes_without_a_terminal(
    dbs: Databases, empty_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", empty_source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    result = run_proc("demo", "--days", "1")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: the demo creates the iR Engine platform tables in ")
    assert lines[0].endswith(": confirmation needed")
    assert lines[1] == "hint: pass --yes to go ahead without a question"
    with psycopg.connect(empty_source) as conn:
        assert conn.execute("SELECT to_regclass('instance')").fetchone() == (None,)


def test_demo_never_touches_tables_it_did_not_create(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dbs.source_conn() as conn:
        conn.execute(
            """INSERT INTO "user" (id, name, "createdAt", "updatedAt")
               VALUES (gen_random_uuid(), 'real', now(), now())"""
        )
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    result = cli("demo", "--days", "1", "--yes")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [
        "error: the source database already has platform tables the demo did not create "
        "(user, project, static-resource, location, instance, instance-attendance, channel, "
        "channel-user, message, analytics); they were left untouched",
        "hint: run the demo on an empty database, or with no connection string "
        "(the embedded PostgreSQL)",
    ]
    with dbs.source_conn() as conn:
        assert conn.execute('SELECT name FROM "user"').fetchall() == [("real",)]


def test_demo_runs_again_over_its_own_tables(
    dbs: Databases, empty_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", empty_source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    first = cli("demo", "--days", "1", "--seed", "3", "--yes")
    assert first.exit_code == 0, first.stderr
    with psycopg.connect(empty_source) as conn:
        users = conn.execute('SELECT count(*) FROM "user"').fetchone()
    again = cli("demo", "--days", "1", "--seed", "3", "--yes")
    assert again.exit_code == 0, again.stderr
    with psycopg.connect(empty_source) as conn:
        assert conn.execute('SELECT count(*) FROM "user"').fetchone() == users
        comment = conn.execute("SELECT obj_description('instance'::regclass)").fetchone()
        assert comment == (demo.MARKER,)


def test_same_database_for_platform_and_store_needs_another_table(
    empty_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_DSN", empty_source)
    result = cli("demo", "--days", "1", "--yes")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: the source and the store are the same database, and the store table "
        "'analytics' is the name of the platform's own table",
        'hint: set table = "analytics_cli" in the [store] section of the config file, '
        "or give the store its own database ($ANALYTICS_STORE_DSN)",
    ]
    Path("analytics-cli.toml").write_text('[store]\ntable = "analytics_cli"\n')
    result = cli("demo", "--days", "1", "--yes")
    assert result.exit_code == 0, result.stderr
    with psycopg.connect(empty_source) as conn:
        row = conn.execute('SELECT count(DISTINCT "timestamp") FROM analytics_cli').fetchone()
        assert row == (48,)
        assert conn.execute("SELECT count(*) FROM analytics").fetchone() == (0,)


def test_simulation_is_deterministic_for_a_seed() -> None:
    last = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    one = demo.simulate(last, 2, HALF_HOUR, seed=5)
    two = demo.simulate(last, 2, HALF_HOUR, seed=5)
    other = demo.simulate(last, 2, HALF_HOUR, seed=6)
    assert one.rows == two.rows
    assert one.rows["instance-attendance"] != other.rows["instance-attendance"]
    assert one.slots == 96
    assert one.slot_time(95) == last


def test_simulation_has_a_daily_and_weekly_rhythm() -> None:
    # A full week ending on a Sunday night: evenings beat nights, weekends beat weekdays.
    platform = demo.simulate(datetime(2026, 11, 29, 23, 30, tzinfo=UTC), 7, HALF_HOUR, seed=1)
    joins = [
        datetime.fromtimestamp(r.created, UTC)
        for r in platform.rows["instance-attendance"]
        if r.created > platform.first
    ]
    evening = sum(17 <= j.hour < 22 for j in joins)
    night = sum(2 <= j.hour < 7 for j in joins)
    assert evening > 3 * night
    weekend = sum(j.weekday() >= 5 for j in joins) / 2
    weekday = sum(j.weekday() < 5 for j in joins) / 5
    assert weekend > 1.2 * weekday
    signups = [r for r in platform.rows["user"] if r.created > platform.first]
    assert len(signups) > 100
    # Every attendance and instance ends after it starts, never in the future.
    end = platform.first + (platform.slots - 1) * platform.step
    for table in demo.ENDABLE:
        for row in platform.rows[table]:
            assert row.created <= end
            assert row.ended is None or row.created <= row.ended <= end
