"""Backfill: every missing slot of backfillable metrics in a window, each as a cycle of its
own (the catch-up of ``collect`` runs it on the gaps its cycle found)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from analytics_cli.config.schema import Settings
from analytics_cli.cycle.plan import Job, Missing, missing_slots
from analytics_cli.cycle.results import BackfillReport, CycleReport, MetricResult
from analytics_cli.cycle.write import write_slot


def backfill(
    settings: Settings,
    jobs: list[Job],
    *,
    since: datetime,
    until: datetime,
    progress: Callable[[int, int], None] | None = None,
    gaps_only: bool = False,
    missing: Missing | None = None,
) -> BackfillReport:
    """Compute every missing slot in [since, until] of backfillable metrics, oldest first,
    each slot as a cycle of its own (one snapshot, the slot's lock, stored once).

    ``gaps_only`` (catch-up): only the slots after a metric's first stored slot in the
    window, so that a first run does not invent a history before the collector existed.
    """
    jobs = [job for job in jobs if job[0].backfill]
    report = BackfillReport(since, until)
    if missing is None:
        missing = missing_slots(settings, jobs, since, until, gaps_only=gaps_only)
    report.slots = len(missing)
    for index, (at, todo) in enumerate(missing):
        cycle = CycleReport(at, int(settings.interval.total_seconds()))
        write_slot(
            settings,
            todo,
            {spec.type: at for spec, _ in todo},
            cycle,
            replace=False,
            replay_spool=False,
        )
        if cycle.note and cycle.note.startswith("another run"):
            report.busy += 1
        elif any(r.status == "stored" for r in cycle.results):
            report.written += 1
        else:
            report.present += 1
        report.failed += [replace_slot(r, at) for r in cycle.failed]
        if progress is not None:
            progress(index + 1, len(missing))
    return report


def replace_slot(result: MetricResult, at: datetime) -> MetricResult:
    """The result, naming the slot it belongs to."""
    from dataclasses import replace

    return replace(result, slot=at)
