"""Configuration files: discovery, reading the TOML against the key schema, env overrides."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from analytics_cli.config.schema import (
    ALERT_KEYS,
    FROM_QUERY,
    HTTP_KEYS,
    LIBPQ_ENV,
    METRIC_KEYS,
    QUERY_KEYS,
    SCHEMA,
    SOURCE_KEYS,
    Settings,
    SourceSpec,
)
from analytics_cli.config.validate import settings_from_file
from analytics_cli.errors import ConfigError


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
            for where, item in _array_of_tables(path, section, value, METRIC_KEYS):
                if "alert" in item:
                    _check_keys(path, f"{where}.alert", item["alert"], ALERT_KEYS)
                if "http" in item:
                    _check_keys(path, f"{where}.http", item["http"], HTTP_KEYS)
                    for key in ("url", "path"):
                        if key not in item["http"]:
                            raise ConfigError(f"{path}: {where}.http is missing {key!r}")
                    if "sql" in item:
                        raise ConfigError(f"{path}: {where} has both sql and http; choose one")
                if "query" in item:
                    for key in (*FROM_QUERY, "http"):
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
                _check_keys(path, f"alert.{name}", limits, ALERT_KEYS)
            continue
        if section == "query":
            for where, item in _array_of_tables(path, section, value, QUERY_KEYS):
                for key in ("name", "sql"):
                    if key not in item:
                        raise ConfigError(f"{path}: {where} is missing {key!r}")
            continue
        if section == "source" and isinstance(value, list):
            for index, item in enumerate(value):
                where = f"source[{index}]"
                if not isinstance(item, dict):
                    raise ConfigError(f"{path}: {where} must be a table")
                _check_keys(path, where, item, SOURCE_KEYS)
                if "name" not in item:
                    raise ConfigError(f"{path}: {where} is missing 'name'")
                if ("dsn" in item) == ("dsn_env" in item):
                    raise ConfigError(f"{path}: {where} needs exactly one of dsn or dsn_env")
            continue
        if section not in SCHEMA:
            raise ConfigError(
                f"{path}: unknown section or key {section!r}",
                hint=f"allowed: {', '.join([*SCHEMA, 'metric', 'query', 'alert'])}",
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}])")
        for key, val in value.items():
            allowed = SCHEMA[section]
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
