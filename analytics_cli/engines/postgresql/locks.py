"""Transaction-scoped advisory locks of the PostgreSQL store: table creation, and one slot."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from analytics_cli.engines.postgresql.names import regclass_text
from analytics_cli.engines.shapes import SlotBusy

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings


def lock_schema(conn: psycopg.Connection[Any], table: str) -> None:
    """Serialise table creation: concurrent first runs must not race on CREATE TABLE."""
    # Keyed by schema-qualified name (an unqualified one gets current_schema()), and with
    # no catalog lookup: to_regclass here would cache "no such table" for this backend.
    schema, _, name = table.rpartition(".")
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended("
        "'analytics-cli:schema:' || coalesce(%s, current_schema()) || '.' || %s, 0))",
        (schema or None, name),
    )


T = TypeVar("T")

# A table lock (DROP of a partition, the migration's swap) waits this long, then lets the
# queue behind it through and tries again: a long reader never makes collect wait on it.
BRIEF_WAIT_MS = 2_000
BRIEF_TRIES = 30


def briefly(conn: psycopg.Connection[Any], work: Callable[[], T]) -> T:
    """Run ``work`` in its own transaction with a short lock wait, retried while it times out."""
    import psycopg

    for attempt in range(BRIEF_TRIES):
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {BRIEF_WAIT_MS:d}")
                return work()
        except psycopg.errors.LockNotAvailable:
            if attempt == BRIEF_TRIES - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def lock_slot(
    conn: psycopg.Connection[Any], table: str, slot: datetime, *, statement_timeout: timedelta
) -> None:
    """Take the transaction-scoped advisory lock of one slot of one table.

    Waits for a concurrent run (twice the statement timeout, at least a minute: long
    enough for a holder to finish its queries), then raises SlotBusy. The key names the
    table by its oid, so ``analytics`` and ``public.analytics`` share one lock. Then the
    transaction's own timeouts come back: a later lock wait that runs out is a database
    error that says it waited for a lock, not a busy slot.
    """
    import psycopg

    from analytics_cli.engines.postgresql.connect import lock_timeout_ms

    wait_ms = int(max(statement_timeout.total_seconds() * 2, 60) * 1000)
    statement_ms = int(statement_timeout.total_seconds() * 1000)
    # The wait may outlast the statement timeout: that timeout is lifted for this one
    # statement, so a holder that keeps the slot longer makes a busy slot, not an error.
    conn.execute(f"SET LOCAL lock_timeout = {wait_ms:d}")
    conn.execute(f"SET LOCAL statement_timeout = {wait_ms + 1000:d}")
    try:
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended("
            "'analytics-cli:slot:' || coalesce(to_regclass(%s)::oid::text, %s) || ':' || %s, 0))",
            (regclass_text(conn, table), table, slot.isoformat()),
        )
    except psycopg.errors.LockNotAvailable:
        raise SlotBusy from None
    conn.execute(f"SET LOCAL statement_timeout = {statement_ms:d}")
    conn.execute(f"SET LOCAL lock_timeout = {lock_timeout_ms(statement_ms):d}")


def lock_cycle_slot(conn: psycopg.Connection[Any], settings: Settings, slot: datetime) -> None:
    """The slot's advisory lock, every statement after it bounded by the statement timeout."""
    from analytics_cli.engines.postgresql.connect import set_statement_timeout

    set_statement_timeout(conn, settings)
    lock_slot(conn, settings.table, slot, statement_timeout=settings.statement_timeout)
