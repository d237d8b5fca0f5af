"""MySQL/MariaDB connection strings: URL, option file and MYSQL_* variables into PyMySQL arguments.

Precedence, most specific first: the URL (``mysql://user:password@host:port/database?...``),
then the option file's ``[client]`` group (``?option_file=``, else ``~/.my.cnf`` when it
exists), then the platform's own ``MYSQL_HOST``, ``MYSQL_PORT``, ``MYSQL_USER``,
``MYSQL_PASSWORD`` and ``MYSQL_DATABASE`` (as libpq's ``PG*`` variables do for PostgreSQL).
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from analytics_cli.dsn import dsn_secrets
from analytics_cli.errors import ConfigError

DEFAULT_PORT = 3306
# The platform's variables (ir-engine appconfig.ts), filling what the URL leaves out.
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}
# Query parameters of the URL, with the aliases PyMySQL and the mysql client use.
QUERY_KEYS = {
    "unix_socket": "unix_socket",
    "socket": "unix_socket",
    "ssl": "ssl",
    "ssl_ca": "ssl_ca",
    "ssl_cert": "ssl_cert",
    "ssl_key": "ssl_key",
    "ssl_verify_cert": "ssl_verify_cert",
    "ssl_verify_identity": "ssl_verify_identity",
    "option_file": "option_file",
    "read_default_file": "option_file",
    "option_group": "option_group",
    "read_default_group": "option_group",
    "charset": "charset",
}
# Option-file keys (dashes and underscores are the same there), as URL-level names.
_FILE_KEYS = {
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "database": "database",
    "socket": "unix_socket",
    "ssl_ca": "ssl_ca",
    "ssl_cert": "ssl_cert",
    "ssl_key": "ssl_key",
    "ssl_verify_server_cert": "ssl_verify_identity",
}


@dataclass(frozen=True)
class MySQLParams:
    """Where and how to connect, resolved; ``secrets`` holds every spelling of the password."""

    host: str
    port: int
    user: str | None
    password: str | None
    database: str
    unix_socket: str | None = None
    charset: str = "utf8mb4"
    ssl: dict[str, Any] | None = None
    # ssl=false: no TLS at all (PyMySQL 1.2 otherwise encrypts when the server offers it).
    ssl_disabled: bool = False
    option_file: str | None = None
    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    def describe(self) -> str:
        """``user@host:port/database`` (or ``user@[socket]/database``), never the password."""
        where = f"[{self.unix_socket}]" if self.unix_socket else f"{self.host}:{self.port}"
        who = f"{self.user}@" if self.user else ""
        return f"{who}{where}/{self.database}"

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect`` (timeouts and session options aside)."""
        args: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password or "",
            "database": self.database,
            "charset": self.charset,
        }
        if self.unix_socket:
            args["unix_socket"] = self.unix_socket
        if self.ssl is not None:
            args["ssl"] = self.ssl
        if self.ssl_disabled:
            args["ssl_disabled"] = True
        return args


def _bool(key: str, value: str) -> bool:
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"invalid source connection string: {key} must be true or false, got {value!r}"
        ) from None


def _port(value: str, where: str) -> int:
    if not value.strip().isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{where} must be a port number (1-65535), got {value!r}")
    return int(value)


def read_option_file(path: Path, groups: tuple[str, ...]) -> dict[str, str]:
    """The options of ``groups`` (later groups win) in a ``my.cnf``-style file."""
    parser = configparser.RawConfigParser(allow_no_value=True, strict=False, interpolation=None)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read MySQL option file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"MySQL option file {path} is not UTF-8 text") from None
    # !include and !includedir are not followed; configparser would take them for keys.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("!")]
    try:
        parser.read_string("\n".join(lines), source=str(path))
    except configparser.Error as exc:
        # The parser's message quotes the offending line, which may hold the password.
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise ConfigError(f"MySQL option file {path} is not valid{where}") from None
    found: dict[str, str] = {}
    for group in groups:
        if not parser.has_section(group):
            continue
        for key, value in parser.items(group):
            name = _FILE_KEYS.get(key.replace("-", "_"))
            if name is None:
                continue
            raw = (value or "").strip()
            if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
                raw = raw[1:-1]
            found[name] = raw if value is not None else "true"
    return found


def parse(dsn: str, env: Mapping[str, str] | None = None) -> MySQLParams:
    """Resolve a mysql:// or mariadb:// URL with its option file and the MYSQL_* variables."""
    env = os.environ if env is None else env
    secrets = set(dsn_secrets(dsn))
    if env.get("MYSQL_PASSWORD"):
        secrets.add(env["MYSQL_PASSWORD"])
    try:
        url = urlsplit(dsn.strip())
        url_port = url.port
    except ValueError as exc:
        reason = str(exc).replace(dsn, "...")
        raise ConfigError(f"invalid source connection string: {reason}") from None
    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        name = QUERY_KEYS.get(key)
        if name is None:
            allowed = ", ".join(sorted(set(QUERY_KEYS)))
            raise ConfigError(
                f"invalid source connection string: unknown parameter {key!r}",
                hint=f"MySQL parameters: {allowed}",
            )
        query[name] = value
    explicit = query.get("option_file")
    if explicit:
        option_path: Path | None = Path(explicit).expanduser()
    else:
        home = Path(env["HOME"]) if env.get("HOME") else None
        default = home / ".my.cnf" if home else None
        option_path = default if default is not None and default.is_file() else None
    groups = (
        "client",
        "client-mariadb",
        *([query["option_group"]] if "option_group" in query else []),
    )
    from_file = read_option_file(option_path, groups) if option_path is not None else {}
    if from_file.get("password"):
        secrets.add(from_file["password"])

    def pick(url_value: str | None, key: str, variable: str | None) -> str | None:
        if url_value:
            return url_value
        if from_file.get(key):
            return from_file[key]
        return env.get(variable) or None if variable else None

    user = pick(unquote(url.username) if url.username else None, "user", "MYSQL_USER")
    password = pick(unquote(url.password) if url.password else None, "password", "MYSQL_PASSWORD")
    host = pick(url.hostname, "host", "MYSQL_HOST") or "localhost"
    database = pick(unquote(url.path.lstrip("/")) or None, "database", "MYSQL_DATABASE")
    if url_port is not None:
        port = url_port
    elif from_file.get("port"):
        port = _port(from_file["port"], f"MySQL option file {option_path}: port")
    elif env.get("MYSQL_PORT"):
        port = _port(env["MYSQL_PORT"], "MYSQL_PORT")
    else:
        port = DEFAULT_PORT
    if not database:
        raise ConfigError(
            f"the MySQL source names no database ({_scheme(dsn)}://user@host:3306/DATABASE)",
            hint="put the database in the URL path, or set MYSQL_DATABASE",
        )
    for key in ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_identity"):
        if key not in query and key in from_file:
            query[key] = from_file[key]
    unix_socket = query.get("unix_socket") or from_file.get("unix_socket") or None
    return MySQLParams(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        unix_socket=unix_socket,
        charset=query.get("charset") or "utf8mb4",
        ssl=_ssl(query),
        ssl_disabled="ssl" in query and not _bool("ssl", query["ssl"]),
        option_file=str(option_path) if option_path is not None else None,
        secrets=frozenset(s for s in secrets if s),
    )


def _scheme(dsn: str) -> str:
    return dsn.split("://", 1)[0].strip().lower() or "mysql"


def _ssl(query: Mapping[str, str]) -> dict[str, Any] | None:
    """PyMySQL's ``ssl`` argument: none, encryption only, or a verified server (with a CA)."""
    wanted = _bool("ssl", query["ssl"]) if "ssl" in query else None
    files = {k: query[k] for k in ("ssl_ca", "ssl_cert", "ssl_key") if query.get(k)}
    verify_cert = (
        _bool("ssl_verify_cert", query["ssl_verify_cert"]) if "ssl_verify_cert" in query else None
    )
    verify_identity = (
        _bool("ssl_verify_identity", query["ssl_verify_identity"])
        if "ssl_verify_identity" in query
        else None
    )
    if wanted is False:
        if files or verify_cert or verify_identity:
            raise ConfigError(
                "invalid source connection string: ssl=false contradicts the ssl_* parameters"
            )
        return None
    if not (wanted or files or verify_cert or verify_identity):
        return None
    # With a CA file, verify the server like sslmode=verify-full unless told otherwise.
    has_ca = "ssl_ca" in files
    cert = verify_cert if verify_cert is not None else has_ca or bool(verify_identity)
    identity = verify_identity if verify_identity is not None else has_ca and cert
    if identity and not cert:
        raise ConfigError(
            "invalid source connection string: ssl_verify_identity needs ssl_verify_cert"
        )
    ssl: dict[str, Any] = {"verify_mode": cert, "check_hostname": identity}
    for key in ("ssl_ca", "ssl_cert", "ssl_key"):
        if key in files:
            path = Path(files[key]).expanduser()
            if not path.is_file():
                raise ConfigError(f"invalid source connection string: {key} {path} is not a file")
            ssl[key.removeprefix("ssl_")] = str(path)
    return ssl
