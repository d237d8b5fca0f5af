"""Real-PostgreSQL fixtures: an embedded server (or $ANALYTICS_TEST_DSN) and fresh databases."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from analytics_cli.engines.postgresql import embedded, embedded_files
from tests import required  # noqa: F401 (reads the ANALYTICS_REQUIRE_* switches now)
from tests.scratch import with_db

# Fixtures of real servers beside PostgreSQL: MariaDB (MySQL sources), pgbouncer (tests/deploy/).
pytest_plugins = ["tests.mariadb_server", "tests.pgbouncer_server"]

# A suite started as a background job of a non-interactive shell (`.ci/run &`) inherits
# SIGINT ignored, and so would every process it starts: the tests that interrupt a run
# with SIGINT need it delivered, as it is under a terminal or cron.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SCHEMA_SQL = Path(__file__).resolve().parent.parent / "analytics_cli" / "ir_engine_schema.sql"
TEMPLATE = "analytics_cli_test_platform"


# Where the test server takes password logins over TCP (scram-sha-256): set by admin_dsn.
# Debian's server listens on localhost; the embedded one on a loopback address of its own,
# so that it never collides with another server on port 5432.
PASSWORD_HOST: dict[str, str] = {"host": "127.0.0.1"}


def _free_loopback(port: int) -> str:
    """A 127.x.y.z address where ``port`` is free (the whole 127/8 is the loopback)."""
    for _ in range(50):
        address = f"127.{secrets.randbelow(250) + 2}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        return address
    raise AssertionError(f"no free loopback address for port {port}")


def _require_passwords_over_tcp(dsn: str, address: str) -> None:
    """Ask for a password (scram-sha-256) at ``address``: a first pg_hba.conf line, reloaded."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SHOW hba_file").fetchone()
        assert row is not None
        hba = Path(str(row[0]))
        # A loopback client's address is 127.0.0.1 whatever the server's address; this
        # server takes TCP only on its own address, so all of 127/8 may ask for a password.
        hba.write_text("host all all 127.0.0.0/8 scram-sha-256\n" + hba.read_text())
        conn.execute("SELECT pg_reload_conf()")
    # The postmaster rereads the file when it gets to the signal: wait until a login over
    # TCP without a password is refused.
    probe = make_conninfo(dsn, host=address, connect_timeout=5)
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(probe).close()
        except psycopg.OperationalError as exc:
            if "password" in str(exc):
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError("the test server still takes logins over TCP without a password")
        time.sleep(0.05)


def pytest_sessionfinish() -> None:
    """Remove the embedded servers' data (kept outside their homes as root) of homes gone."""
    if not embedded_files.SERVER_ROOT.is_dir():
        return
    for folder in embedded_files.SERVER_ROOT.iterdir():
        marker = folder / "home"
        if marker.is_file() and not Path(marker.read_text().strip()).exists():
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A superuser connection string: $ANALYTICS_TEST_DSN, else a throwaway embedded server."""
    given = os.environ.get("ANALYTICS_TEST_DSN")
    if given:
        yield given
        return
    # Not under pytest's basetemp: pytest resets that folder's mode to 0700 when another
    # session starts, which would lock the unprivileged server account out of its data.
    home = Path(tempfile.mkdtemp(prefix="analytics-cli-test-"))
    address = _free_loopback(embedded.PORT)
    options = (
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
        f"-c listen_addresses={address}"
    )
    try:
        with embedded.server(home, databases=(), options=options) as server:
            dsn = server.dsn("postgres")
            _require_passwords_over_tcp(dsn, address)
            PASSWORD_HOST["host"] = address
            yield dsn
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def platform_template(admin_dsn: str) -> str:
    """A template database holding the iR Engine schema, created once per session."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    with psycopg.connect(with_db(admin_dsn, TEMPLATE), autocommit=True) as conn:
        conn.execute(SCHEMA_SQL.read_text())  # type: ignore[call-overload]
    return TEMPLATE


@dataclass
class Databases:
    """A fresh source (iR Engine schema) and store database for one test."""

    admin: str
    source: str
    store: str
    source_name: str
    store_name: str

    def source_conn(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.source, autocommit=True)

    def store_conn(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.store, autocommit=True)


@pytest.fixture
def dbs(admin_dsn: str, platform_template: str) -> Iterator[Databases]:
    """Fresh databases per test, dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    source_name, store_name = f"t_src_{suffix}", f"t_store_{suffix}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(source_name), sql.Identifier(platform_template)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(store_name)))
    yield Databases(
        admin_dsn,
        with_db(admin_dsn, source_name),
        with_db(admin_dsn, store_name),
        source_name,
        store_name,
    )
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in (source_name, store_name):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No stray configuration: a private HOME and cwd, no ANALYTICS_* or libpq variables."""
    for name in list(os.environ):
        if (
            name.startswith(("ANALYTICS_", "PG", "XDG_")) or name == "STATE_DIRECTORY"
        ) and name != "ANALYTICS_TEST_DSN":
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    return home


@dataclass
class Result:
    """What a CLI run produced."""

    exit_code: int
    stdout: str
    stderr: str


def cli(*args: str) -> Result:
    """Run the CLI in-process (through ``main``, so exit codes are the real ones)."""
    from analytics_cli.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def proc_env(**extra: str) -> dict[str, str]:
    """The current (cleaned) environment plus extra variables, for subprocesses."""
    env = dict(os.environ)
    env.update(extra)
    return env


def run_proc(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """Run the CLI as a real process."""
    done = subprocess.run(
        [sys.executable, "-m", "analytics_cli", *args],
        capture_output=True,
        text=True,
        env=env or proc_env(),
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the CLI as a background process."""
    return subprocess.Popen(
        [sys.executable, "-m", "analytics_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or proc_env(),
    )
