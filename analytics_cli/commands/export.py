"""`export`: the stored rows streamed out as CSV, JSON or NDJSON."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from analytics_cli.commands import options
from analytics_cli.commands.common import AGO, announce, fail, handled, load, out
from analytics_cli.commands.options import Agg, AggOpt, BucketOpt, TypeOpt, WhereOpt

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.


class ExportFormat(StrEnum):
    """What ``export`` writes."""

    csv = "csv"
    json = "json"
    ndjson = "ndjson"


def export(
    ctx: typer.Context,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row (default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    ndjson: Annotated[bool, typer.Option("--ndjson", help="One JSON object a line.")] = False,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option("--format", "-f", help="csv, json or ndjson.", show_default=False),
    ] = None,
    type_: TypeOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Start of the window: {AGO}. Default: everything.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help=f"End of the window (exclusive): {AGO}. Default: no end.",
            show_default=False,
        ),
    ] = None,
    bucket: BucketOpt = None,
    agg: AggOpt = Agg.avg,
    where: WhereOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (complete or not at all) instead of stdout.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Stream the stored rows out as CSV, JSON or NDJSON, with flat memory however many.

    Columns: type, count, timestamp (ISO 8601, UTC), metadata (JSON), collected_at.
    CSV comes straight from PostgreSQL's COPY. With --output the file appears only
    when the export is complete; a closed pipe (| head) ends quietly.
    """
    from analytics_cli import console, history
    from analytics_cli.engines.session import resolved
    from analytics_cli.engines.shapes import Selection
    from analytics_cli.render.export import exported
    from analytics_cli.render.show import no_table

    with handled():
        flags = [f for f, on in (("csv", csv), ("json", as_json), ("ndjson", ndjson)) if on]
        if fmt is not None:
            flags.append(fmt.value)
        if len(set(flags)) > 1:
            fail("choose one of --csv, --json, --ndjson (or --format)")
        chosen_fmt = flags[0] if flags else "csv"
        settings = load(ctx)
        start, end, size = options.window(since, until, bucket)
        sel = Selection(
            settings.table,
            start,
            end,
            options.types(type_),
            size,
            agg.value,
            where=options.where_pairs(where),
        )
        progress = output is not None and console.stderr_is_terminal() and not out.quiet
        with resolved(settings, announce=announce) as live:
            try:
                rows = history.export(live, sel, chosen_fmt, output, progress=progress)
            except history.NoData:
                no_table(out, settings.table)
                return
    exported(out, rows, output)
