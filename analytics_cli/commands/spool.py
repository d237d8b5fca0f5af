"""`spool list` and `spool drop`: the cycles waiting in the local spool."""

from typing import Annotated

import typer

from analytics_cli.commands.common import docs, fail, handled, load, out

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.

app = typer.Typer(
    help="List the cycles waiting in the local spool; remove the ones never replayed here.",
    no_args_is_help=True,
    epilog=docs("operations.md"),
)


@app.command("list", epilog=docs("operations.md"))
def spool_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List every spool file: its slot and rows, or the other store it is for, or why it
    cannot be replayed; and the files set aside in rejected/. Connects to no database."""
    from analytics_cli import spool
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.spool import spool_listing

    with handled():
        settings = load(ctx)
        with resolved(settings) as live:
            folder = spool.spool_dir(live)
            items = spool.summary(folder, spool.store_identity(live))
        aside = spool.rejected(folder)
    out.write(spool_listing(folder, items, aside, as_json=as_json))


@app.command("drop", epilog=docs("operations.md"))
def spool_drop(
    ctx: typer.Context,
    foreign: Annotated[
        bool, typer.Option("--foreign", help="Remove the files spooled for another store.")
    ] = False,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="Remove the files set aside in rejected/.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove spool files that this configuration never replays; asks first on a terminal."""
    from analytics_cli import console, spool
    from analytics_cli.engines.session import resolved

    with handled():
        if not (foreign or rejected):
            fail("nothing to drop", hint="name what to remove: --foreign, --rejected or both")
        settings = load(ctx)
        with resolved(settings) as live:
            folder = spool.spool_dir(live)
            todo = spool.droppable(
                folder, spool.store_identity(live), foreign=foreign, rejected_too=rejected
            )
        if not todo:
            out.info(f"nothing to remove in {folder}")
            return
        if not yes:
            if not console.stdin_is_terminal():
                fail(
                    "refusing to delete without confirmation (no terminal)",
                    hint="add --yes to drop from a script",
                )
            for path in todo:
                out.info(f"would remove {path}")
            if not typer.confirm(f"remove {len(todo)} spool file(s)?", err=True):
                fail("nothing was removed", code=1)
        for path in todo:
            spool.remove(path)
        out.info(f"removed {len(todo)} spool file(s) from {folder}")
