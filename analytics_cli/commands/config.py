"""`config init`, `config show` and `config check`: write, show and check the configuration."""

import os
from pathlib import Path
from typing import Annotated

import typer

from analytics_cli.commands.common import announce, docs, globals_of, handled, load, out
from analytics_cli.dsn import Dialect

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.

app = typer.Typer(
    help="Write, show and check the configuration.",
    epilog=docs("configuration.md"),
    no_args_is_help=True,
)

PathArg = Annotated[
    Path | None,
    typer.Argument(
        help="Config file (default: --config or the usual lookup).",
        dir_okay=False,
        show_default=False,
    ),
]


@app.command("init", epilog=docs("configuration.md"))
def config_init(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(help="Where to write it ('-' for stdout).", dir_okay=False),
    ] = Path("analytics-cli.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    dialect: Annotated[
        Dialect | None,
        typer.Option(
            "--dialect",
            help="SQL of the example metric. Default: the source's, from --dsn, "
            "$ANALYTICS_SOURCE_DSN or $ANALYTICS_DSN (mysql:// gives mysql), else postgresql.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a starter configuration: defaults, the built-in metrics, an example custom metric."""
    from analytics_cli.config.starter import (
        DEFAULT_CONFIG_PATH,
        dialect_of,
        starter_config,
        write_starter,
    )
    from analytics_cli.metrics import builtin_metrics
    from analytics_cli.render.config import starter_written

    source = globals_of(ctx).dsn or os.environ.get("ANALYTICS_SOURCE_DSN")
    chosen = dialect.value if dialect else dialect_of(source or os.environ.get("ANALYTICS_DSN"))
    with handled():
        if str(path) == "-":
            out.write(starter_config(DEFAULT_CONFIG_PATH, builtin_metrics(), chosen))
            return
        write_starter(path, builtin_metrics(), force=force, dialect=chosen)
    starter_written(out, path)


@app.command("show", epilog=docs("configuration.md"))
def config_show(ctx: typer.Context, path: PathArg = None) -> None:
    """Print the effective configuration (file + environment + flags) as TOML, passwords redacted."""
    from analytics_cli.config.dump import dump, to_document
    from analytics_cli.config.starter import (
        readable_toml,
    )
    from analytics_cli.render.config import config_text

    with handled():
        settings = load(ctx, path)
    text = readable_toml(dump(to_document(settings)))
    out.write(config_text(settings, text))


@app.command("check", epilog=docs("operations.md"))
def config_check(
    ctx: typer.Context,
    path: PathArg = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Also print each metric's plan: estimated cost, real time, sequential scans "
            "over large tables and the index that would make the metric cheap.",
        ),
    ] = False,
) -> None:
    """Validate the config, connect to both databases and run every metric read-only.

    Prints each value and the time of the snapshot it was read in; writes nothing.
    Exit 0 ok, 1 some metrics failed, 2 config error, 3 database unreachable.
    """
    from analytics_cli import check
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.config import check_failed, check_text

    with handled():
        settings = load(ctx, path)
        with resolved(settings, announce=announce) as live:
            report = check.check(live, explain=explain)
    out.write(check_text(live, report))
    check_failed(out, report)
    raise typer.Exit(report.exit_code)
