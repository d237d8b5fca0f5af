"""Cycles the store could not take: atomic files, replayed first by the next run that reaches it."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from analytics_cli.config import MetricSpec, Settings
from analytics_cli.dsn import MYSQL, describe, dsn_secrets, engine_of, scrub
from analytics_cli.metrics import MetricFailure, Outcome, Sample, Series
from analytics_cli.timeutil import iso

KIND = "analytics-cli spooled cycle"
# Version 2 names the store a cycle is for ("store"); version 1 named only its table.
VERSION = 2
READABLE = (1, 2)
SUFFIX = ".json"
REJECTED = "rejected"

# Which store a spooled cycle belongs to: engine, host, port, dbname, user, table (and the
# libpq service or MySQL socket when one is named). Never a password.
Identity = dict[str, str]


def spool_dir(settings: Settings, env: dict[str, str] | None = None) -> Path:
    """``[store] spool``, else ``$STATE_DIRECTORY/spool``, else
    ``$XDG_STATE_HOME/analytics-cli/spool``, else ``~/.local/state/…``."""
    env = dict(os.environ) if env is None else env
    if settings.spool_dir is not None:
        return Path(settings.spool_dir).expanduser()
    # systemd's StateDirectory= sets STATE_DIRECTORY (several folders: a colon-separated
    # list, the unit's first one first): the service's own writable folder, where the
    # dynamic user's home ("/") is read-only.
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "spool"
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]).expanduser() / "analytics-cli" / "spool"
    return Path.home() / ".local" / "state" / "analytics-cli" / "spool"


def store_identity(settings: Settings) -> Identity:
    """The identity of the store ``settings`` write to, read from its connection string.

    Missing parts take what the client library would use (libpq: the PG* variables and its
    defaults; MySQL: the option file and MYSQL_* variables), so that two spellings of one
    store agree. Every value is scrubbed of the connection string's secrets: a malformed
    string may put a piece of its password where a host belongs.
    """
    dsn = settings.store_dsn or ""
    found = _mysql_identity(dsn) if engine_of(dsn) == MYSQL else _pg_identity(dsn)
    found["table"] = settings.table
    secrets = dsn_secrets(dsn)
    return {key: scrub(value, secrets) for key, value in found.items()}


def _pg_identity(dsn: str) -> Identity:
    try:
        from psycopg import pq
        from psycopg.conninfo import conninfo_to_dict

        given = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v not in (None, "")}
        defaults = {
            o.keyword.decode(): o.val.decode()
            for o in pq.Conninfo.get_defaults()
            if o.val is not None and o.val != b""
        }
    except Exception:
        # Not readable as a connection string: its redacted description stands for it.
        return {"engine": "postgresql", "store": describe(dsn)}

    def part(key: str) -> str:
        return given.get(key) or defaults.get(key) or ""

    user = part("user")
    found = {
        "engine": "postgresql",
        "host": part("host") or part("hostaddr") or "(default socket)",
        "port": part("port") or "5432",
        "dbname": part("dbname") or user,
        "user": user,
    }
    if part("service"):
        found["service"] = part("service")
    return found


def _mysql_identity(dsn: str) -> Identity:
    from analytics_cli.errors import ConfigError
    from analytics_cli.mysql_dsn import parse

    try:
        params = parse(dsn)
    except (ConfigError, OSError, ValueError):
        return {"engine": "mysql", "store": describe(dsn)}
    found = {
        "engine": "mysql",
        "host": params.host,
        "port": str(params.port),
        "dbname": params.database,
        "user": params.user or "",
    }
    if params.unix_socket:
        found["socket"] = params.unix_socket
    return found


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


def _encode(cycle: Spooled) -> str:
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


def decode(text: str) -> Spooled:
    """Parse a spool file; Corrupt when it is not one of ours, whole and of this version."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise Corrupt("not an analytics-cli spool file")
        version = doc.get("version")
        if isinstance(version, bool) or version not in READABLE:
            raise Corrupt(f"spool format version {version!r}, expected {VERSION}")
        store = doc.get("store") if version >= 2 else None
        if version >= 2 and not (
            isinstance(store, dict) and all(isinstance(v, str) for v in store.values())
        ):
            raise Corrupt("spool file names no store")
        batches = []
        for b in doc["batches"]:
            source = b["source"]
            entries = []
            for e in b["entries"]:
                samples = tuple(
                    Sample(str(e["type"]), Decimal(str(count)), dict(meta))
                    for count, meta in e["rows"]
                )
                entries.append(Entry(str(e["type"]), source, bool(e["dimensional"]), samples))
            batches.append(Batch(source, _instant(b["collected_at"]), tuple(entries)))
        return Spooled(
            str(doc["table"]),
            _instant(doc["slot"]),
            bool(doc["replace"]),
            tuple(batches),
            {str(k): v for k, v in store.items()} if isinstance(store, dict) else None,
        )
    except Corrupt:
        raise
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise Corrupt(f"unreadable spool file ({type(exc).__name__})") from None


def write(folder: Path, cycle: Spooled) -> Path:
    """Write a cycle atomically (temporary file, fsync, rename), mode 0600; returns its path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Names sort by slot, then by when they were spooled: replay order is name order.
    stamp = cycle.slot.strftime("%Y%m%dT%H%M%SZ")
    final = folder / f"{stamp}-{uuid.uuid4().hex[:12]}{SUFFIX}"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".spool-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_encode(cycle))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def pending(folder: Path) -> list[Path]:
    """The spooled cycles waiting in ``folder``, oldest slot first."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and p.is_file())
    except FileNotFoundError:
        return []


def set_aside(path: Path, reason: str, warn: Callable[[str], None]) -> None:
    """Move a file that is not a cycle we can replay out of the way, and say so."""
    aside = path.parent / REJECTED
    aside.mkdir(exist_ok=True, mode=0o700)
    path.replace(aside / path.name)
    warn(f"warning: spool file {path.name} set aside in {aside}: {reason}")


def readable(folder: Path, warn: Callable[[str], None]) -> Iterator[tuple[Path, Spooled]]:
    """Each pending cycle that parses, oldest first; the others are set aside with a warning."""
    for path in pending(folder):
        try:
            yield path, decode(path.read_text("utf-8"))
        except (Corrupt, UnicodeDecodeError) as exc:
            set_aside(path, str(exc), warn)
        except OSError as exc:
            warn(f"warning: cannot read spool file {path}: {exc.strerror}")


def summary(folder: Path) -> list[tuple[datetime | None, Path]]:
    """(slot, path) of every pending file, for status; None where the file does not parse."""
    out: list[tuple[datetime | None, Path]] = []
    for path in pending(folder):
        try:
            out.append((decode(path.read_text("utf-8")).slot, path))
        except (Corrupt, OSError, UnicodeDecodeError):
            out.append((None, path))
    return out
