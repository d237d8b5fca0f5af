"""The demo: a simulated iR Engine platform, collected slot by slot through the real collect cycle."""

from __future__ import annotations

import heapq
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analytics_cli.errors import ConfigError, DatabaseError
from analytics_cli.timeutil import floor_slot, utcnow

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.collect import CycleReport
    from analytics_cli.config import Settings

# Every platform table the demo creates carries this comment; tables without it are never touched.
MARKER = "created by analytics-cli demo"

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


@dataclass
class SimRow:
    """One simulated platform row: its values, creation time and (if it ends) end time."""

    created: int
    values: tuple[Any, ...]
    ended: int | None = None


@dataclass
class Platform:
    """The whole simulated history: rows per table and the slots it is collected at."""

    first: int
    step: int
    slots: int
    rows: dict[str, list[SimRow]] = field(default_factory=lambda: {t: [] for t in COLUMNS})

    def slot_time(self, index: int) -> datetime:
        """Start of slot ``index`` (0 is the first collected slot)."""
        return _dt(self.first + index * self.step)

    def bucket(self, moment: int) -> int:
        """The first slot whose state includes a change made at ``moment``."""
        if moment <= self.first:
            return 0
        return -(-(moment - self.first) // self.step)


@dataclass
class _Live:
    row: SimRow
    key: int
    users: int = 0


def _dt(moment: int) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def rhythm(moment: int) -> float:
    """Relative activity at a moment (1.0 = a weekday evening peak): a daily and weekly cycle."""
    when = _dt(moment)
    hour = when.hour + when.minute / 60
    daily = 0.1 + 0.9 * ((1 + math.cos(2 * math.pi * (hour - PEAK_HOUR_UTC) / 24)) / 2) ** 2
    return daily * WEEKLY[when.weekday()]


class _Simulation:
    """A discrete-event simulation of sign-ups, world and channel visits and chat."""

    def __init__(self, platform: Platform, seed: int) -> None:
        self.p = platform
        self.rng = random.Random(seed)
        self.events: list[tuple[int, int, str, tuple[Any, ...]]] = []
        self.seq = 0
        self.users: list[SimRow] = []
        self.user_channels: list[list[int]] = []
        self.online: set[int] = set()
        self.locations: list[SimRow] = []
        self.location_weight: list[float] = []
        self.channels: list[SimRow] = []
        self.world: dict[int, list[_Live]] = {}
        self.media: dict[int, _Live] = {}
        self.peer = 0
        self.end = platform.first + (platform.slots - 1) * platform.step

    def uid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def add(self, table: str, row: SimRow) -> SimRow:
        self.p.rows[table].append(row)
        return row

    def push(self, moment: int, kind: str, *data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (moment, self.seq, kind, data))

    def name(self) -> str:
        parts = [self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(2, 3))]
        return "".join(parts).capitalize() + str(self.rng.randint(1, 99))

    def run(self) -> Platform:
        start = self.p.first - WARM_UP
        end = self.end
        launch = start - 120 * 86400
        self.static(launch)
        for _ in range(INITIAL_USERS):
            self.new_user(self.rng.randint(launch, start))
        self.users.sort(key=lambda u: u.created)
        self.memberships(launch)
        for moment in self.poisson(start, end, PEAK_SESSIONS_PER_HOUR):
            self.push(moment, "arrive", None)
        for moment in self.poisson(start, end, PEAK_SIGNUPS_PER_HOUR):
            self.push(moment, "signup")
        while self.events and self.events[0][0] <= end:
            moment, _, kind, data = heapq.heappop(self.events)
            getattr(self, f"on_{kind}")(moment, *data)
        return self.p

    def poisson(self, start: int, end: int, peak_per_hour: float) -> Iterator[int]:
        """Arrival times of a Poisson process whose rate follows ``rhythm`` (by thinning)."""
        top = max(WEEKLY)
        rate = peak_per_hour * top / 3600
        moment = float(start)
        while True:
            moment += self.rng.expovariate(rate)
            if moment > end:
                return
            if self.rng.random() * top < rhythm(int(moment)):
                yield int(moment) + 1

    def static(self, launch: int) -> None:
        scenes = []
        for index in range(SCENES):
            row = SimRow(
                launch,
                (
                    self.uid(),
                    f"{self.rng.getrandbits(64):016x}",
                    f"projects/demo/scene-{index}.gltf",
                    "model/gltf+json",
                    "demo",
                    "scene",
                    f"Scene {index + 1}",
                ),
            )
            scenes.append(self.add("static-resource", row))
        names = ("Lobby", "Plaza", "Arena", "Gallery", "Beach", "Studio", "Forest", "Harbor")
        for index in range(LOCATIONS):
            label = f"{names[index % len(names)]} {index // len(names) + 1}"
            # Two locations share a scene and the last one has none: scenes != locations.
            scene = scenes[index % SCENES].values[0] if index < LOCATIONS - 1 else None
            row = SimRow(
                launch,
                (
                    self.uid(),
                    label,
                    scene,
                    label.lower().replace(" ", "-"),
                    index == 0,
                    MAX_USERS_PER_INSTANCE,
                ),
            )
            self.locations.append(self.add("location", row))
            self.location_weight.append(1.0 / (index + 1) ** 0.8)
        for index in range(CHANNELS):
            row = SimRow(launch, (self.uid(), f"channel {index + 1}"))
            self.channels.append(self.add("channel", row))

    def new_user(self, moment: int) -> int:
        guest = self.rng.random() < 0.4
        row = SimRow(moment, (self.uid(), self.name(), guest, not guest))
        self.users.append(self.add("user", row))
        self.user_channels.append([])
        return len(self.users) - 1

    def join_channel(self, user: int, channel: int, moment: int, *, owner: bool = False) -> None:
        if channel in self.user_channels[user]:
            return
        self.user_channels[user].append(channel)
        values = (self.uid(), owner, self.users[user].values[0], self.channels[channel].values[0])
        self.add("channel-user", SimRow(moment, values))

    def memberships(self, launch: int) -> None:
        for channel in range(CHANNELS):
            size = self.rng.randint(3, 30)
            for position in range(size):
                user = self.rng.randrange(len(self.users))
                moment = max(self.users[user].created, launch) + self.rng.randint(60, 86400)
                moment = min(moment, self.p.first - WARM_UP)
                self.join_channel(user, channel, moment, owner=position == 0)

    def pick_user(self, moment: int) -> int | None:
        regulars = max(1, len(self.users) // 5)
        for _ in range(4):
            pool = regulars if self.rng.random() < 0.6 else len(self.users)
            user = self.rng.randrange(pool)
            if user not in self.online and self.users[user].created <= moment:
                return user
        return None

    def duration(self, mean_minutes: float, low: int, high: int) -> int:
        return min(high, max(low, int(self.rng.expovariate(1 / (mean_minutes * 60)))))

    def attend(self, live: _Live, user: int, moment: int, *, channel: bool) -> SimRow:
        live.users += 1
        self.peer += 1
        scene = None if channel else self.locations[live.key].values[2]
        values = (
            self.uid(),
            str(scene) if scene is not None else None,
            channel,
            self.users[user].values[0],
            live.row.values[0],
            f"peer-{self.peer}",
            live.users - 1,
        )
        return self.add("instance-attendance", SimRow(moment, values))

    def new_instance(self, moment: int, *, location: int | None, channel: int | None) -> SimRow:
        values = (
            self.uid(),
            f"{self.rng.getrandbits(24):06X}",
            f"10.0.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
            str(self.channels[channel].values[0]) if channel is not None else None,
            f"instanceserver-{self.rng.getrandbits(32):08x}",
            True,
            self.locations[location].values[0] if location is not None else None,
        )
        return self.add("instance", SimRow(moment, values))

    def leave(self, live: _Live, row: SimRow, moment: int) -> bool:
        """End an attendance; the instance ends with its last user. True if it ended."""
        row.ended = moment
        live.users -= 1
        if live.users == 0:
            live.row.ended = moment
            return True
        return False

    # ---- events

    def on_signup(self, moment: int) -> None:
        user = self.new_user(moment)
        if self.rng.random() < 0.3:
            self.join_channel(user, self.rng.randrange(CHANNELS), moment)
        self.push(moment + self.rng.randint(60, 900), "arrive", user)

    def on_arrive(self, moment: int, user: int | None) -> None:
        if user is None:
            user = self.pick_user(moment)
        if user is None or user in self.online:
            return
        self.online.add(user)
        hops = 1 + (self.rng.random() < 0.3) + (self.rng.random() < 0.1)
        self.on_visit(moment, user, hops)

    def on_visit(self, moment: int, user: int, hops: int) -> None:
        location = self.rng.choices(range(LOCATIONS), self.location_weight)[0]
        running = self.world.setdefault(location, [])
        live = next((i for i in running if i.users < MAX_USERS_PER_INSTANCE), None)
        if live is None:
            live = _Live(self.new_instance(moment, location=location, channel=None), location)
            running.append(live)
        row = self.attend(live, user, moment, channel=False)
        stay = self.duration(30, 120, 4 * 3600)
        self.push(moment + stay, "leave_world", live, row, user, hops - 1)
        if self.user_channels[user] and self.rng.random() < 0.4:
            channel = self.rng.choice(self.user_channels[user])
            start = moment + self.rng.randint(5, 300)
            self.push(start, "join_media", user, channel, self.duration(20, 60, stay))

    def on_leave_world(self, moment: int, live: _Live, row: SimRow, user: int, hops: int) -> None:
        if self.leave(live, row, moment):
            self.world[live.key].remove(live)
        if hops > 0:
            self.push(moment + self.rng.randint(20, 180), "visit", user, hops)
        else:
            self.online.discard(user)

    def on_join_media(self, moment: int, user: int, channel: int, stay: int) -> None:
        live = self.media.get(channel)
        if live is None:
            live = _Live(self.new_instance(moment, location=None, channel=channel), channel)
            self.media[channel] = live
        row = self.attend(live, user, moment, channel=True)
        channel_id = self.channels[channel].values[0]
        sender = self.users[user].values[0]
        joined = (self.uid(), "joined the call", True, channel_id, sender)
        self.add("message", SimRow(moment, joined))
        said = moment + self.rng.randint(1, 200)
        # Nothing is written after the last slot: the platform's "now".
        while said < min(moment + stay, self.end):
            words = self.rng.choices(_WORDS, k=self.rng.randint(1, 7))
            values = (self.uid(), " ".join(words), False, channel_id, sender)
            self.add("message", SimRow(said, values))
            said += 1 + int(self.rng.expovariate(1 / 150))
        self.push(moment + stay, "leave_media", live, row, channel)

    def on_leave_media(self, moment: int, live: _Live, row: SimRow, channel: int) -> None:
        if self.leave(live, row, moment):
            del self.media[channel]


def simulate(last_slot: datetime, days: int, interval: timedelta, seed: int) -> Platform:
    """Simulate the platform for ``days`` up to ``last_slot`` (deterministic for a seed)."""
    step = int(interval.total_seconds())
    slots = max(1, int(days * 86400 // step))
    first = int(last_slot.timestamp()) - (slots - 1) * step
    return _Simulation(Platform(first=first, step=step, slots=slots), seed).run()


# ---------------------------------------------------------------------------- the database side


@cache
def schema_sql() -> str:
    """The iR Engine platform schema shipped with the package."""
    return resources.files("analytics_cli").joinpath("ir_engine_schema.sql").read_text("utf-8")


def schema_tables() -> list[str]:
    """The platform tables the schema creates, in creation order."""
    return re.findall(r'^CREATE TABLE "([^"]+)"', schema_sql(), flags=re.MULTILINE)


def prepare_source(conn: psycopg.Connection[Any]) -> bool:
    """Create the platform tables, replacing an earlier demo's; True when some were replaced.

    Tables the demo did not create (no marker comment) are never touched: the demo refuses.
    """
    import psycopg
    from psycopg import sql

    found: dict[str, str | None] = {}
    for name in schema_tables():
        row = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')",
            (sql.Identifier(name).as_string(conn),),
        ).fetchone()
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(name).as_string(conn),)
        ).fetchone()
        if exists and exists[0]:
            found[name] = row[0] if row else None
    foreign = [name for name, comment in found.items() if comment != MARKER]
    if foreign:
        raise ConfigError(
            "the source database already has platform tables the demo did not create ("
            + ", ".join(foreign)
            + "); they were left untouched",
            hint="run the demo on an empty database, or with no connection string "
            "(the embedded PostgreSQL)",
        )
    try:
        with conn.transaction():
            if found:
                conn.execute(
                    sql.SQL("DROP TABLE {}").format(
                        sql.SQL(", ").join(sql.Identifier(n) for n in found)
                    )
                )
            conn.execute(schema_sql())  # type: ignore[call-overload,unused-ignore]
            for name in schema_tables():
                conn.execute(
                    sql.SQL("COMMENT ON TABLE {} IS {}").format(
                        sql.Identifier(name), sql.Literal(MARKER)
                    )
                )
    except psycopg.Error as exc:
        from analytics_cli.db import one_line

        raise DatabaseError(
            f"cannot create the demo platform tables: {one_line(str(exc))}",
            hint="objects of your own may depend on the earlier demo tables",
        ) from None
    return bool(found)


def _copy(conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...], rows: Any) -> None:
    from psycopg import sql

    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor().copy(query) as copy:
        for row in rows:
            copy.write_row(row)


def apply_slot(conn: psycopg.Connection[Any], platform: Platform, plan: _Plan, index: int) -> int:
    """Bring the platform tables to the state at slot ``index``; returns rows written."""
    from psycopg import sql

    slot_end = platform.first + index * platform.step
    written = 0
    with conn.transaction():
        _fast_commit(conn)
        for table in COLUMNS:
            rows = plan.created[index].get(table, [])
            if not rows:
                continue
            written += len(rows)
            if table in ENDABLE:
                columns = (*COLUMNS[table], "createdAt", "updatedAt", "ended")
                values = (
                    (
                        *r.values,
                        _dt(r.created),
                        _dt(r.ended if r.ended is not None and r.ended <= slot_end else r.created),
                        _ended(r, slot_end),
                    )
                    for r in rows
                )
            else:
                columns = (*COLUMNS[table], "createdAt", "updatedAt")
                values = ((*r.values, _dt(r.created), _dt(r.created)) for r in rows)
            _copy(conn, table, columns, values)
        for table in ENDABLE:
            ended = plan.ended[index].get(table, [])
            if not ended:
                continue
            written += len(ended)
            conn.execute(
                sql.SQL(
                    'UPDATE {} AS t SET ended = true, "updatedAt" = v.at '
                    "FROM unnest(%s::uuid[], %s::timestamptz[]) AS v(id, at) WHERE t.id = v.id"
                ).format(sql.Identifier(table)),
                ([r.values[0] for r in ended], [_dt(r.ended or 0) for r in ended]),
            )
    return written


def _ended(row: SimRow, moment: int) -> bool:
    return row.ended is not None and row.ended <= moment


@dataclass
class _Plan:
    """Rows to insert and rows to end, per slot."""

    created: list[dict[str, list[SimRow]]]
    ended: list[dict[str, list[SimRow]]]


def plan(platform: Platform) -> _Plan:
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
    return _Plan(created, ended)


@dataclass
class DemoResult:
    """What the demo built and collected."""

    first: datetime
    last: datetime
    slots: int
    rows: dict[str, int]
    failed: int = 0
    present: int = 0
    seconds: float = 0.0


Progress = Callable[[int, int, "CycleReport | None"], None]


def check_store_target(settings: Settings) -> None:
    """Refuse when the store table would be the platform's own ``analytics`` table."""
    from psycopg.conninfo import conninfo_to_dict

    if settings.embedded or settings.source_dsn is None or settings.store_dsn is None:
        return
    try:
        same = conninfo_to_dict(settings.source_dsn) == conninfo_to_dict(settings.store_dsn)
    except Exception:
        same = settings.source_dsn == settings.store_dsn
    if same and settings.table_parts in (("analytics",), ("public", "analytics")):
        raise ConfigError(
            "the source and the store are the same database, and the store table 'analytics' "
            "is the name of the platform's own table",
            hint='set table = "analytics_cli" in the [store] section of the config file, '
            "or give the store its own database ($ANALYTICS_STORE_DSN)",
        )


def _source(settings: Settings) -> psycopg.Connection[Any]:
    from analytics_cli.db import connect

    assert settings.source_dsn is not None
    return connect(settings.source_dsn, settings, purpose="source", autocommit=True)


def _fast_commit(conn: psycopg.Connection[Any]) -> None:
    """Demo rows are rebuilt on every run: losing the last commits in a crash costs nothing."""
    # LOCAL: a session setting would outlive the transaction on a pooler's server connection.
    conn.execute("SET LOCAL synchronous_commit = off")


def run(
    settings: Settings,
    *,
    days: int,
    seed: int,
    scale: str = "small",
    now: datetime | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Build the demo platform and collect its history (``settings`` must hold concrete DSNs)."""
    import psycopg

    from analytics_cli.collect import ensure_store, run_cycle
    from analytics_cli.db import database_error

    started = time.monotonic()
    check_store_target(settings)
    last = floor_slot(now or utcnow(), settings.interval)
    ensure_store(settings)
    try:
        with _source(settings) as conn:
            prepare_source(conn)
            if scale == "large":
                return _run_large(conn, settings, last, days, seed, started, progress)
            platform = simulate(last, days, settings.interval, seed)
            steps = plan(platform)
            result = DemoResult(
                first=platform.slot_time(0),
                last=platform.slot_time(platform.slots - 1),
                slots=platform.slots,
                rows={t: len(r) for t, r in platform.rows.items()},
            )
            if progress:
                progress(0, platform.slots, None)
            # The embedded store holds only the demo platform's history: a new run replaces
            # its slots. A configured store keeps whatever it already holds.
            replace = settings.source_dsn_origin == "embedded"
            for index in range(platform.slots):
                apply_slot(conn, platform, steps, index)
                report = run_cycle(settings, at=platform.slot_time(index), replace=replace)
                result.failed += len(report.failed)
                result.present += sum(r.status == "present" for r in report.results)
                if progress:
                    progress(index + 1, platform.slots, report)
    except psycopg.Error as exc:
        raise database_error(
            exc, settings.source_dsn, doing="demo: source database error"
        ) from None
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------- --scale large

LARGE_USERS = 1_000_000
LARGE_ATTENDANCE = 5_000_000
LARGE_INSTANCES = 200_000
LARGE_CHANNELS = 20_000
LARGE_MESSAGES = 1_000_000
LARGE_LOCATIONS = 500
LARGE_SCENES = 200

_LARGE_SQL = (
    # Deterministic ids: md5 of (seed, kind, index) shaped as a uuid.
    """
    INSERT INTO "static-resource" (id, hash, key, "mimeType", project, type, name,
                                   "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':s:' || i)::uuid, md5(i::text), 'projects/demo/scene-' || i || '.gltf',
           'model/gltf+json', 'demo', 'scene', 'Scene ' || i, %(launch)s, %(launch)s
    FROM generate_series(1, %(scenes)s) AS i
    """,
    """
    INSERT INTO location (id, name, "sceneId", "slugifiedName", "maxUsersPerInstance",
                          "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':l:' || i)::uuid, 'Location ' || i,
           CASE WHEN i %% 50 = 0 THEN NULL
                ELSE md5(%(seed)s || ':s:' || (1 + i %% %(scenes)s))::uuid END,
           'location-' || i, 50, %(launch)s, %(launch)s
    FROM generate_series(1, %(locations)s) AS i
    """,
    """
    INSERT INTO "user" (id, name, "isGuest", "ageVerified", "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':u:' || i)::uuid, 'user' || i, i %% 5 < 2, i %% 5 >= 2,
           %(launch)s + (%(last)s - %(launch)s) * (i::float8 / %(users)s),
           %(launch)s + (%(last)s - %(launch)s) * (i::float8 / %(users)s)
    FROM generate_series(1, %(users)s) AS i
    """,
    """
    INSERT INTO channel (id, name, "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':c:' || i)::uuid, 'channel ' || i, %(launch)s, %(launch)s
    FROM generate_series(1, %(channels)s) AS i
    """,
    # Instance j starts at first + span * j / n; every fifth is a channel (media) instance;
    # the ones started in the last two hours are still running.
    """
    INSERT INTO instance (id, "roomCode", "channelId", ended, assigned, "locationId",
                          "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':i:' || j)::uuid, upper(substr(md5(j::text), 1, 6)),
           CASE WHEN j %% 5 = 0
                THEN md5(%(seed)s || ':c:' || (1 + j %% %(channels)s))::uuid::text END,
           t.at < %(last)s - interval '2 hours', true,
           CASE WHEN j %% 5 <> 0
                THEN md5(%(seed)s || ':l:' || (1 + j %% %(locations)s))::uuid END,
           t.at, least(t.at + interval '90 minutes', %(last)s)
    FROM generate_series(1, %(instances)s) AS j,
         LATERAL (SELECT %(first)s + (%(last)s - %(first)s) * (j::float8 / %(instances)s)) AS t(at)
    """,
    """
    INSERT INTO "instance-attendance" (id, "isChannel", ended, "userId", "instanceId",
                                       "createdAt", "updatedAt", "peerIndex")
    SELECT md5(%(seed)s || ':a:' || i)::uuid, j %% 5 = 0,
           t.at < %(last)s - interval '2 hours' OR (i / %(instances)s) %% 3 = 0,
           md5(%(seed)s || ':u:' || (1 + (i::bigint * 7919) %% %(users)s))::uuid,
           md5(%(seed)s || ':i:' || j)::uuid,
           t.at, least(t.at + interval '30 minutes', %(last)s), i / %(instances)s
    FROM generate_series(0, %(attendance)s - 1) AS i,
         LATERAL (SELECT 1 + i %% %(instances)s) AS k(j),
         LATERAL (SELECT %(first)s + (%(last)s - %(first)s) * (j::float8 / %(instances)s)
                         + make_interval(mins => (i / %(instances)s)::int)) AS t(at)
    """,
    """
    INSERT INTO message (id, text, "isNotification", "channelId", "senderId",
                         "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':m:' || i)::uuid, 'message ' || i, i %% 10 = 0,
           md5(%(seed)s || ':c:' || (1 + i %% %(channels)s))::uuid,
           md5(%(seed)s || ':u:' || (1 + (i::bigint * 104729) %% %(users)s))::uuid,
           %(first)s + (%(last)s - %(first)s) * (i::float8 / %(messages)s),
           %(first)s + (%(last)s - %(first)s) * (i::float8 / %(messages)s)
    FROM generate_series(1, %(messages)s) AS i
    """,
)


def _run_large(
    conn: psycopg.Connection[Any],
    settings: Settings,
    last: datetime,
    days: int,
    seed: int,
    started: float,
    progress: Progress | None,
) -> DemoResult:
    """Build a large platform server-side and collect the current slot once."""
    from analytics_cli.collect import run_cycle

    first = last - timedelta(days=days)
    params = {
        "seed": str(seed),
        "launch": first - timedelta(days=365),
        "first": first,
        "last": last,
        "users": LARGE_USERS,
        "attendance": LARGE_ATTENDANCE,
        "instances": LARGE_INSTANCES,
        "channels": LARGE_CHANNELS,
        "messages": LARGE_MESSAGES,
        "locations": LARGE_LOCATIONS,
        "scenes": LARGE_SCENES,
    }
    total = len(_LARGE_SQL) + 2
    if progress:
        progress(0, total, None)
    with conn.transaction():
        _fast_commit(conn)
        for done, statement in enumerate(_LARGE_SQL, start=1):
            conn.execute(statement, params)
            if progress:
                progress(done, total, None)
    for table in COLUMNS:
        from psycopg import sql

        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    if progress:
        progress(total - 1, total, None)
    report = run_cycle(settings, at=last, replace=settings.source_dsn_origin == "embedded")
    if progress:
        progress(total, total, report)
    counts = {}
    for table in COLUMNS:
        from psycopg import sql

        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return DemoResult(
        first=last,
        last=last,
        slots=1,
        rows=counts,
        failed=len(report.failed),
        present=sum(r.status == "present" for r in report.results),
        seconds=time.monotonic() - started,
    )
