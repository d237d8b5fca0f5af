"""The reading rules every engine shares: slots, buckets, aggregates, summaries, export text.

A metric's value at a slot is the sum of the slot's rows (every series of a dimensional
metric, every [[source]]); buckets aggregate those totals or the rows; an export's lines
are the text PostgreSQL's COPY gives the native table. An engine whose SQL computes these
itself (PostgreSQL) follows the same rules; one that reads rows (MySQL) applies these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from analytics_cli.engines.base import Layout, Store
from analytics_cli.engines.notices import notice
from analytics_cli.engines.shapes import (
    AGGREGATES,
    BUCKET_ORIGIN,
    EXPORT_KEYS,
    Point,
    Selection,
    TypeSummary,
)
from analytics_cli.errors import ConfigError

# One stored row, or one slot total, or one bucket: type, count, timestamp, collected_at.
Row = tuple[str, Decimal, datetime, datetime]

FORMATS = ("csv", "json", "ndjson")

# Rows are handed on in blocks of about this many bytes: one write (and one progress report)
# per row would cost more than the row itself.
BLOCK_BYTES = 1 << 16


def say_gaps(layout: Layout, conn: Any, sel: Selection) -> None:
    """Say, once per command, how many rows of the window the readers leave out as gaps
    (no usable count)."""
    missing = layout.gaps(conn, sel.since, sel.until, sel.types)
    if missing:
        notice(
            f"warning: {missing} row(s) of table {layout.table} hold no usable count "
            "(NULL, NaN or an infinity): shown as gaps"
        )


def check_format(fmt: str) -> None:
    """Refuse an export format no engine writes."""
    if fmt not in FORMATS:
        raise ConfigError(f"invalid format {fmt!r}", hint="use csv, json or ndjson")


def check_aggregate(agg: str) -> None:
    """Refuse an aggregate no engine computes."""
    if agg not in AGGREGATES:
        raise ConfigError(f"invalid aggregate {agg!r}", hint="use one of: " + ", ".join(AGGREGATES))


def slot_count(since: datetime, until: datetime, interval: timedelta) -> int:
    """How many slots of ``interval`` start in [since, until)."""
    from analytics_cli.timeutil import floor_slot

    first = floor_slot(since, interval)
    if first < since:
        first += interval
    if first >= until:
        return 0
    return int((until - first - timedelta(microseconds=1)) // interval) + 1


def floor_bucket(moment: datetime, step: timedelta) -> datetime:
    """The start of the bucket (or slot) of ``step`` holding ``moment`` (date_bin's rule)."""
    return BUCKET_ORIGIN + ((moment - BUCKET_ORIGIN) // step) * step


def aggregate(agg: str, values: list[tuple[datetime, Decimal]]) -> Decimal:
    """One bucket's value of ``values`` (time order) by the aggregate ``agg``."""
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


def totals(found: Iterable[Row], slot: timedelta, *, order: str = "type") -> list[Row]:
    """Per-slot totals of rows: per type and slot (the time floored to ``slot``), the sum of
    the slot's rows, the slot's start and its latest collection."""
    groups: dict[tuple[str, datetime], tuple[Decimal, datetime]] = {}
    for type_, count, at, updated in found:
        key = (type_, floor_bucket(at, slot))
        total, latest = groups.get(key, (Decimal(0), updated))
        groups[key] = (total + count, max(latest, updated))
    out = [(t, total, at, latest) for (t, at), (total, latest) in groups.items()]
    out.sort(key=(lambda r: (r[0], r[2])) if order == "type" else (lambda r: (r[2], r[0])))
    return out


def buckets(found: Iterable[Row], bucket: timedelta, agg: str) -> list[Row]:
    """One row per type and bucket: the aggregate, the bucket start, the latest collection."""
    groups: dict[tuple[str, datetime], tuple[list[tuple[datetime, Decimal]], list[datetime]]] = {}
    for type_, count, at, updated in found:
        values, latest = groups.setdefault((type_, floor_bucket(at, bucket)), ([], [updated]))
        values.append((at, count))
        latest[0] = max(latest[0], updated)
    return [(t, aggregate(agg, v), at, last[0]) for (t, at), (v, last) in groups.items()]


def by_type(found: Iterable[Row]) -> dict[str, list[tuple[datetime, Decimal]]]:
    """Per type, its points oldest first (the rows come in type and time order)."""
    out: dict[str, list[tuple[datetime, Decimal]]] = {}
    for type_, count, at, _ in found:
        out.setdefault(type_, []).append((at, count))
    return out


def summary(name: str, values: list[tuple[datetime, Decimal]]) -> TypeSummary:
    """One type's summary over its per-slot totals (time order): latest, min/avg/max, slots."""
    counts = [v for _, v in values]
    return TypeSummary(
        type=name,
        latest=values[-1][1],
        latest_at=values[-1][0],
        min=min(counts),
        avg=sum(counts, Decimal(0)) / len(counts),
        max=max(counts),
        points=len(values),
        first_at=values[0][0],
        slots=len(values),
    )


def sparklines(
    grouped: dict[str, list[tuple[datetime, Decimal]]], sel: Selection, width: int
) -> dict[str, list[float | None]]:
    """Per type, ``width`` averages over equal slices of the window (None where empty)."""
    assert sel.since is not None and sel.until is not None
    step = max((sel.until - sel.since) / width, timedelta(seconds=1))
    result: dict[str, list[float | None]] = {}
    for name, values in grouped.items():
        cells: dict[int, list[Decimal]] = {}
        for at, count in values:
            cells.setdefault(int((at - sel.since) // step), []).append(count)
        line: list[float | None] = [None] * width
        for index, counts in cells.items():
            if 0 <= index < width:
                line[index] = float(sum(counts, Decimal(0)) / len(counts))
        result[name] = line
    return result


def points(found: Iterable[Row], metadata: dict[str, Any] | None) -> list[Point]:
    """Rows as points carrying ``metadata`` (``{}`` for stored rows, None for aggregates)."""
    return [Point(t, at, c, metadata) for t, c, at, _ in found]


def total_points(
    store: Store, sel: Selection, interval: timedelta, bucket: timedelta
) -> list[Point]:
    """Per type, the per-slot totals averaged over buckets of ``bucket`` (the slot itself when
    ``bucket`` is the interval), ordered by type and time."""
    return store.read_points(replace(sel, slot=interval, bucket=bucket, agg="avg"))


# ---------------------------------------------------------------------------- export text


def copy_header(fmt: str, keys: Sequence[str] = EXPORT_KEYS) -> bytes:
    """The first line of an export's rows: the CSV header (the keys), else none."""
    return (",".join(keys) + "\n").encode() if fmt == "csv" else b""


def csv_field(value: str) -> str:
    """A CSV field as PostgreSQL's COPY writes it: quoted only when it must be."""
    if any(c in value for c in ',"\r\n') or value == "":
        return '"' + value.replace('"', '""') + '"'
    return value


def row_lines(found: Iterable[Row], fmt: str, keys: Sequence[str]) -> Iterator[str]:
    """The lines of rows without metadata, every field written in Python, as COPY writes
    the native table's: a CSV line, or one ``json_build_object`` text a line."""
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
            yield ",".join(csv_field(text[k]) for k in keys) + "\n"
            continue
        values = {
            "type": json.dumps(type_, ensure_ascii=False),
            "count": str(count),
            "timestamp": json.dumps(text["timestamp"]),
            "metadata": "{}",
            "collected_at": json.dumps(text["collected_at"]),
        }
        yield "{" + ", ".join(f'"{k}" : {values[k]}' for k in keys) + "}\n"


def write_lines(
    lines: Iterator[str], fmt: str, sink: Any, on_rows: Callable[[int], None] | None
) -> int:
    """Write rows given as text lines (a CSV header line first) in blocks; count them.

    json wraps the lines into one array, as the COPY stream of PostgreSQL does.
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
