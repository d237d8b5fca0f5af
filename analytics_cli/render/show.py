"""What ``show`` draws: the overview with sparklines, a table of points, a chart."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from analytics_cli.console import Output, stdout_is_terminal, terminal_width
from analytics_cli.render.charts import (
    COLOURS,
    SPARK_WIDTH,
    chart_lines,
    resample,
    series_names,
    spark_width,
    sparkline,
)
from analytics_cli.render.text import number, plain_table
from analytics_cli.timeutil import MAX_DURATION, format_duration, utcnow, when, zone_name

if TYPE_CHECKING:
    from analytics_cli.history import ShowData, Span, Streamed

# rich is imported inside the functions that draw for a terminal: plain output (cron, pipes)
# never pays for its import.


TABLE_TARGET = 60
STREAMED = ("json", "csv")
DAY = timedelta(days=1)


@dataclass(frozen=True)
class ShowView:
    """How ``show`` draws: the mode, whether for a terminal, and the sizes the data must fit."""

    mode: str
    terminal: bool
    series: bool
    summary: bool
    target: int
    spark_width: int

    @property
    def streamed(self) -> bool:
        """True for json and csv: every row streamed straight from the store."""
        return self.mode in STREAMED


def show_view(
    fmt: str | None, types: tuple[str, ...] | None, span: timedelta, interval: timedelta
) -> ShowView:
    """Pick show's mode (a chart of types on a terminal, else a table) and its point targets."""
    terminal = stdout_is_terminal()
    mode = fmt or ("chart" if types and terminal else "table")
    if mode == "chart" and not types:
        mode = "table"  # the overview's sparklines are the chart of every type
    # A chart holds two points per column (braille); a table stays readable at TABLE_TARGET.
    target = (terminal_width() - 10) * 2 if mode == "chart" else TABLE_TARGET
    return ShowView(
        mode=mode,
        terminal=terminal,
        series=bool(types),
        summary=not types or mode == "chart",
        target=target,
        spark_width=spark_width(span, interval) if terminal and not types else 0,
    )


def no_table(out: Output, table: str) -> None:
    """The store has no table yet: say how to fill it (exit 0)."""
    out.info(f"no data yet: the store has no table {table} (run 'analytics-cli collect' first)")


def show_streamed(out: Output, streamed: Streamed, tz: tzinfo) -> None:
    """After ``show --format json/csv``: when the window held nothing, where the data is."""
    if streamed.rows == 0:
        out.info("no data in this window")
        _where_data(out, streamed.stored, tz)


def show(out: Output, data: ShowData, tz: tzinfo, view: ShowView) -> None:
    """Draw show's data: a chart, a table of points, or the overview of every type."""
    if not data.points and not data.summaries:
        out.info(f"no data in this window ({window_line(data, tz)})")
        _where_data(out, data.stored, tz)
        return
    if view.mode == "chart":
        print_chart(data, tz, terminal=view.terminal)
    elif view.series:
        print_series(data, tz, terminal=view.terminal)
    else:
        print_overview(data, tz, terminal=view.terminal)


def _where_data(out: Output, stored: Span | None, tz: tzinfo) -> None:
    if stored is not None:
        out.info(f"{stored_text(stored, tz)}: try {since_hint(stored)}")


def stored_text(stored: Span, tz: tzinfo) -> str:
    """Where the asked types' history is, in words."""
    what = ", ".join(stored.types) if stored.types else "any metric"
    return (
        f"the newest stored slot of {what} is {when(stored.newest, tz)}, "
        f"the oldest {when(stored.oldest, tz)}"
    )


def since_hint(stored: Span, now: datetime | None = None) -> str:
    """The --since that shows the whole stored history (with --until now when it cut it off)."""
    now = now or utcnow()
    days = -(-(now - stored.oldest) // DAY)  # whole days, rounded up
    since = f"{days}d" if days * DAY <= MAX_DURATION else stored.oldest.date().isoformat()
    cut = stored.until is not None and stored.until <= stored.newest
    return f"--since {since}" + (" --until now" if cut else "")


def gaps(summary: Any, until: Any, interval: Any) -> int:
    """Missing slots of one type: slots from its first point in the window up to ``until``."""
    from analytics_cli.engines.reading import slot_count
    from analytics_cli.timeutil import floor_slot

    expected = slot_count(floor_slot(summary.first_at, interval), until, interval)
    return max(0, expected - int(summary.slots))


def window_line(data: Any, tz: Any) -> str:
    """One header line: window, bucket and zone."""
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
AT, POINTS, GAPS = 2, 6, 7
SPARK_MIN = 8
NAME_MIN = 8  # names are never cut shorter than this
# How show's summary table fits a narrow terminal, in order (the README lists it): the trend
# narrows to SPARK_MIN; ``at`` loses its year; ``points`` goes; then the trend, ``at`` and
# ``gaps`` go; only then are metric names cut. Each step: (dropped columns, short ``at``).
FIT_STEPS: tuple[tuple[frozenset[int], bool], ...] = (
    (frozenset(), False),
    (frozenset(), True),
    (frozenset({POINTS}), True),
    (frozenset({POINTS, AT}), True),
    (frozenset({POINTS, AT, GAPS}), True),
)
GAP = 2  # blanks between two columns


@dataclass(frozen=True)
class Fit:
    """The summary table as it fits a width: kept columns, short ``at``, trend width (0: none)."""

    columns: tuple[int, ...]
    short_at: bool
    trend: int
    names: int | None = None  # the width names are cut to (with …), None: whole


def fit_summary(rows: list[list[str]], width: int, *, trend: bool) -> Fit:
    """The first step of FIT_STEPS at which the table fits ``width`` (a trend of at least
    SPARK_MIN beside it first, then without one); the last step when none does."""

    def natural(columns: tuple[int, ...], short_at: bool) -> int:
        widths = [
            max([len(SUMMARY_HEADERS[i]), *(len(_cell(r, i, short_at)) for r in rows)])
            for i in columns
        ]
        return sum(widths) + GAP * (len(widths) - 1)

    tries = [(step, True) for step in FIT_STEPS[:3]] if trend else []
    tries += [(step, False) for step in FIT_STEPS]
    for (dropped, short_at), with_trend in tries:
        columns = tuple(i for i in range(len(SUMMARY_HEADERS)) if i not in dropped)
        room = width - natural(columns, short_at)
        if with_trend and room >= GAP + SPARK_MIN:
            return Fit(columns, short_at, min(SPARK_WIDTH, room - GAP))
        if not with_trend and room >= 0:
            return Fit(columns, short_at, 0)
    dropped, short_at = FIT_STEPS[-1]
    columns = tuple(i for i in range(len(SUMMARY_HEADERS)) if i not in dropped)
    others = natural(columns[1:], short_at) + GAP
    return Fit(columns, short_at, 0, names=max(NAME_MIN, width - others))


def _cell(row: list[str], i: int, short_at: bool) -> str:
    """One cell of a summary row; a short ``at`` drops the year (``12-06 05:30``)."""
    return row[i][5:] if i == AT and short_at and len(row[i]) > 5 else row[i]


def _fitted(rows: list[list[str]], fit: Fit) -> tuple[list[str], list[list[str]], set[int]]:
    headers = [SUMMARY_HEADERS[i] for i in fit.columns]
    right = {k for k, i in enumerate(fit.columns) if i in SUMMARY_RIGHT}
    cells = [[_cell(r, i, fit.short_at) for i in fit.columns] for r in rows]
    if fit.names is not None:
        for row in cells:
            if len(row[0]) > fit.names:
                row[0] = row[0][: fit.names - 1] + "…"
    return headers, cells, right


def _rich_summary(headers: list[str], right: set[int], cells: list[list[str]]) -> Any:
    """A borderless rich table (two blanks between columns), each column as wide as its
    widest cell (``fit_summary`` chose what fits)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False)
    for i, header in enumerate(headers):
        whole = max([len(header), *(len(row[i]) for row in cells if i < len(row))])
        table.add_column(
            header,
            justify="right" if i in right else "left",
            no_wrap=True,
            overflow="fold",
            min_width=whole,
            header_style="bold",
        )
    return table


def print_overview(data: Any, tz: Any, *, terminal: bool) -> None:
    """show without --type: one row per metric type, with a sparkline on a terminal."""
    rows = _summary_rows(data, tz)
    if not terminal:
        print(window_line(data, tz))
        print(plain_table(SUMMARY_HEADERS, rows, SUMMARY_RIGHT))
        return
    from rich.console import Console
    from rich.text import Text

    width = terminal_width()
    fit = fit_summary(rows, width, trend=True)
    headers, cells, right = _fitted(rows, fit)
    console = Console(file=sys.stdout, width=width)
    console.print(Text(window_line(data, tz), style="bold"))
    table = _rich_summary([*headers, "trend"] if fit.trend else headers, right, cells)
    for row, s in zip(cells, data.summaries, strict=True):
        trend = [f"[cyan]{sparkline(resample(data.sparklines.get(s.type, []), fit.trend))}[/]"]
        table.add_row(*row, *(trend if fit.trend else []))
    console.print(table)


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


def print_chart(data: Any, tz: Any, *, terminal: bool) -> None:
    """show --type as a line chart above a compact summary table."""
    width = terminal_width()
    types = series_names(data)
    lines = chart_lines(data, tz, width=width, fancy=terminal)
    rows = _summary_rows(data, tz)
    by = getattr(data.selection, "by", None)
    if by is not None:
        order = {name: i for i, name in enumerate(types)}
        rows.sort(key=lambda r: order.get(r[0], len(order)))
    hidden = max(0, getattr(data, "by_total", 0) - len(types)) if by is not None else 0
    more = f"{hidden} more {by} value{'s' if hidden != 1 else ''} not shown; see --top"
    if not terminal:
        headers = SUMMARY_HEADERS if by is None else [by, *SUMMARY_HEADERS[1:]]
        print(window_line(data, tz))
        print("  ".join(types))
        for line in lines:
            print("".join(seg for seg, _ in line).rstrip())
        print(plain_table(headers, rows, SUMMARY_RIGHT))
        if hidden:
            print(more)
        return
    from rich.console import Console
    from rich.text import Text

    fit = fit_summary(rows, width, trend=False)
    headers, cells, right = _fitted(rows, fit)
    if by is not None:
        headers[0] = by
    console = Console(file=sys.stdout, width=width)
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
    table = _rich_summary(headers, right, cells)
    for row in cells:
        colour = COLOURS[types.index(row[0]) % len(COLOURS)] if row[0] in types else ""
        table.add_row(Text(row[0], style=colour), *row[1:])
    console.print(table)
    if hidden:
        console.print(Text(more, style="dim"))
