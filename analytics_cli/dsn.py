"""Connection strings: which engine, which secrets they carry, and how to show them safely.

The registry below is the ONE place an engine is chosen; this module needs no driver (each
engine's own reading of its strings is imported only when a string of it is read).
"""

from __future__ import annotations

import importlib
import re
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from analytics_cli.engines.base import Engine

# Scheme (before any "+driver") -> the package of its engine, which holds ``ENGINE``.
ENGINES = {
    "mysql": "analytics_cli.engines.mysql",
    "mariadb": "analytics_cli.engines.mysql",
}
# libpq's key=value text, postgresql:// and every other scheme: libpq's business.
DEFAULT_ENGINE = "analytics_cli.engines.postgresql"


class Dialect(StrEnum):
    """The engines' names, each the dialect of its metric pack, the default engine's first
    (`config init --dialect` offers them without loading an engine)."""

    postgresql = "postgresql"
    mysql = "mysql"


# Userinfo of a URL in ANY scheme (a typo such as "postgresq://" must not leak either).
_URI_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s]*:)([^@/?#\s]*)(@)")
_SECRET_KEY = r"(?:(?:ssl)?(?:password|passwd|pwd)|oauth_client_secret|scram_(?:client|server)_key)"
_KV_PASSWORD = re.compile(
    rf"""({_SECRET_KEY}\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|(?:\\.|[^\s&;'"\\])+)""",
    re.IGNORECASE,
)
_QUERY_PASSWORD = re.compile(rf"([?&]{_SECRET_KEY}=)([^&#\s]*)", re.IGNORECASE)

# Where a password may start in a string that is perhaps no valid connection string at all:
# after "user:" (any scheme, "://" or a typo of it, or none), after "password=" in a query
# string, after a password keyword of libpq's key=value form.
_USERINFO_START = re.compile(r"""(?:^|(?<=[\s/'"=(,;]))[^\s/:@'"]*:""")
_QUERY_START = re.compile(rf"[?&]{_SECRET_KEY}=", re.IGNORECASE)
_KV_START = re.compile(rf"(?:^|(?<=\s)){_SECRET_KEY}\s*=\s*", re.IGNORECASE)
_ANY_KV_START = re.compile(r"(?:^|(?<=\s))([^\s=]+)\s*=\s*")
_ANY_QUERY_START = re.compile(r"[?&]([^=&#\s]+)=")
# Guessed spans shorter than this are not scrubbed: a stray "p" would garble every message.
_MIN_GUESS = 4


def scheme(dsn: str) -> str | None:
    """The URL scheme of a connection string, lower-cased; None for libpq key=value text."""
    match = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://", dsn)
    return match.group(1).lower() if match else None


def engine_for(dsn: str | None) -> Engine:
    """The engine of a connection string, from its scheme (``+driver`` suffixes allowed)."""
    found = scheme(dsn) if dsn else None
    module = ENGINES.get(found.split("+", 1)[0], DEFAULT_ENGINE) if found else DEFAULT_ENGINE
    # Imported by name: this leaf stays free of the engines (and their drivers) until used.
    engine: Engine = importlib.import_module(module).ENGINE
    return engine


def default_engine() -> Engine:
    """The engine of libpq's key=value text: its dialect is that of a metric's own ``sql``
    and of the built-in pack's ``packs/<name>.toml``."""
    return engine_for(None)


def all_engines() -> tuple[Engine, ...]:
    """Every engine of the registry, the default one first."""
    modules = dict.fromkeys([DEFAULT_ENGINE, *ENGINES.values()])
    return tuple(importlib.import_module(m).ENGINE for m in modules)


def engine_named(name: str) -> Engine:
    """The engine whose dialect is ``name`` (``config init --dialect``)."""
    return next(e for e in all_engines() if e.name == name)


def dsn_secrets(dsn: str | None) -> set[str]:
    """Every spelling of the password a connection string may carry, parsable or not.

    What libpq or the URL parser read as the password is taken as it is; around it, every
    span that a password could fill in a malformed string (up to each ``@`` after
    ``user:``, up to each separator after ``password=``) is taken too, raw and
    percent-decoded, so a typo in the scheme or in the quoting leaks nothing.
    """
    if not dsn:
        return set()
    parsed = _readable(dsn)
    readings = _parsed_passwords(dsn)
    guesses = _guessed_passwords(dsn, parsed=parsed)
    if not parsed or len(readings) > 1:
        # Unreadable, or read two ways (a raw "@" in the password): the parser quotes or
        # connects to pieces of it ("could not translate host name "word@db""), so the
        # pieces between spaces and "@" are secrets too.
        guesses |= {p for g in guesses | readings for p in re.split(r"[\s@]+", g)}
    guesses = {g for g in guesses if len(g) >= _MIN_GUESS}
    # A short reading that is only a piece of a longer span ("p" of a raw "p@ss") is no
    # secret of its own, and scrubbing it would garble every message.
    exact = {
        p for p in readings if len(p) >= _MIN_GUESS or not any(p in g and p != g for g in guesses)
    }
    found = exact | guesses
    found |= {unquote(s) for s in found}
    return {s for s in found if s}


def _readable(dsn: str) -> bool:
    """True when the string reads as a connection string of its engine."""
    return engine_for(dsn).readable(dsn)


def _parsed_passwords(dsn: str) -> set[str]:
    """The password as the engine's driver or, for a URL, the URL parser reads it."""
    found = engine_for(dsn).passwords(dsn)
    if scheme(dsn) is not None:
        try:
            password = urlsplit(dsn.strip()).password
        except ValueError:
            password = None
        if password:
            found.add(password)
    return found


def _guessed_passwords(dsn: str, *, parsed: bool) -> set[str]:
    """Spans of the text a password may fill, however the string is (mis)spelt."""
    found: set[str] = set()
    ats = [i for i, c in enumerate(dsn) if c == "@"]
    lead = len(dsn) - len(dsn.lstrip())
    for match in _USERINFO_START.finditer(dsn):
        if match.start() == lead and dsn.startswith("/", match.end()):
            continue  # the "scheme:" of a URL: its password follows "user:" further on
        found |= {dsn[match.end() : at] for at in ats if at > match.end()}
    ends = [i for i, c in enumerate(dsn) if c in "&#" or c.isspace()] + [len(dsn)]
    for match in _QUERY_START.finditer(dsn):
        spans = [dsn[match.end() : end] for end in ends if end >= match.end()]
        # A string libpq reads has its password up to the next "&"; else any span may be it.
        found |= set(spans[:1] if parsed else spans)
    for match in _KV_START.finditer(dsn):
        found |= _kv_values(dsn, match.end(), parsed=parsed)
    if not parsed:
        # A misspelt key ("pasword=") is refused by libpq, but its value is still a secret.
        known = _plain_params()
        for match in _ANY_KV_START.finditer(dsn):
            if match.group(1).lower() not in known:
                found |= _kv_values(dsn, match.end(), parsed=parsed)
        for match in _ANY_QUERY_START.finditer(dsn):
            if match.group(1).lower() not in known:
                found |= {dsn[match.end() : end] for end in ends if end >= match.end()}
    return found


def _plain_params() -> frozenset[str]:
    """libpq's parameter names that hold no secret: a string no engine can read is taken as
    libpq's key=value text."""
    return engine_for(None).plain_params()


def _kv_values(dsn: str, start: int, *, parsed: bool) -> set[str]:
    """A key=value password read as libpq does (quotes, backslashes), and the raw spans."""
    rest = dsn[start:]
    found: set[str] = set()
    if rest.startswith("'"):
        value, i, escaped = [], 1, False
        while i < len(rest):
            char = rest[i]
            if escaped:
                value.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "'":
                break
            else:
                value.append(char)
            i += 1
        found |= {"".join(value), rest[1:i], rest[: i + 1]}
        if parsed:
            return found
    token = re.match(r"\S*", rest)
    first = token.group(0) if token else ""
    found |= {first, re.sub(r"\\(.)", r"\1", first), first.strip('"')}
    if not parsed:
        # libpq could not read it: the password may run on past a space (unquoted, or
        # quoted by mistake), so every longer span is a candidate too.
        for end in (m.start() for m in re.finditer(r"\s|$", rest)):
            span = rest[:end]
            found |= {span, span.strip('"'), span.strip("'")}
    return found


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
    return scrub(dsn, dsn_secrets(dsn))


def scheme_hint(dsn: str) -> str | None:
    """A hint for a connection string whose URL scheme libpq does not know (a typo, mysql://)."""
    found = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*):/*", dsn)
    if found is None or "=" in dsn[: found.end()]:
        return None
    name = found.group(1).lower()
    if name in ("postgresql", "postgres") and found.group(0).rstrip().endswith("://"):
        return None
    if name.split("+", 1)[0] in ENGINES:
        return (
            "this database is reached through libpq, which reads PostgreSQL connection strings only"
        )
    return "a connection URL starts with postgresql:// (or postgres://); or use key=value pairs"


def one_line(message: str) -> str:
    """Collapse a multi-line message to one line."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts)


def describe(dsn: str) -> str:
    """A short, password-free name for a database: ``user@host:port/dbname``."""
    # A malformed string may put part of its password where the host or port belongs.
    return scrub(_describe(dsn), dsn_secrets(dsn))


def _describe(dsn: str) -> str:
    found = engine_for(dsn).describe(dsn)
    return redact_dsn(dsn) if found is None else found


def name_of(user: object, host: str, port: object, dbname: object) -> str:
    """``user@host:port/dbname``, leaving out what is not given."""
    where = f"{host}:{port}" if port else host
    text = f"{user}@{where}" if user else where
    return f"{text}/{dbname}" if dbname else text
