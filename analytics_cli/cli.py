"""The command line's wiring: the Typer app, global options, commands registered, errors → exit codes."""

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from analytics_cli import __version__
from analytics_cli.commands.collect import collect
from analytics_cli.commands.common import Globals, docs, out, silence_stdout
from analytics_cli.commands.config import app as config_app
from analytics_cli.commands.db import app as db_app
from analytics_cli.commands.demo import demo_cmd
from analytics_cli.commands.export import export
from analytics_cli.commands.metrics import metrics_cmd
from analytics_cli.commands.prune import prune_cmd
from analytics_cli.commands.report import report
from analytics_cli.commands.show import show
from analytics_cli.commands.spool import app as spool_app
from analytics_cli.commands.status import status_cmd
from analytics_cli.console import LogFormat
from analytics_cli.errors import Interrupted, missing_extra

# The command modules import the library inside their bodies, not at module level:
# `--help`, `--version` and a usage error then start without loading psycopg, rich or
# the config parser. No `from __future__ import annotations` here nor in them: Typer
# reads the signatures on every run, and evaluated annotations spare it an eval() each.

HELP = (
    "Collect platform usage metrics into PostgreSQL, one cycle per run, and read them back.\n\n"
    "Schedule 'analytics-cli collect' from cron, a systemd timer or a Kubernetes CronJob "
    "(every 30 minutes); look at the history with 'show'; stream it out with 'export'. "
    "With no connection string configured, an embedded PostgreSQL is used: try 'demo'."
)
EPILOG = (
    "Exit codes: 0 ok, 1 some metrics failed, stale data or an anomaly, 2 usage/config error, "
    "3 database error, 130/143 interrupted (SIGINT/SIGTERM).\n\n" + docs("index.md")
)
# The variable a shell's completion script sets to ask for completions (Typer's protocol).
COMPLETE_VAR = "_ANALYTICS_CLI_COMPLETE"


class _Group(TyperGroup):
    """The command group: a reader that closed the pipe (| head) ends any command with exit 0."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; BrokenPipeError anywhere in it is a quiet end, not exit 1."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            silence_stdout()
            raise typer.Exit(0) from None


app = typer.Typer(
    cls=_Group,
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"analytics-cli {__version__}")
        raise typer.Exit(0)


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file. Default: $ANALYTICS_CLI_CONFIG, ./analytics-cli.toml, "
        "~/.config/analytics-cli/config.toml, /etc/analytics-cli/config.toml.",
        dir_okay=False,
        show_default=False,
    ),
]
DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="Connection string for both the source and the store "
        "(overrides $ANALYTICS_DSN and the file). Prefer PGPASSFILE for passwords.",
        show_default=False,
    ),
]


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: ConfigOpt = None,
    dsn: DsnOpt = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="stderr format: text or json (one per line).")
    ] = LogFormat.text,
    # Counted flags (-vv): no value to show and no default worth printing.
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            metavar="",
            show_default=False,
            help="More detail (repeat for more: -vv).",
        ),
    ] = 0,
    quiet: Annotated[
        int,
        typer.Option(
            "--quiet",
            "-q",
            count=True,
            metavar="",
            show_default=False,
            help="Only the summary and errors.",
        ),
    ] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Collect platform usage metrics into PostgreSQL, one cycle per run, and read them back."""
    ctx.obj = Globals(config=config, dsn=dsn)
    out.configure(log_format, verbose - quiet)
    given = [dsn, *(os.environ.get(f"ANALYTICS_{n}DSN") for n in ("", "SOURCE_", "STORE_"))]
    if any(given):  # with none, `show --help` need not load the connection-string parser
        out.hide(*given)
    if not dsn:
        return
    # Loaded only for a --dsn: `show --help` runs this callback too, and must stay fast.
    from analytics_cli.dsn import dsn_secrets

    if dsn_secrets(dsn):
        # The command line of a process is public: every local user reads it with ps.
        out.warn(
            "--dsn holds a password, which other local users can read in the process list; "
            "put it in PGPASSFILE (~/.pgpass), $ANALYTICS_DSN or a config file of mode 600"
        )


# The commands in the order `--help` lists them (Typer lists the groups after the commands).
app.command(epilog=docs("collect.md"))(collect)
app.command(epilog=docs("history.md"))(show)
app.command(epilog=docs("history.md"))(export)
app.command(epilog=docs("history.md"))(report)
app.command("demo", epilog=docs("getting-started.md"))(demo_cmd)
app.command("metrics", epilog=docs("metrics.md"))(metrics_cmd)
app.command("status", epilog=docs("operations.md"))(status_cmd)
app.command("prune", epilog=docs("operations.md"))(prune_cmd)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(spool_app, name="spool")

# ---------------------------------------------------------------------------- entry point


_TERMINATED: list[int] = []


def _on_sigterm(signum: int, _frame: object) -> None:
    _TERMINATED.append(signum)
    raise Interrupted(signum)


def _click_exception() -> type[Exception]:
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # Typer releases that use the separate click package
        from click.exceptions import ClickException  # type: ignore[no-redef, import-not-found, assignment, unused-ignore]
    return ClickException


def _output_flag(token: str) -> bool:
    """-q, -v (and -qq, -vv...), --quiet, --verbose, --log-format[=X]: the output options."""
    return (
        token in ("--quiet", "--verbose", "--log-format")
        or token.startswith("--log-format=")
        or (len(token) > 1 and token[0] == "-" and set(token[1:]) in ({"q"}, {"v"}))
    )


def hoist_output_options(argv: list[str]) -> list[str]:
    """The output options typed after the command (``collect -q``) moved before it, where
    the group reads them; a token that is an option's value, or follows ``--``, stays."""
    if not any(_output_flag(t) for t in argv):
        return argv
    command: Any = typer.main.get_command(app)
    root = command
    kept: list[str] = []
    hoisted: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            kept += [token, *tokens]
            break
        if token.startswith("-") and token != "-":
            name = token.partition("=")[0]
            option = next((p for p in command.params if name in getattr(p, "opts", ())), None)
            if option is None and command is not root and _output_flag(token):
                hoisted.append(token)
                if token == "--log-format":
                    hoisted.append(next(tokens, ""))
                continue
            kept.append(token)
            takes_value = option is not None and not (option.is_flag or option.count)
            if takes_value and "=" not in token:
                kept.append(next(tokens, ""))
            continue
        kept.append(token)
        sub = getattr(command, "commands", {}).get(token)
        if sub is not None:
            command = sub
    return hoisted + kept


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: run the app and exit with the documented code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if os.environ.get(COMPLETE_VAR):
        # A shell asks for completions: each comes with its help on one line, which rich
        # would wrap at the terminal's width, and fish takes a wrapped tail for a candidate.
        os.environ["COLUMNS"] = "100000"
    click_exception = _click_exception()
    try:
        args = hoist_output_options(sys.argv[1:] if argv is None else list(argv))
        result = app(args=args, prog_name="analytics-cli", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                typer.echo(ctx.get_help(), nl=False)
            code = 0
        else:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "analytics-cli"
            message = exc.format_message()  # type: ignore[attr-defined,unused-ignore]
            out.error(f"{message} (see '{where} --help')")
            code = int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        code = 130
    except KeyboardInterrupt:
        code = 130
    except ImportError as exc:
        # The last net for an optional library reached outside a command's error handling.
        missing = missing_extra(exc)
        if missing is None:
            raise
        out.error(str(missing), missing.hint)
        code = missing.exit_code
    if code == 130:
        if _TERMINATED:
            out.error("terminated (SIGTERM); open transactions were rolled back")
            code = 128 + _TERMINATED[0]
        else:
            out.error("interrupted (SIGINT); open transactions were rolled back")
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    sys.exit(code)
