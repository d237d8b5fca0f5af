"""The starter configuration that ``config init`` writes, and TOML text made readable."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from analytics_cli.console import atomic_write
from analytics_cli.dsn import default_engine, engine_for, engine_named
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec

DEFAULT_CONFIG_PATH = Path("analytics-cli.toml")


def example_metric(dialect: str) -> dict[str, str]:
    """The example custom metric (registered users), in the source's ``dialect``."""
    return {
        "type": "registeredUsers",
        "description": "Accounts that are neither guests nor deactivated",
        "sql": engine_named(dialect).starter.example_sql,
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
{source_example}

"""

_STARTER_COLLECT = """
# interval: the slot length; schedule 'collect' at the same period (cron */30).
# metrics: the built-in metrics to run; remove the key to run every built-in that
# is enabled by default, including ones added by later versions. Custom [[metric]]
# entries run unless they say enabled = false.
# ping_url: a heartbeat URL called after each run (URL, or URL/fail on error).
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


def dialect_of(dsn: str | None) -> str:
    """The SQL dialect of a source connection string (PostgreSQL when none is given)."""
    return engine_for(dsn).name


def starter_config(path: Path, builtins: Sequence[MetricSpec], dialect: str | None = None) -> str:
    """The text of a starter configuration: defaults, the ``builtins`` listed, one custom metric
    written in the source's ``dialect``."""
    from analytics_cli.config.dump import dump
    from analytics_cli.config.schema import (
        DEFAULT_CONNECT_TIMEOUT,
        DEFAULT_INTERVAL,
        DEFAULT_RETRIES,
        DEFAULT_STATEMENT_TIMEOUT,
        DEFAULT_TABLE,
    )

    # tomli-w writes no comments, so each section is dumped on its own and annotated.
    store_doc = {"store": {"table": DEFAULT_TABLE}}
    collect_doc = {
        "collect": {
            "interval": DEFAULT_INTERVAL,
            "statement_timeout": DEFAULT_STATEMENT_TIMEOUT,
            "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
            "retries": DEFAULT_RETRIES,
            # The default set: built-ins marked enabled = false stay out until added here.
            "metrics": [m.type for m in builtins if m.enabled],
        }
    }
    dialect = dialect or default_engine().name
    text = engine_named(dialect).starter
    metric_doc = {"metric": [example_metric(dialect)]}
    return (
        _STARTER_HEADER.format(path=path, source_example=text.source_example)
        + dump(store_doc).replace("[store]\n", "[store]" + text.store_note, 1)
        + "\n"
        + dump(collect_doc).replace("[collect]\n", "[collect]" + _STARTER_COLLECT, 1)
        + text.metric_note
        + readable_toml(dump(metric_doc))
    )


def write_starter(
    path: Path, builtins: Sequence[MetricSpec], *, force: bool, dialect: str | None = None
) -> None:
    """Write the starter configuration (mode 0600); refuse to overwrite unless ``force``."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(f"directory {path.parent} does not exist")
    atomic_write(path, starter_config(path, builtins, dialect), mode=0o600)
