"""`config check --explain`: each metric's plan, cost and time; sequential scans and the index to add."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.config import MetricSpec, Settings
from analytics_cli.db import connect, database_error, error_line
from analytics_cli.sources.base import FullScan, MetricPlan

if TYPE_CHECKING:
    import psycopg

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
    """A CREATE INDEX statement that lets the planner skip a sequential scan, or None."""
    if not filter_text:
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


def explain(settings: Settings, specs: list[MetricSpec], slot: datetime) -> list[MetricPlan]:
    """Every metric's plan on the (first) source, through its engine's Source."""
    from analytics_cli.sources.base import open_source

    assert settings.source_dsn is not None
    return open_source(settings.source_dsn, settings).explain(specs, slot)


def explain_snapshot(
    dsn: str, settings: Settings, specs: list[MetricSpec], slot: datetime
) -> list[MetricPlan]:
    """EXPLAIN ANALYZE every metric in one read-only snapshot; the platform is never changed."""
    import psycopg

    conn = connect(dsn, settings, purpose="source", retries=settings.retries)
    plans: list[MetricPlan] = []
    params = {"slot": slot, "interval": settings.interval}
    try:
        with conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            timeout_ms = int(settings.statement_timeout.total_seconds() * 1000)
            conn.execute(f"SET LOCAL statement_timeout = {timeout_ms:d}")
            for spec in specs:
                plans.append(_explain_one(conn, spec, params))
            conn.rollback()
    except psycopg.Error as exc:
        raise database_error(exc, dsn, doing="source database error") from None
    return plans


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
