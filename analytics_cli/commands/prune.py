"""`prune`: delete old rows in small batches."""

from typing import Annotated, Any

import typer

from analytics_cli.commands.common import announce, fail, handled, load, out

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.


def prune_cmd(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Delete rows whose slot is older than this duration: 90d, 26w, 1y (365 days). "
            "Months are not a unit (their length varies): write days. Default: [retention] "
            "raw, then the hourly and daily rollups past their [retention].",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the rows that would be deleted.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows deleted per transaction.")
    ] = 10_000,
) -> None:
    """Delete old rows in small batches (no long lock); asks first on a terminal unless --yes."""
    from analytics_cli import console, prune
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.prune import prune_preview, prune_scope, pruned
    from analytics_cli.timeutil import parse_duration

    with handled():
        settings = load(ctx)
        kept = settings.retention
        if older_than is None and not kept.configured:
            fail(
                "say how old: --older-than, or [retention] in the config",
                hint='e.g. prune --older-than 180d, or [retention] raw = "180d"',
            )
        older = parse_duration(older_than, what="--older-than") if older_than else kept.raw
        if not (dry_run or yes or console.stdin_is_terminal()):
            fail(
                "refusing to delete without confirmation (no terminal)",
                hint="add --yes to prune from a script or cron, or --dry-run to count",
            )
        with resolved(settings, announce=announce) as live:
            if older is None:  # [retention] keeps rows forever: only rollups expire
                _prune_rollups(live, kept if older_than is None else None, dry_run)
                return
            cutoff = prune.prune_cutoff(older)
            scope = prune_scope(cutoff, live.table)
            todo = prune.count_older(live, cutoff)
            if dry_run:
                out.write(prune_preview(todo, scope))
                return
            if todo and not yes and not typer.confirm(f"delete {todo} rows {scope}?", err=True):
                fail("nothing was deleted", code=1)
            done = prune.prune(
                live,
                cutoff,
                batch_size=batch_size,
                progress=lambda n: out.debug(f"deleted {n} rows so far"),
            )
            out.write(pruned(done.rows, done.batches, scope, dropped=done.dropped))
            _prune_rollups(live, kept if older_than is None else None, dry_run)


def _prune_rollups(settings: Any, kept: Any, dry_run: bool) -> None:
    """[retention] hourly and daily: drop the rollup buckets older than theirs."""
    from analytics_cli import prune, rollups

    if kept is None or dry_run:
        return
    for grain, older in (("hourly", kept.hourly), ("daily", kept.daily)):
        if older is not None:
            cutoff = prune.prune_cutoff(older)
            gone = rollups.prune_grain(settings, grain, cutoff)
            out.write(
                f"deleted {gone} {grain} rollup rows older than {cutoff:%Y-%m-%dT%H:%M:%SZ}\n"
            )
