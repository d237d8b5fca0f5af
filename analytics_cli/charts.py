"""Terminal charts and sparklines: braille line charts and block-character trends (pure text)."""

from __future__ import annotations

from typing import Any

from analytics_cli.timeutil import when

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24
CHART_HEIGHT = 12
COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")
# Braille dot bits of one character cell, indexed [row][column] of the 4x2 dot grid.
_BRAILLE = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


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
