"""The iR Engine's own analytics table in its MySQL/MariaDB database: its Layout, grants, prune.

Only that table is written on MySQL (the native analytics-cli table is PostgreSQL's): it is
never created, altered or indexed. Rows carry UTC wall time (``datetime``, no zone; the
session's time zone is ``+00:00``). Runs are serialised per slot by a named lock
(``GET_LOCK``), and the presence check and the inserts share one transaction after it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.irengine import (
    EARLIEST,
    IR_ENGINE,
    LATEST,
    accept,
    fit_count,
    missing_table,
    refuse_rows_with_metadata,
)
from analytics_cli.engines.shapes import WRITES, Key, SlotBusy
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.samples import Outcome

# The table the platform's knex migration creates, as information_schema names its types
# (MariaDB and MySQL 5.7 show int(11), MySQL 8 int: the display width is dropped).
SHAPE = (
    ("id", "char(36)"),
    ("count", "int"),
    ("type", "varchar(255)"),
    ("createdAt", "datetime"),
    ("updatedAt", "datetime"),
)
SHAPE_TEXT = "id char(36), count int, type varchar(255), createdAt, updatedAt"


def quote(name: str) -> str:
    """A table name in backticks; ``schema.table`` quoted part by part."""
    from analytics_cli.engines.mysql.connect import quote_name

    return ".".join(quote_name(part) for part in name.split(".", 1))


def naive(moment: datetime) -> datetime:
    """UTC wall time without a zone, whole seconds (what a ``datetime`` column holds)."""
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def aware(value: datetime) -> datetime:
    """A ``datetime`` column's UTC wall time as an aware datetime."""
    return value.replace(tzinfo=UTC)


def table_shape(conn: Any, table: str) -> list[tuple[str, str]] | None:
    """The table's (column, type) pairs in order, or None when it does not exist."""
    import re

    schema, _, name = table.rpartition(".")
    rows = conn.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (schema or None, name),
    ).fetchall()
    if not rows:
        return None
    return [(str(c), re.sub(r"^int\(\d+\)", "int", str(t).lower())) for c, t in rows]


def detect(conn: Any, settings: Settings) -> MySQLIrEngineLayout | None:
    """The iR Engine layout of the table, None when it does not exist; any other shape, or
    ``layout = "native"``, is refused (ConfigError): the native store is PostgreSQL."""
    shape = table_shape(conn, settings.table)
    if shape is None:
        return None
    if sorted(shape) != sorted(SHAPE):
        raise ConfigError(
            f"table {settings.table!r} in the MySQL store is not the iR Engine's analytics "
            f"table ({SHAPE_TEXT}); a MySQL store holds only that table",
            hint="point [store] table at the platform's analytics table, or [store] dsn at "
            "a PostgreSQL database for an analytics-cli table",
        )
    accept(settings, SHAPE_TEXT)  # refuses layout = "native", says once what was found
    return MySQLIrEngineLayout(settings.table)


def ensure(conn: Any, settings: Settings) -> MySQLIrEngineLayout:
    """The platform's table as it is: never created here."""
    layout = detect(conn, settings)
    if layout is not None:
        return layout
    if settings.layout == IR_ENGINE:
        raise missing_table(settings)
    raise ConfigError(
        f"table {settings.table!r} does not exist in the MySQL store, and analytics-cli "
        "creates its own table only on PostgreSQL",
        hint="point [store] table at the iR Engine's analytics table (with layout = "
        '"ir-engine"), or [store] dsn at a PostgreSQL database',
    )


class MySQLIrEngineLayout:
    """The platform's table on MySQL/MariaDB: no unique key (none is added), integer counts."""

    name = IR_ENGINE
    time_column = "createdAt"
    insertion_order: str | None = None  # uuid ids: no order

    def __init__(self, table: str) -> None:
        self.table = table

    def refuse(self, settings: Settings, specs: Sequence[MetricSpec]) -> None:
        """Dimensional metrics and [[source]] tables: the table has no metadata column."""
        refuse_rows_with_metadata(settings, specs)

    def fit(self, outcome: Outcome) -> Outcome:
        """Whole numbers within the int column's range; anything else fails that metric."""
        return fit_count(outcome)

    def relation(self) -> Any:
        """None: the MySQL store's readers read the table by name."""
        return None

    def gaps(self, conn: Any, since: Any, until: Any, types: Any = None) -> int:
        """How many rows in [since, until) have a type but no count (a nullable column)."""
        names = list(types) if types is not None else []
        narrow = f" AND type IN ({', '.join(['%s'] * len(names))})" if names else ""
        if types is not None and not names:
            return 0
        row = conn.execute(
            f"SELECT COUNT(*) FROM {quote(self.table)} WHERE type IS NOT NULL "
            f"AND count IS NULL AND createdAt >= %s AND createdAt < %s{narrow}",
            (naive(since or EARLIEST), naive(until or LATEST), *names),
        ).fetchone()
        return int(row[0]) if row else 0

    def lock(self, conn: Any, settings: Settings, slot: datetime) -> None:
        """Take the slot's named lock until the transaction ends; SlotBusy after the wait.

        The wait is the advisory lock's on PostgreSQL: twice the statement time limit, at
        least a minute. The name is hashed: MySQL allows 64 characters.
        """
        digest = hashlib.sha1(f"{self.table}:{slot.isoformat()}".encode()).hexdigest()
        name = f"analytics-cli:slot:{digest}"
        wait = int(max(settings.statement_timeout.total_seconds() * 2, 60))
        # The statement limit would end the wait first: lift it for this one statement.
        statement = (
            "SET STATEMENT max_statement_time = 0 FOR SELECT GET_LOCK(%s, %s)"
            if conn.mariadb
            else "SELECT /*+ MAX_EXECUTION_TIME(0) */ GET_LOCK(%s, %s)"
        )
        row = conn.execute(statement, (name, wait)).fetchone()
        if not row or row[0] != 1:
            raise SlotBusy
        conn.locks.append(name)

    def present(
        self, conn: Any, slot: datetime, jobs: Sequence[tuple[MetricSpec, str | None]]
    ) -> set[Key]:
        """Jobs whose type already has a row whose ``createdAt`` is this slot's start."""
        rows = conn.execute(
            f"SELECT DISTINCT type FROM {quote(self.table)} WHERE createdAt = %s", (naive(slot),)
        ).fetchall()
        types = {r[0] for r in rows if r[0] is not None}
        return {(spec.type, name) for spec, name in jobs if spec.type in types}

    def stored_slots(
        self,
        conn: Any,
        since: datetime,
        until: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[tuple[str, str | None, datetime]]:
        """Types with a row at each slot start (``createdAt``) in the window."""
        types = sorted({spec.type for spec, _ in jobs})
        if not types:
            return set()
        marks = ", ".join(["%s"] * len(types))
        rows = conn.execute(
            f"SELECT DISTINCT type, createdAt FROM {quote(self.table)} "
            f"WHERE type IN ({marks}) AND createdAt >= %s AND createdAt <= %s",
            (*types, naive(since), naive(until)),
        ).fetchall()
        return {(str(t), None, aware(at)) for t, at in rows}

    def write(
        self,
        conn: Any,
        slot: datetime,
        collected_at: datetime,
        source: str | None,
        outcomes: Sequence[Outcome],
        *,
        replace: bool,
    ) -> dict[str, bool]:
        """New rows with new UUIDs in one INSERT; ``replace`` updates the slot's rows in
        place (same ids) in one UPDATE: three round trips at most."""
        from analytics_cli.samples import Sample

        samples = [o for o in outcomes if isinstance(o, Sample)]
        if not samples:
            return {}
        table, at, updated = quote(self.table), naive(slot), naive(collected_at)
        rest = samples
        if replace:
            found = {
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT type FROM {table} WHERE createdAt = %s", (at,)
                ).fetchall()
            }
            old = [s for s in samples if s.type in found]
            if old:
                cases = " ".join(["WHEN %s THEN %s"] * len(old))
                marks = ", ".join(["%s"] * len(old))
                values: list[Any] = [v for s in old for v in (s.type, int(s.count))]
                conn.execute(
                    f"UPDATE {table} SET count = CASE type {cases} END, updatedAt = %s "
                    f"WHERE createdAt = %s AND type IN ({marks})",
                    (*values, updated, at, *(s.type for s in old)),
                )
            rest = [s for s in samples if s.type not in found]
        if rest:
            conn.executemany(
                f"INSERT INTO {table} (id, count, type, createdAt, updatedAt) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(str(uuid.uuid4()), int(s.count), s.type, at, updated) for s in rest],
            )
        return {s.type: True for s in samples}


def privileges(conn: Any, table: str) -> set[str]:
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


# MySQL/MariaDB errors of SQLSTATE classes 22 and 23: null in a NOT NULL column, duplicate
# key, out of range, truncated, incorrect value or string, too long, foreign key, division
# by zero, invalid JSON, a failed CHECK (MySQL 3819, MariaDB 4025).
REFUSALS = frozenset(
    {
        1048,
        1062,
        1169,
        1216,
        1217,
        1264,
        1265,
        1292,
        1365,
        1366,
        1406,
        1451,
        1452,
        1690,
        3140,
        3819,
        4025,
    }
)


@contextmanager
def refusals() -> Iterator[None]:
    """Inside: a row the store refuses for its content raises Refused, not a store error.

    PyMySQL drops the SQLSTATE and maps only some numbers to DataError and IntegrityError
    (MariaDB's failed CHECK, 4025, arrives as an OperationalError): the numbers of SQLSTATE
    classes 22 and 23 decide. A lost connection, a read-only or full store, a lock or
    statement timeout are none of these: they are outages.
    """
    import pymysql

    from analytics_cli.engines.mysql.connect import code, message
    from analytics_cli.errors import Refused

    try:
        yield
    except UnicodeEncodeError as exc:
        raise Refused(f"text is not valid Unicode ({exc.reason})") from None
    except pymysql.err.MySQLError as exc:
        if isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError) or (
            code(exc) in REFUSALS
        ):
            raise Refused(message(exc, frozenset())) from None
        raise


def prune(
    conn: Any,
    settings: Settings,
    cutoff: datetime,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Delete rows older than the cutoff, ``batch_size`` at a time, each batch committed on
    its own (short row locks; collect keeps inserting). Returns (rows, batches).

    A failure says how many rows were deleted before it, and for an account without DELETE
    the grant it needs.
    """
    import pymysql

    from analytics_cli.engines.mysql.connect import DENIED, code, grant_hint, message
    from analytics_cli.errors import DatabaseError

    table = settings.table
    deleted = batches = 0
    conn.commit()
    try:
        while True:
            cur = conn.execute(
                f"DELETE FROM {quote(table)} WHERE createdAt < %s LIMIT %s",
                (naive(cutoff), batch_size),
            )
            conn.commit()
            batches += 1
            deleted += max(int(cur.rowcount), 0)
            if progress is not None:
                progress(deleted)
            if cur.rowcount < batch_size:
                return deleted, batches
    except pymysql.err.Error as exc:
        refused = grant_hint("prune", "DELETE", table, settings.store_dsn or "")
        raise DatabaseError(
            f"prune stopped after {deleted} rows: {message(exc, conn.params.secrets)}",
            hint=refused if code(exc) in DENIED else None,
        ) from None
