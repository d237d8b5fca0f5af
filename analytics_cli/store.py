"""The analytics table: schema, the slot lock, inserts, and the queries that read it back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from analytics_cli.metrics import Sample

NATIVE_COLUMNS = ("id", "type", "count", "timestamp", "collected_at", "metadata")


@cache
def _schema_template() -> str:
    return resources.files("analytics_cli").joinpath("schema.sql").read_text("utf-8")


def identifier(table: str) -> sql.Identifier:
    """The store table as a safely quoted identifier (``schema.table`` allowed)."""
    from psycopg import sql

    return sql.Identifier(*table.split("."))


def _regclass_text(conn: psycopg.Connection[Any], table: str) -> str:
    return identifier(table).as_string(conn)


def table_columns(conn: psycopg.Connection[Any], table: str) -> list[str] | None:
    """The table's column names in order, or None when it does not exist."""
    row = conn.execute("SELECT to_regclass(%s)::oid", (_regclass_text(conn, table),)).fetchone()
    if row is None or row[0] is None:
        return None
    cols = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (row[0],),
    ).fetchall()
    return [c[0] for c in cols]


def _foreign_table_error(table: str, columns: Sequence[str]) -> ConfigError:
    found = ", ".join(columns) if columns else "no columns"
    return ConfigError(
        f"table {table!r} already exists with columns ({found}), which is not the "
        f"analytics-cli layout ({', '.join(NATIVE_COLUMNS)}); it was left untouched",
        hint='point [store] table at another name, for example table = "analytics_cli"',
    )


def ensure_table(conn: psycopg.Connection[Any], table: str) -> bool:
    """Create the store table if missing (inside the caller's transaction); True if created."""
    from psycopg import sql

    # Serialise creation: concurrent first runs must not race on CREATE TABLE.
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"analytics-cli:schema:{table}",),
    )
    columns = table_columns(conn, table)
    if columns is not None:
        if sorted(columns) != sorted(NATIVE_COLUMNS):
            raise _foreign_table_error(table, columns)
        return False
    parts = table.split(".")
    if len(parts) == 2:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(parts[0])))
    conn.execute(sql.SQL(_schema_template()).format(table=identifier(table)))  # type: ignore[arg-type,unused-ignore]
    return True


def require_table(conn: psycopg.Connection[Any], table: str) -> bool:
    """Check a table to read from: True if it exists with the native layout, False if absent."""
    columns = table_columns(conn, table)
    if columns is None:
        return False
    if sorted(columns) != sorted(NATIVE_COLUMNS):
        raise _foreign_table_error(table, columns)
    return True


def lock_slot(conn: psycopg.Connection[Any], table: str, slot: datetime) -> None:
    """Take the transaction-scoped advisory lock of one slot of one table (waits for holders)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"analytics-cli:slot:{table}:{slot.isoformat()}",),
    )


def stored_types(conn: psycopg.Connection[Any], table: str, slot: datetime) -> set[str]:
    """Metric types that already have their plain (no dimensions) row for this slot."""
    from psycopg import sql

    query = sql.SQL(
        "SELECT DISTINCT type FROM {} WHERE \"timestamp\" = %s AND metadata = '{{}}'::jsonb"
    ).format(identifier(table))
    return {row[0] for row in conn.execute(query, (slot,))}


def insert_samples(
    conn: psycopg.Connection[Any],
    table: str,
    slot: datetime,
    collected_at: datetime,
    samples: Iterable[Sample],
    *,
    replace: bool = False,
) -> dict[str, bool]:
    """Insert one row per sample; returns type -> True if written, False if already there."""
    from psycopg import sql

    conflict = (
        "DO UPDATE SET count = EXCLUDED.count, collected_at = EXCLUDED.collected_at"
        if replace
        else "DO NOTHING"
    )
    query = sql.SQL(
        'INSERT INTO {} (type, count, "timestamp", collected_at, metadata) '
        "VALUES (%s, %s, %s, %s, %s::jsonb) "
        'ON CONFLICT (type, "timestamp", metadata) ' + conflict + " RETURNING type"
    ).format(identifier(table))
    result: dict[str, bool] = {}
    for sample in samples:
        row = conn.execute(
            query,
            (sample.type, sample.count, slot, collected_at, json.dumps(sample.metadata)),
        ).fetchone()
        result[sample.type] = row is not None
    return result


@dataclass(frozen=True)
class StoredRow:
    """One row of the analytics table as read back."""

    type: str
    count: Decimal
    timestamp: datetime
    metadata: dict[str, Any]
    collected_at: datetime


def known_types(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """Distinct metric types present in the store (uses the (type, timestamp) index)."""
    from psycopg import sql

    # A recursive skip-scan: one index probe per distinct type, fast on years of rows.
    query = sql.SQL(
        """
        WITH RECURSIVE t AS (
            (SELECT type FROM {table} ORDER BY type LIMIT 1)
            UNION ALL
            SELECT (SELECT type FROM {table} WHERE type > t.type ORDER BY type LIMIT 1)
            FROM t WHERE t.type IS NOT NULL
        )
        SELECT type FROM t WHERE type IS NOT NULL
        """
    ).format(table=identifier(table))
    return [row[0] for row in conn.execute(query)]


def slot_count(since: datetime, until: datetime, interval: timedelta) -> int:
    """How many slots of ``interval`` start in [since, until)."""
    from analytics_cli.timeutil import floor_slot

    first = floor_slot(since, interval)
    if first < since:
        first += interval
    if first >= until:
        return 0
    return int((until - first - timedelta(microseconds=1)) // interval) + 1
