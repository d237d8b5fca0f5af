"""``db migrate --partition``: an unpartitioned native table becomes a monthly-partitioned one."""

from __future__ import annotations

from collections.abc import Callable

from analytics_cli.config.schema import Settings
from analytics_cli.engines.shapes import Migrated
from analytics_cli.engines.stores import open_store

__all__ = ["MIGRATE_BATCH", "Migrated", "migrate_partition"]

MIGRATE_BATCH = 10_000


def migrate_partition(
    settings: Settings,
    *,
    batch_size: int = MIGRATE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Migrated:
    """Convert the store table, every row kept; resumable after an interruption."""
    with open_store(settings, doing="migration stopped") as found:
        return found.migrate_partition(batch_size, progress)
