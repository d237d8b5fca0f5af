"""The demo platform's state: its shape, its rows and running rooms, and the changes the
event handlers make to them; no I/O."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# Columns the simulation fills; "createdAt", "updatedAt" and (where present) "ended" are added
# when a row is written, from its simulated times.
COLUMNS: dict[str, tuple[str, ...]] = {
    "static-resource": ("id", "hash", "key", "mimeType", "project", "type", "name"),
    "location": ("id", "name", "sceneId", "slugifiedName", "isLobby", "maxUsersPerInstance"),
    "user": ("id", "name", "isGuest", "ageVerified"),
    "channel": ("id", "name"),
    "channel-user": ("id", "isOwner", "userId", "channelId"),
    "instance": ("id", "roomCode", "ipAddress", "channelId", "podName", "assigned", "locationId"),
    "instance-attendance": (
        "id",
        "sceneId",
        "isChannel",
        "userId",
        "instanceId",
        "peerId",
        "peerIndex",
    ),
    "message": ("id", "text", "isNotification", "channelId", "senderId"),
}
# Tables with an "ended" flag; their rows end at a simulated time ("updatedAt" records it).
ENDABLE = ("instance", "instance-attendance")

# The shape of the small platform (per hour at the busiest time of a Saturday).
PEAK_SESSIONS_PER_HOUR = 110.0
PEAK_SIGNUPS_PER_HOUR = 9.0
INITIAL_USERS = 1500
LOCATIONS = 12
SCENES = 10
CHANNELS = 60
MAX_USERS_PER_INSTANCE = 12
PEAK_HOUR_UTC = 19.0
# Monday .. Sunday.
WEEKLY = (0.8, 0.8, 0.85, 0.9, 1.05, 1.3, 1.25)
WARM_UP = 86400  # simulate a day before the first slot so 24-hour windows start full
LAUNCH = 120 * 86400  # how long before the warm-up the platform went live

_SYLLABLES = ("ka", "ri", "mo", "ne", "ta", "lu", "si", "ve", "do", "pa", "zo", "mi", "ra", "jo")
_LOCATION_NAMES = ("Lobby", "Plaza", "Arena", "Gallery", "Beach", "Studio", "Forest", "Harbor")


def utc(moment: int) -> datetime:
    """A simulated moment (seconds since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(moment, UTC)


def rhythm(moment: int) -> float:
    """Relative activity at a moment (1.0 = a weekday evening peak): a daily and weekly cycle."""
    when = utc(moment)
    hour = when.hour + when.minute / 60
    daily = 0.1 + 0.9 * ((1 + math.cos(2 * math.pi * (hour - PEAK_HOUR_UTC) / 24)) / 2) ** 2
    return daily * WEEKLY[when.weekday()]


@dataclass(frozen=True)
class SimRow:
    """One simulated platform row: its values, creation time and (if it ends) end time."""

    created: int
    values: tuple[Any, ...]
    ended: int | None = None


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Catalogue:
    """What the platform has from its launch on: scenes, locations and channels."""

    scenes: tuple[SimRow, ...]
    locations: tuple[SimRow, ...]
    location_weights: tuple[float, ...]
    channels: tuple[SimRow, ...]


@dataclass
class Rooms:
    """The running instances and how many users each holds."""

    # Location -> its running world instances (indices into the instance rows), oldest first.
    world: dict[int, list[int]] = field(default_factory=dict)
    # Channel -> its one running media instance.
    media: dict[int, int] = field(default_factory=dict)
    # Running instance -> users in it.
    users: dict[int, int] = field(default_factory=dict)


@dataclass
class State:
    """All that changes while the simulation runs; the step functions read and change only it."""

    rng: random.Random
    catalogue: Catalogue
    end: int  # the last slot: nothing is written after it
    rows: dict[str, list[SimRow]]
    # Users oldest first (the first fifth are the regulars), and each one's channels.
    users: list[SimRow] = field(default_factory=list)
    channels_of: list[list[int]] = field(default_factory=list)
    online: set[int] = field(default_factory=set)
    rooms: Rooms = field(default_factory=Rooms)


def new_id(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _name(rng: random.Random) -> str:
    parts = [rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))]
    return "".join(parts).capitalize() + str(rng.randint(1, 99))


def duration(rng: random.Random, mean_minutes: float, low: int, high: int) -> int:
    return min(high, max(low, int(rng.expovariate(1 / (mean_minutes * 60)))))


def arrivals(rng: random.Random, start: int, end: int, peak_per_hour: float) -> Iterator[int]:
    """Arrival times of a Poisson process whose rate follows ``rhythm`` (by thinning)."""
    top = max(WEEKLY)
    rate = peak_per_hour * top / 3600
    moment = float(start)
    while True:
        moment += rng.expovariate(rate)
        if moment > end:
            return
        if rng.random() * top < rhythm(int(moment)):
            yield int(moment) + 1


def launch(rng: random.Random, moment: int) -> Catalogue:
    """The scenes, locations and channels the platform went live with."""
    scenes = tuple(
        SimRow(
            moment,
            (
                new_id(rng),
                f"{rng.getrandbits(64):016x}",
                f"projects/demo/scene-{index}.gltf",
                "model/gltf+json",
                "demo",
                "scene",
                f"Scene {index + 1}",
            ),
        )
        for index in range(SCENES)
    )
    locations = []
    for index in range(LOCATIONS):
        label = (
            f"{_LOCATION_NAMES[index % len(_LOCATION_NAMES)]} {index // len(_LOCATION_NAMES) + 1}"
        )
        # Two locations share a scene and the last one has none: scenes != locations.
        scene = scenes[index % SCENES].values[0] if index < LOCATIONS - 1 else None
        values = (
            new_id(rng),
            label,
            scene,
            label.lower().replace(" ", "-"),
            index == 0,
            MAX_USERS_PER_INSTANCE,
        )
        locations.append(SimRow(moment, values))
    weights = tuple(1.0 / (index + 1) ** 0.8 for index in range(LOCATIONS))
    channels = tuple(
        SimRow(moment, (new_id(rng), f"channel {index + 1}")) for index in range(CHANNELS)
    )
    return Catalogue(scenes, tuple(locations), weights, channels)


def new_state(seed: int, end: int, launched: int) -> State:
    """A platform launched at ``launched``, with its catalogue and no users yet."""
    rng = random.Random(seed)
    catalogue = launch(rng, launched)
    rows: dict[str, list[SimRow]] = {table: [] for table in COLUMNS}
    rows["static-resource"].extend(catalogue.scenes)
    rows["location"].extend(catalogue.locations)
    rows["channel"].extend(catalogue.channels)
    return State(rng=rng, catalogue=catalogue, end=end, rows=rows)


def add_row(state: State, table: str, row: SimRow) -> int:
    rows = state.rows[table]
    rows.append(row)
    return len(rows) - 1


def _end(state: State, table: str, index: int, moment: int) -> None:
    state.rows[table][index] = replace(state.rows[table][index], ended=moment)


def add_user(state: State, moment: int) -> int:
    """A user created at ``moment``; returns its position in ``state.users``."""
    guest = state.rng.random() < 0.4
    row = SimRow(moment, (new_id(state.rng), _name(state.rng), guest, not guest))
    add_row(state, "user", row)
    state.users.append(row)
    state.channels_of.append([])
    return len(state.users) - 1


def join_channel(state: State, user: int, channel: int, moment: int, *, owner: bool) -> None:
    """Make ``user`` a member of ``channel`` (nothing when it already is)."""
    if channel in state.channels_of[user]:
        return
    state.channels_of[user].append(channel)
    user_id = state.users[user].values[0]
    channel_id = state.catalogue.channels[channel].values[0]
    add_row(state, "channel-user", SimRow(moment, (new_id(state.rng), owner, user_id, channel_id)))


def populate(state: State, launched: int, start: int) -> None:
    """The users who signed up between the launch and ``start``, and their channels."""
    rng = state.rng
    for _ in range(INITIAL_USERS):
        add_user(state, rng.randint(launched, start))
    # Positions are re-read as "oldest first" below; nobody belongs to a channel yet.
    state.users.sort(key=lambda u: u.created)
    for channel in range(CHANNELS):
        size = rng.randint(3, 30)
        for position in range(size):
            user = rng.randrange(len(state.users))
            moment = max(state.users[user].created, launched) + rng.randint(60, 86400)
            join_channel(state, user, channel, min(moment, start), owner=position == 0)


def pick_user(state: State, moment: int) -> int | None:
    rng = state.rng
    regulars = max(1, len(state.users) // 5)
    for _ in range(4):
        pool = regulars if rng.random() < 0.6 else len(state.users)
        user = rng.randrange(pool)
        if user not in state.online and state.users[user].created <= moment:
            return user
    return None


def open_instance(state: State, moment: int, *, location: int | None, channel: int | None) -> int:
    rng = state.rng
    catalogue = state.catalogue
    values = (
        new_id(rng),
        f"{rng.getrandbits(24):06X}",
        f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        str(catalogue.channels[channel].values[0]) if channel is not None else None,
        f"instanceserver-{rng.getrandbits(32):08x}",
        True,
        catalogue.locations[location].values[0] if location is not None else None,
    )
    instance = add_row(state, "instance", SimRow(moment, values))
    state.rooms.users[instance] = 0
    return instance


def attend(state: State, instance: int, user: int, moment: int, *, scene: Any, media: bool) -> int:
    """A new attendance of ``user`` in a running instance."""
    rooms = state.rooms
    rooms.users[instance] += 1
    attendances = state.rows["instance-attendance"]
    values = (
        new_id(state.rng),
        str(scene) if scene is not None else None,
        media,
        state.users[user].values[0],
        state.rows["instance"][instance].values[0],
        f"peer-{len(attendances) + 1}",
        rooms.users[instance] - 1,
    )
    return add_row(state, "instance-attendance", SimRow(moment, values))


def end_attendance(state: State, instance: int, attendance: int, moment: int) -> bool:
    """End an attendance; the instance ends with its last user. True if it ended."""
    _end(state, "instance-attendance", attendance, moment)
    rooms = state.rooms
    rooms.users[instance] -= 1
    if rooms.users[instance]:
        return False
    del rooms.users[instance]
    _end(state, "instance", instance, moment)
    return True
