"""The iR Engine's own analytics table in its MySQL/MariaDB database: the store's MySQL side.

Only that table is written on MySQL (the native analytics-cli table is PostgreSQL's): it is
never created, altered or indexed. Rows carry UTC wall time (``datetime``, no zone; the
session's time zone is ``+00:00``). Runs are serialised per slot by a named lock
(``GET_LOCK``), and the presence check and the inserts share one transaction after it.

The readers give what ``store.read`` gives on PostgreSQL (points, summaries, spans), computed
here from the rows of the window: the table holds one row per type and slot, a few hundred
thousand a year, and its only index is the primary key.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from analytics_cli.errors import ConfigError
from analytics_cli.store.irengine import (
    IR_ENGINE,
    accept,
    fit_count,
    missing_table,
    refuse_rows_with_metadata,
)

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.metrics import Outcome
    from analytics_cli.store.layout import Key
    from analytics_cli.store.shapes import Point, Selection, TypeSummary

ENGINE = "mysql"
# The table the platform's knex migration creates, as information_schema names its types
# (MariaDB and MySQL 5.7 show int(11), MySQL 8 int: the display width is dropped).
SHAPE = (
    ("id", "char(36)"),
    ("count", "int"),
    ("type", "varchar(255)"),
    ("createdAt", "datetime"),
    ("updatedAt", "datetime"),
)
SHAPE_TEXT = "id char(36), count int, type varchar(255), createdAt, updatedAt"


def is_mysql(conn: Any) -> bool:
    """True for a MySQL/MariaDB store session (``mysqldb.Session``)."""
    return getattr(conn, "engine", None) == ENGINE


def quote(name: str) -> str:
    """A table name in backticks; ``schema.table`` quoted part by part."""
    from analytics_cli.mysqldb import quote_name

    return ".".join(quote_name(part) for part in name.split(".", 1))


def naive(moment: datetime) -> datetime:
    """UTC wall time without a zone, whole seconds (what a ``datetime`` column holds)."""
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def aware(value: datetime) -> datetime:
    """A ``datetime`` column's UTC wall time as an aware datetime."""
    return value.replace(tzinfo=UTC)


def table_shape(conn: Any, table: str) -> list[tuple[str, str]] | None:
    """The table's (column, type) pairs in order, or None when it does not exist."""
    import re

    schema, _, name = table.rpartition(".")
    rows = conn.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (schema or None, name),
    ).fetchall()
    if not rows:
        return None
    return [(str(c), re.sub(r"^int\(\d+\)", "int", str(t).lower())) for c, t in rows]


def detect(conn: Any, settings: Settings) -> MySQLIrEngineLayout | None:
    """The iR Engine layout of the table, None when it does not exist; any other shape, or
    ``layout = "native"``, is refused (ConfigError): the native store is PostgreSQL."""
    shape = table_shape(conn, settings.table)
    if shape is None:
        return None
    if sorted(shape) != sorted(SHAPE):
        raise ConfigError(
            f"table {settings.table!r} in the MySQL store is not the iR Engine's analytics "
            f"table ({SHAPE_TEXT}); a MySQL store holds only that table",
            hint="point [store] table at the platform's analytics table, or [store] dsn at "
            "a PostgreSQL database for an analytics-cli table",
        )
    accept(settings, SHAPE_TEXT)  # refuses layout = "native", says once what was found
    return MySQLIrEngineLayout(settings.table)


def ensure(conn: Any, settings: Settings) -> MySQLIrEngineLayout:
    """The platform's table as it is: never created here."""
    layout = detect(conn, settings)
    if layout is not None:
        return layout
    if settings.layout == IR_ENGINE:
        raise missing_table(settings)
    raise ConfigError(
        f"table {settings.table!r} does not exist in the MySQL store, and analytics-cli "
        "creates its own table only on PostgreSQL",
        hint="point [store] table at the iR Engine's analytics table (with layout = "
        '"ir-engine"), or [store] dsn at a PostgreSQL database',
    )


class MySQLIrEngineLayout:
    """The platform's table on MySQL/MariaDB: no unique key (none is added), integer counts."""

    engine = ENGINE
    name = IR_ENGINE
    time_column = "createdAt"
    insertion_order: str | None = None  # uuid ids: no order

    def __init__(self, table: str) -> None:
        self.table = table

    def refuse(self, settings: Settings, specs: Sequence[MetricSpec]) -> None:
        """Dimensional metrics and [[source]] tables: the table has no metadata column."""
        refuse_rows_with_metadata(settings, specs)

    def fit(self, outcome: Outcome) -> Outcome:
        """Whole numbers within the int column's range; anything else fails that metric."""
        return fit_count(outcome)

    def relation(self) -> Any:
        """None: no PostgreSQL query reads this table; the readers below read it by name."""
        return None

    def gaps(self, conn: Any, since: Any, until: Any, types: Any = None) -> int:
        """How many rows in [since, until) have a type but no count (a nullable column)."""
        from analytics_cli.store.native import EARLIEST, LATEST

        names = list(types) if types is not None else []
        narrow = f" AND type IN ({', '.join(['%s'] * len(names))})" if names else ""
        if types is not None and not names:
            return 0
        row = conn.execute(
            f"SELECT COUNT(*) FROM {quote(self.table)} WHERE type IS NOT NULL "
            f"AND count IS NULL AND createdAt >= %s AND createdAt < %s{narrow}",
            (naive(since or EARLIEST), naive(until or LATEST), *names),
        ).fetchone()
        return int(row[0]) if row else 0

    def lock(self, conn: Any, settings: Settings, slot: datetime) -> None:
        """Take the slot's named lock until the transaction ends; SlotBusy after the wait.

        The wait is the advisory lock's on PostgreSQL: twice the statement time limit, at
        least a minute. The name is hashed: MySQL allows 64 characters.
        """
        from analytics_cli.store.locks import SlotBusy

        digest = hashlib.sha1(f"{self.table}:{slot.isoformat()}".encode()).hexdigest()
        name = f"analytics-cli:slot:{digest}"
        wait = int(max(settings.statement_timeout.total_seconds() * 2, 60))
        # The statement limit would end the wait first: lift it for this one statement.
        statement = (
            "SET STATEMENT max_statement_time = 0 FOR SELECT GET_LOCK(%s, %s)"
            if conn.mariadb
            else "SELECT /*+ MAX_EXECUTION_TIME(0) */ GET_LOCK(%s, %s)"
        )
        row = conn.execute(statement, (name, wait)).fetchone()
        if not row or row[0] != 1:
            raise SlotBusy
        conn.locks.append(name)

    def present(
        self, conn: Any, slot: datetime, jobs: Sequence[tuple[MetricSpec, str | None]]
    ) -> set[Key]:
        """Jobs whose type already has a row whose ``createdAt`` is this slot's start."""
        rows = conn.execute(
            f"SELECT DISTINCT type FROM {quote(self.table)} WHERE createdAt = %s", (naive(slot),)
        ).fetchall()
        types = {r[0] for r in rows if r[0] is not None}
        return {(spec.type, name) for spec, name in jobs if spec.type in types}

    def stored_slots(
        self,
        conn: Any,
        since: datetime,
        until: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[tuple[str, str | None, datetime]]:
        """Types with a row at each slot start (``createdAt``) in the window."""
        types = sorted({spec.type for spec, _ in jobs})
        if not types:
            return set()
        marks = ", ".join(["%s"] * len(types))
        rows = conn.execute(
            f"SELECT DISTINCT type, createdAt FROM {quote(self.table)} "
            f"WHERE type IN ({marks}) AND createdAt >= %s AND createdAt <= %s",
            (*types, naive(since), naive(until)),
        ).fetchall()
        return {(str(t), None, aware(at)) for t, at in rows}

    def write(
        self,
        conn: Any,
        slot: datetime,
        collected_at: datetime,
        source: str | None,
        outcomes: Sequence[Outcome],
        *,
        replace: bool,
    ) -> dict[str, bool]:
        """New rows with new UUIDs in one INSERT; ``replace`` updates the slot's rows in
        place (same ids) in one UPDATE: three round trips at most."""
        from analytics_cli.metrics import Sample

        samples = [o for o in outcomes if isinstance(o, Sample)]
        if not samples:
            return {}
        table, at, updated = quote(self.table), naive(slot), naive(collected_at)
        rest = samples
        if replace:
            found = {
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT type FROM {table} WHERE createdAt = %s", (at,)
                ).fetchall()
            }
            old = [s for s in samples if s.type in found]
            if old:
                cases = " ".join(["WHEN %s THEN %s"] * len(old))
                marks = ", ".join(["%s"] * len(old))
                values: list[Any] = [v for s in old for v in (s.type, int(s.count))]
                conn.execute(
                    f"UPDATE {table} SET count = CASE type {cases} END, updatedAt = %s "
                    f"WHERE createdAt = %s AND type IN ({marks})",
                    (*values, updated, at, *(s.type for s in old)),
                )
            rest = [s for s in samples if s.type not in found]
        if rest:
            conn.executemany(
                f"INSERT INTO {table} (id, count, type, createdAt, updatedAt) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(str(uuid.uuid4()), int(s.count), s.type, at, updated) for s in rest],
            )
        return {s.type: True for s in samples}


# ---------------------------------------------------------------------------- readers


def known_types(conn: Any, table: str) -> list[str]:
    """Distinct metric types present in the table."""
    rows = conn.execute(
        f"SELECT DISTINCT type FROM {quote(table)} WHERE type IS NOT NULL ORDER BY type"
    ).fetchall()
    return [str(r[0]) for r in rows]


Row = tuple[str, Decimal, datetime, datetime]


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


# By type then time (what show draws), or by time then type (what export streams), as on
# PostgreSQL; the uuid id only breaks ties.
_ORDERS = {"type": " ORDER BY type, createdAt, id", "time": " ORDER BY createdAt, type, id"}


def rows(conn: Any, sel: Selection, *, order: str = "type") -> Iterator[Row]:
    """The selection's stored rows (type, count, timestamp, collected_at), streamed."""
    found = _filter(sel)
    if found is None:
        return
    clause, params = found
    query = f"SELECT type, count, createdAt, updatedAt FROM {quote(sel.table)} WHERE {clause}"
    for type_, count, at, updated in conn.stream(query + _ORDERS[order], params):
        yield str(type_), Decimal(count), aware(at), aware(updated)


def _floor(moment: datetime, step: timedelta) -> datetime:
    from analytics_cli.store.shapes import BUCKET_ORIGIN

    return BUCKET_ORIGIN + ((moment - BUCKET_ORIGIN) // step) * step


def _aggregate(agg: str, values: list[tuple[datetime, Decimal]]) -> Decimal:
    counts = [v for _, v in values]
    if agg == "min":
        return min(counts)
    if agg == "max":
        return max(counts)
    if agg == "sum":
        return sum(counts, Decimal(0))
    if agg == "last":
        return values[-1][1]
    return sum(counts, Decimal(0)) / len(counts)


def read_points(conn: Any, sel: Selection) -> list[Point]:
    """A selection's points by type and time: rows, or one aggregate per type and bucket."""
    from analytics_cli.store.shapes import AGGREGATES, Point

    if sel.agg not in AGGREGATES:
        raise ConfigError(
            f"invalid aggregate {sel.agg!r}", hint="use one of: " + ", ".join(AGGREGATES)
        )
    if sel.bucket is None:
        if sel.slot is not None:
            return [Point(t, at, c, None) for t, c, at, _ in totals(conn, sel)]
        return [Point(t, at, c, {}) for t, c, at, _ in rows(conn, sel)]
    return [Point(t, at, c, None) for t, c, at, _ in _buckets(conn, sel)]


def totals(conn: Any, sel: Selection, *, order: str = "type") -> list[Row]:
    """The selection's per-slot totals, as ``store.read`` defines them on PostgreSQL: per
    type and slot (the time floored to ``sel.slot``), the sum of the slot's rows (the old
    collector wrote several at odd minutes), the slot's start and its latest collection."""
    assert sel.slot is not None
    groups: dict[tuple[str, datetime], tuple[Decimal, datetime]] = {}
    for type_, count, at, updated in rows(conn, sel):
        key = (type_, _floor(at, sel.slot))
        total, latest = groups.get(key, (Decimal(0), updated))
        groups[key] = (total + count, max(latest, updated))
    found = [(t, total, at, latest) for (t, at), (total, latest) in groups.items()]
    found.sort(key=(lambda r: (r[0], r[2])) if order == "type" else (lambda r: (r[2], r[0])))
    return found


def _points(conn: Any, sel: Selection, order: str = "type") -> Iterable[Row]:
    """What a selection reads: its per-slot totals when ``sel.slot`` is set, else its rows."""
    return totals(conn, sel, order=order) if sel.slot is not None else rows(conn, sel, order=order)


def _buckets(conn: Any, sel: Selection) -> list[Row]:
    """One row per type and bucket: the aggregate, the bucket start, the latest collection."""
    assert sel.bucket is not None
    groups: dict[tuple[str, datetime], tuple[list[tuple[datetime, Decimal]], list[datetime]]] = {}
    for type_, count, at, updated in _points(conn, sel):
        values, latest = groups.setdefault((type_, _floor(at, sel.bucket)), ([], [updated]))
        values.append((at, count))
        latest[0] = max(latest[0], updated)
    return [(t, _aggregate(sel.agg, v), at, last[0]) for (t, at), (v, last) in groups.items()]


def count_points(conn: Any, sel: Selection) -> int:
    """How many stored rows (slot totals with ``sel.slot``) fall in the selection's window."""
    if sel.slot is not None:
        return len(totals(conn, sel))
    found = _filter(sel)
    if found is None:
        return 0
    clause, params = found
    row = conn.execute(f"SELECT count(*) FROM {quote(sel.table)} WHERE {clause}", params)
    return int(row.fetchone()[0])


def count_rows(conn: Any, sel: Selection) -> int:
    """How many rows the selection yields (buckets count once)."""
    return len(read_points(conn, sel)) if sel.bucket is not None else count_points(conn, sel)


def _summary(
    name: str, values: list[tuple[datetime, Decimal]], slots: int, points: int
) -> TypeSummary:
    from analytics_cli.store.shapes import TypeSummary

    counts = [v for _, v in values]
    return TypeSummary(
        type=name,
        latest=values[-1][1],
        latest_at=values[-1][0],
        min=min(counts),
        avg=sum(counts, Decimal(0)) / len(counts),
        max=max(counts),
        points=points,
        first_at=values[0][0],
        slots=slots,
    )


def _by_type(conn: Any, sel: Selection) -> dict[str, list[tuple[datetime, Decimal]]]:
    """Per type, its points (slot totals with ``sel.slot``, else rows) oldest first."""
    out: dict[str, list[tuple[datetime, Decimal]]] = {}
    for type_, count, at, _ in _points(conn, sel):
        out.setdefault(type_, []).append((at, count))
    return out


def summaries(conn: Any, sel: Selection) -> list[TypeSummary]:
    """Per type in the window, over its per-slot totals: latest, min/avg/max, slots."""
    return [
        _summary(name, values, len(values), len(values))
        for name, values in sorted(_by_type(conn, sel).items())
    ]


def sparkline_values(conn: Any, sel: Selection, width: int) -> dict[str, list[float | None]]:
    """Per type, ``width`` averages over equal slices of the window (None where empty)."""
    assert sel.since is not None and sel.until is not None
    step = max((sel.until - sel.since) / width, timedelta(seconds=1))
    result: dict[str, list[float | None]] = {}
    for name, values in _by_type(conn, sel).items():
        cells: dict[int, list[Decimal]] = {}
        for at, count in values:
            cells.setdefault(int((at - sel.since) // step), []).append(count)
        line: list[float | None] = [None] * width
        for index, counts in cells.items():
            if 0 <= index < width:
                line[index] = float(sum(counts, Decimal(0)) / len(counts))
        result[name] = line
    return result


def span(conn: Any, table: str, name: str) -> tuple[datetime, datetime] | None:
    """The oldest and newest ``createdAt`` of one type, None when it has no row."""
    row = conn.execute(
        f"SELECT min(createdAt), max(createdAt) FROM {quote(table)} "
        "WHERE type = %s AND count IS NOT NULL",
        (name,),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return aware(row[0]), aware(row[1])


def newest_until(conn: Any, table: str, name: str, moment: datetime) -> datetime | None:
    """The newest ``createdAt`` of one type at or before ``moment``, None when it has none."""
    row = conn.execute(
        f"SELECT max(createdAt) FROM {quote(table)} "
        "WHERE type = %s AND count IS NOT NULL AND createdAt <= %s",
        (name, naive(moment)),
    ).fetchone()
    return aware(row[0]) if row is not None and row[0] is not None else None


def slots_with_rows(
    conn: Any, table: str, name: str, start: datetime, end: datetime, step: timedelta
) -> set[datetime]:
    """The slots of ``step`` in [start, end) where ``name`` has a row (at any minute)."""
    from analytics_cli.timeutil import floor_slot

    rows_ = conn.execute(
        f"SELECT DISTINCT createdAt FROM {quote(table)} "
        "WHERE type = %s AND createdAt >= %s AND createdAt < %s",
        (name, naive(start), naive(end)),
    ).fetchall()
    return {floor_slot(aware(r[0]), step) for r in rows_}


def slot_values(conn: Any, table: str, slot: datetime) -> dict[str, Decimal]:
    """The value of each type at one slot start: the sum of its rows there."""
    found = conn.execute(
        f"SELECT type, sum(count) FROM {quote(table)} "
        "WHERE createdAt = %s AND type IS NOT NULL AND count IS NOT NULL GROUP BY type",
        (naive(slot),),
    ).fetchall()
    return {str(t): Decimal(c) for t, c in found}


def count_older(conn: Any, table: str, cutoff: datetime) -> int:
    """How many rows have a ``createdAt`` before the cutoff."""
    row = conn.execute(
        f"SELECT count(*) FROM {quote(table)} WHERE createdAt < %s", (naive(cutoff),)
    ).fetchone()
    return int(row[0]) if row else 0


def prune(
    conn: Any,
    table: str,
    cutoff: datetime,
    batch_size: int,
    progress: Callable[[int], None] | None,
    *,
    refused: str,
) -> tuple[int, int]:
    """Delete rows older than the cutoff, ``batch_size`` at a time, each batch committed on
    its own (short row locks; collect keeps inserting). Returns (rows, batches).

    A failure says how many rows were deleted before it; ``refused`` is the hint (the grant)
    for an account without DELETE.
    """
    import pymysql

    from analytics_cli.errors import DatabaseError
    from analytics_cli.mysqldb import DENIED, code, message

    deleted = batches = 0
    conn.commit()
    try:
        while True:
            cur = conn.execute(
                f"DELETE FROM {quote(table)} WHERE createdAt < %s LIMIT %s",
                (naive(cutoff), batch_size),
            )
            conn.commit()
            batches += 1
            deleted += max(int(cur.rowcount), 0)
            if progress is not None:
                progress(deleted)
            if cur.rowcount < batch_size:
                return deleted, batches
    except pymysql.err.Error as exc:
        raise DatabaseError(
            f"prune stopped after {deleted} rows: {message(exc, conn.params.secrets)}",
            hint=refused if code(exc) in DENIED else None,
        ) from None


# ---------------------------------------------------------------------------- export


def _csv_field(value: str) -> str:
    """A CSV field as PostgreSQL's COPY writes it: quoted only when it must be."""
    if any(c in value for c in ',"\r\n') or value == "":
        return '"' + value.replace('"', '""') + '"'
    return value


def export_lines(
    conn: Any, sel: Selection, fmt: str, keys: Sequence[str], order: str
) -> Iterator[str]:
    """Each row as the text PostgreSQL's COPY gives the native table: a CSV line, or one
    ``json_build_object`` text a line (json and ndjson); a CSV header line first."""
    if fmt == "csv":
        yield ",".join(keys) + "\n"
    if sel.bucket is None and sel.slot is None and keys[0] == "type":
        yield from _server_lines(conn, sel, fmt, keys, order)
        return
    found = _buckets(conn, sel) if sel.bucket is not None else _points(conn, sel, order)
    yield from _python_lines(found, fmt, keys)


def _python_lines(found: Iterable[Row], fmt: str, keys: Sequence[str]) -> Iterator[str]:
    """The lines of rows already read, every field written in Python (buckets, other keys)."""
    import json

    from analytics_cli.timeutil import iso

    for type_, count, at, updated in found:
        text = {
            "type": type_,
            "count": str(count),
            "timestamp": iso(at),
            "metadata": "{}",
            "collected_at": iso(updated),
        }
        if fmt == "csv":
            yield ",".join(_csv_field(text[k]) for k in keys) + "\n"
            continue
        values = {
            "type": json.dumps(type_, ensure_ascii=False),
            "count": str(count),
            "timestamp": json.dumps(text["timestamp"]),
            "metadata": "{}",
            "collected_at": json.dumps(text["collected_at"]),
        }
        yield "{" + ", ".join(f'"{k}" : {values[k]}' for k in keys) + "}\n"


# Each field's text as the server writes it (``%%`` is PyMySQL's escaped ``%``): the
# columns are exactly ``int`` and ``datetime`` (``detect`` checks), so no fraction to trim.
_FIELD_SQL = {
    "count": "count",
    "timestamp": "DATE_FORMAT(createdAt, '%%Y-%%m-%%dT%%H:%%i:%%sZ')",
    "metadata": "'{}'",
    "collected_at": "DATE_FORMAT(updatedAt, '%%Y-%%m-%%dT%%H:%%i:%%sZ')",
}


def _server_lines(
    conn: Any, sel: Selection, fmt: str, keys: Sequence[str], order: str
) -> Iterator[str]:
    """``export_lines`` for unbucketed rows whose first key is the type, in a fraction of
    the time: the server writes every field after the type (PyMySQL parses two text
    columns a row, no datetime or Decimal), and the type's text, quoted for CSV or JSON,
    is made once per type and put in front."""
    import json

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
    for type_, rest in conn.stream(query, params):
        head = heads.get(type_)
        if head is None:
            text = str(type_)
            head = (
                _csv_field(text)
                if fmt == "csv"
                else '{"type" : ' + json.dumps(text, ensure_ascii=False)
            )
            heads[type_] = head
        yield head + rest + end
