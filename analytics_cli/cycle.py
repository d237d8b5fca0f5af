"""One collection cycle: plan, read the sources, ONE write skeleton through the Layout, report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from analytics_cli.config import MetricSpec, Settings
from analytics_cli.db import set_statement_timeout, store_session
from analytics_cli.errors import DatabaseError, StoreError
from analytics_cli.metrics import (
    MetricFailure,
    Outcome,
    Sample,
    Series,
    enabled_metrics,
)
from analytics_cli.sources.base import open_source
from analytics_cli.timeutil import floor_slot, iso, utcnow

if TYPE_CHECKING:
    from analytics_cli.store.layout import Layout

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
    # Spooled cycles of earlier runs written before this one.
    replayed: int = 0

    @property
    def failed(self) -> list[MetricResult]:
        """Metrics that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every metric is stored or already there, 1 when some failed."""
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
            "metrics": [
                {
                    "type": r.type,
                    "status": r.status,
                    "count": number(r.count),
                    **({"source": r.source} if r.source is not None else {}),
                    **({"series": r.series} if r.series is not None else {}),
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


# ---------------------------------------------------------------------------- several sources

Job = tuple[MetricSpec, str | None]  # a metric and the [[source]] it runs on (None: single/HTTP)


@dataclass
class Batch:
    """Outcomes read together: one source's snapshot, or the cycle's HTTP metrics."""

    source: str | None
    collected_at: datetime
    outcomes: list[Outcome]

    def samples(self) -> list[Sample]:
        """Every row to store, dimensional metrics flattened."""
        rows: list[Sample] = []
        for outcome in self.outcomes:
            if isinstance(outcome, Sample):
                rows.append(outcome)
            elif isinstance(outcome, Series):
                rows.extend(outcome.samples)
        return rows


def plan(settings: Settings, specs: list[MetricSpec], sources: list[str] | None) -> list[Job]:
    """Which metric runs on which source: every SQL metric on every (chosen) source, unless it
    names its ``sources``; HTTP metrics once per cycle, and not when ``--source`` narrows a run.
    """
    from analytics_cli.errors import ConfigError
    from analytics_cli.metrics import suggest

    names = [s.name for s in settings.sources]
    if sources and not settings.sources:
        raise ConfigError(
            "--source needs [[source]] tables in the config file",
            hint="without them there is one source: the [source] dsn",
        )
    for name in sources or []:
        if name not in names:
            raise ConfigError(f"unknown source {name!r}", hint=suggest(name, names))
    chosen = [n for n in names if not sources or n in sources]
    jobs: list[Job] = []
    for spec in specs:
        if spec.http is not None:
            if not sources:
                jobs.append((spec, None))
        elif not settings.sources:
            jobs.append((spec, None))
        else:
            jobs += [(spec, n) for n in chosen if spec.sources is None or n in spec.sources]
    return jobs


def _tag(outcome: Outcome, source: str) -> Outcome:
    if isinstance(outcome, Sample):
        return Sample(outcome.type, outcome.count, {**outcome.metadata, "source": source})
    if isinstance(outcome, Series):
        tagged = (
            Sample(s.type, s.count, {**s.metadata, "source": source}) for s in outcome.samples
        )
        return Series(outcome.type, tuple(tagged))
    return outcome


def read_all(settings: Settings, jobs: list[Job], slot: datetime) -> list[Batch]:
    """Read every job: each source in its own snapshot, the HTTP metrics outside any.

    Sources are read side by side, ``[collect] source_concurrency`` at once, each cut off by
    its own timeouts; the batches come back in config order whatever finishes first. A
    [[source]] that cannot be reached fails its own metrics only; with the single
    ``[source] dsn`` an unreachable database still stops the run (DatabaseError).
    """
    from analytics_cli.sources.base import Source

    opened: list[Source] = []

    def read_one(dsn: str, name: str | None, specs: list[MetricSpec]) -> Batch:
        source = open_source(dsn, settings)
        opened.append(source)
        if name is None:
            snap = source.read(specs, slot)
            return Batch(None, snap.collected_at, snap.outcomes)
        try:
            snap = source.read(specs, slot)
            at, outcomes = snap.collected_at, snap.outcomes
        except DatabaseError as exc:
            at = utcnow()
            outcomes = [MetricFailure(spec.type, str(exc)) for spec in specs]
        return Batch(name, at, [_tag(o, name) for o in outcomes])

    def read_http(specs: list[MetricSpec]) -> Batch:
        from analytics_cli.sources.http import run_http_metric

        return Batch(None, utcnow(), [run_http_metric(spec) for spec in specs])

    tasks: list[Callable[[], Batch]] = []
    single = [spec for spec, name in jobs if name is None and spec.http is None]
    if single:
        assert settings.source_dsn is not None
        tasks.append(partial(read_one, settings.source_dsn, None, single))
    for source in settings.sources:
        mine = [spec for spec, name in jobs if name == source.name]
        if mine:
            assert source.dsn is not None
            tasks.append(partial(read_one, source.dsn, source.name, mine))
    remote = [spec for spec, name in jobs if spec.http is not None]
    if remote:
        tasks.append(partial(read_http, remote))
    workers = min(settings.source_concurrency, len(tasks))
    if workers <= 1:
        return [task() for task in tasks]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="source")
    try:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]
    except BaseException:
        # Interrupted, or the single source failed: no further source starts and the
        # running queries are cancelled before the threads are joined.
        for reader in list(opened):
            reader.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def flatten(batches: list[Batch]) -> list[Sample | MetricFailure]:
    """Every stored row and failure, for a plain listing (config check)."""
    out: list[Sample | MetricFailure] = []
    for batch in batches:
        for outcome in batch.outcomes:
            if isinstance(outcome, Series):
                out.extend(outcome.samples)
            elif isinstance(outcome, MetricFailure) and batch.source is not None:
                out.append(MetricFailure(outcome.type, f"source {batch.source}: {outcome.error}"))
            else:
                out.append(outcome)
    return out


def _results(batch: Batch, status: Status, written: dict[str, bool] | None) -> list[MetricResult]:
    out = []
    for outcome in batch.outcomes:
        source = batch.source
        if isinstance(outcome, MetricFailure):
            out.append(MetricResult(outcome.type, "failed", error=outcome.error, source=source))
            continue
        # Written False: the row was already there (a concurrent run without the lock).
        done: Status = status
        if written is not None and not written.get(outcome.type, False):
            done = "present"
        if isinstance(outcome, Series):
            if not outcome.samples and status != "checked":
                done = status  # nothing to write is still a successful collection
            out.append(MetricResult(outcome.type, done, source=source, series=len(outcome.samples)))
        else:
            out.append(MetricResult(outcome.type, done, outcome.count, source=source))
    return out


def _ordered(results: list[MetricResult], jobs: list[Job]) -> list[MetricResult]:
    order = {(spec.type, name): i for i, (spec, name) in enumerate(jobs)}
    return sorted(results, key=lambda r: order.get((r.type, r.source), len(order)))


def ensure_store(settings: Settings) -> bool:
    """Create the store table if it does not exist; True when it was created (``db init``)."""
    from analytics_cli.store.layout import ensure

    with store_session(settings, doing="cannot prepare the store table") as conn:
        return ensure(conn, settings)[1]


def run_cycle(
    settings: Settings,
    *,
    at: datetime | None = None,
    only: list[str] | None = None,
    dry_run: bool = False,
    replace: bool = False,
    sources: list[str] | None = None,
) -> CycleReport:
    """Collect one slot: every metric once (per source), written together or not at all."""
    started = time.monotonic()
    specs = enabled_metrics(settings, only)
    jobs = plan(settings, specs, sources)
    slot = floor_slot(at or utcnow(), settings.interval)
    report = CycleReport(slot, int(settings.interval.total_seconds()), dry_run=dry_run)
    if dry_run:
        batches = read_all(settings, jobs, slot)
        report.collected_at = min((b.collected_at for b in batches), default=None)
        results = [r for b in batches for r in _results(b, "checked", None)]
        report.results = _ordered(results, jobs)
        report.duration = time.monotonic() - started
        return report
    write_slot(settings, jobs, slot, report, replace=replace)
    report.duration = time.monotonic() - started
    return report


def write_slot(
    settings: Settings, jobs: list[Job], slot: datetime, report: CycleReport, *, replace: bool
) -> None:
    """The write skeleton, the same for every layout, on ONE store connection.

    First transaction: find (or create) the table, then write any spooled cycles. Second:
    the slot's lock, the presence check, the sources read, every batch written; committed
    together or not at all. When the store fails, the batches read go to the spool.
    """
    from analytics_cli.store.layout import ensure
    from analytics_cli.store.locks import SlotBusy

    batches: list[Batch] | None = None
    try:
        with store_session(settings, doing="store write failed, nothing was stored") as conn:
            layout, _ = ensure(conn, settings)
            layout.refuse(settings, [spec for spec, _ in jobs])
            conn.commit()
            if settings.spool_enabled:
                report.replayed = replay(conn, layout, settings)
            try:
                with conn.transaction():
                    _lock(conn, settings, slot)
                    present = set() if replace else layout.present(conn, slot, jobs)
                    todo = [job for job in jobs if (job[0].type, job[1]) not in present]
                    already = [
                        MetricResult(s.type, "present", source=n)
                        for s, n in jobs
                        if (s.type, n) in present
                    ]
                    if not todo:
                        report.results = already
                        report.note = "slot already collected"
                        return
                    batches = read_all(settings, todo, slot)
                    for batch in batches:
                        batch.outcomes = [layout.fit(o) for o in batch.outcomes]
                    report.collected_at = min(b.collected_at for b in batches)
                    status: Status = "replaced" if replace else "stored"
                    results = []
                    for batch in batches:
                        written = layout.write(
                            conn,
                            slot,
                            batch.collected_at,
                            batch.source,
                            batch.outcomes,
                            replace=replace,
                        )
                        results += _results(batch, status, written)
                    report.results = _ordered(results + already, jobs)
            except SlotBusy:
                report.note = "another run holds this slot's lock; it collects the slot"
                report.results = []
    except StoreError as exc:
        if not settings.spool_enabled:
            raise
        if batches is None:
            # The store failed before the sources were read: read them now, the numbers of
            # this slot cannot be counted later.
            try:
                batches = read_all(settings, jobs, slot)
            except DatabaseError:
                raise StoreError(
                    f"{exc}; the source could not be read either, nothing was spooled",
                    hint=exc.hint,
                ) from None
        raise _spooled(exc, settings, slot, batches, replace=replace) from None


def _lock(conn: Any, settings: Settings, slot: datetime) -> None:
    from analytics_cli.store.locks import lock_slot

    set_statement_timeout(conn, settings)
    lock_slot(conn, settings.table, slot, statement_timeout=settings.statement_timeout)


def _spooled(
    exc: StoreError, settings: Settings, slot: datetime, batches: list[Batch], *, replace: bool
) -> StoreError:
    """Write the slot's rows to the spool; the error the run ends with says where they wait."""
    from analytics_cli import spool

    cycle = spool.Spooled(
        settings.table,
        slot,
        replace,
        tuple(spool.from_outcomes(b.source, b.collected_at, b.outcomes) for b in batches),
    )
    folder = spool.spool_dir(settings)
    try:
        path = spool.write(folder, cycle)
    except OSError as os_exc:
        return StoreError(
            f"{exc}; the slot could not be spooled either ({folder}: {os_exc.strerror})"
        )
    return StoreError(
        f"{exc}; slot {iso(slot)} spooled ({cycle.rows} rows) to {path}",
        hint="the next run that reaches the store writes it first",
    )


def replay(conn: Any, layout: Layout, settings: Settings) -> int:
    """Write every spooled cycle of this table, oldest first, each in its own transaction
    under its slot's lock, then remove its file. Returns how many slots were written.

    A replay that dies after its commit and before the file is removed is harmless: the
    presence check of the next replay finds the rows, and nothing is written twice.
    """
    from analytics_cli import spool
    from analytics_cli.store.layout import notice
    from analytics_cli.store.locks import SlotBusy

    done = 0
    for path, cycle in spool.readable(spool.spool_dir(settings), notice):
        if cycle.table != settings.table:
            continue
        jobs = [e.job for b in cycle.batches for e in b.entries]
        try:
            with conn.transaction():
                _lock(conn, settings, cycle.slot)
                present = set() if cycle.replace else layout.present(conn, cycle.slot, jobs)
                for batch in cycle.batches:
                    outcomes = [
                        layout.fit(o)
                        for o in batch.outcomes()
                        if (o.type, batch.source) not in present
                    ]
                    layout.write(
                        conn,
                        cycle.slot,
                        batch.collected_at,
                        batch.source,
                        outcomes,
                        replace=cycle.replace,
                    )
        except SlotBusy:
            continue  # another run holds that slot: it replays the file, or the next run does
        path.unlink(missing_ok=True)
        done += 1
    return done
