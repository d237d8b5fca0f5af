"""A hand-counted iR Engine dataset for the per-location metrics (instances and attendance)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.helpers import insert_platform_rows

SLOT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)

# Counted by hand from the rows below. Two locations are named "Arena": counted together.
EXPECTED = {
    "instanceUsersByLocation": {"Lobby": 2, "Arena": 1, "Garden": 1},
    "activeInstancesByLocation": {"Lobby": 2, "Arena": 2},
}

# Counts the same thing another way: per location name, correlated subqueries, no GROUP BY.
INDEPENDENT = {
    "instanceUsersByLocation": """
        SELECT n.name, (
            SELECT count(*) FROM (
                SELECT DISTINCT a."userId" FROM "instance-attendance" AS a
                WHERE a."userId" IS NOT NULL AND a.ended IS FALSE AND a."isChannel" IS FALSE
                  AND a."instanceId" IN (
                      SELECT i.id FROM instance AS i WHERE i."locationId" IN (
                          SELECT l.id FROM location AS l WHERE l.name = n.name))
            ) AS users
        ) FROM (SELECT DISTINCT name FROM location) AS n
    """,
    "activeInstancesByLocation": """
        SELECT n.name, (
            SELECT count(*) FROM instance AS i
            WHERE i.ended IS FALSE AND i."locationId" IN (
                SELECT l.id FROM location AS l WHERE l.name = n.name)
        ) FROM (SELECT DISTINCT name FROM location) AS n
    """,
}


def _id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-cli-location-test:{name}")


def independent_counts(conn: psycopg.Connection[tuple[object, ...]], metric: str) -> dict[str, int]:
    """Per location name, the independent query's nonzero counts."""
    rows = conn.execute(INDEPENDENT[metric]).fetchall()  # type: ignore[call-overload]
    return {str(name): int(str(count)) for name, count in rows if int(str(count)) > 0}


def load(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Insert the dataset into a database that has the iR Engine schema."""
    insert_platform_rows(conn, rows())


def load_mysql(conn: Any) -> None:
    """Insert the same rows into a MySQL/MariaDB database with the iR Engine schema (PyMySQL)."""
    from tests.platform_data import insert_mysql

    insert_mysql(conn, rows())


def rows() -> list[tuple[str, dict[str, Any]]]:
    """The dataset as (table, column -> value) in insertion order."""
    return list(_rows())


def _rows() -> Iterator[tuple[str, dict[str, Any]]]:
    t = SLOT - timedelta(hours=2)
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        yield "user", {"id": _id(user), "name": user, "createdAt": t, "updatedAt": t}
    # (key, name, slug)
    locations = [
        ("L1", "Lobby", "lobby"),
        ("L2", "Arena", "arena"),
        ("L3", "Garden", "garden"),
        ("L4", "Empty", "empty"),  # no instance at all: no row
        ("L5", "Arena", "arena-2"),  # same name as L2
    ]
    for key, name, slug in locations:
        yield (
            "location",
            {
                "id": _id(key),
                "name": name,
                "slugifiedName": slug,
                "createdAt": t,
                "updatedAt": t,
            },
        )
    # (key, location, channel, ended)
    instances = [
        ("i1", "L1", None, False),
        ("i2", "L1", None, False),
        ("i3", "L2", None, False),
        ("i4", "L3", None, True),  # ended: not an active instance
        ("i5", "L5", None, False),
        ("i6", "L3", None, None),  # ended unknown: not "ended = false"
        ("i7", None, "c1", False),  # a channel instance
    ]
    for key, location, channel, ended in instances:
        yield (
            "instance",
            {
                "id": _id(key),
                "roomCode": key,
                "locationId": _id(location) if location else None,
                "channelId": channel,
                "ended": ended,
                "createdAt": t,
                "updatedAt": t,
            },
        )
    # (key, user, instance, isChannel, ended)
    attendance = [
        ("a1", "u1", "i1", False, False),
        ("a2", "u1", "i2", False, False),  # the same user in another Lobby instance
        ("a3", "u2", "i2", False, False),
        ("a4", "u3", "i3", False, False),
        ("a5", "u3", "i5", False, False),  # the same user in the other "Arena"
        ("a6", "u4", "i3", False, True),  # left
        ("a7", "u5", "i4", False, False),  # still attending an ended instance: counts
        ("a8", "u6", "i7", True, False),  # a channel
        ("a9", "u2", "i1", None, False),  # isChannel unknown
        ("a10", None, "i1", False, False),  # no user
        ("a11", "u4", None, False, False),  # no instance
    ]
    for key, user, instance, is_channel, ended in attendance:
        yield (
            "instance-attendance",
            {
                "id": _id(key),
                "userId": _id(user) if user else None,
                "instanceId": _id(instance) if instance else None,
                "isChannel": is_channel,
                "ended": ended,
                "createdAt": t,
                "updatedAt": t,
            },
        )
