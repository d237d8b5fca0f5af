"""Least privilege: a source role with SELECT only, a store role with SELECT, INSERT only."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests import platform_data
from tests.conftest import Databases, cli

AT = "2026-11-29T10:10:00Z"  # inside platform_data.SLOT


@dataclass(frozen=True)
class Roles:
    """The two login roles and connection strings that log in as them."""

    source_role: str
    store_role: str
    source: str
    store: str


def _login(admin: str, dbname: str, role: str, password: str) -> str:
    """A connection string for ``role``: the admin's socket where the server trusts it, else
    TCP with the password (Debian's PostgreSQL: peer on the socket, scram over TCP)."""
    local = make_conninfo(admin, dbname=dbname, user=role, password=password)
    try:
        psycopg.connect(local, connect_timeout=5).close()
        return local
    except psycopg.OperationalError:
        port = conninfo_to_dict(admin).get("port") or 5432
        return make_conninfo(
            host="127.0.0.1", port=port, dbname=dbname, user=role, password=password
        )


def _grant(dsn: str, statement: str, *names: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(*(sql.Identifier(n) for n in names)))


GRANTS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "deployments.md"


def documented_grants() -> tuple[list[str], list[str]]:
    """The statements of the docs' "Roles and grants" SQL: (source part, store part)."""
    text = GRANTS_PAGE.read_text()
    section = text[text.index("## Roles and grants") :]
    block = section[
        section.index("```sql\n") + 7 : section.index("```", section.index("```sql") + 6)
    ]
    lines = block.splitlines()
    split = next(i for i, line in enumerate(lines) if line.startswith("-- The store database"))

    def statements(part: list[str]) -> list[str]:
        code = " ".join(line.split("--", 1)[0] for line in part)
        return [s.strip() for s in code.split(";") if s.strip()]

    return statements(lines[:split]), statements(lines[split:])


@pytest.fixture
def roles(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Iterator[Roles]:
    """The platform loaded; the docs' "Roles and grants" SQL run as printed there (with
    this test's database and role names); ``analytics`` created by the owner role."""
    with dbs.source_conn() as conn:
        platform_data.load(conn)
    suffix = uuid.uuid4().hex[:8]
    names = {
        "analytics_reader": f"lp_reader_{suffix}",
        "analytics_writer": f"lp_writer_{suffix}",
        "analytics_owner": f"lp_owner_{suffix}",
        "platform": dbs.source_name,
        "metrics": dbs.store_name,
    }
    password = f"pw-{uuid.uuid4().hex}"

    def named(statement: str) -> str:
        statement = statement.replace("'...'", f"'{password}'")
        return re.sub(r"\b(\w+)\b", lambda m: names.get(m.group(1), m.group(1)), statement)

    source_sql, store_sql = documented_grants()
    on_table = [s for s in store_sql if " ON analytics " in f"{s} "]
    for dsn, statements in ((dbs.source, source_sql), (dbs.store, store_sql)):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in statements:
                if statement not in on_table:
                    conn.execute(named(statement).encode())
    owner = _login(dbs.admin, dbs.store_name, names["analytics_owner"], password)
    # In the environment, as a deployment passes it (a password in --dsn draws a warning).
    with monkeypatch.context() as env:
        env.setenv("ANALYTICS_DSN", owner)
        created = cli("db", "init")
    assert (created.exit_code, created.stderr) == (0, "table analytics: created\n")
    # As printed: GRANT ... ON analytics, which exists only now that db init made it.
    assert on_table
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        for statement in on_table:
            conn.execute(named(statement).encode())
    yield Roles(
        names["analytics_reader"],
        names["analytics_writer"],
        _login(dbs.admin, dbs.source_name, names["analytics_reader"], password),
        _login(dbs.admin, dbs.store_name, names["analytics_writer"], password),
    )
    made = [names[k] for k in ("analytics_reader", "analytics_writer", "analytics_owner")]
    for dsn in (dbs.source, dbs.store):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for role in made:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        for role in made:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def narrow(roles: Roles, monkeypatch: pytest.MonkeyPatch) -> Roles:
    """Source and store configured to log in as the narrow roles."""
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", roles.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", roles.store)
    return roles


def _privileges(dsn: str, role: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [
            p
            for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
            if conn.execute("SELECT has_table_privilege(%s, %s, %s)", (role, table, p)).fetchone()
            == (True,)
        ]


def test_the_roles_are_narrow(dbs: Databases, narrow: Roles) -> None:
    assert _privileges(dbs.source, narrow.source_role, '"user"') == ["SELECT"]
    assert _privileges(dbs.store, narrow.store_role, "analytics") == ["SELECT", "INSERT"]
    with psycopg.connect(dbs.store) as conn:
        row = conn.execute(
            "SELECT has_schema_privilege(%s, 'public', 'CREATE'), "
            "pg_get_userbyid(relowner) <> %s FROM pg_class WHERE oid = 'analytics'::regclass",
            (narrow.store_role, narrow.store_role),
        ).fetchone()
    # PostgreSQL 15+ gives no CREATE on public; on 14 and older the fixture would say so here.
    assert row == (False, True)


@pytest.mark.parametrize("parallel", [1, 2])
def test_collect_with_select_and_insert_only(
    dbs: Databases, narrow: Roles, tmp_path: Path, parallel: int
) -> None:
    config = tmp_path / "narrow.toml"
    config.write_text(f"[collect]\nparallel = {parallel}\nretries = 0\n")
    result = cli("-c", str(config), "collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    assert {m["type"]: m["count"] for m in json.loads(result.stdout)["metrics"]} == (
        platform_data.EXPECTED
    )
    again = cli("-c", str(config), "collect", "--at", AT, "--json")
    assert again.exit_code == 0, again.stderr
    assert {m["status"] for m in json.loads(again.stdout)["metrics"]} == {"present"}
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count FROM analytics").fetchall()
    assert {t: int(c) for t, c in rows} == platform_data.EXPECTED
    # Reading back and checking need nothing more.
    for args, code in (
        (["db", "init"], 0),
        (["show", "--since", "3650d"], 0),
        (["export", "--csv"], 0),
        (["config", "check"], 0),
        (["prune", "--older-than", "3650d", "--dry-run"], 0),
        (["status"], 1),  # stale: the slot is in the past
    ):
        done = cli("-c", str(config), *args)
        assert done.exit_code == code, (args, done.stderr)
        assert "error: store" not in done.stderr and "permission" not in done.stderr


def documented_rollup_grants() -> list[str]:
    """The statements of the docs' SQL block on the rollups' grants."""
    text = GRANTS_PAGE.read_text()
    section = text[text.index("Hourly and daily rollups") :]
    block = section[
        section.index("```sql\n") + 7 : section.index("```", section.index("```sql") + 6)
    ]
    code = " ".join(line.split("--", 1)[0] for line in block.splitlines())
    return [s.strip() for s in code.split(";") if s.strip()]


def test_the_documented_rollup_grants_let_each_cycle_keep_its_hour(
    dbs: Databases, narrow: Roles
) -> None:
    statements = documented_rollup_grants()
    assert statements and all(" TO analytics_" in s for s in statements)
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        for statement in statements:
            named = statement.replace("analytics_writer", narrow.store_role)
            named = named.replace("analytics_reader", narrow.source_role)
            conn.execute(named.encode())
    done = cli("collect", "--at", AT)
    assert done.exit_code == 0, done.stderr
    assert "rollups" not in done.stderr
    with psycopg.connect(dbs.store) as conn:
        row = conn.execute(
            "SELECT count(*) FROM analytics_hourly WHERE bucket = date_trunc('hour', %s::timestamptz)",
            (AT,),
        ).fetchone()
    assert row is not None and row[0] > 0


def test_replace_and_prune_name_the_privilege_they_need(dbs: Databases, narrow: Roles) -> None:
    assert cli("collect", "--at", AT).exit_code == 0
    replaced = cli("collect", "--at", AT, "--replace")
    assert (replaced.exit_code, replaced.stdout) == (3, "")
    # The error and its hint, then the cycle's summary line (nothing stored).
    *said, summary = replaced.stderr.splitlines()
    assert said == [
        "error: store write failed, nothing was stored: permission denied for table analytics",
        f"hint: collect --replace needs UPDATE and DELETE on analytics in database {dbs.store_name}: "
        f"GRANT UPDATE, DELETE ON analytics TO {narrow.store_role}",
    ]
    assert summary.startswith("collect slot=") and " stored=0 " in summary
    # The rollups are the table owner's: a role that may neither create nor read them is
    # told so in one line, with the GRANT, and nothing is half-built.
    rebuilt = cli("db", "rollup", "--rebuild")
    assert (rebuilt.exit_code, rebuilt.stdout) == (3, "")
    assert rebuilt.stderr.splitlines() == [
        "error: rollup rebuild: this role may not create or read the rollup tables",
        "hint: run db init as the owner of analytics, or GRANT SELECT, INSERT, DELETE ON "
        "analytics_hourly, analytics_daily and SELECT, UPDATE ON analytics_rollup_state to "
        "this role",
    ]
    pruned = cli("prune", "--older-than", "1d", "--yes")
    assert (pruned.exit_code, pruned.stdout) == (3, "")
    assert pruned.stderr == (
        "error: prune stopped after 0 rows: permission denied for table analytics\n"
        f"hint: prune needs DELETE and UPDATE on analytics in database {dbs.store_name}: "
        f"GRANT DELETE, UPDATE ON analytics TO {narrow.store_role}\n"
    )
    logged = cli("--log-format", "json", "prune", "--older-than", "1d", "--yes")
    record = json.loads(logged.stderr)
    assert record["hint"].startswith(
        f"prune needs DELETE and UPDATE on analytics in database {dbs.store_name}: GRANT"
    )
    # The GRANTs the hints print are enough.
    _grant(dbs.store, "GRANT UPDATE, DELETE ON analytics TO {}", narrow.store_role)
    assert cli("collect", "--at", AT, "--replace").exit_code == 0
    done = cli("prune", "--older-than", "1d", "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("deleted 9 rows older than ")


def test_the_table_must_exist_for_a_role_without_create(dbs: Databases, narrow: Roles) -> None:
    with dbs.store_conn() as conn:
        conn.execute("DROP TABLE analytics")
    result = cli("collect", "--at", AT)
    assert (result.exit_code, result.stdout) == (3, "")
    error, hint, summary = result.stderr.splitlines()
    assert summary.startswith("collect slot=") and " stored=0 " in summary
    assert error.startswith(
        "error: cannot prepare the store table: permission denied for schema public"
    )
    assert hint == (
        "hint: creating analytics needs CREATE on its schema: "
        "run 'analytics-cli db init' once as a role that has it"
    )


def test_config_check_reports_the_store_privileges_and_what_to_grant(
    dbs: Databases, narrow: Roles
) -> None:
    role, db = narrow.store_role, dbs.store_name
    check = cli("config", "check")
    # SELECT, INSERT: collect can write; --replace and prune are told what to grant.
    assert check.exit_code == 0, check.stderr
    tail = check.stdout.split("store privileges missing on analytics:\n", 1)[1].splitlines()
    assert tail == [
        "  collect --replace  collect --replace needs UPDATE and DELETE on analytics "
        f"in database {db}: GRANT UPDATE, DELETE ON analytics TO {role}",
        "  prune              prune needs DELETE and UPDATE on analytics "
        f"in database {db}: GRANT DELETE, UPDATE ON analytics TO {role}",
    ]
    # Without INSERT collect would fail: config check says so, exit 1.
    _grant(dbs.store, "REVOKE INSERT ON analytics FROM {}", role)
    refused = cli("config", "check")
    assert refused.exit_code == 1
    assert (
        "  collect            collect needs INSERT on analytics "
        f"in database {db}: GRANT INSERT ON analytics TO {role}"
    ) in refused.stdout
    assert refused.stderr == "error: the store account lacks INSERT: collect would fail\n"
    assert cli("collect", "--at", AT).exit_code == 3
    # The GRANTs printed are enough: nothing is missing.
    _grant(dbs.store, "GRANT INSERT, UPDATE, DELETE ON analytics TO {}", role)
    granted = cli("config", "check")
    assert granted.exit_code == 0
    assert "store privileges" not in granted.stdout


def test_config_check_says_when_the_first_collect_could_not_create_the_table(
    narrow: Roles, tmp_path: Path
) -> None:
    config = tmp_path / "other.toml"
    config.write_text('[store]\ntable = "analytics_elsewhere"\n')
    check = cli("-c", str(config), "config", "check")
    assert check.exit_code == 1
    assert check.stdout.splitlines()[-2:] == [
        "store privileges missing on analytics_elsewhere:",
        "  collect  CREATE in the table's schema: run 'analytics-cli db init' once as a role "
        "that has it",
    ]
    assert check.stderr == "error: the store account lacks CREATE: collect would fail\n"
    # As config check said: collect cannot create it either.
    assert cli("-c", str(config), "collect", "--at", AT).exit_code == 3
