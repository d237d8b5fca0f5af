"""Store table names as quoted identifiers (``schema.table`` allowed); a leaf of the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql


NATIVE_COLUMNS = ("id", "type", "count", "timestamp", "collected_at", "metadata")
# NaN compares above every number in PostgreSQL, so this leaves out NaN, both infinities and
# any count float8 (the charts) cannot hold.
FINITE = "count BETWEEN -1e300 AND 1e300"


def identifier(table: str) -> sql.Identifier:
    """The store table as a safely quoted identifier (``schema.table`` allowed)."""
    from psycopg import sql

    return sql.Identifier(*table.split("."))


def regclass_text(conn: psycopg.Connection[Any], table: str) -> str:
    """The table name quoted for ``to_regclass``."""
    return identifier(table).as_string(conn)
