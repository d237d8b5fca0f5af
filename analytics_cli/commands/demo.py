"""`demo`: simulate a platform, collect its history slot by slot, and show it."""

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from analytics_cli.commands.common import announce, fail, handled, load, out
from analytics_cli.commands.show import ShowFormat, show

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings

# Each command imports the library inside its body, not here: `--help` then starts
# without loading psycopg, rich or the config parser. No `from __future__ import
# annotations`: Typer reads these signatures on every run, and annotations evaluated
# once at import spare it an eval() per option.


class Scale(StrEnum):
    """How big the demo platform is."""

    small = "small"
    large = "large"


def demo_cmd(
    ctx: typer.Context,
    days: Annotated[
        int, typer.Option("--days", min=1, max=90, help="How many days of history to simulate.")
    ] = 7,
    scale: Annotated[
        Scale,
        typer.Option(
            "--scale",
            help="small: a lively platform collected slot by slot; large: 1 million users and "
            "5 million attendance rows built in the database, collected once (for benchmarks).",
        ),
    ] = Scale.small,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed gives the same platform.")
    ] = 1,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask before writing to a configured database."),
    ] = False,
) -> None:
    """Simulate an iR Engine platform for N days and collect its history.

    With no connection string configured it runs on the embedded PostgreSQL
    (nothing to set up). Users sign up, join and leave world and channel
    instances and chat, with a daily and weekly rhythm. For every 30-minute
    slot the platform is brought to that moment and the real collect cycle
    runs for the slot (as 'collect --at'): the history shown at the end is
    collected, not invented. On a configured database it asks first (--yes
    skips the question) and never drops tables it did not create.
    """
    from analytics_cli import demo as demo_mod
    from analytics_cli.engines.session import resolved
    from analytics_cli.render.demo import demo_next, demo_progress, demo_summary

    with handled():
        settings = load(ctx)
        if not settings.embedded:
            _confirm_demo(settings, days=days, yes=yes)
        with resolved(settings, announce=announce) as live:
            unit = "slots" if scale is Scale.small else "steps"
            with demo_progress(out, unit) as progress:
                result = demo_mod.run(
                    live, days=days, seed=seed, scale=scale.value, progress=progress
                )
            demo_summary(out, result, seed)
            # The history read back by the real 'show': the overview, then one chart.
            window = f"{days}d" if scale is Scale.small else "1h"
            show(ctx, since=window)
            print()
            show(ctx, types=["activeInstances"], since=window, fmt=ShowFormat.chart)
    demo_next(out, result)
    if result.failed:
        raise typer.Exit(1)


def _confirm_demo(settings: "Settings", *, days: int, yes: bool) -> None:
    from analytics_cli import console
    from analytics_cli.render.demo import demo_scope

    if yes:
        return
    what = demo_scope(settings, days)
    if not console.stdin_is_terminal():
        fail(f"{what}: confirmation needed", 2, hint="pass --yes to go ahead without a question")
    if not typer.confirm(f"{what}. Continue?", default=False, err=True):
        fail("cancelled; nothing was changed", 1)
