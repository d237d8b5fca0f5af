"""Helpers of the fault suite: config files, waiting on server activity, reading the store."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.conftest import Databases, proc_env

APP = "analytics-cli"
SLOT = "2026-01-01T00:00:00Z"
# Sleeps this many seconds when the process runs with PGOPTIONS setting it; else not at all.
SLOW_SQL = (
    "SELECT 2 AS count FROM pg_sleep("
    "coalesce(current_setting('analytics_test.sleep', true), '0')::float8)"
)


def env_for(dbs: Databases, **extra: str) -> dict[str, str]:
    """A subprocess environment collecting from the test's source into its store."""
    return proc_env(ANALYTICS_SOURCE_DSN=dbs.source, ANALYTICS_STORE_DSN=dbs.store, **extra)


def backends(admin: str, dbname: str, **where: str) -> list[dict[str, Any]]:
    """The tool's server processes in one database (pg_stat_activity rows)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = %s",
            (APP, dbname),
        )
        names = [d.name for d in cur.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    # The query text matches by substring (a metric runs as FETCH from a cursor); others exactly.
    return [
        r
        for r in rows
        if all((v in str(r[k])) if k == "query" else r[k] == v for k, v in where.items())
    ]


def slot_rows(dbs: Databases, table: str = "analytics") -> list[tuple[str, str]]:
    """(type, count) of every stored row, ordered by type; empty when the table is missing."""
    with dbs.store_conn() as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if exists is None or exists[0] is None:
            return []
        rows = conn.execute(f'SELECT type, count::text FROM "{table}" ORDER BY type').fetchall()
    return [(str(t), str(c)) for t, c in rows]


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """Wait for a spawned process; its exit code, stdout and stderr."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def unix_target(dsn: str) -> tuple[int, Any]:
    """Where a DSN's server listens: (AF_UNIX, path) or (AF_INET, (host, port))."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class Proxy:
    """A TCP front for a PostgreSQL server that can drop the first connections it accepts."""

    def __init__(self, target: tuple[int, Any], *, refuse_first: int = 0, mute: bool = False):
        self.target = target
        self.refuse_first = refuse_first
        self.mute = mute
        self.accepted: list[float] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(time.monotonic())
            if self.mute:
                self.held.append(client)  # accepted, never answered
                continue
            if len(self.accepted) <= self.refuse_first:
                client.close()
                continue
            upstream = socket.socket(self.target[0], socket.SOCK_STREAM)
            upstream.connect(self.target[1])
            self.held += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for sock in self.held:
            with contextlib.suppress(OSError):
                sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy_factory(dbs: Databases) -> Iterator[Callable[..., Proxy]]:
    """Start TCP proxies in front of the test server; all closed afterwards."""
    made: list[Proxy] = []

    def make(**kwargs: Any) -> Proxy:
        proxy = Proxy(unix_target(dbs.admin), **kwargs)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def tcp_dsn(dsn: str, port: int) -> str:
    """The same database and user, reached over TCP 127.0.0.1:port without SSL."""
    params = conninfo_to_dict(dsn)
    return (
        f"host=127.0.0.1 port={port} dbname={params['dbname']} user={params.get('user') or 'postgres'}"
        " sslmode=disable gssencmode=disable"
    )
