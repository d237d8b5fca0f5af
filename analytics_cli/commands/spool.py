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
    import json

    from analytics_cli import db, spool
    from analytics_cli.timeutil import iso

    with handled():
        settings = load(ctx)
        with db.resolved(settings) as live:
            folder = spool.spool_dir(live)
            items = spool.summary(folder, spool.store_identity(live))
        aside = spool.rejected(folder)
    if as_json:
        doc = {
            "folder": str(folder),
            "files": [
                {
                    "file": str(i.path),
                    "slot": iso(i.slot) if i.slot else None,
                    "rows": i.rows,
                    "store": i.foreign,
                    "problem": i.problem,
                }
                for i in items
            ],
            "rejected": [str(p) for p in aside],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    lines = [f"spool folder {folder}: {len(items)} file(s), {len(aside)} set aside"]
    for i in items:
        if i.problem is not None:
            lines.append(f"{i.path}  cannot be replayed: {i.problem}")
        elif i.foreign is not None:
            lines.append(f"{i.path}  another store: {i.foreign}")
        else:
            lines.append(f"{i.path}  slot {iso(i.slot) if i.slot else '?'}, {i.rows} row(s)")
    lines += [f"{p}  set aside" for p in aside]
    out.write("\n".join(lines) + "\n")


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
    from analytics_cli import console, db, spool

    with handled():
        if not (foreign or rejected):
            fail("nothing to drop", hint="name what to remove: --foreign, --rejected or both")
        settings = load(ctx)
        with db.resolved(settings) as live:
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
