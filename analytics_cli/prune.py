"""``prune``: delete old rows in short batches, and count what a prune would delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from analytics_cli.config.schema import Settings
from analytics_cli.engines.stores import open_store
from analytics_cli.timeutil import utcnow

PRUNE_BATCH = 10_000


def prune_cutoff(older_than: timedelta, now: datetime | None = None) -> datetime:
    """Rows whose slot starts before this time are pruned."""
    return (now or utcnow()) - older_than


def count_older(settings: Settings, cutoff: datetime) -> int:
    """How many rows a prune with this cutoff would delete (0 when the table is absent)."""
    with open_store(settings, doing="store database error", read_only=True) as found:
        layout = found.detect()
        if layout is None:
            return 0
        return found.count_older(layout, cutoff)


@dataclass(frozen=True)
class Pruned:
    """What a prune removed: rows in all, DELETE transactions, whole partitions dropped."""

    rows: int
    batches: int
    dropped: int = 0


def prune(
    settings: Settings,
    cutoff: datetime,
    *,
    batch_size: int = PRUNE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Pruned:
    """Delete rows older than ``cutoff``: expired monthly partitions are dropped whole, the
    rest goes in short DELETE transactions."""
    with open_store(settings, doing="prune stopped") as found:
        layout = found.detect()
        if layout is None:
            return Pruned(0, 0)
        return Pruned(*found.prune(layout, cutoff, batch_size, progress))
