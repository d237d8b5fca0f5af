"""The windowed built-in metrics at their edges, counted by hand, on PostgreSQL and MariaDB.

Every window is half-open on the left, (slot - length, slot]: a row exactly at the left edge
is out, a row exactly at the slot is in, a row one second after the slot is out. Users who
came back several times count once. The pack's fused queries (several metrics per statement)
and the single definitions of IR_ENGINE_SCHEMA.md must both give the hand counts, read
together and one metric at a time.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics_cli.config.schema import Settings
from analytics_cli.metrics import builtin_metrics
from analytics_cli.samples import Sample
from analytics_cli.sources import open_source
from tests.conftest import Databases
from tests.mariadb_server import MySQLPlatform
from tests.metric_definitions import MYSQL, POSTGRESQL
from tests.platform_data import insert_mysql

# Midnight: weeklyUsers and monthlyUsers are collected once a day.
SLOT = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=30)
S = timedelta(seconds=1)
H = timedelta(hours=1)
D = timedelta(days=1)

# Attendance: who joined an instance, when. (slot - 24 h, slot], (slot - 7 d, slot] and
# (slot - 30 d, slot] are the daily, weekly and monthly windows.
VISITS = {
    "at-slot": [SLOT],  # in every window (the right edge is closed)
    "regular": [SLOT - H, SLOT - 2 * H, SLOT - 3 * H],  # three visits, one user
    "day-edge": [SLOT - D],  # left edge of the day: out of daily, in weekly and monthly
    "day-inside": [SLOT - D + S, SLOT - 2 * D],  # in daily by one second; back the day before
    "after": [SLOT + S],  # one second after the slot: in no window
    "week-edge": [SLOT - 7 * D],  # out of weekly, in monthly
    "week-inside": [SLOT - 7 * D + S],
    "month-edge": [SLOT - 30 * D],  # in no window
    "month-inside": [SLOT - 30 * D + S, SLOT - 29 * D],
}
# Accounts created at the edges of the day (dailyNewUsers).
SIGNUPS = {
    "new-edge": SLOT - D,
    "new-inside": SLOT - D + S,
    "new-at-slot": SLOT,
    "new-after": SLOT + S,
}
# Chat messages (the interval is 30 min): (created at, is a notification).
MESSAGES = [
    (SLOT - INTERVAL, False),  # left edge: out
    (SLOT - INTERVAL + S, False),
    (SLOT - timedelta(minutes=1), False),
    (SLOT, False),
    (SLOT, True),  # a notification is no chat message
    (SLOT + S, False),  # after the slot: out
]
EXPECTED = {
    # at-slot, regular, day-inside
    "dailyUsers": 3,
    # + day-edge, week-inside
    "weeklyUsers": 5,
    # + week-edge, month-inside
    "monthlyUsers": 7,
    # new-inside, new-at-slot
    "dailyNewUsers": 2,
    # the three messages inside (slot - 30 min, slot]
    "chatMessages": 3,
}
WINDOWED = [m for m in builtin_metrics() if m.type in EXPECTED]


def _id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-cli-windows:{name}")


def rows() -> list[tuple[str, dict[str, Any]]]:
    """The platform as (table, column -> value), in an order foreign keys accept."""
    long_ago = SLOT - 40 * D
    out: list[tuple[str, dict[str, Any]]] = []
    for name in VISITS:
        out.append(("user", {"id": _id(name), "name": name, "createdAt": long_ago,
                             "updatedAt": long_ago}))  # fmt: skip
    for name, at in SIGNUPS.items():
        out.append(("user", {"id": _id(name), "name": name, "createdAt": at, "updatedAt": at}))
    visits = [(name, at) for name, times in VISITS.items() for at in times]
    # A visit of a deleted account (userId NULL) is nobody: it counts in no window.
    visits.append((None, SLOT - H))
    for i, (who, at) in enumerate(visits):
        row = {
            "id": _id(f"visit-{i}"),
            "userId": _id(who) if who else None,
            "isChannel": False,
            # Ended or not: the daily window counts both (the running ones are read too).
            "ended": i % 2 == 0,
            "createdAt": at,
            "updatedAt": at,
        }
        out.append(("instance-attendance", row))
    for i, (at, notification) in enumerate(MESSAGES):
        out.append(("message", {"id": _id(f"message-{i}"), "text": f"m{i}",
                                "isNotification": notification, "createdAt": at,
                                "updatedAt": at}))  # fmt: skip
    return out


def read(dsn: str) -> list[dict[str, Any]]:
    """What the collector reads: the windowed metrics together, then each one alone."""
    source = open_source(dsn, Settings(interval=INTERVAL))
    together = source.read(WINDOWED, {m.type: SLOT for m in WINDOWED}).outcomes
    alone = [o for m in WINDOWED for o in source.read([m], {m.type: SLOT}).outcomes]
    return [_counts(together), _counts(alone)]


def _counts(outcomes: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for outcome in outcomes:
        assert isinstance(outcome, Sample), outcome
        out[outcome.type] = int(outcome.count)
    return out


def test_the_fused_queries_hold_three_of_the_windowed_metrics() -> None:
    # The fused ones come from [[query]] tables; the others are single statements.
    fused = {m.type for m in WINDOWED if m.query is not None}
    assert fused == {"dailyUsers", "weeklyUsers", "monthlyUsers"}


def test_window_edges_on_postgresql(dbs: Databases) -> None:
    with dbs.source_conn() as conn:
        for table, row in rows():
            names = ", ".join(f'"{name}"' for name in row)
            marks = ", ".join(["%s"] * len(row))
            conn.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', tuple(row.values()))
        params = {"slot": SLOT, "interval": INTERVAL}
        single = {}
        for name in EXPECTED:
            found = conn.execute(POSTGRESQL[name], params).fetchone()
            assert found is not None
            single[name] = int(found[0])
    assert single == EXPECTED
    assert read(dbs.source) == [EXPECTED, EXPECTED]


def test_window_edges_on_mariadb(mysql_platform: MySQLPlatform) -> None:
    from analytics_cli.engines.mysql.snapshot import bound_parameters

    with mysql_platform.connect() as conn:
        insert_mysql(conn, rows())
        single = {}
        with conn.cursor() as cur:
            for name in EXPECTED:
                cur.execute(MYSQL[name], bound_parameters(SLOT, INTERVAL))
                found = cur.fetchone()
                assert found is not None
                single[name] = int(found[0])
    assert single == EXPECTED
    assert read(mysql_platform.url) == [EXPECTED, EXPECTED]


def test_the_hand_counts_follow_from_the_rows() -> None:
    """The expected values, recomputed from the rows with the window rule in Python: the
    rule and the hand counts agree (a typo in EXPECTED cannot pass both engines)."""

    def users(length: timedelta) -> int:
        return len({name for name, times in VISITS.items()
                    for at in times if SLOT - length < at <= SLOT})  # fmt: skip

    chat = sum(1 for at, note in MESSAGES if not note and SLOT - INTERVAL < at <= SLOT)
    signups = sum(1 for at in SIGNUPS.values() if SLOT - D < at <= SLOT)
    assert {"dailyUsers": users(D), "weeklyUsers": users(7 * D), "monthlyUsers": users(30 * D),
            "dailyNewUsers": signups, "chatMessages": chat} == EXPECTED  # fmt: skip
