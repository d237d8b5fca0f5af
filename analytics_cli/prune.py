"""``prune``: delete old rows in short batches, and count what a prune would delete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from analytics_cli import irengine, store
from analytics_cli.config import Settings
from analytics_cli.db import connect, database_error
from analytics_cli.timeutil import utcnow

PRUNE_BATCH = 10_000


def prune_cutoff(older_than: timedelta, now: datetime | None = None) -> datetime:
    """Rows whose slot starts before this time are pruned."""
    return (now or utcnow()) - older_than


def count_older(settings: Settings, cutoff: datetime) -> int:
    """How many rows a prune with this cutoff would delete (0 when the table is absent)."""
    import psycopg
    from psycopg import sql

    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn:
            conn.read_only = True
            if not irengine.require_table(conn, settings):
                return 0
            ir_engine = irengine.layout_of(conn, settings) == irengine.IR_ENGINE
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
                    store.identifier(settings.table), irengine.time_column(ir_engine)
                ),
                (cutoff,),
            ).fetchone()
            conn.rollback()
            return int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise database_error(exc, settings.store_dsn, doing="store database error") from None


def prune(
    settings: Settings,
    cutoff: datetime,
    *,
    batch_size: int = PRUNE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Delete rows older than ``cutoff`` in short transactions; returns (rows, batches)."""
    import psycopg
    from psycopg import sql

    assert settings.store_dsn is not None
    conn = connect(
        settings.store_dsn, settings, purpose="store", autocommit=True, retries=settings.retries
    )
    deleted = batches = 0
    try:
        with conn:
            if not irengine.require_table(conn, settings):
                return 0, 0
            ir_engine = irengine.layout_of(conn, settings) == irengine.IR_ENGINE
            # Oldest first by the identity key; the iR Engine table's uuid ids have no order.
            order = sql.SQL("" if ir_engine else "ORDER BY id")
            # Each batch is its own transaction: row locks on at most batch_size rows, held
            # briefly, so collect keeps inserting and readers never wait behind a long delete.
            query = sql.SQL(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE {c} < %s "
                "{o} LIMIT %s FOR UPDATE SKIP LOCKED)"
            ).format(t=store.identifier(settings.table), c=irengine.time_column(ir_engine), o=order)
            timeout_ms = int(settings.statement_timeout.total_seconds() * 1000)
            conn.execute(f"SET statement_timeout = {timeout_ms:d}")
            while True:
                cur = conn.execute(query, (cutoff, batch_size))
                batches += 1
                deleted += max(cur.rowcount, 0)
                if progress is not None:
                    progress(deleted)
                if cur.rowcount < batch_size:
                    break
    except psycopg.Error as exc:
        raise database_error(
            exc, settings.store_dsn, doing=f"prune stopped after {deleted} rows"
        ) from None
    return deleted, batches
