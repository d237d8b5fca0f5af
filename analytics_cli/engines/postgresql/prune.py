"""Pruning a PostgreSQL store: expired partitions dropped whole, the rest in short batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.base import Layout
from analytics_cli.engines.postgresql import partitions
from analytics_cli.engines.postgresql.connect import (
    database_error,
    grant_hint,
    set_statement_timeout,
)
from analytics_cli.engines.postgresql.locks import briefly
from analytics_cli.engines.postgresql.names import identifier
from analytics_cli.engines.postgresql.native import NativeLayout

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings


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
    conn: psycopg.Connection[Any],
    settings: Settings,
    layout: Layout,
    cutoff: datetime,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int, int]:
    """Delete rows older than ``cutoff``: expired monthly partitions are dropped whole, the
    rest goes in short DELETE transactions. Returns (rows, batches, partitions dropped)."""
    import psycopg
    from psycopg import sql

    deleted = batches = dropped = 0
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
    ).format(t=identifier(settings.table), c=sql.Identifier(layout.time_column), o=order)
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
    return deleted, batches, dropped
