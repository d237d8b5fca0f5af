"""Rendering: every report, table and message text of the commands (data in, text out)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from analytics_cli.charts import COLOURS, chart_lines, resample, series_names, sparkline
from analytics_cli.console import (
    Output,
    Step,
    stderr_is_terminal,
    stdout_is_terminal,
    terminal_width,
)
from analytics_cli.timeutil import MAX_DURATION, format_duration, iso, utcnow, when, zone_name

if TYPE_CHECKING:
    from analytics_cli.anomalies import AnomalyReport, Finding
    from analytics_cli.check import CheckReport
    from analytics_cli.config import MetricSpec, Settings
    from analytics_cli.cycle import BackfillReport, CycleReport
    from analytics_cli.history import ShowData, Span, Streamed
    from analytics_cli.status import StatusReport
    from analytics_cli.store.partitions import Retention
    from analytics_cli.store.rollup import Reach

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


def collect_report(report: CycleReport, out: Output, *, as_json: bool) -> None:
    """A cycle's outcome: with --json the report on stdout, and always the lines on stderr."""
    if as_json:
        # Through the console: a metric's error may quote a password the tool was never
        # given (a server echoing a connection string), and its shape is scrubbed too.
        out.write(json.dumps(report.to_dict(), indent=2) + "\n")
    print_collect_report(report, out, show_metrics=not as_json)


def print_collect_report(report: CycleReport, out: Output, *, show_metrics: bool = True) -> None:
    """Write a cycle's outcome to stderr: a table on a terminal, logfmt-like lines otherwise."""
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
                if r.slot is not None:
                    fields["metric_slot"] = iso(r.slot)
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
    if report.replayed_rows:
        summary["spooled_written"] = report.replayed_rows
    if report.spooled_rows is not None:
        summary["spooled"] = report.spooled_rows
    if report.caught_up:
        summary["caught_up"] = report.caught_up
    if report.note:
        summary["note"] = report.note
    verb = "dry-run" if report.dry_run else "collect"
    if json_logs:
        out.line("info", f"{verb} done", event="summary", **summary)
    else:
        out.line("info", f"{verb} " + _logfmt(summary))


def backfill_report(report: BackfillReport, out: Output) -> None:
    """A backfill's summary line on stderr, and one line per metric that failed at a slot."""
    for r in report.failed:
        where = iso(r.slot) if r.slot is not None else "?"
        source = f" (source {r.source})" if r.source else ""
        out.warn(f"backfill: {r.type}{source} at {where} failed: {r.error}")
    summary = {
        "since": iso(report.since),
        "until": iso(report.until),
        "slots": report.slots,
        "written": report.written,
        "present": report.present,
        "busy": report.busy,
        "failed": len(report.failed),
    }
    if out.json_logs:
        out.line("info", "backfill done", event="backfill", **summary)
    else:
        out.line("info", "backfill " + _logfmt(summary))


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
    from analytics_cli.charts import spark_width

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
    from analytics_cli.charts import SPARK_WIDTH

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


# ---------------------------------------------------------------------------- export


def exported(out: Output, rows: int, output: Any) -> None:
    """After ``export --output``: how many rows the file holds."""
    if output is not None:
        out.info(f"exported {rows} rows to {output}")


# ---------------------------------------------------------------------------- db, config


def report_written(out: Output, path: Any, metrics: int) -> None:
    """The line after ``report --html``."""
    out.info(f"wrote the report of {metrics} metric(s) to {path}")


def db_init(out: Output, table: str, created: bool) -> None:
    """What ``db init`` did."""
    state = "created" if created else "already exists"
    out.info(f"table {table}: {state}")


def migrated(out: Output, table: str, done: Any) -> None:
    """What ``db migrate --partition`` did (``done``: a migrate.Migrated)."""
    if done.already:
        out.info(f"table {table}: already partitioned ({done.partitions} partitions)")
        return
    out.info(
        f"table {table}: partitioned by month ({done.partitions} partitions); "
        f"{done.rows} rows copied in {done.batches} batches, count and checksum equal"
    )


def starter_written(out: Output, path: Any) -> None:
    """After ``config init``: where the file is and how to check it."""
    out.info(f"wrote {path}; check it with: analytics-cli -c {path} config check")


def config_text(settings: Settings, toml: str) -> str:
    """``config show``: where each part came from, as comments above the effective TOML."""
    lines = [f"# config file: {settings.path or 'none (built-in defaults)'}"]
    if settings.embedded:
        lines.append("# connection: the embedded PostgreSQL (no connection string set)")
    else:
        if settings.sources:
            names = ", ".join(s.name for s in settings.sources)
            lines.append(f"# sources: {names} ([[source]] tables)")
        else:
            lines.append(f"# source dsn from: {settings.source_dsn_origin}")
        lines.append(f"# store dsn from: {settings.store_dsn_origin}")
    return "\n".join(lines) + "\n\n" + toml


def check_text(settings: Settings, report: CheckReport) -> str:
    """``config check``: where it connected, every metric's value, and the plans with --explain."""
    from analytics_cli.db import describe
    from analytics_cli.metrics import MetricFailure

    assert settings.source_dsn is not None and settings.store_dsn is not None
    state = "exists" if report.table_exists else "absent, the first collect creates it"
    lines = [
        f"config: {settings.path or 'none (built-in defaults)'}",
        f"source: {describe(settings.source_dsn)} (from {settings.source_dsn_origin})"
        if not settings.sources
        else "source: "
        + ", ".join(f"{s.name} ({describe(s.dsn or '')})" for s in settings.sources),
        f"store:  {describe(settings.store_dsn)} (from {settings.store_dsn_origin})",
        f"table:  {settings.table} ({state})",
        f"slot:   {iso(report.slot)}",
        "",
    ]
    rows = []
    for o in report.outcomes:
        if isinstance(o, MetricFailure):
            rows.append(("FAILED", o.type, "-", o.error))
        else:
            # A dimensional or per-source row names its metadata: type {"location": "Lobby"}.
            name = (
                f"{o.type} {json.dumps(o.metadata, ensure_ascii=False)}" if o.metadata else o.type
            )
            rows.append(("ok", name, format_count(o.count), iso(report.collected_at)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    for r in rows:
        lines.append("  ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]))
    failed = report.failed
    lines.append("")
    lines.append(f"{len(rows) - failed} metrics ok, {failed} failed; nothing was written")
    lines += _grant_lines(settings, report)
    if report.plans:
        lines += ["", "plans (EXPLAIN ANALYZE, read-only; the tool never creates indexes):"]
        for plan in report.plans:
            if plan.error:
                lines.append(f"  {plan.type}: cannot explain: {plan.error}")
                continue
            lines.append(f"  {plan.type}: cost {plan.cost:,.1f}, {plan.time_ms:,.1f} ms")
            for scan in plan.scans:
                lines.append(
                    f"    sequential scan on {scan.table!r} ({scan.rows:,} rows)"
                    + (f" filter {scan.filter}" if scan.filter else "")
                )
                if scan.suggestion:
                    lines.append(f"    index that would help: {scan.suggestion};")
    return "\n".join(lines) + "\n"


def _grant_lines(settings: Settings, report: CheckReport) -> list[str]:
    """Each use of the store the account lacks a privilege for, with the GRANT that gives it."""
    from analytics_cli.db import grant_hint

    lacking = [(use, needs, missing) for use, needs, missing in report.grants if missing]
    if not lacking:
        return []
    lines = ["", f"store privileges missing on {settings.table}:"]
    width = max(len(use) for use, _, _ in lacking)
    for use, needs, missing in lacking:
        if needs == ("CREATE",):
            lines.append(
                f"  {use.ljust(width)}  CREATE in the table's schema: run "
                "'analytics-cli db init' once as a role that has it"
            )
        else:
            hint = grant_hint(use, ", ".join(missing), settings.table, settings.store_dsn)
            lines.append(f"  {use.ljust(width)}  {hint}")
    return lines


def check_failed(out: Output, report: CheckReport) -> None:
    """The error line of a config check in which some metrics failed or collect cannot write."""
    if report.cannot_collect:
        out.error(
            f"the store account lacks {' and '.join(report.cannot_collect)}: collect would fail"
        )
    if report.failed:
        out.error(f"{report.failed} metric(s) failed")


# ---------------------------------------------------------------------------- metrics


def _every(m: MetricSpec) -> str:
    return format_duration(m.every) if m.every is not None else "interval"


def metrics_text(
    every: Sequence[MetricSpec], enabled: set[str], *, show_sql: bool, as_json: bool
) -> str:
    """``metrics``: a table of every metric, or each one's SQL, or the list as JSON.

    A built-in shows its text for each engine; a custom metric runs as written, in the
    dialect of its sources. A metric filled by a [[query]] shows that query.
    """
    if as_json:
        items = [
            {
                "type": m.type,
                "kind": "builtin" if m.builtin else "custom",
                "enabled": m.type in enabled,
                "description": m.description,
                **({"every_seconds": int(m.every.total_seconds())} if m.every else {}),
                **({"backfill": True} if m.backfill else {}),
                **({"query": m.query} if m.query else {}),
                **({"dimensions": list(m.dimensions)} if m.dimensions else {}),
                **({"sources": list(m.sources)} if m.sources is not None else {}),
                **({"sql": m.sql} if show_sql and m.http is None else {}),
                **(
                    {"sql_by_engine": {"postgresql": m.sql, **dict(m.dialects)}}
                    if show_sql and m.builtin and m.http is None
                    else {}
                ),
                **({"http": {"url": m.http.url, "path": m.http.path}} if m.http else {}),
            }
            for m in every
        ]
        return json.dumps(items, indent=2) + "\n"
    if show_sql:
        blocks = []
        for m in every:
            notes = ["builtin" if m.builtin else "custom"]
            notes.append("enabled" if m.type in enabled else "disabled")
            if m.every is not None:
                notes.append(f"every {_every(m)}")
            if m.query is not None:
                notes.append(f"query {m.query}")
            if m.http is not None:
                text = f"GET {m.http.url}\n{m.http.path}"
            elif m.builtin:
                texts = [("postgresql", m.sql), *m.dialects]
                text = "\n".join(f"-- on {engine}:\n{sql.strip()}" for engine, sql in texts)
            else:
                text = m.sql.strip()
            blocks.append(f"-- {m.type} ({', '.join(notes)}): {m.description}\n{text}\n")
        return "\n".join(blocks)
    rows = [("type", "kind", "enabled", "every", "description")]
    rows += [
        (
            m.type,
            "builtin" if m.builtin else "custom",
            "yes" if m.type in enabled else "no",
            _every(m),
            m.description,
        )
        for m in every
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return (
        "\n".join(
            "  ".join([*(r[i].ljust(widths[i]) for i in range(4)), r[4]]).rstrip() for r in rows
        )
        + "\n"
    )


# ---------------------------------------------------------------------------- status


def format_age(now: datetime, then: datetime | None) -> str:
    """How long ago, in whole seconds and the largest units (``1h30m``)."""
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    if seconds <= 0:
        return "0s"
    return format_duration(timedelta(seconds=seconds))


def status_text(report: StatusReport, *, as_json: bool) -> str:
    """The status report as aligned plain text, or as JSON."""
    if as_json:
        return json.dumps(report.to_dict(), indent=2) + "\n"
    header = ("metric", "latest slot", "age", "missing (24h)", "enabled")
    rows = [
        (
            m.type,
            iso(m.latest) if m.latest else "-",
            format_age(report.now, m.latest),
            # No slot before the current one yet: nothing to count, not "0 of 0 missing".
            f"{len(m.missing)}/{m.expected}" if m.expected else "-",
            "yes" if m.enabled else "no",
        )
        for m in report.metrics
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"table {report.table}, interval {format_duration(report.interval)}, now {iso(report.now)}",
        "",
    ]
    for r in [header, *rows] if report.store_error is None else []:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
    for m in report.metrics:
        if m.stale:
            lines.append(f"{m.type}: stale for its schedule (every {_every_of(m, report)})")
    if not report.metrics:
        lines.append("no history yet: nothing is stored; run 'analytics-cli collect'")
    elif all(m.expected == 0 for m in report.metrics if m.enabled):
        lines.append(
            "no history yet before the current slot: missing slots are counted from the next one"
        )
    fillable = [m.type for m in report.metrics if m.missing and m.backfill]
    if fillable:
        lines.append(
            f"missing slots of {', '.join(fillable)} can be computed: "
            "analytics-cli collect --backfill 1d"
        )
    lines += spool_lines(report)
    if report.store_error is not None:
        lines.append("store: cannot be read (the error follows on stderr)")
        return "\n".join(lines) + "\n"
    if report.table_exists:
        lines.append(retention_line(report.retention))
        lines.append(rollups_line(report.retention, report.rollups))
    newest = report.newest
    verdict = "STALE" if report.stale else "ok"
    if newest is None:
        lines.append(f"newest row: none (max age {format_duration(report.max_age)}): {verdict}")
    else:
        lines.append(
            f"newest row: {iso(newest)} ({format_age(report.now, newest)} ago, "
            f"max age {format_duration(report.max_age)}): {verdict}"
        )
    return "\n".join(lines) + "\n"


def spool_lines(report: StatusReport) -> list[str]:
    """What waits in the local spool: this store's cycles, other stores' files, files that
    cannot be replayed and files set aside."""
    lines = []
    if report.spooled:
        known = [slot for slot, _ in report.spooled if slot is not None]
        oldest = f", oldest {iso(min(known))}" if known else ""
        lines.append(
            f"spool: {len(report.spooled)} slot(s) waiting in {report.spool_dir}{oldest}: "
            "the next run that reaches the store writes them"
        )
    for path, store in report.spool_foreign:
        lines.append(f"spool: {path} is for another store ({store}): not replayed here")
    if report.spool_foreign:
        from analytics_cli.spool import DROP_COMMAND

        lines.append(f"spool: remove the other stores' files with: {DROP_COMMAND}")
    for path, why in report.spool_unreadable:
        lines.append(f"spool: {path} cannot be replayed ({why}): the next run sets it aside")
    if report.spool_rejected:
        lines.append(
            f"spool: {len(report.spool_rejected)} file(s) set aside in "
            f"{report.spool_dir}/rejected (never replayed): read the warnings, then delete them"
        )
    return lines


def future_rows(out: Output, report: StatusReport) -> None:
    """One warning when some metric has rows dated after now: they are not taken as fresh."""
    ahead = {m.type: m.future for m in report.metrics if m.future is not None}
    if ahead:
        out.warn(
            f"rows dated in the future (up to {iso(max(ahead.values()))}) of "
            f"{', '.join(ahead)}: freshness is judged by the newest row up to now",
            types=list(ahead),
        )


def rollups_line(r: Retention | None, reach: Reach | None) -> str:
    """The hourly and daily rollups' reach (status)."""
    if r is None:
        return "rollups: do not apply to the iR Engine's table (its rows are read)"
    if reach is None:
        return "rollups: none (analytics-cli db init creates them)"
    if not reach.built:
        return "rollups: not built yet (analytics-cli db rollup --rebuild builds them)"
    hourly = iso(reach.hourly) if reach.hourly else "none"
    daily = iso(reach.daily) if reach.daily else "none"
    return f"rollups: oldest hourly bucket {hourly}; oldest daily bucket {daily}"


def retention_line(r: Retention | None) -> str:
    """The store's reach in time: oldest row, and its monthly partitions."""
    if r is None:
        return "retention: partitions and partition pruning do not apply to the iR Engine's table"
    oldest = iso(r.oldest) if r.oldest else "none"
    if not r.partitioned:
        return (
            f"retention: oldest row {oldest}; not partitioned "
            "(analytics-cli db migrate --partition converts it)"
        )
    span = f", {r.first:%Y-%m} to {r.last:%Y-%m}" if r.first and r.last else ""
    return f"retention: oldest row {oldest}; {r.months} monthly partitions{span}"


def status_with_anomalies(
    report: StatusReport, anomalies: AnomalyReport | None, *, as_json: bool
) -> str:
    """The status report, followed by the anomaly checks when they were asked for."""
    if anomalies is None:
        return status_text(report, as_json=as_json)
    if as_json:
        doc = report.to_dict()
        doc["anomalies"] = anomalies.to_dict()
        doc["exit_code"] = max(report.exit_code, anomalies.exit_code)
        return json.dumps(doc, indent=2) + "\n"
    return status_text(report, as_json=False) + "\n" + anomaly_text(anomalies)


def anomaly_text(anomalies: AnomalyReport) -> str:
    """One row per metric: latest value, the range its history expects, the verdict."""
    from analytics_cli.anomalies import expected_range

    headers = ["metric", "latest", "at", "expected", "verdict"]
    rows = []
    for c in anomalies.checks:
        verdict = ", ".join(f.kind for f in c.findings) or ("ok" if not c.note else c.note)
        rows.append(
            [
                c.type,
                number(c.value),
                iso(c.at) if c.at else "-",
                expected_range(c.low, c.high),
                verdict,
            ]
        )
    lines = [
        "anomalies: latest value against the same time of week "
        f"(median ± {anomaly_settings()}), and the configured limits",
        "",
        plain_table(headers, rows, {1}),
        f"anomalies: {len(anomalies.findings)} finding(s)",
    ]
    return "\n".join(lines) + "\n"


def anomaly_settings() -> str:
    """The method's settings in a few words."""
    from analytics_cli import anomalies as a

    return (
        f"{a.THRESHOLD:g} × max(1.4826 MAD, {a.POISSON:g} √median, {a.FLOOR:g} × usual level), "
        f"values within "
        f"{format_duration(a.NEAR)} over {a.WEEKS} weeks, {a.MIN_WEEKS} needed"
    )


def finding_line(finding: Finding) -> str:
    """One finding as one line: metric, value, slot, expected range, why."""
    return (
        f"{finding.type} = {number(finding.value)} at {iso(finding.at)}, expected "
        f"{finding.expected}: {finding.kind}, {finding.why}"
    )


def anomaly_findings(out: Output, anomalies: AnomalyReport) -> None:
    """Each finding as one stderr line (``anomaly: …``), with its fields in JSON logs."""
    for finding in anomalies.findings:
        out.line("anomaly", finding_line(finding), **finding.to_dict())


def _every_of(m: Any, report: StatusReport) -> str:
    return format_duration(m.every or report.interval)


def stale_reason(out: Output, report: StatusReport) -> None:
    """Why the store is stale, as the error line of ``status`` (nothing when fresh)."""
    if not report.stale:
        return
    newest = report.newest
    if not report.table_exists:
        out.error(f"table {report.table} does not exist: nothing was collected yet")
    elif newest is None:
        out.error(f"table {report.table} holds no rows")
    else:
        out.error(
            f"stale: the newest row is {format_age(report.now, newest)} old, "
            f"older than {format_duration(report.max_age)}"
        )


# ---------------------------------------------------------------------------- prune


def prune_scope(cutoff: datetime, table: str) -> str:
    """Which rows a prune deletes, in words."""
    return f"older than {iso(cutoff)} from table {table}"


def prune_preview(todo: int, scope: str) -> str:
    """``prune --dry-run``: what would go."""
    return f"would delete {todo} rows {scope}\n"


def pruned(deleted: int, batches: int, scope: str, *, dropped: int = 0) -> str:
    """What a prune deleted, in how many transactions (and whole partitions dropped)."""
    parts = f"{dropped} partition{'' if dropped == 1 else 's'} dropped, " if dropped else ""
    return (
        f"deleted {deleted} rows {scope} ({parts}{batches} batch{'' if batches == 1 else 'es'})\n"
    )


# ---------------------------------------------------------------------------- demo


def demo_scope(settings: Settings, days: int) -> str:
    """What the demo is about to write on a configured database, for its question."""
    from analytics_cli.db import describe

    return (
        f"the demo creates the iR Engine platform tables in {describe(settings.source_dsn or '')} "
        f"and writes {days} days of collected history to table {settings.table} "
        f"in {describe(settings.store_dsn or '')}"
    )


DEMO_NEXT = """
Next, try:
  analytics-cli show                             the latest value and trend of every metric
  analytics-cli show activeInstances --since 7d  a chart of one metric
  analytics-cli export --csv > analytics.csv     every stored row, as CSV
  analytics-cli report --html report.html        one HTML page to share: headline and charts
  analytics-cli collect                          one more cycle now, as cron runs it
  analytics-cli config init                      write a config file for your own platform

status --anomalies judges each latest value against 3 weeks or more of history:
  analytics-cli demo --days 22                   three weeks and a day of history (2-4 min)
  analytics-cli status --anomalies               is each latest value in its usual range?
"""


def demo_next_text(*, charts: bool) -> str:
    """The demo's closing lines; without matplotlib the report line starts with its install."""
    if charts:
        return DEMO_NEXT
    from analytics_cli.errors import install_line

    report = "analytics-cli report --html report.html"
    return DEMO_NEXT.replace(
        f"  {report}        one HTML page to share: headline and charts\n",
        f"  {report}        one HTML page to share: headline and charts,\n"
        f"    after: {install_line('report')}\n",
    )


@contextmanager
def demo_progress(out: Output, unit: str) -> Iterator[Any]:
    """The demo's progress callback (done, total, report): a bar, quarter lines, or None."""
    verb = "collected" if unit == "slots" else "done"
    with out.steps("demo", unit, verb) as step:
        yield None if step is None else _demo_step(step)


def _demo_step(step: Step) -> Any:
    def update(done: int, total: int, report: Any) -> None:
        step(done, total, f" {report.slot:%a %d %b %H:%M}" if report is not None else "")

    return update


def demo_summary(out: Output, result: Any, seed: int) -> None:
    """The line after the demo's last slot: how many, how long, what the platform holds."""
    rows = ", ".join(f"{n} {t}" for t, n in result.rows.items() if n)
    out.info(
        f"demo: {result.slots} slots collected in {result.seconds:.1f}s "
        f"(seed {seed}; platform rows: {rows})"
    )


def demo_next(out: Output, result: Any) -> None:
    """What to try after the demo, and a warning when some of its metrics failed."""
    import importlib.util

    try:
        charts = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        charts = False
    print(demo_next_text(charts=charts), end="")
    if result.failed:
        out.warn(f"{result.failed} metric results failed; see the table above")
