"""The spool both ways: a cycle the store could not take written to it, and every spooled
cycle of this store written first by the next run that reaches the store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.config.schema import Settings
from analytics_cli.cycle.read import Batch
from analytics_cli.cycle.results import CycleReport
from analytics_cli.cycle.table import write_refusing
from analytics_cli.engines.notices import notice
from analytics_cli.engines.shapes import SlotBusy
from analytics_cli.errors import StoreError
from analytics_cli.samples import MetricFailure, Series
from analytics_cli.timeutil import iso

if TYPE_CHECKING:
    from analytics_cli.engines.base import Layout, Store


def spool_cycle(
    exc: StoreError,
    settings: Settings,
    report: CycleReport,
    slots: Mapping[str, datetime],
    batches: list[Batch],
    *,
    replace: bool,
) -> StoreError:
    """Write the slot's rows to the spool (a file per slot: a metric's own ``every`` may give
    it another); the error the run ends with says where they wait."""
    from analytics_cli import spool, spool_format

    slot = report.slot
    # The store the rows are for: another config sharing the folder must not replay them.
    identity = spool.store_identity(settings)
    cycles = []
    for at in sorted({slots.get(o.type, slot) for b in batches for o in b.outcomes} or {slot}):
        parts = tuple(
            spool_format.from_outcomes(
                b.source,
                b.collected_at,
                [o for o in b.outcomes if slots.get(o.type, slot) == at],
            )
            for b in batches
        )
        cycles.append(spool_format.Spooled(settings.table, at, replace, parts, identity))
    folder = spool.spool_dir(settings)
    try:
        paths = [spool.write(folder, cycle) for cycle in cycles]
    except OSError as os_exc:
        return StoreError(
            f"{exc}; the slot could not be spooled either ({folder}: {os_exc.strerror})"
        )
    rows = sum(c.rows for c in cycles)
    report.spooled_rows = rows
    where = str(paths[0]) if len(paths) == 1 else f"{folder} ({len(paths)} files)"
    named = ", ".join(iso(c.slot) for c in cycles)
    return StoreError(
        f"{exc}; slot{'s' if len(cycles) > 1 else ''} {named} spooled ({rows} rows) to {where}",
        hint="the next run that reaches the store writes it first",
    )


def replay(found: Store, layout: Layout, settings: Settings, report: CycleReport) -> None:
    """Write every spooled cycle of this store, oldest first, each in its own transaction
    under its slot's lock, then remove its file. Counts the slots and rows written in
    ``report``.

    A file spooled for another store (its identity: engine, host, port, dbname, user,
    table) is left where it is, for the run that writes to that store, with one warning;
    a file that names no store (format version 1) is taken by the first run with its table.
    A file whose rows the store refuses for their content is set aside (spool/rejected/)
    once the rest of its rows are stored: it never blocks the cycles after it.

    A replay that dies after its commit and before the file is removed is harmless: the
    presence check of the next replay finds the rows, and nothing is written twice.
    """
    from analytics_cli import spool, spool_format

    conn = found.conn
    identity = spool.store_identity(settings)
    folder = spool.spool_dir(settings)
    foreign: list[spool_format.Spooled] = []
    for path, cycle in spool.readable(folder, notice):
        if not cycle.belongs(identity):
            foreign.append(cycle)
            continue
        jobs = [e.job for b in cycle.batches for e in b.entries]
        report.replaying = path
        refused: dict[str, str] = {}
        rows = 0
        try:
            with conn.transaction():
                layout.lock(conn, settings, cycle.slot)
                present = set() if cycle.replace else layout.present(conn, cycle.slot, jobs)
                for batch in cycle.batches:
                    outcomes = [
                        layout.fit(o)
                        for o in batch.outcomes()
                        if (o.type, batch.source) not in present
                    ]
                    refused |= {o.type: o.error for o in outcomes if isinstance(o, MetricFailure)}
                    written, no = write_refusing(
                        found,
                        layout,
                        (cycle.slot, batch.collected_at, batch.source),
                        outcomes,
                        replace=cycle.replace,
                    )
                    refused |= no
                    rows += sum(
                        len(o.samples) if isinstance(o, Series) else 1
                        for o in outcomes
                        if not isinstance(o, MetricFailure) and written.get(o.type)
                    )
        except SlotBusy:
            report.replaying = None
            continue  # another run holds that slot: it replays the file, or the next run does
        # Left set by an error: the error line names the file.
        report.replaying = None
        report.replayed += 1
        report.replayed_rows += rows
        if refused:
            kind, why = next(iter(refused.items()))
            spool.set_aside(
                path,
                f"the store refused {kind}: {why}"
                + (f" (and {len(refused) - 1} more metric(s))" if len(refused) > 1 else "")
                + (f"; its other {rows} row(s) were stored" if rows else ""),
                notice,
            )
        else:
            path.unlink(missing_ok=True)
    if foreign:
        notice(spool.foreign_warning(folder, foreign))
