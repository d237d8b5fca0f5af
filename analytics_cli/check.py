"""``config check``: run every metric read-only and report; with ``--explain``, their plans."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli import irengine
from analytics_cli.config import Settings
from analytics_cli.db import connect, database_error
from analytics_cli.timeutil import floor_slot, utcnow

if TYPE_CHECKING:
    from analytics_cli.explain import MetricPlan
    from analytics_cli.metrics import MetricFailure, Sample


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
    import psycopg

    from analytics_cli.collect import flatten, plan, read_all
    from analytics_cli.metrics import enabled_metrics

    specs = enabled_metrics(settings)
    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn:
            conn.read_only = True
            exists = irengine.require_table(conn, settings)
            if irengine.layout_of(conn, settings) == irengine.IR_ENGINE:
                irengine.refuse_dimensional(settings, specs)
            conn.rollback()
    except psycopg.Error as exc:
        raise database_error(exc, settings.store_dsn, doing="store database error") from None
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
