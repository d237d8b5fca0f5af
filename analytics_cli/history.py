"""The stored history read back: show's data and streamed exports (CSV, JSON, NDJSON)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from analytics_cli.console import RowProgress, atomic_output
from analytics_cli.engines.base import Layout, Store
from analytics_cli.engines.reading import FORMATS as FORMATS
from analytics_cli.engines.shapes import EXPORT_KEYS, Point, Selection, TypeSummary
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings

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
SHOW_KEYS = tuple(k for k in EXPORT_KEYS if k != "collected_at")


def show_keys(sel: Selection) -> tuple[str, ...]:
    """The columns of ``show --format json/csv``: bucketed points carry no metadata of their own."""
    whole = sel.bucket is None or sel.by is not None  # --by keeps the values apart
    return SHOW_KEYS if whole else tuple(k for k in SHOW_KEYS if k != "metadata")


class NoData(Exception):
    """The store has no analytics table yet: nothing was ever collected."""


@contextmanager
def reading_store(settings: Settings) -> Iterator[tuple[Store, Layout]]:
    """The store in one read-only snapshot, and its table's layout (NoData when absent)."""
    from analytics_cli.engines.stores import open_store

    with open_store(settings, doing="store read failed", reading=True) as found:
        layout = found.detect()
        if layout is None:
            raise NoData(settings.table)
        yield found, layout


def check_types(found: Store, types: list[str] | None) -> None:
    """Refuse types the store has never seen, suggesting the nearest known ones."""
    if not types:
        return
    from analytics_cli.metrics import suggest

    known = found.known_types()
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

    selection: Selection
    interval: timedelta
    automatic: bool = False
    points: list[Point] = field(default_factory=list)
    summaries: list[TypeSummary] = field(default_factory=list)
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


def stored_span(found: Store, sel: Selection) -> Span | None:
    """Where the selection's types (and --where) have rows at all; None when nowhere."""
    ends = found.span(sel)
    return Span(ends[0], ends[1], tuple(sel.types or ()), sel.until) if ends else None


def show_data(
    settings: Settings,
    sel: Selection,
    *,
    series: bool,
    summary: bool,
    target: int | None = None,
    spark_width: int = 0,
    top: int | None = None,
) -> ShowData:
    """Read what ``show`` needs in one snapshot; ``target`` enables automatic bucketing."""
    data = ShowData(sel, settings.interval)
    with reading_store(settings) as (found, layout):
        # A slot's value is the total of its rows (of the series --by/--where picks).
        check_types(found, list(sel.types) if sel.types else None)
        sel = replace(found.selection(layout, sel), slot=settings.interval)
        if sel.by is not None and top is not None:
            values, data.by_total = found.top_values(sel, top)
            sel = replace(sel, by_values=tuple(values))
            data.selection = sel
        if series:
            if sel.bucket is None and target is not None:
                assert sel.since is not None and sel.until is not None
                bucket = auto_bucket(sel.until - sel.since, found.count_points(sel), target)
                if bucket is not None:
                    sel = replace(sel, bucket=bucket)
                    data.automatic = True
            data.selection = sel
            data.points = found.read_points(sel)
        if summary:
            data.summaries = found.summaries(sel, settings.interval)
        if spark_width:
            data.sparklines = found.sparkline_values(sel, spark_width)
        if not data.points and not data.summaries:
            data.stored = stored_span(found, sel)
    return data


def show_rows(settings: Settings, sel: Selection, fmt: str) -> Streamed:
    """``show --format json/csv``: every stored row, or the buckets' aggregates of the per-slot
    totals (without metadata), to stdout."""
    with reading_store(settings) as (found, layout):
        check_types(found, list(sel.types) if sel.types else None)
        sel = totals_when_bucketed(found.selection(layout, sel), settings.interval)
        rows = stream(found, sel, fmt, binary_stdout(), keys=show_keys(sel), order="type")
        return Streamed(rows, None if rows else stored_span(found, sel))


def totals_when_bucketed(sel: Selection, interval: timedelta) -> Selection:
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
    found: Store,
    sel: Selection,
    fmt: str,
    sink: Any,
    *,
    keys: tuple[str, ...] = EXPORT_KEYS,
    order: str = "time",
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Stream a selection to ``sink`` as csv, json or ndjson; returns the number of rows.

    Rows arrive one at a time and are written straight through, so memory stays flat
    however many rows there are; every store writes the same text.
    """
    return found.export(sel, fmt, sink, keys=keys, order=order, on_rows=on_rows)


def export(
    settings: Settings,
    sel: Selection,
    fmt: str,
    output: Path | None,
    *,
    progress: bool = False,
    keys: tuple[str, ...] = EXPORT_KEYS,
) -> int:
    """Export a selection to ``output`` (atomically) or stdout; returns the number of rows."""
    rows = 0
    with reading_store(settings) as (found, layout):
        check_types(found, list(sel.types) if sel.types else None)
        sel = totals_when_bucketed(found.selection(layout, sel), settings.interval)
        if output is None:
            rows = stream(found, sel, fmt, binary_stdout(), keys=keys)
        elif not progress:
            with atomic_output(output) as handle:
                rows = stream(found, sel, fmt, handle, keys=keys)
        else:
            total = found.count_rows(sel)
            with (
                atomic_output(output) as handle,
                RowProgress(total, f"exporting {output.name}") as bar,
            ):
                rows = stream(found, sel, fmt, handle, keys=keys, on_rows=bar.advance)
    return rows
