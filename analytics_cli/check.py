"""``config check``: run every metric read-only and report; with ``--explain``, their plans."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.config import Settings
from analytics_cli.db import store_session
from analytics_cli.store.layout import detect
from analytics_cli.timeutil import floor_slot, utcnow

if TYPE_CHECKING:
    from analytics_cli.metrics import MetricFailure, Sample
    from analytics_cli.sources.base import MetricPlan


@dataclass
class CheckReport:
    """What ``config check`` found: the store table's state and every metric's value."""

    slot: datetime
    collected_at: datetime
    table_exists: bool
    outcomes: list[Sample | MetricFailure] = field(default_factory=list)
    plans: list[MetricPlan] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """How many metrics failed."""
        from analytics_cli.metrics import MetricFailure

        return sum(1 for o in self.outcomes if isinstance(o, MetricFailure))

    @property
    def exit_code(self) -> int:
        """0 when every metric ran, 1 when some failed (as for collect)."""
        return 1 if self.failed else 0


def check(settings: Settings, *, explain: bool = False) -> CheckReport:
    """Connect to both databases and run every enabled metric read-only; write nothing."""
    from analytics_cli.cycle import flatten, plan, read_all
    from analytics_cli.metrics import enabled_metrics

    specs = enabled_metrics(settings)
    with store_session(settings, doing="store database error", read_only=True) as conn:
        layout = detect(conn, settings)
        if layout is not None:
            layout.refuse(settings, specs)
    exists = layout is not None
    slot = floor_slot(utcnow(), settings.interval)
    # Every source in its own snapshot, then the HTTP metrics (as one collect cycle reads).
    batches = read_all(settings, plan(settings, specs, None), slot)
    collected_at = min((b.collected_at for b in batches), default=utcnow())
    report = CheckReport(slot, collected_at, exists, flatten(batches))
    if explain:
        report.plans = plans(settings, slot)
    return report


def plans(settings: Settings, slot: datetime) -> list[MetricPlan]:
    """The plans of the SQL metrics, on the first [[source]] when there are several."""
    from analytics_cli import explain
    from analytics_cli.metrics import enabled_metrics

    target = replace(settings, source_dsn=settings.sources[0].dsn) if settings.sources else settings
    sql_metrics = [m for m in enabled_metrics(settings) if m.http is None]
    return explain.explain(target, sql_metrics, slot)
