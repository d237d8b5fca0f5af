"""The options of the history commands (show, export, report): types, window, buckets, filters."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from analytics_cli.commands.common import AGO


class Agg(StrEnum):
    """How points in one bucket are combined."""

    avg = "avg"
    min = "min"
    max = "max"
    sum = "sum"
    last = "last"


TypeOpt = Annotated[
    list[str] | None,
    typer.Option("--type", "-t", help="Metric type (repeatable).", show_default=False),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        help=f"End of the window (exclusive): {AGO}. Default: now.",
        show_default=False,
    ),
]
BucketOpt = Annotated[
    str | None,
    typer.Option(
        "--bucket",
        help="Aggregate into buckets of this size (aligned to UTC): 1h, 1d, 1w, 1y = 365 days.",
        show_default=False,
    ),
]
AggOpt = Annotated[Agg, typer.Option("--agg", help="How a bucket's points are combined.")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="Only rows whose metadata has key=value, e.g. location=Lobby or source=eu "
        "(repeatable; all must match).",
        show_default=False,
    ),
]


def where_pairs(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    """Parse --where key=value options."""
    from analytics_cli.errors import ConfigError

    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--where {item!r} is not key=value", hint="for example: --where location=Lobby"
            )
        key = key.strip()
        if key in pairs and pairs[key] != value:
            raise ConfigError(f"--where gives two values for {key!r}; a row has only one")
        pairs[key] = value
    return tuple(pairs.items())


def window(
    since: str | None, until: str | None, bucket: str | None, *, open_end: bool = True
) -> tuple[Any, Any, Any]:
    """Parse --since / --until / --bucket (now is read once so both ends agree)."""
    from analytics_cli.errors import ConfigError
    from analytics_cli.timeutil import parse_duration, parse_when, utcnow

    now = utcnow()
    start = parse_when(since, now=now, what="--since") if since else None
    end = parse_when(until, now=now, what="--until") if until else None if open_end else now
    if start is not None and end is not None and start >= end:
        raise ConfigError("--since must be before --until")
    size = parse_duration(bucket, what="--bucket") if bucket else None
    return start, end, size


def types(*groups: list[str] | None) -> tuple[str, ...] | None:
    """The metric types named by the arguments and --type, each once, in order."""
    chosen: list[str] = []
    for group in groups:
        for name in group or []:
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen) or None
