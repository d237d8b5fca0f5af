"""``prune``: delete old rows in short batches, and count what a prune would delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli import store
from analytics_cli.config.schema import Settings
from analytics_cli.db import database_error, grant_hint, set_statement_timeout, store_session
from analytics_cli.store import mysql, partitions
from analytics_cli.store.layout import detect
from analytics_cli.store.locks import briefly
from analytics_cli.store.native import NativeLayout
from analytics_cli.timeutil import utcnow

if TYPE_CHECKING:
    import psycopg

PRUNE_BATCH = 10_000


def prune_cutoff(older_than: timedelta, now: datetime | None = None) -> datetime:
    """Rows whose slot starts before this time are pruned."""
    return (now or utcnow()) - older_than


def count_older(settings: Settings, cutoff: datetime) -> int:
    """How many rows a prune with this cutoff would delete (0 when the table is absent)."""
    from psycopg import sql

    with store_session(settings, doing="store database error", read_only=True) as conn:
        layout = detect(conn, settings)
        if layout is None:
            return 0
        if mysql.is_mysql(conn):
            return mysql.count_older(conn, settings.table, cutoff)
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
                store.identifier(settings.table), sql.Identifier(layout.time_column)
            ),
            (cutoff,),
        ).fetchone()
        return int(row[0]) if row else 0


@dataclass(frozen=True)
class Pruned:
    """What a prune removed: rows in all, DELETE transactions, whole partitions dropped."""

    rows: int
    batches: int
    dropped: int = 0


def _drop_expired(
    conn: psycopg.Connection[Any], settings: Settings, cutoff: datetime
) -> tuple[int, int]:
    """Drop the partitions whose whole range is older than ``cutoff``: (rows, partitions)."""
    import psycopg

    try:
        expired = [
            part
            for part in partitions.partitions(conn, settings.table)
            if part.upper is not None and part.upper <= cutoff
        ]
        conn.commit()

        def work() -> int:
            set_statement_timeout(conn, settings)
            return partitions.drop(conn, expired)

        # One short transaction: the parent is locked exclusively only for the DROP itself.
        rows = briefly(conn, work) if expired else 0
    except psycopg.Error as exc:
        raise database_error(
            exc,
            settings.store_dsn,
            doing="prune stopped before dropping any partition",
            refused=grant_hint("prune", "DELETE, UPDATE", settings.table, settings.store_dsn),
        ) from None
    return rows, len(expired)


def prune(
    settings: Settings,
    cutoff: datetime,
    *,
    batch_size: int = PRUNE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Pruned:
    """Delete rows older than ``cutoff``: expired monthly partitions are dropped whole, the
    rest goes in short DELETE transactions."""
    import psycopg
    from psycopg import sql

    deleted = batches = dropped = 0
    with store_session(settings, doing="prune stopped") as conn:
        layout = detect(conn, settings)
        if layout is None:
            return Pruned(0, 0)
        if mysql.is_mysql(conn):
            hint = grant_hint("prune", "DELETE", settings.table, settings.store_dsn)
            return Pruned(
                *mysql.prune(conn, settings.table, cutoff, batch_size, progress, refused=hint)
            )
        # The rollups first: the hours and days of the rows about to go stay answerable.
        from analytics_cli.rollups import before_prune

        before_prune(conn, settings, cutoff)
        # Dropping needs ownership; a role with only DELETE prunes every row by DELETE.
        if (
            isinstance(layout, NativeLayout)
            and partitions.is_partitioned(conn, settings.table)
            and partitions.may_drop(conn, settings.table)
        ):
            conn.commit()
            deleted, dropped = _drop_expired(conn, settings, cutoff)
            if progress is not None and dropped:
                progress(deleted)
        # Oldest first by the insertion key where the layout has one (the iR Engine table's
        # uuid ids have no order).
        order = (
            sql.SQL("ORDER BY {}").format(sql.Identifier(layout.insertion_order))
            if (layout.insertion_order)
            else sql.SQL("")
        )
        # Each batch is its own transaction: row locks on at most batch_size rows, held
        # briefly, so collect keeps inserting and readers never wait behind a long delete.
        query = sql.SQL(
            "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE {c} < %s "
            "{o} LIMIT %s FOR UPDATE SKIP LOCKED)"
        ).format(t=store.identifier(settings.table), c=sql.Identifier(layout.time_column), o=order)
        conn.commit()
        try:
            while True:
                set_statement_timeout(conn, settings)
                cur = conn.execute(query, (cutoff, batch_size))
                conn.commit()
                batches += 1
                deleted += max(cur.rowcount, 0)
                if progress is not None:
                    progress(deleted)
                if cur.rowcount < batch_size:
                    break
        except psycopg.Error as exc:
            raise database_error(
                exc,
                settings.store_dsn,
                doing=f"prune stopped after {deleted} rows",
                # UPDATE too: each batch locks its rows FOR UPDATE SKIP LOCKED.
                refused=grant_hint("prune", "DELETE, UPDATE", settings.table, settings.store_dsn),
            ) from None
    return Pruned(deleted, batches, dropped)
