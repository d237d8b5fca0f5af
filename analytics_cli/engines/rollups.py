"""What commands ask of a store's hourly and daily rollups: build them, keep them through a
prune, expire them, say how far they reach. Each engine's Store answers through its own
``rollups``; the engine without them says so in one line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from analytics_cli.engines.base import Layout

NOT_APPLICABLE = (
    "rollups do not apply to the iR Engine layout (the platform's table): "
    "its history is read from its rows"
)


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild wrote: hourly rows, over how many month-long chunks."""

    hourly: int
    chunks: int


@dataclass(frozen=True)
class Reach:
    """What the rollups hold, for ``status``: whether built, the oldest hourly and daily
    bucket, and where stored rows were pruned (None: never)."""

    built: bool
    hourly: datetime | None = None
    daily: datetime | None = None
    raw_from: datetime | None = None


class Rollups(Protocol):
    """The hourly and daily rollups of one Store's table."""

    def rebuild(self, progress: Callable[[int, int], None] | None) -> Rebuilt:
        """Rebuild them from the rows the store holds (older buckets are kept); ConfigError
        (NOT_APPLICABLE) on a table that has none."""
        ...

    def init_built(self, progress: Callable[[int, int], None] | None) -> bool:
        """``db init``: build them when the table has rows but no built rollups; True if
        it did."""
        ...

    def before_prune(self, layout: Layout, cutoff: datetime) -> None:
        """Roll up what a prune is about to delete and record the cut (committed)."""
        ...

    def prune_grain(self, grain: str, cutoff: datetime) -> int:
        """Delete the ``hourly`` or ``daily`` buckets that start before ``cutoff``; how many
        went."""
        ...

    def reach(self, layout: Layout) -> Reach | None:
        """How far they reach; None when there are none (or not on this layout)."""
        ...


class NoRollups:
    """The rollups of a table that has none (the iR Engine's): nothing to keep or expire."""

    def rebuild(self, progress: Callable[[int, int], None] | None) -> Rebuilt:
        """Refused in one line: there is nothing to build."""
        from analytics_cli.errors import ConfigError

        raise ConfigError(NOT_APPLICABLE)

    def init_built(self, progress: Callable[[int, int], None] | None) -> bool:
        """Nothing to build."""
        return False

    def before_prune(self, layout: Layout, cutoff: datetime) -> None:
        """Nothing to keep: the rows go as they always did."""

    def prune_grain(self, grain: str, cutoff: datetime) -> int:
        """Nothing to expire."""
        return 0

    def reach(self, layout: Layout) -> Reach | None:
        """None: status says rollups do not apply."""
        return None
