"""What the tests share: config files, the store's rows, spool files written by hand, free
ports and waiting for a server; one copy each."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import tomli_w

from analytics_cli import spool, spool_format
from analytics_cli.engines.postgresql.native import ensure_table

if TYPE_CHECKING:
    from analytics_cli.samples import Outcome
    from tests.conftest import Databases

# Generous: the machine is shared; a wait ends as soon as its condition holds.
DEADLINE = 90.0

T = TypeVar("T")

# ---------------------------------------------------------------------------- config files


def write_config(path: Path, doc: str | Mapping[str, Any]) -> Path:
    """A config file: TOML text, or a document written as TOML. Mode 0600, so that a config
    holding a password draws no warning about other users reading it."""
    path.write_text(doc if isinstance(doc, str) else tomli_w.dumps(doc))
    path.chmod(0o600)
    return path


def custom_config(
    path: Path,
    metrics: Sequence[tuple[str, str]] = (),
    *,
    builtins: list[str] | None = None,
    collect: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """A config file with custom metrics (type, SQL); built-ins are off unless listed."""
    doc: dict[str, Any] = {
        "collect": {"metrics": [] if builtins is None else builtins, **(collect or {})}
    }
    if store:
        doc["store"] = store
    if source:
        doc["source"] = source
    if metrics:
        doc["metric"] = [{"type": name, "sql": sql} for name, sql in metrics]
    return write_config(path, doc)


# ---------------------------------------------------------------------------- the store's rows


def stored_rows(
    dbs: Databases, table: str = "analytics"
) -> list[tuple[str, Decimal, object, object]]:
    """Every row of the store table: type, count, slot, metadata (by type, then slot)."""
    with dbs.store_conn() as conn:
        return conn.execute(
            f'SELECT type, count, "timestamp", metadata FROM {table} ORDER BY type, "timestamp"'
        ).fetchall()


def stored_counts(dbs: Databases) -> dict[str, Decimal]:
    """Each type's count in the store table, which holds only plain rows (no metadata)."""
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count, metadata FROM analytics").fetchall()
    assert {json.dumps(r[2]) for r in rows} <= {"{}"}
    return {str(r[0]): Decimal(str(r[1])) for r in rows}


def insert_store_rows(
    dsn: str, rows: Iterable[tuple[str, Decimal | int, datetime, dict[str, str]]]
) -> None:
    """Rows (type, count, slot, metadata) put straight into the native ``analytics`` table
    (created when missing), each collected at its slot: a history no cycle wrote."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            ensure_table(conn, "analytics")
        with conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO analytics (type, count, "timestamp", collected_at, metadata) '
                "VALUES (%s, %s, %s, %s, %s)",
                [(t, c, s, s, json.dumps(m)) for t, c, s, m in rows],
            )


def insert_platform_rows(
    conn: psycopg.Connection[tuple[object, ...]], items: Iterable[tuple[str, dict[str, Any]]]
) -> None:
    """Rows (table, column -> value) into a PostgreSQL database with the iR Engine schema."""
    for table, row in items:
        names = ", ".join(f'"{name}"' for name in row)
        marks = ", ".join(["%s"] * len(row))
        conn.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', tuple(row.values()))


# ---------------------------------------------------------------------------- spool files


def spool_file(
    folder: Path,
    slot: datetime,
    outcomes: Sequence[Outcome],
    identity: dict[str, str] | None,
    *,
    table: str = "analytics",
    collected_at: datetime | None = None,
) -> Path:
    """One cycle spooled by hand, as a run that could not reach the store leaves it
    (``identity`` None: a file of the first spool format, which named only its table)."""
    batch = spool_format.from_outcomes(None, collected_at or slot, outcomes)
    return spool.write(folder, spool_format.Spooled(table, slot, False, (batch,), identity))


# ---------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    deadline: float = DEADLINE,
    errors: tuple[type[Exception], ...] = (OSError, ValueError),
) -> T:
    """Poll ``probe`` until it returns something other than None (or fail after the
    deadline); an error of ``errors`` counts as not yet, and the last one is reported."""
    end = time.monotonic() + deadline
    delay = 0.05
    # Only the message is kept: the exception itself, held in this frame, would make a
    # cycle with its traceback and keep whatever it holds (a connection) until a later GC.
    last = ""
    while time.monotonic() < end:
        try:
            value = probe()
        except errors as exc:
            last, value = str(exc), None
        if value is not None:
            return value
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last: {last})" if last else ""))


def wait_until(predicate: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll until ``predicate`` returns something truthy (its errors are not waited out)."""
    return wait_for(what, lambda: predicate() or None, timeout, errors=())
