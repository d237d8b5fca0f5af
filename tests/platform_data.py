"""A small iR Engine dataset with hand-computed metric values, NULLs and window edges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

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


def _id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-cli-test:{name}")


def load(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Insert the dataset into a database that has the iR Engine schema."""
    users = {
        "u1": SLOT,  # exactly at the slot: inside (slot - 24h, slot]
        "u2": SLOT - 24 * H,  # exactly 24 h before: outside (left-open)
        "u3": SLOT - 24 * H + S,  # just inside
        "u4": SLOT + S,  # after the slot: outside
        "u5": SLOT - 72 * H,
        "u6": SLOT - H,
    }
    for name, created in users.items():
        conn.execute(
            'INSERT INTO "user" (id, name, "createdAt", "updatedAt") VALUES (%s, %s, %s, %s)',
            (_id(name), name, created, created),
        )
    for scene in ("sc1", "sc2", "sc3"):
        conn.execute(
            'INSERT INTO "static-resource" (id, hash, name, "createdAt", "updatedAt") '
            "VALUES (%s, %s, %s, %s, %s)",
            (_id(scene), scene, scene, SLOT - 100 * H, SLOT - 100 * H),
        )
    locations = {"L1": "sc1", "L2": "sc1", "L3": "sc2", "L4": None, "L5": "sc3"}
    for name, scene in locations.items():
        conn.execute(
            'INSERT INTO location (id, name, "sceneId", "slugifiedName", "createdAt", "updatedAt") '
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (
                _id(name),
                name,
                _id(scene) if scene else None,
                name.lower(),
                SLOT - 90 * H,
                SLOT - 90 * H,
            ),
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
        conn.execute(
            'INSERT INTO instance (id, "roomCode", "locationId", "channelId", ended, "createdAt", "updatedAt") '
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                _id(name),
                name,
                _id(location) if location else None,
                channel,
                ended,
                SLOT - 5 * H,
                SLOT - 5 * H,
            ),
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
        conn.execute(
            'INSERT INTO "instance-attendance" (id, "userId", "isChannel", ended, "createdAt", "updatedAt") '
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (_id(name), _id(user) if user else None, is_channel, ended, created, created),
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
        conn.execute(
            'INSERT INTO message (id, text, "isNotification", "createdAt", "updatedAt") '
            "VALUES (%s, %s, %s, %s, %s)",
            (_id(name), name, notification, created, created),
        )
