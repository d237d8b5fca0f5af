"""The protocols every engine implements, and the shapes its store readers take and give.

Implementations import this module; nothing here imports an implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from analytics_cli.engines.shapes import (
    Ends,
    Key,
    Migrated,
    Point,
    Reach,
    Rebuilt,
    Retention,
    Selection,
    TypeSummary,
)

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.samples import Outcome

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
    """A platform database of one engine, reached through one connection string. ``read``
    opens ONE consistent read-only snapshot, runs every spec in it (a failing or hostile
    metric fails alone) and closes it; it raises DatabaseError only when the database cannot
    be reached or the snapshot is lost. ``explain`` does the same with each query's plan."""

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
    ``name`` is its name and its metric pack's dialect; the text-only methods (``readable``,
    ``passwords``, ``describe``, ``identity``) never connect."""

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

    def store(self, conn: Any, settings: Settings) -> Store:
        """The Store (the analytics table, its Layout inside) on a session of ``session``."""
        ...


# --- Store: the analytics table behind one interface -------------------------------------


class Layout(Protocol):
    """One shape of store table. Commands ask it for their SQL differences, never its name.

    ``conn`` is the session of the Store that found the layout (``Store.conn``).
    """

    name: str
    table: str
    # The column holding a row's slot time (status, prune).
    time_column: str
    # A column whose order is the order rows were written (prune deletes oldest first), or
    # None when the table has none.
    insertion_order: str | None

    def refuse(self, settings: Settings, specs: Sequence[MetricSpec]) -> None:
        """Raise ConfigError, before anything is counted, for metrics this table cannot hold."""
        ...

    def lock(self, conn: Any, settings: Settings, slot: datetime) -> None:
        """Take the slot's lock until the transaction ends; SlotBusy after a bounded wait."""
        ...

    def present(
        self, conn: Any, slot: datetime, jobs: Sequence[tuple[MetricSpec, str | None]]
    ) -> set[Key]:
        """The (type, source) keys among ``jobs`` that already have their rows for ``slot``."""
        ...

    def stored_slots(
        self,
        conn: Any,
        since: datetime,
        until: datetime,
        jobs: Sequence[tuple[MetricSpec, str | None]],
    ) -> set[tuple[str, str | None, datetime]]:
        """The (type, source, slot) of ``jobs`` stored in [since, until]: one query."""
        ...

    def fit(self, outcome: Outcome) -> Outcome:
        """The outcome as this table can store it unchanged, or that metric's failure."""
        ...

    def write(
        self,
        conn: Any,
        slot: datetime,
        collected_at: datetime,
        source: str | None,
        outcomes: Sequence[Outcome],
        *,
        replace: bool,
    ) -> dict[str, bool]:
        """Write (or replace) one batch's rows in a constant number of round trips.

        Returns type -> True when written, False when the row was already there.
        """
        ...

    def relation(self) -> Any:
        """What the engine's read queries select from, with the native column names."""
        ...

    def gaps(
        self,
        conn: Any,
        since: datetime | None,
        until: datetime | None,
        types: Sequence[str] | None = None,
    ) -> int:
        """How many rows in the window hold no usable count (NULL, NaN, an infinity): the
        readers leave them out, as gaps."""
        ...


class Store(Protocol):
    """The analytics table of one store database, with its Layout inside: everything a
    command reads, writes, prunes or checks there. One per engine; commands never ask which.
    It lives inside the session ``engines.stores.open_store`` opened: committed when the
    command's work ends without an error, rolled back otherwise."""

    settings: Settings
    table: str
    # The session (connection) the layout's write path runs on: ``transaction()`` and the
    # Layout's methods take it. Commands other than collect never touch it.
    conn: Any
    # Whether this engine creates its own (native) table when none exists.
    creates_table: bool
    # What prune needs besides DELETE on this engine (PostgreSQL locks each batch's rows).
    prune_grants: tuple[str, ...]
    rollups: Rollups  # the hourly and daily rollups (engines.rollups), or NoRollups

    def begin_reading(self) -> None:
        """Session settings the readers rely on (the text of times and strings)."""
        ...

    # -- the table and its layout
    def detect(self) -> Layout | None:
        """The table's layout, None when the table does not exist (ConfigError for a table
        of another shape, or one that contradicts ``[store] layout``)."""
        ...

    def ensure(self, *, refused: str | None = None) -> tuple[Layout, bool]:
        """The layout, creating a native table when none exists and the engine can; True
        when it was created. Committed; a failure is one line saying the table could not be
        prepared, with ``refused`` as the hint when a privilege is missing."""
        ...

    def refusals(self) -> AbstractContextManager[None]:
        """Inside: a row the store refuses for its content raises Refused, not a store error."""
        ...

    def privileges(self, exists: bool) -> set[str]:
        """Of INSERT, UPDATE, DELETE (CREATE in the schema when the table is absent and the
        engine creates tables), the ones the session's account holds."""
        ...

    # -- reading (every selection first goes through ``selection``)
    def selection(self, layout: Layout, sel: Selection, *, say_gaps: bool = True) -> Selection:
        """``sel`` set to read ``layout``'s table; with ``say_gaps``, rows left out as gaps
        (no usable count) are said, once per command."""
        ...

    def known_types(self) -> list[str]:
        """Distinct metric types present in the table."""
        ...

    def count_rows(self, sel: Selection) -> int:
        """How many rows a selection yields (buckets count once)."""
        ...

    def count_points(self, sel: Selection) -> int:
        """How many points fall in the window, bucketing ignored (slot totals with slot)."""
        ...

    def read_points(self, sel: Selection) -> list[Point]:
        """A selection's points, ordered by type and time."""
        ...

    def top_values(self, sel: Selection, limit: int) -> tuple[list[str | None], int]:
        """The ``limit`` values of the --by key with the highest average, and how many
        distinct values there are."""
        ...

    def summaries(self, sel: Selection, interval: timedelta) -> list[TypeSummary]:
        """Per type (per --by value) in the window, over its per-slot totals."""
        ...

    def sparkline_values(self, sel: Selection, width: int) -> dict[str, list[float | None]]:
        """Per type, ``width`` averages over equal slices of the window (None where empty)."""
        ...

    def first_metadata(self, sel: Selection, name: str) -> dict[str, Any]:
        """The metadata of one row of ``name`` in the window, ``{}`` if none."""
        ...

    def span(self, sel: Selection) -> tuple[datetime, datetime] | None:
        """The oldest and newest row of the selection's types (and --where), any window."""
        ...

    def export(
        self,
        sel: Selection,
        fmt: str,
        sink: Any,
        *,
        keys: Sequence[str],
        order: str,
        on_rows: Callable[[int], None] | None,
    ) -> int:
        """Stream a selection to ``sink`` (bytes) as csv, json or ndjson; the rows written."""
        ...

    # -- status, the textfile
    def ends(self, layout: Layout, name: str, now: datetime) -> Ends:
        """One type's first row, newest row up to ``now`` and newest row of all."""
        ...

    def slots_with_rows(
        self, layout: Layout, name: str, start: datetime, end: datetime, step: timedelta
    ) -> set[datetime]:
        """The slots of ``step`` in [start, end) where ``name`` has a row (at any minute)."""
        ...

    def slot_values(self, layout: Layout, slot: datetime) -> dict[str, Decimal]:
        """The value of each type at one slot start: the sum of its rows there."""
        ...

    def retention(self, layout: Layout, types: list[str]) -> Retention | None:
        """The oldest row and the partitions of a native table; None for other layouts."""
        ...

    # -- prune and migration
    def count_older(self, layout: Layout, cutoff: datetime) -> int:
        """How many rows have a slot time before ``cutoff``."""
        ...

    def prune(
        self,
        layout: Layout,
        cutoff: datetime,
        batch_size: int,
        progress: Callable[[int], None] | None,
    ) -> tuple[int, int, int]:
        """Delete rows older than ``cutoff`` in short batches (whole expired partitions
        dropped first where the engine has them): (rows, batches, partitions dropped)."""
        ...

    def migrate_partition(
        self, batch_size: int, progress: Callable[[int], None] | None
    ) -> Migrated:
        """Convert an unpartitioned native table into a monthly-partitioned one."""
        ...


class Rollups(Protocol):
    """The hourly and daily rollups of one Store's table."""

    def rebuild(self, progress: Callable[[int, int], None] | None) -> Rebuilt:
        """Rebuild them from the rows the store holds (older buckets are kept); ConfigError
        (NOT_APPLICABLE) on a table that has none."""
        ...

    def init_built(self, progress: Callable[[int, int], None] | None) -> bool:
        """``db init``: build them when the table has rows but no built rollups; True if
        it did."""
        ...

    def before_prune(self, layout: Layout, cutoff: datetime) -> None:
        """Roll up what a prune is about to delete and record the cut (committed)."""
        ...

    def prune_grain(self, grain: str, cutoff: datetime) -> int:
        """Delete the ``hourly`` or ``daily`` buckets that start before ``cutoff``; how many
        went."""
        ...

    def reach(self, layout: Layout) -> Reach | None:
        """How far they reach; None when there are none (or not on this layout)."""
        ...
