"""The native store's write, called directly: the unique key and ON CONFLICT, not the cycle's
presence check, keep a slot's first value (two runs racing past the check end up here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from analytics_cli.engines.postgresql.native import NativeLayout, ensure_table
from analytics_cli.samples import Sample, Series
from tests.conftest import Databases

SLOT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
FIRST = SLOT + timedelta(minutes=1)
SECOND = SLOT + timedelta(minutes=2)
TABLE = "analytics"


@pytest.fixture
def store(dbs: Databases) -> Any:
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        ensure_table(conn, TABLE)
        yield conn


def rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        f'SELECT type, count, "timestamp", collected_at, metadata FROM {TABLE} ORDER BY id'
    ).fetchall()


def lobby(count: int) -> Sample:
    return Sample("usersByLocation", Decimal(count), {"location": "Lobby"})


def test_writing_a_slot_twice_keeps_the_first_row(store: psycopg.Connection[Any]) -> None:
    layout = NativeLayout(TABLE)
    first = layout.write(
        store,
        SLOT,
        FIRST,
        None,
        [Sample("activeInstances", Decimal(7)), Series("usersByLocation", (lobby(3),))],
        replace=False,
    )
    assert first == {"activeInstances": True, "usersByLocation": True}
    # The same slot again, other values, one new dimension value.
    hall = Sample("usersByLocation", Decimal(9), {"location": "Hall"})
    again = layout.write(
        store,
        SLOT,
        SECOND,
        None,
        [Sample("activeInstances", Decimal(8)), Series("usersByLocation", (lobby(4), hall))],
        replace=False,
    )
    # Written when any of its rows was: only Hall is new.
    assert again == {"activeInstances": False, "usersByLocation": True}
    assert rows(store) == [
        ("activeInstances", Decimal(7), SLOT, FIRST, {}),
        ("usersByLocation", Decimal(3), SLOT, FIRST, {"location": "Lobby"}),
        ("usersByLocation", Decimal(9), SLOT, SECOND, {"location": "Hall"}),
    ]
    # Nothing new at all: nothing written, nothing changed.
    unchanged = rows(store)
    none = layout.write(store, SLOT, SECOND, None, [Sample("activeInstances", Decimal(1))],
                        replace=False)  # fmt: skip
    assert none == {"activeInstances": False}
    assert rows(store) == unchanged


def test_replace_updates_the_value_and_drops_vanished_dimension_values(
    store: psycopg.Connection[Any],
) -> None:
    layout = NativeLayout(TABLE)
    hall = Sample("usersByLocation", Decimal(9), {"location": "Hall"})
    layout.write(
        store,
        SLOT,
        FIRST,
        None,
        [Sample("activeInstances", Decimal(7)), Series("usersByLocation", (lobby(3), hall))],
        replace=False,
    )
    replaced = layout.write(
        store,
        SLOT,
        SECOND,
        None,
        [Sample("activeInstances", Decimal(8)), Series("usersByLocation", (lobby(4),))],
        replace=True,
    )
    assert replaced == {"activeInstances": True, "usersByLocation": True}
    assert sorted(rows(store), key=lambda r: r[0]) == [
        ("activeInstances", Decimal(8), SLOT, SECOND, {}),
        ("usersByLocation", Decimal(4), SLOT, SECOND, {"location": "Lobby"}),
    ]
    # Another slot is another row.
    later = layout.write(store, SLOT + timedelta(minutes=30), SECOND, None,
                         [Sample("activeInstances", Decimal(1))], replace=False)  # fmt: skip
    assert later == {"activeInstances": True}
    assert len(rows(store)) == 3
    assert layout.write(store, SLOT, SECOND, None, [], replace=False) == {}
