"""``report --html``: one self-contained HTML page of the stored history, a headline table and a
chart per metric (matplotlib SVG, inlined), that opens offline and prints."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics_cli import __version__
from analytics_cli.console import atomic_output
from analytics_cli.engines.base import Layout, Store
from analytics_cli.engines.reading import slot_count, total_points
from analytics_cli.engines.shapes import NONE_LABEL, Selection, TypeSummary
from analytics_cli.errors import MissingExtra
from analytics_cli.history import auto_bucket, check_types, reading_store
from analytics_cli.render.text import number
from analytics_cli.timeutil import floor_slot, format_duration, iso, when, zone_name

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings

# A chart of more points than this is bucketed (the bucket is named under it).
CHART_POINTS = 1500
# Without --since the window is the stored history, at most this long.
DEFAULT_SPAN = timedelta(days=30)
DEFAULT_TOP = 5


@dataclass(frozen=True)
class MetricReport:
    """One metric over the window and the period before it."""

    type: str
    description: str
    every: timedelta
    summary: TypeSummary | None
    previous: TypeSummary | None
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
    since: datetime | None,
    until: datetime,
    generated: datetime,
    types: tuple[str, ...] | None = None,
    by: str | None = None,
    top: int = DEFAULT_TOP,
) -> ReportData:
    """Read the window, the previous period and the charts' points in one snapshot.

    Without ``since`` the window starts at the oldest stored slot of the types (before
    ``until``), at most DEFAULT_SPAN back: a short history fills the charts' width.
    """
    from analytics_cli.metrics import all_metrics

    specs = {m.type: m for m in all_metrics(settings)}
    with reading_store(settings) as (found, layout):
        check_types(found, list(types) if types else None)
        if since is None:
            since = _default_since(found, layout, settings, types, until)
        data = ReportData(settings.table, since, until, generated, settings.interval)
        # A slot's value is the sum of its rows, in the headline and the charts alike.
        base = found.selection(layout, Selection(settings.table, since, until, types))
        base = replace(base, slot=settings.interval)
        current = {s.type: s for s in found.summaries(base, settings.interval)}
        before = replace(base, since=data.previous_since, until=since)
        previous = {s.type: s for s in found.summaries(before, settings.interval)}
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
                metric = _chart(found, base, metric, key, top, settings.interval)
            data.metrics.append(metric)
    return data


def _default_since(
    found: Store,
    layout: Layout,
    settings: Settings,
    types: tuple[str, ...] | None,
    until: datetime,
) -> datetime:
    """The oldest stored slot of ``types`` (all when None) within DEFAULT_SPAN before
    ``until``; ``until - DEFAULT_SPAN`` when none is stored there."""
    from analytics_cli.history import stored_span

    earliest = until - DEFAULT_SPAN
    sel = found.selection(layout, Selection(settings.table, earliest, until, types), say_gaps=False)
    span = stored_span(found, sel)
    if span is None or span.oldest >= until:
        return earliest
    return max(earliest, floor_slot(span.oldest, settings.interval))


def _gaps(summary: TypeSummary | None, until: datetime, every: timedelta) -> int:
    """Slots of the metric's schedule missing from its first one in the window until the
    current slot (which may still be collecting)."""
    if summary is None:
        return 0
    end = floor_slot(until, every)
    expected = slot_count(floor_slot(summary.first_at, every), end, every)
    present = summary.slots - (1 if summary.latest_at >= end else 0)
    return max(0, expected - present)


def _chart(
    found: Store,
    base: Selection,
    metric: MetricReport,
    key: str | None,
    top: int,
    interval: timedelta,
) -> MetricReport:
    """The chart's series: the per-slot totals, or the top ``top`` values of ``key``."""
    assert metric.summary is not None
    sel = replace(base, types=(metric.type,))
    span = base.until - base.since if base.until and base.since else interval
    if key is not None and found.first_metadata(sel, metric.type).get(key) is not None:
        by_sel = replace(sel, by=key)
        values, total = found.top_values(by_sel, top)
        by_sel = replace(by_sel, by_values=tuple(values))
        points = found.count_points(by_sel)
        bucket = auto_bucket(span, points // max(len(values), 1), CHART_POINTS) or interval
        by_sel = replace(by_sel, bucket=bucket, agg="avg")
        series: dict[str, list[tuple[datetime, float]]] = {
            NONE_LABEL if v is None else v: [] for v in values
        }
        for p in found.read_points(by_sel):
            value = (p.metadata or {}).get(key)
            label = NONE_LABEL if value is None else str(value)
            series.setdefault(label, []).append((p.timestamp, float(p.count)))
        return replace(
            metric,
            series=series,
            bucket=bucket if bucket != interval else None,
            by=key,
            by_total=total,
        )
    bucket = auto_bucket(span, metric.summary.slots, CHART_POINTS) or interval
    line = [(p.timestamp, float(p.count)) for p in total_points(found, sel, interval, bucket)]
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
td.up { color: #116329; } td.down { color: #a40e26; } td.na { color: #57606a; }
div.scroll { overflow-x: auto; }
figure.chart div.narrow { display: none; }
@media screen and (max-width: 40rem) {
  body { margin: 1rem auto; padding: 0 .5rem; font-size: 13px; }
  th, td { padding: .25rem .3rem; }
  td[data-key="at"], th.col-at, td[data-key="slots"], th.col-slots { display: none; }
  figure.chart div.wide { display: none; }
  figure.chart div.narrow { display: block; }
}
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
    """The change cell's text and class: ``n/a`` (explained under the table) without a
    previous average to compare with."""
    change = metric.change
    if change is None:
        return "n/a", "na"
    text = f"{change:+.1f} %"
    return text, "up" if change > 0 else "down" if change < 0 else ""


def has_previous(data: ReportData) -> bool:
    """True when some metric has data in the previous window: the change column is shown."""
    return any(m.previous is not None for m in data.metrics)


def headers(data: ReportData) -> tuple[str, ...]:
    """The headline's columns: without any previous data, no change column."""
    return HEADERS if has_previous(data) else tuple(h for h in HEADERS if h != "change")


def headline_rows(data: ReportData, tz: tzinfo) -> list[str]:
    """One table row per metric, each cell named by ``data-key`` (tests read them)."""
    rows = []
    keys = headers(data)
    for m in data.metrics:
        s = m.summary
        if s is None:
            cells = [("latest", "no data in the window", "")]
            cells += [(k, "-", "") for k in keys[2:]]
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
            cells = [c for c in cells if c[0] in keys]
        tds = "".join(
            f'<td data-key="{k}"{f" class={css!r}" if css else ""}>{_e(v)}</td>'
            for k, v, css in cells
        )
        rows.append(f'<tr data-type="{_e(m.type)}"><th scope="row">{_e(m.type)}</th>{tds}</tr>')
    return rows


def report_html(data: ReportData, tz: tzinfo) -> str:
    """The whole page: styles inline, every chart an inline SVG; no request leaves it."""
    zone = zone_name(tz)
    window = f"{_minute(data.since, tz)} to {_minute(data.until, tz)}"
    previous = f"{_minute(data.previous_since, tz)} to {_minute(data.since, tz)}"
    head = "".join(f'<th scope="col" class="col-{_e(h)}">{_e(h)}</th>' for h in headers(data))
    if has_previous(data):
        compare = (
            f"Change compares each metric's average with the window before, {previous} "
            "(n/a: no data there, or an average of 0)."
        )
    else:
        compare = (
            f"No change column: the store holds nothing from the window before ({previous}) "
            "to compare with."
        )
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
{_e(compare)}</p>
<p class="meta" id="generated">Made {_e(when(data.generated, tz))} {_e(zone)}
({_e(iso(data.generated))}) by analytics-cli {_e(__version__)} from table {_e(data.table)}.</p>
</header>
<main>
<h2>Headline</h2>
<div class="scroll">
<table id="headline">
<thead><tr>{head}</tr></thead>
<tbody>
{"".join(row + chr(10) for row in headline_rows(data, tz))}</tbody>
</table>
</div>
<p class="meta">A slot's value is the sum of its rows (all series of a dimensional metric, all
sources); latest, min, avg and max are over those values. Gaps: slots of the metric's schedule
missing since its first one in the window.</p>
<h2>Charts</h2>
{"".join(charts)}
</main>
</body>
</html>
"""


def _minute(moment: datetime, tz: tzinfo) -> str:
    """A window end as a date and a time to the minute (``2026-12-06 05:30``)."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


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
    step = m.bucket or data.interval
    # Two drawings: one for a page or a screen, one a phone can read without zooming.
    wide = chart_svg(m.series, data.since, data.until, tz, step, index)
    narrow = chart_svg(m.series, data.since, data.until, tz, step, index, narrow=True)
    return (
        f'<figure class="chart" data-type="{_e(m.type)}"><figcaption>{caption}</figcaption>'
        f'<div class="wide">{wide}</div><div class="narrow">{narrow}</div>{note}</figure>\n'
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
    *,
    narrow: bool = False,
) -> str:
    """One line chart as inline SVG text (matplotlib, no pyplot: no GUI backend, no state);
    ``narrow``: sized for a phone's width, with fewer ticks."""
    import io

    try:
        import matplotlib
        from matplotlib import dates
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtra("matplotlib") from None
    settings: dict[Any, Any] = {
        "svg.fonttype": "none",  # text stays text: small, sharp, selectable
        # Stable ids, distinct per drawing.
        "svg.hashsalt": f"analytics-cli-{index}{'-narrow' if narrow else ''}",
        "font.family": ["DejaVu Sans", "sans-serif"],
        "font.size": 9,
    }
    with matplotlib.rc_context(settings):
        fig = Figure(figsize=(4.4, 2.6) if narrow else (9, 2.8), layout="constrained")
        ax = fig.add_subplot()
        for label, points in series.items():
            xs, ys = _broken(points, step)
            ax.plot(xs, ys, label=label, linewidth=1.3)
        ax.set_xlim(since, until)  # type: ignore[arg-type]
        locator = dates.AutoDateLocator(  # type: ignore[no-untyped-call]
            tz=tz, minticks=3, maxticks=5 if narrow else 11
        )
        ax.xaxis.set_major_locator(locator)
        # No offset text (``2026-Dec``) under the axis: the window above says the year.
        formatter = dates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
            locator, tz=tz, offset_formats=[""] * 6
        )
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
                ncols=min(len(series), 2 if narrow else 5),
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
