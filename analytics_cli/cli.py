"""The command line: options → one core call → output. The only place errors become exit codes."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from analytics_cli import __version__
from analytics_cli.errors import AnalyticsError, Interrupted

if TYPE_CHECKING:
    from analytics_cli.config import Settings

HELP = (
    "Collect platform usage metrics into PostgreSQL, one cycle per run, and read them back.\n\n"
    "Schedule 'analytics-cli collect' from cron, a systemd timer or a Kubernetes CronJob "
    "(every 30 minutes); look at the history with 'show'; stream it out with 'export'. "
    "With no connection string configured, an embedded PostgreSQL is used: try 'demo'."
)

EPILOG = "Exit codes: 0 ok, 1 some metrics failed or stale, 2 usage/config error, 3 database error."

app = typer.Typer(
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Manage the analytics table (the store).", no_args_is_help=True)
app.add_typer(db_app, name="db")


class LogFormat(StrEnum):
    """How progress and log lines on stderr are written."""

    text = "text"
    json = "json"


@dataclass
class Globals:
    """Options given before the command name."""

    config: Path | None = None
    dsn: str | None = None
    log_format: LogFormat = LogFormat.text
    verbosity: int = 0

    def settings(self) -> Settings:
        """Load the effective settings; warnings go to stderr."""
        from analytics_cli import config

        settings = config.load(self.config, dsn=self.dsn)
        for warning in settings.warnings:
            out.warn(warning)
        return settings


class Output:
    """stderr messages: plain text or JSON lines, filtered by -v / -q."""

    def __init__(self) -> None:
        self.log_format = LogFormat.text
        self.verbosity = 0
        self.secrets: set[str] = set()

    def _emit(self, level: str, message: str, **fields: Any) -> None:
        from analytics_cli.db import scrub

        message = scrub(message, self.secrets)
        if self.log_format is LogFormat.json:
            record = {"level": level, "message": message, **fields}
            text = scrub(json.dumps(record, default=str), self.secrets)
            print(text, file=sys.stderr, flush=True)
        else:
            prefix = "" if level == "info" else f"{level}: "
            print(f"{prefix}{message}", file=sys.stderr, flush=True)

    def info(self, message: str, **fields: Any) -> None:
        """Progress and summaries; hidden by -q."""
        if self.verbosity >= 0:
            self._emit("info", message, **fields)

    def debug(self, message: str, **fields: Any) -> None:
        """Details shown with -v."""
        if self.verbosity > 0:
            self._emit("debug", message, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        """Something the operator should fix; always shown."""
        self._emit("warning", message, **fields)

    def error(self, message: str, hint: str | None = None) -> None:
        """One clear line (plus a hint line where one helps); always shown."""
        if self.log_format is LogFormat.json:
            self._emit("error", message, **({"hint": hint} if hint else {}))
            return
        self._emit("error", message)
        if hint:
            self._emit("hint", hint)

    @property
    def quiet(self) -> bool:
        """True with -q."""
        return self.verbosity < 0


out = Output()


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


@contextmanager
def handled() -> Iterator[None]:
    """Turn typed errors into one line on stderr and their exit code."""
    try:
        yield
    except AnalyticsError as exc:
        out.error(str(exc), exc.hint)
        raise typer.Exit(exc.exit_code) from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(0) from None


def fail(message: str, code: int = 2, hint: str | None = None) -> NoReturn:
    """Stop with an error line and an exit code."""
    out.error(message, hint)
    raise typer.Exit(code)


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
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail.")] = 0,
    quiet: Annotated[
        int, typer.Option("--quiet", "-q", count=True, help="Only the summary and errors.")
    ] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Collect platform usage metrics into PostgreSQL, one cycle per run, and read them back."""
    ctx.obj = Globals(config=config, dsn=dsn, log_format=log_format, verbosity=verbose - quiet)
    out.log_format = log_format
    out.verbosity = verbose - quiet
    from analytics_cli.db import dsn_secrets

    out.secrets = dsn_secrets(dsn) | dsn_secrets(os.environ.get("ANALYTICS_DSN"))
    out.secrets |= dsn_secrets(os.environ.get("ANALYTICS_SOURCE_DSN"))
    out.secrets |= dsn_secrets(os.environ.get("ANALYTICS_STORE_DSN"))


def _load(ctx: typer.Context) -> Settings:
    from analytics_cli.db import dsn_secrets

    settings = _globals(ctx).settings()
    out.secrets |= dsn_secrets(settings.source_dsn) | dsn_secrets(settings.store_dsn)
    return settings


def _announce(message: str) -> None:
    out.info(message)


# ---------------------------------------------------------------------------- collect


@app.command()
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
) -> None:
    """Run ONE collection cycle: count every metric and store one row each for the slot.

    The slot is now floored to the interval (UTC). All metrics read one snapshot
    (REPEATABLE READ, READ ONLY); all rows are written in one transaction under
    the slot's advisory lock, so re-runs and concurrent runs never duplicate.
    Exit 0 ok (or already collected), 1 some metrics failed, 2 config, 3 database.
    """
    from analytics_cli import collect as collect_mod
    from analytics_cli import db, render
    from analytics_cli.timeutil import parse_timestamp

    with handled():
        settings = _load(ctx)
        when = parse_timestamp(at, what="--at") if at else None
        with db.resolved(settings, announce=_announce) as live:
            report = collect_mod.run_cycle(
                live, at=when, only=only, dry_run=dry_run, replace=replace
            )
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    render.print_collect_report(report, out, show_metrics=not as_json)
    raise typer.Exit(report.exit_code)


# ---------------------------------------------------------------------------- db


@db_app.command("init")
def db_init(ctx: typer.Context) -> None:
    """Create the analytics table if it does not exist (safe to run again)."""
    from analytics_cli import collect as collect_mod
    from analytics_cli import db

    with handled():
        settings = _load(ctx)
        with db.resolved(settings, announce=_announce) as live:
            created = collect_mod.ensure_store(live)
    state = "created" if created else "already exists"
    out.info(f"table {settings.table}: {state}")


# ---------------------------------------------------------------------------- show / export


# ---------------------------------------------------------------------------- demo


# ---------------------------------------------------------------------------- operations


# ---------------------------------------------------------------------------- entry point


_TERMINATED: list[int] = []


def _on_sigterm(signum: int, _frame: object) -> None:
    _TERMINATED.append(signum)
    raise Interrupted(signum)


def _click_exception() -> type[Exception]:
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # Typer releases that use the separate click package
        from click.exceptions import ClickException  # type: ignore[no-redef, import-not-found]
    return ClickException


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: run the app and exit with the documented code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    click_exception = _click_exception()
    try:
        result = app(args=argv, prog_name="analytics-cli", standalone_mode=False)
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
    if code == 130:
        if _TERMINATED:
            out.error("terminated (SIGTERM); open transactions were rolled back")
            code = 128 + _TERMINATED[0]
        else:
            out.error("interrupted (SIGINT); open transactions were rolled back")
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    sys.exit(code)


def _silence_stdout() -> None:
    """After the reader of stdout went away (| head), drop further output quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
