"""The demo platform's simulation: typed events, a handler table and a small state; no I/O."""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
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


# ---------------------------------------------------------------------------- what it produces


@dataclass(frozen=True)
class SimRow:
    """One simulated platform row: its values, creation time and (if it ends) end time."""

    created: int
    values: tuple[Any, ...]
    ended: int | None = None


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


def _uid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _name(rng: random.Random) -> str:
    parts = [rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))]
    return "".join(parts).capitalize() + str(rng.randint(1, 99))


def _duration(rng: random.Random, mean_minutes: float, low: int, high: int) -> int:
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
                _uid(rng),
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
            _uid(rng),
            label,
            scene,
            label.lower().replace(" ", "-"),
            index == 0,
            MAX_USERS_PER_INSTANCE,
        )
        locations.append(SimRow(moment, values))
    weights = tuple(1.0 / (index + 1) ** 0.8 for index in range(LOCATIONS))
    channels = tuple(
        SimRow(moment, (_uid(rng), f"channel {index + 1}")) for index in range(CHANNELS)
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


def _add(state: State, table: str, row: SimRow) -> int:
    rows = state.rows[table]
    rows.append(row)
    return len(rows) - 1


def _end(state: State, table: str, index: int, moment: int) -> None:
    state.rows[table][index] = replace(state.rows[table][index], ended=moment)


def add_user(state: State, moment: int) -> int:
    """A user created at ``moment``; returns its position in ``state.users``."""
    guest = state.rng.random() < 0.4
    row = SimRow(moment, (_uid(state.rng), _name(state.rng), guest, not guest))
    _add(state, "user", row)
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
    _add(state, "channel-user", SimRow(moment, (_uid(state.rng), owner, user_id, channel_id)))


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


def _pick_user(state: State, moment: int) -> int | None:
    rng = state.rng
    regulars = max(1, len(state.users) // 5)
    for _ in range(4):
        pool = regulars if rng.random() < 0.6 else len(state.users)
        user = rng.randrange(pool)
        if user not in state.online and state.users[user].created <= moment:
            return user
    return None


def _open_instance(state: State, moment: int, *, location: int | None, channel: int | None) -> int:
    rng = state.rng
    catalogue = state.catalogue
    values = (
        _uid(rng),
        f"{rng.getrandbits(24):06X}",
        f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        str(catalogue.channels[channel].values[0]) if channel is not None else None,
        f"instanceserver-{rng.getrandbits(32):08x}",
        True,
        catalogue.locations[location].values[0] if location is not None else None,
    )
    instance = _add(state, "instance", SimRow(moment, values))
    state.rooms.users[instance] = 0
    return instance


def _attend(state: State, instance: int, user: int, moment: int, *, scene: Any, media: bool) -> int:
    """A new attendance of ``user`` in a running instance."""
    rooms = state.rooms
    rooms.users[instance] += 1
    attendances = state.rows["instance-attendance"]
    values = (
        _uid(state.rng),
        str(scene) if scene is not None else None,
        media,
        state.users[user].values[0],
        state.rows["instance"][instance].values[0],
        f"peer-{len(attendances) + 1}",
        rooms.users[instance] - 1,
    )
    return _add(state, "instance-attendance", SimRow(moment, values))


def _leave(state: State, instance: int, attendance: int, moment: int) -> bool:
    """End an attendance; the instance ends with its last user. True if it ended."""
    _end(state, "instance-attendance", attendance, moment)
    rooms = state.rooms
    rooms.users[instance] -= 1
    if rooms.users[instance]:
        return False
    del rooms.users[instance]
    _end(state, "instance", instance, moment)
    return True


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
    user = _pick_user(state, moment) if event.user is None else event.user
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
        instance = _open_instance(state, moment, location=location, channel=None)
        running.append(instance)
    scene = catalogue.locations[location].values[2]
    attendance = _attend(state, instance, event.user, moment, scene=scene, media=False)
    stay = _duration(rng, 30, 120, 4 * 3600)
    leave = LeaveWorld(event.user, event.hops - 1, location, instance, attendance)
    caused: list[Scheduled] = [(moment + stay, leave)]
    channels = state.channels_of[event.user]
    if channels and rng.random() < 0.4:
        channel = rng.choice(channels)
        start = moment + rng.randint(5, 300)
        caused.append((start, JoinMedia(event.user, channel, _duration(rng, 20, 60, stay))))
    return caused


def leave_world(state: State, moment: int, event: LeaveWorld) -> list[Scheduled]:
    """The user leaves the instance, then visits another world soon or goes offline."""
    if _leave(state, event.instance, event.attendance, moment):
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
        instance = _open_instance(state, moment, location=None, channel=event.channel)
        media[event.channel] = instance
    attendance = _attend(state, instance, event.user, moment, scene=None, media=True)
    channel_id = state.catalogue.channels[event.channel].values[0]
    sender = state.users[event.user].values[0]
    _add(state, "message", SimRow(moment, (_uid(rng), "joined the call", True, channel_id, sender)))
    said = moment + rng.randint(1, 200)
    # Nothing is written after the last slot: the platform's "now".
    while said < min(moment + event.stay, state.end):
        words = rng.choices(_WORDS, k=rng.randint(1, 7))
        values = (_uid(rng), " ".join(words), False, channel_id, sender)
        _add(state, "message", SimRow(said, values))
        said += 1 + int(rng.expovariate(1 / 150))
    return [(moment + event.stay, LeaveMedia(event.channel, instance, attendance))]


def leave_media(state: State, moment: int, event: LeaveMedia) -> list[Scheduled]:
    """The user leaves the call; the channel's media instance ends with its last user."""
    if _leave(state, event.instance, event.attendance, moment):
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
