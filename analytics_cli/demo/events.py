"""The demo platform's events: their types, the agenda that orders them, and one handler
per event type that changes the state and returns the events it causes; no I/O."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from analytics_cli.demo.state import (
    CHANNELS,
    LOCATIONS,
    MAX_USERS_PER_INSTANCE,
    SimRow,
    State,
    add_row,
    add_user,
    attend,
    duration,
    end_attendance,
    join_channel,
    new_id,
    open_instance,
    pick_user,
)

_WORDS = (
    "hello",
    "anyone",
    "here",
    "nice",
    "world",
    "see",
    "you",
    "at",
    "the",
    "plaza",
    "brb",
    "gg",
    "that",
    "was",
    "fun",
    "join",
    "us",
    "music",
    "stage",
    "tonight",
)


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class SignUp:
    """A new user registers, sometimes joins a channel, and comes online a little later."""


@dataclass(frozen=True)
class Arrive:
    """A user comes online and visits a world; ``user`` None: a known user picked then."""

    user: int | None


@dataclass(frozen=True)
class Visit:
    """An online user enters a world instance; ``hops`` more visits follow this one."""

    user: int
    hops: int


@dataclass(frozen=True)
class LeaveWorld:
    """A user leaves a world instance (which ends with its last user), then hops on or goes."""

    user: int
    hops: int
    location: int
    instance: int
    attendance: int


@dataclass(frozen=True)
class JoinMedia:
    """A user joins a channel's media instance for ``stay`` seconds and chats meanwhile."""

    user: int
    channel: int
    stay: int


@dataclass(frozen=True)
class LeaveMedia:
    """A user leaves a channel's media instance (which ends with its last user)."""

    channel: int
    instance: int
    attendance: int


Event = SignUp | Arrive | Visit | LeaveWorld | JoinMedia | LeaveMedia
# An event and the moment it is due.
Scheduled = tuple[int, Event]


@dataclass
class Agenda:
    """Events waiting for their moment: earliest first, ties in the order they were scheduled."""

    _heap: list[tuple[int, int, Event]] = field(default_factory=list)
    _count: int = 0

    def push(self, moment: int, event: Event) -> None:
        """Schedule ``event`` at ``moment``."""
        self._count += 1
        heapq.heappush(self._heap, (moment, self._count, event))

    def pop(self, until: int) -> Scheduled | None:
        """The next event due at or before ``until``, or None when there is none."""
        if not self._heap or self._heap[0][0] > until:
            return None
        moment, _, event = heapq.heappop(self._heap)
        return moment, event

    def pending(self) -> list[Scheduled]:
        """Every event still waiting, in the order it would be handled."""
        return [(moment, event) for moment, _, event in sorted(self._heap)]


# ---------------------------------------------------------------------------- step functions
# Each handles one event at its moment: it changes ``state`` and returns the events it causes.


def sign_up(state: State, moment: int, event: SignUp) -> list[Scheduled]:
    """A new user; some join a channel at once; all arrive within a quarter of an hour."""
    rng = state.rng
    user = add_user(state, moment)
    if rng.random() < 0.3:
        join_channel(state, user, rng.randrange(CHANNELS), moment, owner=False)
    return [(moment + rng.randint(60, 900), Arrive(user))]


def arrive(state: State, moment: int, event: Arrive) -> list[Scheduled]:
    """A user who is not online yet comes online for one, two or three world visits."""
    rng = state.rng
    user = pick_user(state, moment) if event.user is None else event.user
    if user is None or user in state.online:
        return []
    state.online.add(user)
    hops = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
    return visit(state, moment, Visit(user, hops))


def visit(state: State, moment: int, event: Visit) -> list[Scheduled]:
    """The user enters the first running instance of a location with room, or a new one."""
    rng = state.rng
    catalogue = state.catalogue
    location = rng.choices(range(LOCATIONS), catalogue.location_weights)[0]
    running = state.rooms.world.setdefault(location, [])
    users = state.rooms.users
    instance = next((i for i in running if users[i] < MAX_USERS_PER_INSTANCE), None)
    if instance is None:
        instance = open_instance(state, moment, location=location, channel=None)
        running.append(instance)
    scene = catalogue.locations[location].values[2]
    attendance = attend(state, instance, event.user, moment, scene=scene, media=False)
    stay = duration(rng, 30, 120, 4 * 3600)
    leave = LeaveWorld(event.user, event.hops - 1, location, instance, attendance)
    caused: list[Scheduled] = [(moment + stay, leave)]
    channels = state.channels_of[event.user]
    if channels and rng.random() < 0.4:
        channel = rng.choice(channels)
        start = moment + rng.randint(5, 300)
        caused.append((start, JoinMedia(event.user, channel, duration(rng, 20, 60, stay))))
    return caused


def leave_world(state: State, moment: int, event: LeaveWorld) -> list[Scheduled]:
    """The user leaves the instance, then visits another world soon or goes offline."""
    if end_attendance(state, event.instance, event.attendance, moment):
        state.rooms.world[event.location].remove(event.instance)
    if event.hops > 0:
        return [(moment + state.rng.randint(20, 180), Visit(event.user, event.hops))]
    state.online.discard(event.user)
    return []


def join_media(state: State, moment: int, event: JoinMedia) -> list[Scheduled]:
    """The user joins the channel's call (opening it if needed) and chats until leaving."""
    rng = state.rng
    media = state.rooms.media
    instance = media.get(event.channel)
    if instance is None:
        instance = open_instance(state, moment, location=None, channel=event.channel)
        media[event.channel] = instance
    attendance = attend(state, instance, event.user, moment, scene=None, media=True)
    channel_id = state.catalogue.channels[event.channel].values[0]
    sender = state.users[event.user].values[0]
    add_row(
        state, "message", SimRow(moment, (new_id(rng), "joined the call", True, channel_id, sender))
    )
    said = moment + rng.randint(1, 200)
    # Nothing is written after the last slot: the platform's "now".
    while said < min(moment + event.stay, state.end):
        words = rng.choices(_WORDS, k=rng.randint(1, 7))
        values = (new_id(rng), " ".join(words), False, channel_id, sender)
        add_row(state, "message", SimRow(said, values))
        said += 1 + int(rng.expovariate(1 / 150))
    return [(moment + event.stay, LeaveMedia(event.channel, instance, attendance))]


def leave_media(state: State, moment: int, event: LeaveMedia) -> list[Scheduled]:
    """The user leaves the call; the channel's media instance ends with its last user."""
    if end_attendance(state, event.instance, event.attendance, moment):
        del state.rooms.media[event.channel]
    return []


# One handler per event class; ``step`` dispatches through it.
HANDLERS: dict[type[Event], Callable[[State, int, Any], list[Scheduled]]] = {
    SignUp: sign_up,
    Arrive: arrive,
    Visit: visit,
    LeaveWorld: leave_world,
    JoinMedia: join_media,
    LeaveMedia: leave_media,
}


def step(state: State, moment: int, event: Event) -> list[Scheduled]:
    """Handle one event through the handler table; returns the events it causes."""
    return HANDLERS[type(event)](state, moment, event)
