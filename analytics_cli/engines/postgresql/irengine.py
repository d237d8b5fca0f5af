"""The ir-engine layout on PostgreSQL: the platform's own analytics table, used as it is."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.engines import irengine
from analytics_cli.engines.irengine import (
    EARLIEST,
    IR_ENGINE,
    LATEST,
    SHAPE_TEXT,
    fit_count,
    refuse_rows_with_metadata,
)
from analytics_cli.engines.postgresql.names import identifier, regclass_text
from analytics_cli.engines.shapes import Key

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.samples import Outcome

# The table the platform's knex migration creates, as PostgreSQL's format_type names it.
# Nullability and constraints are not part of the match: the columns and types are.
SHAPE = (
    ("id", "uuid"),
    ("count", "integer"),
    ("type", "character varying(255)"),
    ("createdAt", "timestamp with time zone"),
    ("updatedAt", "timestamp with time zone"),
)


def table_shape(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]] | None:
    """The table's (column, type) pairs in order, or None when it does not exist."""
    row = conn.execute("SELECT to_regclass(%s)::oid", (regclass_text(conn, table),)).fetchone()
    if row is None or row[0] is None:
        return None
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (row[0],),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def is_ir_engine(shape: Sequence[tuple[str, str]]) -> bool:
    """True when the columns and their types are exactly the iR Engine analytics table's."""
    return sorted(shape) == sorted(SHAPE)


def accept(settings: Settings, shape_text: str = SHAPE_TEXT) -> IrEngineLayout:
    """The ir-engine layout for the table, unless the config insists on the native one."""
    irengine.accept(settings, shape_text)
    return IrEngineLayout(settings.table)


class IrEngineLayout:
    """The platform's table on PostgreSQL: no unique key (none is added), integer counts.

    The slot's advisory lock serialises runs, and the presence check happens inside the
    same transaction, after the lock, so it sees what an earlier holder committed.
    """

    name = IR_ENGINE
    time_column = "createdAt"
    insertion_order: str | None = None  # uuid ids: no order

    def __init__(self, table: str) -> None:
        self.table = table

    def lock(self, conn: Any, settings: Settings, slot: datetime) -> None:
        """The slot's transaction-scoped advisory lock (store.locks)."""
        from analytics_cli.engines.postgresql.locks import lock_cycle_slot

        lock_cycle_slot(conn, settings, slot)

    def refuse(self, settings: Settings, specs: Sequence[MetricSpec]) -> None:
        """Dimensional metrics and [[source]] tables: the table has no metadata column."""
        refuse_rows_with_metadata(settings, specs)

    def present(
        self,
        conn: psycopg.Connection[Any],
        slot: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[Key]:
        """Jobs whose type already has a row whose "createdAt" is this slot's start."""
        from psycopg import sql

        query = sql.SQL('SELECT DISTINCT type FROM {} WHERE "createdAt" = %s').format(
            identifier(self.table)
        )
        types = {row[0] for row in conn.execute(query, (slot,)) if row[0] is not None}
        return {(spec.type, name) for spec, name in jobs if spec.type in types}

    def stored_slots(
        self,
        conn: psycopg.Connection[Any],
        since: datetime,
        until: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[tuple[str, str | None, datetime]]:
        """Types with a row at each slot start ("createdAt") in the window."""
        from psycopg import sql

        query = sql.SQL(
            'SELECT DISTINCT type, "createdAt" FROM {} '
            'WHERE type = ANY(%s) AND "createdAt" >= %s AND "createdAt" <= %s'
        ).format(identifier(self.table))
        types = sorted({spec.type for spec, _ in jobs})
        return {(t, None, at) for t, at in conn.execute(query, (types, since, until))}

    def fit(self, outcome: Outcome) -> Outcome:
        """Whole numbers within the int column's range; anything else fails that metric."""
        return fit_count(outcome)

    def write(
        self,
        conn: psycopg.Connection[Any],
        slot: datetime,
        collected_at: datetime,
        source: str | None,
        outcomes: Sequence[Outcome],
        *,
        replace: bool,
    ) -> dict[str, bool]:
        """New rows with new UUIDs; ``replace`` updates the slot's rows in place (same ids)."""
        from psycopg import sql

        from analytics_cli.samples import Sample

        samples = [o for o in outcomes if isinstance(o, Sample)]
        if not samples:
            return {}
        name = identifier(self.table)
        types = [s.type for s in samples]
        counts = [int(s.count) for s in samples]
        done: set[str] = set()
        if replace:
            update = sql.SQL(
                'UPDATE {} AS a SET count = r.c, "updatedAt" = %(at)s '
                "FROM unnest(%(types)s::text[], %(counts)s::int[]) AS r(t, c) "
                'WHERE a.type = r.t AND a."createdAt" = %(slot)s RETURNING a.type'
            ).format(name)
            params = {"at": collected_at, "types": types, "counts": counts, "slot": slot}
            done = {row[0] for row in conn.execute(update, params)}
        rest = [s for s in samples if s.type not in done]
        if rest:
            insert = sql.SQL(
                'INSERT INTO {} (id, count, type, "createdAt", "updatedAt") '
                "SELECT i, c, t, %(slot)s, %(at)s "
                "FROM unnest(%(ids)s::uuid[], %(counts)s::int[], %(types)s::text[]) AS r(i, c, t)"
            ).format(name)
            conn.execute(
                insert,
                {
                    "slot": slot,
                    "at": collected_at,
                    "ids": [uuid.uuid4() for _ in rest],
                    "counts": [int(s.count) for s in rest],
                    "types": [s.type for s in rest],
                },
            )
        return dict.fromkeys(types, True)

    def gaps(self, conn: psycopg.Connection[Any], since: Any, until: Any, types: Any = None) -> int:
        """How many rows in [since, until) have a type but no count (the column is nullable):
        the readers leave them out as gaps."""
        from psycopg import sql

        query = sql.SQL(
            "SELECT count(*) FROM {} WHERE type IS NOT NULL AND count IS NULL "
            'AND "createdAt" >= %s AND "createdAt" < %s'
            " AND (%s::text[] IS NULL OR type = ANY(%s::text[]))"
        ).format(identifier(self.table))
        names = list(types) if types is not None else None
        row = conn.execute(query, (since or EARLIEST, until or LATEST, names, names)).fetchone()
        return int(row[0]) if row else 0

    def relation(self) -> sql.Composable:
        """The table as the native columns, for the read queries (a derived table).

        "createdAt" is the timestamp, "updatedAt" the collection time, metadata is always
        ``{}``. Rows without a type or a count (never written by a collector) are left out.
        """
        from psycopg import sql

        return sql.SQL(
            '(SELECT id, type::text AS type, count::numeric AS count, "createdAt" AS "timestamp", '
            "\"updatedAt\" AS collected_at, '{{}}'::jsonb AS metadata FROM {table} "
            "WHERE type IS NOT NULL AND count IS NOT NULL) AS {alias}"
        ).format(table=identifier(self.table), alias=sql.Identifier(self.table.split(".")[-1]))
