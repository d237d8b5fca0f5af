"""Durations ("30m", "7d"), --since/--until parsing, slot flooring in UTC, --tz display times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from analytics_cli.errors import ConfigError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A year is 365 days: retention is thought of in years, and a fixed length keeps
# durations exact (no calendar). Months have no unit: their length varies.
_UNITS = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_PART = re.compile(r"(\d{1,9})([smhdwy])")
_DURATION = re.compile(r"(\d{1,9}[smhdwy])+")
# Anything of digits and letters is meant as a duration, whatever its spelling.
_DURATION_LIKE = re.compile(r"(\s*\d+\s*[a-zA-Z]+)+\s*")
_WORD = re.compile(r"(\d+)\s*([a-zA-Z]+)")
UNITS_HINT = "use a number and a unit: 30s, 30m, 6h, 7d, 2w, 1y (or combined: 1h30m)"
# Spellings refused with the one the tool takes; M and months are ambiguous, not mistyped.
_SPELLINGS = {
    **dict.fromkeys(("sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("day", "days"), "d"),
    **dict.fromkeys(("wk", "wks", "week", "weeks"), "w"),
    **dict.fromkeys(("yr", "yrs", "year", "years"), "y"),
}
_MONTHS = ("M", "mo", "mos", "mon", "month", "months")
# Ten years is far beyond any useful window; the cap keeps arithmetic inside datetime's range.
MAX_DURATION = timedelta(days=3660)


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse ``30m``, ``6h``, ``7d``, ``2w``, ``1y`` or combinations such as ``1h30m``."""
    raw = text.strip()
    if not raw:
        raise ConfigError(f"empty {what}", hint=UNITS_HINT)
    _refuse_spellings(text, raw, what)
    raw = raw.lower()
    pos = 0
    seconds = 0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or pos == 0:
        raise ConfigError(f"invalid {what} {text!r}", hint=UNITS_HINT)
    if seconds <= 0:
        raise ConfigError(f"invalid {what} {text!r}: must be greater than zero")
    # Compared as an integer first: a long enough sum overflows timedelta itself.
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(f"invalid {what} {text!r}: longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def _refuse_spellings(text: str, raw: str, what: str) -> None:
    """Refuse units that are ambiguous (M: minutes or months?) or spelt out, with the fix."""
    for match in _WORD.finditer(raw):
        number, word = match.group(1), match.group(2)
        if word in _MONTHS or word.lower() in _MONTHS[1:]:
            why = "M is ambiguous (minutes or months?)" if word == "M" else "months vary in length"
            raise ConfigError(
                f"invalid {what} {text!r}: {why}",
                hint="write minutes as m (30m), months as days (30d, 90d) or years as y (1y)",
            )
        unit = _SPELLINGS.get(word.lower())
        if unit is not None:
            raise ConfigError(
                f"invalid {what} {text!r}: the unit {word!r} is written {unit}",
                hint=f"write {number}{unit}; " + UNITS_HINT,
            )


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the shortest unit form ``parse_duration`` accepts (``30m``)."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    units = (("y", 365 * 86400), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for unit, size in units:
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_timestamp(text: str, *, what: str = "time") -> datetime:
    """Parse an ISO 8601 date or date-time; a value without a zone is taken as UTC."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"invalid {what} {text!r}",
            hint="use ISO 8601 (2026-11-29, 2026-11-29T10:30:00Z) or a duration ago (30m, 7d)",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ConfigError(f"invalid {what} {text!r}: out of range") from None


# A slot is collected from 2000 on (collect --at): older is a typo, and far-off years
# overflow datetime arithmetic (a year 1 or 9999 slot minus an interval).
EARLIEST_SLOT = datetime(2000, 1, 1, tzinfo=UTC)
# Reading windows (--since/--until) may reach wider, but stay where a window's own
# arithmetic (its length before it, any time zone) cannot leave datetime's range.
EARLIEST_READ = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_READ = datetime(3000, 1, 1, tzinfo=UTC)


def parse_when(text: str, *, now: datetime, what: str = "time") -> datetime:
    """Parse ``--since``/``--until``: a duration before ``now`` or an ISO 8601 time."""
    raw = text.strip()
    if raw.lower() == "now":
        return now
    if _DURATION.fullmatch(raw.lower()):
        return now - parse_duration(raw, what=what)
    try:
        value = parse_timestamp(raw, what=what)
    except ConfigError:
        if _DURATION_LIKE.fullmatch(raw):
            parse_duration(raw, what=what)  # a duration misspelt (6M, 7 days): its own hint
        raise
    if not EARLIEST_READ <= value < LATEST_READ:
        raise ConfigError(
            f"invalid {what} {text!r}: out of range",
            hint=f"give a time from {EARLIEST_READ.year} to {LATEST_READ.year - 1} "
            "(or a duration ago: 30d)",
        )
    return value


def check_slot_time(value: datetime, *, now: datetime, interval: timedelta, what: str) -> None:
    """Refuse a time to collect at that is before 2000 or more than one interval ahead."""
    if value < EARLIEST_SLOT:
        raise ConfigError(
            f"invalid {what} {iso(value)}: before {EARLIEST_SLOT.date().isoformat()}",
            hint=f"give a time from {EARLIEST_SLOT.date().isoformat()} up to now",
        )
    if value > now + interval:
        raise ConfigError(
            f"invalid {what} {iso(value)}: in the future (now is {iso(now.replace(microsecond=0))})",
            hint=f"give a time up to one interval ({format_duration(interval)}) from now; "
            "a slot in the future would look fresh to status until it comes",
        )


def floor_slot(moment: datetime, interval: timedelta) -> datetime:
    """Start of the slot containing ``moment``: UTC time floored to a multiple of ``interval``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    step = int(interval.total_seconds())
    offset = int((moment - EPOCH).total_seconds() // 1)
    return EPOCH + timedelta(seconds=offset - offset % step)


def slots(start: datetime, end: datetime, interval: timedelta) -> list[datetime]:
    """The slot starts from ``start`` (included) to ``end`` (excluded), ``interval`` apart."""
    found = []
    slot = start
    while slot < end:
        found.append(slot)
        slot += interval
    return found


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix: whole seconds, or the fraction's digits as needed.

    ``2026-01-05T00:00:01Z``, ``2026-01-05T00:00:01.5Z``: the same text PostgreSQL gives a
    timestamptz in UTC (what ``export`` streams), so every output agrees.
    """
    text = moment.astimezone(UTC).isoformat()[: -len("+00:00")]
    if "." in text:
        text = text.rstrip("0")
    return text + "Z"


def zone(name: str) -> tzinfo:
    """A tzinfo for ``--tz``: UTC, local, or an IANA name."""
    if name.upper() == "UTC":
        return UTC
    if name.lower() == "local":
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    # zoneinfo reads the tz database: imported only when a zone is named.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r}", hint="use UTC, local or an IANA name: Europe/Paris"
        ) from None


def zone_name(tz: tzinfo) -> str:
    """A short name of a tzinfo for headers."""
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    if tz is UTC:
        return "UTC"
    return str(datetime.now(tz).tzname() or tz)


def when(moment: datetime, tz: tzinfo) -> str:
    """A time for humans in ``tz``: ``2026-11-29 04:30`` (seconds only when not zero)."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
