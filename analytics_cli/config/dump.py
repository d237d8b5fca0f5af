"""The effective configuration written back out as TOML, its secrets redacted."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from analytics_cli.config.schema import DEFAULT_MAX_SERIES, MetricSpec, Notify, Settings
from analytics_cli.timeutil import format_duration


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
    kept = settings.retention
    if kept.configured:
        doc["retention"] = {
            name: format_duration(value) if value is not None else "forever"
            for name, value in zip(
                ("raw", "hourly", "daily"), (kept.raw, kept.hourly, kept.daily), strict=True
            )
        }
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
    import tomli_w  # only config show and init write TOML: no other command loads it

    return tomli_w.dumps(dict(doc), multiline_strings=True)
