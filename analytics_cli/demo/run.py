"""The demo command's work: simulate, then bring the platform to each slot and collect it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.demo.platform import (
    LARGE_STEPS,
    apply_slot,
    build_large,
    prepare_source,
    row_counts,
)
from analytics_cli.demo.simulation import plan, simulate
from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import floor_slot, utcnow

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings
    from analytics_cli.cycle.results import CycleReport


@dataclass
class DemoResult:
    """What the demo built and collected."""

    first: datetime
    last: datetime
    slots: int
    rows: dict[str, int]
    failed: int = 0
    present: int = 0
    seconds: float = 0.0


Progress = Callable[[int, int, "CycleReport | None"], None]


def check_store_target(settings: Settings) -> None:
    """Refuse when the store table would be the platform's own ``analytics`` table."""
    from psycopg.conninfo import conninfo_to_dict

    if settings.embedded or settings.source_dsn is None or settings.store_dsn is None:
        return
    try:
        same = conninfo_to_dict(settings.source_dsn) == conninfo_to_dict(settings.store_dsn)
    except Exception:
        same = settings.source_dsn == settings.store_dsn
    if same and settings.table_parts in (("analytics",), ("public", "analytics")):
        raise ConfigError(
            "the source and the store are the same database, and the store table 'analytics' "
            "is the name of the platform's own table",
            hint='set table = "analytics_cli" in the [store] section of the config file, '
            "or give the store its own database ($ANALYTICS_STORE_DSN)",
        )


def _source(settings: Settings) -> psycopg.Connection[Any]:
    from analytics_cli.engines.postgresql.connect import connect

    assert settings.source_dsn is not None
    return connect(settings.source_dsn, settings, purpose="source", autocommit=True)


def run(
    settings: Settings,
    *,
    days: int,
    seed: int,
    scale: str = "small",
    now: datetime | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Build the demo platform and collect its history (``settings`` must hold concrete DSNs)."""
    import psycopg

    from analytics_cli.cycle.run import run_cycle
    from analytics_cli.cycle.table import ensure_store
    from analytics_cli.engines.postgresql.connect import database_error

    started = time.monotonic()
    check_store_target(settings)
    last = floor_slot(now or utcnow(), settings.interval)
    ensure_store(settings)
    try:
        with _source(settings) as conn:
            prepare_source(conn)
            if scale == "large":
                return _run_large(conn, settings, last, days, seed, started, progress)
            platform = simulate(last, days, settings.interval, seed)
            steps = plan(platform)
            result = DemoResult(
                first=platform.slot_time(0),
                last=platform.slot_time(platform.slots - 1),
                slots=platform.slots,
                rows={t: len(r) for t, r in platform.rows.items()},
            )
            if progress:
                progress(0, platform.slots, None)
            # The embedded store holds only the demo platform's history: a new run replaces
            # its slots. A configured store keeps whatever it already holds.
            replace = settings.source_dsn_origin == "embedded"
            for index in range(platform.slots):
                apply_slot(conn, platform, steps, index)
                report = run_cycle(settings, at=platform.slot_time(index), replace=replace)
                result.failed += len(report.failed)
                result.present += sum(r.status == "present" for r in report.results)
                if progress:
                    progress(index + 1, platform.slots, report)
    except psycopg.Error as exc:
        raise database_error(
            exc, settings.source_dsn, doing="demo: source database error"
        ) from None
    result.seconds = time.monotonic() - started
    return result


def _run_large(
    conn: psycopg.Connection[Any],
    settings: Settings,
    last: datetime,
    days: int,
    seed: int,
    started: float,
    progress: Progress | None,
) -> DemoResult:
    """Build a large platform server-side and collect the current slot once."""
    from analytics_cli.cycle.run import run_cycle

    total = LARGE_STEPS + 1
    if progress:
        progress(0, total, None)

    def done(step: int) -> None:
        if progress:
            progress(step, total, None)

    build_large(conn, seed=seed, first=last - timedelta(days=days), last=last, done=done)
    report = run_cycle(settings, at=last, replace=settings.source_dsn_origin == "embedded")
    if progress:
        progress(total, total, report)
    return DemoResult(
        first=last,
        last=last,
        slots=1,
        rows=row_counts(conn),
        failed=len(report.failed),
        present=sum(r.status == "present" for r in report.results),
        seconds=time.monotonic() - started,
    )
