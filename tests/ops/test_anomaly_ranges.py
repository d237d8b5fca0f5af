"""The expected range of ``status --anomalies`` against hand computations.

Each history below is small enough to work out on paper (README "Anomalies"):
refs = the values within 1 h of the latest slot's time of week, 1 to 4 weeks back;
median and MAD of refs; level = the 90th percentile (nearest rank below) of |values| of
the last 4 weeks and 1 h; scale = max(1.4826 MAD, 1.2 sqrt(max(|median|, 1)), 0.05 level);
range = median -+ 4 scale, its low end clamped at 0 when no value of the history is below 0.
The numbers in the asserts are that arithmetic done by hand, not by the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from psycopg.types.json import Jsonb

from analytics_cli.anomalies import MetricCheck, anomalies, check
from analytics_cli.config.load import load
from tests.conftest import Databases, cli

LATEST = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def history(values: dict[timedelta, float], latest: float) -> dict[datetime, Decimal]:
    """Values at LATEST - offset, and the latest value itself."""
    out = {LATEST - back: Decimal(str(v)) for back, v in values.items()}
    out[LATEST] = Decimal(str(latest))
    return out


def judged(result: MetricCheck) -> tuple[object, ...]:
    return (result.median, result.mad, result.samples, result.weeks)


def test_the_spread_of_the_reference_values_sets_the_range() -> None:
    values = {
        WEEK: 100,
        WEEK + H: 110,  # exactly 1 h from the time of week: a reference value
        2 * WEEK: 90,
        2 * WEEK - H - 30 * M: 1000,  # 1 h 30 min away: history, not a reference
        3 * WEEK: 120,
        4 * WEEK: 80,
        4 * WEEK - H: 140,  # 1 h after the time of week, four weeks back: a reference
        5 * WEEK: 1000,  # five weeks back: neither a reference nor history
    }
    # refs 80 90 100 110 120 140: median (100 + 110) / 2 = 105; deviations 25 15 5 5 15 35,
    # MAD 15; scale max(1.4826 * 15 = 22.239, 1.2 * sqrt(105) = 12.30, 0.05 * 140 = 7).
    # 105 -+ 4 * 22.239 = 105 -+ 88.956.
    quiet = check("visits", history(values, 193), None)
    assert judged(quiet) == (105.0, 15.0, 6, 4)
    assert quiet.low == pytest.approx(16.044)
    assert quiet.high == pytest.approx(193.956)
    assert (quiet.findings, quiet.note) == ((), "")
    [spike] = check("visits", history(values, 194), None).findings
    assert (spike.kind, spike.low, spike.high) == ("spike", quiet.low, quiet.high)
    assert spike.why == (
        "above the usual range (median 105 of 6 values within 1h of this time of week over 4 weeks)"
    )
    [drop] = check("visits", history(values, 16), None).findings
    assert drop.kind == "drop"
    assert check("visits", history(values, 16.05), None).findings == ()


def test_a_small_count_gets_the_poisson_width_and_a_low_end_of_0() -> None:
    values = {WEEK: 4, 2 * WEEK: 4, 3 * WEEK: 4, 4 * WEEK: 4}
    # median 4, MAD 0; scale max(0, 1.2 * sqrt(4) = 2.4, 0.05 * 4 = 0.2) = 2.4;
    # 4 -+ 9.6 = -5.6 .. 13.6, clamped to 0 .. 13.6 (a count is never below 0).
    at_13 = check("chats", history(values, 13), None)
    assert judged(at_13) == (4.0, 0.0, 4, 4)
    assert at_13.low == 0.0
    assert at_13.high == pytest.approx(13.6)
    assert at_13.findings == ()
    [spike] = check("chats", history(values, 14), None).findings
    assert spike.kind == "spike"
    # A 0 is inside the range: never a drop. The latest value is judged, not history: a
    # negative one is below the clamped range.
    assert check("chats", history(values, 0), None).findings == ()
    [drop] = check("chats", history(values, -1), None).findings
    assert (drop.kind, drop.low) == ("drop", 0.0)


def test_three_weeks_are_enough_and_a_0_in_the_history_still_clamps() -> None:
    values = {WEEK: 0, 2 * WEEK: 2, 3 * WEEK: 2}
    # refs 0 2 2: median 2, MAD 0; level: |values| 0 2 2, nearest rank below 0.9 -> 2;
    # scale max(0, 1.2 * sqrt(2) = 1.6970563, 0.1) ; 2 -+ 6.7882251 -> 0 .. 8.7882251.
    result = check("joins", history(values, 8), None)
    assert judged(result) == (2.0, 0.0, 3, 3)
    assert result.low == 0.0
    assert result.high == pytest.approx(8.7882251)
    assert result.findings == ()
    assert check("joins", history(values, 9), None).findings[0].kind == "spike"


def test_two_weeks_are_too_little() -> None:
    result = check("joins", history({WEEK: 2, 2 * WEEK: 2}, 500), None)
    assert (result.low, result.high, result.median, result.findings) == (None, None, None, ())
    assert result.note == (
        "too little history: 2 of the last 4 weeks have a value at this time of week, 3 needed"
    )


def test_a_median_of_0_is_widened_as_if_it_were_1() -> None:
    values = {WEEK: 0, 2 * WEEK: 0, 3 * WEEK: 0, 4 * WEEK: 0}
    # scale max(0, 1.2 * sqrt(max(0, 1)) = 1.2, 0.05 * max(0, 1)) = 1.2: 0 .. 4.8.
    result = check("rare", history(values, 4), None)
    assert (result.low, result.high) == (0.0, pytest.approx(4.8))
    assert result.findings == ()
    assert check("rare", history(values, 5), None).findings[0].kind == "spike"


def test_a_metric_that_can_go_negative_keeps_its_negative_low_end() -> None:
    values = {WEEK: -2, 2 * WEEK: 0, 3 * WEEK: 2, 4 * WEEK: 4}
    # refs -2 0 2 4: median 1, deviations 3 1 1 3, MAD 2; scale max(2.9652, 1.2, 0.05 * 2)
    # = 2.9652; 1 -+ 11.8608.
    result = check("balance", history(values, 1), None)
    assert judged(result) == (1.0, 2.0, 4, 4)
    assert result.low == pytest.approx(-10.8608)
    assert result.high == pytest.approx(12.8608)
    [drop] = check("balance", history(values, -11), None).findings
    assert drop.kind == "drop"


def test_the_usual_level_keeps_a_steady_metric_from_firing_on_a_small_change() -> None:
    values = {
        WEEK: 1000,
        2 * WEEK: 1000,
        3 * WEEK: 1000,
        4 * WEEK: 1000,
        timedelta(days=2): 2000,
        timedelta(days=3): 2000,
        # Before the 4 weeks and 1 h of history: no part of the level.
        4 * WEEK + H + 30 * M: 1_000_000,
    }
    # MAD 0; level: 1000 x4, 2000 x2, nearest rank below 0.9 -> 2000; scale
    # max(0, 1.2 * sqrt(1000) = 37.95, 0.05 * 2000 = 100) = 100: 600 .. 1400.
    result = check("storage", history(values, 600), None)
    assert judged(result) == (1000.0, 0.0, 4, 4)
    assert (result.low, result.high) == (pytest.approx(600), pytest.approx(1400))
    assert result.findings == ()
    assert check("storage", history(values, 599), None).findings[0].kind == "drop"
    assert check("storage", history(values, 1400), None).findings == ()
    assert check("storage", history(values, 1401), None).findings[0].kind == "spike"


def test_the_oldest_value_of_the_history_still_counts() -> None:
    # 4 weeks and 1 h back: the first instant of the history (and a reference value, 1 h
    # from the time of week). Its -1 means the metric can go negative: no clamp at 0.
    values = {WEEK: 10, 2 * WEEK: 10, 3 * WEEK: 10, 4 * WEEK + H: -1}
    # refs -1 10 10 10: median 10, MAD 0; scale max(0, 1.2 * sqrt(10) = 3.7947332, 0.5);
    # 10 -+ 15.1789328.
    result = check("balance", history(values, 10), None)
    assert judged(result) == (10.0, 0.0, 4, 4)
    assert result.low == pytest.approx(-5.1789328)
    assert result.high == pytest.approx(25.1789328)


def test_the_same_range_from_the_store(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first history above, stored as collect stores it and judged by the command's
    own path (the store's per-slot totals, the history window)."""
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    assert cli("db", "init").exit_code == 0
    values = {WEEK: 100, WEEK + H: 110, 2 * WEEK: 90, 2 * WEEK - H - 30 * M: 1000,
              3 * WEEK: 120, 4 * WEEK: 80, 4 * WEEK - H: 140}  # fmt: skip
    with dbs.store_conn() as conn:
        for at, count in history(values, 194).items():
            # Two rows per slot, told apart by their metadata: the slot's total is judged.
            half = count / 2
            for part in ("a", "b"):
                conn.execute(
                    'INSERT INTO analytics (type, count, "timestamp", metadata) '
                    "VALUES ('visits', %s, %s, %s)",
                    (half, at, Jsonb({"part": part})),
                )
    settings = load(env={"ANALYTICS_STORE_DSN": dbs.store}, discover=False)
    report = anomalies(settings, now=LATEST + timedelta(minutes=10))
    [visits] = [c for c in report.checks if c.type == "visits"]
    assert judged(visits) == (105.0, 15.0, 6, 4)
    assert (visits.low, visits.high) == (pytest.approx(16.044), pytest.approx(193.956))
    assert [f.kind for f in visits.findings] == ["spike"]
    assert report.exit_code == 1
