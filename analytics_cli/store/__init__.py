"""The store: its layouts (native, ir-engine), locks, and the queries that read it back."""

from __future__ import annotations

from analytics_cli.store.locks import SlotBusy, lock_schema, lock_slot
from analytics_cli.store.names import NATIVE_COLUMNS, identifier
from analytics_cli.store.native import ensure_table, require_table
from analytics_cli.store.read import (
    AGGREGATES,
    BUCKET_ORIGIN,
    EXPORT_KEYS,
    NONE_LABEL,
    Point,
    Selection,
    TypeSummary,
    copy_header,
    copy_statement,
    count_points,
    count_rows,
    first_metadata,
    known_types,
    read_points,
    relation,
    select_rows,
    slot_count,
    sparkline_values,
    summaries,
    top_values,
    total_points,
)

__all__ = [
    "AGGREGATES",
    "BUCKET_ORIGIN",
    "EXPORT_KEYS",
    "NATIVE_COLUMNS",
    "NONE_LABEL",
    "Point",
    "Selection",
    "SlotBusy",
    "TypeSummary",
    "copy_header",
    "copy_statement",
    "count_points",
    "count_rows",
    "ensure_table",
    "first_metadata",
    "identifier",
    "known_types",
    "lock_schema",
    "lock_slot",
    "read_points",
    "relation",
    "require_table",
    "select_rows",
    "slot_count",
    "sparkline_values",
    "summaries",
    "top_values",
    "total_points",
]
