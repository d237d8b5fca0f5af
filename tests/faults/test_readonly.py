"""Read-only source: a metric that tries to write fails alone and the platform stays unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Databases, cli
from tests.faults.conftest import SLOT
from tests.helpers import custom_config

SEED = """
INSERT INTO "user" (id, name, "createdAt", "updatedAt")
VALUES ('00000000-0000-0000-0000-000000000001', 'ada', now(), now()),
       ('00000000-0000-0000-0000-000000000002', 'grace', now(), now());
INSERT INTO instance (id, "roomCode", ended, "createdAt", "updatedAt")
VALUES ('00000000-0000-0000-0000-0000000000a1', 'room', false, now(), now());
INSERT INTO "instance-attendance" (id, "isChannel", ended, "userId", "instanceId",
                                   "createdAt", "updatedAt")
VALUES ('00000000-0000-0000-0000-0000000000b1', false, false,
        '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000a1',
        now(), now());
"""

# The catalog of the public schema: a created or dropped object shows up here.
CATALOG = """
SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' ORDER BY 1
"""


WRITERS = [
    ("deleteRows", 'DELETE FROM "user" RETURNING 1 AS count'),
    ("updateRows", "UPDATE \"user\" SET name = 'x' RETURNING 1 AS count"),
    ("insertRow", "INSERT INTO project (id) VALUES (gen_random_uuid()) RETURNING 1 AS count"),
    ("createTable", "CREATE TABLE evil AS SELECT 1 AS count"),
    (
        "cteDelete",
        'WITH gone AS (DELETE FROM "user" RETURNING id) SELECT count(*) AS count FROM gone',
    ),
    ("readWrite", "SET TRANSACTION READ WRITE"),
    ("readWriteGuc", "SELECT set_config('transaction_read_only', 'off', true) AS count"),
    ("stacked", 'SELECT 1 AS count; DELETE FROM "user"'),
    ("commitFirst", 'COMMIT; DELETE FROM "user"'),
    ("lockRows", 'SELECT 1 AS count FROM "user" FOR UPDATE'),
    ("truncate", 'TRUNCATE "instance-attendance"'),
]


def _fingerprint(dbs: Databases) -> list[tuple[object, ...]]:
    """Every object of the public schema, with a digest of each table's rows."""
    from psycopg import sql

    out: list[tuple[object, ...]] = []
    with dbs.source_conn() as conn:
        for name, kind in conn.execute(CATALOG).fetchall():
            digest = None
            if kind == "r":
                query = sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    " FROM {} AS t"
                ).format(sql.Identifier(str(name)))
                digest = conn.execute(query).fetchone()
            out.append((name, kind, digest))
    return out


def test_writing_metrics_fail_alone_and_change_nothing(dbs: Databases, tmp_path: Path) -> None:
    with dbs.source_conn() as conn:
        conn.execute(SEED)  # type: ignore[call-overload]
    before = _fingerprint(dbs)
    config = custom_config(
        tmp_path / "ro.toml",
        [
            ("usersBefore", 'SELECT count(*) AS count FROM "user"'),
            *WRITERS,
            ("usersAfter", 'SELECT count(*) AS count FROM "user"'),
        ],
        builtins=["instanceUsers"],
        source={"dsn": dbs.source},
        store={"dsn": dbs.store},
    )
    result = cli("-c", str(config), "collect", "--at", SLOT, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    outcome = {m["type"]: (m["status"], m["count"]) for m in report["metrics"]}
    assert outcome["instanceUsers"] == ("stored", 1)
    assert outcome["usersBefore"] == ("stored", 2)
    assert outcome["usersAfter"] == ("stored", 2)
    errors = {m["type"]: m.get("error") for m in report["metrics"] if m["status"] == "failed"}
    assert sorted(errors) == sorted(name for name, _ in WRITERS)
    assert all(errors.values())
    assert errors["readWriteGuc"] == (
        "cannot set transaction read-write mode inside a read-only transaction"
    )
    assert errors["lockRows"] == "cannot execute SELECT FOR UPDATE in a read-only transaction"
    # Each failure is reported on stderr as that metric's own line.
    lines = result.stderr.splitlines()
    assert lines[:-1] == [f"warning: metric {n} failed: {e}" for n, e in errors.items()]
    assert lines[-1].startswith(f"collect slot={SLOT} stored=3 present=0 failed=11 duration=")
    assert _fingerprint(dbs) == before
    with dbs.store_conn() as conn:
        stored = conn.execute("SELECT type, count FROM analytics ORDER BY type").fetchall()
    assert [(t, int(c)) for t, c in stored] == [
        ("instanceUsers", 1),
        ("usersAfter", 2),
        ("usersBefore", 2),
    ]


def test_a_read_only_violation_is_reported_by_the_server(dbs: Databases, tmp_path: Path) -> None:
    # A function that writes is the one path the SQL text cannot show: READ ONLY stops it.
    with dbs.source_conn() as conn:
        conn.execute(
            "CREATE FUNCTION sneaky() RETURNS bigint LANGUAGE plpgsql AS "
            '$$ BEGIN DELETE FROM "user"; RETURN 1; END $$'
        )
        conn.execute(SEED)  # type: ignore[call-overload]
    before = _fingerprint(dbs)
    config = custom_config(
        tmp_path / "ro.toml",
        [("sneaky", "SELECT sneaky() AS count"), ("ok", "SELECT 7 AS count")],
        source={"dsn": dbs.source},
        store={"dsn": dbs.store},
    )
    result = cli("-c", str(config), "collect", "--at", SLOT, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(m["type"], m["status"], m.get("error")) for m in report["metrics"]] == [
        ("sneaky", "failed", "cannot execute DELETE in a read-only transaction"),
        ("ok", "stored", None),
    ]
    assert _fingerprint(dbs) == before
