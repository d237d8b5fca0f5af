"""PostgreSQL connections (psycopg): connecting with retries and time limits, error mapping,
grant hints."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from analytics_cli.dsn import describe, dsn_secrets, one_line, scheme_hint, scrub
from analytics_cli.errors import ConfigError, DatabaseError, StoreError

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings
    from analytics_cli.engines.base import Job

APPLICATION_NAME = "analytics-cli"


# SQLSTATE 40001 where nothing is written: a hot standby cancelled the query (or ended its
# session) because replaying the primary's changes had to remove rows the query could see.
RECOVERY_CONFLICT = "40001"
RECOVERY_CONFLICT_HINT = (
    "hint: on a hot standby, replay cancelled the query; raise max_standby_streaming_delay "
    "or set hot_standby_feedback = on"
)


def error_line(exc: Exception) -> str:
    """A database error as one line: the server's primary message when there is one."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    line = one_line(primary or str(exc))
    if getattr(exc, "sqlstate", None) == RECOVERY_CONFLICT:
        return f"{line} ({RECOVERY_CONFLICT_HINT})"
    return lock_wait_line(exc, line)


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
        raise ConfigError(
            f"invalid {purpose} connection string: {scrub(one_line(str(exc)), secrets)}",
            hint=scheme_hint(dsn),
        ) from None
    except UnicodeDecodeError:
        # libpq decoded a percent-encoded value into bytes that are not UTF-8 ("%80").
        raise ConfigError(
            f"invalid {purpose} connection string: a percent-encoded value is not UTF-8",
            hint="encode each byte of a UTF-8 character (é is %C3%A9)",
        ) from None
    extra: dict[str, Any] = {}
    if "application_name" not in params:
        extra["application_name"] = APPLICATION_NAME
    if "connect_timeout" not in params:
        extra["connect_timeout"] = max(1, int(settings.connect_timeout.total_seconds()))
    attempt = 0
    while True:
        try:
            # prepare_threshold=None: no server-side prepared statements. Behind a pooler in
            # transaction mode the next transaction may run on another server connection (or
            # share one with another client): "_pg3_0" would be missing, or already exist.
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


INSUFFICIENT_PRIVILEGE = "42501"


def database_error(
    exc: Exception, dsn: str | None, *, doing: str, refused: str | None = None
) -> DatabaseError:
    """Wrap a psycopg error into a one-line DatabaseError with secrets removed.

    ``refused`` is the hint for a server that denies a privilege (``grant_hint``).
    """
    hint = refused if getattr(exc, "sqlstate", None) == INSUFFICIENT_PRIVILEGE else None
    if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
        # The server's primary message only: the statement's text around it says nothing.
        line = scrub(error_line(exc), dsn_secrets(dsn))
        return DatabaseError(f"{doing}: {line}", hint=LOCK_WAIT_HINT)
    return DatabaseError(f"{doing}: {scrub(one_line(str(exc)), dsn_secrets(dsn))}", hint=hint)


def grant_hint(what: str, privileges: str, table: str, dsn: str | None) -> str:
    """``what`` needs ``privileges`` on the store table, and the GRANT that gives them, naming
    the database (PostgreSQL grants inside a database)."""
    import getpass
    import os

    from psycopg.conninfo import conninfo_to_dict

    needs = privileges.replace(", ", " and ")
    try:
        conninfo = conninfo_to_dict(dsn or "")
    except Exception:
        conninfo = {}
    # libpq's own defaults when the connection string names no user or database.
    role = str(conninfo.get("user") or os.environ.get("PGUSER") or getpass.getuser())
    database = str(conninfo.get("dbname") or os.environ.get("PGDATABASE") or role)
    quoted = role if role.isidentifier() and role.islower() else '"' + role.replace('"', '""') + '"'
    return (
        f"{what} needs {needs} on {table} in database {database}: "
        f"GRANT {privileges} ON {table} TO {quoted}"
    )


def set_statement_timeout(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Bound every statement of the current transaction (``SET LOCAL``: nothing outlives it).

    A wait for a lock gives up a little before the statement timeout would, so that a
    statement stuck behind another session's lock is named as a lock wait, not a slow query.
    """
    timeout_ms = int(settings.statement_timeout.total_seconds() * 1000)
    conn.execute(f"SET LOCAL statement_timeout = {timeout_ms:d}")
    conn.execute(f"SET LOCAL lock_timeout = {lock_timeout_ms(timeout_ms):d}")


def lock_timeout_ms(statement_ms: int) -> int:
    """The lock wait allowed within a statement of ``statement_ms``: nine tenths of it."""
    return max(statement_ms * 9 // 10, 1)


LOCK_NOT_AVAILABLE = "55P03"
LOCK_WAIT_HINT = (
    "another session holds a lock this statement needs (a long transaction, a LOCK TABLE, "
    "a migration); find it in pg_locks / pg_stat_activity"
)


def lock_wait_line(exc: Exception, line: str) -> str:
    """``line``, saying so when the error is a lock wait that ran out."""
    if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
        return f"gave up waiting for a lock held by another session ({line})"
    return line


@contextmanager
def session(dsn: str, settings: Settings, job: Job) -> Iterator[psycopg.Connection[Any]]:
    """A PostgreSQL connection for one job: connect (with retries), a first transaction
    bounded by the statement timeout, read-only if asked; any database error becomes a
    one-line DatabaseError starting with ``doing``. Committed when the job ends without an
    error, rolled back otherwise; the connection is closed either way."""
    import psycopg

    # Store failures are typed apart: a cycle whose store fails can still be spooled.
    error = StoreError if job.side == "store" else DatabaseError
    try:
        conn = connect(dsn, settings, purpose=job.side, retries=job.retries)
    except StoreError:
        raise
    except DatabaseError as exc:
        raise error(str(exc), hint=exc.hint) from None
    try:
        with conn:
            if job.read_only:
                conn.read_only = True
            if job.repeatable_read:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            set_statement_timeout(conn, settings)
            yield conn
    except psycopg.Error as exc:
        raise store_or_database_error(
            exc, dsn, side=job.side, doing=job.doing, refused=job.refused
        ) from None


def store_or_database_error(
    exc: Exception, dsn: str | None, *, side: str, doing: str, refused: str | None
) -> DatabaseError:
    """A database error of one side as one line; ``refused`` is the hint (grant_hint) when
    the server denies a privilege. A store failure is a StoreError (the cycle may be
    spooled), unless a privilege is missing: that needs an operator, not a later run."""
    mapped = database_error(exc, dsn, doing=doing, refused=refused)
    denied = getattr(exc, "sqlstate", None) == INSUFFICIENT_PRIVILEGE
    error = StoreError if side == "store" and not denied else DatabaseError
    return error(str(mapped), hint=mapped.hint)
