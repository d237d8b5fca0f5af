"""One collection cycle: plan, read the sources, ONE write skeleton through the Layout, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from analytics_cli.config import MetricSpec, Settings
from analytics_cli.engines.session import grant_hint, store_session
from analytics_cli.errors import DatabaseError, Refused, StoreError
from analytics_cli.metrics import (
    MetricFailure,
    Outcome,
    Sample,
    Series,
    enabled_metrics,
    storable,
)
from analytics_cli.sources import open_source
from analytics_cli.timeutil import floor_slot, iso, utcnow

if TYPE_CHECKING:
    from pathlib import Path

    from analytics_cli.store.layout import Layout

Status = Literal["stored", "replaced", "present", "failed", "checked"]


@dataclass(frozen=True)
class MetricResult:
    """What happened to one metric in a cycle."""

    type: str
    status: Status
    count: Decimal | None = None
    error: str | None = None
    # The [[source]] the row came from (None: the single source, or an HTTP metric).
    source: str | None = None
    # How many rows a dimensional metric gave (its count stays None).
    series: int | None = None
    # The metric's own slot, when its ``every`` floors it to another than the cycle's.
    slot: datetime | None = None


@dataclass
class CycleReport:
    """The outcome of one cycle, rendered by the CLI and returned as ``--json``."""

    slot: datetime
    interval_seconds: int
    collected_at: datetime | None = None
    results: list[MetricResult] = field(default_factory=list)
    duration: float = 0.0
    dry_run: bool = False
    note: str | None = None
    # Spooled cycles of earlier runs written before this one, and how many rows they wrote.
    replayed: int = 0
    replayed_rows: int = 0
    # The spool file being replayed (named by any error it meets).
    replaying: Path | None = None
    # Set when the run ends without storing the cycle (exit 3): the error line, and how
    # many rows of the cycle wait in the spool (None: nothing was spooled).
    error: str | None = None
    spooled_rows: int | None = None
    # Missing slots of backfillable metrics filled by this cycle (catch-up), and the gaps
    # found to fill.
    caught_up: int = 0
    gaps: list[tuple[datetime, list[tuple[MetricSpec, str | None]]]] = field(default_factory=list)

    @property
    def failed(self) -> list[MetricResult]:
        """Metrics that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every metric is stored or already there, 1 when some failed, 3 when the
        cycle could not be stored at all."""
        if self.error is not None:
            return 3
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        """How many metrics ended in each status."""
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the report."""
        return {
            "slot": iso(self.slot),
            "interval_seconds": self.interval_seconds,
            "collected_at": iso(self.collected_at) if self.collected_at else None,
            "dry_run": self.dry_run,
            "duration_seconds": round(self.duration, 3),
            "note": self.note,
            "exit_code": self.exit_code,
            **({"replayed_spooled_slots": self.replayed} if self.replayed else {}),
            **({"spooled_rows_written": self.replayed_rows} if self.replayed else {}),
            **({"error": self.error} if self.error is not None else {}),
            **({"spooled_rows": self.spooled_rows} if self.spooled_rows is not None else {}),
            **({"caught_up_slots": self.caught_up} if self.caught_up else {}),
            "metrics": [
                {
                    "type": r.type,
                    "status": r.status,
                    "count": number(r.count),
                    **({"source": r.source} if r.source is not None else {}),
                    **({"series": r.series} if r.series is not None else {}),
                    **({"slot": iso(r.slot)} if r.slot is not None else {}),
                    **({"error": r.error} if r.error else {}),
                }
                for r in self.results
            ],
        }


def number(value: Decimal | None) -> int | float | None:
    """A Decimal as a JSON number: exact integers stay integers."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return int(value)
    return float(value)


# ---------------------------------------------------------------------------- several sources

Job = tuple[MetricSpec, str | None]  # a metric and the [[source]] it runs on (None: single/HTTP)


@dataclass
class Batch:
    """Outcomes read together: one source's snapshot, or the cycle's HTTP metrics."""

    source: str | None
    collected_at: datetime
    outcomes: list[Outcome]

    def samples(self) -> list[Sample]:
        """Every row to store, dimensional metrics flattened."""
        rows: list[Sample] = []
        for outcome in self.outcomes:
            if isinstance(outcome, Sample):
                rows.append(outcome)
            elif isinstance(outcome, Series):
                rows.extend(outcome.samples)
        return rows


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


def _tag(outcome: Outcome, source: str) -> Outcome:
    if isinstance(outcome, Sample):
        return Sample(outcome.type, outcome.count, {**outcome.metadata, "source": source})
    if isinstance(outcome, Series):
        tagged = (
            Sample(s.type, s.count, {**s.metadata, "source": source}) for s in outcome.samples
        )
        return Series(outcome.type, tuple(tagged))
    return outcome


def slots_of(settings: Settings, specs: Sequence[MetricSpec], at: datetime) -> dict[str, datetime]:
    """Each metric's slot at ``at``: the time floored to its ``every`` (UTC)."""
    return {spec.type: floor_slot(at, spec.every or settings.interval) for spec in specs}


def read_all(
    settings: Settings, jobs: list[Job], slot: datetime | Mapping[str, datetime]
) -> list[Batch]:
    """Read every job: each source in its own snapshot, the HTTP metrics outside any.

    Sources are read side by side, ``[collect] source_concurrency`` at once, each cut off by
    its own timeouts; the batches come back in config order whatever finishes first. A
    [[source]] that cannot be reached fails its own metrics only; with the single
    ``[source] dsn`` an unreachable database still stops the run (DatabaseError).
    """
    from analytics_cli.engines.base import Source

    slots = slot if isinstance(slot, Mapping) else {spec.type: slot for spec, _ in jobs}
    opened: list[Source] = []

    def read_one(dsn: str, name: str | None, specs: list[MetricSpec]) -> Batch:
        source = open_source(dsn, settings)
        opened.append(source)
        if name is None:
            snap = source.read(specs, slots)
            return Batch(None, snap.collected_at, snap.outcomes)
        try:
            snap = source.read(specs, slots)
            at, outcomes = snap.collected_at, snap.outcomes
        except DatabaseError as exc:
            at = utcnow()
            outcomes = [MetricFailure(spec.type, str(exc)) for spec in specs]
        return Batch(name, at, [_tag(o, name) for o in outcomes])

    def read_http(specs: list[MetricSpec]) -> Batch:
        from analytics_cli.sources.http import run_http_metric

        return Batch(None, utcnow(), [run_http_metric(spec) for spec in specs])

    tasks: list[Callable[[], Batch]] = []
    single = [spec for spec, name in jobs if name is None and spec.http is None]
    if single:
        assert settings.source_dsn is not None
        tasks.append(partial(read_one, settings.source_dsn, None, single))
    for source in settings.sources:
        mine = [spec for spec, name in jobs if name == source.name]
        if mine:
            assert source.dsn is not None
            tasks.append(partial(read_one, source.dsn, source.name, mine))
    remote = [spec for spec, name in jobs if spec.http is not None]
    if remote:
        tasks.append(partial(read_http, remote))
    workers = min(settings.source_concurrency, len(tasks))
    if workers <= 1:
        return [task() for task in tasks]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="source")
    try:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]
    except BaseException:
        # Interrupted, or the single source failed: no further source starts and the
        # running queries are cancelled before the threads are joined.
        for reader in list(opened):
            reader.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def flatten(batches: list[Batch]) -> list[Sample | MetricFailure]:
    """Every stored row and failure, for a plain listing (config check)."""
    out: list[Sample | MetricFailure] = []
    for batch in batches:
        for outcome in batch.outcomes:
            if isinstance(outcome, Series):
                out.extend(outcome.samples)
            elif isinstance(outcome, MetricFailure) and batch.source is not None:
                out.append(MetricFailure(outcome.type, f"source {batch.source}: {outcome.error}"))
            else:
                out.append(outcome)
    return out


def _results(
    batch: Batch,
    status: Status,
    written: dict[str, bool] | None,
    own: Mapping[str, datetime] | None = None,
) -> list[MetricResult]:
    """The results of a batch; ``own`` names the slots that differ from the cycle's."""
    out = []
    for outcome in batch.outcomes:
        source = batch.source
        at = (own or {}).get(outcome.type)
        if isinstance(outcome, MetricFailure):
            out.append(
                MetricResult(outcome.type, "failed", error=outcome.error, source=source, slot=at)
            )
            continue
        # Written False: the row was already there (a concurrent run without the lock).
        done: Status = status
        if written is not None and not written.get(outcome.type, False):
            done = "present"
        if isinstance(outcome, Series):
            if not outcome.samples and status != "checked":
                done = status  # nothing to write is still a successful collection
            out.append(
                MetricResult(
                    outcome.type, done, source=source, series=len(outcome.samples), slot=at
                )
            )
        else:
            out.append(MetricResult(outcome.type, done, outcome.count, source=source, slot=at))
    return out


def _ordered(results: list[MetricResult], jobs: list[Job]) -> list[MetricResult]:
    order = {(spec.type, name): i for i, (spec, name) in enumerate(jobs)}
    return sorted(results, key=lambda r: order.get((r.type, r.source), len(order)))


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


def _ensure(conn: Any, settings: Settings) -> Layout:
    """The store table's layout, created if missing; its own error line and grant hint."""
    import psycopg

    from analytics_cli.engines.postgresql.connect import store_or_database_error
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


def run_cycle(
    settings: Settings,
    *,
    at: datetime | None = None,
    only: list[str] | None = None,
    dry_run: bool = False,
    replace: bool = False,
    sources: list[str] | None = None,
) -> CycleReport:
    """Collect one slot: every metric once (per source), written together or not at all.

    A metric with its own ``every`` is counted for its own slot, by the first cycle that
    finds that slot missing. Then, unless ``[collect] catch_up`` is 0, the missing slots of
    backfillable metrics in the window before now are filled, each slot on its own.
    """
    started = time.monotonic()
    if at is not None:
        from analytics_cli.timeutil import check_slot_time

        check_slot_time(at, now=utcnow(), interval=settings.interval, what="--at")
    moment = at or utcnow()
    specs = enabled_metrics(settings, only)
    jobs = plan(settings, specs, sources)
    slot = floor_slot(moment, settings.interval)
    slots = slots_of(settings, specs, moment)
    report = CycleReport(slot, int(settings.interval.total_seconds()), dry_run=dry_run)
    own = {t: s for t, s in slots.items() if s != slot}
    if dry_run:
        batches = read_all(settings, jobs, slots)
        for batch in batches:
            # What the store would refuse shows as that metric's failure here too.
            batch.outcomes = [storable(o) for o in batch.outcomes]
        report.collected_at = min((b.collected_at for b in batches), default=None)
        results = [r for b in batches for r in _results(b, "checked", None, own)]
        report.results = _ordered(results, jobs)
        report.duration = time.monotonic() - started
        return report
    try:
        write_slot(settings, jobs, slots, report, replace=replace)
    except DatabaseError as exc:
        # Exit 3 still has its report (--json) and summary line: what was spooled, and why.
        report.error = str(exc)
        report.results = []
        report.duration = time.monotonic() - started
        exc.report = report
        raise
    if report.gaps:
        done = backfill(
            settings, [], since=slot - settings.catch_up, until=slot, missing=report.gaps
        )
        report.caught_up = done.written
    report.duration = time.monotonic() - started
    return report


def write_slot(
    settings: Settings,
    jobs: list[Job],
    slots: Mapping[str, datetime],
    report: CycleReport,
    *,
    replace: bool,
    replay_spool: bool = True,
) -> None:
    """The write skeleton, the same for every layout, on ONE store connection.

    First transaction: find (or create) the table, then write any spooled cycles. Second:
    the locks of the cycle's slots, the presence check, the sources read, every batch
    written; committed together or not at all. When the store fails, the batches read go
    to the spool.
    """
    from analytics_cli.store.locks import SlotBusy

    own = {t: s for t, s in slots.items() if s != report.slot}
    batches: list[Batch] | None = None
    try:
        what, needs = (
            ("collect --replace", "UPDATE, DELETE") if replace else ("collect", "SELECT, INSERT")
        )
        refused = grant_hint(what, needs, settings.table, settings.store_dsn)
        with store_session(
            settings, doing="store write failed, nothing was stored", refused=refused
        ) as conn:
            layout = _ensure(conn, settings)
            layout.refuse(settings, [spec for spec, _ in jobs])
            if settings.spool_enabled and replay_spool:
                replay(conn, layout, settings, report)
            try:
                with conn.transaction():
                    present: set[tuple[str, str | None]] = set()
                    # In time order, so that concurrent runs never wait on each other in a cycle.
                    for at in sorted(set(slots[spec.type] for spec, _ in jobs)):
                        layout.lock(conn, settings, at)
                        if not replace:
                            mine = [job for job in jobs if slots[job[0].type] == at]
                            present |= layout.present(conn, at, mine)
                    todo = [job for job in jobs if (job[0].type, job[1]) not in present]
                    already = [
                        MetricResult(s.type, "present", source=n, slot=own.get(s.type))
                        for s, n in jobs
                        if (s.type, n) in present
                    ]
                    if not todo:
                        report.results = already
                        report.note = "slot already collected"
                        return
                    batches = read_all(settings, todo, slots)
                    for batch in batches:
                        batch.outcomes = [layout.fit(storable(o)) for o in batch.outcomes]
                    report.collected_at = min(b.collected_at for b in batches)
                    status: Status = "replaced" if replace else "stored"
                    results = []
                    for batch in batches:
                        written: dict[str, bool] = {}
                        for at, outcomes in _by_slot(batch.outcomes, slots).items():
                            done, declined = write_refusing(
                                conn,
                                layout,
                                (at, batch.collected_at, batch.source),
                                outcomes,
                                replace=replace,
                            )
                            written |= done
                            batch.outcomes = _refused(batch.outcomes, declined)
                        results += _results(batch, status, written, own)
                    report.results = _ordered(results + already, jobs)
                if settings.catch_up and not replace:
                    # The recent gaps of backfillable metrics, looked up on this connection.
                    filled = [job for job in jobs if job[0].backfill]
                    if filled:
                        report.gaps = _missing(
                            settings,
                            filled,
                            report.slot - settings.catch_up,
                            report.slot,
                            gaps_only=True,
                            conn=conn,
                            layout=layout,
                        )
            except SlotBusy:
                report.note = "another run holds this slot's lock; it collects the slot"
                report.results = []
    except StoreError as exc:
        if report.replaying is not None:
            # Every error about a spool file names the file.
            exc = StoreError(f"{exc} (replaying spool file {report.replaying})", hint=exc.hint)
        if not settings.spool_enabled:
            raise exc from None
        if batches is None:
            # The store failed before the sources were read: read them now, the numbers of
            # this slot cannot be counted later.
            try:
                batches = read_all(settings, jobs, slots)
            except DatabaseError:
                raise StoreError(
                    f"{exc}; the source could not be read either, nothing was spooled",
                    hint=exc.hint,
                ) from None
        raise _spooled(exc, settings, report, slots, batches, replace=replace) from None


def _by_slot(
    outcomes: Sequence[Outcome], slots: Mapping[str, datetime]
) -> dict[datetime, list[Outcome]]:
    out: dict[datetime, list[Outcome]] = {}
    for outcome in outcomes:
        out.setdefault(slots[outcome.type], []).append(outcome)
    return out


@dataclass
class BackfillReport:
    """What a backfill did: slots looked at, written, already there; failures per metric."""

    since: datetime
    until: datetime
    slots: int = 0
    written: int = 0
    present: int = 0
    busy: int = 0
    failed: list[MetricResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when some metric failed at some slot, else 0."""
        return 1 if self.failed else 0


def backfill(
    settings: Settings,
    jobs: list[Job],
    *,
    since: datetime,
    until: datetime,
    progress: Callable[[int, int], None] | None = None,
    gaps_only: bool = False,
    missing: Missing | None = None,
) -> BackfillReport:
    """Compute every missing slot in [since, until] of backfillable metrics, oldest first,
    each slot as a cycle of its own (one snapshot, the slot's lock, stored once).

    ``gaps_only`` (catch-up): only the slots after a metric's first stored slot in the
    window, so that a first run does not invent a history before the collector existed.
    """
    jobs = [job for job in jobs if job[0].backfill]
    report = BackfillReport(since, until)
    if missing is None:
        missing = _missing(settings, jobs, since, until, gaps_only=gaps_only)
    report.slots = len(missing)
    for index, (at, todo) in enumerate(missing):
        cycle = CycleReport(at, int(settings.interval.total_seconds()))
        write_slot(
            settings,
            todo,
            {spec.type: at for spec, _ in todo},
            cycle,
            replace=False,
            replay_spool=False,
        )
        if cycle.note and cycle.note.startswith("another run"):
            report.busy += 1
        elif any(r.status == "stored" for r in cycle.results):
            report.written += 1
        else:
            report.present += 1
        report.failed += [replace_slot(r, at) for r in cycle.failed]
        if progress is not None:
            progress(index + 1, len(missing))
    return report


def replace_slot(result: MetricResult, at: datetime) -> MetricResult:
    """The result, naming the slot it belongs to."""
    from dataclasses import replace

    return replace(result, slot=at)


Missing = list[tuple[datetime, list[Job]]]


def _missing(
    settings: Settings,
    jobs: list[Job],
    since: datetime,
    until: datetime,
    *,
    gaps_only: bool,
    conn: Any = None,
    layout: Layout | None = None,
) -> Missing:
    """The slots in [since, until] (oldest first) where some of ``jobs`` has no row yet.

    One query, on ``conn`` when given (the cycle's own store connection), else on a new one.
    """
    from analytics_cli.store.layout import detect
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
    if conn is None:
        with store_session(settings, doing="cannot read the store", read_only=True) as own:
            found = detect(own, settings)
            stored = found.stored_slots(own, since, until, jobs) if found is not None else set()
    else:
        stored = layout.stored_slots(conn, since, until, jobs) if layout is not None else set()
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


def _spooled(
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
    from analytics_cli import spool

    slot = report.slot
    # The store the rows are for: another config sharing the folder must not replay them.
    identity = spool.store_identity(settings)
    cycles = []
    for at in sorted({slots.get(o.type, slot) for b in batches for o in b.outcomes} or {slot}):
        parts = tuple(
            spool.from_outcomes(
                b.source,
                b.collected_at,
                [o for o in b.outcomes if slots.get(o.type, slot) == at],
            )
            for b in batches
        )
        cycles.append(spool.Spooled(settings.table, at, replace, parts, identity))
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


def _refused(outcomes: list[Outcome], refused: Mapping[str, str]) -> list[Outcome]:
    """The outcomes, each metric the store refused made its failure."""
    return [
        MetricFailure(o.type, f"the store refused its rows: {refused[o.type]}")
        if o.type in refused and not isinstance(o, MetricFailure)
        else o
        for o in outcomes
    ]


def replay(conn: Any, layout: Layout, settings: Settings, report: CycleReport) -> None:
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
    from analytics_cli import spool
    from analytics_cli.store.layout import notice
    from analytics_cli.store.locks import SlotBusy

    identity = spool.store_identity(settings)
    folder = spool.spool_dir(settings)
    foreign: list[spool.Spooled] = []
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
                        conn,
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
