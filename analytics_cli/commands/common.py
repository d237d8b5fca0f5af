"""What every command shares: the output, the settings of this invocation, typed errors → exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from analytics_cli.console import Output
from analytics_cli.errors import AnalyticsError, missing_extra

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings

# The commands import the library inside their bodies, not at module level: `--help`,
# `--version` and a usage error then start without loading psycopg, rich or the config parser.


def docs(page: str) -> str:
    """The help's closing line: the page of the manual (docs/, a MkDocs site) for a command."""
    return f"Manual: docs/{page}"


# Every option that takes a duration says which spellings it takes.
AGO = "ISO 8601 or a duration ago (30m, 6h, 7d, 2w, 1y = 365 days)"
# The units every duration option takes (timeutil.parse_duration).
UNITS = "units s, m, h, d, w, y = 365 days"


@dataclass
class Globals:
    """Options given before the command name that commands read (output options go to ``out``)."""

    config: Path | None = None
    dsn: str | None = None
    # Whether the store's notices go to ``out`` yet (set by the first ``load``).
    listening: bool = False

    def settings(self) -> Settings:
        """Load the effective settings; warnings go to stderr."""
        # The config parser loads only when a command needs the settings (start-up time).
        from analytics_cli.config.load import load as load_config

        settings = load_config(self.config, dsn=self.dsn)
        for warning in settings.warnings:
            out.warn(warning)
        return settings


out = Output()


def globals_of(ctx: typer.Context) -> Globals:
    """The global options of this invocation (the root context's object)."""
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
    except ImportError as exc:
        # An optional library reached without its extra: one line naming the extra.
        missing = missing_extra(exc)
        if missing is None:
            raise
        out.error(str(missing), missing.hint)
        raise typer.Exit(missing.exit_code) from None
    except BrokenPipeError:
        silence_stdout()
        raise typer.Exit(0) from None


def fail(message: str, code: int = 2, hint: str | None = None) -> NoReturn:
    """Stop with an error line and an exit code."""
    out.error(message, hint)
    raise typer.Exit(code)


def load(ctx: typer.Context, path: Path | None = None) -> Settings:
    """The effective settings of this invocation (from ``path``, a config file given to the
    command itself, when there is one); their passwords join the scrub list."""
    given = globals_of(ctx)
    if not given.listening:
        # Here, not in the global options' callback: the store's modules then load only for
        # a command that reads the settings, never for `show --help`.
        from analytics_cli.engines import notices

        notices.listen(out.info)  # the store layout's notice: once per command, like other info
        given.listening = True
    if path is not None:
        given = replace(given, config=path)
    return remember_secrets(given.settings())


def remember_secrets(settings: Settings) -> Settings:
    """Every password the settings carry is scrubbed from all later output."""
    out.hide(settings.source_dsn, settings.store_dsn, *(s.dsn for s in settings.sources))
    return settings


def announce(message: str) -> None:
    """A line from the database layer (the embedded server starting...) as info."""
    out.info(message)


def silence_stdout() -> None:
    """After the reader of stdout went away (| head), drop further output quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
