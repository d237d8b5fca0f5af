"""Converting an unpartitioned native table into a partitioned one, online and resumable.

A partitioned twin (``<table>_partitioning``) is built beside the table. A trigger on the
table mirrors every write into the twin inside the writer's own transaction, so both hold
the same rows at any committed instant; the existing rows are copied in batches by id,
each batch's rows held FOR SHARE only while it is copied (inserts never wait). The last
copied id is kept in the twin's comment: a stopped migration resumes there. The swap is
one short transaction: rename, sequence carried over, old table dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.base import Store
from analytics_cli.engines.irengine import not_applicable
from analytics_cli.engines.postgresql import partitions
from analytics_cli.engines.postgresql.locks import briefly, lock_schema
from analytics_cli.engines.postgresql.names import NATIVE_COLUMNS, identifier, regclass_text
from analytics_cli.engines.postgresql.native import NativeLayout, create_partitioned
from analytics_cli.engines.shapes import Migrated

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

MARK = "analytics-cli: migrating to partitions, copied through id "


@dataclass(frozen=True)
class Twin:
    """The names involved in one table's migration."""

    table: str

    @property
    def name(self) -> str:
        """The partitioned table being built."""
        schema, dot, name = self.table.rpartition(".")
        return f"{schema}{dot}{name[: 63 - 13]}_partitioning"

    @property
    def function(self) -> str:
        """The trigger function that mirrors writes."""
        schema, dot, name = self.table.rpartition(".")
        return f"{schema}{dot}{name[: 63 - 7]}_mirror"


def _cols(prefix: str = "") -> sql.Composed:
    from psycopg import sql

    if prefix:
        return sql.SQL(", ").join(sql.SQL(prefix + ".") + sql.Identifier(c) for c in NATIVE_COLUMNS)
    return sql.SQL(", ").join(map(sql.Identifier, NATIVE_COLUMNS))


def progress(conn: psycopg.Connection[Any], twin: Twin) -> int | None:
    """The last id copied, or None when no migration of this table was started."""
    row = conn.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", (regclass_text(conn, twin.name),)
    ).fetchone()
    if row is None or row[0] is None or not str(row[0]).startswith(MARK):
        return None
    return int(str(row[0])[len(MARK) :])


def _mark(conn: psycopg.Connection[Any], twin: Twin, last: int) -> None:
    from psycopg import sql

    conn.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            identifier(twin.name), sql.Literal(f"{MARK}{last}")
        )
    )


def _trigger_present(conn: psycopg.Connection[Any], twin: Twin) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) "
        "AND tgname = 'analytics_cli_mirror')",
        (regclass_text(conn, twin.table),),
    ).fetchone()
    return bool(row and row[0])


def discard(conn: psycopg.Connection[Any], twin: Twin) -> None:
    """Remove a migration's twin, trigger and function (the table itself is untouched)."""
    from psycopg import sql

    conn.execute(
        sql.SQL("DROP TRIGGER IF EXISTS analytics_cli_mirror ON {}").format(identifier(twin.table))
    )
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(identifier(twin.function)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(identifier(twin.name)))


def start(conn: psycopg.Connection[Any], twin: Twin, now: datetime) -> int:
    """Build the twin (its months from the oldest row to next month) and the mirroring
    trigger, or find a started migration; the id to resume after."""
    from psycopg import sql

    last = progress(conn, twin)
    if last is not None and _trigger_present(conn, twin):
        return last
    # A twin without its trigger may have missed writes: start it over.
    discard(conn, twin)
    create_partitioned(conn, twin.name, stem=twin.table)
    row = conn.execute(
        sql.SQL('SELECT min("timestamp") FROM {}').format(identifier(twin.table))
    ).fetchone()
    oldest = row[0] if row and row[0] is not None else now
    month = partitions.month_of(min(oldest, now))
    end = partitions.next_month(partitions.month_of(now))
    while month <= end:
        partitions.create_month(conn, twin.name, month, stem=twin.table)
        month = partitions.next_month(month)
    t = identifier(twin.name)
    key = sql.SQL('id = OLD.id AND "timestamp" = OLD."timestamp"')
    body = sql.SQL(
        "BEGIN "
        "IF TG_OP = 'INSERT' THEN "
        "INSERT INTO {t} ({c}) OVERRIDING SYSTEM VALUE VALUES ({n}) ON CONFLICT DO NOTHING; "
        "ELSIF TG_OP = 'UPDATE' THEN "
        "UPDATE {t} SET ({c}) = ({n}) WHERE {k}; "
        "ELSE DELETE FROM {t} WHERE {k}; END IF; RETURN NULL; END"
    ).format(t=t, c=_cols(), n=_cols("NEW"), k=key)
    conn.execute(
        sql.SQL("CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            identifier(twin.function), sql.Literal(body.as_string(conn))
        )
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER analytics_cli_mirror AFTER INSERT OR UPDATE OR DELETE ON {} "
            "FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(identifier(twin.table), identifier(twin.function))
    )
    _mark(conn, twin, 0)
    return 0


def copy_batch(conn: psycopg.Connection[Any], twin: Twin, after: int, size: int) -> int | None:
    """Copy the next ``size`` rows by id after ``after``; the last id copied (None: done)."""
    from psycopg import sql

    # FOR SHARE: an UPDATE or DELETE of these rows waits for this batch, then its trigger
    # finds the copy; an INSERT never waits.
    row = conn.execute(
        sql.SQL(
            "WITH src AS (SELECT {c} FROM {o} WHERE id > %s ORDER BY id LIMIT %s FOR SHARE), "
            "ins AS (INSERT INTO {t} ({c}) OVERRIDING SYSTEM VALUE SELECT {c} FROM src "
            "ON CONFLICT DO NOTHING) SELECT max(id) FROM src"
        ).format(c=_cols(), o=identifier(twin.table), t=identifier(twin.name)),
        (after, size),
    ).fetchone()
    last = row[0] if row else None
    if last is None:
        return None
    _mark(conn, twin, int(last))
    return int(last)


def fingerprint(conn: psycopg.Connection[Any], table: str) -> tuple[int, int]:
    """(row count, checksum of every column of every row) of a table."""
    from psycopg import sql

    row = conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(ROW({c})::text, 0)::numeric), 0) "
            "FROM {}"
        ).format(identifier(table), c=_cols()),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def swap(conn: psycopg.Connection[Any], twin: Twin, after: int) -> None:
    """Put the twin in the table's place (inside the caller's short transaction)."""
    from psycopg import sql

    old = identifier(twin.table)
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(old))
    # Rows written between the last batch and the lock were mirrored; this finds none
    # unless a batch was missed, and then costs one index range scan.
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} ({c}) OVERRIDING SYSTEM VALUE SELECT {c} FROM {o} WHERE id > %s "
            "ON CONFLICT DO NOTHING"
        ).format(t=identifier(twin.name), c=_cols(), o=old),
        (after,),
    )
    # New ids go on from the old table's sequence.
    row = conn.execute(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id'))",
        (regclass_text(conn, twin.table),),
    ).fetchone()
    following = int(row[0]) + 1 if row and row[0] is not None else 1
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN id RESTART WITH {}").format(
            identifier(twin.name), sql.Literal(following)
        )
    )
    _carry_grants(conn, twin)
    conn.execute(sql.SQL("DROP TABLE {}").format(old))
    conn.execute(sql.SQL("DROP FUNCTION {}()").format(identifier(twin.function)))
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            identifier(twin.name), sql.Identifier(twin.table.rpartition(".")[2])
        )
    )
    conn.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            old, sql.Literal("analytics-cli: one row per metric and collection slot")
        )
    )


def _carry_grants(conn: psycopg.Connection[Any], twin: Twin) -> None:
    """Give the twin every privilege granted on the table (a collector's INSERT, say)."""
    from psycopg import sql

    rows = conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE a.grantee::regrole::text END, "
        "a.privilege_type, a.is_grantable FROM pg_class c, aclexplode(c.relacl) AS a "
        "WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner",
        (regclass_text(conn, twin.table),),
    ).fetchall()
    for grantee, privilege, grantable in rows:
        # regrole's text is already quoted where it needs to be.
        conn.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege),
                identifier(twin.name),
                sql.SQL(grantee) if grantee else sql.SQL("PUBLIC"),
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )


def migrate_partition(
    store: Store, batch_size: int, progress: Callable[[int], None] | None
) -> Migrated:
    """Convert the store table, every row kept; resumable after an interruption."""
    import psycopg

    from analytics_cli.engines.postgresql.connect import database_error, set_statement_timeout
    from analytics_cli.errors import ConfigError, DatabaseError
    from analytics_cli.timeutil import utcnow

    conn, settings = store.conn, store.settings
    twin = Twin(settings.table)
    batches = 0
    layout = store.detect()
    if layout is None:
        raise ConfigError(
            f"table {settings.table} does not exist: nothing to migrate",
            hint="'analytics-cli db init' creates it, already partitioned",
        )
    if not isinstance(layout, NativeLayout):
        raise not_applicable(settings.table)
    if partitions.is_partitioned(conn, settings.table):
        count, checksum = fingerprint(conn, settings.table)
        return Migrated(count, checksum, 0, len(partitions.partitions(conn, settings.table)), True)
    try:
        lock_schema(conn, settings.table)
        set_statement_timeout(conn, settings)
        last = start(conn, twin, utcnow())
        conn.commit()
        while True:
            set_statement_timeout(conn, settings)
            after = copy_batch(conn, twin, last, batch_size)
            conn.commit()
            if after is None:
                break
            batches += 1
            last = after
            if progress is not None:
                progress(last)
        # One snapshot: the trigger keeps both tables equal at every committed instant.
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            before = fingerprint(conn, settings.table)
            after_ = fingerprint(conn, twin.name)
        if before != after_:
            raise DatabaseError(
                f"migration check failed: {settings.table} has {before[0]} rows, the "
                f"partitioned copy {after_[0]} (or their checksums differ); "
                f"{settings.table} was left in place",
                hint="run 'analytics-cli db migrate --partition' again: it starts over",
            )

        def work() -> None:
            set_statement_timeout(conn, settings)
            swap(conn, twin, last)

        briefly(conn, work)
    except psycopg.Error as exc:
        raise database_error(
            exc,
            settings.store_dsn,
            doing=f"migration stopped after {batches} batches (run it again to resume)",
            refused=f"migrating {settings.table} needs its ownership and CREATE on its "
            "schema: run it as the role that ran 'analytics-cli db init'",
        ) from None
    count = len(partitions.partitions(conn, settings.table))
    return Migrated(before[0], before[1], batches, count)
