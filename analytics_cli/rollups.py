"""``db rollup --rebuild`` and the rollup side of ``prune``: build the hourly and daily rollups
from the stored rows, record what prune removed, drop expired buckets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.config.schema import Settings
from analytics_cli.db import database_error, grant_hint, store_session
from analytics_cli.errors import ConfigError
from analytics_cli.store import rollup
from analytics_cli.store.layout import detect
from analytics_cli.store.native import NativeLayout

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild wrote: hourly rows, over how many month-long chunks."""

    hourly: int
    chunks: int


def _native(conn: psycopg.Connection[Any], settings: Settings) -> NativeLayout | None:
    layout = detect(conn, settings)
    if layout is not None and not isinstance(layout, NativeLayout):
        raise ConfigError(rollup.NOT_APPLICABLE)
    return layout


def rebuild(settings: Settings, progress: Callable[[int, int], None] | None = None) -> Rebuilt:
    """Rebuild the rollups from the rows the store holds (older buckets are kept)."""
    import psycopg

    chunks = 0

    def counted(done: int, total: int) -> None:
        nonlocal chunks
        chunks = total
        if progress is not None:
            progress(done, total)

    with store_session(settings, doing="rollup rebuild stopped") as conn:
        layout = _native(conn, settings)
        if layout is None:
            return Rebuilt(0, 0)
        try:
            written = rollup.rebuild(
                conn, settings.table, layout.relation(), settings.interval, counted
            )
        except psycopg.Error as exc:
            raise database_error(
                exc,
                settings.store_dsn,
                doing="rollup rebuild stopped (finished months are kept)",
                refused=grant_hint(
                    "db rollup",
                    "CREATE, SELECT, INSERT, DELETE",
                    settings.table,
                    settings.store_dsn,
                ),
            ) from None
    return Rebuilt(written, chunks)


def init_built(settings: Settings, progress: Callable[[int, int], None] | None = None) -> bool:
    """``db init``: build the rollups of a table that has rows but no built rollups yet."""
    with store_session(settings, doing="cannot prepare the rollups", read_only=True) as conn:
        layout = detect(conn, settings)
        if not isinstance(layout, NativeLayout):
            return False
        st = rollup.state(conn, settings.table)
        if st is not None and st.built and st.slot == settings.interval:
            return False
    rebuild(settings, progress)
    return True


def before_prune(conn: psycopg.Connection[Any], settings: Settings, cutoff: datetime) -> None:
    """Roll up what a prune is about to delete, and record that rows before ``cutoff`` go:
    the hours they fed keep their rollups (inside the caller's session, committed)."""
    layout = detect(conn, settings)
    if not isinstance(layout, NativeLayout):
        return
    st = rollup.state(conn, settings.table)
    conn.commit()
    if st is None:  # none, or this role may not read them: the rows go as before
        return
    if not st.built or st.slot != settings.interval:
        rollup.rebuild(conn, settings.table, layout.relation(), settings.interval)
    rollup.pruned_raw(conn, settings.table, cutoff)
    conn.commit()


def prune_grain(settings: Settings, grain: str, cutoff: datetime) -> int:
    """Delete the hourly or daily buckets that start before ``cutoff``; how many went."""
    with store_session(settings, doing=f"prune of {grain} rollups stopped") as conn:
        layout = detect(conn, settings)
        if not isinstance(layout, NativeLayout) or not rollup.exists(conn, settings.table):
            return 0
        return rollup.prune_grain(conn, settings.table, grain, cutoff)
