"""`collect`: one collection cycle, with its backfill, textfile, heartbeat and alerts."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analytics_cli.commands.common import UNITS, announce, handled, load, out
from analytics_cli.commands.hooks import (
    AlertmanagerOpt,
    WebhookOpt,
    cycle_hooks,
    deliver,
    with_notify,
)
from analytics_cli.errors import AnalyticsError, DatabaseError

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.

# Without a terminal, a backfill logs a progress line each this many slots (and each quarter):
# a year of 30-minute slots says it is alive every few seconds, not every few hours.
BACKFILL_LOG_EVERY = 100


def collect(
    ctx: typer.Context,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Collect the slot containing this ISO 8601 time instead of now "
            "(the platform's current state is still what is counted).",
            show_default=False,
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only this metric type (repeatable).", show_default=False),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run the queries and report; write nothing.")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite the slot's rows instead of keeping them.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable report of the cycle on stdout.")
    ] = False,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help="Also write the cycle in Prometheus text format here (node_exporter textfile).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    ping_url: Annotated[
        str | None,
        typer.Option(
            "--ping-url",
            help="Heartbeat: GET this URL after exit 0, URL/fail after any other exit.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Read only the source of this name (repeatable); HTTP metrics are then skipped.",
            show_default=False,
        ),
    ] = None,
    backfill: Annotated[
        str | None,
        typer.Option(
            "--backfill",
            help="Also compute every missing slot of this window before the slot (12h, 7d; "
            f"{UNITS}) "
            "for the metrics marked backfill = true, oldest first, each slot stored once.",
            show_default=False,
        ),
    ] = None,
    no_spool: Annotated[
        bool,
        typer.Option(
            "--no-spool",
            help="When the store fails, do not keep the cycle in the spool for the next run.",
        ),
    ] = False,
    alertmanager: AlertmanagerOpt = None,
    webhook: WebhookOpt = None,
) -> None:
    """Run ONE collection cycle: count every metric and store one row each for the slot.

    The slot is now floored to the interval (UTC). All metrics read one snapshot
    (REPEATABLE READ, READ ONLY); all rows are written in one transaction under
    the slot's advisory lock, so re-runs and concurrent runs never duplicate.
    Exit 0 ok (or already collected), 1 some metrics failed, 2 config, 3 database.
    """
    import dataclasses

    from analytics_cli import notify
    from analytics_cli.cycle.backfill import backfill as run_backfill  # --backfill holds the name
    from analytics_cli.cycle.plan import plan
    from analytics_cli.cycle.results import CycleReport
    from analytics_cli.cycle.run import run_cycle
    from analytics_cli.engines.session import resolved
    from analytics_cli.metrics import enabled_metrics
    from analytics_cli.render.collect import backfill_report, collect_report
    from analytics_cli.timeutil import check_slot_time, parse_duration, parse_timestamp, utcnow

    settings: Settings | None = None
    report: CycleReport | None = None
    failure: AnalyticsError | None = None
    failed: DatabaseError | None = None
    with cycle_hooks(textfile, ping_url, dry_run) as hooks:
        try:
            with handled():
                try:
                    settings = with_notify(load(ctx), alertmanager, webhook)
                    hooks.loaded(settings)
                    when = parse_timestamp(at, what="--at") if at else None
                    if when is not None:
                        # Before any database is used: nothing counted, nothing written.
                        check_slot_time(when, now=utcnow(), interval=settings.interval, what="--at")
                    window = parse_duration(backfill, what="--backfill") if backfill else None
                    if no_spool:
                        settings = dataclasses.replace(settings, spool_enabled=False)
                    # Configuration errors (an unknown --only type) surface before any
                    # database is used.
                    jobs = plan(settings, enabled_metrics(settings, only), source)
                    filled = None
                    with resolved(settings, announce=announce) as live:
                        try:
                            report = run_cycle(
                                live,
                                at=when,
                                only=only,
                                dry_run=dry_run,
                                replace=replace,
                                sources=source,
                            )
                        except DatabaseError as exc:
                            # Exit 3 keeps the cycle's report: shown below, after the error.
                            if not isinstance(exc.report, CycleReport):
                                raise
                            report, failed = exc.report, exc
                        if failed is None:
                            hooks.finished(live, report)
                        if window is not None and not dry_run and failed is None:
                            with out.steps(
                                "backfill", "slots", "written", every=BACKFILL_LOG_EVERY
                            ) as step:
                                filled = run_backfill(
                                    live,
                                    jobs,
                                    since=report.slot - window,
                                    until=report.slot,
                                    progress=(lambda d, t: step(d, t, "")) if step else None,
                                )
                except AnalyticsError as exc:
                    failure = exc
                    raise
        finally:
            # The run's own failures as alerts: a finished cycle (failed metrics) or a store
            # that could not be written (exit 3); a usage error says nothing of the metrics,
            # nor does a cycle that ended at the store (its report holds no metric).
            ended = report is not None or (failure is not None and failure.exit_code == 3)
            if settings is not None and ended and not dry_run:
                finished = report if failed is None else None
                deliver(settings, "collect", notify.from_cycle(finished, failure or failed))
        assert report is not None
        if failed is not None:
            # The error first (cron mails its first line), then the report and summary.
            out.error(str(failed), failed.hint)
        collect_report(report, out, as_json=as_json)
        if failed is not None:
            raise typer.Exit(failed.exit_code)
        if filled is not None:
            backfill_report(filled, out)
        raise typer.Exit(max(report.exit_code, filled.exit_code if filled else 0))
