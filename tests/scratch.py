"""Scratch databases on a PostgreSQL server the caller administers (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo


def with_db(dsn: str, dbname: str) -> str:
    """The same server, another database."""
    return make_conninfo(dsn, dbname=dbname)


@contextlib.contextmanager
def scratch_database(admin: str, prefix: str, keep: bool = False) -> Iterator[str]:
    """A new empty database on the admin's server, dropped (sessions and all) afterwards
    unless ``keep`` (then its name goes to stderr)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_db(admin, name)
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
