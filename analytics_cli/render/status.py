"""The ``status`` report, its spool and retention lines, and ``--anomalies``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.console import Output
from analytics_cli.render.text import number, plain_table
from analytics_cli.timeutil import format_duration, iso

if TYPE_CHECKING:
    from analytics_cli.anomalies import AnomalyReport, Finding
    from analytics_cli.engines.shapes import Reach, Retention
    from analytics_cli.status import StatusReport


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
    # The anomaly module loads only when status --anomalies asked for it.
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
    from analytics_cli import anomalies as a  # only with --anomalies, as above

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
