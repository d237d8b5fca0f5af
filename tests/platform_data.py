"""A small iR Engine dataset with hand-computed metric values, NULLs and window edges."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.helpers import insert_platform_rows

SLOT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)
M = timedelta(minutes=1)

# Values at SLOT with a 30-minute interval, counted by hand from the rows below.
EXPECTED = {
    "activeInstances": 7,
    "activeLocations": 3,
    "activeScenes": 1,
    "activeChannels": 1,
    "instanceUsers": 2,
    "channelUsers": 2,
    "dailyUsers": 3,
    "dailyNewUsers": 3,
    "chatMessages": 4,
}


# The same rows counted by hand at other slots (30-minute interval): the window edges move.
EXPECTED_AT = {
    SLOT: EXPECTED,
    # u4, a7 and m5 (created at SLOT + 1 s) enter; u3 and m3 sit on the left edge: out.
    SLOT + S: {**EXPECTED, "dailyUsers": 4, "dailyNewUsers": 3, "chatMessages": 4},
    # u2 and a3 are inside (SLOT - 24h30m, SLOT - 30m]; u1 and a6 are not yet; only m2.
    SLOT - 30 * M: {**EXPECTED, "dailyUsers": 4, "dailyNewUsers": 3, "chatMessages": 1},
    # A day later only the rows created after the slot count: u4 and a7 (user u4).
    SLOT + 24 * H: {**EXPECTED, "dailyUsers": 1, "dailyNewUsers": 1, "chatMessages": 0},
}


def _id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-cli-test:{name}")


def load(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Insert the dataset into a database that has the iR Engine schema."""
    insert_platform_rows(conn, rows())


def load_mysql(conn: Any) -> None:
    """Insert the same rows into a MySQL/MariaDB database with the iR Engine schema (PyMySQL)."""
    insert_mysql(conn, rows())


def insert_mysql(conn: Any, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Insert rows the way knex stores them on MySQL: char(36) ids, 0/1, naive UTC datetimes."""
    with conn.cursor() as cur:
        for table, row in items:
            names = ", ".join(f"`{name}`" for name in row)
            marks = ", ".join(["%s"] * len(row))
            cur.execute(
                f"INSERT INTO `{table}` ({names}) VALUES ({marks})",
                tuple(mysql_value(v) for v in row.values()),
            )


def mysql_value(value: Any) -> Any:
    """A PostgreSQL-side value as the MySQL schema holds it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def rows() -> list[tuple[str, dict[str, Any]]]:
    """The dataset as (table, column -> value) in insertion order."""
    return list(_rows())


def _rows() -> Iterator[tuple[str, dict[str, Any]]]:
    users = {
        "u1": SLOT,  # exactly at the slot: inside (slot - 24h, slot]
        "u2": SLOT - 24 * H,  # exactly 24 h before: outside (left-open)
        "u3": SLOT - 24 * H + S,  # just inside
        "u4": SLOT + S,  # after the slot: outside
        "u5": SLOT - 72 * H,
        "u6": SLOT - H,
    }
    for name, created in users.items():
        yield "user", {"id": _id(name), "name": name, "createdAt": created, "updatedAt": created}
    for scene in ("sc1", "sc2", "sc3"):
        t = SLOT - 100 * H
        yield (
            "static-resource",
            {
                "id": _id(scene),
                "hash": scene,
                "name": scene,
                "createdAt": t,
                "updatedAt": t,
            },
        )
    locations = {"L1": "sc1", "L2": "sc1", "L3": "sc2", "L4": None, "L5": "sc3"}
    for name, scene in locations.items():
        yield (
            "location",
            {
                "id": _id(name),
                "name": name,
                "sceneId": _id(scene) if scene else None,
                "slugifiedName": name.lower(),
                "createdAt": SLOT - 90 * H,
                "updatedAt": SLOT - 90 * H,
            },
        )
    # (name, locationId, channelId, ended)
    instances = [
        ("i1", "L1", None, False),
        ("i2", "L1", None, False),  # same location twice
        ("i3", "L2", None, False),  # another location, same scene
        ("i4", "L4", None, False),  # a location without a scene
        ("i5", "L5", None, True),  # ended: its scene does not count
        ("i6", "L3", None, None),  # ended IS NULL: not "ended = false"
        ("i7", None, "c1", False),
        ("i8", None, "c1", False),  # same channel twice
        ("i9", None, "c2", True),
        ("i10", None, None, False),  # neither location nor channel
    ]
    for name, location, channel, ended in instances:
        yield (
            "instance",
            {
                "id": _id(name),
                "roomCode": name,
                "locationId": _id(location) if location else None,
                "channelId": channel,
                "ended": ended,
                "createdAt": SLOT - 5 * H,
                "updatedAt": SLOT - 5 * H,
            },
        )
    # (name, user, isChannel, ended, createdAt)
    attendance = [
        ("a1", "u1", False, False, SLOT - H),
        ("a2", "u1", False, False, SLOT - 2 * H),  # the same user again
        ("a3", "u2", False, False, SLOT - 24 * H),  # left edge of the daily window: out
        ("a4", None, False, False, SLOT - 10 * M),  # no user
        ("a5", "u3", False, True, SLOT - 23 * H),  # ended, but joined within 24 h
        ("a6", "u3", True, False, SLOT),  # right edge: in
        ("a7", "u4", True, False, SLOT + S),  # after the slot: not daily, but active now
        ("a8", "u5", None, False, SLOT - 5 * H),  # isChannel unknown
        ("a9", "u6", False, None, SLOT - 30 * H),  # ended unknown, too old for daily
    ]
    for name, user, is_channel, ended, created in attendance:
        yield (
            "instance-attendance",
            {
                "id": _id(name),
                "userId": _id(user) if user else None,
                "isChannel": is_channel,
                "ended": ended,
                "createdAt": created,
                "updatedAt": created,
            },
        )
    # (name, isNotification, createdAt)
    messages = [
        ("m1", False, SLOT),  # right edge: in
        ("m2", False, SLOT - 30 * M),  # left edge: out
        ("m3", False, SLOT - 30 * M + S),  # just in
        ("m4", True, SLOT - M),  # a notification
        ("m5", False, SLOT + S),  # after the slot
        ("m6", False, SLOT - 10 * M),
        ("m7", False, SLOT - 20 * M),  # in for 30 min, out for a 15-minute interval
    ]
    for name, notification, created in messages:
        yield (
            "message",
            {
                "id": _id(name),
                "text": name,
                "isNotification": notification,
                "createdAt": created,
                "updatedAt": created,
            },
        )
