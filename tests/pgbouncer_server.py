"""pgbouncer (Debian's package) in front of the test PostgreSQL, run as an unprivileged account."""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_cli.engines.postgresql import embedded
from tests.helpers import free_port, wait_for
from tests.required import unavailable

# Another binary than the one on PATH or in /usr/sbin (Debian's place for it).
BINARY = os.environ.get("ANALYTICS_PGBOUNCER")
# pgbouncer refuses to run as root; as root it runs as this account (created when missing).
ACCOUNT = "analytics_pgbouncer"
POOL_SIZE = 2
MODES = ("transaction", "session")


@dataclass(frozen=True)
class Bouncer:
    """A running pgbouncer: its pool mode, where it listens and the role it logs in as."""

    mode: str
    port: int
    user: str
    folder: Path

    def dsn(self, dbname: str) -> str:
        """A connection string for one database of the server behind pgbouncer."""
        return make_conninfo(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=self.user,
            sslmode="disable",
            gssencmode="disable",
        )

    def log(self) -> str:
        """pgbouncer's log so far (for failure messages)."""
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def show(self, what: str) -> list[dict[str, object]]:
        """Rows of an admin console command (``SHOW POOLS``): simple protocol, no transaction."""
        with psycopg.connect(
            self.dsn("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor
        ) as conn:
            cur = conn.execute(what)
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def pgbouncer_binary() -> str | None:
    """Where pgbouncer is installed (Debian puts it in /usr/sbin, often not on PATH)."""
    if BINARY is not None:
        return shutil.which(BINARY)
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


def _account() -> pwd.struct_passwd:
    """The account pgbouncer runs as: this user, or as root an unprivileged system account."""
    if os.geteuid() != 0:
        return pwd.getpwnam(getpass.getuser())
    try:
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", ACCOUNT],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(ACCOUNT)


def _server_role(admin_dsn: str, name: str) -> None:
    """A login role named like the account: peer authentication on a Unix socket matches it."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            return
        # Superuser: the tests create tables in databases another role owns (PostgreSQL 15
        # grants no CREATE on public to others). Least privilege is tested without pgbouncer.
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(name)))


def _config(admin_dsn: str, mode: str, port: int, user: str, folder: Path) -> str:
    params = conninfo_to_dict(admin_dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    server_port = int(params.get("port") or 5432)
    return f"""\
[databases]
* = host={host} port={server_port} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
admin_users = {user}
pool_mode = {mode}
default_pool_size = {POOL_SIZE}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
server_reset_query = DISCARD ALL
query_wait_timeout = 120
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


def _wait_ready(bouncer: Bouncer, proc: subprocess.Popen[bytes]) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {proc.returncode}: {bouncer.log()}")
        bouncer.show("SHOW VERSION")
        return True

    try:
        wait_for("pgbouncer", answers, deadline=30, errors=(psycopg.OperationalError,))
    except AssertionError:
        raise RuntimeError(f"pgbouncer did not answer: {bouncer.log()}") from None


@contextlib.contextmanager
def running(admin_dsn: str, mode: str) -> Iterator[Bouncer]:
    """Start pgbouncer in ``mode`` pooling in front of the server of ``admin_dsn``."""
    binary = pgbouncer_binary()
    if binary is None:
        raise FileNotFoundError("pgbouncer")
    account = _account()
    _server_role(admin_dsn, account.pw_name)
    folder = Path(tempfile.mkdtemp(prefix=f"analytics-cli-pgbouncer-{mode}-"))
    try:
        port = free_port()
        (folder / "pgbouncer.ini").write_text(
            _config(admin_dsn, mode, port, account.pw_name, folder)
        )
        (folder / "userlist.txt").write_text(f'"{account.pw_name}" ""\n')
        for path in (folder, *folder.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        as_account: dict[str, Any] = {}
        if os.geteuid() == 0:
            as_account = {"user": account.pw_uid, "group": account.pw_gid}
            # The embedded server's socket folder admits its account's group only.
            with contextlib.suppress(KeyError):
                as_account["extra_groups"] = [pwd.getpwnam(embedded.SYSTEM_USER).pw_gid]
        proc = subprocess.Popen(
            [binary, str(folder / "pgbouncer.ini")],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **as_account,  # type: ignore[arg-type]
        )
        bouncer = Bouncer(mode, port, account.pw_name, folder)
        try:
            _wait_ready(bouncer, proc)
            yield bouncer
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", params=MODES)
def pgbouncer(request: pytest.FixtureRequest) -> Iterator[Bouncer]:
    """pgbouncer with a pool of 2 server connections, in transaction and in session mode."""
    if pgbouncer_binary() is None:
        reason = f"pgbouncer is not installed ({BINARY or 'apt-get install pgbouncer'})"
        unavailable("PGBOUNCER", reason)
    # Asked for only now: a skip must not start a server first.
    admin_dsn = request.getfixturevalue("admin_dsn")
    with running(admin_dsn, request.param) as bouncer:
        yield bouncer
