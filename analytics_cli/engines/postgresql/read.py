"""The PostgreSQL store's read SQL: selections, points, summaries, COPY statements, types."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.postgresql import rollup_read
from analytics_cli.engines.postgresql.names import identifier
from analytics_cli.engines.reading import check_aggregate
from analytics_cli.engines.shapes import (
    BUCKET_ORIGIN,
    EXPORT_KEYS,
    NONE_LABEL,
    Point,
    Selection,
    TypeSummary,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql


def known_types(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """Distinct metric types present in the store (uses the (type, timestamp) index)."""
    from psycopg import sql

    # A recursive skip-scan: one index probe per distinct type, fast on years of rows.
    query = sql.SQL(
        """
        WITH RECURSIVE t AS (
            (SELECT type FROM {table} ORDER BY type LIMIT 1)
            UNION ALL
            SELECT (SELECT type FROM {table} WHERE type > t.type ORDER BY type LIMIT 1)
            FROM t WHERE t.type IS NOT NULL
        )
        SELECT type FROM t WHERE type IS NOT NULL
        """
    ).format(table=identifier(table))
    return [row[0] for row in conn.execute(query)]


def relation(sel: Selection) -> sql.Composable:
    """What the read queries select from: the layout's relation, else the table itself."""
    return sel.source if sel.source is not None else identifier(sel.table)


def _aggregate(agg: str, totals: bool = False) -> sql.Composable:
    from psycopg import sql

    check_aggregate(agg)
    if agg == "last":
        # A type's (and --by value's) slot totals have one row per slot: no tie to break.
        tie = "" if totals else ", id DESC"
        return sql.SQL(f'(array_agg(count ORDER BY "timestamp" DESC{tie}))[1]')
    return sql.SQL("{}(count)").format(sql.SQL(agg))


def _where(sel: Selection, literal: bool) -> sql.Composable:
    """The WHERE clause; literals (safely quoted by psycopg) where COPY cannot take parameters."""
    from psycopg import sql

    def value(name: str, val: Any) -> sql.Composable:
        return sql.Literal(val) if literal else sql.Placeholder(name)

    parts: list[sql.Composable] = [sql.SQL("true")]
    if sel.types is not None:
        parts.append(sql.SQL("type = ANY({})").format(value("types", list(sel.types))))
    if sel.since is not None:
        parts.append(sql.SQL('"timestamp" >= {}').format(value("since", sel.since)))
    if sel.until is not None:
        parts.append(sql.SQL('"timestamp" < {}').format(value("until", sel.until)))
    if sel.where:
        parts.append(sql.SQL("metadata @> {}::jsonb").format(value("where", _where_json(sel))))
    if sel.by is not None:
        parts.append(sql.SQL("metadata ? {}").format(value("by", sel.by)))
        if sel.by_values is not None:
            # The series whose value is JSON null (NONE_LABEL) is one of the picked ones too.
            picked = sql.SQL("metadata->>{} = ANY({})").format(
                value("by", sel.by), value("by_values", _named(sel.by_values))
            )
            if None in sel.by_values:
                picked = sql.SQL("({} OR metadata->>{} IS NULL)").format(
                    picked, value("by", sel.by)
                )
            parts.append(picked)
    return sql.SQL(" AND ").join(parts)


def _named(values: Sequence[str | None]) -> list[str]:
    return [v for v in values if v is not None]


def _where_json(sel: Selection) -> str:
    return json.dumps(dict(sel.where), ensure_ascii=False)


def _params(sel: Selection) -> dict[str, Any]:
    params: dict[str, Any] = {"since": sel.since, "until": sel.until, "origin": BUCKET_ORIGIN}
    if sel.types is not None:
        params["types"] = list(sel.types)
    if sel.bucket is not None:
        params["bucket"] = sel.bucket
    if sel.where:
        params["where"] = _where_json(sel)
    if sel.by is not None:
        params["by"] = sel.by
        if sel.by_values is not None:
            params["by_values"] = _named(sel.by_values)
    if sel.slot is not None:
        params["slot"] = sel.slot
    return params


def _totals(sel: Selection, literal: bool) -> sql.Composable:
    """The selection's per-slot totals: one row per type, slot (``"timestamp"`` floored to
    ``sel.slot``) and, with --by, value of that key; its count is the sum of the slot's rows.

    This is what a metric's value at a slot means everywhere (show, export --bucket, the
    report, the anomalies): a dimensional metric's series and a [[source]]-tagged metric's
    sources add up; a plain metric's slot holds one row, whose count it keeps.
    """
    from psycopg import sql

    assert sel.slot is not None
    slot = sql.Literal(sel.slot) if literal else sql.Placeholder("slot")
    origin = sql.Literal(BUCKET_ORIGIN) if literal else sql.Placeholder("origin")
    meta: sql.Composable = sql.SQL("'{}'::jsonb")
    groups = sql.SQL("1, 2")
    if sel.by is not None:
        by = sql.Literal(sel.by) if literal else sql.Placeholder("by")
        meta = sql.SQL("jsonb_build_object({by}::text, metadata->>{by}::text)").format(by=by)
        groups = sql.SQL("1, 2, 4")
    return sql.SQL(
        'SELECT type, date_bin({slot}, "timestamp", {origin}) AS "timestamp", '
        "sum(count) AS count, {meta} AS metadata, max(collected_at) AS collected_at "
        "FROM {table} WHERE {where} GROUP BY {groups}"
    ).format(
        slot=slot,
        origin=origin,
        meta=meta,
        table=relation(sel),
        where=_where(sel, literal),
        groups=groups,
    )


def _source(sel: Selection, literal: bool = False) -> sql.Composable:
    """``FROM``'s text and filter: the per-slot totals when ``sel.slot`` is set, else the
    stored rows the selection picks."""
    from psycopg import sql

    if sel.slot is not None:
        return sql.SQL("({}) AS s WHERE true").format(_totals(sel, literal))
    return sql.SQL("{} WHERE {}").format(relation(sel), _where(sel, literal))


# Unbucketed rows, by type then time (what show draws), or by time then type (what export
# streams: rows are stored in time order, so the server sorts nearly sorted input).
ROW_ORDERS = {
    "type": 'ORDER BY type, "timestamp", id',
    "time": 'ORDER BY "timestamp", type, metadata, id',
}
# The same orders for per-slot totals (no id: a type, slot and --by value is one row).
TOTAL_ORDERS = {
    "type": 'ORDER BY type, "timestamp", metadata',
    "time": 'ORDER BY "timestamp", type, metadata',
}


def select_rows(sel: Selection, *, literal: bool = False, order: str = "type") -> sql.Composed:
    """SELECT type, count, "timestamp", metadata, collected_at, ordered by type and time.

    With ``sel.slot``, per-slot totals instead of rows (``_totals``). With a bucket, one row
    per type and bucket: the aggregate (of the slot totals when ``sel.slot`` is set) as
    count, the bucket start as timestamp, ``{}`` as metadata and the latest collection time
    of the bucket. ``order`` applies to unbucketed rows; buckets are always by type, then
    time.
    """
    from psycopg import sql

    source = _source(sel, literal)
    totals = sel.slot is not None
    if sel.bucket is None:
        orders = TOTAL_ORDERS if totals else ROW_ORDERS
        return sql.SQL(
            'SELECT type, count, "timestamp", metadata, collected_at FROM {} ' + orders[order]
        ).format(source)
    if sel.rollup is not None:
        return rollup_read.select_bucketed(sel, _totals)
    bucket = sql.Literal(sel.bucket) if literal else sql.Placeholder("bucket")
    origin = sql.Literal(BUCKET_ORIGIN) if literal else sql.Placeholder("origin")
    if sel.by is not None:
        # One bucket per type, time and value of the --by key: the series stay apart.
        by = sql.Literal(sel.by) if literal else sql.Placeholder("by")
        return sql.SQL(
            "SELECT type, {agg} AS count, "
            'date_bin({bucket}, "timestamp", {origin}) AS "timestamp", '
            "jsonb_build_object({by}::text, metadata->>{by}::text) AS metadata, "
            "max(collected_at) AS collected_at "
            # By the value too: ``4::text`` would be a constant, leaving the values of one
            # bucket in whatever order the plan gives.
            "FROM {source} GROUP BY 1, 3, 4 ORDER BY 1, 3, 4"
        ).format(
            agg=_aggregate(sel.agg, totals), bucket=bucket, origin=origin, by=by, source=source
        )
    return sql.SQL(
        'SELECT type, {agg} AS count, date_bin({bucket}, "timestamp", {origin}) AS "timestamp", '
        "'{{}}'::jsonb AS metadata, max(collected_at) AS collected_at "
        "FROM {source} GROUP BY 1, 3 ORDER BY 1, 3"
    ).format(agg=_aggregate(sel.agg, totals), bucket=bucket, origin=origin, source=source)


def _iso_sql(column: sql.Composable) -> sql.Composable:
    """ISO 8601 UTC text of a timestamptz column, like timeutil.iso, in any session time zone
    (DateStyle ISO: ``PostgresStore.begin_reading`` sets it).

    PostgreSQL's own text of the UTC wall time (``2026-01-05 00:00:01.5``) with the space
    made a ``T`` and a ``Z`` appended: less than half of what ``to_char`` costs per row. The
    fraction keeps only the digits it needs, as ``timeutil.iso`` does.
    """
    from psycopg import sql

    return sql.SQL("replace(({c} AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z'").format(c=column)


def copy_statement(
    sel: Selection, fmt: str, keys: Sequence[str] = EXPORT_KEYS, order: str = "time"
) -> sql.Composed:
    """The ``COPY (…) TO STDOUT`` that streams a selection as CSV rows, or one JSON object a line.

    Unbucketed rows are one flat SELECT: the text conversion and the sort then run in the
    same plan node, so PostgreSQL's parallel workers share both where it gives them. Its
    output columns carry no names the ORDER BY could take for the stored columns (the
    ISO 8601 text sorts differently from the time), which is why the CSV header is not
    COPY's but ``reading.copy_header``'s. JSON lines use CSV format with a quote and delimiter byte
    that JSON text never contains (PostgreSQL escapes control characters in JSON), so each
    line is the object verbatim.
    """
    from psycopg import sql

    if sel.bucket is None and sel.slot is None:
        source: sql.Composable = sql.SQL("{} WHERE {} {}").format(
            relation(sel), _where(sel, literal=True), sql.SQL(ROW_ORDERS[order])
        )
    else:
        source = sql.SQL("({}) AS r").format(select_rows(sel, literal=True, order=order))
    rendered: dict[str, sql.Composable] = {
        "type": sql.SQL("type"),
        "count": sql.SQL("count"),
        "timestamp": _iso_sql(sql.Identifier("timestamp")),
        "metadata": sql.SQL("metadata::text" if fmt == "csv" else "metadata"),
        "collected_at": _iso_sql(sql.Identifier("collected_at")),
    }
    if fmt == "csv":
        columns = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(rendered[k], sql.Identifier(f"_{i}"))
            for i, k in enumerate(keys)
        )
        return sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv)").format(columns, source)
    fields = [sql.SQL("{}, {}").format(sql.Literal(key), rendered[key]) for key in keys]
    obj = sql.SQL("json_build_object({})::text").format(sql.SQL(", ").join(fields))
    return sql.SQL(
        "COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    ).format(obj, source)


def count_rows(conn: psycopg.Connection[Any], sel: Selection) -> int:
    """How many rows a selection yields (for progress bars and automatic bucketing)."""
    from psycopg import sql

    sel = rollup_read.planned(conn, sel)
    query = sql.SQL("SELECT count(*) FROM ({}) AS r").format(select_rows(sel))
    row = conn.execute(query, _params(sel)).fetchone()
    return int(row[0]) if row else 0


def count_points(conn: psycopg.Connection[Any], sel: Selection) -> int:
    """How many points fall in a selection's window, bucketing ignored: stored rows, or with
    ``sel.slot`` slot totals."""
    from psycopg import sql

    if sel.slot is not None and (found := rollup_read.probe(conn, sel)) is not None:
        return rollup_read.count_points(conn, found, _totals)
    query = sql.SQL("SELECT count(*) FROM {}").format(_source(sel))
    row = conn.execute(query, _params(sel)).fetchone()
    return int(row[0]) if row else 0


def read_points(conn: psycopg.Connection[Any], sel: Selection) -> list[Point]:
    """A selection's points, ordered by type and time."""
    from psycopg.rows import class_row

    sel = rollup_read.planned(conn, sel)
    with conn.cursor(row_factory=class_row(Point)) as cur:
        from psycopg import sql

        query = sql.SQL('SELECT type, "timestamp", count, {} AS metadata FROM ({}) AS r').format(
            sql.SQL("metadata")
            if (sel.bucket is None and sel.slot is None) or sel.by is not None
            else sql.SQL("NULL::jsonb"),
            select_rows(sel),
        )
        return cur.execute(query, _params(sel)).fetchall()


def top_values(
    conn: psycopg.Connection[Any], sel: Selection, limit: int
) -> tuple[list[str | None], int]:
    """The ``limit`` values of the --by key with the highest average count in the window
    (None for the series whose value is JSON null), and how many distinct values there are."""
    from psycopg import sql

    assert sel.by is not None
    if sel.slot is not None and (found := rollup_read.probe(conn, sel)) is not None:
        rows = conn.execute(rollup_read.top_query(found, limit, _totals)).fetchall()
        return [r[0] for r in rows], int(rows[0][2]) if rows else 0
    query = sql.SQL(
        "SELECT metadata->>%(by)s AS value, avg(count) AS mean, count(*) OVER () AS total "
        "FROM {} GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST LIMIT %(limit)s"
    ).format(_source(sel))
    rows = conn.execute(query, {**_params(sel), "limit": limit}).fetchall()
    return [r[0] for r in rows], int(rows[0][2]) if rows else 0


def summaries(
    conn: psycopg.Connection[Any], sel: Selection, interval: timedelta
) -> list[TypeSummary]:
    """Per type in the window, over its per-slot totals (slots of ``sel.slot``, else of
    ``interval``): latest, min/avg/max and how many slots hold a value (points, slots).
    With --by, one summary per value of that key, named by the value."""
    if sel.slot is None:
        sel = replace(sel, slot=interval)
    from psycopg import sql
    from psycopg.rows import class_row

    label = (
        sql.SQL("coalesce(metadata->>%(by)s, {})").format(sql.Literal(NONE_LABEL))
        if sel.by is not None
        else sql.SQL("type")
    )
    query = sql.SQL(
        "SELECT {} AS type, "
        '(array_agg(count ORDER BY "timestamp" DESC))[1] AS latest, '
        'max("timestamp") AS latest_at, min(count) AS min, avg(count) AS avg, '
        'max(count) AS max, count(*) AS points, min("timestamp") AS first_at, '
        "count(*) AS slots FROM {} GROUP BY 1 ORDER BY 1"
    ).format(label, _source(sel))
    if (found := rollup_read.probe(conn, sel)) is not None:
        query = rollup_read.summaries_query(found, label, _totals)
    with conn.cursor(row_factory=class_row(TypeSummary)) as cur:
        return cur.execute(query, _params(sel)).fetchall()


def sparkline_values(
    conn: psycopg.Connection[Any], sel: Selection, width: int
) -> dict[str, list[float | None]]:
    """Per type, ``width`` averages over equal slices of the window (None where empty), of the
    per-slot totals when ``sel.slot`` is set."""
    from psycopg import sql

    assert sel.since is not None and sel.until is not None
    step = (sel.until - sel.since) / width
    step = max(step, timedelta(seconds=1))
    query = sql.SQL(
        'SELECT type, floor(extract(epoch FROM "timestamp" - %(since)s) / %(step)s)::int AS i, '
        "avg(count)::float8 FROM {} GROUP BY 1, 2"
    ).format(_source(sel))
    result: dict[str, list[float | None]] = {}
    params = {**_params(sel), "step": step.total_seconds()}
    for type_, index, value in conn.execute(query, params):
        values = result.setdefault(type_, [None] * width)
        if 0 <= index < width:
            values[index] = value
    return result


def first_metadata(conn: psycopg.Connection[Any], sel: Selection, name: str) -> dict[str, Any]:
    """The metadata of one row of ``name`` in the window (its dimension keys), ``{}`` if none."""
    from psycopg import sql

    query = sql.SQL(
        "SELECT metadata FROM {} WHERE {} AND type = %(name)s AND metadata <> '{{}}'::jsonb LIMIT 1"
    ).format(relation(sel), _where(sel, literal=False))
    row = conn.execute(query, {**_params(sel), "name": name}).fetchone()
    return dict(row[0]) if row and isinstance(row[0], dict) else {}
