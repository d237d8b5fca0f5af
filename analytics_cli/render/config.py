"""What ``config init``, ``config show`` and ``config check`` print."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from analytics_cli.console import Output
from analytics_cli.render.text import format_count
from analytics_cli.timeutil import iso

if TYPE_CHECKING:
    from analytics_cli.check import CheckReport
    from analytics_cli.config.schema import Settings


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
    # db loads psycopg: config init and config show, which share this module, do without it.
    from analytics_cli.dsn import describe
    from analytics_cli.samples import MetricFailure

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
    from analytics_cli.engines.session import (
        grant_hint,  # the engines load on use, as in check_text
    )

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
