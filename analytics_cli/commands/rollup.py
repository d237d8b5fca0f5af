"""`db rollup --rebuild`: the hourly and daily rollups (native store only)."""

from collections.abc import Callable
from typing import Annotated

import typer

from analytics_cli.commands.common import announce, fail, handled, load, out

# The library is imported inside the body, not here: `--help` then starts without loading
# psycopg (as every command module does). No `from __future__ import annotations`: Typer
# reads these signatures on every run.


def db_rollup(
    ctx: typer.Context,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Rebuild the hourly and daily rollups from the stored rows (buckets older "
            "than the rows kept stay). Native store only: not the iR Engine layout.",
        ),
    ] = False,
) -> None:
    """Hourly and daily rollups (native store only; not the iR Engine layout)."""
    from analytics_cli import rollups
    from analytics_cli.engines.session import resolved

    with handled():
        if not rebuild:
            fail("say what to do: --rebuild", hint="analytics-cli db rollup --rebuild")
        settings = load(ctx)
        with resolved(settings, announce=announce) as live:
            done = rollups.rebuild(live, progress=months_progress())
    out.write(
        f"rollups of {settings.table} rebuilt: {done.hourly} hourly rows, {done.chunks} month(s)\n"
    )


def months_progress() -> Callable[[int, int], None] | None:
    """A progress line per rebuilt month on a terminal's stderr; nothing otherwise."""
    import sys

    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else "\r"
        print(f"rolling up: month {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show
