"""The ``metrics`` listing: a table, each metric's SQL, or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from analytics_cli.timeutil import format_duration

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec


def _every(m: MetricSpec) -> str:
    return format_duration(m.every) if m.every is not None else "interval"


def metrics_text(
    every: Sequence[MetricSpec], enabled: set[str], *, show_sql: bool, as_json: bool
) -> str:
    """``metrics``: a table of every metric, or each one's SQL, or the list as JSON.

    A built-in shows its text for each engine; a custom metric runs as written, in the
    dialect of its sources. A metric filled by a [[query]] shows that query.
    """
    if as_json:
        items = [
            {
                "type": m.type,
                "kind": "builtin" if m.builtin else "custom",
                "enabled": m.type in enabled,
                "description": m.description,
                **({"every_seconds": int(m.every.total_seconds())} if m.every else {}),
                **({"backfill": True} if m.backfill else {}),
                **({"query": m.query} if m.query else {}),
                **({"dimensions": list(m.dimensions)} if m.dimensions else {}),
                **({"sources": list(m.sources)} if m.sources is not None else {}),
                **({"sql": m.sql} if show_sql and m.http is None else {}),
                **(
                    {"sql_by_engine": dict(m.dialects)}
                    if show_sql and m.builtin and m.http is None
                    else {}
                ),
                **({"http": {"url": m.http.url, "path": m.http.path}} if m.http else {}),
            }
            for m in every
        ]
        return json.dumps(items, indent=2) + "\n"
    if show_sql:
        blocks = []
        for m in every:
            notes = ["builtin" if m.builtin else "custom"]
            notes.append("enabled" if m.type in enabled else "disabled")
            if m.every is not None:
                notes.append(f"every {_every(m)}")
            if m.query is not None:
                notes.append(f"query {m.query}")
            if m.http is not None:
                text = f"GET {m.http.url}\n{m.http.path}"
            elif m.builtin:
                text = "\n".join(f"-- on {engine}:\n{sql.strip()}" for engine, sql in m.dialects)
            else:
                text = m.sql.strip()
            blocks.append(f"-- {m.type} ({', '.join(notes)}): {m.description}\n{text}\n")
        return "\n".join(blocks)
    rows = [("type", "kind", "enabled", "every", "description")]
    rows += [
        (
            m.type,
            "builtin" if m.builtin else "custom",
            "yes" if m.type in enabled else "no",
            _every(m),
            m.description,
        )
        for m in every
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return (
        "\n".join(
            "  ".join([*(r[i].ljust(widths[i]) for i in range(4)), r[4]]).rstrip() for r in rows
        )
        + "\n"
    )
