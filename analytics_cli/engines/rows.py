"""Rows a metric query returned, made into outcomes: the same checks for every engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analytics_cli.samples import (
    MAX_COUNT_OCTETS,
    MAX_DIMENSION_OCTETS,
    MetricFailure,
    Outcome,
    Sample,
    Series,
    check_count,
)

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec


def sample_from(spec: MetricSpec, rows: Sequence[Any], at: int) -> Sample | MetricFailure:
    """The one row's count in columns ``at`` (value) and ``at + 1`` (its size)."""
    if len(rows) != 1:
        got = "no rows" if not rows else "more than one row"
        return MetricFailure(spec.type, f"query must return exactly one row, got {got}")
    value, octets = rows[0][at], rows[0][at + 1]
    if octets is not None and octets > MAX_COUNT_OCTETS:
        return MetricFailure(
            spec.type, f"count value is too large ({octets} bytes as text), not a count"
        )
    try:
        return Sample(spec.type, check_count(value))
    except ValueError as exc:
        return MetricFailure(spec.type, str(exc))


def series_from(
    spec: MetricSpec, rows: Sequence[Any], at: int, dims_at: int
) -> Series | MetricFailure:
    """One Sample per row: the count in column ``at``, the dimensions from ``dims_at`` on."""
    dims = spec.dimensions
    if len(rows) > spec.max_series:
        return MetricFailure(
            spec.type,
            f"query returned more than max_series = {spec.max_series} rows; nothing was stored",
        )
    samples: list[Sample] = []
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        value, octets = row[at], row[at + 1]
        if octets is not None and octets > MAX_COUNT_OCTETS:
            return MetricFailure(
                spec.type, f"count value is too large ({octets} bytes as text), not a count"
            )
        metadata: dict[str, Any] = {}
        for i, name in enumerate(dims):
            text_value, size = row[dims_at + 2 * i], row[dims_at + 2 * i + 1]
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


def with_dimensions_hint(
    failure: Sample | MetricFailure, columns: Sequence[str]
) -> Sample | MetricFailure:
    """A "more than one row" failure naming the query's other columns as the dimensions to add."""
    extra = [n for n in columns if n != "count"]
    if not isinstance(failure, MetricFailure) or not extra:
        return failure
    # A GROUP BY query is a dimensional metric that does not say so yet.
    listed = ", ".join(f'"{n}"' for n in extra)
    return MetricFailure(
        failure.type,
        f"{failure.error}; it also returns {', '.join(extra)}: for one row per "
        f"{' and '.join(extra)}, add dimensions = [{listed}]",
    )


def shared_from(
    specs: Sequence[MetricSpec], names: Sequence[str], wanted: Sequence[str], rows: Sequence[Any]
) -> list[Outcome]:
    """The outcomes of a [[query]] run once: ``rows`` hold the size-checked ``wanted`` count
    columns (in that order), then the dimensions. A missing column fails only its metric;
    a missing dimension fails all of them."""
    first = specs[0]
    dims = first.dimensions
    missing = [d for d in dims if d not in names]
    if missing:
        error = f"query {first.query!r} returned no column named {missing[0]} (got {list(names)})"
        return [MetricFailure(s.type, error) for s in specs]
    outcomes: list[Outcome] = []
    for spec in specs:
        if spec.type not in wanted:
            outcomes.append(
                MetricFailure(
                    spec.type,
                    f"query {first.query!r} returned no column named {spec.type} "
                    f"(got {list(names)})",
                )
            )
            continue
        at = 2 * list(wanted).index(spec.type)
        outcomes.append(
            series_from(spec, rows, at, 2 * len(wanted)) if dims else sample_from(spec, rows, at)
        )
    return outcomes
