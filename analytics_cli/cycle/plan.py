"""Which metric runs on which source, for which slot, and which slots are still missing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.config.schema import MetricSpec, Settings
from analytics_cli.engines.stores import open_store
from analytics_cli.timeutil import floor_slot

if TYPE_CHECKING:
    from analytics_cli.engines.base import Layout, Store

Job = tuple[MetricSpec, str | None]  # a metric and the [[source]] it runs on (None: single/HTTP)
Missing = list[tuple[datetime, list[Job]]]


def plan(settings: Settings, specs: list[MetricSpec], sources: list[str] | None) -> list[Job]:
    """Which metric runs on which source: every SQL metric on every (chosen) source, unless it
    names its ``sources``; HTTP metrics once per cycle, and not when ``--source`` narrows a run.
    """
    from analytics_cli.errors import ConfigError
    from analytics_cli.metrics import suggest

    names = [s.name for s in settings.sources]
    if sources and not settings.sources:
        raise ConfigError(
            "--source needs [[source]] tables in the config file",
            hint="without them there is one source: the [source] dsn",
        )
    for name in sources or []:
        if name not in names:
            raise ConfigError(f"unknown source {name!r}", hint=suggest(name, names))
    chosen = [n for n in names if not sources or n in sources]
    jobs: list[Job] = []
    for spec in specs:
        if spec.http is not None:
            if not sources:
                jobs.append((spec, None))
        elif not settings.sources:
            jobs.append((spec, None))
        else:
            jobs += [(spec, n) for n in chosen if spec.sources is None or n in spec.sources]
    return jobs


def slots_of(settings: Settings, specs: Sequence[MetricSpec], at: datetime) -> dict[str, datetime]:
    """Each metric's slot at ``at``: the time floored to its ``every`` (UTC)."""
    return {spec.type: floor_slot(at, spec.every or settings.interval) for spec in specs}


def missing_slots(
    settings: Settings,
    jobs: list[Job],
    since: datetime,
    until: datetime,
    *,
    gaps_only: bool,
    found: Store | None = None,
    layout: Layout | None = None,
) -> Missing:
    """The slots in [since, until] (oldest first) where some of ``jobs`` has no row yet.

    One query, on ``found`` when given (the cycle's own store), else on a new session.
    """
    from analytics_cli.timeutil import slots as slot_range

    wanted: dict[datetime, list[Job]] = {}
    for job in jobs:
        step = job[0].every or settings.interval
        first = floor_slot(since, step)
        if first < since:
            first += step
        for at in slot_range(first, until + step, step):
            if at <= until:
                wanted.setdefault(at, []).append(job)
    if not wanted:
        return []
    if found is None:
        with open_store(settings, doing="cannot read the store", read_only=True) as own:
            seen = own.detect()
            stored = seen.stored_slots(own.conn, since, until, jobs) if seen is not None else set()
    else:
        stored = (
            layout.stored_slots(found.conn, since, until, jobs) if layout is not None else set()
        )
    earliest: dict[tuple[str, str | None], datetime] = {}
    for type_, source, at in stored:
        key = (type_, source)
        earliest[key] = min(at, earliest.get(key, at))

    def due(job: Job, at: datetime) -> bool:
        key = (job[0].type, job[1])
        if (*key, at) in stored:
            return False
        return not gaps_only or (key in earliest and earliest[key] < at)

    out = []
    for at in sorted(wanted):
        todo = [job for job in wanted[at] if due(job, at)]
        if todo:
            out.append((at, todo))
    return out
