"""A parsed configuration document checked value by value and turned into frozen Settings."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from analytics_cli.config.schema import (
    DEFAULT_CATCH_UP_HOURS,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_SERIES,
    DEFAULT_NOTIFY_RETRIES,
    DEFAULT_NOTIFY_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_SOURCE_CONCURRENCY,
    DEFAULT_STATEMENT_TIMEOUT,
    DEFAULT_TABLE,
    FROM_QUERY,
    IDENT_RE,
    LABEL_RE,
    METRIC_TYPE_RE,
    NOTIFY_OWN_LABELS,
    SOURCE_NAME_RE,
    STORE_LAYOUTS,
    WEBHOOK_FORMATS,
    Alert,
    HttpSpec,
    MetricSpec,
    Notify,
    Retention,
    Settings,
    SourceSpec,
)
from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import parse_duration


def validate_table(name: str, *, where: str = "[store] table") -> str:
    """Accept ``table`` or ``schema.table`` made of plain identifiers; anything else is refused."""
    parts = name.split(".")
    if len(parts) > 2 or not all(IDENT_RE.fullmatch(p) for p in parts):
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
        if not LABEL_RE.fullmatch(name) or name.startswith("__"):
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
        out.append({**item, **{k: query[k] for k in FROM_QUERY if k in query}})
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
        # The path parser loads only for a config with http metrics.
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
        if not isinstance(name, str) or not IDENT_RE.fullmatch(name) or name == "count":
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


RETENTION_GRAINS = ("raw", "hourly", "daily")


def retention_settings(where: str, doc: Mapping[str, Any]) -> Retention:
    """``[retention]`` of the file ``where``: durations or "forever", each grain kept at least
    as long as the finer one before it (the coarser grain is built from it)."""
    found: list[timedelta | None] = []
    texts = [str(doc.get(name, "forever")) for name in RETENTION_GRAINS]
    for name in RETENTION_GRAINS:
        text = doc.get(name, "forever")
        if text.strip().lower() == "forever":
            found.append(None)
            continue
        try:
            value = parse_duration(text, what=f"retention.{name}")
        except ConfigError as exc:
            raise ConfigError(
                f"{where}: {exc}", hint='a duration such as "180d" or "2y", or "forever"'
            ) from None
        if value <= timedelta(0):
            raise ConfigError(f'{where}: retention.{name} must be more than 0, or "forever"')
        found.append(value)
    for a, b in ((0, 1), (1, 2), (0, 2)):
        short, long = found[a], found[b]
        if short is not None and long is not None and long < short:
            raise ConfigError(
                f"{where}: retention.{RETENTION_GRAINS[b]} ({texts[b]}) is shorter than "
                f"retention.{RETENTION_GRAINS[a]} ({texts[a]})",
                hint=f"keep {RETENTION_GRAINS[b]} at least as long as {RETENTION_GRAINS[a]}: it is built from it",
            )
    if found[0] is not None and found[0] < timedelta(days=2):
        raise ConfigError(
            f"{where}: retention.raw must be at least 2d",
            hint="the rows of the last day feed the rollups and the anomalies",
        )
    return Retention(found[0], found[1], found[2])
