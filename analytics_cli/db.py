"""Connections: DSN resolution and redaction, timeouts, retries; the only module that connects."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from analytics_cli.dsn import describe, dsn_secrets, one_line, redact_dsn, scrub
from analytics_cli.errors import ConfigError, DatabaseError, StoreError

# Re-exported: the redaction helpers live in dsn.py, a leaf every layer may import.
__all__ = [
    "connect",
    "database_error",
    "describe",
    "dsn_secrets",
    "error_line",
    "one_line",
    "redact_dsn",
    "resolved",
    "scrub",
    "session",
    "set_statement_timeout",
    "store_session",
]

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config import Settings

APPLICATION_NAME = "analytics-cli"


def error_line(exc: Exception) -> str:
    """A database error as one line: the server's primary message when there is one."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return one_line(primary or str(exc))


def connect(
    dsn: str,
    settings: Settings,
    *,
    purpose: str,
    autocommit: bool = False,
    retries: int = 0,
) -> psycopg.Connection[Any]:
    """Open a connection with application_name and connect timeout; retry connection errors."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    secrets = dsn_secrets(dsn)
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = scrub(one_line(str(exc)), secrets)
        if secrets or "password" in dsn.lower():
            # Unparsable text may hold a password the parser could not delimit: quote none of it.
            reason = re.sub(r'"[^"]{2,}"', '"..."', reason)
        raise ConfigError(f"invalid {purpose} connection string: {reason}") from None
    extra: dict[str, Any] = {}
    if "application_name" not in params:
        extra["application_name"] = APPLICATION_NAME
    if "connect_timeout" not in params:
        extra["connect_timeout"] = max(1, int(settings.connect_timeout.total_seconds()))
    attempt = 0
    while True:
        try:
            # No server-side prepared statements: they outlive the transaction, which a
            # transaction-pooling pgbouncer hands to another client ("_pg3_0 already exists").
            return psycopg.connect(dsn, autocommit=autocommit, prepare_threshold=None, **extra)
        except psycopg.OperationalError as exc:
            if attempt < retries:
                # Bounded backoff: 1 s, 2 s, 4 s ... nothing has been written yet.
                time.sleep(min(2.0**attempt, 8.0))
                attempt += 1
                continue
            raise DatabaseError(
                f"cannot connect to the {purpose} database ({describe(dsn)}): "
                f"{scrub(one_line(str(exc)), secrets)}"
            ) from None


def database_error(exc: Exception, dsn: str | None, *, doing: str) -> DatabaseError:
    """Wrap a psycopg error into a one-line DatabaseError with secrets removed."""
    return DatabaseError(f"{doing}: {scrub(one_line(str(exc)), dsn_secrets(dsn))}")


def set_statement_timeout(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Bound every statement of the current transaction (``SET LOCAL``: nothing outlives it)."""
    timeout_ms = int(settings.statement_timeout.total_seconds() * 1000)
    conn.execute(f"SET LOCAL statement_timeout = {timeout_ms:d}")


@contextmanager
def session(
    settings: Settings,
    *,
    side: str,
    doing: str,
    read_only: bool = False,
    repeatable_read: bool = False,
    dsn: str | None = None,
    retries: int | None = None,
) -> Iterator[psycopg.Connection[Any]]:
    """The one way a job opens a connection: connect (with retries), a first transaction
    bounded by the statement timeout, read-only if asked; any database error becomes a
    one-line DatabaseError starting with ``doing``. Committed when the job ends without an
    error, rolled back otherwise; the connection is closed either way."""
    import psycopg

    target = (
        dsn if dsn is not None else (settings.store_dsn if side == "store" else settings.source_dsn)
    )
    assert target is not None
    # Store failures are typed apart: a cycle whose store fails can still be spooled.
    error = StoreError if side == "store" else DatabaseError
    try:
        conn = connect(
            target, settings, purpose=side, retries=settings.retries if retries is None else retries
        )
    except StoreError:
        raise
    except DatabaseError as exc:
        raise error(str(exc), hint=exc.hint) from None
    try:
        with conn:
            if read_only:
                conn.read_only = True
            if repeatable_read:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            set_statement_timeout(conn, settings)
            yield conn
    except psycopg.Error as exc:
        raise error(str(database_error(exc, target, doing=doing))) from None


def store_session(
    settings: Settings,
    *,
    doing: str,
    read_only: bool = False,
    repeatable_read: bool = False,
    retries: int | None = None,
) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
    """A session on the store database."""
    return session(
        settings,
        side="store",
        doing=doing,
        read_only=read_only,
        repeatable_read=repeatable_read,
        retries=retries,
    )


@contextmanager
def resolved(settings: Settings, *, announce: Any = None) -> Iterator[Settings]:
    """Settings with concrete DSNs; starts the embedded server when none is configured."""
    if not settings.embedded:
        yield settings
        return
    from analytics_cli import embedded

    with embedded.server() as server:
        if announce is not None and not server.nested:
            announce(f"using the embedded PostgreSQL in {server.home} (no connection string set)")
        yield replace(
            settings,
            source_dsn=server.dsn(embedded.SOURCE_DB),
            source_dsn_origin="embedded",
            store_dsn=server.dsn(embedded.STORE_DB),
            store_dsn_origin="embedded",
        )
