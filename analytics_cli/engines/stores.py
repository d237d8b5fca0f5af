"""Opening the Store of a configuration: its engine's store, from the registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from analytics_cli.engines.base import Store

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings


@contextmanager
def open_store(
    settings: Settings,
    *,
    doing: str,
    read_only: bool = False,
    reading: bool = False,
    retries: int | None = None,
    refused: str | None = None,
) -> Iterator[Store]:
    """The Store on a new session to the store database (``db.store_session``: retries,
    statement limit, errors as one line starting with ``doing``); committed when the work
    ends without an error, rolled back otherwise. ``reading``: one read-only, repeatable-
    read snapshot with the session settings the readers rely on."""
    # Here, not at the top: `--help` and the commands that never open a store load no
    # connection code; and only the engine in use is loaded (PyMySQL may be absent).
    from analytics_cli.dsn import default_engine, engine_for
    from analytics_cli.engines.session import store_session

    with store_session(
        settings,
        doing=doing,
        read_only=read_only or reading,
        repeatable_read=reading,
        retries=retries,
        refused=refused,
    ) as conn:
        engine = engine_for(settings.store_dsn) if settings.store_dsn else default_engine()
        store = engine.store(conn, settings)
        if reading:
            store.begin_reading()
        yield store
