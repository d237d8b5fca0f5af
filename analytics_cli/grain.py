"""Which grain answers a bucketed read: hourly or daily rollups for whole hours and days,
stored rows for the partial hours at the window's edges (no database, no engine)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Hours and days are counted from this instant (a Monday midnight UTC, the buckets' origin).
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)

Range = tuple[datetime | None, datetime | None]


@dataclass(frozen=True)
class State:
    """The rollups of one store table: the slot they were built with, whether they hold every
    stored row, and where pruning left each grain complete (None: never pruned)."""

    slot: timedelta
    built: bool
    raw_from: datetime | None = None
    hourly_from: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """Where each part of a window is read: ``days`` from daily rollups, ``hours`` from hourly
    ones, ``raw`` from the stored rows (half-open ranges, None = unbounded)."""

    days: Range | None
    hours: tuple[Range, ...]
    raw: tuple[Range, ...]
    # The rows of the window's first partial hour (raw[0]) were pruned.
    edge_pruned: bool = False


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """``moment`` floored to a multiple of ``step`` counted from ORIGIN."""
    return moment - (moment - ORIGIN) % step


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    """``moment`` raised to a multiple of ``step`` counted from ORIGIN."""
    floored = floor_to(moment, step)
    return floored if floored == moment else floored + step


def usable(state: State | None, interval: timedelta) -> bool:
    """Whether rollups can answer for a store whose slots are ``interval`` long."""
    return (
        state is not None
        and state.built
        and state.slot == interval
        and interval <= HOUR
        and HOUR % interval == timedelta(0)
    )


def _before(moment: datetime | None, edge: datetime | None) -> bool:
    """Whether a range starting at ``moment`` (None: the beginning) reaches before ``edge``."""
    return edge is not None and (moment is None or moment < edge)


def plan(
    since: datetime | None,
    until: datetime | None,
    bucket: timedelta,
    interval: timedelta,
    state: State | None,
) -> tuple[Plan | None, str | None]:
    """The plan for a bucketed read of [since, until), or None to read stored rows only; and
    the one line to say when the answer cannot be what the stored rows once gave."""
    if not usable(state, interval):
        return None, None
    assert state is not None
    if bucket % HOUR:
        note = None
        if _before(since, state.raw_from):
            note = (
                f"note: --bucket {_text(bucket)} is not a multiple of an hour: read from "
                f"stored rows, which begin at {_iso(state.raw_from)} (pruned before)"
            )
        return None, note
    h0 = ceil_to(since, HOUR) if since is not None else None
    h1 = floor_to(until, HOUR) if until is not None else None
    if h0 is not None and h1 is not None and h0 >= h1:
        return None, _raw_gone(since, state)  # the window is inside one hour
    raw = tuple(
        r
        for r in ((since, h0), (h1, until))
        if r[0] is not None and r[1] is not None and r[0] < r[1]
    )
    days: Range | None = None
    hours: tuple[Range, ...] = ((h0, h1),)
    if bucket % DAY == timedelta(0):
        d0 = ceil_to(since, DAY) if since is not None else None
        d1 = floor_to(until, DAY) if until is not None else None
        if d0 is None or d1 is None or d0 < d1:
            days = (d0, d1)
            hours = tuple(
                r
                for r in ((h0, d0), (d1, h1))
                if r[0] is not None and r[1] is not None and r[0] < r[1]
            )
    edge = bool(raw) and raw[0][0] == since and _before(since, state.raw_from)
    note = None
    if any(_before(start, state.hourly_from) for start, _ in hours):
        note = (
            f"note: hourly rollups begin at {_iso(state.hourly_from)} (pruned before): "
            "use a --bucket of whole days for older history"
        )
    return Plan(days, hours, raw, edge), note


def _raw_gone(since: datetime | None, state: State) -> str | None:
    if not _before(since, state.raw_from):
        return None
    return (
        f"note: stored rows begin at {_iso(state.raw_from)} (pruned before): the window's "
        "first partial hour is left out"
    )


def edge_note(since: datetime, state: State) -> str | None:
    """The line saying the window's first partial hour is lost (its rows were pruned)."""
    return _raw_gone(since, state)


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "?"


def _text(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
