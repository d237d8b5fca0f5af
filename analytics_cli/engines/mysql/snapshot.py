"""The MySQL/MariaDB source: one CONSISTENT SNAPSHOT, READ ONLY transaction; each metric a derived table.

Guarantees, as on PostgreSQL: every metric of a cycle reads the same snapshot
(REPEATABLE READ, ``START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY``, session time
zone UTC); a metric is time-limited (MariaDB ``max_statement_time``, MySQL 8
``max_execution_time``) and fails alone. A metric can neither write nor end the snapshot:
its text must be one plain query (``mysql_guard``), it runs as a derived table (which the
server accepts only for a query), several statements in one call are off (PyMySQL without
CLIENT.MULTI_STATEMENTS), and after each metric the session is checked to be still in its
read-only transaction. ``[collect] parallel`` does not apply: MySQL cannot share one
snapshot between connections, so every metric runs on one connection.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_cli.engines import runner
from analytics_cli.engines.base import MetricPlan, Refused, Slots, Snapshot
from analytics_cli.engines.mysql.connect import code as _code
from analytics_cli.engines.mysql.connect import connect, quote_name, require_pymysql
from analytics_cli.engines.mysql.connect import message as _message
from analytics_cli.engines.mysql.flavor import Flavor, flavor_of
from analytics_cli.engines.mysql.guard import check_query, table_aliases
from analytics_cli.engines.mysql.params import MySQLParams, parse
from analytics_cli.errors import DatabaseError
from analytics_cli.samples import MAX_COUNT_OCTETS, MAX_DIMENSION_OCTETS, MetricFailure

if TYPE_CHECKING:
    import pymysql

    from analytics_cli.config.schema import MetricSpec, Settings

ENGINE = "mysql"
# The parameters a MySQL metric may use (documented in packs/mysql.toml and docs/mysql.md).
PARAMETERS = ("slot", "interval_seconds")
_BAD_FIELD = 1054
# SERVER_STATUS_IN_TRANS_READONLY (MySQL 5.7+, MariaDB); PyMySQL's constants lack it.
_IN_TRANS_READONLY = 0x2000


class MySQLSource:
    """A MySQL or MariaDB platform database (PyMySQL), read in one snapshot on one connection."""

    engine = ENGINE

    def __init__(self, dsn: str, settings: Settings) -> None:
        require_pymysql()
        self.dsn = dsn
        self.settings = settings
        self.params = parse(dsn)
        # The server thread of a read in progress, for cancel() from another thread.
        self._live: list[int] = []

    def read(self, specs: Sequence[MetricSpec], slots: Slots) -> Snapshot:
        """Every spec's outcome from one snapshot."""
        with snapshot(self.params, self.settings, self._live) as session:
            done = {
                o.type: o for o in runner.run_all(session, specs, slots, self.settings.interval)
            }
            return Snapshot(session.collected_at, [done[spec.type] for spec in specs])

    def cancel(self) -> None:
        """From another thread: KILL QUERY the statement of a read in progress."""
        for thread in list(self._live):
            _kill_query(self.params, self.settings, thread)

    def explain(self, specs: Sequence[MetricSpec], slot: datetime) -> list[MetricPlan]:
        """Every spec's plan (MariaDB ANALYZE / MySQL EXPLAIN, JSON) in one read-only snapshot."""
        with snapshot(self.params, self.settings) as session:
            return runner.explain_all(session, specs, slot, self.settings.interval)


@contextmanager
def snapshot(
    params: MySQLParams, settings: Settings, live: list[int] | None = None
) -> Iterator[MySQLDialect]:
    """Connect and open the read-only snapshot; roll it back and close the connection after."""
    import pymysql

    conn = connect(params, settings, purpose="source", retries=settings.retries)
    # Kept now: PyMySQL drops the connection when an interrupt breaks into a read.
    thread = int(conn.thread_id())  # type: ignore[no-untyped-call,unused-ignore]
    if live is not None:
        live.append(thread)
    try:
        session = MySQLDialect(conn, params, settings)
        session.begin()
        yield session
        conn.rollback()
    except pymysql.err.Error as exc:
        raise DatabaseError(f"source database error: {_message(exc, params.secrets)}") from None
    except BaseException:
        # Interrupted (SIGINT, SIGTERM) while a query may be running: the server would go on
        # until its time limit, holding the snapshot. End that query, as psycopg's cancel does.
        _kill_query(params, settings, thread)
        raise
    finally:
        if live is not None and thread in live:
            live.remove(thread)
        if conn.open:
            conn.close()


def _kill_query(params: MySQLParams, settings: Settings, thread: int) -> None:
    """Best effort: KILL QUERY the server thread's running statement from a second connection."""
    import dataclasses

    try:
        quick = dataclasses.replace(settings, connect_timeout=timedelta(seconds=2))
        killer = connect(params, quick, purpose="source")
        try:
            with killer.cursor() as cur:
                cur.execute(f"KILL QUERY {thread:d}")
        finally:
            killer.close()
    except Exception:
        pass  # the server ends the query at its time limit all the same


def _checked(column: str, limit: int, *, text: bool) -> str:
    """A column NULL when its text is longer than ``limit`` bytes, and that length."""
    col = quote_name(column)
    value = f"CAST({col} AS CHAR)" if text else col
    return f"CASE WHEN octet_length({col}) <= {limit:d} THEN {value} END, octet_length({col})"


def _measured(
    text: str, limit: int, counts: Sequence[str] = ("count",), dimensions: Sequence[str] = ()
) -> str:
    """The metric's query with its count columns (and dimensions, as text) size-checked.

    The inner LIMIT keeps the derived table from being merged into the outer query, which
    would evaluate the count expression once per use (three times) instead of once. The
    newline ends a trailing ``-- comment`` of the metric's text before the parenthesis.
    """
    columns = [_checked(c, MAX_COUNT_OCTETS, text=False) for c in counts]
    columns += [_checked(d, MAX_DIMENSION_OCTETS, text=True) for d in dimensions]
    return (
        f"SELECT {', '.join(columns)} FROM (SELECT * FROM (\n{text}\n) AS q LIMIT {limit:d}) AS m"
    )


# A syntax error quotes the statement from the error on ("near '…' at line N"): that is the
# metric's text followed by the tail of the query it runs in, which is no part of the metric.
_NEAR = re.compile(r"near '(.*)' at line (\d+)", re.S)
_TAIL = re.compile(r"\n\)(?: (?:A(?:S(?: (?:q\b.*)?)?)?)?)?$", re.S)


def own_text(message: str) -> str:
    """A server message about a metric run inside ``_measured``'s wrapper, told about the
    metric's own text: the quoted part ends where the metric ends, whitespace runs are one
    space, and the line number counts the metric's lines."""
    found = _NEAR.search(message)
    if found is None:
        return message
    fragment = found.group(1)
    cut = fragment.rfind("\n) AS q")
    fragment = fragment[:cut] if cut >= 0 else _TAIL.sub("", fragment)
    fragment = " ".join(fragment.split())
    line = max(1, int(found.group(2)) - 1)
    where = f"near '{fragment}'" if fragment else "at the end of the query"
    return f"{message[: found.start()]}{where} at line {line}{message[found.end() :]}"


def bound_parameters(slot: datetime, interval: timedelta) -> dict[str, Any]:
    """``%(slot)s`` as a naive UTC datetime, ``%(interval_seconds)s`` as whole seconds."""
    naive = slot.astimezone(UTC).replace(tzinfo=None) if slot.tzinfo else slot
    return {"slot": naive, "interval_seconds": int(interval.total_seconds())}


class MySQLDialect:
    """MySQL's statements for the snapshot runner, on the one connection holding the
    read-only snapshot; checks after each metric that the snapshot still holds."""

    def __init__(self, conn: pymysql.Connection[Any], params: MySQLParams, settings: Settings):
        import pymysql

        self.conn = conn
        self.params = params
        self.settings = settings
        self.flavor = Flavor(True, "")
        self.collected_at = datetime.now(UTC)
        self.backslash_escapes = True
        self.ansi_quotes = False
        # The driver's errors, caught per metric by the runner.
        self.errors: tuple[type[Exception], ...] = (pymysql.err.Error,)

    # -- statements

    def fetch(self, query: str, params: Any = None) -> list[Any]:
        """Run one statement (no parameters: they are bound already) and fetch its rows."""
        with self.conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())

    def columns(self, text: str, params: Any = None) -> list[str]:
        """The query's column names: planned, but no row is computed (LIMIT 0)."""
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT * FROM (\n{text}\n) AS q LIMIT 0")
            return [str(d[0]) for d in cur.description or ()]

    def begin(self) -> None:
        """Detect the server, set the session up, open the snapshot and check that it holds."""
        ((version, comment, sql_mode),) = self.fetch(
            "SELECT VERSION(), @@version_comment, @@sql_mode"
        )
        self.flavor = flavor_of(str(version), str(comment or ""))
        modes = set(str(sql_mode or "").upper().split(","))
        self.backslash_escapes = "NO_BACKSLASH_ESCAPES" not in modes
        self.ansi_quotes = "ANSI_QUOTES" in modes or "ANSI" in modes
        for statement in (
            "SET time_zone = '+00:00'",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "SET SESSION TRANSACTION READ ONLY",
            self.flavor.timeout_statement(self.settings.statement_timeout),
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ):
            self.fetch(statement)
        now, read_only, isolation = self.fetch(
            f"SELECT NOW(6), {self.flavor.read_only_variable}, {self.flavor.isolation_variable}"
        )[0]
        state = self.state(read_only)
        if state != (1, 1, 1) or str(isolation) != "REPEATABLE-READ":
            raise DatabaseError(
                "the source database did not open a REPEATABLE READ, READ ONLY snapshot "
                f"({self.describe_state(state)}, isolation={isolation})"
            )
        self.collected_at = now.replace(tzinfo=UTC)

    def state(self, session_read_only: object) -> tuple[int, int, int]:
        """(in a transaction, that transaction read-only, the session read-only) as 0/1.

        The first two are the server's status flags of the last reply (SERVER_STATUS_IN_TRANS,
        SERVER_STATUS_IN_TRANS_READONLY): MariaDB and MySQL both send them, to any account.
        """
        from pymysql.constants import SERVER_STATUS

        # Not in the type stubs, but set from every OK and EOF packet the server sends.
        status = int(getattr(self.conn, "server_status", 0) or 0)
        return (
            int(bool(status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)),
            int(bool(status & _IN_TRANS_READONLY)),
            int(session_read_only == 1),
        )

    @staticmethod
    def describe_state(state: tuple[int, int, int]) -> str:
        """The state as ``in_transaction=1, read_only=1, session_read_only=1``."""
        return "in_transaction={}, read_only={}, session_read_only={}".format(*state)

    def verify(self, metric: str) -> None:
        """Raise DatabaseError unless the session is still in its read-only snapshot.

        Under autocommit, a transaction once ended stays ended: only START TRANSACTION (not
        a query) could open another. The guard and the wrapping make this unreachable; the
        check makes sure nothing read after a lost snapshot is ever kept.
        """
        ((session_read_only,),) = self.fetch(f"SELECT {self.flavor.read_only_variable}")
        state = self.state(session_read_only)
        if state != (1, 1, 1):
            raise DatabaseError(
                f"the source snapshot was ended or made writable while running {metric} "
                f"({self.describe_state(state)}); no value of this cycle is kept from it"
            )

    def error_line(self, exc: BaseException) -> str:
        """A metric's database error as one line; a time-out says so in PostgreSQL's words."""
        code = _code(exc)
        if code is not None and self.flavor.is_timeout(code):
            from analytics_cli.timeutil import format_duration

            limit = format_duration(self.settings.statement_timeout)
            return f"canceling statement due to statement timeout ({limit})"
        args = exc.args
        if len(args) >= 2 and isinstance(args[0], int):
            exc = type(exc)(args[0], own_text(str(args[1])))
        return _message(exc, self.params.secrets)

    def prepare(self, spec: MetricSpec, slot: datetime, interval: timedelta) -> tuple[str, None]:
        """The metric's text with its parameters bound (by the client: the text is checked
        as the server will read it), checked to be one plain query."""
        return self.bind(spec, bound_parameters(slot, interval)), None

    def bind(self, spec: MetricSpec, params: dict[str, Any]) -> str:
        """The metric's text with ``params`` bound, checked to be one plain query."""
        text = spec.sql_for(ENGINE)
        if text is None:
            raise Refused(f"the built-in metric {spec.type} has no MySQL text")
        with self.conn.cursor() as cur:
            try:
                bound = cur.mogrify(text, params)
            except KeyError as exc:
                name = exc.args[0] if exc.args else "?"
                if name == "interval":
                    raise Refused(
                        "%(interval)s is PostgreSQL's; on MySQL write "
                        "INTERVAL %(interval_seconds)s SECOND"
                    ) from None
                raise Refused(
                    f"unknown parameter %({name})s; a MySQL metric may use "
                    + ", ".join(f"%({p})s" for p in PARAMETERS)
                ) from None
            except (TypeError, ValueError):
                raise Refused(
                    "the metric's text has a '%' that is no parameter: write %% for a "
                    "literal percent sign, %(slot)s and %(interval_seconds)s for the parameters"
                ) from None
        return check_query(
            bound, backslash_escapes=self.backslash_escapes, ansi_quotes=self.ansi_quotes
        )

    def guarded(self) -> AbstractContextManager[Any]:
        """Nothing: a failing query leaves the snapshot as it was (``verify`` checks)."""
        return nullcontext()

    def measured(self, text: str, limit: int, counts: Sequence[str], dims: Sequence[str]) -> str:
        """The query as a derived table with its columns size-checked (``_measured``)."""
        return _measured(text, limit, counts, dims)

    def missing_column(self, exc: Exception) -> bool:
        """ER_BAD_FIELD_ERROR."""
        return _code(exc) == _BAD_FIELD

    def lost(self) -> bool:
        """True when the connection is closed."""
        return not self.conn.open

    def recover(self, failed: MetricFailure) -> bool:
        """Never: MySQL cannot open the same snapshot again."""
        return False

    def suggest_index(self, table: str, columns: list[str], condition: str) -> str | None:
        """An online ALTER TABLE ... ADD INDEX (``suggest_index``)."""
        return suggest_index(table, columns, condition)

    def plan(self, text: str, params: Any = None) -> runner.Plan:
        """MariaDB's ANALYZE (or MySQL's EXPLAIN, timed by one real run), in JSON: cost, time,
        and the full scans with their tables' estimated rows and columns."""
        rows = self.fetch(f"{self.flavor.explain_prefix}SELECT * FROM (\n{text}\n) AS q")
        doc = json.loads(str(rows[0][0]))
        if self.flavor.mariadb:
            time_ms = float(doc.get("query_block", {}).get("r_total_time_ms", 0.0))
        else:
            # MySQL's JSON plan is an estimate only: time one real run of the metric.
            started = time.monotonic()
            self.fetch(_measured(text, 2))
            time_ms = (time.monotonic() - started) * 1000
        accesses = list(_table_accesses(doc))
        aliases = table_aliases(text)
        scans = []
        for access in accesses:
            if access.get("access_type") != "ALL":
                continue
            alias = str(access.get("table_name", ""))
            if not alias or alias.startswith("<"):
                continue  # a derived or temporary table of the query itself
            table = aliases.get(alias, alias)
            size, names = self.table_facts(table)
            estimate = int(access.get("rows", access.get("rows_examined_per_scan", 0)) or 0)
            condition = str(access.get("attached_condition", ""))
            scans.append(runner.Scan(table, max(size, estimate), names, condition))
        return runner.Plan(_cost(doc, accesses), time_ms, scans)

    def table_facts(self, table: str) -> tuple[int, list[str]]:
        """The table's estimated row count and its column names (information_schema)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (table,),
            )
            row = cur.fetchone()
            rows = int(row[0] or 0) if row else 0
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (table,),
            )
            return rows, [str(r[0]) for r in cur.fetchall()]


def _table_accesses(node: Any) -> list[dict[str, Any]]:
    """Every table access of a JSON plan (MariaDB and MySQL shapes), depth first."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "access_type" in node and "table_name" in node:
            found.append(node)
        for value in node.values():
            found += _table_accesses(value)
    elif isinstance(node, list):
        for item in node:
            found += _table_accesses(item)
    return found


def _cost(doc: dict[str, Any], accesses: list[dict[str, Any]]) -> float:
    """The plan's cost: MySQL's query_cost, MariaDB 11's cost, else the estimated rows read."""
    block = doc.get("query_block", {})
    info = block.get("cost_info", {})
    if "query_cost" in info:
        return float(info["query_cost"])
    if "cost" in block:
        return float(block["cost"])
    return float(sum(float(a.get("rows", 0) or 0) for a in accesses))


_CONDITION = re.compile(
    r"(?:(?:`(?:[^`]|``)+`|[\w$]+)\.)*`?([\w$]+)`?\s*(<=>|<>|!=|<=|>=|=|<|>|\bbetween\b)",
    re.IGNORECASE,
)


def suggest_index(table: str, columns: list[str], condition: str) -> str | None:
    """An online ``ALTER TABLE ... ADD INDEX`` that lets the server skip a full scan, or None.

    MySQL has no partial index: the equality columns (``ended = 0``) come first, then the
    range columns (``createdAt > ...``).
    """
    return runner.suggest_index(
        table, columns, condition, terms=_index_terms, statement=_index_statement
    )


def _index_terms(condition: str) -> Iterator[runner.IndexTerm]:
    """The columns a condition compares for equality (``=``, ``<=>``) or a range."""
    for match in _CONDITION.finditer(condition):
        column, op = match.group(1), match.group(2).lower()
        if op in ("=", "<=>"):
            yield column, "equal"
        elif op in ("<", ">", "<=", ">=", "between"):
            yield column, "range"


def _index_statement(
    table: str, columns: Sequence[str], keys: list[str], partial: list[str]
) -> str | None:
    """ALTER TABLE ... ADD INDEX, online (INPLACE, no lock)."""
    if not keys:
        return None
    names = ", ".join(quote_name(k) for k in keys)
    return f"ALTER TABLE {quote_name(table)} ADD INDEX ({names}), ALGORITHM=INPLACE, LOCK=NONE"
