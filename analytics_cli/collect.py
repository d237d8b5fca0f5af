"""One collection cycle: slot, lock, snapshot, write, report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from analytics_cli import irengine, store
from analytics_cli.config import MetricSpec, Settings
from analytics_cli.db import connect, database_error, grant_hint
from analytics_cli.errors import DatabaseError
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
    import psycopg

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
    """Read every job: each source in its own snapshot, then the HTTP metrics outside any.

    A [[source]] that cannot be reached fails its own metrics only; with the single
    ``[source] dsn`` an unreachable database still stops the run (DatabaseError).
    """
    from analytics_cli.http_source import run_http_metric

    batches: list[Batch] = []
    single = [spec for spec, name in jobs if name is None and spec.http is None]
    if single:
        assert settings.source_dsn is not None
        snap = open_source(settings.source_dsn, settings).read(single, slot)
        batches.append(Batch(None, snap.collected_at, snap.outcomes))
    for source in settings.sources:
        mine = [spec for spec, name in jobs if name == source.name]
        if not mine:
            continue
        assert source.dsn is not None
        try:
            snap = open_source(source.dsn, settings).read(mine, slot)
            at, outcomes = snap.collected_at, snap.outcomes
        except DatabaseError as exc:
            at = utcnow()
            outcomes = [MetricFailure(spec.type, str(exc)) for spec in mine]
        batches.append(Batch(source.name, at, [_tag(o, source.name) for o in outcomes]))
    remote = [spec for spec, name in jobs if spec.http is not None]
    if remote:
        batches.append(Batch(None, utcnow(), [run_http_metric(spec) for spec in remote]))
    return batches


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
    """Create the store table if it does not exist; True when it was created."""
    import psycopg

    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn, conn.transaction():
            return irengine.ensure_table(conn, settings)
    except psycopg.Error as exc:
        raise database_error(
            exc,
            settings.store_dsn,
            doing="cannot prepare the store table",
            refused=f"creating {settings.table} needs CREATE on its schema: "
            "run 'analytics-cli db init' once as a role that has it",
        ) from None


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
    import psycopg

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

    ensure_store(settings)
    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn:
            _write_cycle(conn, settings, specs, slot, report, replace=replace, jobs=jobs)
    except store.SlotBusy:
        report.note = "another run holds this slot's lock; it collects the slot"
        report.results = []
    except psycopg.Error as exc:
        raise database_error(
            exc,
            settings.store_dsn,
            doing="store write failed, nothing was stored",
            refused=grant_hint(
                "collect --replace", "UPDATE, DELETE", settings.table, settings.store_dsn
            )
            if replace
            else grant_hint("collect", "SELECT, INSERT", settings.table, settings.store_dsn),
        ) from None
    report.duration = time.monotonic() - started
    return report


def _write_cycle(
    conn: psycopg.Connection[Any],
    settings: Settings,
    specs: list[MetricSpec],
    slot: datetime,
    report: CycleReport,
    *,
    replace: bool,
    jobs: list[Job] | None = None,
) -> None:
    if irengine.layout_of(conn, settings) == irengine.IR_ENGINE:
        return irengine.write_cycle(conn, settings, specs, slot, report, replace=replace)
    if jobs is None:
        jobs = plan(settings, specs, None)
    with conn.transaction():
        store.lock_slot(conn, settings.table, slot, statement_timeout=settings.statement_timeout)
        plain, anything = (
            (set(), set()) if replace else store.stored_keys(conn, settings.table, slot)
        )

        def stored(job: Job) -> bool:
            # A dimensional metric may legitimately have rows for some values only: any row
            # of its type (and source) means the slot was collected.
            return (job[0].type, job[1]) in (anything if job[0].dimensional else plain)

        todo = [job for job in jobs if not stored(job)]
        already = [MetricResult(s.type, "present", source=n) for s, n in jobs if stored((s, n))]
        if not todo:
            report.results = already
            report.note = "slot already collected"
            return
        batches = read_all(settings, todo, slot)
        report.collected_at = min(b.collected_at for b in batches)
        results = []
        for batch in batches:
            if replace:
                for outcome in batch.outcomes:
                    if isinstance(outcome, Series):
                        # Values that vanished since the first run must not linger.
                        store.delete_series(conn, settings.table, slot, outcome.type, batch.source)
            written = store.insert_samples(
                conn, settings.table, slot, batch.collected_at, batch.samples(), replace=replace
            )
            results += _results(batch, "replaced" if replace else "stored", written)
        report.results = _ordered(results + already, jobs)
