"""The store table as a cycle sees it: prepared (created when missing), and written one
batch at a time, a metric whose rows the store refuses failing alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.config.schema import Settings
from analytics_cli.engines.stores import open_store
from analytics_cli.errors import Refused
from analytics_cli.samples import MetricFailure, Outcome

if TYPE_CHECKING:
    from analytics_cli.engines.base import Layout, Store


def ensure_store(settings: Settings) -> bool:
    """Create the store table if it does not exist; True when it was created (``db init``)."""
    refused = create_hint(settings)
    with open_store(settings, doing="cannot prepare the store table", refused=refused) as found:
        return found.ensure(refused=refused)[1]


def create_hint(settings: Settings) -> str:
    """What an account that may not create the store table needs, and how to get it."""
    return (
        f"creating {settings.table} needs CREATE on its schema: "
        "run 'analytics-cli db init' once as a role that has it"
    )


def prepared_layout(found: Store, settings: Settings) -> Layout:
    """The store table's layout, created if missing (committed); its own error line and
    grant hint."""
    return found.ensure(refused=create_hint(settings))[0]


def write_refusing(
    found: Store,
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
    conn = found.conn
    slot, collected_at, source = where
    try:
        with conn.transaction(), found.refusals():
            return layout.write(conn, slot, collected_at, source, outcomes, replace=replace), {}
    except Refused:
        pass
    written: dict[str, bool] = {}
    refused: dict[str, str] = {}
    for outcome in outcomes:
        if isinstance(outcome, MetricFailure):
            continue
        try:
            with conn.transaction(), found.refusals():
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
