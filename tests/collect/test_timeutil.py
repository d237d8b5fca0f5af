"""Durations, --since/--until parsing and slot flooring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import (
    floor_slot,
    format_duration,
    parse_duration,
    parse_timestamp,
    parse_when,
    slots,
)

NOW = datetime(2026, 11, 29, 10, 17, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("6h", timedelta(hours=6)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        (" 15m ", timedelta(minutes=15)),
        (" 6H ", timedelta(hours=6)),
        ("1y", timedelta(days=365)),
        ("2Y", timedelta(days=730)),
        ("1y2w", timedelta(days=379)),
        ("10y", timedelta(days=3650)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m", "30", "-5m", "0m", "5 m", "y", "30m;", "99999w", "11y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        # M is minutes or months depending on who writes it: refused either way.
        (
            "6M",
            "invalid --older-than '6M': M is ambiguous (minutes or months?)",
            "write minutes as m (30m), months as days (30d, 90d) or years as y (1y)",
        ),
        (
            " 15M ",
            "invalid --older-than ' 15M ': M is ambiguous (minutes or months?)",
            "write minutes as m (30m), months as days (30d, 90d) or years as y (1y)",
        ),
        (
            "3months",
            "invalid --older-than '3months': months vary in length",
            "write minutes as m (30m), months as days (30d, 90d) or years as y (1y)",
        ),
        (
            "6mo",
            "invalid --older-than '6mo': months vary in length",
            "write minutes as m (30m), months as days (30d, 90d) or years as y (1y)",
        ),
        (
            "2 years",
            "invalid --older-than '2 years': the unit 'years' is written y",
            "write 2y; use a number and a unit: 30s, 30m, 6h, 7d, 2w, 1y (or combined: 1h30m)",
        ),
        (
            "90days",
            "invalid --older-than '90days': the unit 'days' is written d",
            "write 90d; use a number and a unit: 30s, 30m, 6h, 7d, 2w, 1y (or combined: 1h30m)",
        ),
        (
            "30min",
            "invalid --older-than '30min': the unit 'min' is written m",
            "write 30m; use a number and a unit: 30s, 30m, 6h, 7d, 2w, 1y (or combined: 1h30m)",
        ),
    ],
)
def test_ambiguous_or_spelt_out_units_are_refused_with_the_fix(
    text: str, message: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text, what="--older-than")
    assert str(caught.value) == message
    assert caught.value.hint == hint


def test_format_duration_uses_years() -> None:
    assert format_duration(timedelta(days=365)) == "1y"
    assert format_duration(timedelta(days=400)) == "1y5w"
    assert format_duration(timedelta(days=364)) == "52w"


def test_a_misspelt_duration_ago_gets_the_duration_hint() -> None:
    assert parse_when("1y", now=NOW) == NOW - timedelta(days=365)
    with pytest.raises(ConfigError) as caught:
        parse_when("6M", now=NOW, what="--since")
    assert str(caught.value).startswith("invalid --since '6M': M is ambiguous")
    with pytest.raises(ConfigError) as spelt:
        parse_when("7 days", now=NOW, what="--since")
    assert str(spelt.value) == "invalid --since '7 days': the unit 'days' is written d"
    # ISO 8601's basic format is digits and letters too, and still a time.
    assert parse_when("20261101T120000Z", now=NOW) == datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_parse_when() -> None:
    assert parse_when("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_when("now", now=NOW) == NOW
    assert parse_when("2026-11-01", now=NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_when("2026-11-01T12:00:00+02:00", now=NOW) == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert parse_when("2026-11-01T12:00:00Z", now=NOW) == datetime(2026, 11, 1, 12, tzinfo=UTC)
    with pytest.raises(ConfigError, match="invalid --since"):
        parse_when("yesterday'; DROP TABLE analytics; --", now=NOW, what="--since")


def test_floor_slot() -> None:
    assert floor_slot(NOW, timedelta(minutes=30)) == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert floor_slot(NOW, timedelta(minutes=15)) == datetime(2026, 11, 29, 10, 15, tzinfo=UTC)
    exact = datetime(2026, 11, 29, 10, 30, tzinfo=UTC)
    assert floor_slot(exact, timedelta(minutes=30)) == exact


# (moment, interval, slot): a microsecond before each boundary stays in the slot before it;
# the boundary itself starts the next one. Rounding instead of flooring, or flooring to
# the wrong multiple, moves one of these.
EDGES = [
    ("2026-11-29T10:29:59.999999", timedelta(minutes=30), "2026-11-29T10:00:00"),
    ("2026-11-29T10:29:59.500000", timedelta(minutes=30), "2026-11-29T10:00:00"),
    ("2026-11-29T10:30:00", timedelta(minutes=30), "2026-11-29T10:30:00"),
    ("2026-11-29T10:30:00.000001", timedelta(minutes=30), "2026-11-29T10:30:00"),
    ("2026-11-29T10:14:59.999999", timedelta(minutes=15), "2026-11-29T10:00:00"),
    ("2026-11-29T10:15:00", timedelta(minutes=15), "2026-11-29T10:15:00"),
    ("2026-11-29T10:04:59.999999", timedelta(minutes=5), "2026-11-29T10:00:00"),
    ("2026-11-29T10:05:00", timedelta(minutes=5), "2026-11-29T10:05:00"),
    ("2026-11-29T10:59:59.999999", timedelta(hours=1), "2026-11-29T10:00:00"),
    ("2026-11-29T11:00:00", timedelta(hours=1), "2026-11-29T11:00:00"),
    ("2026-11-29T10:00:59.999999", timedelta(seconds=60), "2026-11-29T10:00:00"),
    ("2026-11-29T23:59:59.999999", timedelta(days=1), "2026-11-29T00:00:00"),
    ("2026-11-30T00:00:00", timedelta(days=1), "2026-11-30T00:00:00"),
    # 7 days from the epoch (a Thursday), not from a Monday.
    ("2026-12-02T23:59:59.999999", timedelta(days=7), "2026-11-26T00:00:00"),
    ("2026-12-03T00:00:00", timedelta(days=7), "2026-12-03T00:00:00"),
    # A step that does not divide an hour: multiples of 7 min from the epoch.
    ("2026-11-29T10:07:59.999999", timedelta(minutes=7), "2026-11-29T10:01:00"),
    ("2026-11-29T10:08:00", timedelta(minutes=7), "2026-11-29T10:08:00"),
    # Before the epoch the floor still goes down, never towards zero.
    ("1969-12-31T23:59:59.999999", timedelta(minutes=30), "1969-12-31T23:30:00"),
]


@pytest.mark.parametrize(("moment", "interval", "slot"), EDGES)
def test_floor_slot_at_and_just_below_each_boundary(
    moment: str, interval: timedelta, slot: str
) -> None:
    at = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    assert floor_slot(at, interval) == datetime.fromisoformat(slot).replace(tzinfo=UTC)
    # A naive time is UTC; another zone is the same instant.
    assert floor_slot(at.replace(tzinfo=None), interval) == floor_slot(at, interval)
    paris = at.astimezone(timezone(timedelta(hours=1)))
    assert floor_slot(paris, interval) == floor_slot(at, interval)


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=7 * 24 * 60),
)
@example(datetime(2026, 11, 29, 10, 29, 59, 999999, tzinfo=UTC), 30)
@example(datetime(2026, 11, 29, 10, 29, 59, 500000, tzinfo=UTC), 30)
@example(datetime(2026, 11, 29, 10, 30, tzinfo=UTC), 30)
@example(datetime(2026, 11, 29, 10, 59, 59, 999999, tzinfo=UTC), 60)
@example(datetime(2026, 12, 2, 23, 59, 59, 999999, tzinfo=UTC), 7 * 24 * 60)
def test_floor_slot_properties(moment: datetime, minutes: int) -> None:
    interval = timedelta(minutes=minutes)
    slot = floor_slot(moment, interval)
    assert slot <= moment < slot + interval
    assert floor_slot(slot, interval) == slot
    assert int(slot.timestamp()) % int(interval.total_seconds()) == 0


@given(st.integers(min_value=1, max_value=3600 * 24 * 3000))
def test_format_duration_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.text(max_size=40))
def test_parsers_raise_only_config_errors(text: str) -> None:
    for parse in (parse_duration, parse_timestamp, lambda t: parse_when(t, now=NOW)):
        try:
            value = parse(text)
        except ConfigError as exc:
            assert str(exc).startswith(("invalid", "empty"))
        else:
            assert isinstance(value, (timedelta, datetime))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("0m", "invalid duration '0m': must be greater than zero"),
        ("3661d", "invalid duration '3661d': longer than 3660 days"),
        ("6Mo", "invalid duration '6Mo': months vary in length"),
        ("30", "invalid duration '30'"),
    ],
)
def test_duration_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_the_longest_duration_is_accepted() -> None:
    assert parse_duration("3660d") == timedelta(days=3660)
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(seconds=-5)) == "0s"


def test_slots_from_start_to_end_excluded() -> None:
    start = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    half = timedelta(minutes=30)
    assert slots(start, start + 3 * half, half) == [start, start + half, start + 2 * half]
    assert slots(start, start + 3 * half + timedelta(seconds=1), half)[-1] == start + 3 * half
    assert slots(start, start, half) == []
