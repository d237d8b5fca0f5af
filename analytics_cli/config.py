"""Strict, typed configuration: TOML file + environment + flags, resolved into frozen Settings."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from analytics_cli.errors import ConfigError
from analytics_cli.retention import Retention
from analytics_cli.retention import parse as retention_settings
from analytics_cli.timeutil import format_duration, parse_duration

DEFAULT_TABLE = "analytics"
STORE_LAYOUTS = ("auto", "native", "ir-engine")
DEFAULT_INTERVAL = "30m"
DEFAULT_STATEMENT_TIMEOUT = "30s"
DEFAULT_CONNECT_TIMEOUT = "10s"
DEFAULT_RETRIES = 1
DEFAULT_SOURCE_CONCURRENCY = 4
DEFAULT_CATCH_UP_HOURS = 6

METRIC_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,62}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")

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
    # Built-ins: the text for each other engine, as (engine, sql); ``sql`` is PostgreSQL's.
    # A custom metric has one text, written in the dialect of the sources it runs on.
    dialects: tuple[tuple[str, str], ...] = ()

    def sql_for(self, engine: str) -> str | None:
        """The text that runs on ``engine``; None when a built-in has none for it."""
        if not self.builtin or engine == "postgresql":
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
_LABEL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


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
class Settings:
    """The effective configuration of one invocation."""

    path: Path | None = None
    source_dsn: str | None = None
    source_dsn_origin: str = "default"
    store_dsn: str | None = None
    store_dsn_origin: str = "default"
    table: str = DEFAULT_TABLE
    # "auto", "native" or "ir-engine" (the platform's own table; see store/irengine.py).
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
    retention: Retention = field(default_factory=Retention)

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


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
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
_METRIC_KEYS: dict[str, type] = {
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
_ALERT_KEYS: dict[str, type | tuple[type, ...]] = {"below": (int, float), "above": (int, float)}
# A [[query]] feeds several metrics: one numeric column per metric type, named after it.
_QUERY_KEYS: dict[str, type] = {
    "name": str,
    "sql": str,
    "dimensions": list,
    "max_series": int,
    "sources": list,
}
# What a metric filled by a query takes from it (and so may not set itself).
_FROM_QUERY = ("sql", "dimensions", "max_series", "sources")
_HTTP_KEYS: dict[str, type] = {
    "url": str,
    "path": str,
    "token_file": str,
    "ca_file": str,
    "timeout": str,
}
_SOURCE_KEYS: dict[str, type] = {"name": str, "dsn": str, "dsn_env": str}


def candidate_paths(env: Mapping[str, str]) -> list[tuple[Path, str]]:
    """Config files looked up in order when ``--config`` is not given (path, origin)."""
    paths: list[tuple[Path, str]] = []
    if env.get("ANALYTICS_CLI_CONFIG"):
        paths.append((Path(env["ANALYTICS_CLI_CONFIG"]), "$ANALYTICS_CLI_CONFIG"))
    paths.append((Path("analytics-cli.toml"), "current directory"))
    home = env.get("HOME")
    xdg = env.get("XDG_CONFIG_HOME") or (str(Path(home) / ".config") if home else None)
    if xdg:
        paths.append((Path(xdg) / "analytics-cli" / "config.toml", "user config"))
    paths.append((Path("/etc/analytics-cli/config.toml"), "system config"))
    return paths


def _is_file(path: Path) -> bool:
    """Like Path.is_file, but a folder the user may not enter is an error, not a traceback."""
    try:
        return path.is_file()
    except OSError as exc:
        raise ConfigError(f"cannot look for config file {path}: {exc.strerror}") from None


def find_config(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: ``--config``, then the lookup list; None when there is none."""
    if explicit is not None:
        if not _is_file(explicit):
            raise ConfigError(f"config file not found: {explicit}")
        return explicit
    for path, origin in candidate_paths(env):
        if origin == "$ANALYTICS_CLI_CONFIG" and not _is_file(path):
            raise ConfigError(f"config file not found: {path} (from $ANALYTICS_CLI_CONFIG)")
        if _is_file(path):
            return path
    return None


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", list: "a list", bool: "true or false"}
    names[dict] = "an inline table"
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


def _check_type(path: Path, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        # true/false is a bool only where a bool is asked for (TOML's bool is not an int).
        wrong = bool not in allowed
    else:
        wrong = not isinstance(value, tuple(t for t in allowed if t is not bool))
    if wrong:
        raise ConfigError(
            f"{path}: {key} must be {_type_name(expected)}, got {type(value).__name__}",
            hint=_duration_hint(key, value),
        )


# The keys whose value is a duration: a string with a unit ("30m"), never a bare number.
_DURATION_KEYS = {
    "interval",
    "statement_timeout",
    "connect_timeout",
    "catch_up",
    "every",
    "timeout",
}


def _duration_hint(key: str, value: Any) -> str | None:
    """For a bare number where a duration goes: the same number written with a unit."""
    name = key.rpartition(".")[2]
    if name not in _DURATION_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    unit = "m" if name in ("interval", "every", "catch_up") else "s"
    number = int(value) if float(value).is_integer() else value
    return (
        f'a duration is a string with its unit: {name} = "{number}{unit}" (units s, m, h, d, w, y)'
    )


def validate_table(name: str, *, where: str = "[store] table") -> str:
    """Accept ``table`` or ``schema.table`` made of plain identifiers; anything else is refused."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENT_RE.fullmatch(p) for p in parts):
        raise ConfigError(
            f"{where} {name!r} is not a valid table name",
            hint="use letters, digits and underscores, optionally schema-qualified: metrics.analytics",
        )
    return name


def validate_metric_type(name: str, *, where: str) -> str:
    """A metric type is a short name of letters, digits and ``_.:-``, starting with a letter."""
    if not METRIC_TYPE_RE.fullmatch(name):
        raise ConfigError(
            f"{where}: invalid metric type {name!r}",
            hint="start with a letter; use letters, digits, '_', '.', ':' or '-' (max 63)",
        )
    return name


def _duration(path: Path, key: str, value: str) -> timedelta:
    try:
        return parse_duration(value, what=key)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", hint=exc.hint) from None


def parse_file(path: Path) -> dict[str, Any]:
    """Read and validate a TOML config file; errors name the file, the key or the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        if _mixed_sources(data.decode("utf-8", "replace")):
            raise ConfigError(
                f"{path}: both [source] and [[source]] are declared; use one of them",
                hint="one platform database: [source] dsn = ...; several: a [[source]] "
                "table each with name and dsn (or dsn_env)",
            ) from None
        message = str(exc)
        if "line" not in message:
            # tomllib says "at end of document" without a number; name the last line.
            lines = data.decode("utf-8", "replace").count("\n") + 1
            message = f"{message} (line {lines})"
        raise ConfigError(f"{path}: invalid TOML: {message}") from None
    except (ValueError, RecursionError) as exc:
        # tomllib lets these through for absurd input: a 5000-digit number, deep nesting.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise ConfigError(f"{path}: invalid TOML: {reason}") from None
    for section, value in doc.items():
        if section == "metric":
            for where, item in _array_of_tables(path, section, value, _METRIC_KEYS):
                if "alert" in item:
                    _check_keys(path, f"{where}.alert", item["alert"], _ALERT_KEYS)
                if "http" in item:
                    _check_keys(path, f"{where}.http", item["http"], _HTTP_KEYS)
                    for key in ("url", "path"):
                        if key not in item["http"]:
                            raise ConfigError(f"{path}: {where}.http is missing {key!r}")
                    if "sql" in item:
                        raise ConfigError(f"{path}: {where} has both sql and http; choose one")
                if "query" in item:
                    for key in (*_FROM_QUERY, "http"):
                        if key in item:
                            raise ConfigError(
                                f"{path}: {where} is filled by query {item['query']!r}; "
                                f"its {key} belongs to that [[query]]",
                                hint="a metric has one of sql, http or query",
                            )
                for key in ("type", "sql"):
                    if key not in item and not (
                        key == "sql" and ("http" in item or "query" in item)
                    ):
                        raise ConfigError(f"{path}: {where} is missing {key!r}")
            continue
        if section == "alert":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: alert must be a table ([alert])")
            for name, limits in value.items():
                if not isinstance(limits, dict):
                    raise ConfigError(
                        f"{path}: alert.{name} must be a table",
                        hint=f"for example: {name} = {{ below = 1 }}",
                    )
                _check_keys(path, f"alert.{name}", limits, _ALERT_KEYS)
            continue
        if section == "query":
            for where, item in _array_of_tables(path, section, value, _QUERY_KEYS):
                for key in ("name", "sql"):
                    if key not in item:
                        raise ConfigError(f"{path}: {where} is missing {key!r}")
            continue
        if section == "source" and isinstance(value, list):
            for index, item in enumerate(value):
                where = f"source[{index}]"
                if not isinstance(item, dict):
                    raise ConfigError(f"{path}: {where} must be a table")
                _check_keys(path, where, item, _SOURCE_KEYS)
                if "name" not in item:
                    raise ConfigError(f"{path}: {where} is missing 'name'")
                if ("dsn" in item) == ("dsn_env" in item):
                    raise ConfigError(f"{path}: {where} needs exactly one of dsn or dsn_env")
            continue
        if section not in _SCHEMA:
            raise ConfigError(
                f"{path}: unknown section or key {section!r}",
                hint=f"allowed: {', '.join([*_SCHEMA, 'metric', 'query', 'alert'])}",
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}])")
        for key, val in value.items():
            allowed = _SCHEMA[section]
            if key not in allowed:
                raise ConfigError(
                    f"{path}: unknown key {section}.{key}",
                    hint=f"allowed in [{section}]: {', '.join(allowed)}",
                )
            _check_type(path, f"{section}.{key}", val, allowed[key])
    return doc


def _array_of_tables(
    path: Path, section: str, value: Any, keys: Mapping[str, type]
) -> list[tuple[str, dict[str, Any]]]:
    """``[[section]]`` tables, each checked against its allowed keys, with their names."""
    if not isinstance(value, list):
        raise ConfigError(f"{path}: {section} must be an array of tables ([[{section}]])")
    out = []
    for index, item in enumerate(value):
        where = f"{section}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: {where} must be a table")
        _check_keys(path, where, item, keys)
        out.append((where, item))
    return out


def _check_keys(
    path: Path, where: str, item: Mapping[str, Any], keys: Mapping[str, type | tuple[type, ...]]
) -> None:
    for key, val in item.items():
        if key not in keys:
            raise ConfigError(
                f"{path}: unknown key {where}.{key}", hint=f"allowed: {', '.join(keys)}"
            )
        _check_type(path, f"{where}.{key}", val, keys[key])


def _mixed_sources(text: str) -> bool:
    """True when a file declares both a [source] table and [[source]] tables."""
    single = re.search(r"^\s*\[\s*source\s*\]", text, re.MULTILINE)
    several = re.search(r"^\s*\[\[\s*source\s*\]\]", text, re.MULTILINE)
    return bool(single and several)


def _has_password(dsn: str) -> bool:
    from analytics_cli.dsn import dsn_secrets

    return bool(dsn_secrets(dsn))


def settings_from_file(path: Path | None, doc: Mapping[str, Any]) -> Settings:
    """Turn a validated document into Settings (before environment and flags apply)."""
    where = path or Path("<defaults>")
    raw_source = doc.get("source", {})
    source: Mapping[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    sources = _sources(where, raw_source if isinstance(raw_source, list) else [])
    store = doc.get("store", {})
    collect = doc.get("collect", {})
    table = validate_table(store.get("table", DEFAULT_TABLE), where=f"{where}: store.table")
    layout = store.get("layout", "auto")
    if layout not in STORE_LAYOUTS:
        raise ConfigError(
            f"{where}: store.layout must be one of {', '.join(STORE_LAYOUTS)}, got {layout!r}"
        )
    metrics = collect.get("metrics")
    if metrics is not None:
        for index, name in enumerate(metrics):
            if not isinstance(name, str):
                raise ConfigError(f"{where}: collect.metrics[{index}] must be a string")
    retries = collect.get("retries", DEFAULT_RETRIES)
    if not 0 <= retries <= 10:
        raise ConfigError(f"{where}: collect.retries must be between 0 and 10")
    parallel = collect.get("parallel", 1)
    if not 1 <= parallel <= 16:
        raise ConfigError(f"{where}: collect.parallel must be between 1 and 16")
    source_concurrency = collect.get("source_concurrency", DEFAULT_SOURCE_CONCURRENCY)
    if not 1 <= source_concurrency <= 32:
        raise ConfigError(f"{where}: collect.source_concurrency must be between 1 and 32")
    raw_catch_up = collect.get("catch_up", f"{DEFAULT_CATCH_UP_HOURS}h")
    catch_up = (
        timedelta(0)
        if raw_catch_up.strip() == "0"
        else _duration(where, "collect.catch_up", raw_catch_up)
    )
    custom: list[MetricSpec] = []
    seen: set[str] = set()
    items = with_queries(doc.get("metric", []), doc.get("query", []), where=str(where))
    for index, item in enumerate(items):
        name = validate_metric_type(item["type"], where=f"{where}: metric[{index}].type")
        if name in seen:
            raise ConfigError(f"{where}: metric type {name!r} is defined twice")
        seen.add(name)
        spec = metric_spec(item, where=f"{where}: metric[{index}]", builtin=False)
        for wanted in spec.sources or ():
            if wanted not in {s.name for s in sources}:
                known = ", ".join(s.name for s in sources) or "none: add [[source]] tables"
                raise ConfigError(
                    f"{where}: metric[{index}].sources names unknown source {wanted!r}",
                    hint=f"sources: {known}",
                )
        custom.append(spec)
    warnings: list[str] = []
    dsns = [d for d in (source.get("dsn"), store.get("dsn"), *(s.dsn for s in sources)) if d]
    if path is not None and any(_has_password(d) for d in dsns):
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.append(
                f"{path} holds a password and is readable by other users; "
                f"run: chmod 600 {path} (or move the password to PGPASSFILE)"
            )
    alerts = _alerts(where, doc.get("alert", {}), items)
    ping_url = collect.get("ping_url")
    spool = store.get("spool", True)
    if isinstance(spool, str) and not spool.strip():
        raise ConfigError(f"{where}: store.spool is empty", hint="a folder, or spool = false")
    return Settings(
        notify=notify_settings(where, doc.get("notify", {})),
        retention=retention_settings(str(where), doc.get("retention", {})),
        path=path,
        source_dsn=source.get("dsn"),
        source_dsn_origin=f"{path}: [source] dsn" if source.get("dsn") else "default",
        store_dsn=store.get("dsn"),
        store_dsn_origin=f"{path}: [store] dsn" if store.get("dsn") else "default",
        table=table,
        layout=layout,
        interval=_duration(where, "collect.interval", collect.get("interval", DEFAULT_INTERVAL)),
        statement_timeout=_duration(
            where,
            "collect.statement_timeout",
            collect.get("statement_timeout", DEFAULT_STATEMENT_TIMEOUT),
        ),
        connect_timeout=_duration(
            where,
            "collect.connect_timeout",
            collect.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        ),
        retries=retries,
        parallel=parallel,
        source_concurrency=source_concurrency,
        catch_up=catch_up,
        metrics=tuple(metrics) if metrics is not None else None,
        custom=tuple(custom),
        ping_url=ping_url,
        warnings=tuple(warnings),
        sources=sources,
        spool_dir=spool if isinstance(spool, str) else None,
        spool_enabled=spool is not False,
        alerts=alerts,
    )


def check_notify_url(url: str, *, where: str) -> str:
    """Accept only an http(s) URL with a host (its path may hold a secret: never echoed)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where} must be an http:// or https:// URL with a host",
            hint="for example http://alertmanager:9093",
        )
    if parts.username is not None or parts.password is not None:
        # Named without the URL: what sits before the @ is a password.
        raise ConfigError(
            f"{where} must not carry a user or password",
            hint="put them in [notify] username and password_file (a file only you can read)",
        )
    return url.strip()


def notify_settings(where: Path, table: Mapping[str, Any]) -> Notify:
    """The ``[notify]`` table: URLs, credentials files, timeout, retries, extra labels."""
    am = table.get("alertmanager")
    hook = table.get("webhook")
    if am is not None:
        am = check_notify_url(am, where=f"{where}: notify.alertmanager")
    if hook is not None:
        hook = check_notify_url(hook, where=f"{where}: notify.webhook")
    fmt = table.get("webhook_format", "json")
    if fmt not in WEBHOOK_FORMATS:
        raise ConfigError(
            f"{where}: notify.webhook_format must be one of {', '.join(WEBHOOK_FORMATS)}, "
            f"got {fmt!r}"
        )
    if "password_file" in table and "username" not in table:
        raise ConfigError(f"{where}: notify.password_file needs notify.username")
    if "username" in table and "password_file" not in table:
        raise ConfigError(
            f"{where}: notify.username needs notify.password_file",
            hint="put the password in a file readable only by this user (chmod 600)",
        )
    if "token_file" in table and "username" in table:
        raise ConfigError(f"{where}: notify has both a token_file and a username; choose one")
    timeout = _duration(where, "notify.timeout", table.get("timeout", DEFAULT_NOTIFY_TIMEOUT))
    if not timedelta(0) < timeout <= timedelta(minutes=1):
        raise ConfigError(f"{where}: notify.timeout must be more than 0 and at most 1m")
    retries = table.get("retries", DEFAULT_NOTIFY_RETRIES)
    if not 0 <= retries <= 5:
        raise ConfigError(f"{where}: notify.retries must be between 0 and 5")
    resolve_after = None
    if "resolve_after" in table:
        resolve_after = _duration(where, "notify.resolve_after", table["resolve_after"])
        if resolve_after <= timedelta(0):
            raise ConfigError(f"{where}: notify.resolve_after must be more than 0")
    labels: list[tuple[str, str]] = []
    for name, value in table.get("labels", {}).items():
        if not _LABEL_RE.fullmatch(name) or name.startswith("__"):
            raise ConfigError(f"{where}: notify.labels: {name!r} is not a valid label name")
        if name in NOTIFY_OWN_LABELS:
            raise ConfigError(
                f"{where}: notify.labels: {name!r} is set by analytics-cli itself",
                hint=f"reserved: {', '.join(NOTIFY_OWN_LABELS)}",
            )
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: notify.labels.{name} must be a non-empty string")
        labels.append((name, value))
    return Notify(
        alertmanager=am,
        webhook=hook,
        webhook_format=fmt,
        username=table.get("username"),
        password_file=table.get("password_file"),
        token_file=table.get("token_file"),
        ca_file=table.get("ca_file"),
        timeout=timeout,
        retries=retries,
        resolve_after=resolve_after,
        labels=tuple(labels),
    )


def url_secrets(url: str | None, *, path_is_secret: bool) -> set[str]:
    """The parts of a URL that are secrets: its password and, for a webhook (Slack's and most
    chat tools' URLs are the credential), its path and query."""
    from urllib.parse import urlsplit

    if not url:
        return set()
    parts = urlsplit(url)
    found = {parts.password} if parts.password else set()
    if path_is_secret:
        rest = url[len(f"{parts.scheme}://{parts.netloc}") :]
        if len(rest.strip("/")) >= 4:
            found.add(rest)
    return found


def redact_url(url: str, *, path_is_secret: bool) -> str:
    """The URL with its secrets (see ``url_secrets``) replaced by ``***``."""
    for secret in sorted(url_secrets(url, path_is_secret=path_is_secret), key=len, reverse=True):
        url = url.replace(secret, "/***" if secret.startswith("/") else "***")
    return url


def notify_document(notify: Notify, *, redact: bool = True) -> dict[str, Any]:
    """``[notify]`` as a TOML-ready table (only what is set; file names, never contents)."""
    doc: dict[str, Any] = {}
    for key in ("alertmanager", "webhook"):
        url = getattr(notify, key)
        if url:
            doc[key] = redact_url(url, path_is_secret=key == "webhook") if redact else url
    if notify.webhook_format != "json":
        doc["webhook_format"] = notify.webhook_format
    for key in ("username", "password_file", "token_file", "ca_file"):
        if getattr(notify, key) is not None:
            doc[key] = getattr(notify, key)
    doc["timeout"] = format_duration(notify.timeout)
    doc["retries"] = notify.retries
    if notify.resolve_after is not None:
        doc["resolve_after"] = format_duration(notify.resolve_after)
    if notify.labels:
        doc["labels"] = dict(notify.labels)
    return doc


def _alerts(
    where: Path, table: Mapping[str, Any], metrics: list[dict[str, Any]]
) -> tuple[Alert, ...]:
    """The hard limits: each [[metric]]'s ``alert``, then the [alert] table (any stored type)."""
    found: dict[str, Alert] = {}
    named = [
        (f"metric[{i}].alert", m["type"], m["alert"]) for i, m in enumerate(metrics) if "alert" in m
    ]
    named += [(f"alert.{name}", name, limits) for name, limits in table.items()]
    for key, name, limits in named:
        validate_metric_type(name, where=f"{where}: {key}")
        if name in found:
            raise ConfigError(f"{where}: {key}: metric type {name!r} has limits twice")
        if not limits:
            raise ConfigError(f"{where}: {key} is empty", hint="give below, above or both")
        if any(v != v or v in (float("inf"), float("-inf")) for v in limits.values()):
            raise ConfigError(f"{where}: {key}: limits must be finite numbers")
        below, above = (
            Decimal(str(limits[k])) if k in limits else None for k in ("below", "above")
        )
        if below is not None and above is not None and below >= above:
            raise ConfigError(f"{where}: {key}: below must be less than above")
        found[name] = Alert(name, below, above)
    return tuple(found.values())


def with_queries(
    metrics: list[dict[str, Any]], queries: list[dict[str, Any]], *, where: str
) -> list[dict[str, Any]]:
    """Metric tables with what their ``query`` gives them (its sql, dimensions, sources)."""
    by_name: dict[str, dict[str, Any]] = {}
    for index, query in enumerate(queries):
        name = query["name"]
        if not SOURCE_NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{where}: query[{index}].name {name!r} must be letters, digits, '_', '.' or '-'"
            )
        if name in by_name:
            raise ConfigError(f"{where}: query {name!r} is defined twice")
        by_name[name] = query
    used: set[str] = set()
    out: list[dict[str, Any]] = []
    for index, item in enumerate(metrics):
        if "query" not in item:
            out.append(item)
            continue
        name = item["query"]
        if name not in by_name:
            raise ConfigError(
                f"{where}: metric[{index}].query names unknown query {name!r}",
                hint="known queries: " + (", ".join(by_name) or "none: add a [[query]] table"),
            )
        used.add(name)
        query = by_name[name]
        out.append({**item, **{k: query[k] for k in _FROM_QUERY if k in query}})
    unused = [n for n in by_name if n not in used]
    if unused:
        raise ConfigError(
            f"{where}: query {unused[0]!r} fills no metric",
            hint='add a [[metric]] with query = "' + unused[0] + '" for each of its columns',
        )
    return out


def _sources(where: Path, items: list[dict[str, Any]]) -> tuple[SourceSpec, ...]:
    out: list[SourceSpec] = []
    for index, item in enumerate(items):
        name = item["name"]
        if not SOURCE_NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{where}: source[{index}].name {name!r} is not a valid source name",
                hint="use letters, digits, '_', '.' or '-' (max 63), e.g. eu-west",
            )
        if any(s.name == name for s in out):
            raise ConfigError(f"{where}: source {name!r} is defined twice")
        out.append(SourceSpec(name, item.get("dsn"), item.get("dsn_env")))
    return tuple(out)


def metric_spec(item: Mapping[str, Any], *, where: str, builtin: bool) -> MetricSpec:
    """Build one MetricSpec from a validated ``[[metric]]`` table (custom or built-in)."""
    http = None
    if "http" in item:
        conf = item["http"]
        for key in ("url", "path"):
            if not conf[key].strip():
                raise ConfigError(f"{where}.http.{key} is empty")
        if not conf["url"].startswith(("http://", "https://")):
            raise ConfigError(f"{where}.http.url must start with http:// or https://")
        from analytics_cli.jsonpath import parse_path

        parse_path(conf["path"], where=f"{where}.http.path")
        timeout = _duration(Path(where), "http.timeout", conf.get("timeout", DEFAULT_HTTP_TIMEOUT))
        if not timedelta(0) < timeout <= timedelta(minutes=10):
            raise ConfigError(f"{where}.http.timeout must be more than 0 and at most 10m")
        http = HttpSpec(
            conf["url"], conf["path"], conf.get("token_file"), conf.get("ca_file"), timeout
        )
    elif not item["sql"].strip():
        raise ConfigError(f"{where}.sql is empty")
    dimensions: list[str] = []
    for index, name in enumerate(item.get("dimensions", [])):
        if not isinstance(name, str) or not _IDENT_RE.fullmatch(name) or name == "count":
            raise ConfigError(
                f"{where}.dimensions[{index}] must be a column name other than count",
                hint='list the query\'s columns that become metadata: dimensions = ["location"]',
            )
        if name == "source":
            raise ConfigError(
                f"{where}.dimensions: 'source' is reserved for the [[source]] tag of each row"
            )
        if name in dimensions:
            raise ConfigError(f"{where}.dimensions lists {name!r} twice")
        dimensions.append(name)
    if dimensions and http is not None:
        raise ConfigError(f"{where}: an http metric gives one number; it cannot have dimensions")
    max_series = item.get("max_series", DEFAULT_MAX_SERIES)
    if not 1 <= max_series <= 100_000:
        raise ConfigError(f"{where}.max_series must be between 1 and 100000")
    if "max_series" in item and not dimensions:
        raise ConfigError(f"{where}.max_series applies only to a metric with dimensions")
    every = None
    if "every" in item:
        every = _duration(Path(where), "every", item["every"])
        if every <= timedelta(0):
            raise ConfigError(f"{where}.every must be more than 0")
    backfill = item.get("backfill", False)
    if backfill and http is not None:
        raise ConfigError(
            f"{where}: an http metric reads the present; it cannot be backfilled",
            hint="backfill = true is for SQL counts over timestamped rows",
        )
    sources = item.get("sources")
    if sources is not None:
        if http is not None:
            raise ConfigError(f"{where}: an http metric runs once per cycle; it has no sources")
        if not sources or not all(isinstance(n, str) for n in sources):
            raise ConfigError(f"{where}.sources must be a non-empty list of source names")
    return MetricSpec(
        item["type"],
        item.get("sql", "").strip() if builtin else item.get("sql", ""),
        item.get("description", ""),
        builtin=builtin,
        enabled=item.get("enabled", True),
        dimensions=tuple(dimensions),
        max_series=max_series,
        sources=tuple(dict.fromkeys(sources)) if sources is not None else None,
        http=http,
        query=item.get("query"),
        every=every,
        backfill=backfill,
    )


def load(
    path: Path | None = None,
    *,
    dsn: str | None = None,
    env: Mapping[str, str] | None = None,
    discover: bool = True,
) -> Settings:
    """Resolve the effective Settings: file (explicit or discovered), then environment, then flags."""
    env = os.environ if env is None else env
    found = find_config(path, env) if (path is not None or discover) else None
    settings = settings_from_file(found, parse_file(found) if found else {})
    return apply_overrides(settings, dsn=dsn, env=env)


def apply_overrides(settings: Settings, *, dsn: str | None, env: Mapping[str, str]) -> Settings:
    """Apply connection strings: --dsn, then ANALYTICS_SOURCE/STORE_DSN, then ANALYTICS_DSN."""
    source, source_origin = settings.source_dsn, settings.source_dsn_origin
    store, store_origin = settings.store_dsn, settings.store_dsn_origin
    if env.get("ANALYTICS_DSN"):
        source, source_origin = env["ANALYTICS_DSN"], "$ANALYTICS_DSN"
        store, store_origin = env["ANALYTICS_DSN"], "$ANALYTICS_DSN"
    if env.get("ANALYTICS_SOURCE_DSN"):
        if settings.sources:
            raise ConfigError(
                f"{settings.path}: $ANALYTICS_SOURCE_DSN is set but the file has [[source]] tables",
                hint="unset ANALYTICS_SOURCE_DSN, or give that database a [[source]] table",
            )
        source, source_origin = env["ANALYTICS_SOURCE_DSN"], "$ANALYTICS_SOURCE_DSN"
    if env.get("ANALYTICS_STORE_DSN"):
        store, store_origin = env["ANALYTICS_STORE_DSN"], "$ANALYTICS_STORE_DSN"
    if dsn is not None:
        source, source_origin = dsn, "--dsn"
        store, store_origin = dsn, "--dsn"
    if source is None and store is None and any(env.get(v) for v in LIBPQ_ENV):
        # libpq's own variables are a configuration too: connect with an empty conninfo.
        source, source_origin = "", "libpq environment (PGHOST, PGSERVICE, ...)"
        store, store_origin = "", "libpq environment (PGHOST, PGSERVICE, ...)"
    elif source is None and store is not None:
        source, source_origin = store, store_origin
    elif store is None and source is not None:
        store, store_origin = source, source_origin
    return replace(
        settings,
        source_dsn=source,
        source_dsn_origin=source_origin,
        store_dsn=store,
        store_dsn_origin=store_origin,
        sources=_resolve_sources(settings.sources, env, settings.path),
    )


def _resolve_sources(
    sources: tuple[SourceSpec, ...], env: Mapping[str, str], path: Path | None = None
) -> tuple[SourceSpec, ...]:
    """Fill each [[source]]'s dsn from its dsn_env variable."""
    out = []
    for source in sources:
        if source.dsn_env is not None:
            value = env.get(source.dsn_env)
            if not value:
                raise ConfigError(
                    f"{path}: source {source.name!r}: environment variable {source.dsn_env} "
                    "is not set",
                    hint=f"export {source.dsn_env}='postgresql://...' or set dsn in [[source]]",
                )
            source = replace(source, dsn=value)
        out.append(source)
    return tuple(out)


def to_document(settings: Settings, *, redact: bool = True) -> dict[str, Any]:
    """The effective configuration as a TOML-ready document (passwords redacted)."""
    from analytics_cli.dsn import redact_dsn

    def show(dsn: str | None) -> str | None:
        if dsn is None:
            return None
        return redact_dsn(dsn) if redact else dsn

    doc: dict[str, Any] = {}
    source = show(settings.source_dsn)
    store = show(settings.store_dsn)
    doc["source"] = {"dsn": source} if source is not None else {}
    if settings.sources:
        doc["source"] = [
            {"name": s.name, "dsn_env": s.dsn_env}
            if s.dsn_env is not None
            else {"name": s.name, "dsn": show(s.dsn)}
            for s in settings.sources
        ]
    doc["store"] = {**({"dsn": store} if store is not None else {}), "table": settings.table}
    if settings.retention.configured:
        doc["retention"] = settings.retention.dump()
    if settings.layout != "auto":
        doc["store"]["layout"] = settings.layout
    if not settings.spool_enabled:
        doc["store"]["spool"] = False
    elif settings.spool_dir is not None:
        doc["store"]["spool"] = settings.spool_dir
    collect: dict[str, Any] = {
        "interval": format_duration(settings.interval),
        "statement_timeout": format_duration(settings.statement_timeout),
        "connect_timeout": format_duration(settings.connect_timeout),
        "retries": settings.retries,
        "parallel": settings.parallel,
        "source_concurrency": settings.source_concurrency,
        "catch_up": format_duration(settings.catch_up) if settings.catch_up else "0",
    }
    if settings.metrics is not None:
        collect["metrics"] = list(settings.metrics)
    if settings.ping_url:
        collect["ping_url"] = settings.ping_url
    doc["collect"] = collect
    if settings.notify.enabled:
        doc["notify"] = notify_document(settings.notify, redact=redact)
    if settings.alerts:
        doc["alert"] = {
            a.type: {
                k: _toml_number(v)
                for k, v in (("below", a.below), ("above", a.above))
                if v is not None
            }
            for a in settings.alerts
        }
    if settings.custom:
        doc["metric"] = [metric_document(m) for m in settings.custom]
        queries = query_documents(settings.custom)
        if queries:
            doc["query"] = queries
    return doc


def _toml_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def query_documents(specs: tuple[MetricSpec, ...]) -> list[dict[str, Any]]:
    """The ``[[query]]`` tables that fill ``specs``, once each, in order of first use."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.query is None or spec.query in out:
            continue
        item: dict[str, Any] = {"name": spec.query}
        if spec.dimensions:
            item["dimensions"] = list(spec.dimensions)
            if spec.max_series != DEFAULT_MAX_SERIES:
                item["max_series"] = spec.max_series
        if spec.sources is not None:
            item["sources"] = list(spec.sources)
        item["sql"] = spec.sql
        out[spec.query] = item
    return list(out.values())


def metric_document(spec: MetricSpec) -> dict[str, Any]:
    """One metric as a ``[[metric]]`` table (only the keys that differ from the defaults)."""
    item: dict[str, Any] = {"type": spec.type, "description": spec.description}
    if not spec.enabled:
        item["enabled"] = False
    if spec.every is not None:
        item["every"] = format_duration(spec.every)
    if spec.backfill:
        item["backfill"] = True
    if spec.query is not None:
        item["query"] = spec.query
        return item
    if spec.dimensions:
        item["dimensions"] = list(spec.dimensions)
        if spec.max_series != DEFAULT_MAX_SERIES:
            item["max_series"] = spec.max_series
    if spec.sources is not None:
        item["sources"] = list(spec.sources)
    if spec.http is not None:
        http: dict[str, Any] = {"url": spec.http.url, "path": spec.http.path}
        if spec.http.token_file is not None:
            http["token_file"] = spec.http.token_file
        if spec.http.ca_file is not None:
            http["ca_file"] = spec.http.ca_file
        http["timeout"] = format_duration(spec.http.timeout)
        item["http"] = http
    else:
        item["sql"] = spec.sql
    return item


def dump(doc: Mapping[str, Any]) -> str:
    """Serialise a configuration document with tomli-w."""
    import tomli_w

    return tomli_w.dumps(dict(doc), multiline_strings=True)
