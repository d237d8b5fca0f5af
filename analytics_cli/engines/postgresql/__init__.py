"""PostgreSQL: connection strings, connecting, the snapshot, the store, the embedded server.

``ENGINE`` is what the registry in ``analytics_cli.dsn`` hands out. psycopg is imported
only inside its methods: choosing the engine (``--help``, a config check) loads no driver.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.base import Job, Starter

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings
    from analytics_cli.engines.base import Identity, Source, Store

STARTER = Starter(
    source_example='# dsn = "postgresql://analytics@db.example.com/platform"',
    store_note="""
# The database and table the samples are written to. Defaults to the source database.
# dsn = "postgresql://analytics@db.example.com/metrics"
""",
    metric_note="""
# Custom metrics: one row per cycle each. The query must return exactly one row
# with a numeric column named count. Parameters: %(slot)s (start of the slot,
# timestamptz) and %(interval)s (the interval). Quote camelCase identifiers.
""",
    example_sql=(
        "SELECT count(*) AS count\n"
        'FROM "user"\n'
        'WHERE "isGuest" = false AND "isDeactivated" IS NOT TRUE\n'
    ),
)


@dataclass(frozen=True)
class PostgreSQL:
    """The PostgreSQL engine (psycopg 3, libpq's connection strings)."""

    name: str = "postgresql"
    starter: Starter = STARTER

    def require_driver(self, what: str) -> None:
        """psycopg is a dependency of the package, never missing."""

    def readable(self, dsn: str) -> bool:
        """True when libpq reads ``dsn`` (key=value text or a URI)."""
        try:
            from psycopg.conninfo import conninfo_to_dict

            conninfo_to_dict(dsn)
        except Exception:
            return False
        return True

    def passwords(self, dsn: str) -> set[str]:
        """Every secret parameter libpq reads out of ``dsn``."""
        try:
            from psycopg.conninfo import conninfo_to_dict

            params = conninfo_to_dict(dsn)
        except Exception:
            return set()
        return {str(params[k]) for k in SECRET_PARAMS if params.get(k)}

    def plain_params(self) -> frozenset[str]:
        """libpq's parameter names that hold no secret."""
        return _plain_params()

    def describe(self, dsn: str) -> str | None:
        """``user@host:port/dbname`` as libpq reads ``dsn``; None when it cannot."""
        from analytics_cli.dsn import name_of

        try:
            from psycopg.conninfo import conninfo_to_dict

            params = conninfo_to_dict(dsn)
        except Exception:
            return None
        host = str(params.get("host") or params.get("hostaddr") or "local socket")
        return name_of(params.get("user"), host, params.get("port"), params.get("dbname"))

    def identity(self, dsn: str) -> Identity:
        """Host, port, database and user of ``dsn``, libpq's PG* variables and defaults
        filling what it leaves out (``store`` only when it cannot be read)."""
        from analytics_cli.dsn import describe

        try:
            from psycopg import pq
            from psycopg.conninfo import conninfo_to_dict

            given = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v not in (None, "")}
            defaults = {
                o.keyword.decode(): o.val.decode()
                for o in pq.Conninfo.get_defaults()
                if o.val is not None and o.val != b""
            }
        except Exception:
            # Not readable as a connection string: its redacted description stands for it.
            return {"engine": self.name, "store": describe(dsn)}

        def part(key: str) -> str:
            return given.get(key) or defaults.get(key) or ""

        user = part("user")
        found = {
            "engine": self.name,
            "host": part("host") or part("hostaddr") or "(default socket)",
            "port": part("port") or "5432",
            "dbname": part("dbname") or user,
            "user": user,
        }
        if part("service"):
            found["service"] = part("service")
        return found

    def grant_hint(self, what: str, privileges: str, table: str, dsn: str | None) -> str:
        """The GRANT, naming the database it must be run in."""
        from analytics_cli.engines.postgresql.connect import grant_hint

        return grant_hint(what, privileges, table, dsn)

    def session(self, dsn: str, settings: Settings, job: Job) -> AbstractContextManager[Any]:
        """A psycopg connection for one job (``connect.session``)."""
        from analytics_cli.engines.postgresql.connect import session

        return session(dsn, settings, job)

    def open_source(self, dsn: str, settings: Settings) -> Source:
        """The snapshot source: REPEATABLE READ READ ONLY, a savepoint per metric."""
        from analytics_cli.engines.postgresql.snapshot import PostgresSource

        return PostgresSource(dsn, settings)

    def store(self, conn: Any, settings: Settings) -> Store:
        """The Store on an open session: the native layout or the platform's own table."""
        from analytics_cli.engines.postgresql.store import PostgresStore

        return PostgresStore(conn, settings)


# libpq's parameters that hold a secret.
SECRET_PARAMS = (
    "password",
    "sslpassword",
    "oauth_client_secret",
    "scram_client_key",
    "scram_server_key",
)


@cache
def _plain_params() -> frozenset[str]:
    try:
        from psycopg import pq

        names = {o.keyword.decode() for o in pq.Conninfo.get_defaults()}
    except Exception:
        names = {"host", "hostaddr", "port", "dbname", "user", "connect_timeout", "sslmode"}
    return frozenset(names - set(SECRET_PARAMS))


ENGINE = PostgreSQL()
