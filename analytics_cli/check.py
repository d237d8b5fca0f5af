"""``config check``: run every metric read-only and report; with ``--explain``, their plans."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.config.schema import Settings
from analytics_cli.engines.shapes import USES
from analytics_cli.engines.stores import open_store
from analytics_cli.timeutil import floor_slot, utcnow

if TYPE_CHECKING:
    from analytics_cli.engines.base import MetricPlan
    from analytics_cli.samples import MetricFailure, Sample


@dataclass
class CheckReport:
    """What ``config check`` found: the store table's state and every metric's value."""

    slot: datetime
    collected_at: datetime
    table_exists: bool
    outcomes: list[Sample | MetricFailure] = field(default_factory=list)
    plans: list[MetricPlan] = field(default_factory=list)
    # Each use of the store (collect, collect --replace, prune) with the privileges it needs
    # and of those the ones the store account lacks.
    grants: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    @property
    def cannot_collect(self) -> tuple[str, ...]:
        """What the account lacks for a plain collect (INSERT; CREATE for an absent table)."""
        return next((missing for use, _, missing in self.grants if use == "collect"), ())

    @property
    def failed(self) -> int:
        """How many metrics failed."""
        from analytics_cli.samples import MetricFailure

        return sum(1 for o in self.outcomes if isinstance(o, MetricFailure))

    @property
    def exit_code(self) -> int:
        """0 when every metric ran and collect may write, else 1 (as for collect)."""
        return 1 if self.failed or self.cannot_collect else 0


def check(settings: Settings, *, explain: bool = False) -> CheckReport:
    """Connect to both databases and run every enabled metric read-only; write nothing."""
    from analytics_cli.cycle.plan import plan
    from analytics_cli.cycle.read import flatten, read_all
    from analytics_cli.metrics import enabled_metrics

    specs = enabled_metrics(settings)
    with open_store(settings, doing="store database error", read_only=True) as found:
        layout = found.detect()
        if layout is not None:
            layout.refuse(settings, specs)
        held = found.privileges(layout is not None)
        creates, prune_grants = found.creates_table, found.prune_grants
    exists = layout is not None
    slot = floor_slot(utcnow(), settings.interval)
    # Every source in its own snapshot, then the HTTP metrics (as one collect cycle reads).
    batches = read_all(settings, plan(settings, specs, None), slot)
    collected_at = min((b.collected_at for b in batches), default=utcnow())
    report = CheckReport(slot, collected_at, exists, flatten(batches))
    report.grants = needed_grants(
        held, exists=exists, creates_table=creates, prune_grants=prune_grants
    )
    if explain:
        report.plans = plans(settings, slot)
    return report


def needed_grants(
    held: set[str], *, exists: bool, creates_table: bool, prune_grants: tuple[str, ...]
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Each use of the store, what it needs and what of that is missing. An absent table is
    created by the first collect (CREATE in its schema) where the store creates tables;
    prune needs DELETE and what the store's batches lock with (``prune_grants``)."""
    if not exists and creates_table:
        return [("collect", ("CREATE",), () if "CREATE" in held else ("CREATE",))]
    found: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    for use, needs in USES:
        if use == "prune":
            needs = ("DELETE", *prune_grants)
        found.append((use, needs, tuple(p for p in needs if p not in held)))
    return found


def plans(settings: Settings, slot: datetime) -> list[MetricPlan]:
    """The plans of the SQL metrics, on the first [[source]] when there are several."""
    from analytics_cli import explain
    from analytics_cli.metrics import enabled_metrics

    target = replace(settings, source_dsn=settings.sources[0].dsn) if settings.sources else settings
    sql_metrics = [m for m in enabled_metrics(settings) if m.http is None]
    return explain.explain(target, sql_metrics, slot)
