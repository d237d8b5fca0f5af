"""What a metric gives back for a slot, and what the store can hold of it.

A leaf below the metric registry, the engines and the spool: a Sample, a Series or a
MetricFailure, and the checks every row passes before any store sees it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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
