"""Operations: starter config, config check, status, prune, Prometheus textfile and heartbeat."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics_cli import __version__, irengine, store
from analytics_cli.config import Settings
from analytics_cli.db import connect, database_error, grant_hint
from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import floor_slot, format_duration, iso, utcnow

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.collect import CycleReport
    from analytics_cli.metrics import MetricFailure, Sample

DEFAULT_CONFIG_PATH = Path("analytics-cli.toml")
PRUNE_BATCH = 10_000
PING_TIMEOUT = 5.0
STATUS_WINDOW = timedelta(hours=24)

# ---------------------------------------------------------------------------- config init

EXAMPLE_METRIC = {
    "type": "registeredUsers",
    "description": "Accounts that are neither guests nor deactivated",
    "sql": (
        "SELECT count(*) AS count\n"
        'FROM "user"\n'
        'WHERE "isGuest" = false AND "isDeactivated" IS NOT TRUE\n'
    ),
}

_STARTER_HEADER = """\
# analytics-cli configuration.
# Check it with:  analytics-cli -c {path} config check
# Lookup order when -c is not given: $ANALYTICS_CLI_CONFIG, ./analytics-cli.toml,
# ~/.config/analytics-cli/config.toml, /etc/analytics-cli/config.toml.
#
# Keep passwords out of this file: use $ANALYTICS_DSN, $ANALYTICS_SOURCE_DSN /
# $ANALYTICS_STORE_DSN, or libpq's PGPASSFILE / service files.

[source]
# The platform database the metrics are counted in (read only).
# Without any connection string the embedded PostgreSQL is used.
# dsn = "postgresql://analytics@db.example.com/platform"

"""

_STARTER_STORE = """
# The database and table the samples are written to. Defaults to the source database.
# dsn = "postgresql://analytics@db.example.com/metrics"
"""

_STARTER_COLLECT = """
# interval: the slot length; schedule 'collect' at the same period (cron */30).
# metrics: the built-in metrics to run; remove the key to run every built-in that
# is enabled by default, including ones added by later versions. Custom [[metric]]
# entries run unless they say enabled = false.
# ping_url: a heartbeat URL called after each run (URL, or URL/fail on error).
"""

_STARTER_METRIC = """
# Custom metrics: one row per cycle each. The query must return exactly one row
# with a numeric column named count. Parameters: %(slot)s (start of the slot,
# timestamptz) and %(interval)s (the interval). Quote camelCase identifiers.
"""


def readable_toml(text: str) -> str:
    """Drop tomli-w's needless ``\\"`` escapes (SQL identifiers) when the document stays equal."""
    import tomllib

    plain = text.replace('\\"', '"')
    try:
        same = tomllib.loads(plain) == tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        same = False
    return plain if same else text


def starter_config(path: Path) -> str:
    """The text of a starter configuration: defaults, every built-in listed, one custom metric."""
    from analytics_cli.config import (
        DEFAULT_CONNECT_TIMEOUT,
        DEFAULT_INTERVAL,
        DEFAULT_RETRIES,
        DEFAULT_STATEMENT_TIMEOUT,
        DEFAULT_TABLE,
        dump,
    )
    from analytics_cli.metrics import builtin_metrics

    # tomli-w writes no comments, so each section is dumped on its own and annotated.
    store_doc = {"store": {"table": DEFAULT_TABLE}}
    collect_doc = {
        "collect": {
            "interval": DEFAULT_INTERVAL,
            "statement_timeout": DEFAULT_STATEMENT_TIMEOUT,
            "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
            "retries": DEFAULT_RETRIES,
            # The default set: built-ins marked enabled = false stay out until added here.
            "metrics": [m.type for m in builtin_metrics() if m.enabled],
        }
    }
    metric_doc = {"metric": [EXAMPLE_METRIC]}
    return (
        _STARTER_HEADER.format(path=path)
        + dump(store_doc).replace("[store]\n", "[store]" + _STARTER_STORE, 1)
        + "\n"
        + dump(collect_doc).replace("[collect]\n", "[collect]" + _STARTER_COLLECT, 1)
        + _STARTER_METRIC
        + readable_toml(dump(metric_doc))
    )


def write_starter(path: Path, *, force: bool) -> None:
    """Write the starter configuration (mode 0600); refuse to overwrite unless ``force``."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(f"directory {path.parent} does not exist")
    _atomic_write(path, starter_config(path), mode=0o600)


# ---------------------------------------------------------------------------- config check


@dataclass
class CheckReport:
    """What ``config check`` found: the store table's state and every metric's value."""

    slot: datetime
    collected_at: datetime
    table_exists: bool
    outcomes: list[Sample | MetricFailure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every metric ran, 1 when some failed (as for collect)."""
        from analytics_cli.metrics import MetricFailure

        return 1 if any(isinstance(o, MetricFailure) for o in self.outcomes) else 0


def check(settings: Settings) -> CheckReport:
    """Connect to both databases and run every enabled metric read-only; write nothing."""
    import psycopg

    from analytics_cli.collect import flatten, plan, read_all
    from analytics_cli.metrics import enabled_metrics

    specs = enabled_metrics(settings)
    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn:
            conn.read_only = True
            exists = irengine.require_table(conn, settings)
            if irengine.layout_of(conn, settings) == irengine.IR_ENGINE:
                irengine.refuse_dimensional(settings, specs)
            conn.rollback()
    except psycopg.Error as exc:
        raise database_error(exc, settings.store_dsn, doing="store database error") from None
    slot = floor_slot(utcnow(), settings.interval)
    # Every source in its own snapshot, then the HTTP metrics (as one collect cycle reads).
    batches = read_all(settings, plan(settings, specs, None), slot)
    collected_at = min((b.collected_at for b in batches), default=utcnow())
    return CheckReport(slot, collected_at, exists, flatten(batches))


# ---------------------------------------------------------------------------- status


@dataclass(frozen=True)
class MetricStatus:
    """One metric type in the store: its latest slot and the slots missing in the window."""

    type: str
    enabled: bool
    latest: datetime | None
    expected: int
    missing: tuple[datetime, ...]


@dataclass
class StatusReport:
    """Freshness of the store: per metric, and the newest row overall."""

    table: str
    now: datetime
    interval: timedelta
    max_age: timedelta
    window_start: datetime
    window_end: datetime
    table_exists: bool
    metrics: list[MetricStatus] = field(default_factory=list)

    @property
    def newest(self) -> datetime | None:
        """The newest slot stored for any metric."""
        slots = [m.latest for m in self.metrics if m.latest is not None]
        return max(slots) if slots else None

    @property
    def stale(self) -> bool:
        """True when nothing is stored or the newest row is older than ``max_age``."""
        newest = self.newest
        return newest is None or self.now - newest > self.max_age

    @property
    def exit_code(self) -> int:
        """1 when stale (drives alerts and probes), else 0."""
        return 1 if self.stale else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the report."""
        newest = self.newest
        return {
            "table": self.table,
            "now": iso(self.now),
            "interval_seconds": int(self.interval.total_seconds()),
            "max_age_seconds": int(self.max_age.total_seconds()),
            "window": {"start": iso(self.window_start), "end": iso(self.window_end)},
            "table_exists": self.table_exists,
            "newest": iso(newest) if newest else None,
            "newest_age_seconds": _age_seconds(self.now, newest),
            "stale": self.stale,
            "exit_code": self.exit_code,
            "metrics": [
                {
                    "type": m.type,
                    "enabled": m.enabled,
                    "latest": iso(m.latest) if m.latest else None,
                    "age_seconds": _age_seconds(self.now, m.latest),
                    "expected_slots": m.expected,
                    "missing_slots": len(m.missing),
                    "missing": [iso(s) for s in m.missing],
                }
                for m in self.metrics
            ],
        }


def _age_seconds(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else int((now - then).total_seconds())


def format_age(now: datetime, then: datetime | None) -> str:
    """How long ago, in whole seconds and the largest units (``1h30m``)."""
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    if seconds <= 0:
        return "0s"
    return format_duration(timedelta(seconds=seconds))


def status(
    settings: Settings, *, max_age: timedelta | None = None, now: datetime | None = None
) -> StatusReport:
    """Read the latest slot of each metric and the missing slots of the last 24 hours."""
    import psycopg

    from analytics_cli.metrics import enabled_metrics

    now = now or utcnow()
    enabled = [m.type for m in enabled_metrics(settings)]
    # The current slot may still be collecting: the window is the 24 h of slots before it.
    window_end = floor_slot(now, settings.interval)
    window_start = window_end - STATUS_WINDOW
    report = StatusReport(
        table=settings.table,
        now=now,
        interval=settings.interval,
        max_age=max_age or settings.interval * 2,
        window_start=window_start,
        window_end=window_end,
        table_exists=False,
    )
    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn:
            conn.read_only = True
            report.table_exists = irengine.require_table(conn, settings)
            stored = store.known_types(conn, settings.table) if report.table_exists else []
            for name in [*enabled, *(t for t in stored if t not in enabled)]:
                if not report.table_exists:
                    report.metrics.append(MetricStatus(name, True, None, 0, ()))
                    continue
                report.metrics.append(
                    _metric_status(conn, settings, name, name in enabled, window_start, window_end)
                )
            conn.rollback()
    except psycopg.Error as exc:
        raise database_error(exc, settings.store_dsn, doing="store database error") from None
    return report


def _metric_status(
    conn: psycopg.Connection[Any],
    settings: Settings,
    name: str,
    enabled: bool,
    window_start: datetime,
    window_end: datetime,
) -> MetricStatus:
    from psycopg import sql

    from analytics_cli.timeutil import EPOCH, slots

    table = store.identifier(settings.table)
    ir_engine = irengine.layout_of(conn, settings) == irengine.IR_ENGINE
    column = irengine.time_column(ir_engine)
    slot_of: sql.Composable = column
    if ir_engine:
        # The platform's old collector wrote "createdAt" at arbitrary times: a row anywhere
        # in a slot fills that slot (floored as collect floors the current time).
        slot_of = sql.SQL("date_bin({}, {}, {})").format(
            sql.Literal(settings.interval), column, sql.Literal(EPOCH)
        )
    # max/min on the (type, "timestamp") index: two probes, however long the history.
    row = conn.execute(
        sql.SQL("SELECT max({}), min({}) FROM {} WHERE type = %s").format(column, column, table),
        (name,),
    ).fetchone()
    newest, first = (row[0], row[1]) if row else (None, None)
    latest = floor_slot(newest, settings.interval) if ir_engine and newest else newest
    if first is None or not enabled:
        # A metric no longer enabled is expected to have gaps: none are reported.
        return MetricStatus(name, enabled, latest, 0, ())
    # Slots before the metric's first row are not missing: it did not exist yet.
    start = max(window_start, floor_slot(first, settings.interval))
    expected = slots(start, window_end, settings.interval)
    present = {
        r[0]
        for r in conn.execute(
            sql.SQL("SELECT DISTINCT {} FROM {} WHERE type = %s AND {} >= %s AND {} < %s").format(
                slot_of, table, column, column
            ),
            (name, start, window_end),
        )
    }
    missing = tuple(s for s in expected if s not in present)
    return MetricStatus(name, enabled, latest, len(expected), missing)


def render_status(report: StatusReport) -> str:
    """The status report as aligned plain text."""
    header = ("metric", "latest slot", "age", "missing (24h)", "enabled")
    rows = [
        (
            m.type,
            iso(m.latest) if m.latest else "-",
            format_age(report.now, m.latest),
            f"{len(m.missing)}/{m.expected}",
            "yes" if m.enabled else "no",
        )
        for m in report.metrics
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"table {report.table}, interval {format_duration(report.interval)}, now {iso(report.now)}",
        "",
    ]
    for r in [header, *rows]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
    newest = report.newest
    verdict = "STALE" if report.stale else "ok"
    if newest is None:
        lines.append(f"newest row: none (max age {format_duration(report.max_age)}): {verdict}")
    else:
        lines.append(
            f"newest row: {iso(newest)} ({format_age(report.now, newest)} ago, "
            f"max age {format_duration(report.max_age)}): {verdict}"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- prune


def prune_cutoff(older_than: timedelta, now: datetime | None = None) -> datetime:
    """Rows whose slot starts before this time are pruned."""
    return (now or utcnow()) - older_than


def count_older(settings: Settings, cutoff: datetime) -> int:
    """How many rows a prune with this cutoff would delete (0 when the table is absent)."""
    import psycopg
    from psycopg import sql

    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store", retries=settings.retries)
    try:
        with conn:
            conn.read_only = True
            if not irengine.require_table(conn, settings):
                return 0
            ir_engine = irengine.layout_of(conn, settings) == irengine.IR_ENGINE
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
                    store.identifier(settings.table), irengine.time_column(ir_engine)
                ),
                (cutoff,),
            ).fetchone()
            conn.rollback()
            return int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise database_error(exc, settings.store_dsn, doing="store database error") from None


def prune(
    settings: Settings,
    cutoff: datetime,
    *,
    batch_size: int = PRUNE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Delete rows older than ``cutoff`` in short transactions; returns (rows, batches)."""
    import psycopg
    from psycopg import sql

    assert settings.store_dsn is not None
    conn = connect(
        settings.store_dsn, settings, purpose="store", autocommit=True, retries=settings.retries
    )
    deleted = batches = 0
    try:
        with conn:
            if not irengine.require_table(conn, settings):
                return 0, 0
            ir_engine = irengine.layout_of(conn, settings) == irengine.IR_ENGINE
            # Oldest first by the identity key; the iR Engine table's uuid ids have no order.
            order = sql.SQL("" if ir_engine else "ORDER BY id")
            # Each batch is its own transaction: row locks on at most batch_size rows, held
            # briefly, so collect keeps inserting and readers never wait behind a long delete.
            query = sql.SQL(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE {c} < %s "
                "{o} LIMIT %s FOR UPDATE SKIP LOCKED)"
            ).format(t=store.identifier(settings.table), c=irengine.time_column(ir_engine), o=order)
            timeout_ms = int(settings.statement_timeout.total_seconds() * 1000)
            while True:
                # SET LOCAL: a session SET would stay on a pooler's server connection.
                with conn.transaction():
                    conn.execute(f"SET LOCAL statement_timeout = {timeout_ms:d}")
                    cur = conn.execute(query, (cutoff, batch_size))
                batches += 1
                deleted += max(cur.rowcount, 0)
                if progress is not None:
                    progress(deleted)
                if cur.rowcount < batch_size:
                    break
    except psycopg.Error as exc:
        raise database_error(
            exc,
            settings.store_dsn,
            doing=f"prune stopped after {deleted} rows",
            # UPDATE too: each batch locks its rows FOR UPDATE SKIP LOCKED.
            refused=grant_hint("prune", "DELETE, UPDATE", settings.table, settings.store_dsn),
        ) from None
    return deleted, batches


# ---------------------------------------------------------------------------- Prometheus


def check_textfile_path(path: Path) -> None:
    """Refuse a textfile path whose directory does not exist, before the cycle runs."""
    if path.is_dir():
        raise ConfigError(f"--textfile {path} is a directory")
    if not path.parent.is_dir():
        raise ConfigError(f"--textfile: directory {path.parent} does not exist")


def slot_values(settings: Settings, slot: datetime) -> dict[str, Decimal]:
    """The plain (no dimensions) values stored for one slot, by metric type."""
    import psycopg
    from psycopg import sql

    assert settings.store_dsn is not None
    conn = connect(settings.store_dsn, settings, purpose="store")
    try:
        with conn:
            conn.read_only = True
            if not irengine.require_table(conn, settings):
                return {}
            rows = conn.execute(
                sql.SQL(
                    "SELECT type, count FROM {} WHERE \"timestamp\" = %s AND metadata = '{{}}'::jsonb"
                ).format(irengine.readable(conn, settings)),
                (slot,),
            ).fetchall()
            conn.rollback()
    except psycopg.Error as exc:
        raise database_error(exc, settings.store_dsn, doing="store database error") from None
    return {str(r[0]): Decimal(r[1]) for r in rows}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Decimal | float | int) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value != 0 else "0"
    return repr(float(value)) if isinstance(value, float) else str(value)


_LAST_SUCCESS = re.compile(r"^analytics_cli_last_success_timestamp_seconds\s+(\S+)\s*$", re.M)


def previous_last_success(path: Path) -> float | None:
    """The last-success timestamp of an earlier textfile, kept across failed runs."""
    try:
        match = _LAST_SUCCESS.search(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def textfile_text(
    *,
    values: dict[str, Decimal],
    failed: list[str],
    exit_code: int,
    finished: datetime,
    duration: float | None,
    last_success: float | None,
) -> str:
    """A cycle in the Prometheus text exposition format (for node_exporter's textfile collector)."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[str, str]]) -> None:
        if not samples:
            return
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    gauge(
        "analytics_metric",
        "Value of each analytics-cli metric for the last collected slot.",
        [(f'{{type="{_label(t)}"}}', _number(v)) for t, v in sorted(values.items())],
    )
    status = [(t, "1") for t in values if t not in failed] + [(t, "0") for t in failed]
    gauge(
        "analytics_cli_metric_up",
        "1 when the metric ran in the last cycle, 0 when its query failed.",
        [(f'{{type="{_label(t)}"}}', v) for t, v in sorted(status)],
    )
    gauge(
        "analytics_cli_last_run_timestamp_seconds",
        "Unix time the last collect cycle finished, whatever its outcome.",
        [("", _number(round(finished.timestamp(), 3)))],
    )
    gauge(
        "analytics_cli_last_run_exit_code",
        "Exit code of the last collect cycle (0 ok, 1 partial, 2 config, 3 database).",
        [("", str(exit_code))],
    )
    if last_success is not None:
        gauge(
            "analytics_cli_last_success_timestamp_seconds",
            "Unix time the last fully successful collect cycle finished.",
            [("", _number(last_success))],
        )
    if duration is not None:
        gauge(
            "analytics_cli_collect_duration_seconds",
            "Duration of the last collect cycle in seconds.",
            [("", _number(round(duration, 6)))],
        )
    return "\n".join(lines) + "\n"


def write_cycle_textfile(
    path: Path, settings: Settings | None, report: CycleReport | None, exit_code: int
) -> None:
    """Write the textfile for a finished cycle (or a failed run without a report), atomically."""
    finished = utcnow()
    values: dict[str, Decimal] = {}
    failed: list[str] = []
    duration: float | None = None
    if report is not None:
        duration = report.duration
        failed = [r.type for r in report.failed]
        # One gauge per type: rows tagged with a [[source]] or a dimension have no place here.
        plain = [r for r in report.results if r.source is None and r.series is None]
        values = {r.type: r.count for r in plain if r.count is not None}
        unknown = [r.type for r in plain if r.count is None and r.status != "failed"]
        if unknown and settings is not None and not report.dry_run:
            # "Already collected" carries no value in the report: read what the slot holds.
            stored = slot_values(settings, report.slot)
            values.update({t: stored[t] for t in unknown if t in stored})
    last_success = finished.timestamp() if exit_code == 0 else previous_last_success(path)
    text = textfile_text(
        values=values,
        failed=failed,
        exit_code=exit_code,
        finished=finished,
        duration=duration,
        last_success=round(last_success, 3) if last_success is not None else None,
    )
    _atomic_write(path, text, mode=0o644)


def _atomic_write(path: Path, text: str, *, mode: int) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    # The temporary name does not end in .prom, so node_exporter never reads a partial file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------- heartbeat


def check_ping_url(url: str) -> str:
    """Accept only http(s) URLs with a host for the heartbeat."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "ping URL must be an http:// or https:// URL",
            hint="for example https://hc-ping.com/<uuid>",
        )
    return url


def ping_target(url: str, exit_code: int) -> str:
    """URL after a successful run, URL/fail after any other exit (healthchecks.io style)."""
    if exit_code == 0:
        return url
    base, _, query = url.partition("?")
    return base.rstrip("/") + "/fail" + (f"?{query}" if query else "")


def ping(url: str, exit_code: int, *, timeout: float = PING_TIMEOUT) -> str | None:
    """Call the heartbeat URL; returns None on success or a one-line reason (never raises)."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    target = ping_target(url, exit_code)
    host = urlsplit(target).hostname or "?"
    request = urllib.request.Request(
        target, headers={"User-Agent": f"analytics-cli/{__version__}"}, method="GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        # The path (a check's UUID) is a secret of sorts: name only the host.
        return f"heartbeat ping to {host} failed: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"heartbeat ping to {host} failed: {reason}"
    return None
