"""MySQL and MariaDB (PyMySQL): connection strings, connecting, the snapshot, the store.

``ENGINE`` is what the registry in ``analytics_cli.dsn`` hands out for mysql:// and
mariadb:// URLs. PyMySQL (an optional extra) is imported only inside its methods.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from analytics_cli.engines.base import Job, Starter

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings
    from analytics_cli.engines.base import Identity, Source, Store

STARTER = Starter(
    source_example='# dsn = "mysql://analytics@db.example.com:3306/platform'
    '?option_file=/etc/analytics-cli/my.cnf"',
    store_note="""
# The database and table the samples are written to. Defaults to the source database,
# where only the platform's own table can be the store (table = "analytics",
# layout = "ir-engine"); the analytics-cli table with dimensions lives on PostgreSQL:
# dsn = "postgresql://analytics@metrics.example.com/metrics"
""",
    metric_note="""
# Custom metrics: one row per cycle each, in the source's dialect (MySQL/MariaDB here).
# The query must return exactly one row with a numeric column named count. Parameters:
# %(slot)s (start of the slot, UTC) and %(interval_seconds)s (the interval in seconds).
# Quote names with backticks; booleans are 0 and 1.
""",
    # Backticks, booleans as tinyint(1).
    example_sql=(
        "SELECT COUNT(*) AS `count`\n"
        "FROM `user`\n"
        "WHERE `isGuest` = 0 AND NOT (`isDeactivated` <=> 1)\n"
    ),
)


@dataclass(frozen=True)
class MySQL:
    """The MySQL/MariaDB engine (PyMySQL; URL, option file and MYSQL_* variables)."""

    name: str = "mysql"
    starter: Starter = STARTER

    def require_driver(self, what: str) -> None:
        """MissingExtra (exit 2) naming the ``mysql`` extra when PyMySQL is missing."""
        from analytics_cli.engines.mysql.connect import require_pymysql

        require_pymysql(what)

    def readable(self, dsn: str) -> bool:
        """True for a URL with a host, a port or a socket (mysql://?unix_socket=...)."""
        try:
            url = urlsplit(dsn.strip())
            _ = url.port  # raises on a port that is not a number
        except ValueError:
            return False
        return url.port is not None or bool(url.hostname) or "unix_socket=" in url.query

    def passwords(self, dsn: str) -> set[str]:
        """None beyond the URL's own password (which ``dsn`` reads for every URL)."""
        return set()

    def plain_params(self) -> frozenset[str]:
        """The URL's query parameters, none of which holds a secret."""
        from analytics_cli.engines.mysql.params import QUERY_KEYS

        return frozenset(QUERY_KEYS)

    def describe(self, dsn: str) -> str | None:
        """``user@host:port/database`` of the URL; None when it cannot be read."""
        from analytics_cli.dsn import name_of

        try:
            url = urlsplit(dsn)
            parts = (url.username, url.hostname or "localhost", url.port, url.path.lstrip("/"))
        except ValueError:
            return None
        return name_of(unquote(parts[0]) if parts[0] else None, *parts[1:])

    def identity(self, dsn: str) -> Identity:
        """Host, port, database and user, the option file and MYSQL_* variables filling what
        the URL leaves out (``store`` only when it cannot be read)."""
        from analytics_cli.dsn import describe
        from analytics_cli.engines.mysql.params import parse
        from analytics_cli.errors import ConfigError

        try:
            params = parse(dsn)
        except (ConfigError, OSError, ValueError):
            return {"engine": self.name, "store": describe(dsn)}
        found = {
            "engine": self.name,
            "host": params.host,
            "port": str(params.port),
            "dbname": params.database,
            "user": params.user or "",
        }
        if params.unix_socket:
            found["socket"] = params.unix_socket
        return found

    def grant_hint(self, what: str, privileges: str, table: str, dsn: str | None) -> str:
        """The GRANT on ``database.table`` for the URL's account."""
        from analytics_cli.engines.mysql.connect import grant_hint

        return grant_hint(what, privileges, table, dsn or "")

    def session(self, dsn: str, settings: Settings, job: Job) -> AbstractContextManager[Any]:
        """A PyMySQL session for one job; a read-only one is a consistent snapshot."""
        from analytics_cli.engines.mysql.connect import session

        return session(dsn, settings, job)

    def open_source(self, dsn: str, settings: Settings) -> Source:
        """The snapshot source: CONSISTENT SNAPSHOT, READ ONLY, one connection."""
        from analytics_cli.engines.mysql.snapshot import MySQLSource

        return MySQLSource(dsn, settings)

    def store(self, conn: Any, settings: Settings) -> Store:
        """The Store on an open session: the platform's own table (the ir-engine layout)."""
        from analytics_cli.engines.mysql.store import MySQLStore

        return MySQLStore(conn, settings)


ENGINE = MySQL()
