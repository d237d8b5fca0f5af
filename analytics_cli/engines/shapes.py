"""The shapes the engines' stores take and give: selections, points, summaries, the
facts status and prune report. Data only; a leaf below the protocols of ``base.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics_cli.grain import Plan

# The name of the --by series whose rows have no value (JSON null) for the key.
NONE_LABEL = "(none)"

# A metric and the [[source]] it runs on (None: the single source, or an HTTP metric).
Key = tuple[str, str | None]

# Buckets are aligned to a Monday midnight UTC so that daily and weekly buckets start on
# calendar boundaries (date_bin's origin).
BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)

AGGREGATES = ("avg", "min", "max", "sum", "last")

# The columns of an export, in order.
EXPORT_KEYS = ("type", "count", "timestamp", "metadata", "collected_at")

# What each use of the store writes with: a cycle inserts; --replace updates and deletes
# a slot's old rows; prune deletes, locking each batch (FOR UPDATE: UPDATE on PostgreSQL).
USES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("collect", ("INSERT",)),
    ("collect --replace", ("UPDATE", "DELETE")),
    ("prune", ("DELETE", "UPDATE")),
)
WRITES = ("INSERT", "UPDATE", "DELETE")


class SlotBusy(Exception):
    """Another run held the slot's lock for longer than the wait: it is collecting the slot."""


@dataclass(frozen=True)
class Selection:
    """Which rows to read: table, types (None = all), half-open window, optional bucketing."""

    table: str
    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] | None = None
    bucket: timedelta | None = None
    agg: str = "avg"
    # What to read from instead of the table itself: the layout's mapping of its columns to
    # the native ones (Store.selection sets it), None for the native table. Only the
    # engine that set it reads it.
    source: Any = None
    # --where key=value pairs: rows whose metadata contains all of them.
    where: tuple[tuple[str, str], ...] = ()
    # --by key: one series per metadata value (bucketing keeps the values apart), limited
    # to by_values when given (the top N).
    by: str | None = None
    by_values: tuple[str | None, ...] | None = None
    # Read per-slot totals instead of rows: each slot (``"timestamp"`` floored to this
    # interval) is one point whose value is the sum of its rows (every series of a
    # dimensional metric, every [[source]]), kept apart per value of --by. None: the rows.
    slot: timedelta | None = None
    rollup: Plan | None = None  # where rollups answer a bucketed read (the engine sets it)


@dataclass(frozen=True)
class Point:
    """One point of a series: a stored row, or one bucket's aggregate (metadata None)."""

    type: str
    timestamp: datetime
    count: Decimal
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class TypeSummary:
    """One metric type over a window: latest value, min/avg/max, points and distinct slots."""

    type: str
    latest: Decimal
    latest_at: datetime
    min: Decimal
    avg: Decimal
    max: Decimal
    points: int
    first_at: datetime
    slots: int


@dataclass(frozen=True)
class Retention:
    """What the store holds in time: its oldest row, and its monthly partitions if any."""

    oldest: datetime | None
    partitioned: bool
    # Monthly partitions (the DEFAULT one aside), first and last month.
    months: int = 0
    first: datetime | None = None
    last: datetime | None = None


@dataclass(frozen=True)
class Ends:
    """One metric type's stored time range: its first row, its newest row up to now, and its
    newest row of all (later than now when a clock or --at was wrong)."""

    first: datetime | None
    newest: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class Migrated:
    """What a migration did: rows (checked equal by count and checksum), batches, partitions."""

    rows: int
    checksum: int
    batches: int
    partitions: int
    already: bool = False


# --- Rollups: what commands learn of them -----------------------------------------------

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
