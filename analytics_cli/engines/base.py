"""The protocols every engine implements, and the reading rules they share.

Implementations import this module; nothing here imports an implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.metrics import Outcome

# --- Engine and Source: connecting, the consistent read-only snapshot --------------------

# The slot each metric type is counted for (its own ``every`` floors it), bound as %(slot)s.
Slots = Mapping[str, datetime]
# What an engine makes of its connection string for the spool: host, port, dbname, user...
Identity = dict[str, str]


@dataclass(frozen=True)
class Snapshot:
    """What one source gave: when its snapshot was taken, and one outcome per metric spec."""

    collected_at: datetime
    outcomes: list[Outcome]


@dataclass(frozen=True)
class FullScan:
    """A full scan over a large table, with the index that would avoid it."""

    table: str
    rows: int
    filter: str
    suggestion: str | None


@dataclass
class MetricPlan:
    """One metric's plan: estimated cost, real time, flagged scans (or the error)."""

    type: str
    cost: float = 0.0
    time_ms: float = 0.0
    scans: list[FullScan] = field(default_factory=list)
    error: str | None = None


class Refused(ValueError):
    """A metric text the engine will not run; ``str()`` says why, in one line."""


class Source(Protocol):
    """A platform database of one engine, reached through one connection string.

    ``read`` opens ONE consistent read-only snapshot, runs every spec in it (a failing or
    hostile metric fails alone) and closes it; it raises DatabaseError only when the
    database cannot be reached or the snapshot is lost. ``explain`` does the same with the
    engine's plan of each query.
    """

    engine: str

    def read(self, specs: Sequence[MetricSpec], slots: Slots) -> Snapshot:
        """Every spec's outcome, all from one snapshot; ``slots`` gives each type's slot."""
        ...

    def explain(self, specs: Sequence[MetricSpec], slot: datetime) -> list[MetricPlan]:
        """Every spec's plan, cost and time, from one read-only snapshot."""
        ...

    def cancel(self) -> None:
        """From another thread: stop the queries of a read in progress (it then fails)."""
        ...


@dataclass(frozen=True)
class Job:
    """What one job asks of its connection: which side (``store`` or ``source``), the words
    its errors start with, read-only (on MySQL also one consistent snapshot), repeatable
    read, how often to retry connecting, and the hint for a refused privilege."""

    side: str
    doing: str
    read_only: bool = False
    repeatable_read: bool = False
    retries: int = 0
    refused: str | None = None


@dataclass(frozen=True)
class Starter:
    """What ``config init`` writes for a source of one engine, in its words and dialect."""

    # The commented connection string under [source].
    source_example: str
    # The comment under [store]: where the samples may go from such a source.
    store_note: str
    # The comment before the example custom metric: its parameters and quoting.
    metric_note: str
    # The example custom metric's text (registered users), in the engine's dialect.
    example_sql: str


class Engine(Protocol):
    """One database engine, chosen once from the connection string's scheme (``dsn.engine_for``).

    ``name`` is the engine's name and the dialect of its metric pack. The text-only methods
    (``readable``, ``passwords``, ``describe``, ``identity``) never connect.
    """

    @property
    def name(self) -> str:
        """``postgresql`` or ``mysql``: the dialect of the metric texts it runs."""
        ...

    @property
    def starter(self) -> Starter:
        """The parts of ``config init``'s text that depend on the source's engine."""
        ...

    def require_driver(self, what: str) -> None:
        """MissingExtra (exit 2) when the engine's driver is not installed."""
        ...

    def readable(self, dsn: str) -> bool:
        """True when the driver would read ``dsn`` as a connection string."""
        ...

    def passwords(self, dsn: str) -> set[str]:
        """The password(s) the driver reads out of ``dsn``."""
        ...

    def plain_params(self) -> frozenset[str]:
        """The parameter names of its connection strings that hold no secret."""
        ...

    def describe(self, dsn: str) -> str | None:
        """``user@host:port/dbname``, unredacted; None when ``dsn`` cannot be read."""
        ...

    def identity(self, dsn: str) -> Identity:
        """Where ``dsn`` leads, with the driver's defaults filled in (the spool's key)."""
        ...

    def grant_hint(self, what: str, privileges: str, table: str, dsn: str | None) -> str:
        """The GRANT that gives ``what`` its ``privileges`` on ``table``."""
        ...

    def session(self, dsn: str, settings: Settings, job: Job) -> AbstractContextManager[Any]:
        """A connection for ``job``: connect (with retries), a first transaction bounded by
        the statement timeout; any database error one line starting with ``job.doing``.
        Committed when the job ends without an error, rolled back otherwise; closed either
        way."""
        ...

    def open_source(self, dsn: str, settings: Settings) -> Source:
        """The Source (one consistent read-only snapshot per read) for ``dsn``."""
        ...


# --- Store: the analytics table behind one interface -------------------------------------
