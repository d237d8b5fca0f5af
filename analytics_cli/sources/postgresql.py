"""The PostgreSQL source: one REPEATABLE READ READ ONLY snapshot, a savepoint per metric."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.db import (
    RECOVERY_CONFLICT_HINT,
    connect,
    database_error,
    error_line,
    session,
    set_statement_timeout,
)
from analytics_cli.errors import DatabaseError
from analytics_cli.metrics import (
    MAX_COUNT_OCTETS,
    MAX_DIMENSION_OCTETS,
    MetricFailure,
    Outcome,
    Series,
    groups,
)
from analytics_cli.sources.base import FullScan, MetricPlan, Slots, Snapshot
from analytics_cli.sources.rows import sample_from, series_from, shared_from, with_dimensions_hint

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import MetricSpec, Settings

ENGINE = "postgresql"


class PostgresSource:
    """A PostgreSQL platform database (psycopg); ``parallel`` spreads metrics over exported snapshots."""

    engine = ENGINE

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings
        # The connections of a read in progress, for cancel() from another thread.
        self._live: list[psycopg.Connection[Any]] = []

    def read(self, specs: Sequence[MetricSpec], slots: Slots) -> Snapshot:
        """Every spec's outcome from one snapshot."""
        return read_snapshot(self.dsn, self.settings, specs, slots, live=self._live)

    def cancel(self) -> None:
        """Cancel the queries of a read in progress (the run is interrupted or gives up)."""
        for conn in list(self._live):
            if not conn.closed:
                with contextlib.suppress(Exception):
                    conn.cancel_safe(timeout=2)

    def explain(self, specs: Sequence[MetricSpec], slot: datetime) -> list[MetricPlan]:
        """EXPLAIN ANALYZE of every spec in one read-only snapshot."""
        return explain_snapshot(self.dsn, self.settings, list(specs), slot)


def _begin_snapshot(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Make the next statement open a READ ONLY, REPEATABLE READ transaction with a timeout."""
    import psycopg

    # psycopg opens the transaction itself (BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY)
    # before the first statement; an explicit BEGIN here would only draw a warning.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    set_statement_timeout(conn, settings)


def _run_all(
    conn: psycopg.Connection[Any],
    specs: Sequence[MetricSpec],
    settings: Settings,
    slots: Slots,
    stop: threading.Event | None = None,
    *,
    dsn: str,
) -> list[Outcome]:
    """Run metrics one after another on one connection (until ``stop`` is set)."""
    outcomes: list[Outcome] = []
    spare: psycopg.Connection[Any] | None = None
    try:
        for group in groups(specs, slots):
            if stop is not None and stop.is_set():
                break
            done = run_group(
                conn, group, slot=slots[group[0].type], interval=group[0].every or settings.interval
            )
            failed = next((o for o in done if isinstance(o, MetricFailure)), None)
            if conn.broken and failed is not None and _replay_conflict(failed):
                # A hot standby ends the session of a query in a savepoint that replay
                # conflicts with: that metric fails alone, the rest read a fresh snapshot.
                if spare is not None:
                    spare.close()
                conn = spare = connect(dsn, settings, purpose="source")
                _begin_snapshot(conn, settings)
            elif conn.broken:
                detail = failed.error if failed is not None else "connection closed"
                raise DatabaseError(
                    "lost the connection to the source database while running "
                    f"{group[0].type}: {detail}"
                )
            outcomes += done
    finally:
        if spare is not None:
            spare.close()
    return outcomes


def _replay_conflict(outcome: Outcome) -> bool:
    return isinstance(outcome, MetricFailure) and outcome.error.endswith(
        f"({RECOVERY_CONFLICT_HINT})"
    )


def read_snapshot(
    dsn: str,
    settings: Settings,
    specs: Sequence[MetricSpec],
    slots: Slots,
    *,
    live: list[psycopg.Connection[Any]] | None = None,
) -> Snapshot:
    """Run every metric in ONE read-only repeatable-read snapshot; failures stay per metric.

    Every connection opened is added to ``live`` while the read lasts (for cancelling).
    """
    import psycopg

    live = [] if live is None else live
    conn = connect(dsn, settings, purpose="source", retries=settings.retries)
    live.append(conn)
    try:
        with conn:
            _begin_snapshot(conn, settings)
            workers = min(settings.parallel, len(specs))
            if workers > 1:
                row = conn.execute("SELECT now(), pg_export_snapshot()").fetchone()
                assert row is not None
                collected_at: datetime = row[0]
                outcomes = _run_parallel(
                    dsn, conn, str(row[1]), specs, settings, slots, workers, live
                )
            else:
                row = conn.execute("SELECT now()").fetchone()
                assert row is not None
                collected_at = row[0]
                done = {o.type: o for o in _run_all(conn, specs, settings, slots, dsn=dsn)}
                outcomes = [done[spec.type] for spec in specs]
            # Read only: the outcomes stand even when the session is gone by now (a hot
            # standby ends sessions whose snapshot its replay conflicts with, see _run_all).
            with contextlib.suppress(psycopg.OperationalError):
                conn.rollback()
            return Snapshot(collected_at, outcomes)
    except psycopg.Error as exc:
        raise database_error(exc, dsn, doing="source database error") from None
    finally:
        live.clear()


def _run_parallel(
    dsn: str,
    leader: psycopg.Connection[Any],
    snapshot: str,
    specs: Sequence[MetricSpec],
    settings: Settings,
    slots: Slots,
    workers: int,
    live: list[psycopg.Connection[Any]],
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
            live.append(helper)
            _begin_snapshot(helper, settings)
            # SET TRANSACTION SNAPSHOT takes a literal, not a bound parameter.
            helper.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        conns = [leader, *helpers]
        # Metrics filled by one [[query]] stay together: the query runs once.
        parts = groups(specs, slots)
        shares = [[s for g in parts[i :: len(conns)] for s in g] for i in range(len(conns))]
        pool = ThreadPoolExecutor(max_workers=len(conns))
        try:
            futures = [
                pool.submit(_run_all, c, share, settings, slots, stop, dsn=dsn)
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


def _size_checked(conn: psycopg.Connection[Any], column: str, limit: int, *, text: bool) -> str:
    """A column of the metric's query, NULL when its text is longer than ``limit`` bytes, and
    that length: the server refuses a runaway value before sending it."""
    from psycopg import sql

    # Unqualified, as in _measured: q.name could resolve to a function name(q).
    col = sql.Identifier(column).as_string(conn)
    value = f"{col}::text" if text else col
    return f"CASE WHEN octet_length({col}::text) <= {limit:d} THEN {value} END, octet_length({col}::text)"


def _measured_columns(
    conn: psycopg.Connection[Any], text: str, counts: Sequence[str], dimensions: Sequence[str]
) -> str:
    """The query with each count column and each dimension (as text) size-checked."""
    columns = [_size_checked(conn, c, MAX_COUNT_OCTETS, text=False) for c in counts]
    columns += [_size_checked(conn, d, MAX_DIMENSION_OCTETS, text=True) for d in dimensions]
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
                query = _measured_columns(conn, text, ["count"], dims)
                rows = conn.execute(query + f"\nLIMIT {spec.max_series + 1:d}", params).fetchall()
    except psycopg.Error as exc:
        return MetricFailure(spec.type, error_line(exc))
    if "count" not in names:
        return MetricFailure(spec.type, f"query returned no column named count (got {names})")
    if sorted(names) != sorted(["count", *dims]):
        return MetricFailure(
            spec.type,
            f"query columns {names} do not match count plus dimensions {list(dims)}",
        )
    return series_from(spec, rows, 0, 2)


def run_shared(
    conn: psycopg.Connection[Any],
    specs: Sequence[MetricSpec],
    *,
    slot: datetime,
    interval: timedelta,
) -> list[Outcome]:
    """Run one [[query]] ONCE for the metrics it fills (their columns only); a failing query
    fails each of them with the same error, a missing column only its own metric."""
    import psycopg

    first = specs[0]
    params = {"slot": slot, "interval": interval}
    text = first.sql.strip().rstrip(";")
    dims = first.dimensions
    rows: list[Any] = []
    try:
        with conn.transaction():
            names = _columns(conn, text, params)
            wanted = [s.type for s in specs if s.type in names]
            if wanted and all(d in names for d in dims):
                limit = first.max_series + 1 if dims else 2
                query = _measured_columns(conn, text, wanted, dims) + f"\nLIMIT {limit:d}"
                rows = conn.execute(query, params).fetchall()
    except psycopg.Error as exc:
        return [MetricFailure(s.type, error_line(exc)) for s in specs]
    return shared_from(specs, names, wanted, rows)


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
    if len(rows) > 1:
        try:
            with conn.transaction():
                names = _columns(conn, text, params)
        except psycopg.Error:
            names = []
        return with_dimensions_hint(sample_from(spec, rows, 0), names)
    return sample_from(spec, rows, 0)


def run_group(
    conn: psycopg.Connection[Any],
    specs: Sequence[MetricSpec],
    *,
    slot: datetime,
    interval: timedelta,
) -> list[Outcome]:
    """One metric, or the metrics one [[query]] fills, run once inside their savepoint."""
    if specs[0].query is not None:
        return run_shared(conn, specs, slot=slot, interval=interval)
    return [run_metric(conn, spec, slot=slot, interval=interval) for spec in specs]


# ---------------------------------------------------------------------------- explain

# A sequential scan over fewer rows than this is cheap whatever the plan says.
LARGE_TABLE_ROWS = 100_000
_COMPARISON = re.compile(r'"?(\w+)"?\s*(=|<>|<=|>=|<|>)')
_NEGATED = re.compile(r'NOT\s+"?(\w+)"?')


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for child in node.get("Plans", []):
        found += _walk(child)
    return found


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def suggest_index(table: str, columns: list[str], filter_text: str) -> str | None:
    """A CREATE INDEX statement that lets the planner skip a sequential scan, or None.

    None also for a filter with OR (a fused query's): no single index serves every branch.
    """
    if not filter_text or re.search(r"\bOR\b", filter_text):
        return None
    known = set(columns)
    ranged: list[str] = []
    equal: list[str] = []
    partial = []
    for match in _COMPARISON.finditer(filter_text):
        column, op = match.group(1), match.group(2)
        if column not in known:
            continue
        value = filter_text[match.end() : match.end() + 6].strip().lower()
        if column == "ended" and op == "=" and value.startswith("false"):
            partial.append("ended = false")
        elif op in ("<", ">", "<=", ">="):
            ranged.append(column)
        else:
            equal.append(column)
    for match in _NEGATED.finditer(filter_text):
        column = match.group(1)
        if column == "ended" and column in known:
            partial.append("ended = false")
        elif column in known:
            equal.append(column)
    keys = list(dict.fromkeys(equal + ranged))
    if not keys and not partial:
        return None
    if not keys:
        keys = [c for c in ["userId", "locationId", "channelId", "id"] if c in known][:1]
    statement = f"CREATE INDEX CONCURRENTLY ON {_quote(table)} ({', '.join(map(_quote, keys))})"
    if partial:
        statement += " WHERE " + " AND ".join(dict.fromkeys(partial))
    return statement


def explain_snapshot(
    dsn: str, settings: Settings, specs: list[MetricSpec], slot: datetime
) -> list[MetricPlan]:
    """EXPLAIN ANALYZE every metric in one read-only snapshot; the platform is never changed."""
    params = {"slot": slot, "interval": settings.interval}
    with session(
        settings,
        side="source",
        doing="source database error",
        read_only=True,
        repeatable_read=True,
        dsn=dsn,
    ) as conn:
        return [_explain_one(conn, spec, params) for spec in specs]


def _explain_one(
    conn: psycopg.Connection[Any], spec: MetricSpec, params: dict[str, Any]
) -> MetricPlan:
    import psycopg

    plan = MetricPlan(spec.type)
    text = spec.sql.strip().rstrip(";")
    try:
        with conn.transaction():
            row = conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + text,
                params,
            ).fetchone()
            assert row is not None
            doc = row[0][0]
            plan.cost = float(doc["Plan"]["Total Cost"])
            plan.time_ms = float(doc.get("Execution Time", 0.0))
            for node in _walk(doc["Plan"]):
                if node.get("Node Type") != "Seq Scan" or "Relation Name" not in node:
                    continue
                table = node["Relation Name"]
                size = conn.execute(
                    "SELECT greatest(c.reltuples, 0)::bigint, "
                    "array(SELECT attname::text FROM pg_attribute a WHERE a.attrelid = c.oid "
                    "AND a.attnum > 0 AND NOT a.attisdropped) "
                    "FROM pg_class c WHERE c.oid = to_regclass(%s)",
                    (_quote(node.get("Schema", "public")) + "." + _quote(table),),
                ).fetchone()
                rows, columns = (int(size[0]), list(size[1])) if size else (0, [])
                if rows < LARGE_TABLE_ROWS:
                    continue
                filter_text = str(node.get("Filter", ""))
                plan.scans.append(
                    FullScan(table, rows, filter_text, suggest_index(table, columns, filter_text))
                )
    except psycopg.Error as exc:
        plan.error = error_line(exc)
    return plan
