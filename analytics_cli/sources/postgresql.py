"""The PostgreSQL source: one REPEATABLE READ READ ONLY snapshot, a savepoint per metric."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.db import RECOVERY_CONFLICT_HINT, connect, database_error, error_line
from analytics_cli.errors import DatabaseError
from analytics_cli.metrics import (
    MAX_COUNT_OCTETS,
    MAX_DIMENSION_OCTETS,
    MetricFailure,
    Outcome,
    Sample,
    Series,
    check_count,
)
from analytics_cli.sources.base import MetricPlan, Snapshot

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config import MetricSpec, Settings

ENGINE = "postgresql"


class PostgresSource:
    """A PostgreSQL platform database (psycopg); ``parallel`` spreads metrics over exported snapshots."""

    engine = ENGINE

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings

    def read(self, specs: Sequence[MetricSpec], slot: datetime) -> Snapshot:
        """Every spec's outcome from one snapshot."""
        return read_snapshot(self.dsn, self.settings, specs, slot)

    def explain(self, specs: Sequence[MetricSpec], slot: datetime) -> list[MetricPlan]:
        """EXPLAIN ANALYZE of every spec in one read-only snapshot."""
        from analytics_cli.explain import explain_snapshot

        return explain_snapshot(self.dsn, self.settings, list(specs), slot)


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
    specs: Sequence[MetricSpec],
    settings: Settings,
    slot: datetime,
    stop: threading.Event | None = None,
    *,
    dsn: str,
) -> list[Outcome]:
    """Run metrics one after another on one connection (until ``stop`` is set)."""
    outcomes: list[Outcome] = []
    spare: psycopg.Connection[Any] | None = None
    try:
        for spec in specs:
            if stop is not None and stop.is_set():
                break
            outcome = run_metric(conn, spec, slot=slot, interval=settings.interval)
            if conn.broken and _replay_conflict(outcome):
                # A hot standby ends the session of a query in a savepoint that replay
                # conflicts with: that metric fails alone, the rest read a fresh snapshot.
                if spare is not None:
                    spare.close()
                conn = spare = connect(dsn, settings, purpose="source")
                _begin_snapshot(conn, settings)
            elif conn.broken:
                detail = (
                    outcome.error if isinstance(outcome, MetricFailure) else "connection closed"
                )
                raise DatabaseError(
                    f"lost the connection to the source database while running {spec.type}: {detail}"
                )
            outcomes.append(outcome)
    finally:
        if spare is not None:
            spare.close()
    return outcomes


def _replay_conflict(outcome: Outcome) -> bool:
    return isinstance(outcome, MetricFailure) and outcome.error.endswith(
        f"({RECOVERY_CONFLICT_HINT})"
    )


def read_snapshot(
    dsn: str, settings: Settings, specs: Sequence[MetricSpec], slot: datetime
) -> Snapshot:
    """Run every metric in ONE read-only repeatable-read snapshot; failures stay per metric."""
    import psycopg

    conn = connect(dsn, settings, purpose="source", retries=settings.retries)
    try:
        with conn:
            _begin_snapshot(conn, settings)
            workers = min(settings.parallel, len(specs))
            if workers > 1:
                row = conn.execute("SELECT now(), pg_export_snapshot()").fetchone()
                assert row is not None
                collected_at: datetime = row[0]
                outcomes = _run_parallel(dsn, conn, str(row[1]), specs, settings, slot, workers)
            else:
                row = conn.execute("SELECT now()").fetchone()
                assert row is not None
                collected_at = row[0]
                outcomes = _run_all(conn, specs, settings, slot, dsn=dsn)
            # Read only: the outcomes stand even when the session is gone by now (a hot
            # standby ends sessions whose snapshot its replay conflicts with, see _run_all).
            with contextlib.suppress(psycopg.OperationalError):
                conn.rollback()
            return Snapshot(collected_at, outcomes)
    except psycopg.Error as exc:
        raise database_error(exc, dsn, doing="source database error") from None


def _run_parallel(
    dsn: str,
    leader: psycopg.Connection[Any],
    snapshot: str,
    specs: Sequence[MetricSpec],
    settings: Settings,
    slot: datetime,
    workers: int,
) -> list[Outcome]:
    """Spread metrics over ``workers`` connections that all import the leader's snapshot."""
    from concurrent.futures import ThreadPoolExecutor

    from psycopg import sql

    helpers: list[psycopg.Connection[Any]] = []
    stop = threading.Event()
    try:
        for _ in range(workers - 1):
            helper = connect(dsn, settings, purpose="source")
            helpers.append(helper)
            _begin_snapshot(helper, settings)
            # SET TRANSACTION SNAPSHOT takes a literal, not a bound parameter.
            helper.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        conns = [leader, *helpers]
        shares = [specs[i :: len(conns)] for i in range(len(conns))]
        pool = ThreadPoolExecutor(max_workers=len(conns))
        try:
            futures = [
                pool.submit(_run_all, c, share, settings, slot, stop, dsn=dsn)
                for c, share in zip(conns, shares, strict=True)
            ]
            done = {o.type: o for future in futures for o in future.result()}
        except BaseException:
            # Interrupted or failed: no further metric starts, and the running queries are
            # cancelled before the workers are joined (joining first would wait them out).
            stop.set()
            for conn in conns:
                if not conn.closed:
                    with contextlib.suppress(Exception):
                        conn.cancel_safe(timeout=2)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [done[spec.type] for spec in specs]
    finally:
        for helper in helpers:
            helper.close()


def _columns(conn: psycopg.Connection[Any], text: str, params: dict[str, Any]) -> list[str]:
    """The metric query's column names: planned, but no row is computed (LIMIT 0)."""
    cur = conn.execute(f"SELECT * FROM (\n{text}\n) AS q LIMIT 0", params)
    return [d.name for d in cur.description or []]


def _measured(text: str) -> str:
    """The metric's query with its count column size-checked by the server."""
    # The newline ends a trailing "-- comment" in the metric's text before the parenthesis.
    # Unqualified "count": q.count would silently become count(q), one row, when the
    # query has no count column (PostgreSQL's functional notation).
    return (
        f"SELECT CASE WHEN octet_length(count::text) <= {MAX_COUNT_OCTETS:d} "
        f"THEN count END AS count, octet_length(count::text) AS octets "
        f"FROM (\n{text}\n) AS q"
    )


def _measured_series(conn: psycopg.Connection[Any], text: str, dimensions: tuple[str, ...]) -> str:
    """Like _measured, plus each dimension as text, size-checked by the server."""
    from psycopg import sql

    columns = [
        f"CASE WHEN octet_length(count::text) <= {MAX_COUNT_OCTETS:d} THEN count END",
        "octet_length(count::text)",
    ]
    for name in dimensions:
        # Unqualified, as in _measured: q.name could resolve to a function name(q).
        col = sql.Identifier(name).as_string(conn)
        columns.append(
            f"CASE WHEN octet_length({col}::text) <= {MAX_DIMENSION_OCTETS:d} THEN {col}::text END"
        )
        columns.append(f"octet_length({col}::text)")
    return f"SELECT {', '.join(columns)} FROM (\n{text}\n) AS q"


def run_series(
    conn: psycopg.Connection[Any], spec: MetricSpec, *, slot: datetime, interval: timedelta
) -> Series | MetricFailure:
    """Run a dimensional metric: one Sample per row, at most ``max_series`` rows."""
    import psycopg

    params = {"slot": slot, "interval": interval}
    dims = spec.dimensions
    rows: list[Any] = []
    try:
        text = spec.sql.strip().rstrip(";")
        with conn.transaction():
            names = _columns(conn, text, params)
            if "count" in names and sorted(names) == sorted(["count", *dims]):
                # One row more than allowed tells "too many" without reading the rest.
                query = _measured_series(conn, text, dims) + f"\nLIMIT {spec.max_series + 1:d}"
                rows = conn.execute(query, params).fetchall()
    except psycopg.Error as exc:
        return MetricFailure(spec.type, error_line(exc))
    if "count" not in names:
        return MetricFailure(spec.type, f"query returned no column named count (got {names})")
    if sorted(names) != sorted(["count", *dims]):
        return MetricFailure(
            spec.type,
            f"query columns {names} do not match count plus dimensions {list(dims)}",
        )
    if len(rows) > spec.max_series:
        return MetricFailure(
            spec.type,
            f"query returned more than max_series = {spec.max_series} rows; nothing was stored",
        )
    samples: list[Sample] = []
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        value, octets = row[0], row[1]
        if octets is not None and octets > MAX_COUNT_OCTETS:
            return MetricFailure(
                spec.type, f"count value is too large ({octets} bytes as text), not a count"
            )
        metadata: dict[str, Any] = {}
        for i, name in enumerate(dims):
            text_value, size = row[2 + 2 * i], row[3 + 2 * i]
            if size is not None and size > MAX_DIMENSION_OCTETS:
                return MetricFailure(
                    spec.type, f"dimension {name} value is too long ({size} bytes)"
                )
            metadata[name] = text_value
        key = tuple(metadata[name] for name in dims)
        if key in seen:
            return MetricFailure(
                spec.type, f"query returned the dimensions {metadata} more than once"
            )
        seen.add(key)
        try:
            count = check_count(value)
        except ValueError as exc:
            return MetricFailure(spec.type, f"{exc} (at {metadata})")
        samples.append(Sample(spec.type, count, metadata))
    return Series(spec.type, tuple(samples))


def run_metric(
    conn: psycopg.Connection[Any], spec: MetricSpec, *, slot: datetime, interval: timedelta
) -> Outcome:
    """Run one metric inside its own savepoint; any failure is returned, never raised."""
    import psycopg

    if spec.dimensional:
        return run_series(conn, spec, slot=slot, interval=interval)
    params = {"slot": slot, "interval": interval}
    text = spec.sql.strip().rstrip(";")
    try:
        # LIMIT 2: a query returning millions of rows sends two; "more than one" is all
        # that needs telling. Not a server-side cursor: cursors never run in parallel, and
        # the big counts profit from parallel workers.
        with conn.transaction():
            rows = conn.execute(_measured(text) + "\nLIMIT 2", params).fetchall()
    except psycopg.errors.UndefinedColumn as exc:
        # Perhaps the query has no count column: name the columns it does have.
        try:
            with conn.transaction():
                names = _columns(conn, text, params)
        except psycopg.Error:
            names = ["count"]
        if "count" not in names:
            return MetricFailure(spec.type, f"query returned no column named count (got {names})")
        return MetricFailure(spec.type, error_line(exc))
    except psycopg.Error as exc:
        return MetricFailure(spec.type, error_line(exc))
    if len(rows) != 1:
        got = "no rows" if not rows else "more than one row"
        return MetricFailure(spec.type, f"query must return exactly one row, got {got}")
    value, octets = rows[0]
    if octets is not None and octets > MAX_COUNT_OCTETS:
        return MetricFailure(
            spec.type, f"count value is too large ({octets} bytes as text), not a count"
        )
    try:
        count = check_count(value)
    except ValueError as exc:
        return MetricFailure(spec.type, str(exc))
    return Sample(spec.type, count)
