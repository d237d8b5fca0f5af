"""Terminal charts and sparklines: braille line charts and block-character trends (pure text)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from analytics_cli.engines.shapes import NONE_LABEL

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


def nice_step(raw: float) -> float:
    """The smallest step of the 1-2-5 series (…, 0.5, 1, 2, 5, 10, …) at least ``raw``."""
    import math

    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw * (1 - 1e-9):
            return factor * power
    return 10 * power  # pragma: no cover - the loop ends at 10


def y_ticks(low: float, high: float, target: int = 4) -> list[float]:
    """Round ticks (a 1-2-5 step) from a multiple of the step at or below ``low`` to one at or
    above ``high``: at most about ``target`` + 1 of them, covering both."""
    import math

    if high < low:
        low, high = high, low
    if high == low:
        low, high = (low - 1, high + 1) if low < 0 or low >= 1 else (0.0, max(1.0, high + 1))
    step = nice_step((high - low) / target)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    count = round((last - first) / step)
    return [first + i * step for i in range(count + 1)]


def tick_label(value: float, step: float) -> str:
    """A tick's text with as many decimals as the step needs (no float noise)."""
    import math

    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


# x-axis steps: each a length in seconds, and whether its ticks are calendar days.
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
X_STEPS = (
    *(m * _MINUTE for m in (1, 2, 5, 10, 15, 30)),
    *(h * _HOUR for h in (1, 2, 3, 6, 12)),
    *(d * _DAY for d in (1, 2, 7, 14, 28, 91, 182, 364)),
)


def x_ticks(since: Any, until: Any, tz: Any, cols: int) -> list[tuple[int, str]]:
    """Time ticks at round local times (whole minutes, hours, days) as (column, label): as
    many as fit in ``cols`` columns with two blanks between labels; no seconds. A tick at
    local midnight is labelled with its date, others with their time of day."""
    from datetime import datetime, timedelta

    start, end = since.astimezone(tz), until.astimezone(tz)
    span = max((end - start).total_seconds(), 1.0)
    long_dates = start.year != end.year
    day_format = "%Y-%m-%d" if long_dates else "%m-%d"
    midnight = datetime(start.year, start.month, start.day, tzinfo=start.tzinfo)
    for step in X_STEPS:
        ticks: list[tuple[int, str]] = []
        if step < _DAY:
            moment = midnight
            while moment < start:
                moment += timedelta(seconds=step)
        else:
            moment = midnight if midnight >= start else midnight + timedelta(days=1)
        while moment <= end:
            local = moment.astimezone(tz)
            at_midnight = local.hour == 0 and local.minute == 0
            label = local.strftime(day_format if at_midnight or step >= _DAY else "%H:%M")
            col = int((moment - start).total_seconds() / span * (cols - 1))
            ticks.append((col, label))
            moment += timedelta(seconds=step)
        width = max((len(label) for _, label in ticks), default=0) + 2
        # Evenly spaced labels need ``width`` columns each; the last may end at the edge.
        if len(ticks) <= 1 or min(b[0] - a[0] for a, b in pairwise(ticks)) >= width:
            return ticks
    return []


def chart_lines(
    data: Any, tz: Any, *, width: int, height: int = CHART_HEIGHT, fancy: bool = True
) -> list[list[tuple[str, int | None]]]:
    """A braille line chart of the points: lines of (text, series index or None) segments.

    The y axis has round ticks (a 1-2-5 step) covering the points and, when the summaries
    are given, every series' min and max; the x axis is labelled at round local times.
    """
    sel = data.selection
    types = series_names(data)
    by = getattr(sel, "by", None)
    values = [float(p.count) for p in data.points]
    for s in getattr(data, "summaries", []) or []:
        values += [float(s.min), float(s.max)]
    ticks = y_ticks(min(values), max(values)) if values else y_ticks(0.0, 1.0)
    low, high = ticks[0], ticks[-1]
    step_y = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    labels_y = [tick_label(t, step_y) for t in ticks]
    label_w = max(len(s) for s in labels_y)
    cols = max(10, width - label_w - 2)
    dots_x, dots_y = cols * 2, height * 4
    grid = [[0] * cols for _ in range(height)]
    owner: list[list[int | None]] = [[None] * cols for _ in range(height)]
    t0 = sel.since.timestamp()
    span = max(sel.until.timestamp() - t0, 1.0)
    step = (sel.bucket or data.interval).total_seconds()

    def dot_y(value: float) -> int:
        return round((value - low) / (high - low) * (dots_y - 1))

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
            y = dot_y(float(p.count))
            # Join neighbours with a line; leave missing slots visible as breaks.
            if previous is not None and ts - previous[2] <= step * 1.5:
                _line(previous[0], previous[1], x, y, lambda a, b, w=who: plot(a, b, w))
            else:
                plot(x, y, who)
            previous = (x, y, ts)
    # Each tick labels the row that holds its value's dot.
    row_labels = {
        (dots_y - 1 - dot_y(t)) // 4: text for t, text in zip(ticks, labels_y, strict=True)
    }
    axis, corner, rule, mark = ("┤", "└", "─", "┬") if fancy else ("|", "+", "-", "+")
    lines: list[list[tuple[str, int | None]]] = []
    for r in range(height):
        label = row_labels.get(r, "")
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
    xticks = x_ticks(sel.since, sel.until, tz, cols)
    rule_line = [rule] * cols
    text = [" "] * cols
    for col, label in xticks:
        rule_line[col] = mark
        # Centred under its tick, kept inside the plot's width.
        left = min(max(0, col - len(label) // 2), cols - len(label))
        text[left : left + len(label)] = list(label)
    pad = " " * (label_w + 1)
    lines.append([(pad + corner + "".join(rule_line), None)])
    lines.append([(pad + " " + "".join(text).rstrip(), None)])
    return lines


def series_of(point: Any, by: str | None) -> str:
    """The series a point belongs to: its type, or with --by its value of that key."""
    if by is None:
        return str(point.type)
    value = (point.metadata or {}).get(by)
    return NONE_LABEL if value is None else str(value)


def series_names(data: Any) -> list[str]:
    """The chart's series in legend order: the types, or with --by the (top) values."""
    sel = data.selection
    by = getattr(sel, "by", None)
    if by is None:
        return list(sel.types or sorted({p.type for p in data.points}))
    if getattr(sel, "by_values", None) is not None:
        return [NONE_LABEL if v is None else str(v) for v in sel.by_values]
    return sorted({series_of(p, by) for p in data.points})


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
