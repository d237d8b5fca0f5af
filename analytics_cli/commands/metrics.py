"""`metrics`: the list of metrics, built-in and custom, enabled or not."""

from typing import Annotated

import typer

from analytics_cli.commands.common import handled, load, out

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.


def metrics_cmd(
    ctx: typer.Context,
    show_sql: Annotated[bool, typer.Option("--sql", help="Print each metric's SQL.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the metrics: type, built-in or custom, enabled, description."""
    from analytics_cli.metrics import all_metrics, enabled_metrics
    from analytics_cli.render.metrics import metrics_text

    with handled():
        settings = load(ctx)
        every = all_metrics(settings)
        enabled = {m.type for m in enabled_metrics(settings)}
    out.write(metrics_text(every, enabled, show_sql=show_sql, as_json=as_json))
