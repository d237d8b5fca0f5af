"""Connection strings: which engine, which secrets they carry, and how to show them safely."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

POSTGRESQL = "postgresql"
MYSQL = "mysql"
# Schemes that select the MySQL/MariaDB engine; everything else is libpq's business.
MYSQL_SCHEMES = ("mysql", "mariadb")

# Userinfo of a URL in ANY scheme (a typo such as "postgresq://" must not leak either).
_URI_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s]*:)([^@/?#\s]*)(@)")
_KV_PASSWORD = re.compile(
    r"""((?:password|passwd|pwd)\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;'"]+)""",
    re.IGNORECASE,
)
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)([^&#\s]*)", re.IGNORECASE)


def scheme(dsn: str) -> str | None:
    """The URL scheme of a connection string, lower-cased; None for libpq key=value text."""
    match = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://", dsn)
    return match.group(1).lower() if match else None


def engine_of(dsn: str) -> str:
    """``mysql`` for mysql:// and mariadb:// URLs (``+driver`` suffixes allowed), else ``postgresql``."""
    found = scheme(dsn)
    if found is not None and found.split("+", 1)[0] in MYSQL_SCHEMES:
        return MYSQL
    return POSTGRESQL


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
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote = value[0]
            value = value[1:-1].replace("\\" + quote, quote).replace("\\\\", "\\")
        found.add(value)
    found |= {unquote(s) for s in found}
    if engine_of(dsn) == POSTGRESQL:
        try:
            from psycopg.conninfo import conninfo_to_dict

            password = conninfo_to_dict(dsn).get("password")
            if password:
                found.add(str(password))
        except Exception:
            pass
    return {s for s in found if s}


def scrub(message: str, secrets: set[str]) -> str:
    """Remove every known secret from a message, longest first, then any password pattern."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            message = message.replace(secret, "***")
    return redact_patterns(message)


def redact_patterns(text: str) -> str:
    """Replace whatever looks like a password in any connection-string spelling by ``***``."""
    text = _URI_PASSWORD.sub(r"\1***\3", text)
    text = _QUERY_PASSWORD.sub(r"\1***", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def redact_dsn(dsn: str) -> str:
    """The connection string with any password replaced by ``***``."""
    return scrub(redact_patterns(dsn), dsn_secrets(dsn))


def one_line(message: str) -> str:
    """Collapse a multi-line message to one line."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts)


def describe(dsn: str) -> str:
    """A short, password-free name for a database: ``user@host:port/dbname``."""
    if engine_of(dsn) == MYSQL:
        try:
            url = urlsplit(dsn)
            parts = (url.username, url.hostname or "localhost", url.port, url.path.lstrip("/"))
        except ValueError:
            return redact_dsn(dsn)
        return _name(unquote(parts[0]) if parts[0] else None, *parts[1:])
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(dsn)
    except Exception:
        return redact_dsn(dsn)
    host = str(params.get("host") or params.get("hostaddr") or "local socket")
    return _name(params.get("user"), host, params.get("port"), params.get("dbname"))


def _name(user: object, host: str, port: object, dbname: object) -> str:
    where = f"{host}:{port}" if port else host
    text = f"{user}@{where}" if user else where
    return f"{text}/{dbname}" if dbname else text
