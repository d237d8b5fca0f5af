"""The monthly-partitioned native store: db init, partitions on demand, prune by drop."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from analytics_cli.config.schema import Settings
from analytics_cli.engines.postgresql.layouts import ensure
from analytics_cli.engines.postgresql.partitions import create_month, month_of, next_month
from analytics_cli.prune import prune
from analytics_cli.timeutil import utcnow
from tests.conftest import Databases, cli

# The native table as releases before partitioning created it (it must keep working).
PLAIN_SCHEMA = """
CREATE TABLE {t} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL, count numeric NOT NULL, "timestamp" timestamptz NOT NULL,
    collected_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    UNIQUE (type, "timestamp", metadata));
CREATE INDEX ON {t} (type, "timestamp");
"""


@pytest.fixture
def env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def where_rows(dbs: Databases, table: str = "analytics") -> list[tuple[str, str, datetime]]:
    """(partition holding it, type, slot) of every row."""
    with dbs.store_conn() as conn:
        query = sql.SQL('SELECT tableoid::regclass::text, type, "timestamp" FROM {} ORDER BY 3, 2')
        return [
            (str(a), str(b), c) for a, b, c in conn.execute(query.format(sql.Identifier(table)))
        ]  # type: ignore[misc]


def part_names(dbs: Databases, table: str = "analytics") -> list[str]:
    with dbs.store_conn() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits "
                "WHERE inhparent = %s::regclass ORDER BY 1",
                (table,),
            )
        ]


def test_db_init_makes_this_and_next_month_and_a_default(env: Databases) -> None:
    result = cli("db", "init")
    assert result.exit_code == 0, result.stderr
    this = month_of(utcnow())
    expected = sorted(
        ["analytics_default", f"analytics_p{this:%Y%m}", f"analytics_p{next_month(this):%Y%m}"]
    )
    assert part_names(env) == expected
    with env.store_conn() as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'analytics'::regclass")
        assert kind.fetchone() == ("p",)


def test_month_arithmetic_crosses_the_year() -> None:
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month(december) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_month(datetime(2027, 1, 1, tzinfo=UTC)) == datetime(2027, 2, 1, tzinfo=UTC)
    # The last microsecond of a month belongs to it; its end belongs to the next.
    edge = datetime(2027, 1, 1, tzinfo=UTC)
    assert month_of(edge - timedelta(microseconds=1)) == december
    assert month_of(edge) == edge


def test_a_slot_without_a_partition_lands_in_its_own_month(env: Databases) -> None:
    assert cli("db", "init").exit_code == 0
    # A row written by hand for an old month lands in the DEFAULT partition...
    with env.store_conn() as conn:
        conn.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('old', 7, %s)",
            (datetime(2024, 3, 2, tzinfo=UTC),),
        )
    assert where_rows(env)[0][0] == "analytics_default"
    # ...and a cycle for that month creates the month, which takes that row along.
    result = cli("collect", "--at", "2024-03-15T10:00:00Z", "--only", "activeInstances")
    assert result.exit_code == 0, result.stderr
    assert where_rows(env) == [
        ("analytics_p202403", "old", datetime(2024, 3, 2, tzinfo=UTC)),
        ("analytics_p202403", "activeInstances", datetime(2024, 3, 15, 10, tzinfo=UTC)),
    ]
    # The unique key still holds across the partitioned table: a second run adds nothing.
    again = cli("collect", "--at", "2024-03-15T10:00:00Z", "--only", "activeInstances")
    assert again.exit_code == 0, again.stderr
    assert len(where_rows(env)) == 2


def test_concurrent_creators_make_one_month(env: Databases) -> None:
    settings = Settings(store_dsn=env.store)
    with psycopg.connect(env.store) as conn:
        ensure(conn, settings)
        conn.commit()
    month = datetime(2023, 6, 1, tzinfo=UTC)
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def make() -> None:
        with psycopg.connect(env.store) as conn:
            barrier.wait()
            results.append(create_month(conn, "analytics", month))
            conn.commit()

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert part_names(env).count("analytics_p202306") == 1


def test_an_unpartitioned_table_keeps_working(env: Databases) -> None:
    with env.store_conn() as conn:
        conn.execute(PLAIN_SCHEMA.format(t="analytics"))  # type: ignore[arg-type]
    result = cli("collect", "--at", "2024-03-15T10:00:00Z", "--only", "activeInstances")
    assert result.exit_code == 0, result.stderr
    assert where_rows(env) == [
        ("analytics", "activeInstances", datetime(2024, 3, 15, 10, tzinfo=UTC))
    ]
    assert part_names(env) == []
    done = cli("prune", "--older-than", "1d", "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("deleted 1 rows older than ")
    assert done.stdout.endswith(" (1 batch)\n")


def _fill(dbs: Databases, table: str, start: datetime, hours: int) -> None:
    """Two series, one row an hour each, from ``start``: the same rows in any table."""
    with dbs.store_conn() as conn:
        conn.execute(
            sql.SQL(
                'INSERT INTO {} (type, count, "timestamp", metadata) '
                "SELECT t, h, %s + make_interval(hours => h), "
                "jsonb_build_object('n', h %% 3) "
                "FROM generate_series(0, %s - 1) AS h, unnest(ARRAY['a', 'b']) AS t"
            ).format(sql.Identifier(table)),
            (start, hours),
        )


def _rows(dbs: Databases, table: str) -> list[tuple[object, ...]]:
    with dbs.store_conn() as conn:
        query = sql.SQL('SELECT type, count, "timestamp", metadata FROM {} ORDER BY 3, 1')
        return list(conn.execute(query.format(sql.Identifier(table))))


@pytest.mark.parametrize(
    "cutoff",
    [
        datetime(2025, 4, 1, tzinfo=UTC),  # exactly a month's end: whole partitions only
        datetime(2025, 4, 1, tzinfo=UTC) - timedelta(microseconds=1),  # one row short of it
        datetime(2025, 4, 17, 5, 30, tzinfo=UTC),  # a partial edge month
        datetime(2024, 12, 31, tzinfo=UTC),  # before every row: nothing
    ],
)
def test_prune_by_drop_removes_exactly_what_delete_removes(
    env: Databases, cutoff: datetime
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    hours = 24 * 150  # January to the end of May
    with env.store_conn() as conn:
        conn.execute(PLAIN_SCHEMA.format(t="plain"))  # type: ignore[arg-type]
        ensure(conn, Settings(store_dsn=env.store))
        month = start
        while month < start + timedelta(hours=hours):
            create_month(conn, "analytics", month)
            month = next_month(month)
    _fill(env, "plain", start, hours)
    _fill(env, "analytics", start, hours)
    assert _rows(env, "plain") == _rows(env, "analytics")
    dropped_before = part_names(env)

    by_delete = prune(Settings(store_dsn=env.store, table="plain"), cutoff, batch_size=1000)
    by_drop = prune(Settings(store_dsn=env.store), cutoff, batch_size=1000)

    assert _rows(env, "plain") == _rows(env, "analytics")
    assert by_drop.rows == by_delete.rows
    # Independently counted: the hours from the start up to the cutoff, two series each.
    expected = max(0, -(-int((cutoff - start).total_seconds()) // 3600)) * 2
    assert by_delete.rows == expected
    months = [datetime(2025, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4, 5)]
    whole = [f"{m:%Y%m}" for m in months if next_month(m) <= cutoff]
    assert by_drop.dropped == len(whole)
    assert by_delete.dropped == 0
    assert part_names(env) == [p for p in dropped_before if p[-6:] not in whole]


# ---------------------------------------------------------------------------- db migrate


def _plain_store(dbs: Databases, hours: int) -> None:
    with dbs.store_conn() as conn:
        conn.execute(PLAIN_SCHEMA.format(t="analytics"))  # type: ignore[arg-type]
    _fill(dbs, "analytics", datetime(2025, 1, 1, tzinfo=UTC), hours)


def _checksum(dbs: Databases) -> tuple[int, str]:
    """Row count and an md5 of every row in id order: computed apart from the tool's own."""
    with dbs.store_conn() as conn:
        row = conn.execute(
            "SELECT count(*), md5(string_agg(concat_ws('|', id, type, count, "
            'extract(epoch FROM "timestamp"), extract(epoch FROM collected_at), metadata), '
            "',' ORDER BY id)) FROM analytics"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])  # type: ignore[call-overload]


def test_migrate_keeps_every_row_and_collect_goes_on(env: Databases) -> None:
    _plain_store(env, 24 * 70)  # January to mid-March 2025
    before = _checksum(env)
    assert before[0] == 2 * 24 * 70
    result = cli("db", "migrate", "--partition", "--batch-size", "500")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("table analytics: partitioned by month (")
    assert result.stderr.endswith(
        f"; {before[0]} rows copied in 7 batches, count and checksum equal\n"
    )
    assert _checksum(env) == before
    names = part_names(env)
    assert {"analytics_p202501", "analytics_p202502", "analytics_p202503"} <= set(names)
    assert "analytics_default" in names
    # The tables of the migration are gone; new ids go on after the old ones.
    with env.store_conn() as conn:
        leftovers = conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'analytics\\_%%' "
            "AND relname NOT LIKE 'analytics\\_p%%' AND relname NOT LIKE 'analytics\\_default%%' "
            "AND relkind IN ('r', 'p')"
        ).fetchall()
        assert leftovers == []
    added = cli("collect", "--at", "2025-02-10T10:00:00Z", "--only", "activeInstances")
    assert added.exit_code == 0, added.stderr
    with env.store_conn() as conn:
        row = conn.execute(
            "SELECT tableoid::regclass::text, id FROM analytics WHERE type = 'activeInstances'"
        ).fetchone()
    assert row == ("analytics_p202502", before[0] + 1)
    again = cli("db", "migrate", "--partition")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.startswith("table analytics: already partitioned (")


def test_migrate_resumes_after_an_interruption(env: Databases) -> None:
    from analytics_cli.migrate import migrate_partition

    _plain_store(env, 24 * 40)
    before = _checksum(env)
    settings = Settings(store_dsn=env.store)
    seen: list[int] = []

    def stop_after_two(last: int) -> None:
        seen.append(last)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate_partition(settings, batch_size=300, progress=stop_after_two)
    assert seen == [300, 600]
    with env.store_conn() as conn:
        done = conn.execute("SELECT count(*) FROM analytics_partitioning").fetchone()
    assert done == (600,)
    resumed: list[int] = []
    result = migrate_partition(settings, batch_size=300, progress=resumed.append)
    # It went on after id 600, not from the start.
    assert resumed[0] == 900
    assert result.rows == before[0]
    assert _checksum(env) == before


def test_collect_completes_while_a_migration_is_under_way(env: Databases) -> None:
    from analytics_cli.migrate import migrate_partition
    from tests.conftest import proc_env, run_proc

    _plain_store(env, 24 * 40)
    before = _checksum(env)
    midway = threading.Event()
    collected = threading.Event()
    outcome: list[object] = []

    def pause(last: int) -> None:
        if last == 600:
            midway.set()
            # The copy waits here (its twin and trigger in place) until the collects ran.
            collected.wait(timeout=300)

    def run() -> None:
        try:
            outcome.append(
                migrate_partition(Settings(store_dsn=env.store), batch_size=300, progress=pause)
            )
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert midway.wait(timeout=300)
    env_vars = proc_env(ANALYTICS_SOURCE_DSN=env.source, ANALYTICS_STORE_DSN=env.store)
    slots = ["2025-01-05T10:00:00Z", "2026-07-01T00:00:00Z"]
    runs = [
        run_proc("collect", "--at", at, "--only", "activeInstances", env=env_vars) for at in slots
    ]
    collected.set()
    worker.join()
    assert [r.exit_code for r in runs] == [0, 0], [r.stderr for r in runs]
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    # Every old row and both collected ones are in the partitioned table.
    with env.store_conn() as conn:
        rows = conn.execute(
            'SELECT tableoid::regclass::text, "timestamp" FROM analytics '
            "WHERE type = 'activeInstances' ORDER BY 2"
        ).fetchall()
    assert rows == [
        ("analytics_p202501", datetime(2025, 1, 5, 10, tzinfo=UTC)),
        ("analytics_default", datetime(2026, 7, 1, tzinfo=UTC)),
    ] or rows == [
        ("analytics_p202501", datetime(2025, 1, 5, 10, tzinfo=UTC)),
        ("analytics_p202607", datetime(2026, 7, 1, tzinfo=UTC)),
    ]
    assert _checksum(env)[0] == before[0] + 2


def test_partitions_do_not_apply_to_the_ir_engine_table(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.source)  # the platform's own analytics table
    result = cli("db", "migrate", "--partition")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines(keepends=True)[-1] == (
        "error: table analytics is the iR Engine's own analytics table: partitions and "
        "partition pruning apply to the analytics-cli (native) store only; it was left as it is\n"
    )


def test_migrate_needs_what_to_migrate(env: Databases) -> None:
    result = cli("db", "migrate")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: say what to migrate: --partition\n")


# ---------------------------------------------------------------------------- status


def test_status_shows_the_oldest_row_and_the_partitions(env: Databases) -> None:
    import json

    assert cli("db", "init").exit_code == 0
    for at in ("2025-11-03T10:00:00Z", "2026-01-20T10:30:00Z"):
        assert cli("collect", "--at", at, "--only", "activeInstances").exit_code == 0
    this = month_of(utcnow())
    text = cli("status")
    lines = text.stdout.splitlines()
    # Nov 2025, Jan 2026 (on demand), this month and next (ahead); DEFAULT not counted.
    months = len({datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), this})
    assert lines[-3] == (
        f"retention: oldest row 2025-11-03T10:00:00Z; {months + 1} monthly partitions, "
        f"2025-11 to {next_month(this):%Y-%m}"
    )
    # Each cycle kept its hour and day rolled up.
    assert lines[-2] == (
        "rollups: oldest hourly bucket 2025-11-03T10:00:00Z; "
        "oldest daily bucket 2025-11-03T00:00:00Z"
    )
    doc = json.loads(cli("status", "--json").stdout)
    assert doc["retention"] == {
        "applies": True,
        "oldest": "2025-11-03T10:00:00Z",
        "partitioned": True,
        "partitions": months + 1,
        "first_month": "2025-11-01T00:00:00Z",
        "last_month": next_month(this).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_status_of_an_unpartitioned_table_names_the_migration(env: Databases) -> None:
    with env.store_conn() as conn:
        conn.execute(PLAIN_SCHEMA.format(t="analytics"))  # type: ignore[arg-type]
    assert (
        cli("collect", "--at", "2025-11-03T10:00:00Z", "--only", "activeInstances").exit_code == 0
    )
    lines = cli("status").stdout.splitlines()
    assert lines[-3] == (
        "retention: oldest row 2025-11-03T10:00:00Z; not partitioned "
        "(analytics-cli db migrate --partition converts it)"
    )


def test_status_of_the_ir_engine_table_says_partitions_do_not_apply(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.source)
    lines = cli("status").stdout.splitlines()
    assert lines[-3] == (
        "retention: partitions and partition pruning do not apply to the iR Engine's table"
    )
    assert lines[-2] == "rollups: do not apply to the iR Engine's table (its rows are read)"
    doc = json.loads(cli("status", "--json").stdout)
    assert doc["retention"] == {"applies": False}


def test_db_init_makes_next_month_on_an_existing_table(env: Databases) -> None:
    assert cli("db", "init").exit_code == 0
    following = f"analytics_p{next_month(month_of(utcnow())):%Y%m}"
    with env.store_conn() as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(following)))
    assert following not in part_names(env)
    again = cli("db", "init")
    assert again.exit_code == 0, again.stderr
    assert again.stderr == "table analytics: already exists\n"
    assert following in part_names(env)


PASSWORD = "partitions-pw-5150"


def _login(env: Databases, role: str) -> str:
    """A narrow role's connection string: over TCP with its password, which both test servers
    take there (Debian's PostgreSQL asks for peer authentication on its socket)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from tests.conftest import PASSWORD_HOST

    port = conninfo_to_dict(env.admin).get("port") or 5432
    return make_conninfo(
        host=PASSWORD_HOST["host"], port=port, dbname=env.store_name, user=role, password=PASSWORD
    )


def test_a_role_that_may_not_create_tables_still_stores_its_cycle(
    env: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    assert cli("db", "init").exit_code == 0
    role = f"writer_{uuid.uuid4().hex[:8]}"
    with env.store_conn() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT ON analytics TO {}").format(sql.Identifier(role))
        )
    try:
        monkeypatch.setenv("ANALYTICS_STORE_DSN", _login(env, role))
        result = cli("collect", "--at", "2024-03-15T10:00:00Z", "--only", "activeInstances")
        assert result.exit_code == 0, result.stderr
        # No partition for March 2024 and none could be made: the row is in the DEFAULT one.
        assert where_rows(env) == [
            ("analytics_default", "activeInstances", datetime(2024, 3, 15, 10, tzinfo=UTC))
        ]
        # A prune by this role (DELETE, UPDATE granted, not the owner) deletes by batches,
        # also the rows of an expired month it may not drop.
        with env.store_conn() as conn:
            conn.execute(
                sql.SQL("GRANT DELETE, UPDATE ON analytics TO {}").format(sql.Identifier(role))
            )
            create_month(conn, "analytics", datetime(2024, 1, 1, tzinfo=UTC))
            conn.execute(
                "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('old', 1, %s)",
                (datetime(2024, 1, 9, tzinfo=UTC),),
            )
        done = cli("prune", "--older-than", "1d", "--yes")
        assert done.exit_code == 0, done.stderr
        assert done.stdout.startswith("deleted 2 rows older than ")
        assert done.stdout.endswith(" (1 batch)\n")
        assert where_rows(env) == []
        assert "analytics_p202401" in part_names(env)
    finally:
        with env.store_conn() as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_prune_says_how_many_partitions_it_dropped(env: Databases) -> None:
    assert cli("db", "init").exit_code == 0
    with env.store_conn() as conn:
        for month in (1, 2, 3):
            create_month(conn, "analytics", datetime(2024, month, 1, tzinfo=UTC))
            conn.execute(
                "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('old', 1, %s)",
                (datetime(2024, month, 9, tzinfo=UTC),),
            )
    dry = cli("prune", "--older-than", "1d", "--dry-run")
    assert dry.stdout.startswith("would delete 3 rows older than ")
    done = cli("prune", "--older-than", "1d", "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("deleted 3 rows older than ")
    assert done.stdout.endswith(" from table analytics (3 partitions dropped, 1 batch)\n")
    assert not [p for p in part_names(env) if p.startswith("analytics_p2024")]


def test_a_long_reader_never_makes_collect_queue_behind_a_drop(env: Databases) -> None:
    from tests.conftest import proc_env, run_proc

    assert cli("db", "init").exit_code == 0
    with env.store_conn() as conn:
        create_month(conn, "analytics", datetime(2024, 1, 1, tzinfo=UTC))
        conn.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('old', 1, %s)",
            (datetime(2024, 1, 9, tzinfo=UTC),),
        )
    outcome: list[object] = []
    reader = psycopg.connect(env.store)
    try:
        # A long export or show: its lock on the table lasts until its transaction ends.
        reader.execute("SELECT count(*) FROM analytics").fetchone()

        def run() -> None:
            try:
                outcome.append(prune(Settings(store_dsn=env.store), utcnow() - timedelta(days=1)))
            except BaseException as exc:  # reported by the assertion below
                outcome.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        # The drop waits for the reader; a collect meanwhile must not wait behind the drop.
        env_vars = proc_env(ANALYTICS_SOURCE_DSN=env.source, ANALYTICS_STORE_DSN=env.store)
        done = run_proc("collect", "--only", "activeInstances", env=env_vars)
        assert done.exit_code == 0, done.stderr
        assert outcome == []  # the prune is still waiting for the reader
    finally:
        reader.close()
    worker.join()
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    assert outcome[0].dropped == 1 and outcome[0].rows == 1  # type: ignore[attr-defined]
    assert [r[1] for r in where_rows(env)] == ["activeInstances"]


def test_migrate_keeps_the_grants_a_collector_relies_on(
    env: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    _plain_store(env, 24 * 3)
    role = f"Writer_{uuid.uuid4().hex[:8]}"  # a name that needs quoting
    with env.store_conn() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT ON analytics TO {}").format(sql.Identifier(role))
        )
    try:
        assert cli("db", "migrate", "--partition").exit_code == 0
        monkeypatch.setenv("ANALYTICS_STORE_DSN", _login(env, role))
        result = cli("collect", "--at", "2025-01-02T10:00:00Z", "--only", "activeInstances")
        assert result.exit_code == 0, result.stderr
        with env.store_conn() as conn:
            privileges = conn.execute(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE table_name = 'analytics' AND grantee = %s ORDER BY 1",
                (role,),
            ).fetchall()
        assert privileges == [("INSERT",), ("SELECT",)]
    finally:
        with env.store_conn() as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_month_that_cannot_be_made_at_once_does_not_hold_the_cycle(env: Databases) -> None:
    assert cli("db", "init").exit_code == 0
    blocker = psycopg.connect(env.store)
    try:
        # Another session's uncommitted row in the DEFAULT partition, for the same month:
        # making that month's partition would wait for it.
        blocker.execute(
            "INSERT INTO analytics (type, count, \"timestamp\") VALUES ('other', 1, %s)",
            (datetime(2024, 5, 2, tzinfo=UTC),),
        )
        result = cli("collect", "--at", "2024-05-15T10:00:00Z", "--only", "activeInstances")
        assert result.exit_code == 0, result.stderr
        assert where_rows(env) == [
            ("analytics_default", "activeInstances", datetime(2024, 5, 15, 10, tzinfo=UTC))
        ]
    finally:
        blocker.rollback()
        blocker.close()
    # The next cycle for that month makes it, and moves the row there.
    again = cli("collect", "--at", "2024-05-15T10:30:00Z", "--only", "activeInstances")
    assert again.exit_code == 0, again.stderr
    assert {r[0] for r in where_rows(env)} == {"analytics_p202405"}
