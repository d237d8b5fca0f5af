"""Sources: one consistent read-only snapshot of a platform database per cycle, per engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics_cli.dsn import engine_for

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings
    from analytics_cli.engines.base import Source


def open_source(dsn: str, settings: Settings) -> Source:
    """The Source for a connection string, from its engine (the DSN's scheme)."""
    return engine_for(dsn).open_source(dsn, settings)
