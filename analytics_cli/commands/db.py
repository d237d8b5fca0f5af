"""`db init`, `db migrate` and `db rollup`: create and reshape the store table, roll it up."""

from typing import Annotated

import typer

from analytics_cli.commands.common import announce, docs, fail, handled, load, out
from analytics_cli.commands.rollup import db_rollup, months_progress

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.

app = typer.Typer(
    help="Manage the analytics table (the store).",
    epilog=docs("architecture.md"),
    no_args_is_help=True,
)


@app.command("init", epilog=docs("architecture.md"))
def db_init(ctx: typer.Context) -> None:
    """Create the analytics table if it does not exist (safe to run again)."""
    from analytics_cli import rollups
    from analytics_cli.cycle.table import ensure_store
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.db import db_init as db_init_render

    with handled():
        settings = load(ctx)
        with resolved(settings, announce=announce) as live:
            created = ensure_store(live)
            rollups.init_built(live, progress=months_progress())
    db_init_render(out, settings.table, created)


@app.command("migrate", epilog=docs("operations.md"))
def db_migrate(
    ctx: typer.Context,
    partition: Annotated[
        bool,
        typer.Option(
            "--partition",
            help="Convert an unpartitioned native table to monthly partitions, online: "
            "every row kept, collect goes on; run again to resume.",
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows copied per transaction.")
    ] = 10_000,
) -> None:
    """Change the store table's shape (today: --partition)."""
    from analytics_cli import migrate as migrate_mod
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.db import migrated

    with handled():
        if not partition:
            fail("say what to migrate: --partition", hint="analytics-cli db migrate --partition")
        settings = load(ctx)
        with resolved(settings, announce=announce) as live:
            done = migrate_mod.migrate_partition(
                live,
                batch_size=batch_size,
                progress=lambda n: out.debug(f"copied through id {n}"),
            )
    migrated(out, settings.table, done)


app.command("rollup", epilog=docs("operations.md"))(db_rollup)
