"""Rendering: collect reports, tables, sparklines and terminal charts (rows in, text out)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from analytics_cli.console import Output, stderr_is_terminal, terminal_width

if TYPE_CHECKING:
    from analytics_cli.collect import CycleReport

# rich is imported inside the functions that draw for a terminal: plain output (cron, pipes)
# never pays for its import.


def format_count(value: Any) -> str:
    """A count as text: integers without decimals, fractions as stored."""
    from decimal import Decimal

    if value is None:
        return "-"
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return f"{int(value):,}".replace(",", "_") if abs(value) >= 10**6 else str(int(value))
        return f"{value.normalize():f}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def print_collect_report(report: CycleReport, out: Output, *, show_metrics: bool = True) -> None:
    """Write a cycle's outcome to stderr: a table on a terminal, logfmt-like lines otherwise."""
    from analytics_cli.timeutil import iso

    slot = iso(report.slot)
    json_logs = out.json_logs
    if show_metrics and not out.quiet:
        if stderr_is_terminal() and not json_logs and report.results:
            from rich.console import Console
            from rich.markup import escape
            from rich.table import Table

            table = Table(title=f"slot {slot}", title_justify="left")
            table.add_column("metric")
            table.add_column("count", justify="right")
            table.add_column("status")
            styles = {"failed": "red", "stored": "green", "replaced": "green", "present": "dim"}
            for r in report.results:
                status = r.status if not r.error else f"failed: {r.error}"
                name = r.type if r.source is None else f"{r.type} ({r.source})"
                count = format_count(r.count) if r.series is None else f"{r.series} series"
                table.add_row(
                    escape(name), count, f"[{styles.get(r.status, '')}]{escape(status)}[/]"
                )
            Console(stderr=True).print(table)
        else:
            for r in report.results:
                fields: dict[str, Any] = {
                    "slot": slot,
                    "type": r.type,
                    "count": format_count(r.count) if r.count is not None else None,
                    "status": r.status,
                }
                if r.source is not None:
                    fields["source"] = r.source
                if r.series is not None:
                    fields["series"] = r.series
                if r.error:
                    fields["error"] = r.error
                if json_logs:
                    out.info(f"{r.type} {r.status}", event="metric", **fields)
                else:
                    out.info(_logfmt(fields))
    elif report.failed:
        for r in report.failed:
            out.warn(f"metric {r.type} failed: {r.error}")
    counts = report.counts()
    summary = {
        "slot": slot,
        "stored": counts.get("stored", 0) + counts.get("replaced", 0),
        "present": counts.get("present", 0),
        "failed": counts.get("failed", 0),
        "duration": f"{report.duration:.2f}s",
    }
    if report.dry_run:
        summary = {"slot": slot, "checked": counts.get("checked", 0), **summary}
        summary["stored"] = 0
    if report.note:
        summary["note"] = report.note
    verb = "dry-run" if report.dry_run else "collect"
    if json_logs:
        out.line("info", f"{verb} done", event="summary", **summary)
    else:
        out.line("info", f"{verb} " + _logfmt(summary))


def _logfmt(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(c in text for c in ' "=\t\n'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


# ---------------------------------------------------------------------------- show

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24
CHART_HEIGHT = 12
TABLE_TARGET = 60
COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")
# Braille dot bits of one character cell, indexed [row][column] of the 4x2 dot grid.
_BRAILLE = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


def zone(name: str) -> Any:
    """A tzinfo for ``--tz``: UTC, local, or an IANA name."""
    from datetime import UTC, datetime

    from analytics_cli.errors import ConfigError

    if name.upper() == "UTC":
        return UTC
    if name.lower() == "local":
        return datetime.now().astimezone().tzinfo
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r}", hint="use UTC, local or an IANA name: Europe/Paris"
        ) from None


def zone_name(tz: Any) -> str:
    """A short name of a tzinfo for headers."""
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    from datetime import UTC, datetime

    if tz is UTC:
        return "UTC"
    return str(datetime.now(tz).tzname() or tz)


def when(moment: Any, tz: Any) -> str:
    """A time for humans in ``tz``: ``2026-11-29 04:30`` (seconds only when not zero)."""
    local = moment.astimezone(tz)
    return str(local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M"))


def number(value: Any) -> str:
    """A value for tables: integers as they are, fractions to two decimals."""
    from decimal import Decimal

    if value is None:
        return "-"
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return str(int(value))
        return f"{value.quantize(Decimal('0.01')).normalize():f}"
    return format_count(value)


def spark_width(span: Any, interval: Any) -> int:
    """Sparkline characters for a window: one per slot, at most SPARK_WIDTH."""
    return max(1, min(SPARK_WIDTH, int(span / interval)))


def resample(values: list[float | None], size: int) -> list[float | None]:
    """Average neighbouring values down to at most ``size`` (empty slices stay None)."""
    if len(values) <= size:
        return values
    out: list[float | None] = []
    for i in range(size):
        part = [
            v
            for v in values[i * len(values) // size : (i + 1) * len(values) // size]
            if v is not None
        ]
        out.append(sum(part) / len(part) if part else None)
    return out


def sparkline(values: list[float | None]) -> str:
    """Block characters scaled between the smallest and largest value; blanks where empty."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    low, high = min(present), max(present)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif span == 0:
            out.append(SPARK[len(SPARK) // 2])
        else:
            out.append(SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))])
    return "".join(out)


def gaps(summary: Any, until: Any, interval: Any) -> int:
    """Missing slots of one type: slots from its first point in the window up to ``until``."""
    from analytics_cli.store import slot_count
    from analytics_cli.timeutil import floor_slot

    expected = slot_count(floor_slot(summary.first_at, interval), until, interval)
    return max(0, expected - int(summary.slots))


def plain_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """Columns padded with spaces, no box drawing: easy for grep, awk and cut."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def window_line(data: Any, tz: Any) -> str:
    """One header line: window, bucket and zone."""
    from analytics_cli.timeutil import format_duration

    sel = data.selection
    span = format_duration(sel.until - sel.since)
    text = (
        f"window {when(sel.since, tz)} to {when(sel.until, tz)} ({span}), times in {zone_name(tz)}"
    )
    if sel.bucket is not None:
        how = "automatic" if data.automatic else "--bucket"
        text += f"; bucket {format_duration(sel.bucket)} ({how}), {sel.agg}"
    return text


def _summary_rows(data: Any, tz: Any) -> list[list[str]]:
    rows = []
    for s in data.summaries:
        rows.append(
            [
                s.type,
                number(s.latest),
                when(s.latest_at, tz),
                number(s.min),
                number(s.avg),
                number(s.max),
                str(s.points),
                str(gaps(s, data.selection.until, data.interval)),
            ]
        )
    return rows


SUMMARY_HEADERS = ["type", "latest", "at", "min", "avg", "max", "points", "gaps"]
SUMMARY_RIGHT = {1, 3, 4, 5, 6, 7}


def print_overview(data: Any, tz: Any, *, terminal: bool) -> None:
    """show without --type: one row per metric type, with a sparkline on a terminal."""
    rows = _summary_rows(data, tz)
    if not terminal:
        print(window_line(data, tz))
        print(plain_table(SUMMARY_HEADERS, rows, SUMMARY_RIGHT))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=window_line(data, tz), title_justify="left")
    for i, header in enumerate([*SUMMARY_HEADERS, "trend"]):
        table.add_column(
            header, justify="right" if i in SUMMARY_RIGHT else "left", no_wrap=i in (2, 8)
        )
    # Fit the trend into what the other columns leave (3 = padding and border per column).
    natural = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(SUMMARY_HEADERS)]
    room = max(5, terminal_width() - sum(w + 3 for w in natural) - 4)
    for row, s in zip(rows, data.summaries, strict=True):
        spark = sparkline(resample(data.sparklines.get(s.type, []), room))
        table.add_row(*row, f"[cyan]{spark}[/]")
    Console(file=sys.stdout).print(table)


def _pivot(points: list[Any], types: list[str]) -> list[list[Any]] | None:
    """Points as one row per time and one column per type; None when rows carry dimensions."""
    if any(p.metadata for p in points):
        return None
    by_time: dict[Any, dict[str, Any]] = {}
    for p in points:
        cell = by_time.setdefault(p.timestamp, {})
        if p.type in cell:
            return None
        cell[p.type] = p.count
    return [[k, *[v.get(t) for t in types]] for k, v in sorted(by_time.items())]


def series_table(data: Any, tz: Any) -> tuple[list[str], list[list[str]], set[int]]:
    """The points of ``show --type`` as headers, rows and right-aligned columns."""
    import json

    types = list(data.selection.types or [])
    raw = _pivot(data.points, types)
    if raw is not None:
        rows = [[when(r[0], tz), *[number(v) for v in r[1:]]] for r in raw]
        return ["time", *types], rows, set(range(1, len(types) + 1))
    rows = [
        [when(p.timestamp, tz), p.type, number(p.count), json.dumps(p.metadata or {})]
        for p in sorted(data.points, key=lambda p: (p.timestamp, p.type))
    ]
    return ["time", "type", "count", "metadata"], rows, {2}


def print_series(data: Any, tz: Any, *, terminal: bool) -> None:
    """show --type as a table of points."""
    headers, rows, right = series_table(data, tz)
    if not terminal:
        print(window_line(data, tz))
        print(plain_table(headers, rows, right))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=window_line(data, tz), title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in right else "left")
    for row in rows:
        table.add_row(*row)
    Console(file=sys.stdout).print(table)


def chart_lines(
    data: Any, tz: Any, *, width: int, height: int = CHART_HEIGHT, fancy: bool = True
) -> list[list[tuple[str, int | None]]]:
    """A braille line chart of the points: lines of (text, series index or None) segments."""
    sel = data.selection
    types = series_names(data)
    by = getattr(sel, "by", None)
    values = [float(p.count) for p in data.points]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - 1, high + 1
    labels = [number_label(high), number_label((low + high) / 2), number_label(low)]
    label_w = max(len(s) for s in labels)
    cols = max(10, width - label_w - 2)
    dots_x, dots_y = cols * 2, height * 4
    grid = [[0] * cols for _ in range(height)]
    owner: list[list[int | None]] = [[None] * cols for _ in range(height)]
    t0 = sel.since.timestamp()
    span = max(sel.until.timestamp() - t0, 1.0)
    step = (sel.bucket or data.interval).total_seconds()

    def plot(x: int, y: int, who: int) -> None:
        if 0 <= x < dots_x and 0 <= y < dots_y:
            row, col = (dots_y - 1 - y) // 4, x // 2
            grid[row][col] |= _BRAILLE[(dots_y - 1 - y) % 4][x % 2]
            owner[row][col] = who

    for who, name in enumerate(types):
        previous: tuple[int, int, float] | None = None
        for p in (p for p in data.points if series_of(p, by) == name):
            ts = p.timestamp.timestamp()
            x = int((ts - t0) / span * (dots_x - 1))
            y = round((float(p.count) - low) / (high - low) * (dots_y - 1))
            # Join neighbours with a line; leave missing slots visible as breaks.
            if previous is not None and ts - previous[2] <= step * 1.5:
                _line(previous[0], previous[1], x, y, lambda a, b, w=who: plot(a, b, w))
            else:
                plot(x, y, who)
            previous = (x, y, ts)
    axis, corner, rule = ("┤", "└", "─") if fancy else ("|", "+", "-")
    lines: list[list[tuple[str, int | None]]] = []
    for r in range(height):
        label = labels[0] if r == 0 else labels[2] if r == height - 1 else ""
        if r == height // 2 and height > 2:
            label = labels[1]
        tick = axis if label or not fancy else "│"
        segs: list[tuple[str, int | None]] = [(f"{label:>{label_w}} {tick}", None)]
        for c in range(cols):
            ch = chr(0x2800 + grid[r][c]) if grid[r][c] else " "
            cell_owner = owner[r][c] if grid[r][c] else None
            if segs[-1][1] == cell_owner:
                segs[-1] = (segs[-1][0] + ch, cell_owner)
            else:
                segs.append((ch, cell_owner))
        lines.append(
            [
                (s.rstrip() if i == len(segs) - 1 and w is None else s, w)
                for i, (s, w) in enumerate(segs)
            ]
        )
    lines.append([(" " * label_w + " " + corner + rule * cols, None)])
    start, middle, end = (
        when(sel.since, tz),
        when(sel.since + (sel.until - sel.since) / 2, tz),
        when(sel.until, tz),
    )
    pad = label_w + 2
    inner = cols - len(start) - len(end)
    gap1 = max(1, inner // 2 - len(middle) // 2)
    gap2 = max(1, inner - gap1 - len(middle))
    lines.append([(" " * pad + start + " " * gap1 + middle + " " * gap2 + end, None)])
    return lines


def series_of(point: Any, by: str | None) -> str:
    """The series a point belongs to: its type, or with --by its value of that key."""
    if by is None:
        return str(point.type)
    value = (point.metadata or {}).get(by)
    return "null" if value is None else str(value)


def series_names(data: Any) -> list[str]:
    """The chart's series in legend order: the types, or with --by the (top) values."""
    sel = data.selection
    by = getattr(sel, "by", None)
    if by is None:
        return list(sel.types or sorted({p.type for p in data.points}))
    if getattr(sel, "by_values", None) is not None:
        return list(sel.by_values)
    return sorted({series_of(p, by) for p in data.points})


def number_label(value: float) -> str:
    """A compact axis label."""
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def _line(x0: int, y0: int, x1: int, y1: int, plot: Any) -> None:
    """Bresenham's line between two dots."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        plot(x0, y0)
        if x0 == x1 and y0 == y1:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def print_chart(data: Any, tz: Any, *, terminal: bool) -> None:
    """show --type as a line chart above a compact summary table."""
    width = terminal_width()
    types = series_names(data)
    lines = chart_lines(data, tz, width=width, fancy=terminal)
    rows = _summary_rows(data, tz)
    by = getattr(data.selection, "by", None)
    headers = SUMMARY_HEADERS if by is None else [by, *SUMMARY_HEADERS[1:]]
    if by is not None:
        order = {name: i for i, name in enumerate(types)}
        rows.sort(key=lambda r: order.get(r[0], len(order)))
    hidden = max(0, getattr(data, "by_total", 0) - len(types)) if by is not None else 0
    more = f"{hidden} more {by} value{'s' if hidden != 1 else ''} not shown; see --top"
    if not terminal:
        print(window_line(data, tz))
        print("  ".join(types))
        for line in lines:
            print("".join(seg for seg, _ in line).rstrip())
        print(plain_table(headers, rows, SUMMARY_RIGHT))
        if hidden:
            print(more)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout)
    console.print(Text(window_line(data, tz), style="bold"))
    legend = Text()
    for i, t in enumerate(types):
        legend.append("● ", style=COLOURS[i % len(COLOURS)])
        legend.append(t + "   ")
    console.print(legend)
    for line in lines:
        text = Text(no_wrap=True, overflow="crop")
        for seg, who in line:
            text.append(seg, style=COLOURS[who % len(COLOURS)] if who is not None else "dim")
        console.print(text)
    table = Table(box=None, pad_edge=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in SUMMARY_RIGHT else "left")
    for row in rows:
        colour = COLOURS[types.index(row[0]) % len(COLOURS)] if row[0] in types else ""
        table.add_row(Text(row[0], style=colour), *row[1:])
    console.print(table)
    if hidden:
        console.print(Text(more, style="dim"))
