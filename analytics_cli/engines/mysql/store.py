"""The Store on MySQL/MariaDB: the iR Engine's own analytics table, read back and pruned.

The readers give what the PostgreSQL store gives (points, summaries, spans), computed with
the shared reading rules from the rows of the window: the table holds one row per type and
slot, a few hundred thousand a year, and its only index is the primary key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from analytics_cli.engines import reading
from analytics_cli.engines.base import Layout, Rollups
from analytics_cli.engines.irengine import not_applicable
from analytics_cli.engines.mysql import layout as mysql_layout
from analytics_cli.engines.mysql.layout import aware, naive, quote
from analytics_cli.engines.reading import Row
from analytics_cli.engines.rollups import NoRollups
from analytics_cli.engines.shapes import Ends, Migrated, Point, Retention, Selection, TypeSummary

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings

# By type then time (what show draws), or by time then type (what export streams), as on
# PostgreSQL; the uuid id only breaks ties.
_ORDERS = {"type": " ORDER BY type, createdAt, id", "time": " ORDER BY createdAt, type, id"}

# Each field's text as the server writes it (``%%`` is PyMySQL's escaped ``%``): the
# columns are exactly ``int`` and ``datetime`` (``detect`` checks), so no fraction to trim.
_FIELD_SQL = {
    "count": "count",
    "timestamp": "DATE_FORMAT(createdAt, '%%Y-%%m-%%dT%%H:%%i:%%sZ')",
    "metadata": "'{}'",
    "collected_at": "DATE_FORMAT(updatedAt, '%%Y-%%m-%%dT%%H:%%i:%%sZ')",
}


def _filter(sel: Selection) -> tuple[str, list[Any]] | None:
    """The WHERE clause of a selection and its parameters; None when no row can match.

    The table has no metadata: a ``--where`` or ``--by`` selection matches no row, as on
    PostgreSQL where its metadata is always ``{}``.
    """
    if sel.where or sel.by is not None or (sel.types is not None and not sel.types):
        return None
    clause = "type IS NOT NULL AND count IS NOT NULL"
    params: list[Any] = []
    if sel.types is not None:
        clause += f" AND type IN ({', '.join(['%s'] * len(sel.types))})"
        params += list(sel.types)
    if sel.since is not None:
        clause += " AND createdAt >= %s"
        params.append(naive(sel.since))
    if sel.until is not None:
        clause += " AND createdAt < %s"
        params.append(naive(sel.until))
    return clause, params


class MySQLStore:
    """The Store of a MySQL/MariaDB session (``mysqldb.Session``)."""

    creates_table = False
    # Batches are deleted by LIMIT, no row lock taken first.
    prune_grants: tuple[str, ...] = ()

    def __init__(self, conn: Any, settings: Settings) -> None:
        self.conn = conn
        self.settings = settings
        self.table = settings.table
        # The iR Engine's table has no rollups: its history is read from its rows.
        self.rollups: Rollups = NoRollups()

    def begin_reading(self) -> None:
        """Nothing to set: the session is UTC from the start and the text is formatted here."""

    # -- the table and its layout

    def detect(self) -> Layout | None:
        """The iR Engine layout of the table, None when it does not exist."""
        return mysql_layout.detect(self.conn, self.settings)

    def ensure(self, *, refused: str | None = None) -> tuple[Layout, bool]:
        """The platform's table as it is: never created here (``refused`` has no use)."""
        layout = mysql_layout.ensure(self.conn, self.settings)
        self.conn.commit()
        return layout, False

    def refusals(self) -> AbstractContextManager[None]:
        """Rows MySQL refuses for their content raise Refused."""
        return mysql_layout.refusals()

    def privileges(self, exists: bool) -> set[str]:
        """The write privileges of CURRENT_USER() on the table."""
        return mysql_layout.privileges(self.conn, self.table)

    # -- reading

    def selection(self, layout: Layout, sel: Selection, *, say_gaps: bool = True) -> Selection:
        """The selection itself (the readers below read the table by name)."""
        if say_gaps:
            reading.say_gaps(layout, self.conn, sel)
        return sel

    def known_types(self) -> list[str]:
        """Distinct metric types present in the table."""
        found = self.conn.execute(
            f"SELECT DISTINCT type FROM {quote(self.table)} WHERE type IS NOT NULL ORDER BY type"
        ).fetchall()
        return [str(r[0]) for r in found]

    def _rows(self, sel: Selection, *, order: str = "type") -> Iterator[Row]:
        """The selection's stored rows (type, count, timestamp, collected_at), streamed."""
        found = _filter(sel)
        if found is None:
            return
        clause, params = found
        query = f"SELECT type, count, createdAt, updatedAt FROM {quote(sel.table)} WHERE {clause}"
        for type_, count, at, updated in self.conn.stream(query + _ORDERS[order], params):
            yield str(type_), Decimal(count), aware(at), aware(updated)

    def _points(self, sel: Selection, order: str = "type") -> list[Row] | Iterator[Row]:
        """Its per-slot totals when ``sel.slot`` is set, else its rows."""
        if sel.slot is not None:
            return reading.totals(self._rows(sel), sel.slot, order=order)
        return self._rows(sel, order=order)

    def read_points(self, sel: Selection) -> list[Point]:
        """Rows, slot totals, or one aggregate per type and bucket."""
        reading.check_aggregate(sel.agg)
        if sel.bucket is not None:
            return reading.points(reading.buckets(self._points(sel), sel.bucket, sel.agg), None)
        if sel.slot is not None:
            return reading.points(self._points(sel), None)
        return reading.points(self._rows(sel), {})

    def count_points(self, sel: Selection) -> int:
        """Stored rows (slot totals with ``sel.slot``) in the selection's window."""
        if sel.slot is not None:
            return len(reading.totals(self._rows(sel), sel.slot))
        found = _filter(sel)
        if found is None:
            return 0
        clause, params = found
        row = self.conn.execute(
            f"SELECT count(*) FROM {quote(sel.table)} WHERE {clause}", params
        ).fetchone()
        return int(row[0]) if row else 0

    def count_rows(self, sel: Selection) -> int:
        """How many rows the selection yields (buckets count once)."""
        if sel.bucket is not None:
            return len(self.read_points(sel))
        return self.count_points(sel)

    def top_values(self, sel: Selection, limit: int) -> tuple[list[str | None], int]:
        """No metadata: no value of any key."""
        return [], 0

    def summaries(self, sel: Selection, interval: timedelta) -> list[TypeSummary]:
        """Per type in the window, over its per-slot totals."""
        if sel.slot is None:
            sel = replace(sel, slot=interval)
        grouped = reading.by_type(self._points(sel))
        return [reading.summary(name, values) for name, values in sorted(grouped.items())]

    def sparkline_values(self, sel: Selection, width: int) -> dict[str, list[float | None]]:
        """Per type, ``width`` averages over equal slices of the window."""
        return reading.sparklines(reading.by_type(self._points(sel)), sel, width)

    def first_metadata(self, sel: Selection, name: str) -> dict[str, Any]:
        """No metadata column."""
        return {}

    def _type_span(self, name: str) -> tuple[datetime, datetime] | None:
        row = self.conn.execute(
            f"SELECT min(createdAt), max(createdAt) FROM {quote(self.table)} "
            "WHERE type = %s AND count IS NOT NULL",
            (name,),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return aware(row[0]), aware(row[1])

    def span(self, sel: Selection) -> tuple[datetime, datetime] | None:
        """The oldest and newest row of the selection's types (none match a --where)."""
        if sel.where:
            return None
        types = list(sel.types) if sel.types else self.known_types()
        spans = [self._type_span(name) for name in types]
        ends = [end for found in spans if found is not None for end in found]
        return (min(ends), max(ends)) if ends else None

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
        """The lines COPY gives the native table on PostgreSQL, written in blocks."""
        reading.check_format(fmt)
        return reading.write_lines(self._lines(sel, fmt, keys, order), fmt, sink, on_rows)

    def _lines(self, sel: Selection, fmt: str, keys: Sequence[str], order: str) -> Iterator[str]:
        if fmt == "csv":
            yield ",".join(keys) + "\n"
        if sel.bucket is None and sel.slot is None and keys[0] == "type":
            yield from self._server_lines(sel, fmt, keys, order)
            return
        found = (
            reading.buckets(self._points(sel), sel.bucket, sel.agg)
            if sel.bucket is not None
            else self._points(sel, order)
        )
        yield from reading.row_lines(found, fmt, keys)

    def _server_lines(
        self, sel: Selection, fmt: str, keys: Sequence[str], order: str
    ) -> Iterator[str]:
        """Unbucketed rows whose first key is the type, in a fraction of the time: the
        server writes every field after the type (PyMySQL parses two text columns a row, no
        datetime or Decimal), and the type's text, quoted for CSV or JSON, is made once per
        type and put in front."""
        found = _filter(sel)
        if found is None:
            return
        clause, params = found
        parts: list[str] = []
        for key in keys[1:]:
            field = _FIELD_SQL[key]
            if fmt == "csv":
                parts += ["','", field]
            else:
                quoted = key in ("timestamp", "collected_at")
                parts += [f"', \"{key}\" : '", f"'\"', {field}, '\"'" if quoted else field]
        tail = f"CONCAT({', '.join(parts)})" if parts else "''"
        query = f"SELECT type, {tail} FROM {quote(sel.table)} WHERE {clause}" + _ORDERS[order]
        end = "\n" if fmt == "csv" else "}\n"
        heads: dict[str, str] = {}
        for type_, rest in self.conn.stream(query, params):
            head = heads.get(type_)
            if head is None:
                text = str(type_)
                head = (
                    reading.csv_field(text)
                    if fmt == "csv"
                    else '{"type" : ' + json.dumps(text, ensure_ascii=False)
                )
                heads[type_] = head
            yield head + rest + end

    # -- status, the textfile

    def ends(self, layout: Layout, name: str, now: datetime) -> Ends:
        """First row, newest up to ``now``, newest of all (``createdAt``)."""
        found = self._type_span(name)
        if found is None:
            return Ends(None, None, None)
        first, last = found
        if last <= now:
            return Ends(first, last, last)
        row = self.conn.execute(
            f"SELECT max(createdAt) FROM {quote(self.table)} "
            "WHERE type = %s AND count IS NOT NULL AND createdAt <= %s",
            (name, naive(now)),
        ).fetchone()
        newest = aware(row[0]) if row is not None and row[0] is not None else None
        return Ends(first, newest, last)

    def slots_with_rows(
        self, layout: Layout, name: str, start: datetime, end: datetime, step: timedelta
    ) -> set[datetime]:
        """The slots of ``step`` in [start, end) where ``name`` has a row (at any minute)."""
        from analytics_cli.timeutil import floor_slot

        found = self.conn.execute(
            f"SELECT DISTINCT createdAt FROM {quote(self.table)} "
            "WHERE type = %s AND createdAt >= %s AND createdAt < %s",
            (name, naive(start), naive(end)),
        ).fetchall()
        return {floor_slot(aware(r[0]), step) for r in found}

    def slot_values(self, layout: Layout, slot: datetime) -> dict[str, Decimal]:
        """The value of each type at one slot start: the sum of its rows there."""
        found = self.conn.execute(
            f"SELECT type, sum(count) FROM {quote(self.table)} "
            "WHERE createdAt = %s AND type IS NOT NULL AND count IS NOT NULL GROUP BY type",
            (naive(slot),),
        ).fetchall()
        return {str(t): Decimal(c) for t, c in found}

    def retention(self, layout: Layout, types: list[str]) -> Retention | None:
        """None: the platform's table is neither partitioned nor pruned by partition."""
        return None

    # -- prune and migration

    def count_older(self, layout: Layout, cutoff: datetime) -> int:
        """How many rows have a ``createdAt`` before the cutoff."""
        row = self.conn.execute(
            f"SELECT count(*) FROM {quote(self.table)} WHERE createdAt < %s", (naive(cutoff),)
        ).fetchone()
        return int(row[0]) if row else 0

    def prune(
        self,
        layout: Layout,
        cutoff: datetime,
        batch_size: int,
        progress: Callable[[int], None] | None,
    ) -> tuple[int, int, int]:
        """Delete rows older than the cutoff, ``batch_size`` at a time, each batch committed
        on its own (short row locks; collect keeps inserting)."""
        return (*mysql_layout.prune(self.conn, self.settings, cutoff, batch_size, progress), 0)

    def migrate_partition(
        self, batch_size: int, progress: Callable[[int], None] | None
    ) -> Migrated:
        """The platform's table is never partitioned here."""
        raise not_applicable(self.table)
