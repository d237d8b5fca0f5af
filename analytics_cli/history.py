"""The stored history read back: show's data and streamed exports (CSV via COPY, JSON, NDJSON)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from analytics_cli import store
from analytics_cli.console import RowProgress, atomic_output
from analytics_cli.errors import ConfigError
from analytics_cli.store.layout import Layout, selection

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config import Settings

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
        conn.execute("SET LOCAL client_encoding = 'UTF8'")
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
        sel = selection(layout, sel)
        check_types(conn, settings.table, list(sel.types) if sel.types else None)
        if sel.by is not None and top is not None:
            values, data.by_total = store.top_values(conn, sel, top)
            sel = replace(sel, by_values=tuple(v for v in values if v is not None))
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
    """``show --format json/csv``: every point (bucketed ones without metadata) to stdout."""
    with store_connection(settings) as (conn, layout):
        sel = selection(layout, sel)
        check_types(conn, settings.table, list(sel.types) if sel.types else None)
        rows = stream(conn, sel, fmt, binary_stdout(), keys=show_keys(sel))
        return Streamed(rows, None if rows else stored_span(conn, sel))


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
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Stream a selection to ``sink`` as csv, json or ndjson; returns the number of rows.

    Every format is a server-side ``COPY … TO STDOUT``: rows arrive one at a time and are
    written straight through, so memory stays flat however many rows there are.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"invalid format {fmt!r}", hint="use csv, json or ndjson")
    statement = store.copy_statement(sel, fmt, keys)
    rows = 0
    write = sink.write
    with conn.cursor() as cur, cur.copy(statement) as copy:
        if fmt == "json":
            rows = _json_array(copy, write, on_rows)
        elif on_rows is None:
            for chunk in copy:
                write(chunk)
        else:
            header = fmt == "csv"
            for chunk in copy:
                write(chunk)
                lines = bytes(chunk).count(b"\n")
                if header and lines:
                    lines, header = lines - 1, False
                on_rows(lines)
        if fmt != "json":
            rows = max(cur.rowcount, 0)
    return rows


def _json_array(copy: Any, write: Callable[[bytes], Any], on_rows: Any) -> int:
    # COPY sends one object per line; JSON text holds no raw newline, so every "\n" ends an
    # object. The last newline is held back so the array closes without a trailing comma.
    rows = 0
    held = False
    started = False
    for chunk in copy:
        data = bytes(chunk)
        if not data:
            continue
        if not started:
            write(b"[\n")
            started = True
        if held:
            write(b",\n")
        held = data.endswith(b"\n")
        body = data[:-1] if held else data
        write(body.replace(b"\n", b",\n"))
        lines = data.count(b"\n")
        rows += lines
        if on_rows is not None:
            on_rows(lines)
    if not started:
        write(b"[]\n")
    else:
        write(b"\n]\n")
    return rows


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
        sel = selection(layout, sel)
        check_types(conn, settings.table, list(sel.types) if sel.types else None)
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
