"""Sources: one consistent read-only snapshot of a platform database per cycle, per engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings
    from analytics_cli.sources.base import Source


def open_source(dsn: str, settings: Settings) -> Source:
    """The Source for a connection string, chosen by its engine (the DSN's scheme)."""
    from analytics_cli.dsn import engine_of

    engine = engine_of(dsn)
    # Imported here: only the engine in use is loaded (and PyMySQL is an optional extra).
    if engine == "mysql":
        from analytics_cli.sources.mysql import MySQLSource

        return MySQLSource(dsn, settings)
    from analytics_cli.sources.postgresql import PostgresSource

    return PostgresSource(dsn, settings)
