"""A streaming hot standby (pg_basebackup -R) of a primary of our own, both embedded PostgreSQL."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from analytics_cli.engines.postgresql import embedded
from tests import platform_data
from tests.conftest import SCHEMA_SQL

PLATFORM = "platform"
# The primary writes nothing on its own (no autovacuum): recovery conflicts on the standby
# happen only when a test makes one.
PRIMARY_OPTIONS = (
    "-c fsync=off -c full_page_writes=off -c autovacuum=off "
    "-c wal_level=replica -c max_wal_senders=4"
)


@dataclass(frozen=True)
class Replica:
    """A primary and its hot standby, each with the hand-counted platform database."""

    primary: str
    standby: str

    def caught_up(self, timeout: float = 60) -> None:
        """Wait until the standby has replayed everything the primary has written."""
        with psycopg.connect(self.primary, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby, autocommit=True) as conn:
            while True:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                if done and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError("the standby did not catch up")
                time.sleep(0.05)


def _as_server(args: list[str], timeout: float = 120) -> None:
    """Run a server tool as the embedded server's account (PostgreSQL refuses root)."""
    extra: dict[str, int] = {}
    if os.geteuid() == 0:
        account = pwd.getpwnam(embedded.SYSTEM_USER)
        extra = {"user": account.pw_uid, "group": account.pw_gid}
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        check=False,
        **extra,  # type: ignore[arg-type]
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def _owned_by_server(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        account = pwd.getpwnam(embedded.SYSTEM_USER)
        os.chown(path, account.pw_uid, account.pw_gid)
    return path


@pytest.fixture(scope="module")
def replica() -> Iterator[Replica]:
    """A primary of our own (the shared test server may not replicate) and a hot standby."""
    home = Path(tempfile.mkdtemp(prefix="analytics-cli-replica-"))
    # The standby lives in this test's folder: its server account must reach it.
    home.chmod(0o711)
    bins = embedded.server_bin_dir()
    try:
        with embedded.server(
            home / "primary", databases=(PLATFORM,), options=PRIMARY_OPTIONS
        ) as primary:
            with psycopg.connect(primary.dsn(PLATFORM), autocommit=True) as conn:
                conn.execute(SCHEMA_SQL.read_text())  # type: ignore[call-overload]
                platform_data.load(conn)
            standby_home = _owned_by_server(home / "standby")
            pgdata = standby_home / "pgdata"
            sockets = _owned_by_server(standby_home / "run")
            # -R writes standby.signal and primary_conninfo: a streaming replica.
            _as_server(
                [str(bins / "pg_basebackup"), "-D", str(pgdata), "-R", "-X", "stream",
                 "-c", "fast", "-h", str(primary.socket_dir), "-p", str(embedded.PORT),
                 "-U", embedded.SERVER_USER]
            )  # fmt: skip
            # Queries that conflict with replay are cancelled at once (no 30 s wait), and
            # the primary is told nothing of the standby's snapshots.
            options = (
                f"-c listen_addresses='' -k {sockets} -p {embedded.PORT} -c fsync=off "
                "-c hot_standby=on -c hot_standby_feedback=off "
                "-c max_standby_streaming_delay=0"
            )
            _as_server(
                [str(bins / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60",
                 "-l", str(standby_home / "server.log"), "-o", options, "start"]
            )  # fmt: skip
            try:
                standby = (
                    f"host={sockets} port={embedded.PORT} user={embedded.SERVER_USER} "
                    f"dbname={PLATFORM}"
                )
                made = Replica(primary.dsn(PLATFORM), standby)
                made.caught_up()
                yield made
            finally:
                _as_server([str(bins / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"])
    finally:
        shutil.rmtree(home, ignore_errors=True)
