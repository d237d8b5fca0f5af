"""`report --html`: one self-contained HTML report of a window."""

from pathlib import Path
from typing import Annotated

import typer

from analytics_cli.commands import options
from analytics_cli.commands.common import AGO, announce, handled, load, out
from analytics_cli.commands.options import TypeOpt, UntilOpt

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.


def report(
    ctx: typer.Context,
    html: Annotated[
        Path,
        typer.Option(
            "--html",
            help="Write the report to this HTML file (complete or not at all).",
            dir_okay=False,
            show_default=False,
        ),
    ],
    type_: TypeOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Start of the window: {AGO}. Default: the oldest stored slot, at most 30 "
            "days back.",
            show_default=False,
        ),
    ] = None,
    until: UntilOpt = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Chart dimensional metrics by this metadata key (location, source), the "
            "--top values by average. Default: each metric's first dimension.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", min=1, max=20, help="How many series a dimensional chart draws.")
    ] = 5,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone for displayed times: UTC, local or IANA name.")
    ] = "UTC",
) -> None:
    """Write ONE self-contained HTML report for the product side: opens offline, prints well.

    A headline table per metric (latest, change of the average against the previous
    period of the same length, min / avg / max, gaps) and one chart per metric (the
    top --by series for dimensional ones), the window and when it was made. Styles
    and charts (SVG, drawn by matplotlib from the 'report' extra) are
    inline: no request leaves the page.
    """
    from analytics_cli import history
    from analytics_cli import report as report_mod
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.export import report_written
    from analytics_cli.render.show import no_table
    from analytics_cli.timeutil import utcnow, zone

    with handled():
        report_mod.require_charts()
        settings = load(ctx)
        start, end, _ = options.window(since, until, None, open_end=False)
        tzone = zone(tz)
        generated = utcnow()
        with resolved(settings, announce=announce) as live:
            try:
                data = report_mod.report_data(
                    live,
                    since=start,
                    until=end,
                    generated=generated,
                    types=options.types(type_),
                    by=by,
                    top=top,
                )
            except history.NoData:
                no_table(out, settings.table)
                return
        report_mod.write_report(data, html, tzone)
    report_written(out, html, len(data.metrics))
