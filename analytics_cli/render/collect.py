"""What ``collect`` says: a cycle's outcome (table or log lines), a backfill's summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from analytics_cli.console import Output, stderr_is_terminal
from analytics_cli.render.text import format_count
from analytics_cli.timeutil import iso

if TYPE_CHECKING:
    from analytics_cli.cycle.results import BackfillReport, CycleReport

# rich is imported inside the functions that draw for a terminal: plain output (cron, pipes)
# never pays for its import.


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
