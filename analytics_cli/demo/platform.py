"""The demo platform's tables in PostgreSQL: create them, write one slot's changes, build large."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analytics_cli.demo.simulation import Plan, Platform
from analytics_cli.demo.state import COLUMNS, ENDABLE, SimRow, utc
from analytics_cli.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    import psycopg

# Every platform table the demo creates carries this comment; tables without it are never touched.
MARKER = "created by analytics-cli demo"


@cache
def schema_sql() -> str:
    """The iR Engine platform schema shipped with the package."""
    return resources.files("analytics_cli").joinpath("ir_engine_schema.sql").read_text("utf-8")


def schema_tables() -> list[str]:
    """The platform tables the schema creates, in creation order."""
    return re.findall(r'^CREATE TABLE "([^"]+)"', schema_sql(), flags=re.MULTILINE)


def prepare_source(conn: psycopg.Connection[Any]) -> bool:
    """Create the platform tables, replacing an earlier demo's; True when some were replaced.

    Tables the demo did not create (no marker comment) are never touched: the demo refuses.
    """
    import psycopg
    from psycopg import sql

    found: dict[str, str | None] = {}
    for name in schema_tables():
        row = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')",
            (sql.Identifier(name).as_string(conn),),
        ).fetchone()
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(name).as_string(conn),)
        ).fetchone()
        if exists and exists[0]:
            found[name] = row[0] if row else None
    foreign = [name for name, comment in found.items() if comment != MARKER]
    if foreign:
        raise ConfigError(
            "the source database already has platform tables the demo did not create ("
            + ", ".join(foreign)
            + "); they were left untouched",
            hint="run the demo on an empty database, or with no connection string "
            "(the embedded PostgreSQL)",
        )
    try:
        with conn.transaction():
            if found:
                conn.execute(
                    sql.SQL("DROP TABLE {}").format(
                        sql.SQL(", ").join(sql.Identifier(n) for n in found)
                    )
                )
            conn.execute(schema_sql())  # type: ignore[call-overload,unused-ignore]
            for name in schema_tables():
                conn.execute(
                    sql.SQL("COMMENT ON TABLE {} IS {}").format(
                        sql.Identifier(name), sql.Literal(MARKER)
                    )
                )
    except psycopg.Error as exc:
        from analytics_cli.dsn import one_line

        raise DatabaseError(
            f"cannot create the demo platform tables: {one_line(str(exc))}",
            hint="objects of your own may depend on the earlier demo tables",
        ) from None
    return bool(found)


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...], rows: Iterable[Any]
) -> None:
    from psycopg import sql

    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor().copy(query) as copy:
        for row in rows:
            copy.write_row(row)


def _ended(row: SimRow, moment: int) -> bool:
    return row.ended is not None and row.ended <= moment


def apply_slot(conn: psycopg.Connection[Any], platform: Platform, plan: Plan, index: int) -> int:
    """Bring the platform tables to the state at slot ``index``; returns rows written."""
    from psycopg import sql

    slot_end = platform.first + index * platform.step
    written = 0
    with conn.transaction():
        fast_commit(conn)
        for table in COLUMNS:
            rows = plan.created[index].get(table, [])
            if not rows:
                continue
            written += len(rows)
            if table in ENDABLE:
                columns = (*COLUMNS[table], "createdAt", "updatedAt", "ended")
                values = (
                    (
                        *r.values,
                        utc(r.created),
                        utc(r.ended if r.ended is not None and r.ended <= slot_end else r.created),
                        _ended(r, slot_end),
                    )
                    for r in rows
                )
            else:
                columns = (*COLUMNS[table], "createdAt", "updatedAt")
                values = ((*r.values, utc(r.created), utc(r.created)) for r in rows)
            _copy(conn, table, columns, values)
        for table in ENDABLE:
            ended = plan.ended[index].get(table, [])
            if not ended:
                continue
            written += len(ended)
            conn.execute(
                sql.SQL(
                    'UPDATE {} AS t SET ended = true, "updatedAt" = v.at '
                    "FROM unnest(%s::uuid[], %s::timestamptz[]) AS v(id, at) WHERE t.id = v.id"
                ).format(sql.Identifier(table)),
                ([r.values[0] for r in ended], [utc(r.ended or 0) for r in ended]),
            )
    return written


# ---------------------------------------------------------------------------- --scale large

LARGE_USERS = 1_000_000
LARGE_ATTENDANCE = 5_000_000
LARGE_INSTANCES = 200_000
LARGE_CHANNELS = 20_000
LARGE_MESSAGES = 1_000_000
LARGE_LOCATIONS = 500
LARGE_SCENES = 200

_LARGE_SQL = (
    # Deterministic ids: md5 of (seed, kind, index) shaped as a uuid.
    """
    INSERT INTO "static-resource" (id, hash, key, "mimeType", project, type, name,
                                   "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':s:' || i)::uuid, md5(i::text), 'projects/demo/scene-' || i || '.gltf',
           'model/gltf+json', 'demo', 'scene', 'Scene ' || i, %(launch)s, %(launch)s
    FROM generate_series(1, %(scenes)s) AS i
    """,
    """
    INSERT INTO location (id, name, "sceneId", "slugifiedName", "maxUsersPerInstance",
                          "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':l:' || i)::uuid, 'Location ' || i,
           CASE WHEN i %% 50 = 0 THEN NULL
                ELSE md5(%(seed)s || ':s:' || (1 + i %% %(scenes)s))::uuid END,
           'location-' || i, 50, %(launch)s, %(launch)s
    FROM generate_series(1, %(locations)s) AS i
    """,
    """
    INSERT INTO "user" (id, name, "isGuest", "ageVerified", "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':u:' || i)::uuid, 'user' || i, i %% 5 < 2, i %% 5 >= 2,
           %(launch)s + (%(last)s - %(launch)s) * (i::float8 / %(users)s),
           %(launch)s + (%(last)s - %(launch)s) * (i::float8 / %(users)s)
    FROM generate_series(1, %(users)s) AS i
    """,
    """
    INSERT INTO channel (id, name, "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':c:' || i)::uuid, 'channel ' || i, %(launch)s, %(launch)s
    FROM generate_series(1, %(channels)s) AS i
    """,
    # Instance j starts at first + span * j / n; every fifth is a channel (media) instance;
    # the ones started in the last two hours are still running.
    """
    INSERT INTO instance (id, "roomCode", "channelId", ended, assigned, "locationId",
                          "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':i:' || j)::uuid, upper(substr(md5(j::text), 1, 6)),
           CASE WHEN j %% 5 = 0
                THEN md5(%(seed)s || ':c:' || (1 + j %% %(channels)s))::uuid::text END,
           t.at < %(last)s - interval '2 hours', true,
           CASE WHEN j %% 5 <> 0
                THEN md5(%(seed)s || ':l:' || (1 + j %% %(locations)s))::uuid END,
           t.at, least(t.at + interval '90 minutes', %(last)s)
    FROM generate_series(1, %(instances)s) AS j,
         LATERAL (SELECT %(first)s + (%(last)s - %(first)s) * (j::float8 / %(instances)s)) AS t(at)
    """,
    """
    INSERT INTO "instance-attendance" (id, "isChannel", ended, "userId", "instanceId",
                                       "createdAt", "updatedAt", "peerIndex")
    SELECT md5(%(seed)s || ':a:' || i)::uuid, j %% 5 = 0,
           t.at < %(last)s - interval '2 hours' OR (i / %(instances)s) %% 3 = 0,
           md5(%(seed)s || ':u:' || (1 + (i::bigint * 7919) %% %(users)s))::uuid,
           md5(%(seed)s || ':i:' || j)::uuid,
           t.at, least(t.at + interval '30 minutes', %(last)s), i / %(instances)s
    FROM generate_series(0, %(attendance)s - 1) AS i,
         LATERAL (SELECT 1 + i %% %(instances)s) AS k(j),
         LATERAL (SELECT %(first)s + (%(last)s - %(first)s) * (j::float8 / %(instances)s)
                         + make_interval(mins => (i / %(instances)s)::int)) AS t(at)
    """,
    """
    INSERT INTO message (id, text, "isNotification", "channelId", "senderId",
                         "createdAt", "updatedAt")
    SELECT md5(%(seed)s || ':m:' || i)::uuid, 'message ' || i, i %% 10 = 0,
           md5(%(seed)s || ':c:' || (1 + i %% %(channels)s))::uuid,
           md5(%(seed)s || ':u:' || (1 + (i::bigint * 104729) %% %(users)s))::uuid,
           %(first)s + (%(last)s - %(first)s) * (i::float8 / %(messages)s),
           %(first)s + (%(last)s - %(first)s) * (i::float8 / %(messages)s)
    FROM generate_series(1, %(messages)s) AS i
    """,
)
# What ``build_large`` reports as done: one step per statement, then one for ANALYZE.
LARGE_STEPS = len(_LARGE_SQL) + 1


def build_large(
    conn: psycopg.Connection[Any],
    *,
    seed: int,
    first: datetime,
    last: datetime,
    done: Callable[[int], None],
) -> None:
    """Fill the platform tables server-side with the large platform, calling ``done`` per step."""
    from psycopg import sql

    params = {
        "seed": str(seed),
        "launch": first - timedelta(days=365),
        "first": first,
        "last": last,
        "users": LARGE_USERS,
        "attendance": LARGE_ATTENDANCE,
        "instances": LARGE_INSTANCES,
        "channels": LARGE_CHANNELS,
        "messages": LARGE_MESSAGES,
        "locations": LARGE_LOCATIONS,
        "scenes": LARGE_SCENES,
    }
    with conn.transaction():
        fast_commit(conn)
        for step, statement in enumerate(_LARGE_SQL, start=1):
            conn.execute(statement, params)
            done(step)
    for table in COLUMNS:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    done(LARGE_STEPS)


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """How many rows each platform table the demo fills holds."""
    from psycopg import sql

    counts = {}
    for table in COLUMNS:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def fast_commit(conn: psycopg.Connection[Any]) -> None:
    """Demo rows are rebuilt on every run: losing the last commits in a crash costs nothing."""
    # LOCAL: a session setting would outlive the transaction on a pooler's server connection.
    conn.execute("SET LOCAL synchronous_commit = off")
