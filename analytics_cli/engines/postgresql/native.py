"""The native store layout: the analytics-cli table on PostgreSQL (unique key, jsonb metadata)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.irengine import EARLIEST, LATEST
from analytics_cli.engines.postgresql import partitions, rollup
from analytics_cli.engines.postgresql.locks import lock_schema
from analytics_cli.engines.postgresql.names import (
    FINITE,
    NATIVE_COLUMNS,
    identifier,
    regclass_text,
)
from analytics_cli.engines.shapes import Key
from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import utcnow

NAME = "native"

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.samples import Outcome


@cache
def _schema_template() -> str:
    return resources.files("analytics_cli").joinpath("schema.sql").read_text("utf-8")


def table_columns(conn: psycopg.Connection[Any], table: str) -> list[str] | None:
    """The table's column names in order, or None when it does not exist."""
    row = conn.execute("SELECT to_regclass(%s)::oid", (regclass_text(conn, table),)).fetchone()
    if row is None or row[0] is None:
        return None
    cols = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (row[0],),
    ).fetchall()
    return [c[0] for c in cols]


def _foreign_table_error(table: str, columns: Sequence[str]) -> ConfigError:
    found = ", ".join(columns) if columns else "no columns"
    return ConfigError(
        f"table {table!r} already exists with columns ({found}), which is not the "
        f"analytics-cli layout ({', '.join(NATIVE_COLUMNS)}); it was left untouched",
        hint='point [store] table at another name, for example table = "analytics_cli"',
    )


def ensure_table(conn: psycopg.Connection[Any], table: str) -> bool:
    """Create the store table if missing (inside the caller's transaction); True if created."""
    from psycopg import sql

    lock_schema(conn, table)
    columns = table_columns(conn, table)
    if columns is not None:
        if sorted(columns) != sorted(NATIVE_COLUMNS):
            raise _foreign_table_error(table, columns)
        return False
    parts = table.split(".")
    if len(parts) == 2:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(parts[0])))
    create_partitioned(conn, table)
    partitions.ahead(conn, table, utcnow())
    return True


def create_partitioned(conn: psycopg.Connection[Any], table: str, stem: str | None = None) -> None:
    """CREATE the partitioned table and its DEFAULT partition (named after ``stem``)."""
    from psycopg import sql

    conn.execute(
        sql.SQL(_schema_template()).format(  # type: ignore[arg-type,unused-ignore]
            table=identifier(table), default=identifier(partitions.default_name(stem or table))
        )
    )


def require_table(conn: psycopg.Connection[Any], table: str) -> bool:
    """Check a table to read from: True if it exists with the native layout, False if absent."""
    columns = table_columns(conn, table)
    if columns is None:
        return False
    if sorted(columns) != sorted(NATIVE_COLUMNS):
        raise _foreign_table_error(table, columns)
    return True


def stored_keys(
    conn: psycopg.Connection[Any], table: str, slot: datetime
) -> tuple[set[tuple[str, str | None]], set[tuple[str, str | None]]]:
    """(type, source tag) pairs present for this slot: those with a plain row (no metadata
    besides the source tag), and those with any row at all (dimensional metrics)."""
    from psycopg import sql

    query = sql.SQL(
        "SELECT type, metadata->>'source', bool_or((metadata - 'source') = '{{}}'::jsonb) "
        'FROM {} WHERE "timestamp" = %s GROUP BY 1, 2'
    ).format(identifier(table))
    plain: set[tuple[str, str | None]] = set()
    anything: set[tuple[str, str | None]] = set()
    for type_, source, is_plain in conn.execute(query, (slot,)):
        anything.add((type_, source))
        if is_plain:
            plain.add((type_, source))
    return plain, anything


def delete_series(
    conn: psycopg.Connection[Any], table: str, slot: datetime, type_: str, source: str | None
) -> int:
    """Delete a metric's rows of one slot (of one source tag, or untagged); returns how many."""
    from psycopg import sql

    tag = sql.SQL("metadata->>'source' = %s" if source is not None else "NOT metadata ? 'source'")
    query = sql.SQL('DELETE FROM {} WHERE type = %s AND "timestamp" = %s AND {}').format(
        identifier(table), tag
    )
    params: tuple[Any, ...] = (type_, slot, source) if source is not None else (type_, slot)
    return conn.execute(query, params).rowcount


def accept(settings: Settings) -> NativeLayout:
    """The native layout for ``settings``' table, unless the config says it is the iR Engine's."""
    if settings.layout == "ir-engine":
        raise ConfigError(
            f'[store] layout is "ir-engine" but table {settings.table!r} has the '
            "analytics-cli layout",
            hint='remove [store] layout (or set it to "native"), or point [store] table '
            "at the platform's analytics table",
        )
    return NativeLayout(settings.table)


def _unnest_insert(table: str, *, replace: bool) -> sql.Composed:
    from psycopg import sql

    conflict = (
        "DO UPDATE SET count = EXCLUDED.count, collected_at = EXCLUDED.collected_at"
        if replace
        else "DO NOTHING"
    )
    # One statement for the whole batch: arrays in, one row per element, one round trip.
    return sql.SQL(
        'INSERT INTO {} (type, count, "timestamp", collected_at, metadata) '
        "SELECT t, c, %(slot)s, %(collected_at)s, m "
        "FROM unnest(%(types)s::text[], %(counts)s::numeric[], %(metadata)s::jsonb[]) "
        "AS r(t, c, m) "
        'ON CONFLICT (type, "timestamp", metadata) ' + conflict + " RETURNING type"
    ).format(identifier(table))


class NativeLayout:
    """The analytics-cli table: any number of rows per type and slot, told apart by metadata."""

    name = NAME
    time_column = "timestamp"
    insertion_order: str | None = "id"  # an identity column

    def __init__(self, table: str) -> None:
        self.table = table

    def lock(self, conn: Any, settings: Settings, slot: datetime) -> None:
        """The slot's transaction-scoped advisory lock (store.locks)."""
        from analytics_cli.engines.postgresql.locks import lock_cycle_slot

        lock_cycle_slot(conn, settings, slot)

    def refuse(self, settings: Settings, specs: Sequence[MetricSpec]) -> None:
        """Everything a cycle can produce fits this table."""

    def present(
        self,
        conn: psycopg.Connection[Any],
        slot: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[Key]:
        """Jobs whose slot is stored: a plain row for plain metrics, any row for dimensional ones."""
        plain, anything = stored_keys(conn, self.table, slot)
        # A dimensional metric may legitimately have rows for some values only: any row of
        # its type (and source) means the slot was collected.
        return {
            (spec.type, name)
            for spec, name in jobs
            if (spec.type, name) in (anything if spec.dimensional else plain)
        }

    def stored_slots(
        self,
        conn: psycopg.Connection[Any],
        since: datetime,
        until: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[tuple[str, str | None, datetime]]:
        """Slots stored per job in the window, by the same rule as ``present``."""
        from psycopg import sql

        query = sql.SQL(
            "SELECT type, metadata->>'source', \"timestamp\", "
            "bool_or((metadata - 'source') = '{{}}'::jsonb) FROM {} "
            'WHERE type = ANY(%s) AND "timestamp" >= %s AND "timestamp" <= %s GROUP BY 1, 2, 3'
        ).format(identifier(self.table))
        dimensional = {spec.type for spec, _ in jobs if spec.dimensional}
        types = sorted({spec.type for spec, _ in jobs})
        return {
            (type_, source, at)
            for type_, source, at, plain in conn.execute(query, (types, since, until))
            if plain or type_ in dimensional
        }

    def fit(self, outcome: Outcome) -> Outcome:
        """Every outcome fits: counts are numeric, dimensions are jsonb."""
        return outcome

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
        """Insert the batch in one statement (ON CONFLICT DO NOTHING, or update on replace)."""
        from analytics_cli.samples import Sample, Series

        samples: list[Sample] = []
        # Their hour and day are recomputed (a replaced series may have lost rows).
        touched = [o.type for o in outcomes if isinstance(o, (Sample, Series))]
        for outcome in outcomes:
            if isinstance(outcome, Sample):
                samples.append(outcome)
            elif isinstance(outcome, Series):
                if replace:
                    # Values that vanished since the first run must not linger.
                    delete_series(conn, self.table, slot, outcome.type, source)
                samples.extend(outcome.samples)
        if not samples:
            rollup.upkeep(conn, self.table, self.relation(), slot, touched)
            return {}
        partitions.cover(conn, self.table, slot)
        params = {
            "slot": slot,
            "collected_at": collected_at,
            "types": [s.type for s in samples],
            "counts": [s.count for s in samples],
            "metadata": [json.dumps(s.metadata) for s in samples],
        }
        written = {
            row[0] for row in conn.execute(_unnest_insert(self.table, replace=replace), params)
        }
        # The slot's rollups in the same transaction: they commit with its rows.
        rollup.upkeep(conn, self.table, self.relation(), slot, touched)
        # Several rows per type (dimensions): written when any of them was.
        return {s.type: s.type in written for s in samples}

    def relation(self) -> sql.Composable:
        """The table's rows whose count is a number a reader can draw: a NaN, an infinity
        (numeric holds both) or a count beyond any float, written by hand, is a gap
        (``gaps`` counts them, so that it is said)."""
        from psycopg import sql

        return sql.SQL("(SELECT * FROM {table} WHERE {finite}) AS {alias}").format(
            table=identifier(self.table),
            finite=sql.SQL(FINITE),
            alias=sql.Identifier(self.table.split(".")[-1]),
        )

    def gaps(self, conn: psycopg.Connection[Any], since: Any, until: Any, types: Any = None) -> int:
        """How many rows in [since, until) the readers leave out as gaps."""
        from psycopg import sql

        # Narrowed to the types asked for, the (type, "timestamp") index serves it.
        query = sql.SQL(
            'SELECT count(*) FROM {} WHERE NOT ({}) AND "timestamp" >= %s AND "timestamp" < %s'
            " AND (%s::text[] IS NULL OR type = ANY(%s::text[]))"
        ).format(identifier(self.table), sql.SQL(FINITE))
        names = list(types) if types is not None else None
        row = conn.execute(query, (since or EARLIEST, until or LATEST, names, names)).fetchone()
        return int(row[0]) if row else 0
