"""``COPY … TO STDOUT`` straight from libpq: how the PostgreSQL store streams an export."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from analytics_cli.engines.postgresql.read import copy_statement
from analytics_cli.engines.postgresql.rollup_read import planned
from analytics_cli.engines.reading import BLOCK_BYTES, copy_header
from analytics_cli.engines.shapes import Selection

if TYPE_CHECKING:
    import psycopg


def stream(
    conn: psycopg.Connection[Any],
    sel: Selection,
    fmt: str,
    sink: Any,
    *,
    keys: Sequence[str],
    order: str,
    on_rows: Callable[[int], None] | None,
) -> int:
    """Stream a selection to ``sink`` as csv, json or ndjson; returns the number of rows.

    Every format is a server-side ``COPY … TO STDOUT``: rows arrive one at a time and are
    written straight through, so memory stays flat however many rows there are.
    """
    statement = copy_statement(planned(conn, sel), fmt, keys, order).as_string(conn)
    write = sink.write
    if fmt != "json":
        return copy_out(conn, statement, write, on_rows, first=copy_header(fmt, keys))
    # COPY sends one object a line (JSON text holds no raw newline): the array's commas go
    # between the lines of each block, and between blocks.
    started = False

    def block(data: bytes) -> None:
        nonlocal started
        write(b",\n" if started else b"[\n")
        started = True
        write(data[:-1].replace(b"\n", b",\n"))

    rows = copy_out(conn, statement, block, on_rows)
    write(b"\n]\n" if started else b"[]\n")
    return rows


def copy_out(
    conn: psycopg.Connection[Any],
    statement: str,
    write: Callable[[bytes], Any],
    on_rows: Callable[[int], None] | None = None,
    *,
    first: bytes = b"",
) -> int:
    """Run ``COPY … TO STDOUT``; hand the rows on in blocks of whole rows; count them.

    The loop talks to libpq directly (``pgconn``, psycopg's documented low-level access):
    psycopg's own ``Copy`` iterator costs about a microsecond a row, as much as psql's whole
    copy. Rows already received are taken without waiting; only an empty buffer waits, on
    the socket and in slices of a second, so signals are handled while the server works.
    ``first`` (a CSV header) goes out ahead of the rows, in their first block.
    """
    import select

    import psycopg
    from psycopg import pq

    pgconn = conn.pgconn
    pgconn.send_query(statement.encode(conn.info.encoding))  # raises when it cannot send
    while pgconn.flush() == 1:  # the connection is non-blocking: send all of it
        select.select([], [pgconn.socket], [], 1.0)
    # The COPY_OUT result first; an error (a bad query) comes as the only result.
    result = _next_result(pgconn)
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _raise_result(pgconn, result)
    rows = reported = 0
    buffer = bytearray(first)
    get = pgconn.get_copy_data
    try:
        while True:
            size, data = get(1)
            if size > 0:
                buffer += data
                rows += 1
                if len(buffer) >= BLOCK_BYTES:
                    write(bytes(buffer))
                    buffer.clear()
                    if on_rows is not None and rows > reported:
                        on_rows(rows - reported)
                        reported = rows
            elif size == 0:
                select.select([pgconn.socket], [], [], 1.0)
                pgconn.consume_input()
            elif size == -1:
                break
            else:
                raise psycopg.OperationalError(pgconn.error_message.decode(errors="replace"))
    except BaseException:
        # A writer that failed (a closed pipe) or an interrupt: stop the server's COPY and
        # leave the connection usable for the rollback that follows.
        conn.cancel_safe(timeout=5)
        while get(0)[0] >= 0:
            pass
        while _next_result(pgconn) is not None:
            pass
        raise
    final = _next_result(pgconn)
    if final is None or final.status != pq.ExecStatus.COMMAND_OK:
        _raise_result(pgconn, final)
    while _next_result(pgconn) is not None:
        pass
    # Only a complete COPY hands on its last block: a failed one never looks whole.
    if buffer:
        write(bytes(buffer))
    if on_rows is not None and rows > reported:
        on_rows(rows - reported)
    return rows


def _next_result(pgconn: Any) -> Any:
    """libpq's next result, waiting on the socket (interruptibly) while it is busy."""
    import select

    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            return pgconn.get_result()
        select.select([pgconn.socket], [], [], 1.0)


def _raise_result(pgconn: Any, result: Any) -> NoReturn:
    """The error a failed COPY's result carries, as the psycopg exception of its SQLSTATE."""
    import psycopg
    from psycopg import errors, pq

    while _next_result(pgconn) is not None:
        pass
    if result is None:
        raise psycopg.OperationalError(pgconn.error_message.decode(errors="replace"))
    code = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = (result.error_message or pgconn.error_message).decode(errors="replace").strip()
    cls = errors.lookup(code.decode()) if code else psycopg.DatabaseError
    raise cls(message.removeprefix("ERROR:").strip())
