"""What ``prune`` would delete and did."""

from __future__ import annotations

from datetime import datetime

from analytics_cli.timeutil import iso


def prune_scope(cutoff: datetime, table: str) -> str:
    """Which rows a prune deletes, in words."""
    return f"older than {iso(cutoff)} from table {table}"


def prune_preview(todo: int, scope: str) -> str:
    """``prune --dry-run``: what would go."""
    return f"would delete {todo} rows {scope}\n"


def pruned(deleted: int, batches: int, scope: str, *, dropped: int = 0) -> str:
    """What a prune deleted, in how many transactions (and whole partitions dropped)."""
    parts = f"{dropped} partition{'' if dropped == 1 else 's'} dropped, " if dropped else ""
    return (
        f"deleted {deleted} rows {scope} ({parts}{batches} batch{'' if batches == 1 else 'es'})\n"
    )
