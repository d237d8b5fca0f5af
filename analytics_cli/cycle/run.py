"""One collection cycle end to end: plan, read (or only check, ``--dry-run``), write through
the skeleton, then catch up the recent gaps."""

from __future__ import annotations

import time
from datetime import datetime

from analytics_cli.config.schema import Settings
from analytics_cli.cycle.backfill import backfill
from analytics_cli.cycle.plan import plan, slots_of
from analytics_cli.cycle.read import read_all
from analytics_cli.cycle.results import CycleReport
from analytics_cli.cycle.write import batch_results, in_job_order, write_slot
from analytics_cli.errors import DatabaseError
from analytics_cli.metrics import enabled_metrics
from analytics_cli.samples import storable
from analytics_cli.timeutil import floor_slot, utcnow


def run_cycle(
    settings: Settings,
    *,
    at: datetime | None = None,
    only: list[str] | None = None,
    dry_run: bool = False,
    replace: bool = False,
    sources: list[str] | None = None,
) -> CycleReport:
    """Collect one slot: every metric once (per source), written together or not at all.

    A metric with its own ``every`` is counted for its own slot, by the first cycle that
    finds that slot missing. Then, unless ``[collect] catch_up`` is 0, the missing slots of
    backfillable metrics in the window before now are filled, each slot on its own.
    """
    started = time.monotonic()
    if at is not None:
        from analytics_cli.timeutil import check_slot_time

        check_slot_time(at, now=utcnow(), interval=settings.interval, what="--at")
    moment = at or utcnow()
    specs = enabled_metrics(settings, only)
    jobs = plan(settings, specs, sources)
    slot = floor_slot(moment, settings.interval)
    slots = slots_of(settings, specs, moment)
    report = CycleReport(slot, int(settings.interval.total_seconds()), dry_run=dry_run)
    own = {t: s for t, s in slots.items() if s != slot}
    if dry_run:
        batches = read_all(settings, jobs, slots)
        for batch in batches:
            # What the store would refuse shows as that metric's failure here too.
            batch.outcomes = [storable(o) for o in batch.outcomes]
        report.collected_at = min((b.collected_at for b in batches), default=None)
        results = [r for b in batches for r in batch_results(b, "checked", None, own)]
        report.results = in_job_order(results, jobs)
        report.duration = time.monotonic() - started
        return report
    try:
        write_slot(settings, jobs, slots, report, replace=replace)
    except DatabaseError as exc:
        # Exit 3 still has its report (--json) and summary line: what was spooled, and why.
        report.error = str(exc)
        report.results = []
        report.duration = time.monotonic() - started
        exc.report = report
        raise
    if report.gaps:
        done = backfill(
            settings, [], since=slot - settings.catch_up, until=slot, missing=report.gaps
        )
        report.caught_up = done.written
    report.duration = time.monotonic() - started
    return report
