"""The PostgreSQL source: one REPEATABLE READ READ ONLY snapshot, a savepoint per metric."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.engines import runner
from analytics_cli.engines.base import Job, MetricPlan, Slots, Snapshot
from analytics_cli.engines.postgresql.connect import (
    RECOVERY_CONFLICT_HINT,
    connect,
    database_error,
    error_line,
    session,
    set_statement_timeout,
)
from analytics_cli.metrics import groups
from analytics_cli.samples import MAX_COUNT_OCTETS, MAX_DIMENSION_OCTETS, MetricFailure, Outcome

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
    dialect = PostgresDialect(conn, settings, dsn)
    try:
        return runner.run_all(dialect, specs, slots, settings.interval, stop)
    finally:
        dialect.close()


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


# ---------------------------------------------------------------------------- explain

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
    """A CREATE INDEX statement that lets the planner skip a sequential scan, or None."""
    return runner.suggest_index(
        table, columns, filter_text, terms=_index_terms, statement=_index_statement
    )


def _index_terms(filter_text: str) -> Iterator[runner.IndexTerm]:
    """The columns a plan's filter compares; ``ended = false`` (or ``NOT ended``) is partial."""
    for match in _COMPARISON.finditer(filter_text):
        column, op = match.group(1), match.group(2)
        value = filter_text[match.end() : match.end() + 6].strip().lower()
        if column == "ended" and op == "=" and value.startswith("false"):
            yield column, "partial"
        elif op in ("<", ">", "<=", ">="):
            yield column, "range"
        else:
            yield column, "equal"
    for match in _NEGATED.finditer(filter_text):
        column = match.group(1)
        yield column, "partial" if column == "ended" else "equal"


def _index_statement(
    table: str, columns: Sequence[str], keys: list[str], partial: list[str]
) -> str | None:
    """CREATE INDEX CONCURRENTLY (it blocks no writer), partial where the filter says so."""
    if not keys and not partial:
        return None
    if not keys:
        keys = [c for c in ["userId", "locationId", "channelId", "id"] if c in columns][:1]
    statement = f"CREATE INDEX CONCURRENTLY ON {_quote(table)} ({', '.join(map(_quote, keys))})"
    if partial:
        statement += " WHERE " + " AND ".join(f"{c} = false" for c in partial)
    return statement


def explain_snapshot(
    dsn: str, settings: Settings, specs: list[MetricSpec], slot: datetime
) -> list[MetricPlan]:
    """EXPLAIN ANALYZE every metric in one read-only snapshot; the platform is never changed."""
    job = Job("source", "source database error", read_only=True, repeatable_read=True)
    with session(dsn, settings, job) as conn:
        return runner.explain_all(
            PostgresDialect(conn, settings, dsn), specs, slot, settings.interval
        )


class PostgresDialect:
    """PostgreSQL's statements for the snapshot runner, on one connection of the snapshot:
    a savepoint keeps a failing metric from ending the transaction."""

    def __init__(self, conn: psycopg.Connection[Any], settings: Settings, dsn: str) -> None:
        import psycopg

        self.conn = conn
        self.settings = settings
        self.dsn = dsn
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)
        # The connection opened after a replay conflict ended the first one's session.
        self.spare: psycopg.Connection[Any] | None = None

    def close(self) -> None:
        """Close the connection this dialect opened itself, if any."""
        if self.spare is not None:
            self.spare.close()

    def prepare(
        self, spec: MetricSpec, slot: datetime, interval: timedelta
    ) -> tuple[str, dict[str, Any]]:
        """The metric's text, and %(slot)s and %(interval)s bound by the server."""
        return spec.sql.strip().rstrip(";"), {"slot": slot, "interval": interval}

    def guarded(self) -> contextlib.AbstractContextManager[Any]:
        """A savepoint: a failing statement rolls back to it, the snapshot goes on."""
        return self.conn.transaction()

    def columns(self, text: str, params: Any) -> list[str]:
        """The query's column names (LIMIT 0)."""
        return _columns(self.conn, text, params)

    def measured(self, text: str, limit: int, counts: Sequence[str], dims: Sequence[str]) -> str:
        """The query with its count columns and dimensions size-checked by the server."""
        if list(counts) == ["count"] and not dims:
            return _measured(text) + f"\nLIMIT {limit:d}"
        return _measured_columns(self.conn, text, counts, dims) + f"\nLIMIT {limit:d}"

    def fetch(self, query: str, params: Any) -> list[Any]:
        """Every row of one statement."""
        return self.conn.execute(query, params).fetchall()

    def missing_column(self, exc: Exception) -> bool:
        """SQLSTATE 42703 (undefined column)."""
        import psycopg

        return isinstance(exc, psycopg.errors.UndefinedColumn)

    def error_line(self, exc: Exception) -> str:
        """The server's primary message (a replay conflict with its hint)."""
        return error_line(exc)

    def lost(self) -> bool:
        """True when the session is gone."""
        return self.conn.broken

    def recover(self, failed: MetricFailure) -> bool:
        """A hot standby ends the session of a query in a savepoint that replay conflicts
        with: that metric fails alone, the rest read a fresh snapshot."""
        if not _replay_conflict(failed):
            return False
        self.close()
        self.conn = self.spare = connect(self.dsn, self.settings, purpose="source")
        _begin_snapshot(self.conn, self.settings)
        return True

    def verify(self, metric: str) -> None:
        """Nothing to check: READ ONLY is the transaction's own, no statement can lift it."""

    def plan(self, text: str, params: Any) -> runner.Plan:
        """EXPLAIN ANALYZE in JSON: cost, time, and the sequential scans with their tables'
        estimated rows and columns."""
        row = self.conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + text, params).fetchone()
        assert row is not None
        doc = row[0][0]
        scans = []
        for node in _walk(doc["Plan"]):
            if node.get("Node Type") != "Seq Scan" or "Relation Name" not in node:
                continue
            table = node["Relation Name"]
            size = self.conn.execute(
                "SELECT greatest(c.reltuples, 0)::bigint, "
                "array(SELECT attname::text FROM pg_attribute a WHERE a.attrelid = c.oid "
                "AND a.attnum > 0 AND NOT a.attisdropped) "
                "FROM pg_class c WHERE c.oid = to_regclass(%s)",
                (_quote(node.get("Schema", "public")) + "." + _quote(table),),
            ).fetchone()
            rows, columns = (int(size[0]), list(size[1])) if size else (0, [])
            scans.append(runner.Scan(table, rows, columns, str(node.get("Filter", ""))))
        return runner.Plan(
            float(doc["Plan"]["Total Cost"]), float(doc.get("Execution Time", 0.0)), scans
        )

    def suggest_index(self, table: str, columns: list[str], condition: str) -> str | None:
        """CREATE INDEX CONCURRENTLY, partial where the filter says so."""
        return suggest_index(table, columns, condition)
