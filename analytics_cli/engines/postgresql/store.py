"""The Store on PostgreSQL: the native table (partitioned or not) or the iR Engine's, read,
streamed, pruned and migrated through its Layout."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from analytics_cli.engines import reading
from analytics_cli.engines.base import Layout, Rollups
from analytics_cli.engines.postgresql import (
    copy,
    grants,
    layouts,
    migration,
    partitions,
    prune,
    read,
)
from analytics_cli.engines.postgresql.names import identifier
from analytics_cli.engines.postgresql.native import NativeLayout
from analytics_cli.engines.postgresql.rollup_keep import PostgresRollups
from analytics_cli.engines.reading import check_format
from analytics_cli.engines.shapes import Ends, Migrated, Point, Retention, Selection, TypeSummary

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings


class PostgresStore:
    """The Store of a psycopg connection to the store database."""

    creates_table = True
    # Each prune batch locks its rows FOR UPDATE SKIP LOCKED.
    prune_grants: tuple[str, ...] = ("UPDATE",)

    def __init__(self, conn: psycopg.Connection[Any], settings: Settings) -> None:
        self.conn = conn
        self.settings = settings
        self.table = settings.table
        self.rollups: Rollups = PostgresRollups(conn, settings)

    def begin_reading(self) -> None:
        """The session settings the readers rely on: UTF-8 text, and a timestamptz's text in
        ISO 8601 UTC (``read.copy_statement``)."""
        self.conn.execute("SET LOCAL client_encoding = 'UTF8'")
        self.conn.execute("SET LOCAL TimeZone = 'UTC'")
        self.conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")

    # -- the table and its layout

    def detect(self) -> Layout | None:
        """The table's layout (native or ir-engine), None when it does not exist."""
        return layouts.detect(self.conn, self.settings)

    def ensure(self, *, refused: str | None = None) -> tuple[Layout, bool]:
        """The layout, creating a native table (partitioned) when none exists; committed."""
        import psycopg

        from analytics_cli.engines.postgresql.connect import store_or_database_error

        try:
            found = layouts.ensure(self.conn, self.settings)
            self.conn.commit()
        except psycopg.Error as exc:
            raise store_or_database_error(
                exc,
                self.settings.store_dsn,
                side="store",
                doing="cannot prepare the store table",
                refused=refused,
            ) from None
        return found

    def refusals(self) -> AbstractContextManager[None]:
        """Rows PostgreSQL refuses for their content raise Refused."""
        return layouts.refusals()

    def privileges(self, exists: bool) -> set[str]:
        """The write privileges of the session's role (CREATE in the schema when absent)."""
        return grants.privileges(self.conn, self.table, exists)

    # -- reading

    def selection(self, layout: Layout, sel: Selection, *, say_gaps: bool = True) -> Selection:
        """``sel`` reading ``layout``'s table through its relation (native column names)."""
        if say_gaps:
            reading.say_gaps(layout, self.conn, sel)
        return replace(sel, source=layout.relation())

    def known_types(self) -> list[str]:
        """Distinct metric types present in the table (an index skip-scan)."""
        return read.known_types(self.conn, self.table)

    def count_rows(self, sel: Selection) -> int:
        """How many rows a selection yields."""
        return read.count_rows(self.conn, sel)

    def count_points(self, sel: Selection) -> int:
        """How many points fall in the window, bucketing ignored."""
        return read.count_points(self.conn, sel)

    def read_points(self, sel: Selection) -> list[Point]:
        """A selection's points, ordered by type and time."""
        return read.read_points(self.conn, sel)

    def top_values(self, sel: Selection, limit: int) -> tuple[list[str | None], int]:
        """The top values of the --by key, and how many distinct values there are."""
        return read.top_values(self.conn, sel, limit)

    def summaries(self, sel: Selection, interval: timedelta) -> list[TypeSummary]:
        """Per type (per --by value) in the window, over its per-slot totals."""
        return read.summaries(self.conn, sel, interval)

    def sparkline_values(self, sel: Selection, width: int) -> dict[str, list[float | None]]:
        """Per type, ``width`` averages over equal slices of the window."""
        return read.sparkline_values(self.conn, sel, width)

    def first_metadata(self, sel: Selection, name: str) -> dict[str, Any]:
        """The metadata of one row of ``name`` in the window."""
        return read.first_metadata(self.conn, sel, name)

    def span(self, sel: Selection) -> tuple[datetime, datetime] | None:
        """Where the selection's types (and --where) have rows at all; None when nowhere."""
        from psycopg import sql

        types = list(sel.types) if sel.types else self.known_types()
        query = sql.SQL('SELECT min("timestamp"), max("timestamp") FROM {} WHERE type = %s').format(
            read.relation(sel)
        )
        params: tuple[Any, ...] = ()
        if sel.where:
            query += sql.SQL(" AND metadata @> %s::jsonb")
            params = (json.dumps(dict(sel.where), ensure_ascii=False),)
        found: list[datetime] = []
        # One probe per type: min and max on the (type, "timestamp") index, however long
        # the history.
        for name in types:
            row = self.conn.execute(query, (name, *params)).fetchone()
            if row is not None and row[0] is not None:
                found += [row[0], row[1]]
        return (min(found), max(found)) if found else None

    def export(
        self,
        sel: Selection,
        fmt: str,
        sink: Any,
        *,
        keys: Sequence[str],
        order: str,
        on_rows: Callable[[int], None] | None,
    ) -> int:
        """A server-side ``COPY … TO STDOUT`` written straight through to ``sink``."""
        check_format(fmt)
        return copy.stream(self.conn, sel, fmt, sink, keys=keys, order=order, on_rows=on_rows)

    # -- status, the textfile

    def ends(self, layout: Layout, name: str, now: datetime) -> Ends:
        """max/min on the (type, time) index: three probes, however long the history. A row
        dated after now is no sign of life: the newest row up to now is what counts."""
        from psycopg import sql

        column = sql.Identifier(layout.time_column)
        table = identifier(self.table)
        probe = sql.SQL("SELECT {}({}) FROM {} WHERE type = %(t)s{}")
        up_to_now = sql.SQL(" AND {} <= %(now)s").format(column)
        row = self.conn.execute(
            sql.SQL("SELECT ({}), ({}), ({})").format(
                probe.format(sql.SQL("min"), column, table, sql.SQL("")),
                probe.format(sql.SQL("max"), column, table, up_to_now),
                probe.format(sql.SQL("max"), column, table, sql.SQL("")),
            ),
            {"t": name, "now": now},
        ).fetchone()
        return Ends(row[0], row[1], row[2]) if row else Ends(None, None, None)

    def slots_with_rows(
        self, layout: Layout, name: str, start: datetime, end: datetime, step: timedelta
    ) -> set[datetime]:
        """A row anywhere in a slot fills that slot, floored as collect floors the current
        time (the iR Engine's old collector wrote "createdAt" at arbitrary times; collect's
        own rows sit at the slot start, which the flooring keeps)."""
        from psycopg import sql

        from analytics_cli.timeutil import EPOCH

        column = sql.Identifier(layout.time_column)
        slot_of = sql.SQL("date_bin({}, {}, {})").format(
            sql.Literal(step), column, sql.Literal(EPOCH)
        )
        query = sql.SQL(
            "SELECT DISTINCT {} FROM {} WHERE type = %s AND {} >= %s AND {} < %s"
        ).format(slot_of, identifier(self.table), column, column)
        return {r[0] for r in self.conn.execute(query, (name, start, end))}

    def slot_values(self, layout: Layout, slot: datetime) -> dict[str, Decimal]:
        """The value of each type at one slot start: the sum of its rows there."""
        from psycopg import sql

        rows = self.conn.execute(
            sql.SQL('SELECT type, sum(count) FROM {} WHERE "timestamp" = %s GROUP BY type').format(
                layout.relation()
            ),
            (slot,),
        ).fetchall()
        return {str(r[0]): Decimal(r[1]) for r in rows}

    def retention(self, layout: Layout, types: list[str]) -> Retention | None:
        """The oldest row and the partitions of a native table; None for the iR Engine's."""
        if not isinstance(layout, NativeLayout):
            return None
        return partitions.retention(self.conn, self.table, types)

    # -- prune and migration

    def count_older(self, layout: Layout, cutoff: datetime) -> int:
        """How many rows have a slot time before ``cutoff``."""
        from psycopg import sql

        row = self.conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
                identifier(self.table), sql.Identifier(layout.time_column)
            ),
            (cutoff,),
        ).fetchone()
        return int(row[0]) if row else 0

    def prune(
        self,
        layout: Layout,
        cutoff: datetime,
        batch_size: int,
        progress: Callable[[int], None] | None,
    ) -> tuple[int, int, int]:
        """Expired monthly partitions dropped whole, the rest in short DELETE transactions.
        The rollups first: the hours and days of the rows about to go stay answerable."""
        self.rollups.before_prune(layout, cutoff)
        return prune.prune(self.conn, self.settings, layout, cutoff, batch_size, progress)

    def migrate_partition(
        self, batch_size: int, progress: Callable[[int], None] | None
    ) -> Migrated:
        """Convert an unpartitioned native table, every row kept; resumable."""
        return migration.migrate_partition(self, batch_size, progress)
