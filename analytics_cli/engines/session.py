"""The one way a job opens a database: the engine of the connection string connects.

Also the start of every command that uses the store: concrete connection strings (the
embedded server when none is configured) and the store's driver checked before anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from analytics_cli.dsn import engine_for
from analytics_cli.engines.base import Job

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings


def session(
    settings: Settings,
    *,
    side: str,
    doing: str,
    read_only: bool = False,
    repeatable_read: bool = False,
    dsn: str | None = None,
    retries: int | None = None,
    refused: str | None = None,
) -> AbstractContextManager[Any]:
    """A connection for one job on ``side`` (``store`` or ``source``, or ``dsn``): connect
    (with retries), a first transaction bounded by the statement timeout, read-only if
    asked; any database error becomes a one-line DatabaseError (StoreError on the store side)
    starting with ``doing``, ``refused`` its hint when a privilege is missing. Committed
    when the job ends without an error, rolled back otherwise; closed either way."""
    target = (
        dsn if dsn is not None else (settings.store_dsn if side == "store" else settings.source_dsn)
    )
    assert target is not None
    retries = settings.retries if retries is None else retries
    job = Job(side, doing, read_only, repeatable_read, retries, refused)
    return engine_for(target).session(target, settings, job)


def store_session(
    settings: Settings,
    *,
    doing: str,
    read_only: bool = False,
    repeatable_read: bool = False,
    retries: int | None = None,
    refused: str | None = None,
) -> AbstractContextManager[Any]:
    """A session on the store database."""
    return session(
        settings,
        side="store",
        doing=doing,
        read_only=read_only,
        repeatable_read=repeatable_read,
        retries=retries,
        refused=refused,
    )


def grant_hint(what: str, privileges: str, table: str, dsn: str | None) -> str:
    """``what`` needs ``privileges`` on the store table, and the GRANT that gives them, in the
    words of the store's engine (MySQL: ``db.table``; PostgreSQL grants inside a database)."""
    return engine_for(dsn).grant_hint(what, privileges, table, dsn)


@contextmanager
def resolved(settings: Settings, *, announce: Any = None) -> Iterator[Settings]:
    """Settings with concrete DSNs; starts the embedded server when none is configured.

    Every command that comes here uses the store: its driver must be there before anything
    starts (a missing one is one line naming the extra, exit 2, never a spooled cycle).
    """
    if not settings.embedded:
        if settings.store_dsn:
            engine_for(settings.store_dsn).require_driver("stores")
        yield settings
        return
    # Imported here: only a run without a connection string starts the embedded server.
    from analytics_cli.engines.postgresql import embedded

    with embedded.server() as server:
        if announce is not None and not server.nested:
            announce(f"using the embedded PostgreSQL in {server.home} (no connection string set)")
        yield replace(
            settings,
            source_dsn=server.dsn(embedded.SOURCE_DB),
            source_dsn_origin="embedded",
            store_dsn=server.dsn(embedded.STORE_DB),
            store_dsn_origin="embedded",
        )
