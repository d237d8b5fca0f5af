"""`show`: the stored history as an overview, tables and terminal charts."""

from enum import StrEnum
from typing import Annotated

import typer

from analytics_cli.commands import options
from analytics_cli.commands.common import AGO, announce, fail, handled, load, out
from analytics_cli.commands.options import Agg, AggOpt, BucketOpt, TypeOpt, UntilOpt, WhereOpt

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.


class ShowFormat(StrEnum):
    """What ``show`` prints."""

    table = "table"
    chart = "chart"
    json = "json"
    csv = "csv"


def show(
    ctx: typer.Context,
    types: Annotated[
        list[str] | None,
        typer.Argument(help="Metric types to chart (same as --type).", show_default=False),
    ] = None,
    type_: TypeOpt = None,
    since: Annotated[str, typer.Option("--since", help=f"Start of the window: {AGO}.")] = "7d",
    until: UntilOpt = None,
    bucket: BucketOpt = None,
    agg: AggOpt = Agg.avg,
    fmt: Annotated[
        ShowFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="table, chart, json or csv. Default: a chart with --type on a terminal, "
            "else a table; plain text when stdout is not a terminal.",
            show_default=False,
        ),
    ] = None,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone for displayed times: UTC, local or IANA name.")
    ] = "UTC",
    where: WhereOpt = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="With one --type: one series per value of this metadata key "
            "(location, source), the --top ones by average.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", min=1, max=100, help="How many --by series to draw.")
    ] = 5,
) -> None:
    """Show the stored history: every metric at a glance, or a chart of some.

    Without a type: one row per metric type with its latest value, min / avg / max,
    points, missing slots (gaps) and a trend. With types: a line chart sized to the
    terminal above a compact table. Long windows are bucketed automatically for
    charts and tables (the bucket used is printed); json and csv give every stored
    point unless --bucket is given.
    """
    from analytics_cli import history
    from analytics_cli.engines.session import resolved
    from analytics_cli.engines.shapes import Selection
    from analytics_cli.render.show import no_table, show_streamed, show_view
    from analytics_cli.render.show import show as show_render
    from analytics_cli.timeutil import zone

    with handled():
        settings = load(ctx)
        start, end, size = options.window(since, until, bucket, open_end=False)
        tzone = zone(tz)
        chosen = options.types(types, type_)
        pairs = options.where_pairs(where)
        if by is not None and (chosen is None or len(chosen) != 1):
            fail("--by needs exactly one metric type", hint="e.g. show --type X --by location")
        view = show_view(fmt.value if fmt else None, chosen, end - start, settings.interval)
        sel = Selection(settings.table, start, end, chosen, size, agg.value, where=pairs, by=by)
        with resolved(settings, announce=announce) as live:
            try:
                if view.streamed:
                    show_streamed(out, history.show_rows(live, sel, view.mode), tzone)
                    return
                data = history.show_data(
                    live,
                    sel,
                    series=view.series,
                    summary=view.summary,
                    target=view.target,
                    spark_width=view.spark_width,
                    top=top if by is not None else None,
                )
            except history.NoData:
                no_table(out, settings.table)
                return
    show_render(out, data, tzone, view)
