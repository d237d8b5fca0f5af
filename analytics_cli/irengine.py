"""Transitional names for the commands not yet on the Layout seam (store/layout.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from analytics_cli.store.irengine import IR_ENGINE, refuse_rows_with_metadata
from analytics_cli.store.layout import detect, ensure, listen

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from analytics_cli.config import MetricSpec, Settings

__all__ = ["IR_ENGINE", "listen"]


def layout_of(conn: psycopg.Connection[Any], settings: Settings) -> str | None:
    """The store table's layout name, None when it does not exist."""
    layout = detect(conn, settings)
    return layout.name if layout is not None else None


def require_table(conn: psycopg.Connection[Any], settings: Settings) -> bool:
    """Check a table to read from: True if it exists in either layout, False if absent."""
    return detect(conn, settings) is not None


def ensure_table(conn: psycopg.Connection[Any], settings: Settings) -> bool:
    """Create the native table when missing; True when created."""
    return ensure(conn, settings)[1]


def refuse_dimensional(settings: Settings, specs: Iterable[MetricSpec]) -> None:
    """Refuse what the iR Engine table cannot hold."""
    refuse_rows_with_metadata(settings, list(specs))


def time_column(ir_engine: bool) -> sql.Identifier:
    """The column holding a row's time."""
    from psycopg import sql

    return sql.Identifier("createdAt" if ir_engine else "timestamp")


def readable(conn: psycopg.Connection[Any], settings: Settings) -> sql.Composable:
    """What to select from for the table's layout."""
    from analytics_cli.store.names import identifier

    layout = detect(conn, settings)
    return layout.relation() if layout is not None else identifier(settings.table)


def selection(conn: psycopg.Connection[Any], settings: Settings, sel: Any) -> Any:
    """The selection set to read the table in its layout."""
    layout = detect(conn, settings)
    return replace(sel, source=layout.relation()) if layout is not None else sel
