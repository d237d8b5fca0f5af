"""The configuration's shape: frozen dataclasses, defaults and the allowed keys (a leaf).

Imports nothing of the app, so every module may name Settings or MetricSpec without loading
the TOML parser or the validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

DEFAULT_TABLE = "analytics"
STORE_LAYOUTS = ("auto", "native", "ir-engine")
DEFAULT_INTERVAL = "30m"
DEFAULT_STATEMENT_TIMEOUT = "30s"
DEFAULT_CONNECT_TIMEOUT = "10s"
DEFAULT_RETRIES = 1
DEFAULT_SOURCE_CONCURRENCY = 4
DEFAULT_CATCH_UP_HOURS = 6

METRIC_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,62}")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")

# Environment variables that make libpq connect somewhere without a connection string.
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGSERVICE", "PGDATABASE", "PGPORT")


DEFAULT_MAX_SERIES = 1000
DEFAULT_HTTP_TIMEOUT = "10s"
SOURCE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclass(frozen=True)
class HttpSpec:
    """Where an HTTP metric fetches its JSON and the path expression that reduces it."""

    url: str
    path: str
    # None: the in-cluster service-account file when running in a pod, else nothing.
    token_file: str | None = None
    ca_file: str | None = None
    timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class SourceSpec:
    """One platform database from a ``[[source]]`` table; ``dsn`` is resolved from the env."""

    name: str
    dsn: str | None = None
    dsn_env: str | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its type name, the SQL that counts it and a one-line description.

    A metric with ``dimensions`` returns one row per combination of those columns (at most
    ``max_series``); a metric with ``http`` reads a JSON document instead of a database.
    """

    type: str
    sql: str
    description: str = ""
    builtin: bool = False
    enabled: bool = True
    dimensions: tuple[str, ...] = ()
    max_series: int = DEFAULT_MAX_SERIES
    sources: tuple[str, ...] | None = None
    http: HttpSpec | None = None
    # The [[query]] that fills this metric (with others): its column named after the type.
    query: str | None = None
    # How often it is stored (a multiple of [collect] interval); None: every interval.
    every: timedelta | None = None
    # True when its value at a past slot depends only on timestamped rows, so a missed slot
    # can be computed later, exactly (backfill, catch-up).
    backfill: bool = False
    # Built-ins: the text for each engine, as (engine, sql), the default engine's first (also
    # in ``sql``). A custom metric has one text, in the dialect of the sources it runs on.
    dialects: tuple[tuple[str, str], ...] = ()

    def sql_for(self, engine: str) -> str | None:
        """The text that runs on ``engine``; None when a built-in has none for it."""
        if not self.builtin:
            return self.sql
        return dict(self.dialects).get(engine)

    @property
    def dimensional(self) -> bool:
        """True when the metric stores several rows per slot (one per dimension value)."""
        return bool(self.dimensions)


@dataclass(frozen=True)
class Alert:
    """Hard limits on one metric's latest value (``status --anomalies``): below / above fire."""

    type: str
    below: Decimal | None = None
    above: Decimal | None = None


DEFAULT_NOTIFY_TIMEOUT = "5s"
DEFAULT_NOTIFY_RETRIES = 2
WEBHOOK_FORMATS = ("json", "slack")
# Labels the tool sets on every alert itself; [notify] labels may not replace them.
NOTIFY_OWN_LABELS = ("alertname", "type", "kind", "severity", "source", "command")
LABEL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class Notify:
    """Where findings are delivered (``[notify]``): Alertmanager's API v2 and/or a webhook."""

    alertmanager: str | None = None
    webhook: str | None = None
    # "json": the documented body; "slack": {"text": ...} for an incoming webhook.
    webhook_format: str = "json"
    # Credentials for Alertmanager only (a webhook URL carries its own secret), read from
    # files at delivery time so that they never sit in the config or the process list.
    username: str | None = None
    password_file: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    timeout: timedelta = timedelta(seconds=5)
    retries: int = DEFAULT_NOTIFY_RETRIES
    # A firing alert's endsAt is this far ahead; None: three [collect] intervals.
    resolve_after: timedelta | None = None
    # Fixed labels added to every alert (env = "prod"), for routing.
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def enabled(self) -> bool:
        """True when there is somewhere to deliver to."""
        return bool(self.alertmanager or self.webhook)


@dataclass(frozen=True)
class Retention:
    """[retention]: how long each grain is kept; None: forever (or not said: prune then needs
    --older-than)."""

    raw: timedelta | None = None
    hourly: timedelta | None = None
    daily: timedelta | None = None

    @property
    def configured(self) -> bool:
        """Whether any grain has a limit."""
        return any(v is not None for v in (self.raw, self.hourly, self.daily))


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one invocation."""

    path: Path | None = None
    source_dsn: str | None = None
    source_dsn_origin: str = "default"
    store_dsn: str | None = None
    store_dsn_origin: str = "default"
    table: str = DEFAULT_TABLE
    # "auto", "native" or "ir-engine" (the platform's own table; see engines/irengine.py).
    layout: str = "auto"
    interval: timedelta = timedelta(minutes=30)
    statement_timeout: timedelta = timedelta(seconds=30)
    connect_timeout: timedelta = timedelta(seconds=10)
    retries: int = DEFAULT_RETRIES
    parallel: int = 1
    # Missing slots of backfillable metrics in this window before now are filled by every
    # cycle (0: off).
    catch_up: timedelta = timedelta(hours=DEFAULT_CATCH_UP_HOURS)
    # How many sources (databases, and the HTTP metrics as one) are read at once.
    source_concurrency: int = DEFAULT_SOURCE_CONCURRENCY
    metrics: tuple[str, ...] | None = None
    custom: tuple[MetricSpec, ...] = ()
    ping_url: str | None = None
    warnings: tuple[str, ...] = field(default=())
    # [[source]] tables; empty means the single [source] dsn (rows stay untagged).
    sources: tuple[SourceSpec, ...] = ()
    # Where cycles wait when the store cannot be written ([store] spool); None: the default
    # folder under $XDG_STATE_HOME. spool_enabled False: --no-spool or [store] spool = false.
    spool_dir: str | None = None
    spool_enabled: bool = True
    # Hard limits per metric type: [[metric]] alert = {...} and the [alert] table.
    alerts: tuple[Alert, ...] = ()
    # [notify]: delivery of findings to Alertmanager or a webhook.
    notify: Notify = field(default_factory=Notify)
    # [retention]: how long rows, hourly and daily rollups are kept (prune without --older-than).
    retention: Retention = field(default_factory=lambda: Retention())

    def alert_for(self, name: str) -> Alert | None:
        """The hard limits of metric type ``name``, if any are configured."""
        return next((a for a in self.alerts if a.type == name), None)

    @property
    def table_parts(self) -> tuple[str, ...]:
        """The store table as (schema, name) or (name,), already validated."""
        return tuple(self.table.split("."))

    @property
    def embedded(self) -> bool:
        """True when neither side has a connection string: the embedded server is used."""
        return self.source_dsn is None and self.store_dsn is None


SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "source": {"dsn": str},
    "store": {"dsn": str, "table": str, "layout": str, "spool": (str, bool)},
    "collect": {
        "interval": str,
        "statement_timeout": str,
        "connect_timeout": str,
        "retries": int,
        "metrics": list,
        "ping_url": str,
        "parallel": int,
        "source_concurrency": int,
        "catch_up": str,
    },
    "retention": {"raw": str, "hourly": str, "daily": str},
    "notify": {
        "alertmanager": str,
        "webhook": str,
        "webhook_format": str,
        "username": str,
        "password_file": str,
        "token_file": str,
        "ca_file": str,
        "timeout": str,
        "retries": int,
        "resolve_after": str,
        "labels": dict,
    },
}
METRIC_KEYS: dict[str, type] = {
    "type": str,
    "sql": str,
    "description": str,
    "enabled": bool,
    "dimensions": list,
    "max_series": int,
    "sources": list,
    "http": dict,
    "query": str,
    "every": str,
    "backfill": bool,
    "alert": dict,
}
ALERT_KEYS: dict[str, type | tuple[type, ...]] = {"below": (int, float), "above": (int, float)}
# A [[query]] feeds several metrics: one numeric column per metric type, named after it.
QUERY_KEYS: dict[str, type] = {
    "name": str,
    "sql": str,
    "dimensions": list,
    "max_series": int,
    "sources": list,
}
# What a metric filled by a query takes from it (and so may not set itself).
FROM_QUERY = ("sql", "dimensions", "max_series", "sources")
HTTP_KEYS: dict[str, type] = {
    "url": str,
    "path": str,
    "token_file": str,
    "ca_file": str,
    "timeout": str,
}
SOURCE_KEYS: dict[str, type] = {"name": str, "dsn": str, "dsn_env": str}
