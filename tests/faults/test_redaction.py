"""No password in any output, whatever the spelling of the connection string and wherever it is read."""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, unquote

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_cli.dsn import describe, dsn_secrets, redact_dsn, scrub
from tests.conftest import Result, cli, proc_env, run_proc, with_db
from tests.helpers import free_port, write_config

# Printable ASCII (space, quotes, backslash, "@:/?#&=%" included) and a few non-ASCII letters.
ALPHABET = "".join(chr(c) for c in range(0x20, 0x7F)) + "éü€"
# Every generated password holds this core, so it never occurs in output by chance.
CORE = "Zq9"
PASSWORDS = st.builds(
    lambda left, right: left + CORE + right,
    st.text(ALPHABET, max_size=8),
    st.text(ALPHABET, min_size=1, max_size=8),
)


# A local TCP port nobody listens on: connecting is refused at once.
PORT = free_port()
HOST = f"127.0.0.1:{PORT}"
ENC = "enc"  # the password percent-encoded
RAW = "raw"  # the password as it is (malformed when it holds URL or libpq syntax)


def _libpq_quoted(password: str) -> str:
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _uri(scheme: str, spelling: str) -> Callable[[str], str]:
    def build(password: str) -> str:
        secret = quote(password, safe="") if spelling == ENC else password
        return f"{scheme}alice:{secret}@{HOST}/platform?connect_timeout=1"

    return build


def _kv(value: Callable[[str], str], key: str = "password") -> Callable[[str], str]:
    def build(password: str) -> str:
        return (
            f"host=127.0.0.1 port={PORT} user=alice {key}={value(password)} "
            "dbname=platform connect_timeout=1"
        )

    return build


def _query(spelling: str, key: str = "password") -> Callable[[str], str]:
    def build(password: str) -> str:
        secret = quote(password, safe="") if spelling == ENC else password
        return f"postgresql://alice@{HOST}/platform?{key}={secret}&connect_timeout=1"

    return build


# Connection strings built around a password: well-formed ones first, then the mistakes
# people make (scheme typos, unencoded URLs, libpq quoting gone wrong, misspelt keys).
FORMS: dict[str, Callable[[str], str]] = {
    "uri": _uri("postgresql://", ENC),
    "uri-postgres": _uri("postgres://", ENC),
    "query": _query(ENC),
    "kv-quoted": _kv(_libpq_quoted),
    "kv-spaced": lambda p: (
        f"host=127.0.0.1 port={PORT} password = {_libpq_quoted(p)} connect_timeout=1"
    ),
    "kv-make-conninfo": lambda p: make_conninfo(
        host="127.0.0.1", port=PORT, user="alice", password=p, connect_timeout=1
    ),
    "uri-raw": _uri("postgresql://", RAW),
    "typo-postgresq": _uri("postgresq://", RAW),
    "typo-postgresq-enc": _uri("postgresq://", ENC),
    "typo-one-slash": _uri("postgresql:/", RAW),
    "typo-no-colon": _uri("postgresql//", RAW),
    "typo-leading-space": _uri(" postgresql://", ENC),
    "typo-upper": _uri("POSTGRESQL://", ENC),
    "other-http": _uri("http://", RAW),
    "mysql": _uri("mysql://", ENC),
    "mysql-raw": _uri("mysql://", RAW),
    "mariadb": _uri("mariadb://", ENC),
    "query-raw": _query(RAW),
    "query-typo-key": _query(ENC, key="pasword"),
    "kv-unquoted": _kv(lambda p: p),
    "kv-double-quoted": _kv(lambda p: f'"{p}"'),
    "kv-unterminated": lambda p: f"host=127.0.0.1 port={PORT} password='{p}",
    "kv-unescaped": _kv(lambda p: f"'{p}'"),
    "kv-typo-key": _kv(_libpq_quoted, key="pasword"),
    "kv-typo-key-unquoted": _kv(lambda p: p, key="passwrod"),
}
WELL_FORMED = {"uri", "uri-postgres", "query", "kv-quoted", "kv-spaced", "kv-make-conninfo"}
MYSQL_FORMS = {"mysql", "mysql-raw", "mariadb"}


def spellings(password: str) -> set[str]:
    """The password as given, percent-decoded, percent-encoded and JSON-escaped."""
    return {password, unquote(password), quote(password, safe=""), json.dumps(password)[1:-1]}


def assert_no_leak(text: str, password: str, where: object) -> None:
    """No spelling of the password in ``text``."""
    for spelling in spellings(password):
        assert spelling not in text, (where, spelling, text)


# ---------------------------------------------------------------------------- the functions


@settings(max_examples=int(os.environ.get("REDACT_EXAMPLES", "400")), deadline=None)
@given(password=PASSWORDS, form=st.sampled_from(sorted(FORMS)))
@example(password="S3cretPass", form="typo-postgresq")
@example(password="p@ss Zq9", form="uri-raw")
def test_redaction_functions_never_show_the_password(password: str, form: str) -> None:
    dsn = FORMS[form](password)
    secrets = dsn_secrets(dsn)
    assert_no_leak(redact_dsn(dsn), password, (form, dsn))
    assert_no_leak(describe(dsn), password, (form, dsn))
    try:
        conninfo_to_dict(dsn)
        parsed = True
    except UnicodeDecodeError:
        parsed = False  # "%80": the tool refuses it without quoting (test_percent_bytes)
    except psycopg.ProgrammingError as exc:
        parsed = False
        # libpq's own message may quote the whole string or a piece of it.
        assert_no_leak(scrub(str(exc), secrets), password, (form, dsn, str(exc)))
    if form in WELL_FORMED:
        assert parsed, dsn
        # A well-formed string is shown with only its password masked.
        assert redact_dsn(dsn).count("***") == 1, redact_dsn(dsn)


ARGV_WARNING = (
    "warning: --dsn holds a password, which other local users can read in the process list; "
    "put it in PGPASSFILE (~/.pgpass), $ANALYTICS_DSN or a config file of mode 600"
)


def test_the_issue_spelling_reads_well() -> None:
    dsn = "postgresq://alice:S3cretPass@db.example/platform"
    result = cli("--dsn", dsn, "collect")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        ARGV_WARNING + "\n"
        'error: invalid store connection string: missing "=" after '
        '"postgresq://alice:***@db.example/platform" in connection info string\n'
        "hint: a connection URL starts with postgresql:// (or postgres://); "
        "or use key=value pairs\n"
    )


def test_percent_encoded_bytes_that_are_not_utf8() -> None:
    result = cli("--dsn", f"postgresql://alice@{HOST}/platform?password=Zq9%80", "collect")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        ARGV_WARNING + "\n"
        "error: invalid store connection string: a percent-encoded value is not UTF-8\n"
        "hint: encode each byte of a UTF-8 character (é is %C3%A9)\n"
    )


# ---------------------------------------------------------------------------- every command


@dataclass(frozen=True)
class Valid:
    """A reachable platform database (iR Engine schema) and store for the other side."""

    source: str
    store: str


@pytest.fixture(scope="module")
def valid(admin_dsn: str, platform_template: str) -> Iterator[Valid]:
    """Module-wide databases, so hypothesis examples need no per-test fixture."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"t_redact_src_{suffix}", f"t_redact_store_{suffix}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(names[0]), sql.Identifier(platform_template)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(names[1])))
    yield Valid(with_db(admin_dsn, names[0]), with_db(admin_dsn, names[1]))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# Where a connection string is read, and which side it then serves.
PLACES = {
    "--dsn": "both",
    "ANALYTICS_DSN": "both",
    "ANALYTICS_SOURCE_DSN": "source",
    "ANALYTICS_STORE_DSN": "store",
    "[source] dsn": "source",
    "[store] dsn": "store",
    "[[source]] dsn": "sources",
    "[[source]] dsn_env": "sources",
}

# "{folder}" is replaced by the example's own folder (report writes a file there).
COMMANDS: list[list[str]] = [
    ["collect"],
    ["collect", "--dry-run"],
    ["status"],
    ["status", "--anomalies"],
    ["show", "--since", "30d"],
    ["export", "--csv"],
    ["report", "--html", "{folder}/report.html"],
    ["prune", "--older-than", "3650d", "--yes"],
    ["config", "check"],
    ["config", "show"],
    ["db", "init"],
    ["metrics"],
    # Without --yes (and no terminal) the demo only names both databases in the question
    # it cannot ask: that is where it shows a DSN, without writing to the shared databases.
    ["demo", "--days", "1"],
]
STORE_COMMANDS = {
    "collect",
    "status",
    "show",
    "export",
    "report",
    "prune",
    "config check",
    "db init",
}
SOURCE_COMMANDS = {"collect", "config check"}


def _invocation(
    place: str, dsn: str, valid: Valid, folder: Path
) -> tuple[list[str], dict[str, str]]:
    """Global options and environment that put ``dsn`` in ``place`` (the other side valid)."""
    doc: dict[str, Any] = {
        "collect": {"retries": 0, "connect_timeout": "1s", "metrics": ["activeInstances"]}
    }
    # A spool of its own: a cycle spooled by one example must not land through the next.
    env: dict[str, str] = {"XDG_STATE_HOME": str(folder / "state" / uuid.uuid4().hex)}
    args: list[str] = []
    if place == "--dsn":
        args = ["--dsn", dsn]
    elif place == "ANALYTICS_DSN":
        env["ANALYTICS_DSN"] = dsn
    elif place == "ANALYTICS_SOURCE_DSN":
        env.update(ANALYTICS_SOURCE_DSN=dsn, ANALYTICS_STORE_DSN=valid.store)
    elif place == "ANALYTICS_STORE_DSN":
        env.update(ANALYTICS_SOURCE_DSN=valid.source, ANALYTICS_STORE_DSN=dsn)
    elif place == "[source] dsn":
        doc.update(source={"dsn": dsn}, store={"dsn": valid.store})
    elif place == "[store] dsn":
        doc.update(source={"dsn": valid.source}, store={"dsn": dsn})
    elif place == "[[source]] dsn":
        doc.update(source=[{"name": "eu", "dsn": dsn}], store={"dsn": valid.store})
    else:
        env["PLATFORM_EU_DSN"] = dsn
        doc.update(
            source=[{"name": "eu", "dsn_env": "PLATFORM_EU_DSN"}], store={"dsn": valid.store}
        )
    path = folder / f"redact-{uuid.uuid4().hex[:8]}.toml"
    write_config(path, doc)
    return ["-c", str(path), *args], env


def _bad_code(dsn: str, side: str) -> set[int]:
    """The exit codes a command that reaches ``dsn`` on ``side`` may end with."""
    try:
        conninfo_to_dict(dsn)
        parsed = True
    except (psycopg.ProgrammingError, UnicodeDecodeError):
        parsed = False
    if dsn.lstrip().lower().startswith(("mysql://", "mariadb://")):
        # Refused while this build has no MySQL engine; unreachable once it has one.
        return {1, 2, 3} if side == "sources" else {2, 3}
    if not parsed:
        return {2}
    if side == "sources":
        return {1}  # an unreachable [[source]] fails its own metrics only
    # libpq reads some broken strings and refuses them when connecting (a port "pa").
    return {2, 3}


def expected_codes(args: list[str], dsn: str, side: str) -> set[int]:
    """Exit codes of one command with the password's connection string on ``side``."""
    name = " ".join(args[:2]) if args[0] in ("config", "db") else args[0]
    dry = "--dry-run" in args
    if name in ("config show", "metrics"):
        return {0}
    if name == "demo":
        return {2}  # refused: a configured database needs --yes (or a malformed DSN)
    store_bad = side in ("both", "store")
    if name in STORE_COMMANDS and not dry and store_bad:
        return _bad_code(dsn, "store")
    if (name in SOURCE_COMMANDS or dry) and side != "store":
        return _bad_code(dsn, side)
    if name == "status":
        return {1}  # the valid store holds no rows (with --anomalies too)
    return {0}


def check_result(result: Result, codes: set[int], password: str, where: object) -> None:
    """The run ended as expected, with one clear error line, and no password anywhere."""
    assert result.exit_code in codes, (where, result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr, (where, result.stderr)
    assert_no_leak(result.stdout, password, where)
    assert_no_leak(result.stderr, password, where)
    if result.exit_code in (2, 3):
        errors = [
            line
            for line in result.stderr.splitlines()
            if line.startswith("error: ") or line.startswith('{"level": "error"')
        ]
        assert len(errors) == 1, (where, result.stderr)


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """Extra variables for one example (hypothesis reuses the test's environment)."""
    with mock.patch.dict(os.environ, extra):
        yield


def run_everything(password: str, form: str, place: str, valid: Valid, folder: Path) -> None:
    """Every command with the password's connection string in one place."""
    dsn = FORMS[form](password)
    options, env = _invocation(place, dsn, valid, folder)
    side = PLACES[place]
    with environment(env):
        for command in COMMANDS:
            args = [a.replace("{folder}", str(folder)) for a in command]
            result = cli(*options, *args)
            where = (form, place, args, dsn)
            check_result(result, expected_codes(args, dsn, side), password, where)
            if args == ["config", "show"] and form in WELL_FORMED and "dsn_env" not in place:
                # Redaction leaves the document valid TOML, the password masked in place.
                doc = tomllib.loads(result.stdout)
                shown = json.dumps(doc)
                assert "***" in shown, (where, result.stdout)
    # Nor in any file written: the spool names its store, never with the password.
    for path in Path(env["XDG_STATE_HOME"]).rglob("*"):
        if path.is_file():
            assert_no_leak(path.read_text("utf-8"), password, (form, place, path))
    report = folder / "report.html"
    if report.exists():
        assert_no_leak(report.read_text("utf-8"), password, (form, place, report))
        report.unlink()


# A password with every character that needs quoting somewhere, and the core.
HARD = "p@ss:/w?o#r&d= 'q\"\\%41 " + CORE + "é"


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_with_every_command(valid: Valid, tmp_path: Path, form: str) -> None:
    run_everything(HARD, form, "--dsn", valid, tmp_path)


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("form", ["uri-raw", "typo-postgresq", "kv-double-quoted", "mysql"])
def test_every_place_with_every_command(
    valid: Valid, tmp_path: Path, form: str, place: str
) -> None:
    run_everything(HARD, form, place, valid, tmp_path)


@settings(
    max_examples=int(os.environ.get("REDACT_EXAMPLES", "300")) // 10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    password=PASSWORDS,
    form=st.sampled_from(sorted(FORMS)),
    place=st.sampled_from(sorted(PLACES)),
)
def test_every_command_with_generated_passwords(
    valid: Valid, tmp_path: Path, password: str, form: str, place: str
) -> None:
    run_everything(password, form, place, valid, tmp_path)


@pytest.mark.parametrize(
    ("form", "place"),
    [("typo-postgresq", "--dsn"), ("kv-unquoted", "[[source]] dsn_env"), ("uri", "[store] dsn")],
)
def test_real_processes_with_json_logs(valid: Valid, tmp_path: Path, form: str, place: str) -> None:
    dsn = FORMS[form](HARD)
    options, env = _invocation(place, dsn, valid, tmp_path)
    for args in (["collect"], ["config", "check"], ["config", "show"]):
        result = run_proc(*options, "--log-format", "json", "-v", *args, env=proc_env(**env))
        where = (form, place, args)
        check_result(result, expected_codes(args, dsn, PLACES[place]), HARD, where)
        for line in result.stderr.splitlines():
            assert isinstance(json.loads(line), dict), (where, line)
