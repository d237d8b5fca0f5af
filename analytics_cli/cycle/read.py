"""The sources read: each in its own snapshot, side by side, the HTTP metrics outside any."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from analytics_cli.config.schema import MetricSpec, Settings
from analytics_cli.cycle.plan import Job
from analytics_cli.errors import DatabaseError
from analytics_cli.samples import MetricFailure, Outcome, Sample, Series
from analytics_cli.sources import open_source
from analytics_cli.timeutil import utcnow


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


def _tag(outcome: Outcome, source: str) -> Outcome:
    if isinstance(outcome, Sample):
        return Sample(outcome.type, outcome.count, {**outcome.metadata, "source": source})
    if isinstance(outcome, Series):
        tagged = (
            Sample(s.type, s.count, {**s.metadata, "source": source}) for s in outcome.samples
        )
        return Series(outcome.type, tuple(tagged))
    return outcome


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
