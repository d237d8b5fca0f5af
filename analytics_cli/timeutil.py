"""Durations ("30m", "7d"), --since/--until parsing, slot flooring in UTC, --tz display times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from analytics_cli.errors import ConfigError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_UNITS = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
}
_PART = re.compile(r"(\d{1,9})([smhdw])")
_DURATION = re.compile(r"(\d{1,9}[smhdw])+")
# Ten years is far beyond any useful window; the cap keeps arithmetic inside datetime's range.
MAX_DURATION = timedelta(days=3660)


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse ``30m``, ``6h``, ``7d``, ``2w`` or combinations such as ``1h30m`` into a timedelta."""
    raw = text.strip().lower()
    if not raw:
        raise ConfigError(f"empty {what}", hint="use a number and a unit: 30s, 30m, 6h, 7d, 2w")
    pos = 0
    seconds = 0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or pos == 0:
        raise ConfigError(
            f"invalid {what} {text!r}",
            hint="use a number and a unit: 30s, 30m, 6h, 7d, 2w (or combined: 1h30m)",
        )
    if seconds <= 0:
        raise ConfigError(f"invalid {what} {text!r}: must be greater than zero")
    # Compared as an integer first: a long enough sum overflows timedelta itself.
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(f"invalid {what} {text!r}: longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the shortest unit form ``parse_duration`` accepts (``30m``)."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
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


def parse_when(text: str, *, now: datetime, what: str = "time") -> datetime:
    """Parse ``--since``/``--until``: a duration before ``now`` or an ISO 8601 time."""
    raw = text.strip()
    if raw.lower() == "now":
        return now
    if _DURATION.fullmatch(raw.lower()):
        return now - parse_duration(raw, what=what)
    return parse_timestamp(raw, what=what)


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
    """ISO 8601 in UTC with a ``Z`` suffix, seconds precision unless there are microseconds."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


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
