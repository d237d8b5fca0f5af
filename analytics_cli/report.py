"""``report --html``: one self-contained HTML page of the stored history, a headline table and a
chart per metric (matplotlib SVG, inlined), that opens offline and prints."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics_cli import __version__, store
from analytics_cli.console import atomic_output
from analytics_cli.errors import MissingExtra
from analytics_cli.history import auto_bucket, check_types, store_connection
from analytics_cli.render import number
from analytics_cli.store.layout import selection
from analytics_cli.timeutil import floor_slot, format_duration, iso, when, zone_name

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config import Settings

# A chart of more points than this is bucketed (the bucket is named under it).
CHART_POINTS = 1500
DEFAULT_TOP = 5


@dataclass(frozen=True)
class MetricReport:
    """One metric over the window and the period before it."""

    type: str
    description: str
    every: timedelta
    summary: store.TypeSummary | None
    previous: store.TypeSummary | None
    gaps: int
    # The chart: label → points (one series, or the top --by values of a dimensional metric).
    series: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    bucket: timedelta | None = None
    by: str | None = None
    by_total: int = 0

    @property
    def change(self) -> Decimal | None:
        """Average over the window against the previous period's, in percent."""
        if self.summary is None or self.previous is None or self.previous.avg == 0:
            return None
        return (self.summary.avg - self.previous.avg) / abs(self.previous.avg) * 100


@dataclass
class ReportData:
    """Everything the page shows."""

    table: str
    since: datetime
    until: datetime
    generated: datetime
    interval: timedelta
    metrics: list[MetricReport] = field(default_factory=list)

    @property
    def previous_since(self) -> datetime:
        """Start of the previous period of the same length."""
        return self.since - (self.until - self.since)


def report_data(
    settings: Settings,
    *,
    since: datetime,
    until: datetime,
    generated: datetime,
    types: tuple[str, ...] | None = None,
    by: str | None = None,
    top: int = DEFAULT_TOP,
) -> ReportData:
    """Read the window, the previous period and the charts' points in one snapshot."""
    from analytics_cli.metrics import all_metrics

    specs = {m.type: m for m in all_metrics(settings)}
    data = ReportData(settings.table, since, until, generated, settings.interval)
    with store_connection(settings) as (conn, layout):
        base = selection(layout, store.Selection(settings.table, since, until, types))
        check_types(conn, settings.table, list(types) if types else None)
        current = {s.type: s for s in store.total_summaries(conn, base, settings.interval)}
        before = replace(base, since=data.previous_since, until=since)
        previous = {s.type: s for s in store.total_summaries(conn, before, settings.interval)}
        names = list(types) if types else sorted(current)
        for name in names:
            spec = specs.get(name)
            every = spec.every if spec is not None and spec.every else settings.interval
            summary = current.get(name)
            metric = MetricReport(
                name,
                spec.description if spec is not None else "",
                every,
                summary,
                previous.get(name),
                _gaps(summary, until, every),
            )
            if summary is not None:
                key = (
                    by
                    if by is not None
                    else (spec.dimensions[0] if spec and spec.dimensions else None)
                )
                metric = _chart(conn, base, metric, key, top, settings.interval)
            data.metrics.append(metric)
    return data


def _gaps(summary: store.TypeSummary | None, until: datetime, every: timedelta) -> int:
    """Slots of the metric's schedule missing from its first one in the window until the
    current slot (which may still be collecting)."""
    if summary is None:
        return 0
    end = floor_slot(until, every)
    expected = store.slot_count(floor_slot(summary.first_at, every), end, every)
    present = summary.slots - (1 if summary.latest_at >= end else 0)
    return max(0, expected - present)


def _chart(
    conn: psycopg.Connection[Any],
    base: store.Selection,
    metric: MetricReport,
    key: str | None,
    top: int,
    interval: timedelta,
) -> MetricReport:
    """The chart's series: the per-slot totals, or the top ``top`` values of ``key``."""
    assert metric.summary is not None
    sel = replace(base, types=(metric.type,))
    span = base.until - base.since if base.until and base.since else interval
    if key is not None and store.first_metadata(conn, sel, metric.type).get(key) is not None:
        by_sel = replace(sel, by=key)
        values, total = store.top_values(conn, by_sel, top)
        by_sel = replace(by_sel, by_values=tuple(v for v in values if v is not None))
        points = store.count_points(conn, by_sel)
        bucket = auto_bucket(span, points // max(len(values), 1), CHART_POINTS) or interval
        by_sel = replace(by_sel, bucket=bucket, agg="avg")
        series: dict[str, list[tuple[datetime, float]]] = {v: [] for v in values if v}
        for p in store.read_points(conn, by_sel):
            label = str((p.metadata or {}).get(key))
            series.setdefault(label, []).append((p.timestamp, float(p.count)))
        return replace(
            metric,
            series=series,
            bucket=bucket if bucket != interval else None,
            by=key,
            by_total=total,
        )
    bucket = auto_bucket(span, metric.summary.slots, CHART_POINTS) or interval
    line = [(p.timestamp, float(p.count)) for p in store.total_points(conn, sel, interval, bucket)]
    return replace(
        metric, series={metric.type: line}, bucket=bucket if bucket != interval else None
    )


def write_report(data: ReportData, path: Path, tz: tzinfo) -> None:
    """Write the page to ``path`` atomically: complete, or not at all."""
    text = report_html(data, tz)
    with atomic_output(path) as handle:
        handle.write(text.encode("utf-8"))


# ---------------------------------------------------------------------------- the page

STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1f2328; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
p.meta { color: #57606a; margin: .1rem 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #d0d7de; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #8c959f; font-weight: 600; }
td.up { color: #116329; } td.down { color: #a40e26; }
figure.chart { margin: 1.5rem 0; break-inside: avoid; page-break-inside: avoid; }
figure.chart figcaption { font-weight: 600; margin-bottom: .25rem; }
figure.chart figcaption span { font-weight: normal; color: #57606a; }
figure.chart svg { display: block; width: 100%; height: auto; }
p.empty { color: #57606a; font-style: italic; }
@page { size: A4; margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  h2 { break-after: avoid; page-break-after: avoid; }
  tr { break-inside: avoid; }
}
"""

# Nothing may leave the page: no fetch, no image, no font, no script from anywhere.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

HEADERS = ("metric", "latest", "at", "change", "min", "avg", "max", "slots", "gaps")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _change(metric: MetricReport) -> tuple[str, str]:
    """The change cell's text and class."""
    change = metric.change
    if change is None:
        return "-", ""
    text = f"{change:+.1f} %"
    return text, "up" if change > 0 else "down" if change < 0 else ""


def headline_rows(data: ReportData, tz: tzinfo) -> list[str]:
    """One table row per metric, each cell named by ``data-key`` (tests read them)."""
    rows = []
    for m in data.metrics:
        s = m.summary
        if s is None:
            cells = [("latest", "no data in the window", "")]
            cells += [(k, "-", "") for k in HEADERS[2:]]
        else:
            change, css = _change(m)
            cells = [
                ("latest", number(s.latest), ""),
                ("at", when(s.latest_at, tz), ""),
                ("change", change, css),
                ("min", number(s.min), ""),
                ("avg", number(s.avg), ""),
                ("max", number(s.max), ""),
                ("slots", str(s.slots), ""),
                ("gaps", str(m.gaps), ""),
            ]
        tds = "".join(
            f'<td data-key="{k}"{f" class={css!r}" if css else ""}>{_e(v)}</td>'
            for k, v, css in cells
        )
        rows.append(f'<tr data-type="{_e(m.type)}"><th scope="row">{_e(m.type)}</th>{tds}</tr>')
    return rows


def report_html(data: ReportData, tz: tzinfo) -> str:
    """The whole page: styles inline, every chart an inline SVG; no request leaves it."""
    span = format_duration(data.until - data.since)
    zone = zone_name(tz)
    window = f"{when(data.since, tz)} to {when(data.until, tz)} ({span})"
    previous = f"{when(data.previous_since, tz)} to {when(data.since, tz)}"
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in HEADERS)
    charts = []
    for index, m in enumerate(data.metrics):
        charts.append(_figure(data, m, tz, index))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="analytics-cli {_e(__version__)}">
<title>{_e(f"Metrics report: {data.table}, {window}")}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>Metrics report</h1>
<p class="meta" id="window">Window: {_e(window)}, times in {_e(zone)}.
Change compares each metric's average with the previous {_e(span)} ({_e(previous)}).</p>
<p class="meta" id="generated">Made {_e(when(data.generated, tz))} {_e(zone)}
({_e(iso(data.generated))}) by analytics-cli {_e(__version__)} from table {_e(data.table)}.</p>
</header>
<main>
<h2>Headline</h2>
<table id="headline">
<thead><tr>{head}</tr></thead>
<tbody>
{"".join(row + chr(10) for row in headline_rows(data, tz))}</tbody>
</table>
<p class="meta">A slot's value is the sum of its rows (all series of a dimensional metric, all
sources); latest, min, avg and max are over those values. Gaps: slots of the metric's schedule
missing since its first one in the window.</p>
<h2>Charts</h2>
{"".join(charts)}
</main>
</body>
</html>
"""


def _figure(data: ReportData, m: MetricReport, tz: tzinfo, index: int) -> str:
    caption = _e(m.type) + (f" <span>{_e(m.description)}</span>" if m.description else "")
    notes = []
    if m.by is not None:
        shown = len(m.series)
        notes.append(f"top {shown} of {m.by_total} {m.by} values by average")
    if m.bucket is not None:
        notes.append(f"averaged over {format_duration(m.bucket)} buckets")
    note = f'<p class="meta">{_e("; ".join(notes))}</p>' if notes else ""
    if not m.series:
        body = '<p class="empty">No data in the window.</p>'
        return f'<figure class="chart-empty" data-type="{_e(m.type)}"><figcaption>{caption}</figcaption>{body}</figure>\n'
    svg = chart_svg(m.series, data.since, data.until, tz, m.bucket or data.interval, index)
    return (
        f'<figure class="chart" data-type="{_e(m.type)}"><figcaption>{caption}</figcaption>'
        f"{svg}{note}</figure>\n"
    )


def require_charts() -> None:
    """MissingExtra (exit 2) before any work when matplotlib, which draws the charts, is absent."""
    import importlib.util

    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtra("matplotlib")


def chart_svg(
    series: dict[str, list[tuple[datetime, float]]],
    since: datetime,
    until: datetime,
    tz: tzinfo,
    step: timedelta,
    index: int,
) -> str:
    """One line chart as inline SVG text (matplotlib, no pyplot: no GUI backend, no state)."""
    import io

    try:
        import matplotlib
        from matplotlib import dates
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtra("matplotlib") from None
    settings: dict[Any, Any] = {
        "svg.fonttype": "none",  # text stays text: small, sharp, selectable
        "svg.hashsalt": f"analytics-cli-{index}",  # stable ids, distinct per chart
        "font.family": ["DejaVu Sans", "sans-serif"],
        "font.size": 9,
    }
    with matplotlib.rc_context(settings):
        fig = Figure(figsize=(9, 2.8), layout="constrained")
        ax = fig.add_subplot()
        for label, points in series.items():
            xs, ys = _broken(points, step)
            ax.plot(xs, ys, label=label, linewidth=1.3)
        ax.set_xlim(since, until)  # type: ignore[arg-type]
        locator = dates.AutoDateLocator(tz=tz)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        formatter = dates.ConciseDateFormatter(locator, tz=tz)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
        ax.grid(True, color="#d0d7de", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.margins(y=0.08)
        if len(series) > 1:
            # Above the plot, in a row: it never hides a line.
            ax.legend(
                loc="lower left",
                bbox_to_anchor=(0, 1),
                fontsize=8,
                frameon=False,
                ncols=min(len(series), 5),
            )
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _broken(points: list[tuple[datetime, float]], step: timedelta) -> tuple[list[Any], list[float]]:
    """The points with a NaN after each missing slot, so the line breaks at gaps."""
    xs: list[Any] = []
    ys: list[float] = []
    for i, (t, v) in enumerate(points):
        if i and t - points[i - 1][0] > step * 1.5:
            xs.append(points[i - 1][0] + step)
            ys.append(float("nan"))
        xs.append(t)
        ys.append(v)
    return xs, ys
