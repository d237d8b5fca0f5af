"""Hourly and daily rollups of the native PostgreSQL store: their tables, their upkeep in the
writer's transaction, their rebuild, and the pruning of each grain.

A rollup row holds, for one type and hour (or day), either one series (``series``, the row's
full metadata) or the type's total (a slot's value is the sum of its series): the number of
slots, their sum, min, max, the first and last slot and the last slot's value. That is what
every aggregate of ``show --bucket`` needs, exactly (numeric, never float): avg is the sum
divided by the number of slots, as PostgreSQL's own avg computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.postgresql.locks import lock_schema
from analytics_cli.engines.postgresql.names import FINITE, identifier, regclass_text
from analytics_cli.engines.shapes import Reach
from analytics_cli.grain import DAY, HOUR, ORIGIN, State, ceil_to, floor_to

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

HOURLY, DAILY, STATE = "_hourly", "_daily", "_rollup_state"

_COLUMNS = (
    "type text NOT NULL, bucket timestamptz NOT NULL, series boolean NOT NULL, "
    "metadata jsonb NOT NULL, n bigint NOT NULL, sum numeric NOT NULL, min numeric NOT NULL, "
    "max numeric NOT NULL, first_at timestamptz NOT NULL, last_at timestamptz NOT NULL, "
    "last numeric NOT NULL, collected_at timestamptz NOT NULL, "
    "PRIMARY KEY (type, bucket, series, metadata)"
)
_NAMES = "type, bucket, series, metadata, n, sum, min, max, first_at, last_at, last, collected_at"


def name(table: str, suffix: str) -> sql.Identifier:
    """The quoted name of one of ``table``'s rollup tables (same schema)."""
    return identifier(table + suffix)


def exists(conn: psycopg.Connection[Any], table: str) -> bool:
    """Whether ``table`` has rollup tables."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (regclass_text(conn, table + STATE),)
    ).fetchone()
    return bool(row and row[0])


def _may(
    conn: psycopg.Connection[Any],
    table: str,
    privileges: Sequence[str],
    suffixes: Sequence[str] = (HOURLY, DAILY, STATE),
) -> bool:
    """Whether this role has every one of ``privileges`` on each of the rollup tables named
    by ``suffixes`` (False when there are none). One privilege a call: has_table_privilege
    with a list is true when ANY of them is held."""
    row = conn.execute(
        "SELECT bool_and(coalesce(has_table_privilege(to_regclass(t), p), false)) "
        "FROM unnest(%s::text[]) AS t, unnest(%s::text[]) AS p",
        ([regclass_text(conn, table + s) for s in suffixes], list(privileges)),
    ).fetchone()
    return bool(row and row[0])


def state(conn: psycopg.Connection[Any], table: str) -> State | None:
    """The rollups' state, None when the table has none (or this role may not read them)."""
    from psycopg import sql

    if not _may(conn, table, ("SELECT",)):
        return None
    row = conn.execute(
        sql.SQL("SELECT slot, built, raw_from, hourly_from FROM {}").format(name(table, STATE))
    ).fetchone()
    return State(row[0], row[1], row[2], row[3]) if row else None


def ensure(conn: psycopg.Connection[Any], table: str, slot: timedelta) -> bool:
    """Create the rollup tables if missing (under the schema lock, in the caller's
    transaction); they count as built when the store table is empty. True if created."""
    from psycopg import sql

    if exists(conn, table):
        return False
    schema = table.rpartition(".")[0] or None
    row = conn.execute(
        "SELECT has_schema_privilege(coalesce(%s, current_schema()), 'CREATE')", (schema,)
    ).fetchone()
    if not (row and row[0]):  # a role that may not create: cycles store rows as before
        return False
    lock_schema(conn, table)
    if exists(conn, table):
        return False
    for suffix in (HOURLY, DAILY):
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (" + _COLUMNS + ")").format(name(table, suffix))
        )
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (slot interval NOT NULL, built boolean NOT NULL, "
            "raw_from timestamptz, hourly_from timestamptz)"
        ).format(name(table, STATE))
    )
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {} (slot, built) SELECT %s, NOT EXISTS (SELECT 1 FROM {}) RETURNING built"
        ).format(name(table, STATE), identifier(table)),
        (slot,),
    ).fetchone()
    if row and row[0]:  # empty: the index costs nothing now (else the rebuild makes it)
        gap_index(conn, table)
    return True


def gap_index(conn: psycopg.Connection[Any], table: str) -> None:
    """Index the rows no reader can draw (NaN, infinities): then the gaps every read counts
    cost an index probe, not a pass over the window's rows that the rollups spare."""
    from psycopg import sql

    conn.execute(
        sql.SQL('CREATE INDEX IF NOT EXISTS {} ON {} ("timestamp") WHERE NOT ({})').format(
            sql.Identifier(table.rpartition(".")[2] + "_gaps"), identifier(table), sql.SQL(FINITE)
        )
    )


def _lock(conn: psycopg.Connection[Any], table: str) -> None:
    """Serialise the upkeep of one table's rollups until the transaction ends: two writers
    recomputing the same hour would otherwise collide on its key."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('analytics-cli:rollup:' || %s, 0))",
        (table,),
    )


def _hourly_insert(table: str, relation: sql.Composable, where: sql.Composable) -> sql.Composed:
    """INSERT the hourly rollups of the stored rows ``where`` picks (whole hours)."""
    from psycopg import sql

    return sql.SQL(
        'WITH s AS (SELECT type, date_bin(%(slot)s, "timestamp", %(origin)s) AS at, metadata, '
        "sum(count) AS v, max(collected_at) AS c FROM {rel} WHERE {where} GROUP BY 1, 2, 3) "
        "INSERT INTO {hourly} (" + _NAMES + ") "
        "SELECT type, date_bin(%(hour)s, at, %(origin)s), series, metadata, count(*), sum(v), "
        "min(v), max(v), min(at), max(at), (array_agg(v ORDER BY at DESC))[1], max(c) FROM ("
        "SELECT type, at, true AS series, metadata, v, c FROM s UNION ALL "
        "SELECT type, at, false, '{{}}'::jsonb, sum(v), max(c) FROM s GROUP BY 1, 2"
        ") AS x GROUP BY 1, 2, 3, 4"
    ).format(rel=relation, where=where, hourly=name(table, HOURLY))


def _daily_insert(table: str, where: sql.Composable) -> sql.Composed:
    """INSERT the daily rollups of the hourly ones ``where`` picks (whole days)."""
    from psycopg import sql

    return sql.SQL(
        "INSERT INTO {daily} (" + _NAMES + ") "
        "SELECT type, date_bin(%(day)s, bucket, %(origin)s), series, metadata, sum(n)::bigint, "
        "sum(sum), min(min), max(max), min(first_at), max(last_at), "
        "(array_agg(last ORDER BY last_at DESC))[1], max(collected_at) "
        "FROM {hourly} WHERE {where} GROUP BY 1, 2, 3, 4"
    ).format(daily=name(table, DAILY), hourly=name(table, HOURLY), where=where)


def _params(st: State, **extra: Any) -> dict[str, Any]:
    return {"slot": st.slot, "origin": ORIGIN, "hour": HOUR, "day": DAY, **extra}


def upkeep(
    conn: psycopg.Connection[Any],
    table: str,
    relation: sql.Composable,
    slot: datetime,
    types: Sequence[str],
) -> None:
    """Recompute the hour and the day of ``slot`` for ``types`` from the rows just written
    (the caller's transaction: the slot's rows and its rollups commit together)."""
    from psycopg import sql

    if not types:
        return
    st = state(conn, table)
    if st is None or not st.built:
        return
    # The cycle's upkeep reads, deletes and inserts the hourly and daily rows; the state it
    # only reads (above): the grants docs/deployments.md prints.
    if not _may(conn, table, ("SELECT", "INSERT", "DELETE"), (HOURLY, DAILY)):
        from analytics_cli.engines.notices import notice

        notice(
            f"warning: this role may not write the rollups of {table} ({table}{HOURLY}, "
            f"{table}{DAILY}: INSERT, DELETE): they miss this cycle until db rollup --rebuild"
        )
        return
    _lock(conn, table)
    hour, day = floor_to(slot, HOUR), floor_to(slot, DAY)
    params = _params(st, types=sorted(set(types)), h0=hour, h1=hour + HOUR, d0=day, d1=day + DAY)
    typed = sql.SQL("type = ANY(%(types)s)")
    # An hour (day) older than the rows (hours) that remain cannot be recomputed from them:
    # its rollup stays as it was.
    if st.raw_from is None or hour >= st.raw_from:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} AND bucket = %(h0)s").format(
                name(table, HOURLY), typed
            ),
            params,
        )
        span = sql.SQL('{} AND "timestamp" >= %(h0)s AND "timestamp" < %(h1)s').format(typed)
        conn.execute(_hourly_insert(table, relation, span), params)
    if st.hourly_from is None or day >= st.hourly_from:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} AND bucket = %(d0)s").format(
                name(table, DAILY), typed
            ),
            params,
        )
        conn.execute(
            _daily_insert(
                table, sql.SQL("{} AND bucket >= %(d0)s AND bucket < %(d1)s").format(typed)
            ),
            params,
        )


def _raw_span(conn: psycopg.Connection[Any], table: str) -> tuple[datetime, datetime] | None:
    from psycopg import sql

    row = conn.execute(
        sql.SQL('SELECT min("timestamp"), max("timestamp") FROM {}').format(identifier(table))
    ).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def rebuild(
    conn: psycopg.Connection[Any],
    table: str,
    relation: sql.Composable,
    slot: timedelta,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Rebuild the rollups from the stored rows, a month of them per transaction; buckets
    older than the rows that remain are kept. Returns the number of hourly rows written."""
    from psycopg import sql

    ensure(conn, table, slot)
    conn.commit()
    st = state(conn, table)
    assert st is not None
    if st.slot != slot:  # built for another interval: nothing of it can be kept
        if st.raw_from is not None:
            # Rebuilt from the rows alone, the buckets older than them would be lost.
            from analytics_cli.errors import ConfigError

            raise ConfigError(
                f"the rollups of {table} were kept for a {_text(st.slot)} interval, and "
                f"[collect] interval is {_text(slot)}: rebuilding them from the stored rows "
                f"(which begin at {st.raw_from.isoformat()}) would lose the older buckets",
                hint=f"set [collect] interval back to {_text(st.slot)}, or keep the rollups "
                f"in another table (a new [store] table) for the new interval",
            )
        conn.execute(
            sql.SQL("UPDATE {} SET slot = %s, built = false").format(name(table, STATE)), (slot,)
        )
        for suffix in (HOURLY, DAILY):
            conn.execute(sql.SQL("TRUNCATE {}").format(name(table, suffix)))
        conn.commit()
        st = State(slot, False, st.raw_from, st.hourly_from)
    gap_index(conn, table)
    conn.commit()
    span = _raw_span(conn, table)
    written = 0
    if span is not None:
        start = floor_to(span[0], HOUR)
        if st.raw_from is not None:  # the hour the prune cut through keeps its rollup
            start = max(start, ceil_to(st.raw_from, HOUR))
        end = floor_to(span[1], DAY) + DAY
        chunks = []
        at = start
        while at < end:
            chunks.append((at, min(floor_to(at, DAY) + 31 * DAY, end)))
            at = chunks[-1][1]
        for done, (lo, hi) in enumerate(chunks, 1):
            _lock(conn, table)
            params = _params(st, h0=lo, h1=hi, d0=floor_to(lo, DAY), d1=hi)
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE bucket >= %(h0)s AND bucket < %(h1)s").format(
                    name(table, HOURLY)
                ),
                params,
            )
            where = sql.SQL('"timestamp" >= %(h0)s AND "timestamp" < %(h1)s')
            written += max(conn.execute(_hourly_insert(table, relation, where), params).rowcount, 0)
            _days(conn, table, st, params)
            conn.commit()
            if progress is not None:
                progress(done, len(chunks))
    conn.execute(sql.SQL("UPDATE {} SET built = true").format(name(table, STATE)))
    conn.commit()
    return written


def _days(conn: psycopg.Connection[Any], table: str, st: State, params: dict[str, Any]) -> None:
    """Recompute the whole days in [d0, d1) from the hourly rollups (where they are whole)."""
    from psycopg import sql

    d0 = params["d0"]
    if st.hourly_from is not None:
        d0 = max(d0, ceil_to(st.hourly_from, DAY))
    if d0 >= params["d1"]:
        return
    days = {**params, "d0": d0}
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE bucket >= %(d0)s AND bucket < %(d1)s").format(
            name(table, DAILY)
        ),
        days,
    )
    conn.execute(_daily_insert(table, sql.SQL("bucket >= %(d0)s AND bucket < %(d1)s")), days)


def pruned_raw(conn: psycopg.Connection[Any], table: str, cutoff: datetime) -> None:
    """Record that stored rows before ``cutoff`` are going: their hours stay as they are."""
    from psycopg import sql

    conn.execute(
        sql.SQL(
            "UPDATE {} SET raw_from = CASE WHEN raw_from IS NULL OR raw_from < %(c)s "
            "THEN %(c)s ELSE raw_from END"
        ).format(name(table, STATE)),
        {"c": cutoff},
    )


def prune_grain(conn: psycopg.Connection[Any], table: str, grain: str, cutoff: datetime) -> int:
    """Delete the hourly (``"hourly"``) or daily buckets that start before ``cutoff``."""
    from psycopg import sql

    suffix = HOURLY if grain == "hourly" else DAILY
    if grain == "hourly":
        conn.execute(
            sql.SQL(
                "UPDATE {} SET hourly_from = CASE WHEN hourly_from IS NULL OR hourly_from < %(c)s "
                "THEN %(c)s ELSE hourly_from END"
            ).format(name(table, STATE)),
            {"c": cutoff},
        )
    cur = conn.execute(
        sql.SQL("DELETE FROM {} WHERE bucket < %s").format(name(table, suffix)), (cutoff,)
    )
    return max(cur.rowcount, 0)


def oldest(conn: psycopg.Connection[Any], table: str) -> tuple[datetime | None, datetime | None]:
    """The oldest hourly and daily bucket (None where there is none)."""
    from psycopg import sql

    found: list[datetime | None] = []
    for suffix in (HOURLY, DAILY):
        row = conn.execute(
            sql.SQL("SELECT min(bucket) FROM {}").format(name(table, suffix))
        ).fetchone()
        found.append(row[0] if row else None)
    return found[0], found[1]


def reach(conn: psycopg.Connection[Any], table: str) -> Reach | None:
    """The rollups' reach, None when the table has none (or this role may not read them)."""
    st = state(conn, table)
    if st is None:
        return None
    hourly, daily = oldest(conn, table)
    return Reach(st.built, hourly, daily, st.raw_from)


def _text(interval: timedelta) -> str:
    """An interval as the config writes it (``30m``, ``1h``, ``90s``)."""
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
