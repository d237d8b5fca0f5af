"""Which Layout a PostgreSQL store table has (native, ir-engine), creating a native one."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.base import Layout
from analytics_cli.engines.irengine import IR_ENGINE, missing_table
from analytics_cli.engines.postgresql import irengine, native, partitions, rollup
from analytics_cli.engines.postgresql.locks import lock_schema

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings


@contextmanager
def refusals() -> Iterator[None]:
    """Inside: a row the store refuses for its content raises Refused, not a store error.

    PostgreSQL's SQLSTATE classes 22 (data exception: encoding, NUL, numeric range) and 23
    (integrity: a check or not-null constraint), which psycopg raises as DataError and
    IntegrityError. A lost connection, a read-only or full store, a lock or statement
    timeout are none of these: they are outages.
    """
    import psycopg

    from analytics_cli.engines.postgresql.connect import error_line
    from analytics_cli.errors import Refused

    try:
        yield
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        raise Refused(error_line(exc)) from None
    except UnicodeEncodeError as exc:
        raise Refused(f"text is not valid Unicode ({exc.reason})") from None


# Per connection and table: the layout found. A command asks several times on one
# connection (status asks per metric); the catalog is read once.
_found: weakref.WeakKeyDictionary[Any, dict[str, Layout]] = weakref.WeakKeyDictionary()


def detect(conn: psycopg.Connection[Any], settings: Settings) -> Layout | None:
    """The store table's layout, None when the table does not exist.

    A table of another shape, or one that contradicts ``[store] layout``, is refused
    (ConfigError). No transaction is left open behind a caller that had none.
    """
    from psycopg import pq

    known = _found.get(conn, {})
    if settings.table in known:
        return known[settings.table]
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    shape = irengine.table_shape(conn, settings.table)
    if shape is not None and not irengine.is_ir_engine(shape):
        # Raises the usual "not the analytics-cli layout" error for any other shape.
        native.require_table(conn, settings.table)
    if idle and not conn.autocommit:
        # The caller's own transaction() must be the outermost one (a nested one would only
        # be a savepoint).
        conn.rollback()
    if shape is None:
        return None
    layout: Layout = (
        irengine.accept(settings) if irengine.is_ir_engine(shape) else native.accept(settings)
    )
    _found.setdefault(conn, {})[settings.table] = layout
    return layout


def ensure(conn: psycopg.Connection[Any], settings: Settings) -> tuple[Layout, bool]:
    """The layout of the store table, creating a native table when none exists (inside the
    caller's transaction); True when it was created. An iR Engine table is used as it is."""
    from analytics_cli.timeutil import utcnow

    # The creation lock comes before any catalog lookup: a lookup made first would leave a
    # cached "no such table" in this backend that a concurrent CREATE does not invalidate.
    lock_schema(conn, settings.table)
    layout = detect(conn, settings)
    if isinstance(layout, native.NativeLayout):
        # Next month's partition before it is needed (a no-op on an unpartitioned table).
        partitions.ahead(conn, settings.table, utcnow())
        # Rollups of an existing table start unbuilt (db init or db rollup --rebuild fill them).
        rollup.ensure(conn, settings.table, settings.interval)
    if layout is not None:
        return layout, False
    if settings.layout == IR_ENGINE:
        raise missing_table(settings)
    created = native.ensure_table(conn, settings.table)
    rollup.ensure(conn, settings.table, settings.interval)
    layout = native.accept(settings)
    _found.setdefault(conn, {})[settings.table] = layout
    return layout, created
