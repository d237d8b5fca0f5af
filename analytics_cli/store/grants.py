"""The store account's privileges on the table, as ``config check`` reports them."""

from __future__ import annotations

from typing import Any

from analytics_cli.store.mysql import is_mysql
from analytics_cli.store.names import regclass_text

# What each use of the store writes with: a cycle inserts; --replace updates and deletes
# a slot's old rows; prune deletes, locking each batch (FOR UPDATE: UPDATE on PostgreSQL).
USES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("collect", ("INSERT",)),
    ("collect --replace", ("UPDATE", "DELETE")),
    ("prune", ("DELETE", "UPDATE")),
)
WRITES = ("INSERT", "UPDATE", "DELETE")


def privileges(conn: Any, table: str, exists: bool) -> set[str]:
    """Of INSERT, UPDATE, DELETE (and CREATE in the table's schema when the table is absent:
    the first collect creates it), the ones the session's account holds."""
    if is_mysql(conn):
        return _mysql(conn, table)
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


def _mysql(conn: Any, table: str) -> set[str]:
    """The privileges of CURRENT_USER() on the table: global, database or table grants."""
    schema, _, name = table.rpartition(".")
    grantee = (
        "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', "
        "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"
    )
    query = (
        f"SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee} "
        "UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
        f"WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = COALESCE(%s, DATABASE()) "
        "UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
        f"WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = COALESCE(%s, DATABASE()) "
        "AND TABLE_NAME = %s"
    )
    cur = conn.execute(query, (schema or None, schema or None, name))
    return {str(r[0]).upper() for r in cur.fetchall()} & set(WRITES)
