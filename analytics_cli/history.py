"""The stored history read back: show's data and streamed exports (CSV via COPY, JSON, NDJSON)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from analytics_cli import store
from analytics_cli.console import RowProgress, atomic_output
from analytics_cli.errors import ConfigError
from analytics_cli.store import mysql
from analytics_cli.store.layout import Layout, selection

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings

FORMATS = ("csv", "json", "ndjson")

# Candidate bucket sizes for automatic bucketing, smallest first.
NICE_BUCKETS = tuple(
    timedelta(seconds=s)
    for s in (
        60,
        300,
        600,
        900,
        1800,
        3600,
        7200,
        10800,
        21600,
        43200,
        86400,
        2 * 86400,
        7 * 86400,
        14 * 86400,
        28 * 86400,
        91 * 86400,
        364 * 86400,
    )
)


# show --format json/csv: the export's columns in the export's order, so one script reads
# either; collected_at is the export's alone.
SHOW_KEYS = tuple(k for k in store.EXPORT_KEYS if k != "collected_at")


def show_keys(sel: store.Selection) -> tuple[str, ...]:
    """The columns of ``show --format json/csv``: bucketed points carry no metadata of their own."""
    whole = sel.bucket is None or sel.by is not None  # --by keeps the values apart
    return SHOW_KEYS if whole else tuple(k for k in SHOW_KEYS if k != "metadata")


class NoData(Exception):
    """The store has no analytics table yet: nothing was ever collected."""


@contextmanager
def store_connection(settings: Settings) -> Iterator[tuple[psycopg.Connection[Any], Layout]]:
    """A read-only, repeatable-read connection to the store whose table has the native layout."""
    from analytics_cli.db import store_session
    from analytics_cli.store.layout import detect

    with store_session(
        settings, doing="store read failed", read_only=True, repeatable_read=True
    ) as conn:
        if not mysql.is_mysql(conn):
            conn.execute("SET LOCAL client_encoding = 'UTF8'")
            # The text of a timestamptz is then ISO 8601 in UTC (store.copy_statement relies
            # on it).
            conn.execute("SET LOCAL TimeZone = 'UTC'")
            conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        layout = detect(conn, settings)
        if layout is None:
            raise NoData(settings.table)
        yield conn, layout


def check_types(conn: psycopg.Connection[Any], table: str, types: list[str] | None) -> None:
    """Refuse types the store has never seen, suggesting the nearest known ones."""
    if not types:
        return
    from analytics_cli.metrics import suggest

    known = store.known_types(conn, table)
    for name in types:
        if name not in known:
            raise ConfigError(f"unknown metric type {name!r}", hint=suggest(name, known))


def auto_bucket(span: timedelta, points: int, target: int) -> timedelta | None:
    """The smallest nice bucket that brings a window down to about ``target`` points."""
    if points <= target:
        return None
    needed = span / max(target, 1)
    for bucket in NICE_BUCKETS:
        if bucket >= needed:
            return bucket
    return NICE_BUCKETS[-1]


@dataclass
class ShowData:
    """Everything ``show`` renders: window, bucket used, points and per-type summaries."""

    selection: store.Selection
    interval: timedelta
    automatic: bool = False
    points: list[store.Point] = field(default_factory=list)
    summaries: list[store.TypeSummary] = field(default_factory=list)
    sparklines: dict[str, list[float | None]] = field(default_factory=dict)
    # With --by: how many distinct values the window holds (the chart shows the top ones).
    by_total: int = 0
    # For an empty window: where the asked types' history is.
    stored: Span | None = None


@dataclass(frozen=True)
class Span:
    """The oldest and newest stored slot of a selection's types, whatever its window."""

    oldest: datetime
    newest: datetime
    types: tuple[str, ...] = ()  # the types asked for; () for every type
    until: datetime | None = None  # the end of the window that came back empty


@dataclass(frozen=True)
class Streamed:
    """What ``show --format json/csv`` wrote, and where the history is when nothing was."""

    rows: int
    stored: Span | None = None


def stored_span(conn: psycopg.Connection[Any], sel: store.Selection) -> Span | None:
    """Where the selection's types (and --where) have rows at all; None when nowhere."""
    import json

    from psycopg import sql

    types = list(sel.types) if sel.types else store.known_types(conn, sel.table)
    if mysql.is_mysql(conn):
        spans = [] if sel.where else [mysql.span(conn, sel.table, name) for name in types]
        ends = [end for found in spans if found is not None for end in found]
        return Span(min(ends), max(ends), tuple(sel.types or ()), sel.until) if ends else None
    query = sql.SQL('SELECT min("timestamp"), max("timestamp") FROM {} WHERE type = %s').format(
        store.relation(sel)
    )
    params: tuple[Any, ...] = ()
    if sel.where:
        query += sql.SQL(" AND metadata @> %s::jsonb")
        params = (json.dumps(dict(sel.where), ensure_ascii=False),)
    found: list[datetime] = []
    # One probe per type: min and max on the (type, "timestamp") index, however long the history.
    for name in types:
        row = conn.execute(query, (name, *params)).fetchone()
        if row is not None and row[0] is not None:
            found += [row[0], row[1]]
    if not found:
        return None
    return Span(min(found), max(found), tuple(sel.types or ()), sel.until)


def show_data(
    settings: Settings,
    sel: store.Selection,
    *,
    series: bool,
    summary: bool,
    target: int | None = None,
    spark_width: int = 0,
    top: int | None = None,
) -> ShowData:
    """Read what ``show`` needs in one snapshot; ``target`` enables automatic bucketing."""
    data = ShowData(sel, settings.interval)
    with store_connection(settings) as (conn, layout):
        # A slot's value is the total of its rows (of the series --by/--where picks).
        check_types(conn, settings.table, list(sel.types) if sel.types else None)
        sel = replace(selection(layout, sel, conn), slot=settings.interval)
        if sel.by is not None and top is not None:
            values, data.by_total = store.top_values(conn, sel, top)
            sel = replace(sel, by_values=tuple(values))
            data.selection = sel
        if series:
            if sel.bucket is None and target is not None:
                assert sel.since is not None and sel.until is not None
                bucket = auto_bucket(sel.until - sel.since, store.count_points(conn, sel), target)
                if bucket is not None:
                    sel = replace(sel, bucket=bucket)
                    data.automatic = True
            data.selection = sel
            data.points = store.read_points(conn, sel)
        if summary:
            data.summaries = store.summaries(conn, sel, settings.interval)
        if spark_width:
            data.sparklines = store.sparkline_values(conn, sel, spark_width)
        if not data.points and not data.summaries:
            data.stored = stored_span(conn, sel)
    return data


def show_rows(settings: Settings, sel: store.Selection, fmt: str) -> Streamed:
    """``show --format json/csv``: every stored row, or the buckets' aggregates of the per-slot
    totals (without metadata), to stdout."""
    with store_connection(settings) as (conn, layout):
        check_types(conn, settings.table, list(sel.types) if sel.types else None)
        sel = totals_when_bucketed(selection(layout, sel, conn), settings.interval)
        rows = stream(conn, sel, fmt, binary_stdout(), keys=show_keys(sel), order="type")
        return Streamed(rows, None if rows else stored_span(conn, sel))


def totals_when_bucketed(sel: store.Selection, interval: timedelta) -> store.Selection:
    """Buckets aggregate the per-slot totals (a slot's value is the sum of its rows);
    unbucketed, every stored row is streamed as it is."""
    return replace(sel, slot=interval) if sel.bucket is not None else sel


class TextSink:
    """Bytes in, text out: for a stdout replaced by a text stream (no ``.buffer``)."""

    def __init__(self, stream: IO[str]) -> None:
        import codecs

        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def write(self, data: bytes | memoryview) -> int:
        """Decode and forward."""
        self.stream.write(self.decoder.decode(bytes(data)))
        return len(data)

    def flush(self) -> None:
        """Flush the underlying stream."""
        self.stream.flush()


def binary_stdout() -> Any:
    """stdout as a byte sink (its buffer, or a decoding wrapper when it is a text stream)."""
    import sys

    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    return buffer if buffer is not None else TextSink(sys.stdout)


def stream(
    conn: psycopg.Connection[Any],
    sel: store.Selection,
    fmt: str,
    sink: Any,
    *,
    keys: tuple[str, ...] = store.EXPORT_KEYS,
    order: str = "time",
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Stream a selection to ``sink`` as csv, json or ndjson; returns the number of rows.

    Every format is a server-side ``COPY … TO STDOUT``: rows arrive one at a time and are
    written straight through, so memory stays flat however many rows there are.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"invalid format {fmt!r}", hint="use csv, json or ndjson")
    if mysql.is_mysql(conn):
        return _stream_lines(mysql.export_lines(conn, sel, fmt, keys, order), fmt, sink, on_rows)
    from analytics_cli.store.rollup_read import planned

    statement = store.copy_statement(planned(conn, sel), fmt, keys, order).as_string(conn)
    write = sink.write
    if fmt != "json":
        return copy_out(conn, statement, write, on_rows, first=store.copy_header(fmt, keys))
    # COPY sends one object a line (JSON text holds no raw newline): the array's commas go
    # between the lines of each block, and between blocks.
    started = False

    def block(data: bytes) -> None:
        nonlocal started
        write(b",\n" if started else b"[\n")
        started = True
        write(data[:-1].replace(b"\n", b",\n"))

    rows = copy_out(conn, statement, block, on_rows)
    write(b"\n]\n" if started else b"[]\n")
    return rows


def _stream_lines(
    lines: Iterator[str],
    fmt: str,
    sink: Any,
    on_rows: Callable[[int], None] | None,
) -> int:
    """Write rows given as text lines (a MySQL store: no COPY) in blocks; count them.

    The lines are those COPY gives for the native table, so every store exports the same
    text; json wraps the lines into one array as ``stream`` does.
    """
    rows = reported = size = 0
    buffer: list[bytes] = []
    header = fmt == "csv"
    for line in lines:
        data = line.encode()
        if header:  # the CSV header line is no row
            sink.write(data)
            header = False
            continue
        if fmt == "json":
            data = (b",\n" if rows else b"[\n") + data[:-1]
        buffer.append(data)
        size += len(data)
        rows += 1
        if size >= BLOCK_BYTES:
            sink.write(b"".join(buffer))
            buffer.clear()
            size = 0
            if on_rows is not None:
                on_rows(rows - reported)
                reported = rows
    sink.write(b"".join(buffer))
    if fmt == "json":
        sink.write(b"\n]\n" if rows else b"[]\n")
    if on_rows is not None and rows > reported:
        on_rows(rows - reported)
    return rows


# Rows are handed on in blocks of about this many bytes: one write (and one progress report)
# per row would cost more than the row itself.
BLOCK_BYTES = 1 << 16


def copy_out(
    conn: psycopg.Connection[Any],
    statement: str,
    write: Callable[[bytes], Any],
    on_rows: Callable[[int], None] | None = None,
    *,
    first: bytes = b"",
) -> int:
    """Run ``COPY … TO STDOUT``; hand the rows on in blocks of whole rows; count them.

    The loop talks to libpq directly (``pgconn``, psycopg's documented low-level access):
    psycopg's own ``Copy`` iterator costs about a microsecond a row, as much as psql's whole
    copy. Rows already received are taken without waiting; only an empty buffer waits, on
    the socket and in slices of a second, so signals are handled while the server works.
    ``first`` (a CSV header) goes out ahead of the rows, in their first block.
    """
    import select

    import psycopg
    from psycopg import pq

    pgconn = conn.pgconn
    pgconn.send_query(statement.encode(conn.info.encoding))  # raises when it cannot send
    while pgconn.flush() == 1:  # the connection is non-blocking: send all of it
        select.select([], [pgconn.socket], [], 1.0)
    # The COPY_OUT result first; an error (a bad query) comes as the only result.
    result = _next_result(pgconn)
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _raise_result(pgconn, result)
    rows = reported = 0
    buffer = bytearray(first)
    get = pgconn.get_copy_data
    try:
        while True:
            size, data = get(1)
            if size > 0:
                buffer += data
                rows += 1
                if len(buffer) >= BLOCK_BYTES:
                    write(bytes(buffer))
                    buffer.clear()
                    if on_rows is not None and rows > reported:
                        on_rows(rows - reported)
                        reported = rows
            elif size == 0:
                select.select([pgconn.socket], [], [], 1.0)
                pgconn.consume_input()
            elif size == -1:
                break
            else:
                raise psycopg.OperationalError(pgconn.error_message.decode(errors="replace"))
    except BaseException:
        # A writer that failed (a closed pipe) or an interrupt: stop the server's COPY and
        # leave the connection usable for the rollback that follows.
        conn.cancel_safe(timeout=5)
        while get(0)[0] >= 0:
            pass
        while _next_result(pgconn) is not None:
            pass
        raise
    final = _next_result(pgconn)
    if final is None or final.status != pq.ExecStatus.COMMAND_OK:
        _raise_result(pgconn, final)
    while _next_result(pgconn) is not None:
        pass
    # Only a complete COPY hands on its last block: a failed one never looks whole.
    if buffer:
        write(bytes(buffer))
    if on_rows is not None and rows > reported:
        on_rows(rows - reported)
    return rows


def _next_result(pgconn: Any) -> Any:
    """libpq's next result, waiting on the socket (interruptibly) while it is busy."""
    import select

    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            return pgconn.get_result()
        select.select([pgconn.socket], [], [], 1.0)


def _raise_result(pgconn: Any, result: Any) -> NoReturn:
    """The error a failed COPY's result carries, as the psycopg exception of its SQLSTATE."""
    import psycopg
    from psycopg import errors, pq

    while _next_result(pgconn) is not None:
        pass
    if result is None:
        raise psycopg.OperationalError(pgconn.error_message.decode(errors="replace"))
    code = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = (result.error_message or pgconn.error_message).decode(errors="replace").strip()
    cls = errors.lookup(code.decode()) if code else psycopg.DatabaseError
    raise cls(message.removeprefix("ERROR:").strip())


def export(
    settings: Settings,
    sel: store.Selection,
    fmt: str,
    output: Path | None,
    *,
    progress: bool = False,
    keys: tuple[str, ...] = store.EXPORT_KEYS,
) -> int:
    """Export a selection to ``output`` (atomically) or stdout; returns the number of rows."""
    rows = 0
    with store_connection(settings) as (conn, layout):
        check_types(conn, settings.table, list(sel.types) if sel.types else None)
        sel = totals_when_bucketed(selection(layout, sel, conn), settings.interval)
        if output is None:
            rows = stream(conn, sel, fmt, binary_stdout(), keys=keys)
        elif not progress:
            with atomic_output(output) as handle:
                rows = stream(conn, sel, fmt, handle, keys=keys)
        else:
            total = store.count_rows(conn, sel)
            with (
                atomic_output(output) as handle,
                RowProgress(total, f"exporting {output.name}") as bar,
            ):
                rows = stream(conn, sel, fmt, handle, keys=keys, on_rows=bar.advance)
    return rows
