"""The store table as a cycle sees it: prepared (created when missing), and written one
batch at a time, a metric whose rows the store refuses failing alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.config.schema import Settings
from analytics_cli.db import store_session
from analytics_cli.errors import Refused
from analytics_cli.metrics import MetricFailure, Outcome

if TYPE_CHECKING:
    from analytics_cli.store.layout import Layout


def ensure_store(settings: Settings) -> bool:
    """Create the store table if it does not exist; True when it was created (``db init``)."""
    from analytics_cli.store.layout import ensure

    with store_session(
        settings, doing="cannot prepare the store table", refused=_create_hint(settings)
    ) as conn:
        return ensure(conn, settings)[1]


def _create_hint(settings: Settings) -> str:
    return (
        f"creating {settings.table} needs CREATE on its schema: "
        "run 'analytics-cli db init' once as a role that has it"
    )


def prepared_layout(conn: Any, settings: Settings) -> Layout:
    """The store table's layout, created if missing; its own error line and grant hint."""
    import psycopg

    from analytics_cli.db import store_or_database_error
    from analytics_cli.store.layout import ensure

    try:
        layout = ensure(conn, settings)[0]
        conn.commit()
        return layout
    except psycopg.Error as exc:
        raise store_or_database_error(
            exc,
            settings.store_dsn,
            side="store",
            doing="cannot prepare the store table",
            refused=_create_hint(settings),
        ) from None


def write_refusing(
    conn: Any,
    layout: Layout,
    where: tuple[datetime, datetime, str | None],
    outcomes: Sequence[Outcome],
    *,
    replace: bool,
) -> tuple[dict[str, bool], dict[str, str]]:
    """Write one batch's rows of a slot (``where``: slot, collected_at, source) inside a
    savepoint. When the store refuses a row for its content, each metric is written on its
    own, so only the refused ones fail. Returns what was written and, per refused metric,
    why; an outage still raises (the caller spools).
    """
    from analytics_cli.store.layout import refusals

    slot, collected_at, source = where
    try:
        with conn.transaction(), refusals():
            return layout.write(conn, slot, collected_at, source, outcomes, replace=replace), {}
    except Refused:
        pass
    written: dict[str, bool] = {}
    refused: dict[str, str] = {}
    for outcome in outcomes:
        if isinstance(outcome, MetricFailure):
            continue
        try:
            with conn.transaction(), refusals():
                written |= layout.write(
                    conn, slot, collected_at, source, [outcome], replace=replace
                )
        except Refused as exc:
            refused[outcome.type] = str(exc)
    return written, refused


def as_failures(outcomes: list[Outcome], refused: Mapping[str, str]) -> list[Outcome]:
    """The outcomes, each metric the store refused made its failure."""
    return [
        MetricFailure(o.type, f"the store refused its rows: {refused[o.type]}")
        if o.type in refused and not isinstance(o, MetricFailure)
        else o
        for o in outcomes
    ]
