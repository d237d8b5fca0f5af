"""The write skeleton, the same for every layout: one store connection, the slots' locks,
the presence check, the sources read, every batch written together or not at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from analytics_cli.config.schema import Settings
from analytics_cli.cycle.plan import Job, missing_slots
from analytics_cli.cycle.read import Batch, read_all
from analytics_cli.cycle.replay import replay, spool_cycle
from analytics_cli.cycle.results import CycleReport, MetricResult, Status
from analytics_cli.cycle.table import as_failures, prepared_layout, write_refusing
from analytics_cli.engines.session import grant_hint
from analytics_cli.engines.shapes import SlotBusy
from analytics_cli.engines.stores import open_store
from analytics_cli.errors import DatabaseError, StoreError
from analytics_cli.samples import MetricFailure, Outcome, Series, storable


def write_slot(
    settings: Settings,
    jobs: list[Job],
    slots: Mapping[str, datetime],
    report: CycleReport,
    *,
    replace: bool,
    replay_spool: bool = True,
) -> None:
    """The write skeleton, the same for every layout, on ONE store connection.

    First transaction: find (or create) the table, then write any spooled cycles. Second:
    the locks of the cycle's slots, the presence check, the sources read, every batch
    written; committed together or not at all. When the store fails, the batches read go
    to the spool.
    """
    own = {t: s for t, s in slots.items() if s != report.slot}
    batches: list[Batch] | None = None
    try:
        what, needs = (
            ("collect --replace", "UPDATE, DELETE") if replace else ("collect", "SELECT, INSERT")
        )
        refused = grant_hint(what, needs, settings.table, settings.store_dsn)
        with open_store(
            settings, doing="store write failed, nothing was stored", refused=refused
        ) as found:
            layout = prepared_layout(found, settings)
            conn = found.conn
            layout.refuse(settings, [spec for spec, _ in jobs])
            if settings.spool_enabled and replay_spool:
                replay(found, layout, settings, report)
            try:
                with conn.transaction():
                    present: set[tuple[str, str | None]] = set()
                    # In time order, so that concurrent runs never wait on each other in a cycle.
                    for at in sorted(set(slots[spec.type] for spec, _ in jobs)):
                        layout.lock(conn, settings, at)
                        if not replace:
                            mine = [job for job in jobs if slots[job[0].type] == at]
                            present |= layout.present(conn, at, mine)
                    todo = [job for job in jobs if (job[0].type, job[1]) not in present]
                    already = [
                        MetricResult(s.type, "present", source=n, slot=own.get(s.type))
                        for s, n in jobs
                        if (s.type, n) in present
                    ]
                    if not todo:
                        report.results = already
                        report.note = "slot already collected"
                        return
                    batches = read_all(settings, todo, slots)
                    for batch in batches:
                        batch.outcomes = [layout.fit(storable(o)) for o in batch.outcomes]
                    report.collected_at = min(b.collected_at for b in batches)
                    status: Status = "replaced" if replace else "stored"
                    results = []
                    for batch in batches:
                        written: dict[str, bool] = {}
                        for at, outcomes in _by_slot(batch.outcomes, slots).items():
                            done, declined = write_refusing(
                                found,
                                layout,
                                (at, batch.collected_at, batch.source),
                                outcomes,
                                replace=replace,
                            )
                            written |= done
                            batch.outcomes = as_failures(batch.outcomes, declined)
                        results += batch_results(batch, status, written, own)
                    report.results = in_job_order(results + already, jobs)
                if settings.catch_up and not replace:
                    # The recent gaps of backfillable metrics, looked up on this connection.
                    filled = [job for job in jobs if job[0].backfill]
                    if filled:
                        report.gaps = missing_slots(
                            settings,
                            filled,
                            report.slot - settings.catch_up,
                            report.slot,
                            gaps_only=True,
                            found=found,
                            layout=layout,
                        )
            except SlotBusy:
                report.note = "another run holds this slot's lock; it collects the slot"
                report.results = []
    except StoreError as exc:
        if report.replaying is not None:
            # Every error about a spool file names the file.
            exc = StoreError(f"{exc} (replaying spool file {report.replaying})", hint=exc.hint)
        if not settings.spool_enabled:
            raise exc from None
        if batches is None:
            # The store failed before the sources were read: read them now, the numbers of
            # this slot cannot be counted later.
            try:
                batches = read_all(settings, jobs, slots)
            except DatabaseError:
                raise StoreError(
                    f"{exc}; the source could not be read either, nothing was spooled",
                    hint=exc.hint,
                ) from None
        raise spool_cycle(exc, settings, report, slots, batches, replace=replace) from None


def _by_slot(
    outcomes: Sequence[Outcome], slots: Mapping[str, datetime]
) -> dict[datetime, list[Outcome]]:
    out: dict[datetime, list[Outcome]] = {}
    for outcome in outcomes:
        out.setdefault(slots[outcome.type], []).append(outcome)
    return out


def batch_results(
    batch: Batch,
    status: Status,
    written: dict[str, bool] | None,
    own: Mapping[str, datetime] | None = None,
) -> list[MetricResult]:
    """The results of a batch; ``own`` names the slots that differ from the cycle's."""
    out = []
    for outcome in batch.outcomes:
        source = batch.source
        at = (own or {}).get(outcome.type)
        if isinstance(outcome, MetricFailure):
            out.append(
                MetricResult(outcome.type, "failed", error=outcome.error, source=source, slot=at)
            )
            continue
        # Written False: the row was already there (a concurrent run without the lock).
        done: Status = status
        if written is not None and not written.get(outcome.type, False):
            done = "present"
        if isinstance(outcome, Series):
            if not outcome.samples and status != "checked":
                done = status  # nothing to write is still a successful collection
            out.append(
                MetricResult(
                    outcome.type, done, source=source, series=len(outcome.samples), slot=at
                )
            )
        else:
            out.append(MetricResult(outcome.type, done, outcome.count, source=source, slot=at))
    return out


def in_job_order(results: list[MetricResult], jobs: list[Job]) -> list[MetricResult]:
    order = {(spec.type, name): i for i, (spec, name) in enumerate(jobs)}
    return sorted(results, key=lambda r: order.get((r.type, r.source), len(order)))
