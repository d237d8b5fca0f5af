"""``status --anomalies``: each metric's latest value against its own history at the same time
of week (median and MAD), and against its hard limits from the config."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from analytics_cli.config.schema import Alert, Settings
from analytics_cli.engines.reading import total_points
from analytics_cli.engines.shapes import Selection
from analytics_cli.engines.stores import open_store
from analytics_cli.timeutil import iso, utcnow

WEEK = timedelta(days=7)
# The settings of the method (docs/operations.md: "Anomalies"). The history is the last WEEKS weeks;
# at each of them, the values within NEAR of the same time of week are the reference.
WEEKS = 4
NEAR = timedelta(hours=1)
# Only a latest value this recent is judged (or within two of the metric's own every).
RECENT = timedelta(days=1)
# Fewer earlier weeks with a reference value than this: too little history, never fires.
MIN_WEEKS = 3
# The expected range is median ± THRESHOLD × scale.
THRESHOLD = 4.0
# scale = max(1.4826 × MAD, POISSON × √|median|, FLOOR × the metric's usual level).
# 1.4826 × MAD is the spread of the reference values (it estimates the standard deviation of
# normally distributed values, and a few outliers do not move it). Counts of independent
# events vary about as the square root of their size (Poisson): the second term keeps a small
# count (0–20) from firing on an ordinary burst. The usual level is the 90th percentile of the
# absolute values over the whole history (at least 1): the third term keeps a metric that
# hardly moves (MAD 0) from firing on a tiny change.
POISSON = 1.2
FLOOR = 0.05
LEVEL_QUANTILE = 0.9
MAD_SCALE = 1.4826


def expected_range(low: float | None, high: float | None) -> str:
    """The expected range as a person reads it: ``3 to 12``, ``at least 3``, ``at most 12``."""

    def num(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else f"{value:.2f}"

    if low is None and high is None:
        return "-"
    if low is None:
        return f"at most {num(high or 0)}"
    if high is None:
        return f"at least {num(low)}"
    return f"{num(low)} to {num(high)}"


@dataclass(frozen=True)
class Finding:
    """One reason to alert: the value, the range it left and why."""

    type: str
    value: Decimal
    at: datetime
    low: float | None
    high: float | None
    kind: str  # "drop", "spike", "below limit", "above limit"
    why: str

    @property
    def expected(self) -> str:
        """The range the value left, as a person reads it."""
        return expected_range(self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "type": self.type,
            "value": float(self.value),
            "at": iso(self.at),
            "low": self.low,
            "high": self.high,
            "kind": self.kind,
            "why": self.why,
        }


@dataclass(frozen=True)
class MetricCheck:
    """One metric: its latest value, the range its history expects and the findings."""

    type: str
    value: Decimal | None = None
    at: datetime | None = None
    # None when there is too little history (or no value): the method does not judge.
    low: float | None = None
    high: float | None = None
    median: float | None = None
    mad: float | None = None
    samples: int = 0
    weeks: int = 0
    note: str = ""  # "too little history …", "no value …"
    alert: Alert | None = None
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "type": self.type,
            "value": float(self.value) if self.value is not None else None,
            "at": iso(self.at) if self.at else None,
            "expected": ({"low": self.low, "high": self.high} if self.low is not None else None),
            "median": self.median,
            "mad": self.mad,
            "samples": self.samples,
            "weeks": self.weeks,
            "note": self.note or None,
            "limits": (
                {
                    "below": float(self.alert.below) if self.alert.below is not None else None,
                    "above": float(self.alert.above) if self.alert.above is not None else None,
                }
                if self.alert
                else None
            ),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class AnomalyReport:
    """Every metric's check; exit 1 when any finding fires."""

    now: datetime
    checks: list[MetricCheck] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        """All findings, metric by metric."""
        return [f for c in self.checks for f in c.findings]

    @property
    def exit_code(self) -> int:
        """1 when a finding fired, else 0."""
        return 1 if self.findings else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, with the method's settings."""
        return {
            "now": iso(self.now),
            "method": {
                "weeks": WEEKS,
                "min_weeks": MIN_WEEKS,
                "near_seconds": int(NEAR.total_seconds()),
                "threshold": THRESHOLD,
                "poisson": POISSON,
                "floor": FLOOR,
            },
            "findings": [f.to_dict() for f in self.findings],
            "metrics": [c.to_dict() for c in self.checks],
            "exit_code": self.exit_code,
        }


def anomalies(settings: Settings, *, now: datetime | None = None) -> AnomalyReport:
    """Check each metric's latest value (at or before ``now``) against its history and limits."""
    from analytics_cli.metrics import all_metrics, enabled_metrics

    now = now or utcnow()
    report = AnomalyReport(now)
    enabled = [m.type for m in enabled_metrics(settings)]
    every = {m.type: m.every for m in all_metrics(settings) if m.every is not None}
    since = now - (WEEKS + 1) * WEEK
    with open_store(settings, doing="store database error", read_only=True) as found:
        layout = found.detect()
        if layout is None:
            return report
        sel = found.selection(layout, Selection(settings.table, since=since, until=now))
        series: dict[str, dict[datetime, Decimal]] = {}
        for point in total_points(found, sel, settings.interval, settings.interval):
            series.setdefault(point.type, {})[point.timestamp] = point.count
    for name in [*enabled, *(t for t in series if t not in enabled)]:
        # A value older than this is history, not the present (status reports staleness):
        # a retired metric's last value must not fire for weeks.
        recent = now - max(RECENT, 2 * every.get(name, settings.interval))
        values = series.get(name, {})
        report.checks.append(check(name, values, settings.alert_for(name), not_before=recent))
    return report


def check(
    name: str,
    values: dict[datetime, Decimal],
    alert: Alert | None,
    *,
    not_before: datetime | None = None,
) -> MetricCheck:
    """Judge the newest of ``values`` (slot → per-slot total) by the ones before it; a newest
    value older than ``not_before`` is not judged."""
    if not values:
        return MetricCheck(name, note="no value in the last weeks", alert=alert)
    latest = max(values)
    value = values[latest]
    if not_before is not None and latest < not_before:
        note = "not judged: the latest value is old (status reports staleness)"
        return MetricCheck(name, value, latest, note=note, alert=alert)
    found: list[Finding] = []
    refs: list[float] = []
    weeks = 0
    for back in range(1, WEEKS + 1):
        centre = latest - back * WEEK
        near = [float(v) for t, v in values.items() if abs(t - centre) <= NEAR]
        if near:
            weeks += 1
            refs += near
    start = latest - WEEKS * WEEK - NEAR
    history = [float(v) for t, v in values.items() if start <= t < latest]
    low = high = median = mad = None
    note = ""
    if weeks < MIN_WEEKS:
        note = (
            f"too little history: {weeks} of the last {WEEKS} weeks have a value at this "
            f"time of week, {MIN_WEEKS} needed"
        )
    else:
        median = statistics.median(refs)
        mad = statistics.median(abs(r - median) for r in refs)
        level = max(_quantile([abs(v) for v in history], LEVEL_QUANTILE), 1.0)
        scale = max(MAD_SCALE * mad, POISSON * math.sqrt(max(abs(median), 1.0)), FLOOR * level)
        low, high = median - THRESHOLD * scale, median + THRESHOLD * scale
        if min(history, default=0.0) >= 0:
            # A count never goes below 0: neither does its range (no value can fall under it).
            low = max(low, 0.0)
        usual = (
            f"median {_num(median)} of {len(refs)} values within {_hours(NEAR)} of this time "
            f"of week over {weeks} weeks"
        )
        if float(value) < low:
            found.append(
                Finding(name, value, latest, low, high, "drop", f"below the usual range ({usual})")
            )
        elif float(value) > high:
            found.append(
                Finding(name, value, latest, low, high, "spike", f"above the usual range ({usual})")
            )
    if alert is not None:
        if alert.below is not None and value < alert.below:
            found.append(
                Finding(
                    name,
                    value,
                    latest,
                    float(alert.below),
                    None,
                    "below limit",
                    f"below the configured limit (alert below = {_num(float(alert.below))})",
                )
            )
        if alert.above is not None and value > alert.above:
            found.append(
                Finding(
                    name,
                    value,
                    latest,
                    None,
                    float(alert.above),
                    "above limit",
                    f"above the configured limit (alert above = {_num(float(alert.above))})",
                )
            )
    return MetricCheck(
        name,
        value,
        latest,
        low,
        high,
        median,
        mad,
        len(refs),
        weeks,
        note,
        alert,
        tuple(found),
    )


def _quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank below), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def _num(value: float) -> str:
    """A number for the finding lines: integers as they are, else two decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _hours(delta: timedelta) -> str:
    from analytics_cli.timeutil import format_duration

    return format_duration(delta)
