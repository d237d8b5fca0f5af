"""What a cycle did: each metric's result, the cycle's report, a backfill's report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from analytics_cli.timeutil import iso

if TYPE_CHECKING:
    from pathlib import Path

    from analytics_cli.config.schema import MetricSpec

Status = Literal["stored", "replaced", "present", "failed", "checked"]


@dataclass(frozen=True)
class MetricResult:
    """What happened to one metric in a cycle."""

    type: str
    status: Status
    count: Decimal | None = None
    error: str | None = None
    # The [[source]] the row came from (None: the single source, or an HTTP metric).
    source: str | None = None
    # How many rows a dimensional metric gave (its count stays None).
    series: int | None = None
    # The metric's own slot, when its ``every`` floors it to another than the cycle's.
    slot: datetime | None = None


@dataclass
class CycleReport:
    """The outcome of one cycle, rendered by the CLI and returned as ``--json``."""

    slot: datetime
    interval_seconds: int
    collected_at: datetime | None = None
    results: list[MetricResult] = field(default_factory=list)
    duration: float = 0.0
    dry_run: bool = False
    note: str | None = None
    # Spooled cycles of earlier runs written before this one, and how many rows they wrote.
    replayed: int = 0
    replayed_rows: int = 0
    # The spool file being replayed (named by any error it meets).
    replaying: Path | None = None
    # Set when the run ends without storing the cycle (exit 3): the error line, and how
    # many rows of the cycle wait in the spool (None: nothing was spooled).
    error: str | None = None
    spooled_rows: int | None = None
    # Missing slots of backfillable metrics filled by this cycle (catch-up), and the gaps
    # found to fill.
    caught_up: int = 0
    gaps: list[tuple[datetime, list[tuple[MetricSpec, str | None]]]] = field(default_factory=list)

    @property
    def failed(self) -> list[MetricResult]:
        """Metrics that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every metric is stored or already there, 1 when some failed, 3 when the
        cycle could not be stored at all."""
        if self.error is not None:
            return 3
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        """How many metrics ended in each status."""
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the report."""
        return {
            "slot": iso(self.slot),
            "interval_seconds": self.interval_seconds,
            "collected_at": iso(self.collected_at) if self.collected_at else None,
            "dry_run": self.dry_run,
            "duration_seconds": round(self.duration, 3),
            "note": self.note,
            "exit_code": self.exit_code,
            **({"replayed_spooled_slots": self.replayed} if self.replayed else {}),
            **({"spooled_rows_written": self.replayed_rows} if self.replayed else {}),
            **({"error": self.error} if self.error is not None else {}),
            **({"spooled_rows": self.spooled_rows} if self.spooled_rows is not None else {}),
            **({"caught_up_slots": self.caught_up} if self.caught_up else {}),
            "metrics": [
                {
                    "type": r.type,
                    "status": r.status,
                    "count": number(r.count),
                    **({"source": r.source} if r.source is not None else {}),
                    **({"series": r.series} if r.series is not None else {}),
                    **({"slot": iso(r.slot)} if r.slot is not None else {}),
                    **({"error": r.error} if r.error else {}),
                }
                for r in self.results
            ],
        }


def number(value: Decimal | None) -> int | float | None:
    """A Decimal as a JSON number: exact integers stay integers."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return int(value)
    return float(value)


@dataclass
class BackfillReport:
    """What a backfill did: slots looked at, written, already there; failures per metric."""

    since: datetime
    until: datetime
    slots: int = 0
    written: int = 0
    present: int = 0
    busy: int = 0
    failed: list[MetricResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when some metric failed at some slot, else 0."""
        return 1 if self.failed else 0
