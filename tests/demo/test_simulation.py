"""The demo's simulation on its own, with no database: deterministic and consistent events."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import subprocess
import sys
import typing
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from analytics_cli.demo import events as sim_events
from analytics_cli.demo import simulation as sim
from analytics_cli.demo import state as sim_state
from analytics_cli.demo.events import (
    Agenda,
    Arrive,
    JoinMedia,
    LeaveMedia,
    LeaveWorld,
    Scheduled,
    SignUp,
    Visit,
)
from analytics_cli.demo.simulation import Platform
from analytics_cli.demo.state import State

HALF_HOUR = timedelta(minutes=30)
LAST = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)  # a Sunday night


@dataclass(frozen=True)
class Run:
    """One simulation run: the final state, what is still scheduled, and what was handled."""

    state: State
    agenda: Agenda
    trace: list[Scheduled]
    platform: Platform


def played(seed: int, days: int = 1, last: datetime = LAST) -> Run:
    first, step, slots = sim.slot_range(last, days, HALF_HOUR)
    state, agenda = sim.start(seed, first, first + (slots - 1) * step)
    trace = list(sim.play(state, agenda))
    return Run(state, agenda, trace, sim.finish(state, first, step, slots))


def digest(platform: Platform) -> str:
    found = hashlib.sha256()
    for table, rows in platform.rows.items():
        found.update(repr((table, [(r.created, r.values, r.ended) for r in rows])).encode())
    return found.hexdigest()


# ---------------------------------------------------------------------------- determinism


def test_a_seed_gives_the_same_history_as_before() -> None:
    # Pinned: the platform a seed gives is part of what `demo --seed` promises.
    platform = sim.simulate(LAST, 1, HALF_HOUR, seed=1)
    assert {t: len(r) for t, r in platform.rows.items()} == {
        "static-resource": 10,
        "location": 12,
        "user": 1706,
        "channel": 60,
        "channel-user": 1091,
        "instance": 993,
        "instance-attendance": 4893,
        "message": 4913,
    }
    assert digest(platform) == "7f4f5f2bca9b85b1321d29ead040d0347eab3598ba2110f4bd1add84b2b990b8"


def test_same_seed_same_events_other_seed_other_events() -> None:
    one, two, other = played(5), played(5), played(6)
    assert one.trace == two.trace
    assert one.platform == two.platform
    assert one.agenda.pending() == two.agenda.pending()
    assert one.trace != other.trace
    assert one.platform.rows["user"] != other.platform.rows["user"]
    assert sim.simulate(LAST, 1, HALF_HOUR, seed=5) == one.platform


def test_slot_range_ends_at_the_last_slot() -> None:
    first, step, slots = sim.slot_range(LAST, 2, HALF_HOUR)
    assert (step, slots) == (1800, 96)
    assert first + 95 * step == int(LAST.timestamp())
    platform = played(3, days=2).platform
    assert platform.slot_time(95) == LAST
    assert platform.end == int(LAST.timestamp())
    assert sim.slot_range(LAST, 1, timedelta(days=2)) == (int(LAST.timestamp()), 172800, 1)


# ---------------------------------------------------------------------------- the handler table


def test_the_handler_table_covers_every_event_class() -> None:
    events = set(typing.get_args(sim_events.Event))
    assert events == {SignUp, Arrive, Visit, LeaveWorld, JoinMedia, LeaveMedia}
    assert set(sim_events.HANDLERS) == events
    for event, handler in sim_events.HANDLERS.items():
        # Each handler takes the event class it is filed under.
        assert typing.get_type_hints(handler)["event"] is event, handler.__name__


def test_events_are_frozen_dataclasses() -> None:
    for event in typing.get_args(sim_events.Event):
        fields = [f.name for f in dataclasses.fields(event)]
        made = event(*[0] * len(fields))
        for name in [*fields, "other"]:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(made, name, 1)
    assert Visit(user=3, hops=1) == Visit(3, 1)
    assert hash(Visit(3, 1)) == hash(Visit(user=3, hops=1))


# ---------------------------------------------------------------------------- single steps


def small_state(*, users: int, end: int = 10**9) -> State:
    """A state whose every visit goes to the first location, with ``users`` users."""
    state = sim_state.new_state(seed=11, end=end, launched=0)
    weights = (1.0,) + (0.0,) * (sim_state.LOCATIONS - 1)
    state.catalogue = dataclasses.replace(state.catalogue, location_weights=weights)
    for _ in range(users):
        sim_state.add_user(state, 100)
    return state


def test_a_sign_up_adds_a_user_who_arrives_soon() -> None:
    state = small_state(users=0)
    caused = sim_events.step(state, 5000, SignUp())
    assert len(state.users) == 1
    assert state.rows["user"] == [state.users[0]]
    assert state.users[0].created == 5000
    assert len(caused) == 1
    moment, event = caused[0]
    assert event == Arrive(0)
    assert 5060 <= moment <= 5900


def test_an_online_user_does_not_arrive_twice() -> None:
    state = small_state(users=1)
    first = sim_events.step(state, 1000, Arrive(0))
    assert state.online == {0}
    assert isinstance(first[0][1], LeaveWorld)
    rows = {t: len(r) for t, r in state.rows.items()}
    assert sim_events.step(state, 1001, Arrive(0)) == []
    assert {t: len(r) for t, r in state.rows.items()} == rows


def test_a_full_instance_opens_another_and_the_last_user_out_ends_it() -> None:
    state = small_state(users=sim_state.MAX_USERS_PER_INSTANCE + 1)
    leaves = []
    for user in range(sim_state.MAX_USERS_PER_INSTANCE + 1):
        # The last one visits once; the others have one more visit after this one.
        hops = 1 if user == sim_state.MAX_USERS_PER_INSTANCE else 2
        caused = sim_events.step(state, 1000 + user, Visit(user, hops))
        leaves.append(next(e for _, e in caused if isinstance(e, LeaveWorld)))
    assert [e.instance for e in leaves] == [0] * sim_state.MAX_USERS_PER_INSTANCE + [1]
    assert state.rooms.world == {0: [0, 1]}
    assert state.rooms.users == {0: sim_state.MAX_USERS_PER_INSTANCE, 1: 1}
    peers = [r.values[6] for r in state.rows["instance-attendance"]]
    assert peers == [*range(sim_state.MAX_USERS_PER_INSTANCE), 0]

    # The lone user of the second instance leaves with no hops left: it ends, they go offline.
    state.online.add(sim_state.MAX_USERS_PER_INSTANCE)
    assert sim_events.step(state, 2000, leaves[-1]) == []
    assert state.rows["instance"][1].ended == 2000
    assert state.rows["instance-attendance"][-1].ended == 2000
    assert state.rooms.world == {0: [0]}
    assert 1 not in state.rooms.users
    assert sim_state.MAX_USERS_PER_INSTANCE not in state.online

    # Users of the first one leave with a hop left: each is due to visit again; the last ends it.
    for number, leave in enumerate(leaves[:-1], start=1):
        caused = sim_events.step(state, 3000 + number, leave)
        assert len(caused) == 1
        moment, event = caused[0]
        assert event == Visit(leave.user, 1)
        assert 3000 + number + 20 <= moment <= 3000 + number + 180
        ended = state.rows["instance"][0].ended
        assert ended == (3000 + number if number == sim_state.MAX_USERS_PER_INSTANCE else None)
    assert state.rooms == sim_state.Rooms(world={0: []}, media={}, users={})


def test_a_call_is_shared_by_the_channel_and_chats_stop_at_the_end() -> None:
    state = small_state(users=2, end=10_000)
    one = sim_events.step(state, 9000, JoinMedia(user=0, channel=4, stay=600))
    two = sim_events.step(state, 9100, JoinMedia(user=1, channel=4, stay=3000))
    assert one == [(9600, LeaveMedia(channel=4, instance=0, attendance=0))]
    assert two == [(12100, LeaveMedia(channel=4, instance=0, attendance=1))]
    assert state.rooms.media == {4: 0}
    instance = state.rows["instance"][0]
    assert instance.values[3] == str(state.catalogue.channels[4].values[0])
    assert instance.values[6] is None
    notes = [m for m in state.rows["message"] if m.values[2]]
    assert [(m.created, m.values[1]) for m in notes] == [
        (9000, "joined the call"),
        (9100, "joined the call"),
    ]
    chat = [m for m in state.rows["message"] if not m.values[2]]
    assert all(m.created < 10_000 for m in chat)
    assert {m.values[3] for m in state.rows["message"]} == {state.catalogue.channels[4].values[0]}
    assert sim_events.step(state, 9600, one[0][1]) == []
    assert state.rooms.media == {4: 0}
    assert instance == state.rows["instance"][0]
    assert sim_events.step(state, 12100, two[0][1]) == []
    assert state.rooms.media == {}
    assert state.rows["instance"][0].ended == 12100


def test_the_agenda_keeps_time_order_and_scheduling_order_for_ties() -> None:
    agenda = Agenda()
    agenda.push(20, Visit(1, 0))
    agenda.push(10, SignUp())
    agenda.push(20, Arrive(None))
    agenda.push(30, Arrive(2))
    assert agenda.pending() == [
        (10, SignUp()),
        (20, Visit(1, 0)),
        (20, Arrive(None)),
        (30, Arrive(2)),
    ]
    assert agenda.pop(until=25) == (10, SignUp())
    assert agenda.pop(until=25) == (20, Visit(1, 0))
    assert agenda.pop(until=25) == (20, Arrive(None))
    assert agenda.pop(until=25) is None
    assert agenda.pending() == [(30, Arrive(2))]


# ---------------------------------------------------------------------------- invariants of a run


def assert_consistent(run: Run) -> None:
    """Everything a finished run produced agrees with itself, with its state and its events."""
    platform, state = run.platform, run.state
    end = platform.end
    rows = platform.rows
    for table, table_rows in rows.items():
        assert len({r.values[0] for r in table_rows}) == len(table_rows), table
        for row in table_rows:
            assert row.created <= end, table
            assert row.ended is None or row.created <= row.ended <= end, table
            assert row.ended is None or table in sim_state.ENDABLE, table

    users = {r.values[0]: r for r in rows["user"]}
    locations = {r.values[0]: r for r in rows["location"]}
    channels = {str(r.values[0]) for r in rows["channel"]}
    instances = {r.values[0]: r for r in rows["instance"]}
    by_instance: dict[object, list[sim_state.SimRow]] = defaultdict(list)
    for att in rows["instance-attendance"]:
        instance = instances[att.values[4]]
        by_instance[att.values[4]].append(att)
        assert users[att.values[3]].created <= att.created
        # No attendance on an ended instance, and none outlives it.
        assert instance.created <= att.created
        if instance.ended is not None:
            assert att.created <= instance.ended
            assert att.ended is not None and att.ended <= instance.ended
        media = att.values[2]
        assert media == (instance.values[3] is not None) == (instance.values[6] is None)
        if media:
            assert instance.values[3] in channels
            assert att.values[1] is None
        else:
            scene = locations[instance.values[6]].values[2]
            assert att.values[1] == (None if scene is None else str(scene))
    assert len({a.values[5] for a in rows["instance-attendance"]}) == len(
        rows["instance-attendance"]
    )
    for instance_id, instance in instances.items():
        held = by_instance[instance_id]
        assert held, "an instance opens for a user"
        assert min(a.created for a in held) == instance.created
        open_ = [a for a in held if a.ended is None]
        # An instance ends exactly when its last user leaves.
        if instance.ended is None:
            assert open_
        else:
            assert not open_
            assert instance.ended == max(a.ended or 0 for a in held)
        if instance.values[6] is not None:
            assert peak(held) <= sim_state.MAX_USERS_PER_INSTANCE
            assert max(a.values[6] for a in held) < sim_state.MAX_USERS_PER_INSTANCE
    # One call per channel at a time, and one world at a time per user.
    media_by_channel: dict[object, list[sim_state.SimRow]] = defaultdict(list)
    for instance in instances.values():
        if instance.values[3] is not None:
            media_by_channel[instance.values[3]].append(instance)
    for calls in media_by_channel.values():
        assert peak(calls) == 1
    worlds_by_user: dict[object, list[sim_state.SimRow]] = defaultdict(list)
    for att in rows["instance-attendance"]:
        if not att.values[2]:
            worlds_by_user[att.values[3]].append(att)
    for visits in worlds_by_user.values():
        assert peak(visits) == 1
    notes = [m for m in rows["message"] if m.values[2]]
    joins = [a for a in rows["instance-attendance"] if a.values[2]]
    assert len(notes) == len(joins)
    for message in rows["message"]:
        assert str(message.values[3]) in channels
        assert users[message.values[4]].created <= message.created

    # What the events say matches the rows and the state left behind.
    handled = Counter(type(e) for _, e in run.trace)
    pending = run.agenda.pending()
    waiting = Counter(type(e) for _, e in pending)
    assert all(moment > end for moment, _ in pending)
    assert [m for m, _ in run.trace] == sorted(m for m, _ in run.trace)
    assert all(m <= end for m, _ in run.trace)
    warm_up = platform.first - sim_state.WARM_UP
    assert handled[SignUp] == sum(u.created > warm_up for u in rows["user"])
    worlds = [a for a in rows["instance-attendance"] if not a.values[2]]
    assert handled[LeaveWorld] == sum(a.ended is not None for a in worlds)
    assert handled[LeaveWorld] + waiting[LeaveWorld] == len(worlds)
    assert handled[JoinMedia] == len(joins)
    assert handled[LeaveMedia] == sum(a.ended is not None for a in joins)
    assert handled[LeaveMedia] + waiting[LeaveMedia] == len(joins)
    hopped = sum(isinstance(e, LeaveWorld) and e.hops > 0 for _, e in run.trace)
    assert hopped == handled[Visit] + waiting[Visit]

    running = {i for i, r in enumerate(rows["instance"]) if r.ended is None}
    assert set(state.rooms.users) == running
    assert (
        set(state.rooms.media.values()) | {i for held in state.rooms.world.values() for i in held}
        == running
    )
    open_by_index = Counter(
        index
        for index, r in enumerate(rows["instance"])
        for a in by_instance[r.values[0]]
        if a.ended is None
    )
    assert state.rooms.users == dict(open_by_index)
    for location, indices in state.rooms.world.items():
        assert {rows["instance"][i].values[6] for i in indices} <= {
            state.catalogue.locations[location].values[0]
        }
    for channel, index in state.rooms.media.items():
        assert rows["instance"][index].values[3] == str(state.catalogue.channels[channel].values[0])
    position = {u.values[0]: n for n, u in enumerate(state.users)}
    in_world = {position[a.values[3]] for a in worlds if a.ended is None}
    between = {e.user for _, e in pending if isinstance(e, Visit)}
    # Online means in a world now, or between two visits.
    assert not in_world & between
    assert state.online == in_world | between


def peak(spans: list[sim_state.SimRow]) -> int:
    """The most rows open at once (a row is open from its creation to its end)."""
    changes = sorted(
        [(r.created, 1) for r in spans] + [(r.ended, -1) for r in spans if r.ended is not None],
        key=lambda c: (c[0], c[1]),
    )
    most = now = 0
    for _, delta in changes:
        now += delta
        most = max(most, now)
    return most


def test_a_week_keeps_the_invariants() -> None:
    assert_consistent(played(1, days=7, last=datetime(2026, 11, 29, 23, 30, tzinfo=UTC)))


# No shrinking: a smaller seed is no simpler a platform.
@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(seed=st.integers(min_value=0, max_value=2**64))
def test_any_seed_keeps_the_invariants(seed: int) -> None:
    assert_consistent(played(seed))


def test_ended_instances_stay_ended_at_every_step() -> None:
    first, step, slots = sim.slot_range(LAST, 1, HALF_HOUR)
    state, agenda = sim.start(2, first, first + (slots - 1) * step)
    ended: dict[int, int] = {}
    index_of: dict[object, int] = {}
    attendances = 0
    for moment, event in sim.play(state, agenda):
        instances = state.rows["instance"]
        if isinstance(event, LeaveWorld | LeaveMedia):
            assert event.instance not in ended
        for index in range(len(index_of), len(instances)):
            index_of[instances[index].values[0]] = index
            assert instances[index].created == moment
        # New attendances join running instances only.
        for att in state.rows["instance-attendance"][attendances:]:
            assert index_of[att.values[4]] not in ended
            assert att.created == moment
        attendances = len(state.rows["instance-attendance"])
        assert all(instances[i].ended == when for i, when in ended.items())
        if isinstance(event, LeaveWorld | LeaveMedia) and instances[event.instance].ended:
            assert instances[event.instance].ended == moment
            ended[event.instance] = moment
            assert event.instance not in state.rooms.users
    assert len(ended) == sum(r.ended is not None for r in state.rows["instance"])
    assert len(ended) > 100


# ---------------------------------------------------------------------------- rhythm


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_rhythm_peaks_in_the_evening_and_on_weekends() -> None:
    # 2026-11-28 is a Saturday, 2026-11-30 a Monday.
    assert sim_state.rhythm(at("2026-11-28T19:00")) == pytest.approx(1.3)
    assert sim_state.rhythm(at("2026-11-30T19:00")) == pytest.approx(0.8)
    assert sim_state.rhythm(at("2026-11-30T07:00")) == pytest.approx(0.08)
    monday = [sim_state.rhythm(at("2026-11-30T00:00") + 60 * m) for m in range(24 * 60)]
    assert monday.index(max(monday)) == 19 * 60
    assert monday.index(min(monday)) == 7 * 60


@given(moment=st.integers(min_value=0, max_value=4_000_000_000))
def test_rhythm_stays_between_its_floor_and_the_days_evening(moment: int) -> None:
    day = moment - moment % 86400
    value = sim_state.rhythm(moment)
    weekly = sim_state.WEEKLY[sim_state.utc(moment).weekday()]
    assert 0.1 * weekly - 1e-12 <= value <= weekly + 1e-12
    assert value <= sim_state.rhythm(day + 19 * 3600) + 1e-12


def test_arrivals_follow_the_rhythm() -> None:
    # A week ending on a Sunday night: evenings beat nights, weekends beat weekdays.
    start, end = at("2026-11-23T00:00"), at("2026-11-29T23:59")
    moments = list(
        sim_state.arrivals(random.Random(4), start, end, sim_state.PEAK_SESSIONS_PER_HOUR)
    )
    assert moments == sorted(moments)
    assert start < moments[0] and moments[-1] <= end + 1
    when = [sim_state.utc(m) for m in moments]
    evening = sum(17 <= w.hour < 22 for w in when)
    night = sum(2 <= w.hour < 7 for w in when)
    assert evening > 3 * night
    weekend = sum(w.weekday() >= 5 for w in when) / 2
    weekday = sum(w.weekday() < 5 for w in when) / 5
    assert weekend > 1.2 * weekday
    # About the expected count: the integral of the rate over the week.
    expected = sum(sim_state.rhythm(start + s) for s in range(0, end - start, 60)) / 60
    assert 0.9 < len(moments) / (expected * sim_state.PEAK_SESSIONS_PER_HOUR) < 1.1


# ---------------------------------------------------------------------------- the slot plan


def test_every_change_lands_in_the_first_slot_that_sees_it() -> None:
    platform = played(8).platform
    steps = sim.plan(platform)
    assert len(steps.created) == len(steps.ended) == platform.slots
    for table, rows in platform.rows.items():
        placed = [(i, r) for i, slot in enumerate(steps.created) for r in slot.get(table, [])]
        assert sorted(id(r) for _, r in placed) == sorted(id(r) for r in rows)
        for index, row in placed:
            assert index == platform.bucket(row.created)
            assert index == 0 or platform.first + (index - 1) * platform.step < row.created
            assert row.created <= platform.first + index * platform.step
        gone = [(i, r) for i, slot in enumerate(steps.ended) for r in slot.get(table, [])]
        later = [
            r
            for r in rows
            if r.ended is not None and platform.bucket(r.ended) > platform.bucket(r.created)
        ]
        assert sorted(id(r) for _, r in gone) == sorted(id(r) for r in later)
        for index, row in gone:
            assert index == platform.bucket(row.ended or 0)
    # The users who signed up before the first slot are all in it.
    before = [r for r in platform.rows["user"] if r.created <= platform.first]
    assert steps.created[0]["user"] == sorted(before, key=lambda r: r.created)


# ---------------------------------------------------------------------------- purity


def test_the_simulation_imports_no_database_driver() -> None:
    code = (
        "import sys\n"
        "import analytics_cli.demo.events\n"
        "import analytics_cli.demo.simulation\n"
        "import analytics_cli.demo.state\n"
        "print(sorted(m for m in ('psycopg', 'pymysql') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == "[]\n"
