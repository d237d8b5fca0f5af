"""A spooled cycle and its file format: the data a cycle leaves for the store, written as JSON
and read back checked as a live cycle checks its rows (a file is never trusted)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from analytics_cli.config.schema import SOURCE_NAME_RE, MetricSpec
from analytics_cli.config.validate import validate_table
from analytics_cli.errors import ConfigError
from analytics_cli.samples import MetricFailure, Outcome, Sample, Series, cut, unstorable
from analytics_cli.timeutil import iso

KIND = "analytics-cli spooled cycle"
# Version 2 names the store a cycle is for ("store"); version 1 named only its table.
VERSION = 2
READABLE = (1, 2)

# Which store a spooled cycle belongs to: engine, host, port, dbname, user, table (and the
# libpq service or MySQL socket when one is named). Never a password.
Identity = dict[str, str]


@dataclass(frozen=True)
class Entry:
    """One metric's rows of a spooled slot (a dimensional metric: one row per value)."""

    type: str
    source: str | None
    dimensional: bool
    samples: tuple[Sample, ...]

    @property
    def job(self) -> tuple[MetricSpec, str | None]:
        """The (spec, source) pair the Layout's presence check takes."""
        dims = ("spooled",) if self.dimensional else ()
        return MetricSpec(self.type, "", dimensions=dims), self.source


@dataclass(frozen=True)
class Batch:
    """What one source gave for the slot, as written to the store."""

    source: str | None
    collected_at: datetime
    entries: tuple[Entry, ...]

    def outcomes(self) -> list[Outcome]:
        """The entries as the outcomes a Layout writes."""
        out: list[Outcome] = []
        for entry in self.entries:
            if entry.dimensional:
                out.append(Series(entry.type, entry.samples))
            else:
                out.extend(entry.samples)
        return out


@dataclass(frozen=True)
class Spooled:
    """A whole cycle waiting for the store: its table, slot, batches, whether it replaces,
    and the store it is for (None: a version 1 file, which named only the table)."""

    table: str
    slot: datetime
    replace: bool
    batches: tuple[Batch, ...]
    store: Identity | None = None

    def belongs(self, identity: Identity) -> bool:
        """True when this cycle is for the store of ``identity``.

        A version 1 file names no store, only its table. It is replayed by the first run whose
        table matches, as the version that wrote it would have done: it can only date from
        an outage that began before the upgrade, when a spool folder was meant for one
        store, and leaving it alone would lose that slot for good.
        """
        if self.store is None:
            return self.table == identity.get("table")
        return self.store == identity

    @property
    def rows(self) -> int:
        """How many rows the cycle holds."""
        return sum(len(e.samples) for b in self.batches for e in b.entries)


def from_outcomes(source: str | None, collected_at: datetime, outcomes: Sequence[Outcome]) -> Batch:
    """A batch of a cycle's outcomes; failures are not stored, so they are not spooled."""
    entries: list[Entry] = []
    for outcome in outcomes:
        if isinstance(outcome, Sample):
            entries.append(Entry(outcome.type, source, False, (outcome,)))
        elif isinstance(outcome, Series):
            entries.append(Entry(outcome.type, source, True, outcome.samples))
        else:
            assert isinstance(outcome, MetricFailure)
    return Batch(source, collected_at, tuple(entries))


def encode(cycle: Spooled) -> str:
    return json.dumps(
        {
            "kind": KIND,
            # A cycle that names no store is what a version 1 file held.
            "version": VERSION if cycle.store is not None else 1,
            "table": cycle.table,
            **({"store": cycle.store} if cycle.store is not None else {}),
            "slot": iso(cycle.slot),
            "replace": cycle.replace,
            "batches": [
                {
                    "source": b.source,
                    "collected_at": iso(b.collected_at),
                    "entries": [
                        {
                            "type": e.type,
                            "dimensional": e.dimensional,
                            # Counts as text: exact decimals survive the round trip.
                            "rows": [[str(s.count), s.metadata] for s in e.samples],
                        }
                        for e in b.entries
                    ],
                }
                for b in cycle.batches
            ],
        },
        ensure_ascii=False,
    )


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ValueError("time without a zone")
    return moment


class Corrupt(ValueError):
    """A spool file that is not a cycle this version wrote."""


def _sample(type_: str, count: object, meta: object) -> Sample:
    """One row of a spooled entry, checked as a live cycle checks its rows."""
    if not isinstance(count, str | int) or isinstance(count, bool):
        raise Corrupt(f"type {cut(type_)}: count {cut(repr(count))} is not a number")
    if not isinstance(meta, dict):
        raise Corrupt(f"type {cut(type_)}: metadata is not an object")
    try:
        sample = Sample(type_, Decimal(str(count).strip()), dict(meta))
    except InvalidOperation:
        raise Corrupt(f"type {cut(type_)}: count {cut(repr(count))} is not a number") from None
    reason = unstorable(sample)
    if reason is not None:
        raise Corrupt(reason if reason.startswith("type ") else f"type {cut(type_)}: {reason}")
    return sample


def _entry(e: object, source: str | None) -> Entry:
    if not isinstance(e, dict):
        raise Corrupt("an entry is not an object")
    type_, dimensional, rows = e["type"], e["dimensional"], e["rows"]
    if not isinstance(type_, str):
        raise Corrupt(f"type {cut(repr(type_))} is not a valid metric type")
    if not isinstance(dimensional, bool) or not isinstance(rows, list):
        raise Corrupt(f"type {cut(type_)}: malformed entry")
    samples = []
    for row in rows:
        if not isinstance(row, list) or len(row) != 2:
            raise Corrupt(f"type {cut(type_)}: a row is not [count, metadata]")
        samples.append(_sample(type_, row[0], row[1]))
    if not dimensional and (len(samples) != 1 or set(samples[0].metadata) - {"source"}):
        raise Corrupt(f"type {cut(type_)}: a plain metric holds exactly one row without dimensions")
    return Entry(type_, source, dimensional, tuple(samples))


def decode(text: str) -> Spooled:
    """Parse a spool file; Corrupt when it is not one of ours, whole and of this version, or
    when a value is not one a live cycle would store (a non-finite count, a NUL byte, a type
    or source name the config refuses)."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise Corrupt("not an analytics-cli spool file")
        version = doc.get("version")
        if isinstance(version, bool) or version not in READABLE:
            raise Corrupt(f"spool format version {version!r}, expected {VERSION}")
        store = doc.get("store") if version >= 2 else None
        if version >= 2 and not (
            isinstance(store, dict)
            and all(isinstance(v, str) and "\x00" not in v for v in store.values())
        ):
            raise Corrupt("spool file names no store")
        table, replace = doc["table"], doc["replace"]
        if not isinstance(table, str) or not isinstance(replace, bool):
            raise Corrupt("malformed table or replace")
        try:
            validate_table(table)
        except ConfigError:
            raise Corrupt(f"table {cut(repr(table))} is not a valid table name") from None
        batches = []
        for b in doc["batches"]:
            source = b["source"]
            if source is not None and not (
                isinstance(source, str) and SOURCE_NAME_RE.fullmatch(source)
            ):
                raise Corrupt(f"source {cut(repr(source))} is not a valid source name")
            entries = [_entry(e, source) for e in b["entries"]]
            batches.append(Batch(source, _instant(b["collected_at"]), tuple(entries)))
        return Spooled(
            table,
            _instant(doc["slot"]),
            replace,
            tuple(batches),
            {str(k): v for k, v in store.items()} if isinstance(store, dict) else None,
        )
    except Corrupt:
        raise
    except (ValueError, KeyError, TypeError, InvalidOperation, OverflowError) as exc:
        raise Corrupt(f"unreadable spool file ({type(exc).__name__})") from None
