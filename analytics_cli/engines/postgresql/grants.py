"""The store account's privileges on a PostgreSQL table, as ``config check`` reports them."""

from __future__ import annotations

from typing import Any

from analytics_cli.engines.postgresql.names import regclass_text
from analytics_cli.engines.shapes import WRITES


def privileges(conn: Any, table: str, exists: bool) -> set[str]:
    """Of INSERT, UPDATE, DELETE (and CREATE in the table's schema when the table is absent:
    the first collect creates it), the ones the session's account holds."""
    if not exists:
        schema = table.split(".")[0] if "." in table else None
        row = conn.execute(
            "SELECT has_schema_privilege(coalesce(%s, current_schema()), 'CREATE')", (schema,)
        ).fetchone()
        return {"CREATE"} if row and row[0] else set()
    name = regclass_text(conn, table)
    row = conn.execute(
        "SELECT has_table_privilege(%s, 'INSERT'), has_table_privilege(%s, 'UPDATE'), "
        "has_table_privilege(%s, 'DELETE')",
        (name, name, name),
    ).fetchone()
    return {p for p, held in zip(WRITES, row or (), strict=False) if held}
