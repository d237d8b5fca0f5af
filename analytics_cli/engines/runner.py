"""The one snapshot runner: metrics, series and shared queries run, timed and checked the
same way on every engine, and the full scans of their plans flagged with an index to add.

An engine supplies only its dialect (``Dialect``), on one connection that holds its
read-only snapshot: how to bind and check a metric's text, how to wrap it so the server
size-checks its values, how to keep a failing statement from ending the snapshot, how to
tell a missing column, and what to check after each metric. Opening the snapshot, its time
limit and cancelling belong to the engine's Source.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from analytics_cli.engines.base import FullScan, MetricPlan, Refused, Slots
from analytics_cli.engines.rows import sample_from, series_from, shared_from, with_dimensions_hint
from analytics_cli.errors import DatabaseError
from analytics_cli.metrics import groups
from analytics_cli.samples import MetricFailure, Outcome, Series

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec

# A full scan over fewer rows than this is cheap whatever the plan says.
LARGE_TABLE_ROWS = 100_000
# A column a filter compares, and how: "equal", "range", or "partial" (a condition a
# partial index can hold, such as ``ended = false``).
IndexTerm = tuple[str, str]


@dataclass(frozen=True)
class Scan:
    """A full scan a plan shows: the table, its estimated rows, its columns, the filter."""

    table: str
    rows: int
    columns: list[str]
    filter: str


@dataclass(frozen=True)
class Plan:
    """An engine's plan of one metric: its cost, its time, and the full scans in it."""

    cost: float
    time_ms: float
    scans: list[Scan]


class Dialect(Protocol):
    """One engine's statements on one connection holding the snapshot."""

    # The errors a statement may raise (the driver's), caught per metric.
    errors: tuple[type[Exception], ...]

    def prepare(self, spec: MetricSpec, slot: datetime, interval: timedelta) -> tuple[str, Any]:
        """The metric's text and its parameters (Refused when it may not run)."""
        ...

    def guarded(self) -> AbstractContextManager[Any]:
        """Statements inside fail alone, never ending the snapshot (a savepoint, or nothing)."""
        ...

    def columns(self, text: str, params: Any) -> list[str]:
        """The query's column names: planned, but no row computed."""
        ...

    def measured(self, text: str, limit: int, counts: Sequence[str], dims: Sequence[str]) -> str:
        """The query with each count and dimension column size-checked, at most ``limit`` rows."""
        ...

    def fetch(self, query: str, params: Any) -> list[Any]:
        """Run one statement and return its rows."""
        ...

    def missing_column(self, exc: Exception) -> bool:
        """True when the error says a column the query names does not exist."""
        ...

    def error_line(self, exc: Exception) -> str:
        """A metric's error as one line, secrets removed."""
        ...

    def lost(self) -> bool:
        """True when the connection is gone (a server that ended the session, a network cut)."""
        ...

    def recover(self, failed: MetricFailure) -> bool:
        """After a lost connection: True when the others may go on in a fresh snapshot
        (a hot standby's replay conflict fails one metric alone)."""
        ...

    def verify(self, metric: str) -> None:
        """DatabaseError unless the session still holds its read-only snapshot."""
        ...

    def plan(self, text: str, params: Any) -> Plan:
        """The engine's plan of the metric's query, with the full scans it does."""
        ...

    def suggest_index(self, table: str, columns: list[str], condition: str) -> str | None:
        """The statement that adds an index that would avoid a full scan, or None."""
        ...


def run_all(
    dialect: Dialect,
    specs: Sequence[MetricSpec],
    slots: Slots,
    interval: timedelta,
    stop: threading.Event | None = None,
) -> list[Outcome]:
    """Run metrics one after another (a [[query]] once for its metrics) until ``stop`` is
    set; ``interval`` is the one of a metric without its own ``every``."""
    outcomes: list[Outcome] = []
    for group in groups(specs, slots):
        if stop is not None and stop.is_set():
            break
        first = group[0]
        done = run_group(dialect, group, slot=slots[first.type], interval=first.every or interval)
        failed = next((o for o in done if isinstance(o, MetricFailure)), None)
        if dialect.lost() and not (failed is not None and dialect.recover(failed)):
            detail = failed.error if failed is not None else "connection closed"
            raise DatabaseError(
                f"lost the connection to the source database while running {first.type}: {detail}"
            )
        dialect.verify(first.type)
        outcomes += done
    return outcomes


def run_group(
    dialect: Dialect, specs: Sequence[MetricSpec], *, slot: datetime, interval: timedelta
) -> list[Outcome]:
    """One metric, or the metrics one [[query]] fills, run once."""
    if specs[0].query is not None:
        return run_shared(dialect, specs, slot=slot, interval=interval)
    return [run_metric(dialect, spec, slot=slot, interval=interval) for spec in specs]


def run_metric(
    dialect: Dialect, spec: MetricSpec, *, slot: datetime, interval: timedelta
) -> Outcome:
    """Run one metric; any failure is returned, never raised."""
    try:
        text, params = dialect.prepare(spec, slot, interval)
    except Refused as exc:
        return MetricFailure(spec.type, f"refused: {exc}")
    if spec.dimensional:
        return run_series(dialect, spec, text, params)
    try:
        # Two rows tell "more than one" without reading the rest. Not a server-side cursor:
        # the big counts profit from the server's parallel workers.
        with dialect.guarded():
            rows = dialect.fetch(dialect.measured(text, 2, ("count",), ()), params)
    except dialect.errors as exc:
        if dialect.missing_column(exc):
            # Perhaps the query has no count column: name the columns it does have.
            names = _columns_or(dialect, text, params, ["count"])
            if "count" not in names:
                return MetricFailure(
                    spec.type, f"query returned no column named count (got {names})"
                )
        return MetricFailure(spec.type, dialect.error_line(exc))
    if len(rows) > 1:
        names = _columns_or(dialect, text, params, [])
        return with_dimensions_hint(sample_from(spec, rows, 0), names)
    return sample_from(spec, rows, 0)


def _columns_or(dialect: Dialect, text: str, params: Any, default: list[str]) -> list[str]:
    try:
        with dialect.guarded():
            return dialect.columns(text, params)
    except dialect.errors:
        return default


def run_series(
    dialect: Dialect, spec: MetricSpec, text: str, params: Any
) -> Series | MetricFailure:
    """Run a dimensional metric: one Sample per row, at most ``max_series`` rows."""
    dims = spec.dimensions
    rows: list[Any] = []
    try:
        with dialect.guarded():
            names = dialect.columns(text, params)
            if "count" in names and sorted(names) == sorted(["count", *dims]):
                # One row more than allowed tells "too many" without reading the rest.
                query = dialect.measured(text, spec.max_series + 1, ("count",), dims)
                rows = dialect.fetch(query, params)
    except dialect.errors as exc:
        return MetricFailure(spec.type, dialect.error_line(exc))
    if "count" not in names:
        return MetricFailure(spec.type, f"query returned no column named count (got {names})")
    if sorted(names) != sorted(["count", *dims]):
        return MetricFailure(
            spec.type,
            f"query columns {names} do not match count plus dimensions {list(dims)}",
        )
    return series_from(spec, rows, 0, 2)


def run_shared(
    dialect: Dialect, specs: Sequence[MetricSpec], *, slot: datetime, interval: timedelta
) -> list[Outcome]:
    """Run one [[query]] ONCE for the metrics it fills (their columns only); a failing query
    fails each of them with the same error, a missing column only its own metric."""
    first = specs[0]
    dims = first.dimensions
    try:
        text, params = dialect.prepare(first, slot, interval)
    except Refused as exc:
        return [MetricFailure(s.type, f"refused: {exc}") for s in specs]
    rows: list[Any] = []
    try:
        with dialect.guarded():
            names = dialect.columns(text, params)
            wanted = [s.type for s in specs if s.type in names]
            if wanted and all(d in names for d in dims):
                limit = first.max_series + 1 if dims else 2
                rows = dialect.fetch(dialect.measured(text, limit, wanted, dims), params)
    except dialect.errors as exc:
        return [MetricFailure(s.type, dialect.error_line(exc)) for s in specs]
    return shared_from(specs, names, wanted, rows)


def explain_all(
    dialect: Dialect, specs: Sequence[MetricSpec], slot: datetime, interval: timedelta
) -> list[MetricPlan]:
    """Every metric's plan, cost and time, and the full scans of large tables in it (with the
    index that would avoid each); the snapshot is checked after each."""
    plans = []
    for spec in specs:
        plans.append(explain_one(dialect, spec, slot, interval))
        dialect.verify(spec.type)
    return plans


def explain_one(
    dialect: Dialect, spec: MetricSpec, slot: datetime, interval: timedelta
) -> MetricPlan:
    """One metric's plan; an error is kept in it, never raised."""
    plan = MetricPlan(spec.type)
    try:
        text, params = dialect.prepare(spec, slot, interval)
    except Refused as exc:
        plan.error = f"refused: {exc}"
        return plan
    try:
        with dialect.guarded():
            found = dialect.plan(text, params)
    except dialect.errors as exc:
        plan.error = dialect.error_line(exc)
        return plan
    except (ValueError, KeyError, IndexError) as exc:
        plan.error = f"unreadable plan: {exc}"
        return plan
    plan.cost, plan.time_ms = found.cost, found.time_ms
    for scan in found.scans:
        if scan.rows >= LARGE_TABLE_ROWS:
            index = dialect.suggest_index(scan.table, scan.columns, scan.filter)
            plan.scans.append(FullScan(scan.table, scan.rows, scan.filter, index))
    return plan


def suggest_index(
    table: str,
    columns: Sequence[str],
    condition: str,
    *,
    terms: Callable[[str], Iterable[IndexTerm]],
    statement: Callable[[str, Sequence[str], list[str], list[str]], str | None],
) -> str | None:
    """The statement that adds an index letting the server skip a full scan, or None.

    The equality columns come first, then the range columns; ``terms`` reads a filter in
    the engine's words, ``statement`` words the index (given the table's columns, the keys
    and the partial conditions). None for a filter with OR (a fused query's): no single
    index serves every branch.
    """
    if not condition or re.search(r"\bOR\b", condition, re.IGNORECASE):
        return None
    known = set(columns)
    found: dict[str, list[str]] = {"equal": [], "range": [], "partial": []}
    for column, kind in terms(condition):
        if column in known:
            found[kind].append(column)
    keys = list(dict.fromkeys(found["equal"] + found["range"]))
    return statement(table, columns, keys, list(dict.fromkeys(found["partial"])))
