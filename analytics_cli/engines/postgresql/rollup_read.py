"""Bucketed reads answered from the rollups: the plan for a selection, and its SQL (the same
columns, order and numbers as the bucketed query on the stored rows)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from analytics_cli import grain
from analytics_cli.engines.notices import notice
from analytics_cli.engines.postgresql import rollup
from analytics_cli.engines.shapes import BUCKET_ORIGIN, Selection

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg
    from psycopg import sql

    # read.py's per-slot totals of a selection (literal values when the flag is set).
    Totals = Callable[[Selection, bool], sql.Composable]


def planned(conn: psycopg.Connection[Any], sel: Selection) -> Selection:
    """``sel`` with the rollups' plan when they can answer it exactly, else unchanged; the
    one line saying what could not be answered as the stored rows once did."""
    if sel.bucket is None or sel.slot is None or sel.rollup is not None:
        return sel
    if sel.agg not in AGGREGATES or sel.source is None:  # the raw path says what is wrong
        return sel
    st = rollup.state(conn, sel.table)
    found, note = grain.plan(sel.since, sel.until, sel.bucket, sel.slot, st)
    if (
        found is not None
        and (sel.where or sel.by is not None)
        and not _one_series(conn, sel, found)
    ):
        found = None
        assert st is not None
        note = None
        if st.raw_from is not None and (sel.since is None or sel.since < st.raw_from):
            note = (
                "note: --where/--by picks several series of a type: read from stored rows, "
                f"which begin at {grain._iso(st.raw_from)} (pruned before)"
            )
    if found is not None and found.edge_pruned:
        assert st is not None
        found, edge = _leading_hour(conn, sel, found, st)
        note = note or edge
    if note:
        notice(note)
    return replace(sel, rollup=found) if found is not None else sel


def _leading_hour(
    conn: psycopg.Connection[Any], sel: Selection, plan: grain.Plan, st: grain.State
) -> tuple[grain.Plan, str | None]:
    """The window's first partial hour when its rows are pruned: nothing is lost when its
    hourly rollup is absent (and was never pruned) or starts at or after the window (then
    it is read whole); else the line that says the hour is left out."""
    from psycopg import sql

    since, h0 = plan.raw[0]
    assert since is not None and h0 is not None
    plan = replace(plan, edge_pruned=False)
    note = grain.edge_note(since, st)
    if st.hourly_from is not None and h0 - grain.HOUR < st.hourly_from:
        return plan, note
    row = conn.execute(
        sql.SQL("SELECT min(first_at) FROM {} WHERE bucket = {} AND {}").format(
            rollup.name(sel.table, rollup.HOURLY), sql.Literal(h0 - grain.HOUR), _picks(sel)
        )
    ).fetchone()
    first = row[0] if row else None
    if first is None:
        return replace(plan, raw=plan.raw[1:]), None
    if first >= since:
        hours = ((h0 - grain.HOUR, h0), *plan.hours)
        return replace(plan, raw=plan.raw[1:], hours=hours), None
    return plan, note


def _range(column: str, r: grain.Range) -> sql.Composable:
    from psycopg import sql

    parts: list[sql.Composable] = [sql.SQL("true")]
    if r[0] is not None:
        parts.append(sql.SQL("{} >= {}").format(sql.Identifier(column), sql.Literal(r[0])))
    if r[1] is not None:
        parts.append(sql.SQL("{} < {}").format(sql.Identifier(column), sql.Literal(r[1])))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def _picks(sel: Selection) -> sql.Composable:
    """The rollup rows a selection reads: its types, and its series or the totals."""
    import json

    from psycopg import sql

    parts: list[sql.Composable] = []
    if sel.types is not None:
        parts.append(sql.SQL("type = ANY({})").format(sql.Literal(list(sel.types))))
    if not sel.where and sel.by is None:
        parts.append(sql.SQL("NOT series"))
        return sql.SQL(" AND ").join(parts)
    parts.append(sql.SQL("series"))
    if sel.where:
        where = json.dumps(dict(sel.where), ensure_ascii=False)
        parts.append(sql.SQL("metadata @> {}::jsonb").format(sql.Literal(where)))
    if sel.by is not None:
        by = sql.Literal(sel.by)
        parts.append(sql.SQL("metadata ? {}").format(by))
        if sel.by_values is not None:
            named = [v for v in sel.by_values if v is not None]
            picked = sql.SQL("metadata->>{} = ANY({})").format(by, sql.Literal(named))
            if None in sel.by_values:
                picked = sql.SQL("({} OR metadata->>{} IS NULL)").format(picked, by)
            parts.append(picked)
    return sql.SQL(" AND ").join(parts)


def _tiers(sel: Selection, plan: grain.Plan) -> list[tuple[sql.Composable, sql.Composable]]:
    """(rollup table, bucket filter) for each grain the plan reads."""
    from psycopg import sql

    tiers: list[tuple[sql.Composable, sql.Composable]] = []
    if plan.days is not None:
        tiers.append((rollup.name(sel.table, rollup.DAILY), _range("bucket", plan.days)))
    if plan.hours:
        hours = sql.SQL(" OR ").join(_range("bucket", r) for r in plan.hours)
        tiers.append((rollup.name(sel.table, rollup.HOURLY), sql.SQL("({})").format(hours)))
    return tiers


def _one_series(conn: psycopg.Connection[Any], sel: Selection, plan: grain.Plan) -> bool:
    """Whether each type (and --by value) the selection picks is one series in the window:
    then its slot totals are that series' values, which the rollups hold."""
    from psycopg import sql

    group = sql.SQL("metadata->>{}").format(sql.Literal(sel.by)) if sel.by else sql.SQL("''")
    parts = [
        sql.SQL("SELECT type, {g} AS g, metadata FROM {t} WHERE {p} AND {r}").format(
            g=group, t=table, p=_picks(sel), r=span
        )
        for table, span in _tiers(sel, plan)
    ]
    if not parts:
        return True
    query = sql.SQL(
        "SELECT NOT EXISTS (SELECT 1 FROM ({}) AS u GROUP BY type, g "
        "HAVING count(DISTINCT metadata) > 1)"
    ).format(sql.SQL(" UNION ALL ").join(parts))
    row = conn.execute(query).fetchone()
    return bool(row and row[0])


def _label(sel: Selection, column: str = "metadata") -> sql.Composable:
    from psycopg import sql

    if sel.by is None:
        return sql.SQL("'{}'::jsonb")
    by = sql.Literal(sel.by)
    return sql.SQL("jsonb_build_object({}::text, {}->>{}::text)").format(
        by, sql.Identifier(column), by
    )


def _partials(sel: Selection, plan: grain.Plan, totals: Totals) -> sql.Composable:
    """Per type (and --by value) and piece of the window, the parts every aggregate needs;
    ``totals`` is the stored rows' per-slot totals query (read.py's)."""
    from psycopg import sql

    pieces: list[sql.Composable] = [
        sql.SQL(
            "SELECT type, bucket AS at, {m} AS metadata, n, sum, min, max, first_at, last_at, "
            "last, collected_at FROM {t} WHERE {p} AND {r}"
        ).format(m=_label(sel), t=table, p=_picks(sel), r=span)
        for table, span in _tiers(sel, plan)
    ]
    for since, until in plan.raw:
        edge = replace(sel, since=since, until=until, bucket=None, rollup=None)
        pieces.append(
            sql.SQL(
                'SELECT type, "timestamp", metadata, 1, count, count, count, "timestamp", "timestamp", '
                "count, collected_at FROM ({}) AS e"
            ).format(totals(edge, True))
        )
    return sql.SQL(" UNION ALL ").join(pieces)


AGGREGATES = {
    "avg": "sum(sum) / sum(n)::numeric",  # what avg(numeric) computes: sum / count
    "min": "min(min)",
    "max": "max(max)",
    "sum": "sum(sum)",
    "last": "(array_agg(last ORDER BY last_at DESC))[1]",
}


def select_bucketed(sel: Selection, totals: Totals) -> sql.Composed:
    """The bucketed SELECT of ``read.select_rows`` (same columns and order) from the plan."""
    from psycopg import sql

    assert sel.rollup is not None and sel.bucket is not None
    by = sel.by is not None
    return sql.SQL(
        'SELECT type, {agg} AS count, date_bin({bucket}, at, {origin}) AS "timestamp", '
        "metadata, max(collected_at) AS collected_at FROM ({parts}) AS p "
        "GROUP BY 1, 3, 4 ORDER BY 1, 3" + (", 4" if by else "")
    ).format(
        agg=sql.SQL(AGGREGATES[sel.agg]),
        bucket=sql.Literal(sel.bucket),
        origin=sql.Literal(BUCKET_ORIGIN),
        parts=_partials(sel, sel.rollup, totals),
    )


def probe(conn: psycopg.Connection[Any], sel: Selection) -> Selection | None:
    """``sel`` planned as daily buckets (whole days from the daily rollups, whole hours from
    the hourly ones) for window-wide reads: points, summaries, top values; None when the
    stored rows must answer."""
    from datetime import timedelta

    found = planned(conn, replace(sel, bucket=timedelta(days=1), agg="sum"))
    return found if found.rollup is not None else None


def partials(sel: Selection, totals: Totals) -> sql.Composable:
    """The planned selection's pieces (type, at, metadata, n, sum, min, max, first_at,
    last_at, last, collected_at) as a FROM item."""
    from psycopg import sql

    assert sel.rollup is not None
    return sql.SQL("({}) AS p").format(_partials(sel, sel.rollup, totals))


def count_points(conn: psycopg.Connection[Any], sel: Selection, totals: Totals) -> int:
    """How many slot totals ``sel`` holds, counted in the rollups."""
    from psycopg import sql

    query = sql.SQL("SELECT coalesce(sum(n), 0) FROM {}").format(partials(sel, totals))
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def summaries_query(sel: Selection, label: sql.Composable, totals: Totals) -> sql.Composed:
    """``read.summaries``' query (same columns and numbers) over the rollups."""
    from psycopg import sql

    return sql.SQL(
        "SELECT {} AS type, (array_agg(last ORDER BY last_at DESC))[1] AS latest, "
        "max(last_at) AS latest_at, min(min) AS min, sum(sum) / sum(n)::numeric AS avg, "
        "max(max) AS max, sum(n)::bigint AS points, min(first_at) AS first_at, "
        "sum(n)::bigint AS slots FROM {} GROUP BY 1 ORDER BY 1"
    ).format(label, partials(sel, totals))


def top_query(sel: Selection, limit: int, totals: Totals) -> sql.Composed:
    """``read.top_values``' query over the rollups: the --by values by their mean."""
    from psycopg import sql

    return sql.SQL(
        "SELECT metadata->>{by} AS value, sum(sum) / sum(n)::numeric AS mean, "
        "count(*) OVER () AS total FROM {p} GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST LIMIT {n}"
    ).format(p=partials(sel, totals), by=sql.Literal(sel.by), n=sql.Literal(limit))
