"""``db rollup --rebuild``, ``db init``'s first build and [retention]'s expiry of the hourly
and daily rollups, through the Store (the engine keeps them, or says they do not apply)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.engines.stores import open_store

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings
    from analytics_cli.engines.shapes import Rebuilt


def rebuild(settings: Settings, progress: Callable[[int, int], None] | None = None) -> Rebuilt:
    """Rebuild the rollups from the rows the store holds (older buckets are kept)."""
    with open_store(settings, doing="rollup rebuild stopped") as found:
        return found.rollups.rebuild(progress)


def init_built(settings: Settings, progress: Callable[[int, int], None] | None = None) -> bool:
    """``db init``: build the rollups of a table that has rows but no built rollups yet."""
    with open_store(settings, doing="cannot prepare the rollups") as found:
        return found.rollups.init_built(progress)


def prune_grain(settings: Settings, grain: str, cutoff: datetime) -> int:
    """Delete the hourly or daily buckets that start before ``cutoff``; how many went."""
    with open_store(settings, doing=f"prune of {grain} rollups stopped") as found:
        return found.rollups.prune_grain(grain, cutoff)
