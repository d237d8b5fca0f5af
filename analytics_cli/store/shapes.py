"""What the store's readers take and give: a selection of rows, points, per-type summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import sql

    from analytics_cli.grain import Plan

# The name of the --by series whose rows have no value (JSON null) for the key.
NONE_LABEL = "(none)"

# Buckets are aligned to a Monday midnight UTC so that daily and weekly buckets start on
# calendar boundaries (date_bin's origin).
BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)

AGGREGATES = ("avg", "min", "max", "sum", "last")


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
    # the native ones (Layout.selection sets it), None for the native table.
    source: sql.Composable | None = None
    # --where key=value pairs: rows whose metadata contains all of them (jsonb @>).
    where: tuple[tuple[str, str], ...] = ()
    # --by key: one series per metadata value (bucketing keeps the values apart), limited
    # to by_values when given (the top N).
    by: str | None = None
    by_values: tuple[str | None, ...] | None = None
    # Read per-slot totals instead of rows: each slot (``"timestamp"`` floored to this
    # interval) is one point whose value is the sum of its rows (every series of a
    # dimensional metric, every [[source]]), kept apart per value of --by. None: the rows.
    slot: timedelta | None = None
    # Where hourly and daily rollups answer a bucketed read (store.rollup_read sets it).
    rollup: Plan | None = None


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
