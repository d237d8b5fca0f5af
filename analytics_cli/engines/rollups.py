"""The rollups of a table that has none (the platform's own ``analytics`` table): the
``Rollups`` protocol of ``base.py`` answered with nothing to keep, and one refusal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.engines.shapes import NOT_APPLICABLE

if TYPE_CHECKING:
    from analytics_cli.engines.base import Layout
    from analytics_cli.engines.shapes import Reach, Rebuilt


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
