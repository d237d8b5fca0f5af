"""Monthly range partitions of the native store: created ahead, on demand, listed, dropped."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.postgresql.locks import lock_schema
from analytics_cli.engines.postgresql.names import NATIVE_COLUMNS, identifier, regclass_text
from analytics_cli.engines.shapes import Retention

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql


@dataclass(frozen=True)
class Partition:
    """One partition: its schema and name, its range [lower, upper) (None: unbounded)."""

    schema: str
    relname: str
    lower: datetime | None
    upper: datetime | None
    default: bool

    @property
    def name(self) -> str:
        """``schema.name`` as written in messages."""
        return f"{self.schema}.{self.relname}"

    def ident(self) -> sql.Identifier:
        """The partition as a quoted identifier."""
        from psycopg import sql

        return sql.Identifier(self.schema, self.relname)


def month_of(at: datetime) -> datetime:
    """The first instant (UTC) of the month holding ``at``."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    """The first instant of the month after ``month`` (itself a month start)."""
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def partition_name(table: str, month: datetime) -> str:
    """``table_pYYYYMM``, in the table's schema."""
    schema, dot, name = table.rpartition(".")
    # 63 bytes is PostgreSQL's identifier limit: keep the suffix, cut the stem.
    return f"{schema}{dot}{name[: 63 - 8]}_p{month:%Y%m}"


def default_name(table: str) -> str:
    """``table_default``: the partition of rows whose month has none of its own."""
    schema, dot, name = table.rpartition(".")
    return f"{schema}{dot}{name[: 63 - 8]}_default"


def _default(conn: psycopg.Connection[Any], table: str) -> Partition | None:
    for part in partitions(conn, table):
        if part.default:
            return part
    return None


# Per connection: table -> months seen with a committed partition, or None when the table
# is not partitioned. Prune only drops months no cycle writes to any more.
_covered: weakref.WeakKeyDictionary[Any, dict[str, set[datetime] | None]] = (
    weakref.WeakKeyDictionary()
)


def is_partitioned(conn: psycopg.Connection[Any], table: str) -> bool:
    """True when the table is a partitioned (parent) table."""
    row = conn.execute(
        "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)",
        (regclass_text(conn, table),),
    ).fetchone()
    return bool(row and row[0])


def partitions(conn: psycopg.Connection[Any], table: str) -> list[Partition]:
    """The table's partitions, oldest range first (unbounded or DEFAULT ones last)."""
    # The bounds are read back through pg_get_expr and cast by the server: no parsing of
    # a time zone dependent text here.
    rows = conn.execute(
        "SELECT n.nspname, c.relname, b[1]::timestamptz, b[2]::timestamptz, "
        "pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), "
        "$$FROM \\('([^']+)'\\) TO \\('([^']+)'\\)$$) AS b ON true "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY 3 NULLS LAST, 2",
        (regclass_text(conn, table),),
    ).fetchall()
    return [Partition(*row) for row in rows]


def _exists(conn: psycopg.Connection[Any], table: str, at: datetime) -> bool:
    """A partition whose range holds ``at`` exists (whatever its name)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), "
        "$$FROM \\('([^']+)'\\) TO \\('([^']+)'\\)$$) AS b "
        "WHERE i.inhparent = to_regclass(%s) AND b[1]::timestamptz <= %s "
        "AND %s < b[2]::timestamptz)",
        (regclass_text(conn, table), at, at),
    ).fetchone()
    return bool(row and row[0])


def create_month(
    conn: psycopg.Connection[Any], table: str, month: datetime, *, stem: str | None = None
) -> bool:
    """Create ``month``'s partition unless one exists (inside the caller's transaction, under
    the schema lock); True when created. ``stem``: the table name its partitions are named
    after, when that is not ``table`` (a table being built to replace another).

    Built apart, then attached: ATTACH takes only a SHARE UPDATE EXCLUSIVE lock on the parent,
    so concurrent inserts and reads go on (CREATE ... PARTITION OF would block them all until
    the transaction ends). The CHECK constraint spares ATTACH a scan; it is dropped after.
    The table's own CHECK constraints are copied: ATTACH refuses a partition without them.
    """
    from psycopg import sql

    lock_schema(conn, stem or table)
    if _exists(conn, table, month):
        return False
    upper = next_month(month)
    part = identifier(partition_name(stem or table, month))
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
            part, identifier(table)
        )
    )
    default = _default(conn, table)
    if default is not None:
        # The month's rows that landed in the DEFAULT partition move to their own; ATTACH
        # then finds none left there.
        conn.execute(
            sql.SQL(
                'WITH moved AS (DELETE FROM {d} WHERE "timestamp" >= %s AND "timestamp" < %s '
                "RETURNING {c}) INSERT INTO {p} ({c}) SELECT {c} FROM moved"
            ).format(d=default.ident(), p=part, c=_columns()),
            (month, upper),
        )
    conn.execute(
        sql.SQL(
            'ALTER TABLE {} ADD CONSTRAINT analytics_cli_bound CHECK ("timestamp" >= {} '
            'AND "timestamp" < {})'
        ).format(part, sql.Literal(month), sql.Literal(upper))
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            identifier(table), part, sql.Literal(month), sql.Literal(upper)
        )
    )
    conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT analytics_cli_bound").format(part))
    return True


def _columns() -> sql.Composed:
    from psycopg import sql

    return sql.SQL(", ").join(map(sql.Identifier, NATIVE_COLUMNS))


# How long a cycle waits to make a partition (another session's uncommitted rows in the
# DEFAULT partition hold it up) before it stores its rows in the DEFAULT partition instead.
CREATE_WAIT_MS = 1_000


def try_create_month(conn: psycopg.Connection[Any], table: str, month: datetime) -> bool | None:
    """``create_month`` in a savepoint; None when this role may not, or when its locks are
    not to be had at once (the rows then land in the DEFAULT partition: a cycle never fails
    or waits long for want of a partition)."""
    import psycopg

    row = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
    before = str(row[0]) if row else "0"
    created: bool | None
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (str(CREATE_WAIT_MS),))
            created = create_month(conn, table, month)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.LockNotAvailable):
        created = None
    # The caller's own bound on lock waits (the slot lock's) for the rest of its transaction.
    # Not after any other error: the connection may be gone, and a second error raised here
    # would hide the first one (the one the operator needs to see).
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (before,))
    return created


def cover(conn: psycopg.Connection[Any], table: str, slot: datetime) -> None:
    """Make sure ``slot``'s month has a partition before a write (a no-op when unpartitioned)."""
    known = _covered.setdefault(conn, {})
    if table not in known:
        known[table] = set() if is_partitioned(conn, table) else None
    months = known[table]
    month = month_of(slot)
    if months is None or month in months:
        return
    # Remembered only when it was already there: a partition made in this transaction is
    # gone again if the transaction rolls back.
    if try_create_month(conn, table, month) is False:
        months.add(month)


def ahead(conn: psycopg.Connection[Any], table: str, now: datetime) -> list[str]:
    """This month's and next month's partitions, created when missing; their names if created."""
    if not is_partitioned(conn, table):
        return []
    month = month_of(now)
    made = []
    for m in (month, next_month(month)):
        # Looked up first: the common case (both there) costs no savepoint and no lock.
        if not _exists(conn, table, m) and try_create_month(conn, table, m):
            made.append(partition_name(table, m))
    return made


def may_drop(conn: psycopg.Connection[Any], table: str) -> bool:
    """True when this role owns the table (dropping a partition needs that)."""
    row = conn.execute(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
        "WHERE oid = to_regclass(%s)",
        (regclass_text(conn, table),),
    ).fetchone()
    return bool(row and row[0])


def drop(conn: psycopg.Connection[Any], parts: list[Partition]) -> int:
    """Drop partitions in one statement (inside the caller's transaction); the rows they held."""
    from psycopg import sql

    if not parts:
        return 0
    # SHARE first: no write slips into them between the count and the drop; the parent's
    # exclusive lock is taken by the DROP alone, at the very end.
    for part in parts:
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(part.ident()))
    counts = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT count(*) AS n FROM {}").format(part.ident()) for part in parts
    )
    row = conn.execute(sql.SQL("SELECT sum(n) FROM ({}) AS c").format(counts)).fetchone()
    conn.execute(
        sql.SQL("DROP TABLE {}").format(sql.SQL(", ").join(part.ident() for part in parts))
    )
    return int(row[0]) if row and row[0] is not None else 0


def retention(conn: psycopg.Connection[Any], table: str, types: list[str]) -> Retention:
    """The oldest row (one index probe per type) and the partitions of a native table."""
    from psycopg import sql

    row = conn.execute(
        sql.SQL(
            'SELECT min(m) FROM unnest(%s::text[]) AS t(type), LATERAL (SELECT min("timestamp") '
            "AS m FROM {} AS s WHERE s.type = t.type) AS x"
        ).format(identifier(table)),
        (types,),
    ).fetchone()
    oldest = row[0] if row else None
    if not is_partitioned(conn, table):
        return Retention(oldest, False)
    bounded = [p for p in partitions(conn, table) if p.lower is not None]
    return Retention(
        oldest,
        True,
        len(bounded),
        bounded[0].lower if bounded else None,
        bounded[-1].lower if bounded else None,
    )
