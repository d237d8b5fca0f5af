"""The metric registry and runner: SQL text in, Sample or MetricFailure out."""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analytics_cli.config import MetricSpec, Settings
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

# Counts beyond this are refused: no platform metric is that large, a runaway query may be.
MAX_ABS_COUNT = Decimal(10) ** 18
# No count needs more text than this; a longer value (a runaway 100 MB string) is refused by
# the server before it is sent, so the collector's memory stays bounded.
MAX_COUNT_OCTETS = 1000
# A dimension value (a location name) longer than this is not a label; refuse it the same way.
MAX_DIMENSION_OCTETS = 1000


@dataclass(frozen=True)
class Sample:
    """One metric's value for a slot."""

    type: str
    count: Decimal
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricFailure:
    """One metric's failure for a slot; ``error`` is a single line."""

    type: str
    error: str


@dataclass(frozen=True)
class Series:
    """A dimensional metric's rows for a slot: one Sample per dimension value (maybe none)."""

    type: str
    samples: tuple[Sample, ...]


Outcome = Sample | Series | MetricFailure


@cache
def builtin_metrics() -> tuple[MetricSpec, ...]:
    """The built-in iR Engine pack, read from the packaged ``metrics.toml``."""
    from analytics_cli.config import metric_spec

    text = resources.files("analytics_cli").joinpath("metrics.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    return tuple(
        metric_spec(m, where=f"metrics.toml: {m['type']}", builtin=True) for m in doc["metric"]
    )


def all_metrics(settings: Settings) -> tuple[MetricSpec, ...]:
    """Every metric known to this configuration: built-ins, then custom ones."""
    builtin = builtin_metrics()
    names = {m.type for m in builtin}
    for spec in settings.custom:
        if spec.type in names:
            raise ConfigError(
                f"custom metric {spec.type!r} has the name of a built-in metric",
                hint="choose another type name, or disable the built-in via [collect] metrics",
            )
    return builtin + settings.custom


def suggest(name: str, known: list[str]) -> str:
    """A 'did you mean' hint for an unknown metric type."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    lowered = [k for k in known if k.lower() == name.lower() and k not in close]
    close = lowered + close
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known types: " + ", ".join(known) if known else "no metric types are known"


def enabled_metrics(settings: Settings, only: list[str] | None = None) -> list[MetricSpec]:
    """The metrics a cycle runs: [collect] metrics (built-ins) + custom ones, narrowed by --only."""
    every = all_metrics(settings)
    by_name = {m.type: m for m in every}
    builtin_names = [m.type for m in every if m.builtin]
    if settings.metrics is not None:
        for name in settings.metrics:
            if name not in builtin_names:
                raise ConfigError(
                    f"[collect] metrics: unknown built-in metric {name!r}",
                    hint=suggest(name, builtin_names),
                )
        chosen = [by_name[n] for n in builtin_names if n in settings.metrics]
    else:
        # Built-ins marked enabled = false (dimensional, HTTP) run only when asked for.
        chosen = [m for m in every if m.builtin and m.enabled]
    chosen += [m for m in every if not m.builtin and m.enabled]
    if only:
        known = [m.type for m in every]
        for name in only:
            if name not in by_name:
                raise ConfigError(f"unknown metric type {name!r}", hint=suggest(name, known))
        chosen = [by_name[n] for n in dict.fromkeys(only)]
    return chosen


def check_count(value: object) -> Decimal:
    """A count value as an exact, finite Decimal within range; ValueError otherwise."""
    return _as_count(value)


def _as_count(value: object) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"count is {value!r}, not a number")
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"count is {value!r}, not a finite number")
        result = Decimal(repr(value))
    else:
        raise ValueError(f"count is of type {type(value).__name__}, not numeric")
    if not result.is_finite():
        raise ValueError(f"count is {value}, not a finite number")
    if abs(result) >= MAX_ABS_COUNT:
        raise ValueError(f"count {value} is out of range (|count| < 1e18)")
    return result


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
        from analytics_cli.db import error_line

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
            count = _as_count(value)
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
    from analytics_cli.db import error_line

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
        message = f"query must return exactly one row, got {got}"
        if rows:
            try:
                with conn.transaction():
                    extra = [n for n in _columns(conn, text, params) if n != "count"]
            except psycopg.Error:
                extra = []
            if extra:
                # A GROUP BY query is a dimensional metric that does not say so yet.
                listed = ", ".join(f'"{n}"' for n in extra)
                message += (
                    f"; it also returns {', '.join(extra)}: for one row per "
                    f"{' and '.join(extra)}, add dimensions = [{listed}]"
                )
        return MetricFailure(spec.type, message)
    value, octets = rows[0]
    if octets is not None and octets > MAX_COUNT_OCTETS:
        return MetricFailure(
            spec.type, f"count value is too large ({octets} bytes as text), not a count"
        )
    try:
        count = _as_count(value)
    except ValueError as exc:
        return MetricFailure(spec.type, str(exc))
    return Sample(spec.type, count)
