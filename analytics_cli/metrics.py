"""The metric registry and runner: SQL text in, Sample or MetricFailure out."""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analytics_cli.config.schema import MetricSpec, Settings
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    from datetime import datetime

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


# The packs other than PostgreSQL's: same types and meaning, each in its engine's dialect.
DIALECT_PACKS = ("mysql",)


def _pack(engine: str) -> dict[str, Any]:
    path = resources.files("analytics_cli").joinpath("packs", f"{engine}.toml")
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text("utf-8"))


@cache
def builtin_metrics() -> tuple[MetricSpec, ...]:
    """The built-in iR Engine pack: ``packs/postgresql.toml``, plus the other dialects' texts
    (a metric's own, or that of the [[query]] of the same name that fills it)."""
    from dataclasses import replace

    from analytics_cli.config.validate import metric_spec, with_queries

    texts: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for engine in DIALECT_PACKS:
        doc = _pack(engine)
        for item in doc.get("metric", []):
            if "sql" in item:
                texts.setdefault(("metric", item["type"]), []).append((engine, item["sql"].strip()))
        for item in doc.get("query", []):
            texts.setdefault(("query", item["name"]), []).append((engine, item["sql"].strip()))
    doc = _pack("postgresql")
    items = with_queries(doc["metric"], doc.get("query", []), where="packs/postgresql.toml")
    specs = []
    for item in items:
        key = ("query", item["query"]) if "query" in item else ("metric", item["type"])
        spec = metric_spec(item, where=f"packs/postgresql.toml: {item['type']}", builtin=True)
        specs.append(replace(spec, dialects=tuple(texts.get(key, ()))))
    return tuple(specs)


def all_metrics(settings: Settings) -> tuple[MetricSpec, ...]:
    """Every metric known to this configuration: built-ins, then custom ones."""
    builtin = builtin_metrics()
    names = {m.type for m in builtin}
    for spec in settings.custom:
        if spec.type in names:
            raise ConfigError(
                in_file(settings, f"custom metric {spec.type!r} has the name of a built-in metric"),
                hint="choose another type name, or disable the built-in via [collect] metrics",
            )
    return builtin + settings.custom


def in_file(settings: Settings, message: str) -> str:
    """A configuration error's line, starting with the file it is in (as the parser's do)."""
    return f"{settings.path}: {message}" if settings.path is not None else message


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
                    in_file(settings, f"[collect] metrics: unknown built-in metric {name!r}"),
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
    for spec in chosen:
        check_every(spec, settings)
    return chosen


def check_every(spec: MetricSpec, settings: Settings) -> None:
    """A metric's ``every`` must be a whole number of collection intervals."""
    from analytics_cli.timeutil import format_duration

    if spec.every is None or spec.every % settings.interval == timedelta(0):
        return
    raise ConfigError(
        in_file(
            settings,
            f"metric {spec.type!r}: every = {format_duration(spec.every)} is not a multiple of "
            f"[collect] interval = {format_duration(settings.interval)}",
        ),
        hint="choose an every (and an interval) so that the interval divides it, e.g. 30m and 1d",
    )


def groups(
    specs: Sequence[MetricSpec], slots: Mapping[str, datetime] | None = None
) -> list[list[MetricSpec]]:
    """The specs as they run: one group per [[query]] and slot (its metrics, in order), the
    others alone. Types of one query due at different slots run it once per slot."""
    out: list[list[MetricSpec]] = []
    shared: dict[tuple[str, datetime | None], list[MetricSpec]] = {}
    for spec in specs:
        if spec.query is None:
            out.append([spec])
            continue
        key = (spec.query, slots[spec.type] if slots is not None else None)
        if key in shared:
            shared[key].append(spec)
        else:
            shared[key] = [spec]
            out.append(shared[key])
    return out


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


def unstorable(sample: Sample) -> str | None:
    """Why the store cannot hold this row as it is, or None: the checks a live cycle and a
    spooled one both pass (a type the config accepts, a finite count in range, dimension
    values of text without a NUL byte, numbers or nulls)."""
    from analytics_cli.config.schema import METRIC_TYPE_RE

    if not isinstance(sample.type, str) or not METRIC_TYPE_RE.fullmatch(sample.type):
        return f"type {cut(repr(sample.type))} is not a valid metric type"
    try:
        check_count(sample.count)
    except ValueError as exc:
        return str(exc)
    for key, value in sample.metadata.items():
        if not isinstance(key, str) or "\x00" in key or not key:
            return f"dimension name {cut(repr(key))} is not a column name"
        if isinstance(value, str):
            if "\x00" in value:
                # Refused, not escaped: PostgreSQL text and jsonb cannot hold a NUL, and a
                # silent replacement could merge two values into one row.
                return (
                    f"dimension {key} value {cut(repr(value))} holds a NUL byte, which the "
                    f"store cannot hold; strip it in the query: replace({key}, char(0), '')"
                )
            try:
                octets = len(value.encode("utf-8"))
            except UnicodeEncodeError:
                return f"dimension {key} value {cut(repr(value))} is not valid Unicode text"
            if octets > MAX_DIMENSION_OCTETS:
                return f"dimension {key} value is too long ({octets} bytes)"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"dimension {key} value {value!r} is not a finite number"
        elif value is not None and not isinstance(value, int | float):
            return f"dimension {key} value is a {type(value).__name__}, not text or a number"
    return None


def storable(outcome: Outcome) -> Outcome:
    """The outcome, or that metric's failure when one of its rows cannot be stored."""
    rows = (
        outcome.samples
        if isinstance(outcome, Series)
        else (outcome,)
        if isinstance(outcome, Sample)
        else ()
    )
    for sample in rows:
        reason = unstorable(sample)
        if reason is not None:
            return MetricFailure(outcome.type, f"not stored: {reason}")
    return outcome


def cut(text: str, limit: int = 80) -> str:
    """A value shown in a message, at most ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
