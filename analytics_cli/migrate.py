"""``db migrate --partition``: an unpartitioned native table becomes a monthly-partitioned one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analytics_cli.config.schema import Settings
from analytics_cli.db import database_error, set_statement_timeout, store_session
from analytics_cli.errors import ConfigError, DatabaseError
from analytics_cli.store import migration, mysql, partitions
from analytics_cli.store.layout import detect
from analytics_cli.store.locks import briefly, lock_schema
from analytics_cli.store.native import NativeLayout
from analytics_cli.timeutil import utcnow

if TYPE_CHECKING:
    import psycopg

MIGRATE_BATCH = 10_000


@dataclass(frozen=True)
class Migrated:
    """What a migration did: rows (checked equal by count and checksum), batches, partitions."""

    rows: int
    checksum: int
    batches: int
    partitions: int
    already: bool = False


def not_applicable(table: str) -> ConfigError:
    """The iR Engine's table (PostgreSQL or MySQL) is the platform's: never partitioned here."""
    return ConfigError(
        f"table {table} is the iR Engine's own analytics table: partitions and partition "
        "pruning apply to the analytics-cli (native) store only; it was left as it is"
    )


def migrate_partition(
    settings: Settings,
    *,
    batch_size: int = MIGRATE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Migrated:
    """Convert the store table, every row kept; resumable after an interruption."""
    import psycopg

    twin = migration.Twin(settings.table)
    batches = 0
    with store_session(settings, doing="migration stopped") as conn:
        if mysql.is_mysql(conn):
            raise not_applicable(settings.table)
        layout = detect(conn, settings)
        if layout is None:
            raise ConfigError(
                f"table {settings.table} does not exist: nothing to migrate",
                hint="'analytics-cli db init' creates it, already partitioned",
            )
        if not isinstance(layout, NativeLayout):
            raise not_applicable(settings.table)
        if partitions.is_partitioned(conn, settings.table):
            count, checksum = migration.fingerprint(conn, settings.table)
            return Migrated(
                count, checksum, 0, len(partitions.partitions(conn, settings.table)), True
            )
        try:
            lock_schema(conn, settings.table)
            set_statement_timeout(conn, settings)
            last = migration.start(conn, twin, utcnow())
            conn.commit()
            while True:
                set_statement_timeout(conn, settings)
                after = migration.copy_batch(conn, twin, last, batch_size)
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
                before = migration.fingerprint(conn, settings.table)
                after_ = migration.fingerprint(conn, twin.name)
            if before != after_:
                raise DatabaseError(
                    f"migration check failed: {settings.table} has {before[0]} rows, the "
                    f"partitioned copy {after_[0]} (or their checksums differ); "
                    f"{settings.table} was left in place",
                    hint="run 'analytics-cli db migrate --partition' again: it starts over",
                )
            _swap(conn, settings, twin, last)
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


def _swap(
    conn: psycopg.Connection[Any], settings: Settings, twin: migration.Twin, last: int
) -> None:
    def work() -> None:
        set_statement_timeout(conn, settings)
        migration.swap(conn, twin, last)

    briefly(conn, work)
