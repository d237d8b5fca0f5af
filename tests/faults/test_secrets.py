"""Secrets: a password in a connection string never shows in any output, log line or error."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import PASSWORD_HOST, Databases, Result, cli, proc_env, run_proc
from tests.faults.conftest import SLOT
from tests.helpers import custom_config

PASSWORD = "Zq7-secret_Pw"
# Characters that need quoting or escaping in a conninfo, a URI and JSON.
ODD_PASSWORD = 'Qu"o te\\Sl@sh:/?#%Zq8'


def _spellings(password: str) -> set[str]:
    """Every way the password could leak: raw, URI-encoded, JSON-escaped."""
    return {password, quote(password, safe=""), json.dumps(password)[1:-1]}


def assert_no_leak(result: Result, *passwords: str) -> None:
    """Neither stdout nor stderr holds any spelling of any of the passwords."""
    for password in passwords:
        for spelling in _spellings(password):
            assert spelling not in result.stdout, (spelling, result.stdout)
            assert spelling not in result.stderr, (spelling, result.stderr)


def _kv(dsn: str, password: str) -> str:
    return make_conninfo(dsn, password=password)


def _uri(dsn: str, password: str) -> str:
    params = conninfo_to_dict(dsn)
    user = quote(str(params.get("user") or "postgres"), safe="")
    query = f"host={quote(str(params['host']), safe='')}&port={params.get('port') or 5432}"
    return f"postgresql://{user}:{quote(password, safe='')}@/{params['dbname']}?{query}"


COMMANDS: list[tuple[list[str], int]] = [
    (["collect", "--at", SLOT], 0),
    (["collect", "--at", SLOT, "--json"], 0),
    (["--log-format", "json", "-v", "collect", "--at", "2026-01-01T00:30:00Z"], 0),
    (["collect", "--dry-run", "--json"], 0),
    (["db", "init"], 0),
    (["show", "--since", "3650d"], 0),
    (["show", "--since", "3650d", "-f", "json"], 0),
    (["export", "--json"], 0),
    (["--log-format", "json", "export"], 0),
    (["metrics", "--json"], 0),
    (["config", "show"], 0),
    (["config", "check"], 0),
    (["status", "--json"], 1),
    (["--log-format", "json", "status"], 1),
]


@pytest.mark.parametrize("form", ["kv", "uri"])
@pytest.mark.parametrize("password", [PASSWORD, ODD_PASSWORD])
def test_no_command_prints_the_password(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch, form: str, password: str
) -> None:
    build = _kv if form == "kv" else _uri
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", build(dbs.source, password))
    monkeypatch.setenv("ANALYTICS_STORE_DSN", build(dbs.store, password))
    for args, code in COMMANDS:
        result = cli(*args)
        assert result.exit_code == code, (args, result.stderr)
        assert_no_leak(result, password)


@pytest.mark.parametrize("password", [PASSWORD, ODD_PASSWORD])
def test_errors_do_not_print_the_password(dbs: Databases, tmp_path: Path, password: str) -> None:
    missing = _kv(dbs.source, password).replace(dbs.source_name, "no_such_database")
    cases: list[tuple[list[str], int, str]] = [
        (["--dsn", missing, "collect"], 3, "error: cannot connect to the store database"),
        (["--dsn", missing, "--log-format", "json", "collect"], 3, '{"level": "error"'),
        (
            ["--dsn", make_conninfo("host=127.0.0.1 port=1", password=password), "db", "init"],
            3,
            "error: cannot connect to the store database",
        ),
        (
            # Double quotes are not conninfo quoting: the string cannot be parsed.
            ["--dsn", f"port=1 password={json.dumps(password)} sslmode", "db", "init"],
            2,
            "error: invalid store connection string",
        ),
        (
            ["--dsn", f"password='{password}' host='unterminated", "collect"],
            2,
            "error: invalid store connection string",
        ),
        (
            ["--dsn", f"postgresql://u:{password}@[bad/db", "config", "check"],
            2,
            "error: invalid",
        ),
        (["--dsn", missing, "export"], 3, "error: cannot connect to the store database"),
        (["--dsn", missing, "--log-format", "json", "config", "check"], 3, '{"level": "error"'),
    ]
    for args, code, start in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.stderr)
        # Every case gives the password on the command line: its warning comes first.
        first, rest = result.stderr.split("\n", 1)
        assert "--dsn holds a password" in first, (args, result.stderr)
        assert rest.startswith(start), (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert_no_leak(result, password)


def test_a_real_process_with_the_password_in_every_place(dbs: Databases, tmp_path: Path) -> None:
    config = custom_config(
        tmp_path / "s.toml",
        [("ok", "SELECT 1 AS count"), ("bad", "SELECT 'x'::int AS count")],
        source={"dsn": _kv(dbs.source, PASSWORD)},
        store={"dsn": _uri(dbs.store, PASSWORD)},
    )
    env = proc_env(PGAPPNAME="secrets-test")
    for args, code in (
        (["-c", str(config), "--log-format", "json", "-v", "collect", "--at", SLOT, "--json"], 1),
        (["-c", str(config), "config", "show"], 0),
        (["-c", str(config), "-v", "config", "check"], 1),
    ):
        result = run_proc(*args, env=env)
        assert result.exit_code == code, result.stderr
        assert_no_leak(result, PASSWORD)


# ---------------------------------------------------------------------------- a password role


@dataclass
class Role:
    """A password-authenticated login role reached over TCP."""

    name: str
    password: str
    port: int


@pytest.fixture
def password_role(dbs: Databases) -> Iterator[Role]:
    """A role with a password on a server that checks it (scram-sha-256 over TCP)."""
    role = Role(f"fault_pw_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}", 0)
    role.port = int(conninfo_to_dict(dbs.admin).get("port") or 5432)
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role.name), sql.Literal(role.password)
            )
        )
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(role.name)))
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role.name)))
    yield role
    with psycopg.connect(dbs.store, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role.name)))
    with psycopg.connect(dbs.admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role.name)))


def _tcp(role: Role, dbname: str, password: str) -> str:
    return make_conninfo(
        host=PASSWORD_HOST["host"], port=role.port, dbname=dbname, user=role.name, password=password
    )


def test_password_role_right_and_wrong(
    dbs: Databases, password_role: Role, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = password_role
    wrong = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", _tcp(role, dbs.source_name, role.password))
    monkeypatch.setenv("ANALYTICS_STORE_DSN", _tcp(role, dbs.store_name, role.password))
    for args, code in COMMANDS:
        result = cli(*args)
        assert result.exit_code == code, (args, result.stderr)
        assert_no_leak(result, role.password)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", _tcp(role, dbs.store_name, wrong))
    for args in (["collect"], ["--log-format", "json", "collect"], ["export"], ["status"]):
        result = cli(*args)
        assert result.exit_code == 3, result.stderr
        if args == ["status"]:
            # status still lists the local spool on stdout when the store cannot be read.
            assert result.stdout.endswith("store: cannot be read (the error follows on stderr)\n")
        else:
            assert result.stdout == ""
        assert "password authentication failed for user" in result.stderr
        assert role.name in result.stderr
        assert_no_leak(result, role.password, wrong)
    # A real process too: what cron would run.
    env = proc_env(
        ANALYTICS_SOURCE_DSN=_tcp(role, dbs.source_name, wrong),
        ANALYTICS_STORE_DSN=_tcp(role, dbs.store_name, role.password),
    )
    # A slot not stored yet (the runs above spooled the current one, replayed here first).
    result = run_proc(
        "--log-format", "json", "collect", "--at", "2026-01-01T01:00:00Z", "--json", env=env
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    # Exit 3 keeps the --json report on stdout and the summary record after the error.
    assert json.loads(result.stdout)["exit_code"] == 3
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records[-1]["event"] == "summary"
    [record] = [r for r in records if r["level"] == "error"]
    assert record["message"].startswith(
        f"cannot connect to the source database ({role.name}@{PASSWORD_HOST['host']}:{role.port}/"
    )
    assert_no_leak(result, role.password, wrong)


# ---------------------------------------------------------------------------- config file mode


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_config_with_password_readable_by_others_warns(
    dbs: Databases, tmp_path: Path, mode: int, warned: bool
) -> None:
    config = custom_config(
        tmp_path / "pw.toml",
        [("ok", "SELECT 1 AS count")],
        source={"dsn": _kv(dbs.source, PASSWORD)},
        store={"dsn": _kv(dbs.store, PASSWORD)},
    )
    config.chmod(mode)
    assert stat.S_IMODE(config.stat().st_mode) == mode
    result = cli("-c", str(config), "metrics")
    assert result.exit_code == 0
    warning = (
        f"warning: {config} holds a password and is readable by other users; "
        f"run: chmod 600 {config} (or move the password to PGPASSFILE)\n"
    )
    assert result.stderr == (warning if warned else "")
    assert_no_leak(result, PASSWORD)


def test_config_without_password_does_not_warn(dbs: Databases, tmp_path: Path) -> None:
    config = custom_config(
        tmp_path / "nopw.toml",
        [("ok", "SELECT 1 AS count")],
        source={"dsn": dbs.source},
        store={"dsn": dbs.store},
    )
    config.chmod(0o644)
    result = cli("-c", str(config), "metrics")
    assert (result.exit_code, result.stderr) == (0, "")


# ---------------------------------------------------------------------------- password in argv

ARGV_WARNING = (
    "warning: --dsn holds a password, which other local users can read in the process list; "
    "put it in PGPASSFILE (~/.pgpass), $ANALYTICS_DSN or a config file of mode 600"
)


@pytest.mark.parametrize("spelling", ["kv", "uri"])
def test_a_password_in_dsn_on_the_command_line_warns(
    dbs: Databases, password_role: Role, spelling: str
) -> None:
    role = password_role
    dsn = _tcp(role, dbs.store_name, role.password)
    given = _uri(dsn, role.password) if spelling == "uri" else dsn
    # A real process: what ps shows to every local user.
    result = run_proc("--dsn", given, "db", "init")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [ARGV_WARNING, "table analytics: created"]
    assert_no_leak(result, role.password)


def test_a_dsn_without_password_on_the_command_line_does_not_warn(dbs: Databases) -> None:
    result = run_proc("--dsn", dbs.store, "db", "init")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == ["table analytics: created"]
    # The same password given through the environment: no warning either.
    env = proc_env(ANALYTICS_DSN=make_conninfo(dbs.store, password=PASSWORD))
    result = run_proc("db", "init", env=env)
    assert result.exit_code == 0, result.stderr
    assert ARGV_WARNING not in result.stderr
    assert_no_leak(result, PASSWORD)
