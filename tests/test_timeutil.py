"""Durations, --since/--until parsing and slot flooring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import (
    floor_slot,
    format_duration,
    parse_duration,
    parse_timestamp,
    parse_when,
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
        (" 15M ", timedelta(minutes=15)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m", "30", "-5m", "0m", "5 m", "1y", "30m;", "99999w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


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


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=7 * 24 * 60),
)
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
