"""The ir-engine store layout: the platform's own analytics table, used exactly as it is."""

from __future__ import annotations

import sys
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli import store
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from analytics_cli.collect import CycleReport, Status
    from analytics_cli.config import MetricSpec, Settings
    from analytics_cli.metrics import MetricFailure, Outcome, Sample

IR_ENGINE = "ir-engine"
NATIVE = "native"

# The table the platform's knex migration creates, as PostgreSQL's format_type names it.
# Nullability and constraints are not part of the match: the columns and types are.
SHAPE = (
    ("id", "uuid"),
    ("count", "integer"),
    ("type", "character varying(255)"),
    ("createdAt", "timestamp with time zone"),
    ("updatedAt", "timestamp with time zone"),
)
SHAPE_TEXT = 'id uuid, count integer, type varchar(255), "createdAt", "updatedAt"'
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# ---------------------------------------------------------------------------- notices

_said: set[str] = set()
_listener: Callable[[str], None] | None = None


def listen(callback: Callable[[str], None]) -> None:
    """Send notices to ``callback`` from now on, each at most once (one command's lifetime)."""
    global _listener
    _listener = callback
    _said.clear()


def _notice(message: str) -> None:
    if message in _said:
        return
    _said.add(message)
    if _listener is not None:
        _listener(message)
    else:
        print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- detection

# Per connection and table: the layout found. A command asks several times on one connection
# (status asks per metric); the catalog is read once.
_layouts: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def table_shape(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]] | None:
    """The table's (column, type) pairs in order, or None when it does not exist."""
    row = conn.execute(
        "SELECT to_regclass(%s)::oid", (store.identifier(table).as_string(conn),)
    ).fetchone()
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


def layout_of(conn: psycopg.Connection[Any], settings: Settings) -> str | None:
    """The store table's layout ("native" or "ir-engine"), None when it does not exist.

    A table of another shape, or one that contradicts ``[store] layout``, is refused.
    """
    from psycopg import pq

    known = _layouts.get(conn, {})
    if settings.table in known:
        return known[settings.table]
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    shape = table_shape(conn, settings.table)
    if shape is not None and not is_ir_engine(shape):
        # Raises the usual "not the analytics-cli layout" error for any other shape.
        store.require_table(conn, settings.table)
    if idle and not conn.autocommit:
        # Leave no transaction open behind the caller: its own transaction() must be the
        # outermost one (a nested one would only be a savepoint).
        conn.rollback()
    if shape is None:
        return None
    if is_ir_engine(shape):
        if settings.layout == NATIVE:
            raise ConfigError(
                f"table {settings.table!r} is the iR Engine's own analytics table "
                f'({SHAPE_TEXT}) but [store] layout is "native"; it was left untouched',
                hint='set [store] layout = "ir-engine" to collect into it, '
                'or point [store] table at another name, for example table = "analytics_cli"',
            )
        if settings.layout != IR_ENGINE:
            _notice(
                f"table {settings.table} has the iR Engine layout ({SHAPE_TEXT}): "
                'reading and writing it in that layout (set [store] layout = "ir-engine" '
                "to say so in the config)"
            )
        layout = IR_ENGINE
    else:
        if settings.layout == IR_ENGINE:
            raise ConfigError(
                f'[store] layout is "ir-engine" but table {settings.table!r} has the '
                "analytics-cli layout",
                hint='remove [store] layout (or set it to "native"), or point [store] table '
                "at the platform's analytics table",
            )
        layout = NATIVE
    _layouts.setdefault(conn, {})[settings.table] = layout
    return layout


def require_table(conn: psycopg.Connection[Any], settings: Settings) -> bool:
    """Check a table to read from: True if it exists in either layout, False if absent."""
    return layout_of(conn, settings) is not None


def ensure_table(conn: psycopg.Connection[Any], settings: Settings) -> bool:
    """Like store.ensure_table, but an iR Engine table is used as it is: never created or altered."""
    # The creation lock comes before any catalog lookup: a lookup made first would leave a
    # cached "no such table" in this backend that a concurrent CREATE does not invalidate.
    store.lock_schema(conn, settings.table)
    layout = layout_of(conn, settings)
    if layout == IR_ENGINE:
        return False
    if layout is None and settings.layout == IR_ENGINE:
        raise ConfigError(
            f'[store] layout is "ir-engine" but table {settings.table!r} does not exist',
            hint="the iR Engine's migrations create it: point [store] dsn at the platform "
            "database, or remove [store] layout to let analytics-cli create its own table",
        )
    return store.ensure_table(conn, settings.table)


def selection(conn: psycopg.Connection[Any], settings: Settings, sel: Any) -> Any:
    """The selection set to read the table in its layout (unchanged for the native one)."""
    from dataclasses import replace

    if layout_of(conn, settings) == IR_ENGINE:
        return replace(sel, layout=IR_ENGINE)
    return sel


# ---------------------------------------------------------------------------- writing


def refuse_dimensional(settings: Settings, specs: Iterable[MetricSpec]) -> None:
    """Refuse metrics whose rows carry metadata: the iR Engine table has no column for it."""
    names = [
        s.type for s in specs if getattr(s, "dimensional", False) or getattr(s, "dimensions", ())
    ]
    if names:
        raise ConfigError(
            f"metric {', '.join(repr(n) for n in names)} has dimensions, which the iR Engine "
            f"analytics table ({SHAPE_TEXT}) cannot store; nothing was collected",
            hint="remove its dimensions, or store into an analytics-cli table: "
            'set [store] table = "analytics_cli" (and remove [store] layout)',
        )
    if getattr(settings, "sources", ()):
        raise ConfigError(
            "[[source]] databases tag their rows with the source name, which the iR Engine "
            f"analytics table ({SHAPE_TEXT}) cannot store; nothing was collected",
            hint="use the single [source] dsn of the platform, "
            'or set [store] table = "analytics_cli"',
        )


def fit(outcome: Outcome) -> Sample | MetricFailure:
    """A sample the integer ``count`` column can hold unchanged, or that metric's failure."""
    from analytics_cli.metrics import MetricFailure, Sample

    if isinstance(outcome, MetricFailure):
        return outcome
    if not isinstance(outcome, Sample) or outcome.metadata:
        return MetricFailure(
            outcome.type, "row has metadata, which the iR Engine table cannot store"
        )
    count = outcome.count
    if count != count.to_integral_value():
        return MetricFailure(
            outcome.type,
            f"count {count} is not a whole number; the iR Engine analytics table stores integers",
        )
    if not INT_MIN <= count <= INT_MAX:
        return MetricFailure(
            outcome.type,
            f"count {count} does not fit the iR Engine analytics table's integer column "
            f"({INT_MIN} to {INT_MAX})",
        )
    return outcome


def stored_types(conn: psycopg.Connection[Any], table: str, slot: datetime) -> set[str]:
    """Metric types that already have a row whose "createdAt" is this slot's start."""
    from psycopg import sql

    query = sql.SQL('SELECT DISTINCT type FROM {} WHERE "createdAt" = %s').format(
        store.identifier(table)
    )
    return {row[0] for row in conn.execute(query, (slot,)) if row[0] is not None}


def insert_samples(
    conn: psycopg.Connection[Any],
    table: str,
    slot: datetime,
    collected_at: datetime,
    samples: Iterable[Sample],
    *,
    replace: bool = False,
) -> dict[str, bool]:
    """Write one row per sample (new UUID); ``replace`` updates the slot's rows in place."""
    from psycopg import sql

    name = store.identifier(table)
    insert = sql.SQL(
        'INSERT INTO {} (id, count, type, "createdAt", "updatedAt") VALUES (%s, %s, %s, %s, %s)'
    ).format(name)
    update = sql.SQL(
        'UPDATE {} SET count = %s, "updatedAt" = %s WHERE type = %s AND "createdAt" = %s'
    ).format(name)
    result: dict[str, bool] = {}
    for sample in samples:
        count = int(sample.count)
        if replace:
            cur = conn.execute(update, (count, collected_at, sample.type, slot))
            if cur.rowcount > 0:
                result[sample.type] = True
                continue
        conn.execute(insert, (uuid.uuid4(), count, sample.type, slot, collected_at))
        result[sample.type] = True
    return result


def write_cycle(
    conn: psycopg.Connection[Any],
    settings: Settings,
    specs: list[MetricSpec],
    slot: datetime,
    report: CycleReport,
    *,
    replace: bool,
) -> None:
    """One cycle into the iR Engine table: the slot's lock, then check and write together.

    The table has no unique key (and none is added): the slot's advisory lock serialises
    runs, and the check for rows of each type at the slot happens inside the same
    transaction, after the lock, so it sees what an earlier holder committed.
    """
    from analytics_cli.collect import MetricResult, plan, read_all
    from analytics_cli.metrics import Sample

    refuse_dimensional(settings, specs)
    with conn.transaction():
        store.lock_slot(conn, settings.table, slot, statement_timeout=settings.statement_timeout)
        present = set() if replace else stored_types(conn, settings.table, slot)
        todo = [s for s in specs if s.type not in present]
        already = [MetricResult(s.type, "present") for s in specs if s.type in present]
        if not todo:
            report.results = already
            report.note = "slot already collected"
            return
        # The platform database's snapshot, then any HTTP metrics: one batch each.
        batches = read_all(settings, plan(settings, todo, None), slot)
        report.collected_at = min(b.collected_at for b in batches)
        status: Status = "replaced" if replace else "stored"
        results = []
        for batch in batches:
            fitted = [fit(o) for o in batch.outcomes]
            samples = [o for o in fitted if isinstance(o, Sample)]
            insert_samples(conn, settings.table, slot, batch.collected_at, samples, replace=replace)
            results += [
                MetricResult(o.type, status, o.count)
                if isinstance(o, Sample)
                else MetricResult(o.type, "failed", error=o.error)
                for o in fitted
            ]
        order = {s.type: i for i, s in enumerate(specs)}
        report.results = sorted(results + already, key=lambda r: order[r.type])


# ---------------------------------------------------------------------------- reading


def relation(table: str) -> sql.Composable:
    """The iR Engine table as the native columns, for the read queries (a derived table).

    "createdAt" is the timestamp, "updatedAt" the collection time, metadata is always
    ``{}``. Rows without a type or a count (never written by a collector) are left out.
    """
    from psycopg import sql

    return sql.SQL(
        '(SELECT id, type::text AS type, count::numeric AS count, "createdAt" AS "timestamp", '
        "\"updatedAt\" AS collected_at, '{{}}'::jsonb AS metadata FROM {table} "
        "WHERE type IS NOT NULL AND count IS NOT NULL) AS {alias}"
    ).format(table=store.identifier(table), alias=sql.Identifier(table.split(".")[-1]))


def readable(conn: psycopg.Connection[Any], settings: Settings) -> sql.Composable:
    """What to select from for the table's layout: the table, or the mapped iR Engine table."""
    if layout_of(conn, settings) == IR_ENGINE:
        return relation(settings.table)
    return store.identifier(settings.table)


def time_column(ir_engine: bool) -> sql.Identifier:
    """The column holding a row's time: "createdAt" in the iR Engine table, else "timestamp"."""
    from psycopg import sql

    return sql.Identifier("createdAt" if ir_engine else "timestamp")
