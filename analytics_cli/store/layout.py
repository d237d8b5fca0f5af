"""The Layout seam: how a store table is detected, refused, checked for a slot, written, read."""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from analytics_cli.store.notices import listen, notice

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.metrics import Outcome
    from analytics_cli.store.read import Selection

__all__ = ["Key", "Layout", "detect", "ensure", "listen", "notice", "refusals", "selection"]

# A metric and the [[source]] it runs on (None: the single source, or an HTTP metric).
Key = tuple[str, str | None]


class Layout(Protocol):
    """One shape of store table. Commands ask it for their SQL differences, never its name."""

    name: str
    table: str
    # The column holding a row's slot time (status, prune).
    time_column: str
    # A column whose order is the order rows were written (prune deletes oldest first), or
    # None when the table has none.
    insertion_order: str | None

    def refuse(self, settings: Settings, specs: Sequence[MetricSpec]) -> None:
        """Raise ConfigError, before anything is counted, for metrics this table cannot hold."""
        ...

    def lock(self, conn: Any, settings: Settings, slot: datetime) -> None:
        """Take the slot's lock until the transaction ends; SlotBusy after a bounded wait."""
        ...

    def present(
        self,
        conn: psycopg.Connection[Any],
        slot: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[Key]:
        """The (type, source) keys among ``jobs`` that already have their rows for ``slot``."""
        ...

    def stored_slots(
        self,
        conn: psycopg.Connection[Any],
        since: datetime,
        until: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[tuple[str, str | None, datetime]]:
        """The (type, source, slot) of ``jobs`` stored in [since, until]: one query."""
        ...

    def fit(self, outcome: Outcome) -> Outcome:
        """The outcome as this table can store it unchanged, or that metric's failure."""
        ...

    def write(
        self,
        conn: psycopg.Connection[Any],
        slot: datetime,
        collected_at: datetime,
        source: str | None,
        outcomes: Sequence[Outcome],
        *,
        replace: bool,
    ) -> dict[str, bool]:
        """Write (or replace) one batch's rows in a constant number of round trips.

        Returns type -> True when written, False when the row was already there.
        """
        ...

    def relation(self) -> sql.Composable:
        """What the read queries select from, with the native column names."""
        ...

    def gaps(
        self,
        conn: Any,
        since: datetime | None,
        until: datetime | None,
        types: Sequence[str] | None = None,
    ) -> int:
        """How many rows in the window hold no usable count (NULL, NaN, an infinity): the
        readers leave them out, as gaps."""
        ...


# ---------------------------------------------------------------------------- refusals


def _refusal(exc: BaseException) -> str | None:
    """The line saying why the store refused a row for its content, None for any other error.

    PostgreSQL's SQLSTATE classes 22 (data exception: encoding, NUL, numeric range) and 23
    (integrity: a check or not-null constraint), which psycopg raises as DataError and
    IntegrityError; PyMySQL's errors of the same names. A lost connection, a read-only or
    full store, a lock or statement timeout are none of these: they are outages.
    """
    import psycopg

    from analytics_cli.db import error_line

    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return error_line(exc)
    if isinstance(exc, UnicodeEncodeError):
        return f"text is not valid Unicode ({exc.reason})"
    pymysql = sys.modules.get("pymysql")
    if pymysql is not None and isinstance(exc, pymysql.err.MySQLError):
        from analytics_cli.mysqldb import code, message

        # PyMySQL drops the SQLSTATE and maps only some numbers to DataError and
        # IntegrityError (MariaDB's failed CHECK, 4025, arrives as an OperationalError):
        # the numbers of SQLSTATE classes 22 and 23 decide.
        if (
            isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError)
            or code(exc) in MYSQL_REFUSALS
        ):
            return message(exc, frozenset())
    return None


# MySQL/MariaDB errors of SQLSTATE classes 22 and 23: null in a NOT NULL column, duplicate
# key, out of range, truncated, incorrect value or string, too long, foreign key, division
# by zero, invalid JSON, a failed CHECK (MySQL 3819, MariaDB 4025).
MYSQL_REFUSALS = frozenset(
    {
        1048,
        1062,
        1169,
        1216,
        1217,
        1264,
        1265,
        1292,
        1365,
        1366,
        1406,
        1451,
        1452,
        1690,
        3140,
        3819,
        4025,
    }
)


@contextmanager
def refusals() -> Iterator[None]:
    """Inside: a row the store refuses for its content raises Refused, not a store error."""
    from analytics_cli.errors import Refused

    try:
        yield
    except Exception as exc:
        reason = _refusal(exc)
        if reason is None:
            raise
        raise Refused(reason) from None


# ---------------------------------------------------------------------------- detection

# Per connection and table: the layout found. A command asks several times on one
# connection (status asks per metric); the catalog is read once.
_found: weakref.WeakKeyDictionary[Any, dict[str, Layout]] = weakref.WeakKeyDictionary()


def detect(conn: psycopg.Connection[Any], settings: Settings) -> Layout | None:
    """The store table's layout, None when the table does not exist.

    A table of another shape, or one that contradicts ``[store] layout``, is refused
    (ConfigError). No transaction is left open behind a caller that had none.
    """
    from analytics_cli.store import irengine, mysql, native

    if mysql.is_mysql(conn):
        return mysql.detect(conn, settings)
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
    accept = irengine.accept if irengine.is_ir_engine(shape) else native.accept
    layout: Layout = accept(settings)
    _found.setdefault(conn, {})[settings.table] = layout
    return layout


def ensure(conn: psycopg.Connection[Any], settings: Settings) -> tuple[Layout, bool]:
    """The layout of the store table, creating a native table when none exists (inside the
    caller's transaction); True when it was created. An iR Engine table is used as it is."""
    from analytics_cli.store import irengine, mysql, native, partitions, rollup
    from analytics_cli.store.locks import lock_schema
    from analytics_cli.timeutil import utcnow

    if mysql.is_mysql(conn):
        return mysql.ensure(conn, settings), False
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
    if settings.layout == irengine.IR_ENGINE:
        raise irengine.missing_table(settings)
    created = native.ensure_table(conn, settings.table)
    rollup.ensure(conn, settings.table, settings.interval)
    layout = native.accept(settings)
    _found.setdefault(conn, {})[settings.table] = layout
    return layout, created


def selection(layout: Layout, sel: Selection, conn: Any = None) -> Selection:
    """The selection set to read ``layout``'s table through its relation. With ``conn``, the
    rows left out as gaps (no usable count) are said, once per command."""
    if conn is not None:
        missing = layout.gaps(conn, sel.since, sel.until, sel.types)
        if missing:
            notice(
                f"warning: {missing} row(s) of table {layout.table} hold no usable count "
                "(NULL, NaN or an infinity): shown as gaps"
            )
    return replace(sel, source=layout.relation())
