"""One collection cycle: slot, lock, snapshot, write, report."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from analytics_cli import store
from analytics_cli.config import MetricSpec, Settings
from analytics_cli.db import connect, database_error
from analytics_cli.errors import DatabaseError
from analytics_cli.metrics import MetricFailure, Sample, enabled_metrics, run_metric
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


def _begin_snapshot(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Make the next statement open a READ ONLY, REPEATABLE READ transaction with a timeout."""
    import psycopg

    # psycopg opens the transaction itself (BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY)
    # before the first statement; an explicit BEGIN here would only draw a warning.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    timeout_ms = int(settings.statement_timeout.total_seconds() * 1000)
    conn.execute(f"SET LOCAL statement_timeout = {timeout_ms:d}")


def _run_all(
    conn: psycopg.Connection[Any],
    specs: list[MetricSpec],
    settings: Settings,
    slot: datetime,
) -> list[Sample | MetricFailure]:
    outcomes: list[Sample | MetricFailure] = []
    for spec in specs:
        outcome = run_metric(conn, spec, slot=slot, interval=settings.interval)
        if conn.broken:
            detail = outcome.error if isinstance(outcome, MetricFailure) else "connection closed"
            raise DatabaseError(
                f"lost the connection to the source database while running {spec.type}: {detail}"
            )
        outcomes.append(outcome)
    return outcomes


def read_source(
    settings: Settings, specs: list[MetricSpec], slot: datetime
) -> tuple[datetime, list[Sample | MetricFailure]]:
    """Run every metric in ONE read-only repeatable-read snapshot; failures stay per metric."""
    import psycopg

    assert settings.source_dsn is not None
    conn = connect(settings.source_dsn, settings, purpose="source", retries=settings.retries)
    try:
        with conn:
            _begin_snapshot(conn, settings)
            workers = min(settings.parallel, len(specs))
            if workers > 1:
                row = conn.execute("SELECT now(), pg_export_snapshot()").fetchone()
                assert row is not None
                collected_at: datetime = row[0]
                outcomes = _run_parallel(conn, str(row[1]), specs, settings, slot, workers)
            else:
                row = conn.execute("SELECT now()").fetchone()
                assert row is not None
                collected_at = row[0]
                outcomes = _run_all(conn, specs, settings, slot)
            conn.rollback()
            return collected_at, outcomes
    except psycopg.Error as exc:
        raise database_error(exc, settings.source_dsn, doing="source database error") from None


def _run_parallel(
    leader: psycopg.Connection[Any],
    snapshot: str,
    specs: list[MetricSpec],
    settings: Settings,
    slot: datetime,
    workers: int,
) -> list[Sample | MetricFailure]:
    """Spread metrics over ``workers`` connections that all import the leader's snapshot."""
    from concurrent.futures import ThreadPoolExecutor

    from psycopg import sql

    assert settings.source_dsn is not None
    helpers: list[psycopg.Connection[Any]] = []
    try:
        for _ in range(workers - 1):
            helper = connect(settings.source_dsn, settings, purpose="source")
            helpers.append(helper)
            _begin_snapshot(helper, settings)
            # SET TRANSACTION SNAPSHOT takes a literal, not a bound parameter.
            helper.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        conns = [leader, *helpers]
        shares = [specs[i :: len(conns)] for i in range(len(conns))]
        with ThreadPoolExecutor(max_workers=len(conns)) as pool:
            futures = [
                pool.submit(_run_all, c, share, settings, slot)
                for c, share in zip(conns, shares, strict=True)
            ]
            done = {o.type: o for future in futures for o in future.result()}
        return [done[spec.type] for spec in specs]
    except BaseException:
        # Interrupted or failed: stop the queries still running on the other connections.
        for conn in [leader, *helpers]:
            if not conn.closed:
                with contextlib.suppress(Exception):
                    conn.cancel_safe(timeout=2)
        raise
    finally:
        for helper in helpers:
            helper.close()


def _results(outcomes: list[Sample | MetricFailure], status: Status) -> list[MetricResult]:
    out = []
    for outcome in outcomes:
        if isinstance(outcome, Sample):
            out.append(MetricResult(outcome.type, status, outcome.count))
        else:
            out.append(MetricResult(outcome.type, "failed", error=outcome.error))
    return out


def ensure_store(settings: Settings) -> bool:
    """Create the store table if it does not exist; True when it was created."""
    import psycopg

    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn, conn.transaction():
            return store.ensure_table(conn, settings.table)
    except psycopg.Error as exc:
        raise database_error(
            exc, settings.store_dsn, doing="cannot prepare the store table"
        ) from None


def run_cycle(
    settings: Settings,
    *,
    at: datetime | None = None,
    only: list[str] | None = None,
    dry_run: bool = False,
    replace: bool = False,
) -> CycleReport:
    """Collect one slot: every metric once, written together or not at all."""
    import psycopg

    started = time.monotonic()
    specs = enabled_metrics(settings, only)
    slot = floor_slot(at or utcnow(), settings.interval)
    report = CycleReport(slot, int(settings.interval.total_seconds()), dry_run=dry_run)
    if dry_run:
        report.collected_at, outcomes = read_source(settings, specs, slot)
        report.results = _results(outcomes, "checked")
        report.duration = time.monotonic() - started
        return report

    ensure_store(settings)
    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn:
            _write_cycle(conn, settings, specs, slot, report, replace=replace)
    except psycopg.errors.LockNotAvailable:
        report.note = "another run holds this slot's lock; it collects the slot"
        report.results = []
    except psycopg.Error as exc:
        raise database_error(
            exc, settings.store_dsn, doing="store write failed, nothing was stored"
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
) -> None:
    with conn.transaction():
        wait_ms = int(max(settings.statement_timeout.total_seconds() * 2, 60) * 1000)
        conn.execute(f"SET LOCAL lock_timeout = {wait_ms:d}")
        store.lock_slot(conn, settings.table, slot)
        present = set() if replace else store.stored_types(conn, settings.table, slot)
        todo = [s for s in specs if s.type not in present]
        already = [MetricResult(s.type, "present") for s in specs if s.type in present]
        if not todo:
            report.results = already
            report.note = "slot already collected"
            return
        report.collected_at, outcomes = read_source(settings, todo, slot)
        samples = [o for o in outcomes if isinstance(o, Sample)]
        written = store.insert_samples(
            conn, settings.table, slot, report.collected_at, samples, replace=replace
        )
        results = []
        for result in _results(outcomes, "replaced" if replace else "stored"):
            if result.status != "failed" and not written.get(result.type, False):
                result = MetricResult(result.type, "present", result.count)
            results.append(result)
        order = {s.type: i for i, s in enumerate(specs)}
        report.results = sorted(results + already, key=lambda r: order[r.type])
