"""The Source seam: open one consistent read-only snapshot, run metric specs in it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec
    from analytics_cli.metrics import Outcome


# The slot each metric type is counted for (its own ``every`` floors it), bound as %(slot)s.
Slots = Mapping[str, datetime]


@dataclass(frozen=True)
class Snapshot:
    """What one source gave: when its snapshot was taken, and one outcome per metric spec."""

    collected_at: datetime
    outcomes: list[Outcome]


@dataclass(frozen=True)
class FullScan:
    """A full scan over a large table, with the index that would avoid it."""

    table: str
    rows: int
    filter: str
    suggestion: str | None


@dataclass
class MetricPlan:
    """One metric's plan: estimated cost, real time, flagged scans (or the error)."""

    type: str
    cost: float = 0.0
    time_ms: float = 0.0
    scans: list[FullScan] = field(default_factory=list)
    error: str | None = None


class Source(Protocol):
    """A platform database of one engine, reached through one connection string.

    ``read`` opens ONE consistent read-only snapshot, runs every spec in it (a failing or
    hostile metric fails alone) and closes it; it raises DatabaseError only when the
    database cannot be reached or the snapshot is lost. ``explain`` does the same with the
    engine's plan of each query.
    """

    engine: str

    def read(self, specs: Sequence[MetricSpec], slots: Slots) -> Snapshot:
        """Every spec's outcome, all from one snapshot; ``slots`` gives each type's slot."""
        ...

    def explain(self, specs: Sequence[MetricSpec], slot: datetime) -> list[MetricPlan]:
        """Every spec's plan, cost and time, from one read-only snapshot."""
        ...

    def cancel(self) -> None:
        """From another thread: stop the queries of a read in progress (it then fails)."""
        ...
