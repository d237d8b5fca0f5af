"""A throwaway MariaDB server for the tests (and the benchmark), plus fresh platform databases.

Debian's ``mariadb-server`` provides ``mariadb-install-db`` and ``mariadbd``. As root the
server runs as the ``mysql`` account, in a private folder that account owns, on a unix
socket there and a free 127.0.0.1 port. Without the binaries (or PyMySQL) the tests that
need the server are skipped with the reason, unless ``ANALYTICS_REQUIRE_MARIADB=1`` (CI)
makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import free_port
from tests.required import unavailable

SCHEMA_SQL = Path(__file__).resolve().parent.parent / "analytics_cli" / "ir_engine_schema.mysql.sql"
ADMIN_USER = "analytics_admin"
ADMIN_PASSWORD = "admin-pw-4711"
# The platform tables in the schema file, in a stable order (for checksums).
PLATFORM_TABLES = (
    "user",
    "project",
    "static-resource",
    "location",
    "instance",
    "instance-attendance",
    "channel",
    "channel-user",
    "message",
    "analytics",
)


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def missing() -> str | None:
    """Why no MariaDB server can be started here, or None when one can."""
    for name in ("mariadb-install-db", "mariadbd"):
        if _binary(name) is None:
            return f"{name} not found (apt-get install mariadb-server)"
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return "PyMySQL is not installed (pip install -e '.[dev]')"
    return None


@dataclass(frozen=True)
class MariaDB:
    """A running server: where it listens and how the admin account connects."""

    home: Path
    port: int
    socket: Path
    # The CA that signed the server's certificate (for 127.0.0.1); None without openssl.
    ca: Path | None = None

    def url(
        self, database: str = "", user: str = ADMIN_USER, password: str = ADMIN_PASSWORD
    ) -> str:
        """A mysql:// connection string over TCP."""
        secret = f":{quote(password, safe='')}" if password else ""
        return f"mysql://{quote(user, safe='')}{secret}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str | None = None, **extra: Any) -> Any:
        """An autocommit admin connection (PyMySQL) over the socket; several statements allowed."""
        import pymysql
        from pymysql.constants import CLIENT

        return pymysql.connect(
            unix_socket=str(self.socket),
            user=ADMIN_USER,
            password=ADMIN_PASSWORD,
            database=database,
            autocommit=True,
            charset="utf8mb4",
            client_flag=CLIENT.MULTI_STATEMENTS,
            **extra,
        )


def _certificates(folder: Path) -> list[str]:
    """A CA and a server certificate for 127.0.0.1 / localhost; server options, or [] without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return []
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    quiet = {"check": True, "capture_output": True, "timeout": 60}
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=analytics-cli test CA",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
        ],
        **quiet,
    )  # type: ignore[call-overload]
    subprocess.run(
        [
            openssl,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        **quiet,
    )  # type: ignore[call-overload]
    subprocess.run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            str(cert),
        ],
        **quiet,
    )  # type: ignore[call-overload]
    for path in (ca, key, cert):
        os.chmod(path, 0o644)
    return [f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}"]


@contextlib.contextmanager
def server(
    *, buffer_pool: str = "256M", tls: bool = True, fresh: bool = False
) -> Iterator[MariaDB]:
    """Install a data directory, start mariadbd, create the admin account; stop and remove.

    ``fresh``: as ``mariadb-install-db`` sets a server up by default (its test database and
    anonymous accounts) and resolving client host names, as a new user's server does."""
    home = Path(tempfile.mkdtemp(prefix="analytics-cli-mariadb-"))
    data, run = home / "data", home / "run"
    data.mkdir()
    run.mkdir()
    as_root = os.geteuid() == 0
    account = ["--user=mysql"] if as_root else []
    if as_root:
        entry = pwd.getpwnam("mysql")
        for path in (home, data, run):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    init = home / "init.sql"
    init.write_text(
        f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';\n"
        f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'localhost' IDENTIFIED BY '{ADMIN_PASSWORD}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'localhost' WITH GRANT OPTION;\n"
    )
    os.chmod(init, 0o644)
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                str(_binary("mariadb-install-db")),
                "--no-defaults",
                *account,
                f"--datadir={data}",
                *([] if fresh else ["--skip-test-db"]),
                "--auth-root-authentication-method=socket",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        tls_options = _certificates(run) if tls else []
        port = free_port()
        sock = run / "mysqld.sock"
        log = home / "error.log"
        proc = subprocess.Popen(
            [
                str(_binary("mariadbd")),
                "--no-defaults",
                *account,
                f"--datadir={data}",
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={run / 'mysqld.pid'}",
                f"--log-error={log}",
                f"--init-file={init}",
                f"--tmpdir={run}",
                *([] if fresh else ["--skip-name-resolve"]),
                "--skip-log-bin",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
                "--max-connections=300",
                f"--innodb-buffer-pool-size={buffer_pool}",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--sync-binlog=0",
                *tls_options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        instance = MariaDB(home, port, sock, run / "ca.pem" if tls_options else None)
        _wait(instance, proc, log)
        yield instance
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def _wait(instance: MariaDB, proc: subprocess.Popen[bytes], log: Path) -> None:
    import pymysql

    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"mariadbd exited with {proc.returncode}:\n{text[-3000:]}")
        # A plain socket first: PyMySQL leaks the socket of a refused unix-socket connect.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(instance.socket))
                ready = True
            except OSError:
                ready = False
        if ready:
            try:
                instance.connect().close()
                return
            except pymysql.err.OperationalError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mariadbd did not accept connections within 120 s (see {log})")
        time.sleep(0.2)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """One MariaDB server for the session (skipped, or failed in CI, when there is none)."""
    reason = missing()
    if reason is not None:
        unavailable("MARIADB", reason)
    with server() as instance:
        yield instance


@pytest.fixture(scope="session")
def mysql_template(mariadb: MariaDB) -> list[str]:
    """The platform schema loaded once; its tables' CREATE statements, replayed per database."""
    name = "analytics_cli_test_platform"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"USE `{name}`")
        cur.execute(SCHEMA_SQL.read_text())
        while cur.nextset():
            pass
        statements = []
        for table in PLATFORM_TABLES:
            cur.execute(f"SHOW CREATE TABLE `{table}`")
            row = cur.fetchone()
            assert row is not None
            statements.append(str(row[1]))
    return statements


@dataclass(frozen=True)
class MySQLPlatform:
    """A fresh platform database on the session's MariaDB."""

    server: MariaDB
    name: str

    @property
    def url(self) -> str:
        """A mysql:// URL of the admin account for this database."""
        return self.server.url(self.name)

    def connect(self, **extra: Any) -> Any:
        """An autocommit admin connection to this database."""
        return self.server.connect(self.name, **extra)

    def checksums(self) -> dict[str, object]:
        """CHECKSUM TABLE of every table, and the list of tables: any change shows."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW FULL TABLES")
            tables = sorted(str(r[0]) for r in cur.fetchall())
            sums: dict[str, object] = {"tables": tables}
            for table in tables:
                cur.execute(f"CHECKSUM TABLE `{table}` EXTENDED")
                row = cur.fetchone()
                assert row is not None
                sums[table] = row[1]
        return sums


@pytest.fixture
def mysql_platform(mariadb: MariaDB, mysql_template: list[str]) -> Iterator[MySQLPlatform]:
    """A new database holding the iR Engine schema (MySQL types), dropped afterwards."""
    name = f"t_my_{uuid.uuid4().hex[:10]}"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"USE `{name}`")
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        for statement in mysql_template:
            cur.execute(statement)
        cur.execute("SET FOREIGN_KEY_CHECKS = 1")
    yield MySQLPlatform(mariadb, name)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(autouse=True)
def no_mysql_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform's MYSQL_* variables of the machine never leak into a test."""
    for name in list(os.environ):
        if name.startswith("MYSQL_"):
            monkeypatch.delenv(name, raising=False)
