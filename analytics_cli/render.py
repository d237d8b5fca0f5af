"""Rendering: collect reports, tables, sparklines and terminal charts (rows in, text out)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics_cli.collect import CycleReport


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


def print_collect_report(report: CycleReport, out: Any, *, show_metrics: bool = True) -> None:
    """Write a cycle's outcome to stderr: a table on a terminal, logfmt-like lines otherwise."""
    from analytics_cli.timeutil import iso

    slot = iso(report.slot)
    json_logs = getattr(out.log_format, "value", "text") == "json"
    if show_metrics and not out.quiet:
        if sys.stderr.isatty() and not json_logs and report.results:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=f"slot {slot}", title_justify="left")
            table.add_column("metric")
            table.add_column("count", justify="right")
            table.add_column("status")
            styles = {"failed": "red", "stored": "green", "replaced": "green", "present": "dim"}
            for r in report.results:
                status = r.status if not r.error else f"failed: {r.error}"
                table.add_row(
                    r.type, format_count(r.count), f"[{styles.get(r.status, '')}]{status}[/]"
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
        out._emit("info", f"{verb} done", event="summary", **summary)
    else:
        out._emit("info", f"{verb} " + _logfmt(summary))


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
