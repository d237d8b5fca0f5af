"""Operations commands against a real PostgreSQL: config, metrics, status, prune, textfile, ping."""

from __future__ import annotations

import json
import os
import threading
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_cli.config import starter
from analytics_cli.config.load import load
from analytics_cli.metrics import builtin_metrics
from analytics_cli.monitor import ping_target, textfile_text
from analytics_cli.timeutil import floor_slot, iso, utcnow
from tests.conftest import Databases, Result, cli
from tests.helpers import write_config

BUILTINS = [m.type for m in builtin_metrics() if m.enabled]  # the default set
ALL_BUILTINS = [m.type for m in builtin_metrics()]  # also those marked enabled = false
SECRET = "s3cr3t-pw"
FAKE_DSN = f"postgresql://user:{SECRET}@db.example.com/platform"
INTERVAL = timedelta(minutes=30)


def with_password(dsn: str) -> tuple[str, str]:
    """The DSN with a password (ignored by the trusting test server) and that password."""
    params = conninfo_to_dict(dsn)
    if params.get("password"):
        return dsn, str(params["password"])
    params["password"] = SECRET
    return make_conninfo("", **params), SECRET


def assert_no_secret(result: Result, secret: str = SECRET) -> None:
    assert secret not in result.stdout
    assert secret not in result.stderr


@pytest.fixture
def env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """Point the tool at the test databases, both with a password in the DSN."""
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", with_password(dbs.source)[0])
    monkeypatch.setenv("ANALYTICS_STORE_DSN", with_password(dbs.store)[0])
    return dbs


def _uid(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-cli-ops-test:{name}")


def seed_platform(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Two running world instances (one in a lobby), one ended; four users, one a guest.

    Hand-counted: activeInstances 2, activeLocations 2, instanceUsers 3, registeredUsers 3,
    guestUsersNow 1, lobbyUsers 2, usersPerInstance 1.5, instanceFillPercent 15.0.
    """
    now = utcnow()
    then = now - timedelta(hours=2)
    for name, guest in (("u1", False), ("u2", False), ("u3", True), ("u4", False)):
        conn.execute(
            'INSERT INTO "user" (id, name, "isGuest", "createdAt", "updatedAt") '
            "VALUES (%s, %s, %s, %s, %s)",
            (_uid(name), name, guest, then, then),
        )
    for name, lobby in (("lobby", True), ("plaza", False)):
        conn.execute(
            'INSERT INTO location (id, name, "slugifiedName", "isLobby", "maxUsersPerInstance", '
            '"createdAt", "updatedAt") VALUES (%s, %s, %s, %s, 10, %s, %s)',
            (_uid(name), name, name, lobby, then, then),
        )
    for name, location, ended in (
        ("i1", "lobby", False),
        ("i2", "plaza", False),
        ("i3", "plaza", True),
    ):
        conn.execute(
            'INSERT INTO instance (id, "roomCode", ended, "locationId", "createdAt", "updatedAt") '
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (_uid(name), name, ended, _uid(location), then, then),
        )
    for name, user, instance, ended in (
        ("a1", "u1", "i1", False),
        ("a2", "u2", "i1", False),
        ("a3", "u3", "i2", False),
        ("a4", "u4", "i3", True),
    ):
        conn.execute(
            'INSERT INTO "instance-attendance" (id, "isChannel", ended, "userId", "instanceId", '
            '"createdAt", "updatedAt") VALUES (%s, false, %s, %s, %s, %s, %s)',
            (_uid(name), ended, _uid(user), _uid(instance), then, then),
        )


def init_store(dbs: Databases) -> None:
    result = cli("db", "init")
    assert result.exit_code == 0, result.stderr


def insert_rows(dbs: Databases, rows: list[tuple[str, datetime, int]]) -> None:
    with dbs.store_conn() as conn:
        for type_, slot, count in rows:
            conn.execute(
                'INSERT INTO analytics (type, count, "timestamp", collected_at) '
                "VALUES (%s, %s, %s, %s)",
                (type_, count, slot, slot),
            )


def store_rows(dbs: Databases) -> list[tuple[str, datetime]]:
    with dbs.store_conn() as conn:
        return [
            (str(r[0]), r[1])  # type: ignore[misc]
            for r in conn.execute('SELECT type, "timestamp" FROM analytics ORDER BY 2, 1')
        ]


def store_tables(dbs: Databases) -> list[str]:
    with dbs.store_conn() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace"
            )
        ]


# ---------------------------------------------------------------------------- config init


def test_config_init_writes_a_loadable_starter(tmp_path: Path) -> None:
    result = cli("config", "init")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == (
        "wrote analytics-cli.toml; check it with: analytics-cli -c analytics-cli.toml config check\n"
    )
    path = tmp_path / "analytics-cli.toml"
    assert path.stat().st_mode & 0o777 == 0o600
    doc = tomllib.loads(path.read_text())
    assert doc["collect"]["metrics"] == BUILTINS
    assert doc["metric"] == [starter.example_metric("postgresql")]
    settings = load(path, env={})
    assert settings.metrics == tuple(BUILTINS)
    assert [m.type for m in settings.custom] == ["registeredUsers"]
    assert settings.interval == INTERVAL
    assert settings.table == "analytics"
    # Readable SQL: identifiers are not backslash-escaped.
    assert 'FROM "user"' in path.read_text()


def test_config_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("# my settings\n")
    refused = cli("config", "init", str(path))
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert refused.stderr == f"error: {path} already exists\nhint: use --force to overwrite it\n"
    assert path.read_text() == "# my settings\n"
    forced = cli("config", "init", str(path), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert tomllib.loads(path.read_text())["store"] == {"table": "analytics"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_config_init_to_stdout_and_missing_directory(tmp_path: Path) -> None:
    printed = cli("config", "init", "-")
    assert printed.exit_code == 0
    assert printed.stderr == ""
    assert tomllib.loads(printed.stdout)["collect"]["interval"] == "30m"
    missing = cli("config", "init", str(tmp_path / "nope" / "c.toml"))
    assert missing.exit_code == 2
    assert missing.stderr == f"error: directory {tmp_path / 'nope'} does not exist\n"


# ---------------------------------------------------------------------------- config show


def test_config_show_redacts_and_names_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("analytics-cli.toml").write_text('[collect]\ninterval = "15m"\n')
    monkeypatch.setenv("ANALYTICS_STORE_DSN", f"postgresql://st:{SECRET}@store.example.com/m")
    result = cli("--dsn", FAKE_DSN, "config", "show")
    assert result.exit_code == 0, result.stderr
    assert_no_secret(result)
    # The password on the command line draws its one warning, nothing else.
    assert result.stderr.splitlines() == [
        "warning: --dsn holds a password, which other local users can read in the process "
        "list; put it in PGPASSFILE (~/.pgpass), $ANALYTICS_DSN or a config file of mode 600"
    ]
    head = result.stdout.split("\n\n", 1)[0]
    assert head == (
        "# config file: analytics-cli.toml\n# source dsn from: --dsn\n# store dsn from: --dsn"
    )
    doc = tomllib.loads(result.stdout)
    assert doc["source"] == {"dsn": "postgresql://user:***@db.example.com/platform"}
    assert doc["store"] == {
        "dsn": "postgresql://user:***@db.example.com/platform",
        "table": "analytics",
    }
    assert doc["collect"]["interval"] == "15m"


def test_config_show_environment_and_explicit_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "other.toml"
    write_config(path, f'[store]\ntable = "metrics.samples"\ndsn = "host=h password={SECRET}"\n')
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", f"postgresql://src:{SECRET}@src.example.com/p")
    result = cli("config", "show", str(path))
    assert result.exit_code == 0, result.stderr
    assert_no_secret(result)
    assert result.stderr == ""
    doc = tomllib.loads(result.stdout)
    assert doc["source"] == {"dsn": "postgresql://src:***@src.example.com/p"}
    assert doc["store"] == {"dsn": "host=h password=***", "table": "metrics.samples"}
    assert f"# store dsn from: {path}: [store] dsn\n" in result.stdout
    assert "# source dsn from: $ANALYTICS_SOURCE_DSN\n" in result.stdout


def test_config_show_embedded_default() -> None:
    result = cli("config", "show")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "# config file: none (built-in defaults)\n"
        "# connection: the embedded PostgreSQL (no connection string set)\n\n"
    )
    assert "dsn" not in tomllib.loads(result.stdout)["store"]


# ---------------------------------------------------------------------------- config check


def test_config_check_runs_every_metric_and_writes_nothing(env: Databases) -> None:
    with env.source_conn() as conn:
        seed_platform(conn)
    assert cli("config", "init").exit_code == 0
    result = cli("config", "check")
    assert result.exit_code == 0, result.stderr
    assert_no_secret(result)
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "config: analytics-cli.toml"
    assert lines[1].startswith("source: ") and lines[1].endswith(
        f"/{env.source_name} (from $ANALYTICS_SOURCE_DSN)"
    )
    assert lines[2].endswith(f"/{env.store_name} (from $ANALYTICS_STORE_DSN)")
    assert lines[3] == "table:  analytics (absent, the first collect creates it)"
    slot = floor_slot(utcnow(), INTERVAL)
    assert lines[4] in (f"slot:   {iso(slot)}", f"slot:   {iso(slot - INTERVAL)}")
    summary = lines.index("10 metrics ok, 0 failed; nothing was written")
    values = {}
    for line in lines[6 : summary - 1]:
        status, type_, count, when = line.split()
        assert status == "ok"
        assert datetime.fromisoformat(when).tzinfo is not None
        values[type_] = count
    assert list(values) == [*BUILTINS, "registeredUsers"]
    assert values["activeInstances"] == "2"
    assert values["activeLocations"] == "2"
    assert values["instanceUsers"] == "3"
    assert values["registeredUsers"] == "3"
    # The table is absent: the first collect creates it, which this account may.
    assert lines[summary:] == ["10 metrics ok, 0 failed; nothing was written"]
    assert store_tables(env) == []


def test_config_check_reports_a_failing_metric(env: Databases, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[collect]\nmetrics = ["activeInstances"]\n'
        '[[metric]]\ntype = "broken"\nsql = "SELECT count(*) AS count FROM no_such_table"\n'
    )
    init_store(env)
    result = cli("-c", str(path), "config", "check")
    assert result.exit_code == 1
    assert result.stderr == "error: 1 metric(s) failed\n"
    lines = result.stdout.splitlines()
    assert lines[3] == "table:  analytics (exists)"
    assert lines[6].split()[:3] == ["ok", "activeInstances", "0"]
    assert lines[7].split(maxsplit=3) == [
        "FAILED",
        "broken",
        "-",
        'relation "no_such_table" does not exist',
    ]
    assert lines[-1] == "1 metrics ok, 1 failed; nothing was written"


def test_config_check_exit_codes_for_config_and_database(
    env: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[collect]\nintervall = '30m'\n")
    config_error = cli("-c", str(bad), "config", "check")
    assert config_error.exit_code == 2
    assert config_error.stdout == ""
    assert config_error.stderr.startswith(f"error: {bad}: unknown key collect.intervall\n")

    # The store is the platform database, whose own "analytics" table has another layout
    # (one more column: not the iR Engine layout either).
    with psycopg.connect(env.source, autocommit=True) as conn:
        conn.execute("ALTER TABLE analytics ADD COLUMN note text")
    monkeypatch.setenv("ANALYTICS_STORE_DSN", env.source)
    foreign = cli("config", "check")
    assert foreign.exit_code == 2
    assert foreign.stdout == ""
    assert foreign.stderr.startswith("error: table 'analytics' already exists with columns")

    monkeypatch.setenv("ANALYTICS_STORE_DSN", f"postgresql://user:{SECRET}@127.0.0.1:1/db")
    unreachable = cli("config", "check")
    assert unreachable.exit_code == 3
    assert unreachable.stdout == ""
    assert unreachable.stderr.startswith(
        "error: cannot connect to the store database (user@127.0.0.1:1/db): "
    )
    assert_no_secret(unreachable)


# ---------------------------------------------------------------------------- metrics


def test_metrics_lists_kind_and_enabled(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[collect]\nmetrics = ["activeInstances", "chatMessages"]\n'
        '[[metric]]\ntype = "registeredUsers"\ndescription = "Accounts"\n'
        'sql = "SELECT count(*) AS count FROM \\"user\\""\n'
    )
    result = cli("-c", str(path), "metrics")
    assert result.exit_code == 0
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    width = max(len(t) for t in ALL_BUILTINS)
    assert lines[0] == f"{'type':<{width}}  kind     enabled  every     description"
    assert len(lines) == 1 + len(ALL_BUILTINS) + 1
    by_type = {line.split()[0]: line.split(maxsplit=4) for line in lines[1:]}
    assert by_type["activeInstances"][1:4] == ["builtin", "yes", "interval"]
    assert by_type["activeScenes"][1:3] == ["builtin", "no"]
    assert by_type["chatMessages"][1:3] == ["builtin", "yes"]
    assert by_type["weeklyUsers"][1:4] == ["builtin", "no", "1d"]
    assert by_type["registeredUsers"] == [
        "registeredUsers",
        "custom",
        "yes",
        "interval",
        "Accounts",
    ]

    listed = json.loads(cli("-c", str(path), "metrics", "--json", "--sql").stdout)
    assert [m["type"] for m in listed] == [*ALL_BUILTINS, "registeredUsers"]
    assert listed[-1] == {
        "type": "registeredUsers",
        "kind": "custom",
        "enabled": True,
        "description": "Accounts",
        "sql": 'SELECT count(*) AS count FROM "user"',
    }
    assert sum(m["enabled"] for m in listed) == 3


def test_metrics_sql_prints_definitions() -> None:
    result = cli("metrics", "--sql")
    assert result.exit_code == 0
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == len(ALL_BUILTINS)
    header, on_postgresql = blocks[0].split("\n", 1)
    assert header == (
        "-- activeInstances (builtin, enabled, query instances-now): "
        "Instances running now (world and media servers, ended = false)"
    )
    postgresql, mysql = on_postgresql.split("\n-- on mysql:\n")
    assert postgresql == (
        "-- on postgresql:\n"
        'SELECT count(*) AS "activeInstances",\n'
        '       count(DISTINCT i."locationId") AS "activeLocations",\n'
        '       count(DISTINCT l."sceneId") AS "activeScenes",\n'
        '       count(DISTINCT i."channelId") AS "activeChannels"\n'
        "FROM instance AS i\n"
        'LEFT JOIN location AS l ON l.id = i."locationId"\n'
        "WHERE i.ended = false"
    )
    assert mysql.startswith("SELECT COUNT(*) AS `activeInstances`,\n")
    # The shared query stands under each metric it fills.
    assert blocks[1].split("\n", 1)[1] == blocks[0].split("\n", 1)[1]


def test_metrics_rejects_a_custom_metric_named_like_a_builtin(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[metric]]\ntype = "dailyUsers"\nsql = "SELECT 1 AS count"\n')
    result = cli("-c", str(path), "metrics")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"error: {path}: custom metric 'dailyUsers' has the name of a built-in metric\n"
    )


# ---------------------------------------------------------------------------- status


def test_status_without_table_is_stale(env: Databases) -> None:
    result = cli("status")
    assert result.exit_code == 1
    assert result.stderr == "error: table analytics does not exist: nothing was collected yet\n"
    assert result.stdout.splitlines()[-1] == "newest row: none (max age 1h): STALE"
    assert store_tables(env) == []


def test_status_reports_latest_slot_and_missing_slots(env: Databases) -> None:
    init_store(env)
    current = floor_slot(utcnow(), INTERVAL)
    # activeInstances: every slot of the last 24 h but two; chatMessages: only 3 h ago;
    # retired: a type no longer enabled.
    gaps = {current - 5 * INTERVAL, current - 9 * INTERVAL}
    rows = [
        ("activeInstances", current - k * INTERVAL, k)
        for k in range(0, 60)
        if current - k * INTERVAL not in gaps
    ]
    rows.append(("chatMessages", current - 6 * INTERVAL, 1))
    rows.append(("retired", current - 100 * INTERVAL, 1))
    insert_rows(env, rows)
    result = cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["stale"] is False
    assert report["newest"] == iso(current)
    assert report["window"] == {"start": iso(current - 48 * INTERVAL), "end": iso(current)}
    by_type = {m["type"]: m for m in report["metrics"]}
    assert list(by_type) == [*BUILTINS, "retired"]
    assert by_type["activeInstances"]["latest"] == iso(current)
    assert by_type["activeInstances"]["expected_slots"] == 48
    assert by_type["activeInstances"]["missing"] == [
        iso(current - 9 * INTERVAL),
        iso(current - 5 * INTERVAL),
    ]
    # A metric's slots before its first row are not counted as missing.
    assert by_type["chatMessages"]["expected_slots"] == 6
    assert by_type["chatMessages"]["missing_slots"] == 5
    assert by_type["dailyUsers"]["latest"] is None
    assert by_type["dailyUsers"]["expected_slots"] == 0
    assert by_type["retired"]["enabled"] is False
    assert by_type["retired"]["missing_slots"] == 0

    text = cli("status")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[2].split() == ["metric", "latest", "slot", "age", "missing", "(24h)", "enabled"]
    assert lines[3].split()[0:2] == ["activeInstances", iso(current)]
    assert lines[3].split()[3:] == ["2/48", "yes"]
    by_name = {line.split()[0]: line.split() for line in lines[3:] if line.strip()}
    assert by_name["retired"] == [
        "retired",
        iso(current - 100 * INTERVAL),
        by_name["retired"][2],
        "-",
        "no",
    ]
    # Slots that can be computed later are named with the command that fills them;
    # activeInstances (counted "now") cannot be and is not named.
    assert lines[-4] == (
        "missing slots of chatMessages can be computed: analytics-cli collect --backfill 1d"
    )
    assert lines[-3].startswith(f"retention: oldest row {iso(current - 100 * INTERVAL)}; ")
    assert lines[-2].startswith("rollups: ")
    assert lines[-1].startswith(f"newest row: {iso(current)} (")
    assert lines[-1].endswith(" ago, max age 1h): ok")


def test_status_after_the_first_cycle_says_there_is_no_history_yet(env: Databases) -> None:
    init_store(env)
    current = floor_slot(utcnow(), INTERVAL)
    insert_rows(env, [(name, current, 1) for name in BUILTINS])
    result = cli("status")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line.split() for line in lines[3 : 3 + len(BUILTINS)]]
    assert [r[0] for r in rows] == list(BUILTINS)
    assert {r[-2] for r in rows} == {"-"}
    assert "0/0" not in result.stdout
    assert lines[-4] == (
        "no history yet before the current slot: missing slots are counted from the next one"
    )
    assert lines[-3].startswith("retention: oldest row ")
    # One slot later the count starts.
    insert_rows(env, [(name, current - INTERVAL, 1) for name in BUILTINS])
    later = cli("status").stdout
    assert "no history yet" not in later
    assert later.splitlines()[3].split()[-2] == "0/1"


def test_status_exits_1_when_the_newest_row_is_too_old(env: Databases) -> None:
    init_store(env)
    current = floor_slot(utcnow(), INTERVAL)
    insert_rows(env, [("activeInstances", current - 6 * INTERVAL, 3)])
    stale = cli("status")
    assert stale.exit_code == 1
    assert stale.stderr.startswith("error: stale: the newest row is 3h")
    assert stale.stderr.endswith(" old, older than 1h\n")
    assert stale.stdout.splitlines()[-1].endswith("max age 1h): STALE")
    relaxed = cli("status", "--max-age", "4h")
    assert relaxed.exit_code == 0
    assert relaxed.stderr == ""
    bad = cli("status", "--max-age", "soon")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: invalid --max-age 'soon'\n")


# ---------------------------------------------------------------------------- prune


def _prune_fixture(env: Databases) -> datetime:
    init_store(env)
    current = floor_slot(utcnow(), INTERVAL)
    day = timedelta(days=1)
    rows = [("activeInstances", current - k * day, k) for k in range(0, 12)]
    rows += [("chatMessages", current - k * day, k) for k in (3, 20, 40)]
    insert_rows(env, rows)
    return current


def test_prune_dry_run_then_yes_leaves_exactly_the_recent_rows(env: Databases) -> None:
    current = _prune_fixture(env)
    day = timedelta(days=1)
    before = store_rows(env)
    dry = cli("prune", "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    # Slots exactly 7 days back are a few minutes older than "now - 7d": pruned too.
    assert dry.stdout.startswith("would delete 7 rows older than ")
    assert dry.stdout.endswith(" from table analytics\n")
    assert dry.stderr == ""
    assert store_rows(env) == before

    done = cli("prune", "--older-than", "7d", "--yes", "--batch-size", "4")
    assert done.exit_code == 0, done.stderr
    assert_no_secret(done)
    assert done.stderr == ""
    assert done.stdout.startswith("deleted 7 rows older than ")
    assert done.stdout.endswith(" from table analytics (2 batches)\n")
    expected = sorted(
        [("activeInstances", current - k * day) for k in range(0, 7)]
        + [("chatMessages", current - 3 * day)],
        key=lambda r: (r[1], r[0]),
    )
    assert store_rows(env) == expected

    again = cli("prune", "--older-than", "7d", "--yes")
    assert again.exit_code == 0
    assert again.stdout.startswith("deleted 0 rows ")
    assert again.stdout.endswith(" (1 batch)\n")
    assert store_rows(env) == expected


def test_prune_batches_are_counted(env: Databases) -> None:
    _prune_fixture(env)
    result = cli("prune", "--older-than", "1d", "--yes", "--batch-size", "3")
    assert result.exit_code == 0, result.stderr
    # 14 rows older than a day: batches of 3, 3, 3, 3, 2.
    assert result.stdout.startswith("deleted 14 rows older than ")
    assert result.stdout.endswith(" (5 batches)\n")
    assert len(store_rows(env)) == 1


def test_prune_takes_years_and_refuses_months(env: Databases) -> None:
    _prune_fixture(env)
    before = store_rows(env)
    year = cli("prune", "--older-than", "1y", "--dry-run")
    assert year.exit_code == 0, year.stderr
    assert year.stdout.startswith("would delete 0 rows older than ")
    assert year.stderr == ""
    # 6M: six minutes would delete nearly everything; six months is a guess. Neither.
    months = cli("prune", "--older-than", "6M", "--yes")
    assert months.exit_code == 2
    assert months.stdout == ""
    assert months.stderr == (
        "error: invalid --older-than '6M': M is ambiguous (minutes or months?)\n"
        "hint: write minutes as m (30m), months as days (30d, 90d) or years as y (1y)\n"
    )
    assert store_rows(env) == before


def test_prune_without_terminal_or_yes_refuses(env: Databases) -> None:
    _prune_fixture(env)
    before = store_rows(env)
    result = cli("prune", "--older-than", "7d")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: refusing to delete without confirmation (no terminal)\n"
        "hint: add --yes to prune from a script or cron, or --dry-run to count\n"
    )
    assert store_rows(env) == before
    missing = cli("prune", "--yes")
    assert missing.exit_code == 2
    assert "--older-than" in missing.stderr


def test_prune_on_a_terminal_asks(env: Databases) -> None:
    import pty
    import subprocess
    import sys

    _prune_fixture(env)
    before = store_rows(env)
    for answer, code in ((b"n\n", 1), (b"y\n", 0)):
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "analytics_cli", "prune", "--older-than", "7d"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        os.close(follower)
        os.write(leader, answer)
        _, err = proc.communicate(timeout=120)
        os.close(leader)
        assert proc.returncode == code, err
        # The question goes to stderr: stdout may be redirected to a log.
        prompt, _, rest = err.decode().partition("[y/N]:")
        assert prompt.startswith("delete 7 rows older than ")
        if code == 1:
            assert rest == "error: nothing was deleted\n"
            assert store_rows(env) == before
        else:
            assert rest == ""
            assert len(store_rows(env)) == len(before) - 7


# ---------------------------------------------------------------------------- Prometheus textfile


def _families(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    result: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            result.setdefault(sample.name, {})[key] = sample.value
    return result


def test_collect_textfile_is_valid_prometheus(env: Databases, tmp_path: Path) -> None:
    with env.source_conn() as conn:
        seed_platform(conn)
    prom = tmp_path / "analytics-cli.prom"
    result = cli("collect", "--textfile", str(prom))
    assert result.exit_code == 0, result.stderr
    assert_no_secret(result)
    families = _families(prom)
    values = families["analytics_metric"]
    assert len(values) == len(BUILTINS)
    assert values[(("type", "activeInstances"),)] == 2
    assert values[(("type", "instanceUsers"),)] == 3
    assert set(families["analytics_cli_metric_up"].values()) == {1.0}
    assert families["analytics_cli_last_run_exit_code"][()] == 0
    success = families["analytics_cli_last_success_timestamp_seconds"][()]
    assert abs(success - utcnow().timestamp()) < 600
    assert families["analytics_cli_collect_duration_seconds"][()] > 0
    assert prom.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analytics-cli.prom", "home"]

    # Slot already collected: the values come from the store, not the (empty) report.
    again = cli("collect", "--textfile", str(prom))
    assert again.exit_code == 0
    assert _families(prom)["analytics_metric"] == values


def test_textfile_after_failures_keeps_last_success(
    env: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = tmp_path / "a.prom"
    assert cli("collect", "--textfile", str(prom)).exit_code == 0
    first = _families(prom)["analytics_cli_last_success_timestamp_seconds"][()]

    path = tmp_path / "c.toml"
    path.write_text(
        '[collect]\nmetrics = ["activeInstances"]\n'
        '[[metric]]\ntype = "broken"\nsql = "SELECT 1/0 AS count"\n'
    )
    partial = cli("-c", str(path), "collect", "--replace", "--textfile", str(prom))
    assert partial.exit_code == 1
    families = _families(prom)
    assert families["analytics_cli_metric_up"] == {
        (("type", "activeInstances"),): 1.0,
        (("type", "broken"),): 0.0,
    }
    assert families["analytics_metric"] == {(("type", "activeInstances"),): 0.0}
    assert families["analytics_cli_last_run_exit_code"][()] == 1
    assert families["analytics_cli_last_success_timestamp_seconds"][()] == first

    monkeypatch.setenv("ANALYTICS_STORE_DSN", f"postgresql://u:{SECRET}@127.0.0.1:1/db")
    down = cli("collect", "--textfile", str(prom))
    assert down.exit_code == 3
    assert_no_secret(down)
    families = _families(prom)
    assert families["analytics_cli_last_run_exit_code"][()] == 3
    assert families["analytics_cli_last_success_timestamp_seconds"][()] == first
    assert "analytics_metric" not in families
    assert "analytics_cli_collect_duration_seconds" not in families


def test_textfile_in_a_missing_directory_is_a_usage_error(env: Databases, tmp_path: Path) -> None:
    result = cli("collect", "--textfile", str(tmp_path / "no" / "a.prom"))
    assert result.exit_code == 2
    assert result.stderr == f"error: --textfile: directory {tmp_path / 'no'} does not exist\n"
    assert store_tables(env) == []


def test_textfile_text_escapes_and_formats() -> None:
    text = textfile_text(
        values={'we"ird': Decimal("1.50"), "zero": Decimal(0)},
        failed=["gone"],
        exit_code=1,
        finished=datetime(2026, 1, 1, tzinfo=UTC),
        duration=0.25,
        last_success=None,
    )
    assert 'analytics_metric{type="we\\"ird"} 1.5\n' in text
    assert 'analytics_metric{type="zero"} 0\n' in text
    assert 'analytics_cli_metric_up{type="gone"} 0\n' in text
    assert "analytics_cli_last_run_timestamp_seconds 1767225600.0\n" in text
    assert "last_success" not in text
    names = [f.name for f in text_string_to_metric_families(text)]
    assert names == [
        "analytics_metric",
        "analytics_cli_metric_up",
        "analytics_cli_last_run_timestamp_seconds",
        "analytics_cli_last_run_exit_code",
        "analytics_cli_collect_duration_seconds",
    ]


# ---------------------------------------------------------------------------- heartbeat


class _Recorder(BaseHTTPRequestHandler):
    paths: list[str]
    status = 200

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def monitor() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"paths": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ping/abc", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_ping_success_and_failure_paths(
    env: Databases, tmp_path: Path, monitor: tuple[str, type[_Recorder]]
) -> None:
    url, handler = monitor
    ok = cli("collect", "--ping-url", url)
    assert ok.exit_code == 0, ok.stderr
    assert handler.paths == ["/ping/abc"]

    path = tmp_path / "c.toml"
    path.write_text(
        f'[collect]\nping_url = "{url}"\nmetrics = []\n'
        '[[metric]]\ntype = "broken"\nsql = "SELECT 1/0 AS count"\n'
    )
    partial = cli("-c", str(path), "collect")
    assert partial.exit_code == 1
    assert handler.paths == ["/ping/abc", "/ping/abc/fail"]
    # A dry run is not a collection: [collect] ping_url is not called, nor a --ping-url,
    # and no textfile is written (its last-success time would hide a stopped collector).
    dry = cli("-c", str(path), "collect", "--dry-run")
    assert dry.exit_code == 1
    textfile = tmp_path / "dry.prom"
    dry_flag = cli("collect", "--dry-run", "--ping-url", url, "--textfile", str(textfile))
    assert dry_flag.exit_code == 0, dry_flag.stderr
    assert handler.paths == ["/ping/abc", "/ping/abc/fail"]
    assert not textfile.exists()

    bad = tmp_path / "bad.toml"
    bad.write_text("[collect]\nretries = 99\n")
    config_error = cli("-c", str(bad), "collect", "--ping-url", url)
    assert config_error.exit_code == 2
    assert handler.paths[-1] == "/ping/abc/fail"
    assert len(handler.paths) == 3


def test_ping_on_database_error_and_failed_ping_keeps_exit_code(
    env: Databases, monitor: tuple[str, type[_Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = monitor
    monkeypatch.setenv("ANALYTICS_STORE_DSN", f"postgresql://u:{SECRET}@127.0.0.1:1/db")
    down = cli("collect", "--ping-url", url + "/")
    assert down.exit_code == 3
    assert handler.paths == ["/ping/abc/fail"]
    assert_no_secret(down)

    monkeypatch.setenv("ANALYTICS_STORE_DSN", env.store)
    handler.status = 500
    rejected = cli("collect", "--ping-url", url)
    assert rejected.exit_code == 0
    assert rejected.stderr.endswith("warning: heartbeat ping to 127.0.0.1 failed: HTTP 500\n")
    assert "/ping/abc" not in rejected.stderr

    unreachable = cli("collect", "--ping-url", "http://127.0.0.1:1/x")
    assert unreachable.exit_code == 0
    assert unreachable.stderr.splitlines()[-1].startswith(
        "warning: heartbeat ping to 127.0.0.1 failed: "
    )


def test_ping_url_must_be_http() -> None:
    result = cli("collect", "--ping-url", "file:///etc/passwd")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: ping URL must be an http:// or https:// URL\n"
        "hint: for example https://hc-ping.com/<uuid>\n"
    )


def test_ping_target_keeps_query() -> None:
    assert ping_target("https://hc.example/p/x?rid=1", 0) == "https://hc.example/p/x?rid=1"
    assert ping_target("https://hc.example/p/x/?rid=1", 3) == "https://hc.example/p/x/fail?rid=1"
