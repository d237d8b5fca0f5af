"""Connections: DSN resolution and redaction, timeouts, retries; the only module that connects."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from analytics_cli.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config import Settings

APPLICATION_NAME = "analytics-cli"
_URI_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:/@?#]*:)([^@/?#]*)(@)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)


def dsn_secrets(dsn: str | None) -> set[str]:
    """Every spelling of the password a connection string carries (raw and decoded)."""
    if not dsn:
        return set()
    found: set[str] = set()
    for pattern in (_URI_PASSWORD, _QUERY_PASSWORD):
        for match in pattern.finditer(dsn):
            found.add(match.group(2))
    for match in _KV_PASSWORD.finditer(dsn):
        value = match.group(2)
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = value[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        found.add(value)
    found |= {unquote(s) for s in found}
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
        if password:
            found.add(str(password))
    except Exception:
        pass
    return {s for s in found if s}


def redact_dsn(dsn: str) -> str:
    """The connection string with any password replaced by ``***``."""
    text = _URI_PASSWORD.sub(r"\1***\3", dsn)
    text = _QUERY_PASSWORD.sub(r"\1***", text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    return scrub(text, dsn_secrets(dsn))


def scrub(message: str, secrets: set[str]) -> str:
    """Remove every known secret from a message, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 1:
            message = message.replace(secret, "***")
    return message


def describe(dsn: str) -> str:
    """A short, password-free name for a database: ``user@host:port/dbname``."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(dsn)
    except Exception:
        return redact_dsn(dsn)
    host = str(params.get("host") or params.get("hostaddr") or "local socket")
    port = params.get("port")
    user = params.get("user")
    dbname = params.get("dbname")
    where = f"{host}:{port}" if port else host
    text = f"{user}@{where}" if user else where
    return f"{text}/{dbname}" if dbname else text


def one_line(message: str) -> str:
    """Collapse a multi-line database message to one line."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts)


def error_line(exc: Exception) -> str:
    """A database error as one line: the server's primary message when there is one."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return one_line(primary or str(exc))


def connect(
    dsn: str,
    settings: Settings,
    *,
    purpose: str,
    autocommit: bool = False,
    retries: int = 0,
) -> psycopg.Connection[Any]:
    """Open a connection with application_name and connect timeout; retry connection errors."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    secrets = dsn_secrets(dsn)
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = scrub(one_line(str(exc)), secrets)
        if secrets or "password" in dsn.lower():
            # Unparsable text may hold a password the parser could not delimit: quote none of it.
            reason = re.sub(r'"[^"]{2,}"', '"..."', reason)
        raise ConfigError(f"invalid {purpose} connection string: {reason}") from None
    extra: dict[str, Any] = {}
    if "application_name" not in params:
        extra["application_name"] = APPLICATION_NAME
    if "connect_timeout" not in params:
        extra["connect_timeout"] = max(1, int(settings.connect_timeout.total_seconds()))
    attempt = 0
    while True:
        try:
            return psycopg.connect(dsn, autocommit=autocommit, **extra)
        except psycopg.OperationalError as exc:
            if attempt < retries:
                # Bounded backoff: 1 s, 2 s, 4 s ... nothing has been written yet.
                time.sleep(min(2.0**attempt, 8.0))
                attempt += 1
                continue
            raise DatabaseError(
                f"cannot connect to the {purpose} database ({describe(dsn)}): "
                f"{scrub(one_line(str(exc)), secrets)}"
            ) from None


def database_error(exc: Exception, dsn: str | None, *, doing: str) -> DatabaseError:
    """Wrap a psycopg error into a one-line DatabaseError with secrets removed."""
    return DatabaseError(f"{doing}: {scrub(one_line(str(exc)), dsn_secrets(dsn))}")


@contextmanager
def resolved(settings: Settings, *, announce: Any = None) -> Iterator[Settings]:
    """Settings with concrete DSNs; starts the embedded server when none is configured."""
    if not settings.embedded:
        yield settings
        return
    from analytics_cli import embedded

    with embedded.server() as server:
        if announce is not None and not server.nested:
            announce(f"using the embedded PostgreSQL in {server.home} (no connection string set)")
        yield replace(
            settings,
            source_dsn=server.dsn(embedded.SOURCE_DB),
            source_dsn_origin="embedded",
            store_dsn=server.dsn(embedded.STORE_DB),
            store_dsn_origin="embedded",
        )
