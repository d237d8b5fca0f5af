"""`status`: the latest slot of each metric, gaps, staleness and anomalies."""

from typing import Annotated

import typer

from analytics_cli.commands.common import UNITS, announce, handled, load, out
from analytics_cli.commands.hooks import (
    AlertmanagerOpt,
    WebhookOpt,
    cycle_hooks,
    deliver,
    with_notify,
)

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.


def status_cmd(
    ctx: typer.Context,
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age",
            help=f"Stale when the newest row is older than this duration (2h, 1d; {UNITS}; "
            "default: twice the interval).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    anomalies: Annotated[
        bool,
        typer.Option(
            "--anomalies",
            help="Also judge each metric's latest value: against its median and MAD at the "
            "same time of week over the last 4 weeks, and against its [alert] limits "
            "(one stderr line per finding; exit 1 when any fires).",
        ),
    ] = False,
    ping_url: Annotated[
        str | None,
        typer.Option(
            "--ping-url",
            help="Heartbeat: GET this URL after exit 0, URL/fail after any other exit.",
            show_default=False,
        ),
    ] = None,
    alertmanager: AlertmanagerOpt = None,
    webhook: WebhookOpt = None,
) -> None:
    """Show the latest slot of each metric and the slots missing in the last 24 hours.

    Exit 1 when the newest row is older than --max-age, or with --anomalies when a value
    left its usual range or a configured limit, so it can drive an alert or a probe.
    """
    from analytics_cli import status
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.status import (
        anomaly_findings,
        finding_line,
        future_rows,
        stale_reason,
        status_with_anomalies,
    )
    from analytics_cli.timeutil import parse_duration

    with cycle_hooks(None, ping_url) as _hooks, handled():
        settings = with_notify(load(ctx), alertmanager, webhook)
        limit = parse_duration(max_age, what="--max-age") if max_age else None
        found = None
        with resolved(settings, announce=announce) as live:
            report = status.status(live, max_age=limit)
            if anomalies and report.store_error is None:
                from analytics_cli import anomalies as anomalies_mod

                found = anomalies_mod.anomalies(live)
        out.write(status_with_anomalies(report, found, as_json=as_json))
        if report.store_error is not None:
            out.error(report.store_error, report.store_hint)
        else:
            future_rows(out, report)
            stale_reason(out, report)
        if found is not None:
            anomaly_findings(out, found)
        if settings.notify.enabled:
            from analytics_cli import notify

            groups = {"status": notify.from_status(report)}
            if found is not None:
                groups["anomalies"] = notify.from_anomalies(found, finding_line)
            deliver(settings, "status", groups)
        raise typer.Exit(max(report.exit_code, found.exit_code if found else 0))
