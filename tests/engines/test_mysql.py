"""The MySQL/MariaDB source against a real MariaDB: values, snapshot, hostile metrics, the CLI."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from analytics_cli.config.schema import Settings
from analytics_cli.engines.mysql.params import parse
from analytics_cli.engines.mysql.snapshot import _measured, snapshot
from analytics_cli.errors import DatabaseError
from analytics_cli.metrics import builtin_metrics
from analytics_cli.samples import Sample, Series
from analytics_cli.sources import open_source
from tests import location_data, platform_data
from tests.conftest import Databases, cli, proc_env, run_proc, spawn
from tests.faults.conftest import Proxy
from tests.helpers import free_port, stored_counts, wait_until, write_config
from tests.mariadb_server import ADMIN_PASSWORD, PLATFORM_TABLES, MariaDB, MySQLPlatform
from tests.metric_definitions import MYSQL

AT = "2026-11-29T10:10:00Z"
SLOT = "2026-11-29T10:00:00Z"


@pytest.fixture
def my(mysql_platform: MySQLPlatform) -> MySQLPlatform:
    """The hand-counted dataset in a fresh MariaDB database."""
    with mysql_platform.connect() as conn:
        platform_data.load_mysql(conn)
    return mysql_platform


@pytest.fixture
def both(my: MySQLPlatform, dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> MySQLPlatform:
    """MariaDB as the source, the test's PostgreSQL store database as the store."""
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", my.url)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return my


def each(specs: Any, slot: datetime) -> dict[str, datetime]:
    """Every spec counted for the same slot."""
    return {spec.type: slot for spec in specs}


def config_file(path: Path, metrics: list[tuple[str, str]], **sections: Any) -> Path:
    doc: dict[str, Any] = {k: v for k, v in sections.items() if v is not None}
    if metrics:
        doc["metric"] = [{"type": name, "sql": sql} for name, sql in metrics]
    write_config(path, doc)
    return path


def values(outcomes: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for outcome in outcomes:
        if isinstance(outcome, Sample):
            out[outcome.type] = outcome.count
        elif isinstance(outcome, Series):
            out[outcome.type] = {s.metadata["location"]: s.count for s in outcome.samples}
        else:
            out[outcome.type] = outcome.error
    return out


# ---------------------------------------------------------------------------- same values


def test_same_nine_values_on_mariadb_and_postgresql_at_several_slots(
    my: MySQLPlatform, dbs: Databases
) -> None:
    with dbs.source_conn() as conn:
        platform_data.load(conn)
    nine = [m for m in builtin_metrics() if m.enabled]
    mysql, postgres = open_source(my.url, Settings()), open_source(dbs.source, Settings())
    assert (mysql.engine, postgres.engine) == ("mysql", "postgresql")
    for slot, expected in platform_data.EXPECTED_AT.items():
        on_mysql = values(mysql.read(nine, each(nine, slot)).outcomes)
        on_postgres = values(postgres.read(nine, each(nine, slot)).outcomes)
        assert on_mysql == on_postgres == expected, slot


def test_fifteen_minute_interval_is_bound_as_seconds(my: MySQLPlatform) -> None:
    chat = [m for m in builtin_metrics() if m.type == "chatMessages"]
    settings = Settings(interval=timedelta(minutes=15))
    # (09:45, 10:00] holds m1 and m6 only, as on PostgreSQL (test_collect).
    snap = open_source(my.url, settings).read(chat, each(chat, platform_data.SLOT))
    assert values(snap.outcomes) == {"chatMessages": 2}


def test_per_location_metrics_agree_with_postgresql(
    mysql_platform: MySQLPlatform, dbs: Databases
) -> None:
    with mysql_platform.connect() as conn:
        location_data.load_mysql(conn)
    with dbs.source_conn() as conn:
        location_data.load(conn)
    dimensional = [m for m in builtin_metrics() if m.dimensional]
    assert [m.type for m in dimensional] == list(location_data.EXPECTED)
    on_mysql = values(
        open_source(mysql_platform.url, Settings())
        .read(dimensional, each(dimensional, location_data.SLOT))
        .outcomes
    )
    on_postgres = values(
        open_source(dbs.source, Settings())
        .read(dimensional, each(dimensional, location_data.SLOT))
        .outcomes
    )
    assert on_mysql == on_postgres == location_data.EXPECTED


# ---------------------------------------------------------------------------- the CLI


def test_collect_stores_the_exact_values(both: MySQLPlatform, dbs: Databases) -> None:
    result = cli("collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["slot"] == SLOT
    assert {m["type"]: m["count"] for m in report["metrics"]} == platform_data.EXPECTED
    assert {m["status"] for m in report["metrics"]} == {"stored"}
    assert stored_counts(dbs) == {k: Decimal(v) for k, v in platform_data.EXPECTED.items()}
    assert f"collect slot={SLOT} stored=9 present=0 failed=0" in result.stderr
    again = cli("collect", "--at", AT, "--json")
    assert again.exit_code == 0
    assert {m["status"] for m in json.loads(again.stdout)["metrics"]} == {"present"}


def test_dry_run_and_only(both: MySQLPlatform, dbs: Databases) -> None:
    result = cli("collect", "--at", AT, "--dry-run", "--json", "--only", "dailyUsers",
                 "--only", "activeScenes")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert [(m["type"], m["status"], m["count"]) for m in report["metrics"]] == [
        ("dailyUsers", "checked", 3),
        ("activeScenes", "checked", 1),
    ]
    with dbs.store_conn() as conn:
        assert conn.execute("SELECT to_regclass('analytics')").fetchone() == (None,)


def test_config_check_runs_every_metric(both: MySQLPlatform, dbs: Databases) -> None:
    result = cli("config", "check")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert (
        lines[1]
        == f"source: analytics_admin@127.0.0.1:{both.server.port}/{both.name} (from $ANALYTICS_SOURCE_DSN)"
    )
    got = {}
    for line in lines[6:-2]:
        status, type_, count, when = line.split()
        assert status == "ok"
        assert when.endswith("Z")
        got[type_] = int(count)
    # The check reads the current slot: the windowed metrics count nothing of 2026-11-29.
    now = {"dailyUsers": 0, "dailyNewUsers": 0, "chatMessages": 0}
    assert got == {**platform_data.EXPECTED, **now}
    assert lines[-1] == "9 metrics ok, 0 failed; nothing was written"
    assert ADMIN_PASSWORD not in result.stdout


def test_explain_flags_a_full_scan_of_a_large_table(both: MySQLPlatform, tmp_path: Path) -> None:
    with both.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO `instance-attendance` (id, `isChannel`, ended, `createdAt`, `updatedAt`) "
            "SELECT UUID(), seq % 2, seq % 7 = 0, NOW(), NOW() FROM seq_1_to_120000"
        )
        cur.execute("ANALYZE TABLE `instance-attendance`")
    # The single-statement definitions beside the pack's fused queries (which have an OR).
    config = tmp_path / "defs.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "metric": [
                    {"type": "mediaUsers", "sql": MYSQL["channelUsers"]},
                    {"type": "dayUsers", "sql": MYSQL["dailyUsers"]},
                ]
            }
        )
    )
    result = cli("-c", str(config), "config", "check", "--explain")
    assert result.exit_code == 0, result.stdout + result.stderr
    text = result.stdout
    plans = text[text.index("plans (") :].splitlines()
    fused = plans.index(next(p for p in plans if p.startswith("  channelUsers: cost ")))
    assert plans[fused + 1].startswith("    sequential scan on 'instance-attendance' (")
    assert not plans[fused + 2].startswith("    index that would help")
    channel = plans.index(next(p for p in plans if p.startswith("  mediaUsers: cost ")))
    assert plans[channel + 1].startswith("    sequential scan on 'instance-attendance' (")
    assert (
        "filter `instance-attendance`.ended = 0 and `instance-attendance`.isChannel = 1"
        in plans[channel + 1]
    )
    assert plans[channel + 2] == (
        "    index that would help: ALTER TABLE `instance-attendance` ADD INDEX "
        "(`ended`, `isChannel`), ALGORITHM=INPLACE, LOCK=NONE;"
    )
    instances = next(p for p in plans if p.startswith("  activeInstances: cost "))
    assert plans[plans.index(instances) + 1].startswith("  ")  # small table: nothing flagged
    assert not plans[plans.index(instances) + 1].startswith("    ")
    daily = plans.index(next(p for p in plans if p.startswith("  dayUsers: cost ")))
    assert plans[daily + 2] == (
        "    index that would help: ALTER TABLE `instance-attendance` ADD INDEX "
        "(`createdAt`), ALGORITHM=INPLACE, LOCK=NONE;"
    )


def test_broken_custom_metrics_fail_alone(
    both: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path / "c.toml",
        [
            ("broken", "SELECT COUNT(*) AS count FROM no_such_table"),
            ("noCount", "SELECT 1 AS total"),
            ("twoRows", "SELECT 1 AS count UNION ALL SELECT 2"),
            ("textCount", "SELECT 'x' AS count"),
            (
                "pgInterval",
                "SELECT COUNT(*) AS count FROM message WHERE `createdAt` > %(slot)s - %(interval)s",
            ),
            ("percent", "SELECT COUNT(*) AS count FROM user WHERE name LIKE 'u%'"),
            ("fraction", "SELECT CAST(2.5 AS DECIMAL(4, 2)) AS count"),
        ],
    )
    result = cli("--config", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    errors = {m["type"]: m.get("error") for m in report["metrics"] if m["status"] == "failed"}
    assert errors == {
        "broken": f"Table '{both.name}.no_such_table' doesn't exist",
        "noCount": "query returned no column named count (got ['total'])",
        "twoRows": "query must return exactly one row, got more than one row",
        "textCount": "count is of type str, not numeric",
        "pgInterval": "refused: %(interval)s is PostgreSQL's; on MySQL write "
        "INTERVAL %(interval_seconds)s SECOND",
        "percent": "refused: the metric's text has a '%' that is no parameter: write %% for a "
        "literal percent sign, %(slot)s and %(interval_seconds)s for the parameters",
    }
    assert stored_counts(dbs) == {
        **{k: Decimal(v) for k, v in platform_data.EXPECTED.items()},
        "fraction": Decimal("2.50"),
    }


def test_statement_timeout_fails_only_that_metric(
    both: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path / "c.toml",
        [
            ("slow", "SELECT SLEEP(60) AS count"),
            ("after", "SELECT COUNT(*) AS count FROM instance"),
        ],
        collect={"statement_timeout": "1s"},
    )
    started = time.monotonic()
    result = cli("--config", str(config), "collect", "--at", AT, "--json")
    # Ended by the limit, not slept out: far below the 60 s of the sleep however busy the
    # machine (the outcome below is the real check).
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    failed = [m for m in json.loads(result.stdout)["metrics"] if m["status"] == "failed"]
    assert failed == [
        {"type": "slow", "status": "failed", "count": None,
         "error": "canceling statement due to statement timeout (1s)"}
    ]  # fmt: skip
    assert stored_counts(dbs) == {
        **{k: Decimal(v) for k, v in platform_data.EXPECTED.items()},
        "after": Decimal(10),
    }


# ---------------------------------------------------------------------------- snapshot


GATE = "analytics-cli-test-gate"


def _holding_gate(server: MariaDB) -> Any:
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (GATE,))
        assert cur.fetchone() == (1,)
    return conn


def _wait_at_gate(platform: MySQLPlatform, proc: subprocess.Popen[str]) -> None:
    def blocked() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"collect ended early: {proc.communicate()}")
        with platform.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE STATE = 'User lock' AND ID <> CONNECTION_ID()"
            )
            row = cur.fetchone()
        return bool(row and row[0])

    wait_until(blocked, "the collector waiting at the gate metric")


def _insert_late_instances(platform: MySQLPlatform, n: int = 5) -> None:
    with platform.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO instance (id, `roomCode`, ended, `createdAt`, `updatedAt`) "
            f"SELECT UUID(), CONCAT('late', seq), 0, NOW(), NOW() FROM seq_1_to_{n:d}"
        )


GATE_SQL = f"SELECT GET_LOCK('{GATE}', 60) AS count"
COUNT_INSTANCES = "SELECT COUNT(*) AS count FROM instance"
SNAPSHOT_PROBE = (
    "SELECT @@in_transaction = 1 AND @@tx_read_only = 1 AND @@tx_isolation = 'REPEATABLE-READ' "
    "AND @@time_zone = '+00:00' AS count"
)


def test_rows_inserted_during_the_cycle_are_not_seen(
    both: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path / "c.toml",
        [("before", COUNT_INSTANCES), ("gate", GATE_SQL), ("after", COUNT_INSTANCES),
         ("mode", SNAPSHOT_PROBE)],
        collect={"metrics": ["activeInstances"]},
    )  # fmt: skip
    holder = _holding_gate(both.server)
    try:
        env = proc_env(ANALYTICS_SOURCE_DSN=both.url, ANALYTICS_STORE_DSN=dbs.store)
        proc = spawn("--config", str(config), "collect", "--at", AT, "--json", env=env)
        _wait_at_gate(both, proc)
        _insert_late_instances(both)
    finally:
        holder.close()  # releases the gate
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    got = {m["type"]: m["count"] for m in json.loads(out)["metrics"]}
    # 10 instances when the snapshot opened; the 5 committed later are seen by no metric.
    assert got == {"activeInstances": 7, "before": 10, "gate": 1, "after": 10, "mode": 1}
    with both.connect() as conn, conn.cursor() as cur:
        cur.execute(COUNT_INSTANCES)
        assert cur.fetchone() == (15,)


# ---------------------------------------------------------------------------- hostile metrics


def _starts(word: str) -> str:
    return (
        "refused: a metric must be a single SELECT (or WITH ... SELECT) query; "
        f"this one starts with {word}"
    )


HOSTILE = [
    ("update", "UPDATE instance SET ended = 1", _starts("UPDATE")),
    ("delete", "DELETE FROM `instance-attendance`", _starts("DELETE")),
    (
        "insert",
        "INSERT INTO user (id, name, `createdAt`, `updatedAt`) VALUES (UUID(), 'x', NOW(), NOW())",
        _starts("INSERT"),
    ),
    ("create", "CREATE TABLE evil (a int)", _starts("CREATE")),
    ("drop", "DROP TABLE message", _starts("DROP")),
    ("truncate", "TRUNCATE TABLE message", _starts("TRUNCATE")),
    ("readWrite", "SET SESSION TRANSACTION READ WRITE", _starts("SET")),
    ("writeAfter", "UPDATE instance SET ended = 1 WHERE ended = 0", _starts("UPDATE")),
    ("commit", "COMMIT", _starts("COMMIT")),
    ("lockTables", "LOCK TABLES instance WRITE", _starts("LOCK")),
    ("begin", "START TRANSACTION WITH CONSISTENT SNAPSHOT", _starts("START")),
    ("analyze", "ANALYZE TABLE instance", _starts("ANALYZE")),
    (
        "multi",
        "SELECT 1 AS count; COMMIT",
        "refused: a metric must be one statement; its text holds a ';' between two",
    ),
    (
        "executable",
        "SELECT 1 AS count /*!; COMMIT */",
        "refused: executable comments (/*! ... */) are not allowed in a metric: the server runs their text",
    ),
    (
        "escape",
        "SELECT 1 AS count) AS q UNION SELECT 1 FROM (SELECT 1",
        "refused: the metric's text closes a parenthesis it never opened",
    ),
    (
        "shareLock",
        "SELECT COUNT(*) AS count FROM instance LOCK IN SHARE MODE",
        "refused: locking reads (LOCK IN SHARE MODE) are not allowed in a metric: they read past "
        "the snapshot and block the platform's writers",
    ),
    (
        "outfile",
        "SELECT 1 AS count INTO OUTFILE '/tmp/analytics-cli-evil'",
        "refused: SELECT ... INTO is not allowed in a metric: it writes outside the result",
    ),
]


def test_hostile_metrics_fail_alone_and_change_nothing(
    both: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    # A WITH that is no query gets past the keyword check; the derived table refuses it.
    with_update = ("withUpdate", "WITH x AS (SELECT 1) UPDATE instance SET ended = 1")
    metrics: list[tuple[str, str]] = [("gate", GATE_SQL)]
    for name, sql, _ in [*HOSTILE, (*with_update, "")]:
        metrics += [(name, sql), (f"{name}Probe", COUNT_INSTANCES)]
    metrics.append(("mode", SNAPSHOT_PROBE))
    config = config_file(tmp_path / "c.toml", metrics)
    holder = _holding_gate(both.server)
    try:
        env = proc_env(ANALYTICS_SOURCE_DSN=both.url, ANALYTICS_STORE_DSN=dbs.store)
        proc = spawn("--config", str(config), "collect", "--at", AT, "--json", env=env)
        _wait_at_gate(both, proc)
        _insert_late_instances(both)
        before = both.checksums()
    finally:
        holder.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert both.checksums() == before
    assert before["tables"] == sorted(PLATFORM_TABLES)
    report = json.loads(out)
    failed = {m["type"]: m["error"] for m in report["metrics"] if m["status"] == "failed"}
    assert set(failed) == {name for name, _, _ in HOSTILE} | {"withUpdate"}
    for name, _, error in HOSTILE:
        assert failed[name] == error, name
    assert failed["withUpdate"].startswith("You have an error in your SQL syntax")
    got = {m["type"]: m["count"] for m in report["metrics"] if m["status"] == "stored"}
    probes = {k: v for k, v in got.items() if k.endswith("Probe")}
    # Every probe ran after the 5 late rows were committed, each after a hostile metric:
    # all saw the 10 instances of the one snapshot.
    assert probes == {f"{name}Probe": 10 for name, _, _ in [*HOSTILE, (*with_update, "")]}
    assert got == {**platform_data.EXPECTED, **probes, "gate": 1, "mode": 1}
    assert stored_counts(dbs) == {k: Decimal(v) for k, v in got.items()}


def test_the_wrapping_and_the_checks_hold_without_the_text_check(my: MySQLPlatform) -> None:
    """Belt and braces: what the text check would refuse, the server and verify() catch."""
    import pymysql

    params = parse(my.url)
    with snapshot(params, Settings()) as session:
        for text in ("COMMIT", "SET SESSION TRANSACTION READ WRITE", "DROP TABLE message"):
            with pytest.raises(pymysql.err.ProgrammingError) as info:
                session.fetch(_measured(text, 2))
            assert info.value.args[0] == 1064  # a derived table holds a query, nothing else
            session.verify(text)
        # No several statements per call: the connection lacks CLIENT.MULTI_STATEMENTS.
        with pytest.raises(pymysql.err.ProgrammingError) as info:
            session.fetch("SELECT 1; COMMIT")
        assert info.value.args[0] == 1064
        session.verify("multi")
        # Were the snapshot ended or made writable anyway, nothing more is read from it.
        session.fetch("SET SESSION TRANSACTION READ WRITE")
        with pytest.raises(DatabaseError) as lost:
            session.verify("readWrite")
        assert str(lost.value) == (
            "the source snapshot was ended or made writable while running readWrite "
            "(in_transaction=1, read_only=1, session_read_only=0); "
            "no value of this cycle is kept from it"
        )
        session.fetch("COMMIT")
        with pytest.raises(DatabaseError) as ended:
            session.verify("commit")
        assert "(in_transaction=0, read_only=0, session_read_only=0)" in str(ended.value)
    assert my.checksums()["tables"] == sorted(PLATFORM_TABLES)


# ---------------------------------------------------------------------------- connections


def test_wrong_password_exit_3_without_the_password(
    my: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    url = my.server.url(my.name, password="wrong-pw-31337")
    env = proc_env(ANALYTICS_SOURCE_DSN=url, ANALYTICS_STORE_DSN=dbs.store)
    result = run_proc("collect", "--at", AT, env=env)
    assert (result.exit_code, result.stdout) == (3, "")
    # The error line, then the cycle's summary line (nothing stored).
    assert result.stderr.splitlines()[:-1] == [
        f"error: cannot connect to the source database (analytics_admin@127.0.0.1:"
        f"{my.server.port}/{my.name}): Access denied for user 'analytics_admin'@'127.0.0.1' "
        "(using password: YES)"
    ]
    assert result.stderr.splitlines()[-1].startswith("collect slot=")
    assert "wrong-pw-31337" not in result.stderr


def test_unreachable_host_exit_3_without_the_password(dbs: Databases) -> None:
    port = free_port()  # nobody listens there: connecting is refused at once
    env = proc_env(
        ANALYTICS_SOURCE_DSN=f"mysql://scott@127.0.0.1:{port}/platform",
        ANALYTICS_STORE_DSN=dbs.store,
        MYSQL_PASSWORD="env-secret-pw-77",
    )
    result = run_proc("collect", "--at", AT, env=env)
    assert (result.exit_code, result.stdout) == (3, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr  # the error, then the summary line
    assert lines[1].startswith("collect slot=")
    assert lines[0].startswith(
        f"error: cannot connect to the source database (scott@127.0.0.1:{port}/platform): "
        "Can't connect to MySQL server on '127.0.0.1' ("
    )
    assert "env-secret-pw-77" not in result.stderr


def test_retries_reach_a_server_that_refused_the_first_connection(
    my: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    proxy = Proxy((socket.AF_INET, ("127.0.0.1", my.server.port)), refuse_first=1)
    try:
        url = f"mysql://analytics_admin:{ADMIN_PASSWORD}@127.0.0.1:{proxy.port}/{my.name}"
        for retries, code in ((0, 3), (1, 0)):
            proxy.accepted.clear()
            config = config_file(
                tmp_path / "c.toml",
                [("one", "SELECT 1 AS count")],
                collect={"retries": retries, "metrics": []},
                source={"dsn": url},
                store={"dsn": dbs.store},
            )
            result = run_proc("-c", str(config), "-q", "collect", "--at", AT)
            assert result.exit_code == code, result.stderr
            assert ADMIN_PASSWORD not in result.stderr
            assert len(proxy.accepted) == 1 + retries
    finally:
        proxy.close()
    assert stored_counts(dbs) == {"one": Decimal(1)}


def test_unix_socket_option_file_and_mysql_variables(
    my: MySQLPlatform, dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The platform's own variables name the database and the account; the password comes
    # from an option file, the socket from the URL.
    option_file = tmp_path / "client.cnf"
    option_file.write_text(f'[client]\npassword = "{ADMIN_PASSWORD}"\n')
    monkeypatch.setenv("MYSQL_USER", "analytics_admin")
    monkeypatch.setenv("MYSQL_DATABASE", my.name)
    monkeypatch.setenv("MYSQL_HOST", "192.0.2.1")  # unused: the socket wins
    url = f"mysql://?unix_socket={my.server.socket}&option_file={option_file}"
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", url)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    result = cli("collect", "--at", AT, "--json", "--only", "activeInstances")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"][0]["count"] == 7
    # A wrong password in the option file: exit 3, the password shown nowhere.
    option_file.write_text("[client]\npassword = file-secret-pw\n")
    bad = cli("collect", "--at", AT, "--only", "activeInstances", "--dry-run")
    assert (bad.exit_code, bad.stdout) == (3, "")
    assert bad.stderr.startswith(
        f"error: cannot connect to the source database (analytics_admin@[{my.server.socket}]/"
        f"{my.name}): Access denied for user 'analytics_admin'@'localhost' (using password: YES)"
    )
    assert "file-secret-pw" not in bad.stderr


def test_a_select_only_account_with_the_documented_grants(
    my: MySQLPlatform, dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "mysql.md").read_text()
    grants = page[page.index("CREATE USER 'analytics'") :]
    grants = grants[: grants.index("```")].replace("platform", my.name)
    grants = grants.replace("'change-me'", "'ro-pw-123'")
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'analytics'@'%'")
        cur.execute(grants)
        while cur.nextset():
            pass
    url = my.server.url(my.name, user="analytics", password="ro-pw-123")
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", url)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    result = cli("collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    assert {m["type"]: m["count"] for m in json.loads(result.stdout)["metrics"]} == (
        platform_data.EXPECTED
    )
    explain = cli("config", "check", "--explain")
    assert explain.exit_code == 0, explain.stdout + explain.stderr
    assert "cannot explain" not in explain.stdout
    import pymysql

    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host="127.0.0.1", port=my.server.port, user="analytics",
                        password="ro-pw-123", database=my.name, autocommit=True).cursor().execute(
            "UPDATE instance SET ended = 1")  # fmt: skip
    assert info.value.args[0] == 1142  # UPDATE command denied


def test_mixed_postgresql_and_mariadb_sources_store_both_tagged(
    my: MySQLPlatform, dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dbs.source_conn() as conn:
        location_data.load(conn)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    monkeypatch.setenv("PLATFORM_DSN", my.url)
    path = tmp_path / "mixed.toml"
    path.write_text(
        "[collect]\nretries = 0\n\n"
        f'[[source]]\nname = "ir-engine"\ndsn_env = "PLATFORM_DSN"\n\n'
        f'[[source]]\nname = "pg"\ndsn = "{dbs.source}"\n'
    )
    result = cli("--config", str(path), "collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert [(m["type"], m["source"]) for m in metrics[:2]] == [
        ("activeInstances", "ir-engine"),
        ("activeInstances", "pg"),
    ]
    with dbs.store_conn() as conn:
        rows = conn.execute(
            "SELECT type, count::int, metadata->>'source' FROM analytics"
        ).fetchall()
    by_source: dict[str, dict[str, int]] = {}
    for type_, count, source in rows:
        by_source.setdefault(str(source), {})[str(type_)] = int(str(count))
    assert by_source["ir-engine"] == platform_data.EXPECTED
    assert by_source["pg"]["activeInstances"] == 5  # location_data: i1, i2, i3, i5, i7
    assert len(rows) == 18
    only = cli("--config", str(path), "collect", "--at", "2026-11-29T10:40:00Z",
               "--source", "ir-engine", "--only", "activeLocations", "--json")  # fmt: skip
    assert only.exit_code == 0, only.stderr
    assert json.loads(only.stdout)["metrics"] == [
        {"type": "activeLocations", "status": "stored", "count": 3, "source": "ir-engine"}
    ]


def test_without_pymysql_exit_2_naming_the_extra(dbs: Databases) -> None:
    code = (
        "import sys; sys.modules['pymysql'] = None\n"
        "from analytics_cli.cli import main\n"
        "main(['collect', '--dry-run'])\n"
    )
    env = proc_env(ANALYTICS_SOURCE_DSN="mysql://u:pw-never-shown@127.0.0.1/platform",
                   ANALYTICS_STORE_DSN=dbs.store)  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: mysql:// and mariadb:// sources need PyMySQL: "
        "pip install 'platform-analytics-cli[mysql]'\n"
    )


def test_sigterm_during_a_slow_metric_exits_143_and_ends_the_query(
    both: MySQLPlatform, dbs: Databases, tmp_path: Path
) -> None:
    # BENCHMARK() never looks at the client's socket (SLEEP() does, every 5 s): without
    # KILL QUERY it would spin until its 30 s limit after the collector went away.
    slow = "SELECT BENCHMARK(5000000000, MD5('analytics')) AS count"
    # A statement limit far beyond the test: only the collector's KILL can end it in time.
    config = config_file(
        tmp_path / "c.toml", [("slow", slow)], collect={"statement_timeout": "10m"}
    )
    env = proc_env(ANALYTICS_SOURCE_DSN=both.url, ANALYTICS_STORE_DSN=dbs.store)
    proc = spawn("--config", str(config), "collect", "--at", AT, env=env)

    def sleeping() -> int:
        with both.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE '%BENCHMARK(5000000000%' AND ID <> CONNECTION_ID()"
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def started_sleeping() -> int:
        if proc.poll() is not None:
            pytest.fail(f"collect ended early: {proc.communicate()}")
        return sleeping()

    wait_until(started_sleeping, "the slow metric running on the server")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    # The server's query was ended with the run, not left spinning out its 10 min: a
    # generous bound, twenty times below the limit.
    wait_until(lambda: sleeping() == 0, "the slow query to end", timeout=30)
    assert time.monotonic() - started < 30
    with dbs.store_conn() as conn:
        assert conn.execute("SELECT count(*) FROM analytics").fetchone() == (0,)


def test_tls_with_a_verified_server_certificate(
    my: MySQLPlatform, dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if my.server.ca is None:
        pytest.skip("openssl is not installed: the test server has no certificate")
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'tls_only'@'%'")
        cur.execute("CREATE USER 'tls_only'@'%' IDENTIFIED BY 'tls-pw-5' REQUIRE SSL")
        cur.execute(f"GRANT SELECT ON `{my.name}`.* TO 'tls_only'@'%'")
    cipher = (
        "SELECT COUNT(*) AS count FROM information_schema.SESSION_STATUS "
        "WHERE VARIABLE_NAME = 'SSL_CIPHER' AND VARIABLE_VALUE <> ''"
    )
    config = config_file(
        tmp_path / "c.toml", [("encrypted", cipher)], collect={"metrics": [], "retries": 0}
    )
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    base = my.server.url(my.name, user="tls_only", password="tls-pw-5")
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", f"{base}?ssl_ca={my.server.ca}")
    result = cli("-c", str(config), "collect", "--at", AT, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"][0]["count"] == 1
    # Without TLS the account is refused; with another CA the server is not trusted.
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", f"{base}?ssl=false")
    plain = cli("-c", str(config), "collect", "--at", AT, "--dry-run")
    assert plain.exit_code == 3
    assert "Access denied for user 'tls_only'" in plain.stderr
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=someone else", "-keyout", str(tmp_path / "k"), "-out", str(other)],
                   check=True, capture_output=True)  # fmt: skip
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", f"{base}?ssl_ca={other}")
    untrusted = cli("-c", str(config), "collect", "--at", AT, "--dry-run")
    assert (untrusted.exit_code, untrusted.stdout) == (3, "")
    assert "certificate verify failed" in untrusted.stderr
    assert len(untrusted.stderr.splitlines()) == 1
    assert "tls-pw-5" not in plain.stderr + untrusted.stderr
