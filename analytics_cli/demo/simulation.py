"""The demo platform's simulation, a whole run: the events played in order from the warm-up
to the last slot, and the history they leave, sorted into slots; no I/O."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from analytics_cli.demo.events import Agenda, Arrive, Scheduled, SignUp, step
from analytics_cli.demo.state import (
    LAUNCH,
    PEAK_SESSIONS_PER_HOUR,
    PEAK_SIGNUPS_PER_HOUR,
    WARM_UP,
    SimRow,
    State,
    arrivals,
    new_state,
    populate,
    utc,
)


@dataclass(frozen=True)
class Platform:
    """The whole simulated history: rows per table and the slots it is collected at."""

    first: int
    step: int
    slots: int
    rows: dict[str, tuple[SimRow, ...]]

    @property
    def end(self) -> int:
        """The moment of the last slot: nothing happens after it."""
        return self.first + (self.slots - 1) * self.step

    def slot_time(self, index: int) -> datetime:
        """Start of slot ``index`` (0 is the first collected slot)."""
        return utc(self.first + index * self.step)

    def bucket(self, moment: int) -> int:
        """The first slot whose state includes a change made at ``moment``."""
        if moment <= self.first:
            return 0
        return -(-(moment - self.first) // self.step)


@dataclass(frozen=True)
class Plan:
    """Rows to insert and rows to end, per slot."""

    created: tuple[dict[str, list[SimRow]], ...]
    ended: tuple[dict[str, list[SimRow]], ...]


def plan(platform: Platform) -> Plan:
    """Sort every simulated change into the slot that first sees it."""
    created: list[dict[str, list[SimRow]]] = [{} for _ in range(platform.slots)]
    ended: list[dict[str, list[SimRow]]] = [{} for _ in range(platform.slots)]
    for table, rows in platform.rows.items():
        for row in sorted(rows, key=lambda r: r.created):
            born = platform.bucket(row.created)
            created[born].setdefault(table, []).append(row)
            if row.ended is not None:
                gone = platform.bucket(row.ended)
                if gone > born:
                    ended[gone].setdefault(table, []).append(row)
    return Plan(tuple(created), tuple(ended))


# ---------------------------------------------------------------------------- a whole run


def start(seed: int, first: int, end: int) -> tuple[State, Agenda]:
    """The platform as the warm-up day before ``first`` begins, and the events it expects."""
    warm_up = first - WARM_UP
    launched = warm_up - LAUNCH
    state = new_state(seed, end, launched)
    populate(state, launched, warm_up)
    agenda = Agenda()
    for moment in arrivals(state.rng, warm_up, end, PEAK_SESSIONS_PER_HOUR):
        agenda.push(moment, Arrive(None))
    for moment in arrivals(state.rng, warm_up, end, PEAK_SIGNUPS_PER_HOUR):
        agenda.push(moment, SignUp())
    return state, agenda


def play(state: State, agenda: Agenda) -> Iterator[Scheduled]:
    """Handle every event due up to ``state.end`` in order, yielding each one once handled."""
    while (due := agenda.pop(state.end)) is not None:
        moment, event = due
        for caused in step(state, moment, event):
            agenda.push(*caused)
        yield due


def slot_range(last_slot: datetime, days: int, interval: timedelta) -> tuple[int, int, int]:
    """The first slot (a moment), the step in seconds and how many slots end at ``last_slot``."""
    step_seconds = int(interval.total_seconds())
    slots = max(1, int(days * 86400 // step_seconds))
    return int(last_slot.timestamp()) - (slots - 1) * step_seconds, step_seconds, slots


def simulate(last_slot: datetime, days: int, interval: timedelta, seed: int) -> Platform:
    """Simulate the platform for ``days`` up to ``last_slot`` (deterministic for a seed)."""
    first, step_seconds, slots = slot_range(last_slot, days, interval)
    state, agenda = start(seed, first, first + (slots - 1) * step_seconds)
    for _ in play(state, agenda):
        pass
    return finish(state, first, step_seconds, slots)


def finish(state: State, first: int, step_seconds: int, slots: int) -> Platform:
    """The rows a run produced, as the history collected at ``slots`` slots from ``first``."""
    rows = {table: tuple(rows) for table, rows in state.rows.items()}
    return Platform(first=first, step=step_seconds, slots=slots, rows=rows)
