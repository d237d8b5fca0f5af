"""``status``: the latest slot of each metric and the slots missing in the last 24 hours."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from analytics_cli.config.schema import MetricSpec, Settings
from analytics_cli.engines.base import Layout, Store
from analytics_cli.engines.shapes import Reach, Retention
from analytics_cli.engines.stores import open_store
from analytics_cli.errors import DatabaseError
from analytics_cli.timeutil import floor_slot, iso, utcnow

STATUS_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class MetricStatus:
    """One metric type in the store: its latest slot and the slots missing in the window."""

    type: str
    enabled: bool
    latest: datetime | None
    expected: int
    missing: tuple[datetime, ...]
    # Its own schedule (the interval unless the metric sets every), and whether its missing
    # slots can be computed later (collect --backfill).
    every: timedelta | None = None
    backfill: bool = False
    # Older than max_age plus the part of its every beyond the interval.
    stale: bool = False
    # The newest row dated after now (a clock or --at mistake): never taken as fresh.
    future: datetime | None = None


@dataclass
class StatusReport:
    """Freshness of the store: per metric, and the newest row overall."""

    table: str
    now: datetime
    interval: timedelta
    max_age: timedelta
    window_start: datetime
    window_end: datetime
    table_exists: bool
    metrics: list[MetricStatus] = field(default_factory=list)
    # Cycles waiting in the spool for the store: (slot, file), slot None when unreadable.
    spool_dir: str = ""
    spooled: list[tuple[datetime | None, str]] = field(default_factory=list)
    # Spool files of another store (file, the store they name), files that cannot be
    # replayed (file, why), and files set aside in rejected/.
    spool_foreign: list[tuple[str, str]] = field(default_factory=list)
    spool_unreadable: list[tuple[str, str]] = field(default_factory=list)
    spool_rejected: list[str] = field(default_factory=list)
    # The store could not be read (exit 3): the error line and its hint.
    store_error: str | None = None
    store_hint: str | None = None
    # The oldest row and the partitions (native store); None for the iR Engine's table.
    retention: Retention | None = None
    # The hourly and daily rollups (None: none, or not the native table).
    rollups: Reach | None = None

    @property
    def newest(self) -> datetime | None:
        """The newest slot stored for any metric."""
        slots = [m.latest for m in self.metrics if m.latest is not None]
        return max(slots) if slots else None

    @property
    def stale(self) -> bool:
        """True when nothing is stored or the newest row is older than ``max_age``."""
        newest = self.newest
        return newest is None or self.now - newest > self.max_age

    @property
    def exit_code(self) -> int:
        """3 when the store cannot be read, 1 when stale (drives alerts and probes), else 0."""
        if self.store_error is not None:
            return 3
        return 1 if self.stale else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the report."""
        newest = self.newest
        return {
            "table": self.table,
            "now": iso(self.now),
            "interval_seconds": int(self.interval.total_seconds()),
            "max_age_seconds": int(self.max_age.total_seconds()),
            "window": {"start": iso(self.window_start), "end": iso(self.window_end)},
            "table_exists": self.table_exists,
            "newest": iso(newest) if newest else None,
            "newest_age_seconds": _age_seconds(self.now, newest),
            "stale": self.stale,
            "exit_code": self.exit_code,
            "retention": _retention_dict(self.retention, self.table_exists),
            "rollups": _rollups_dict(self.rollups),
            "spooled": [
                {"slot": iso(slot) if slot else None, "file": path} for slot, path in self.spooled
            ],
            "spool_foreign": [{"file": f, "store": store} for f, store in self.spool_foreign],
            "spool_unreadable": [{"file": f, "reason": why} for f, why in self.spool_unreadable],
            "spool_rejected": self.spool_rejected,
            **({"store_error": self.store_error} if self.store_error is not None else {}),
            "future": {m.type: iso(m.future) for m in self.metrics if m.future is not None},
            "metrics": [
                {
                    "type": m.type,
                    "enabled": m.enabled,
                    "latest": iso(m.latest) if m.latest else None,
                    "age_seconds": _age_seconds(self.now, m.latest),
                    "expected_slots": m.expected,
                    "missing_slots": len(m.missing),
                    "missing": [iso(s) for s in m.missing],
                    **({"every_seconds": int(m.every.total_seconds())} if m.every else {}),
                    "stale": m.stale,
                    "backfill": m.backfill,
                }
                for m in self.metrics
            ],
        }


def _rollups_dict(r: Reach | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "built": r.built,
        "oldest_hourly": iso(r.hourly) if r.hourly else None,
        "oldest_daily": iso(r.daily) if r.daily else None,
        "raw_pruned_before": iso(r.raw_from) if r.raw_from else None,
    }


def _retention_dict(r: Retention | None, exists: bool) -> dict[str, Any] | None:
    if not exists:
        return None
    if r is None:
        return {"applies": False}
    return {
        "applies": True,
        "oldest": iso(r.oldest) if r.oldest else None,
        "partitioned": r.partitioned,
        "partitions": r.months,
        "first_month": iso(r.first) if r.first else None,
        "last_month": iso(r.last) if r.last else None,
    }


def _age_seconds(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else int((now - then).total_seconds())


def status(
    settings: Settings, *, max_age: timedelta | None = None, now: datetime | None = None
) -> StatusReport:
    """Read the latest slot of each metric and the missing slots of the last 24 hours."""

    from analytics_cli.metrics import all_metrics, enabled_metrics

    now = now or utcnow()
    enabled = [m.type for m in enabled_metrics(settings)]
    specs = {m.type: m for m in all_metrics(settings)}
    # The current slot may still be collecting: the window is the 24 h of slots before it.
    window_end = floor_slot(now, settings.interval)
    window_start = window_end - STATUS_WINDOW
    report = StatusReport(
        table=settings.table,
        now=now,
        interval=settings.interval,
        max_age=max_age or settings.interval * 2,
        window_start=window_start,
        window_end=window_end,
        table_exists=False,
    )
    from analytics_cli import spool

    folder = spool.spool_dir(settings)
    report.spool_dir = str(folder)
    for item in spool.summary(folder, spool.store_identity(settings)):
        if item.problem is not None:
            report.spool_unreadable.append((str(item.path), item.problem))
        elif item.foreign is not None:
            report.spool_foreign.append((str(item.path), item.foreign))
        else:
            report.spooled.append((item.slot, str(item.path)))
    report.spool_rejected = [str(p) for p in spool.rejected(folder)]
    try:
        _read_store(settings, report, enabled, specs)
    except DatabaseError as exc:
        # The local spool is listed all the same: when the store is down is when it matters.
        report.store_error, report.store_hint = str(exc), exc.hint
    return report


def _read_store(
    settings: Settings, report: StatusReport, enabled: list[str], specs: dict[str, MetricSpec]
) -> None:
    window_start, window_end = report.window_start, report.window_end
    with open_store(settings, doing="store database error", read_only=True) as found:
        layout = found.detect()
        report.table_exists = layout is not None
        stored = found.known_types() if layout is not None else []
        if layout is not None:
            report.retention = found.retention(layout, stored)
            report.rollups = found.rollups.reach(layout)
        for name in [*enabled, *(t for t in stored if t not in enabled)]:
            if layout is None:
                report.metrics.append(MetricStatus(name, True, None, 0, ()))
                continue
            spec = specs.get(name)
            every = spec.every if spec is not None else None
            status = _metric_status(
                found,
                settings,
                layout,
                name,
                name in enabled,
                window_start,
                window_end,
                every,
                report.now,
            )
            limit = report.max_age + ((every or settings.interval) - settings.interval)
            stale = name in enabled and (
                status.latest is None or report.now - status.latest > limit
            )
            report.metrics.append(
                replace(
                    status,
                    every=every,
                    backfill=spec is not None and spec.backfill,
                    stale=stale,
                )
            )


def _metric_status(
    found: Store,
    settings: Settings,
    layout: Layout,
    name: str,
    enabled: bool,
    window_start: datetime,
    window_end: datetime,
    every: timedelta | None,
    now: datetime,
) -> MetricStatus:
    from analytics_cli.timeutil import slots

    step = every or settings.interval
    # A row dated after now is no sign of life: the newest row up to now is what counts.
    ends = found.ends(layout, name, now)
    first, newest = ends.first, ends.newest
    future = ends.last if ends.last is not None and ends.last > now else None
    latest = floor_slot(newest, step) if newest else newest
    if first is None or not enabled:
        # A metric no longer enabled is expected to have gaps: none are reported.
        return MetricStatus(name, enabled, latest, 0, (), future=future)
    # Slots before the metric's first row are not missing: it did not exist yet.
    start = max(window_start, floor_slot(first, step))
    # The metric's own slots that have begun before the window's end.
    expected = [s for s in slots(floor_slot(start, step), window_end, step) if s >= start]
    present = found.slots_with_rows(layout, name, start, window_end, step)
    missing = tuple(s for s in expected if s not in present)
    return MetricStatus(name, enabled, latest, len(expected), missing, future=future)
