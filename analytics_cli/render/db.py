"""What ``db init`` and ``db migrate`` did."""

from __future__ import annotations

from typing import Any

from analytics_cli.console import Output


def db_init(out: Output, table: str, created: bool) -> None:
    """What ``db init`` did."""
    state = "created" if created else "already exists"
    out.info(f"table {table}: {state}")


def migrated(out: Output, table: str, done: Any) -> None:
    """What ``db migrate --partition`` did (``done``: a migrate.Migrated)."""
    if done.already:
        out.info(f"table {table}: already partitioned ({done.partitions} partitions)")
        return
    out.info(
        f"table {table}: partitioned by month ({done.partitions} partitions); "
        f"{done.rows} rows copied in {done.batches} batches, count and checksum equal"
    )
