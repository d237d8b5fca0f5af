"""MySQL/MariaDB connections over PyMySQL, for sources and the ir-engine store alike."""

from __future__ import annotations

import importlib.util
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from analytics_cli.dsn import one_line, scrub
from analytics_cli.engines.mysql.flavor import flavor_of
from analytics_cli.errors import DatabaseError, MissingExtra, StoreError

if TYPE_CHECKING:
    import pymysql

    from analytics_cli.config.schema import Settings
    from analytics_cli.engines.base import Job
    from analytics_cli.engines.mysql.params import MySQLParams

APPLICATION_NAME = "analytics-cli"
# Server errors that retrying cannot fix: wrong account, password or database.
_NO_RETRY = {1044, 1045, 1049, 1698}


def require_pymysql(what: str = "sources") -> None:
    """MissingExtra (exit 2) naming the extra to install when PyMySQL is missing."""
    try:
        found = importlib.util.find_spec("pymysql") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtra("pymysql", f"mysql:// and mariadb:// {what} need PyMySQL")


def quote_name(name: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def connect(
    params: MySQLParams,
    settings: Settings,
    *,
    purpose: str,
    retries: int = 0,
    autocommit: bool = True,
) -> pymysql.Connection[Any]:
    """Open a connection (one statement per call, never several); retry connection errors."""
    import pymysql
    from pymysql.constants import CLIENT

    # A socket read waits at most as long as the longest statement, plus a margin.
    wait = int(settings.statement_timeout.total_seconds()) + 30
    timeout = max(1, int(settings.connect_timeout.total_seconds()))
    attempt = 0
    while True:
        try:
            conn = pymysql.connect(
                **params.connect_args(),
                autocommit=autocommit,
                connect_timeout=timeout,
                read_timeout=wait,
                write_timeout=wait,
                program_name=APPLICATION_NAME,
                local_infile=False,
                client_flag=0,
                defer_connect=True,
            )
            conn.connect(_unix_socket(params.unix_socket, timeout) if params.unix_socket else None)
        except (pymysql.err.Error, OSError) as exc:
            found = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if attempt < retries and found not in _NO_RETRY:
                # Bounded backoff: 1 s, 2 s, 4 s ... nothing has been read yet.
                time.sleep(min(2.0**attempt, 8.0))
                attempt += 1
                continue
            raise DatabaseError(
                f"cannot connect to the {purpose} database ({params.describe()}): "
                f"{message(exc, params.secrets)}",
                hint=_denied_hint(params, str(exc)) if found == 1045 else None,
            ) from None
        if conn.client_flag & CLIENT.MULTI_STATEMENTS:
            conn.close()
            raise DatabaseError("the MySQL connection allows several statements per call; refused")
        return conn


def _denied_hint(params: MySQLParams, text: str) -> str | None:
    """A refused login that the server saw coming from 'localhost': MariaDB's anonymous
    ''@'localhost' account (a fresh mariadb-install-db has one) takes such logins before
    a 'user'@'%' account."""
    if "@'localhost'" not in text:
        return None
    user = params.user or "analytics"
    return (
        f"if the account is '{user}'@'%': an anonymous ''@'localhost' account takes local "
        f"logins first; create '{user}'@'localhost' too (same password and grants), or drop "
        "the anonymous accounts"
    )


def _unix_socket(path: str, timeout: int) -> socket.socket:
    """A connected unix socket; closed again when the connect fails (PyMySQL would leak it)."""
    import pymysql

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise pymysql.err.OperationalError(
            2002, f"Can't connect to local server through socket '{path}' ({exc.strerror})"
        ) from None
    return sock


def message(exc: BaseException, secrets: frozenset[str]) -> str:
    """A PyMySQL error as one line, the server's text without its code, secrets removed."""
    args = exc.args
    text = str(args[1]) if len(args) >= 2 and isinstance(args[0], int) else str(exc)
    return scrub(one_line(text), set(secrets)) or type(exc).__name__


def code(exc: BaseException) -> int | None:
    """The server's (or client's) error number of a PyMySQL error, None when it has none."""
    args = exc.args
    return args[0] if args and isinstance(args[0], int) else None


def grant_hint(what: str, privileges: str, table: str, dsn: str) -> str:
    """``what`` needs ``privileges`` on the store table, and the GRANT that gives them, naming
    the table as ``database.table`` (MySQL grants name the database)."""
    import getpass
    import re

    from analytics_cli.engines.mysql.params import parse

    needs = privileges.replace(", ", " and ")
    params = parse(dsn)
    account = params.user or getpass.getuser()

    def name(part: str) -> str:
        plain = re.fullmatch(r"[A-Za-z0-9_$]+", part) and not part.isdigit()
        return part if plain else "`" + part.replace("`", "``") + "`"

    parts = table.split(".")
    if len(parts) == 1 and params.database:
        parts.insert(0, params.database)
    where = ".".join(name(p) for p in parts)
    return f"{what} needs {needs} on {where}: GRANT {privileges} ON {where} TO '{account}'@'%'"


# Errors that say the account lacks a privilege: an operator must grant it, no later run can.
DENIED = {1044, 1142, 1143, 1227}


class Session:
    """One MySQL/MariaDB store connection, not autocommit, with the calls the store code uses
    on psycopg: ``execute``, ``transaction()``, ``commit``, ``rollback``.

    Named locks (``GET_LOCK``) belong to the session, not the transaction: the ones taken in
    a ``transaction()`` are released when it ends, committed or rolled back.
    """

    engine = "mysql"

    def __init__(self, conn: pymysql.Connection[Any], params: MySQLParams) -> None:
        self.conn = conn
        self.params = params
        self.locks: list[str] = []
        self.mariadb = True
        # Whether a transaction() block is open, and how many savepoints lie inside it.
        self.outer = False
        self.depth = 0

    def execute(self, query: str, params: Any = None) -> Any:
        """Run one statement; the cursor holds its rows (buffered)."""
        cur = self.conn.cursor()
        cur.execute(query, params)
        return cur

    def executemany(self, query: str, rows: list[tuple[Any, ...]]) -> int:
        """One multi-row INSERT (PyMySQL folds ``INSERT … VALUES`` rows into one statement)."""
        with self.conn.cursor() as cur:
            return int(cur.executemany(query, rows) or 0)

    def stream(self, query: str, params: Any = None) -> Any:
        """Run one statement and hand its rows on as they arrive (unbuffered: flat memory)."""
        import pymysql.cursors

        cur = self.conn.cursor(pymysql.cursors.SSCursor)
        cur.execute(query, params)
        try:
            yield from cur
        finally:
            cur.close()

    def commit(self) -> None:
        """Commit the open transaction and release its named locks."""
        self.conn.commit()
        self.release()

    def rollback(self) -> None:
        """Roll the open transaction back and release its named locks."""
        self.conn.rollback()
        self.release()

    def release(self) -> None:
        """Release every named lock this session took."""
        while self.locks:
            name = self.locks.pop()
            with self.conn.cursor() as cur:
                cur.execute("SELECT RELEASE_LOCK(%s)", (name,))

    def transaction(self) -> Any:
        """Committed when the block ends, rolled back when it raises (locks released either way).

        Inside another block it is a savepoint, as psycopg's nested ``transaction()`` is: a
        raise rolls back only what the inner block did.
        """
        from contextlib import contextmanager

        @contextmanager
        def block() -> Any:
            try:
                yield self
            except BaseException:
                if self.conn.open:
                    self.rollback()
                raise
            self.commit()

        @contextmanager
        def savepoint() -> Any:
            self.depth += 1
            name = f"analytics_cli_{self.depth}"
            self.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                if self.conn.open:
                    self.execute(f"ROLLBACK TO SAVEPOINT {name}")
                raise
            finally:
                self.depth -= 1
            self.execute(f"RELEASE SAVEPOINT {name}")

        if self.outer:
            return savepoint()
        self.outer = True

        @contextmanager
        def outermost() -> Any:
            try:
                with block():
                    yield self
            finally:
                self.outer = False

        return outermost()


def setup(session: Session, settings: Settings, *, read_only: bool) -> None:
    """UTC wall time, the statement time limit, and the isolation a job needs.

    Writers read committed rows (the presence check after the slot's lock sees what an
    earlier holder committed); readers see one snapshot for the whole job.
    """
    with session.conn.cursor() as cur:
        cur.execute("SELECT VERSION(), @@version_comment")
        version, comment = cur.fetchone() or ("", "")
        flavor = flavor_of(str(version), str(comment or ""))
        session.mariadb = flavor.mariadb
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(flavor.timeout_statement(settings.statement_timeout))
        if read_only:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        else:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")


@contextmanager
def session(dsn: str, settings: Settings, job: Job) -> Iterator[Session]:
    """A session on a mysql:// or mariadb:// database: connect, set the session up, run
    the job, commit it; any server error becomes one line starting with ``job.doing``."""
    side = job.side
    require_pymysql("stores" if side == "store" else "sources")
    import pymysql

    from analytics_cli.engines.mysql.params import parse

    params = parse(dsn)
    # Store failures are typed apart: a cycle whose store fails can still be spooled.
    error = StoreError if side == "store" else DatabaseError
    try:
        conn = connect(params, settings, purpose=side, retries=job.retries, autocommit=False)
    except DatabaseError as exc:
        raise error(str(exc), hint=exc.hint) from None
    own = Session(conn, params)
    try:
        setup(own, settings, read_only=job.read_only)
        yield own
        own.commit()
    except pymysql.err.Error as exc:
        denied = code(exc) in DENIED
        # A missing privilege needs an operator, not a later run: never spooled.
        cls = StoreError if side == "store" and not denied else DatabaseError
        raise cls(
            f"{job.doing}: {message(exc, params.secrets)}", hint=job.refused if denied else None
        ) from None
    finally:
        with suppress(Exception):
            conn.close()
