"""MariaDB or MySQL: the few names and statements that differ between them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Flavor:
    """MariaDB or MySQL: the few names and statements that differ between them."""

    mariadb: bool
    version: str

    @property
    def name(self) -> str:
        """``MariaDB`` or ``MySQL``."""
        return "MariaDB" if self.mariadb else "MySQL"

    @property
    def read_only_variable(self) -> str:
        """The session variable that says read-only (MySQL 8 dropped ``tx_read_only``)."""
        return "@@tx_read_only" if self.mariadb else "@@transaction_read_only"

    @property
    def isolation_variable(self) -> str:
        """The session variable that holds the isolation level."""
        return "@@tx_isolation" if self.mariadb else "@@transaction_isolation"

    def timeout_statement(self, limit: timedelta) -> str:
        """Limit every statement of the session: MariaDB in seconds, MySQL 8 in ms (SELECT only)."""
        if self.mariadb:
            return f"SET SESSION max_statement_time = {max(limit.total_seconds(), 0.001):.3f}"
        return f"SET SESSION max_execution_time = {max(1, round(limit.total_seconds() * 1000)):d}"

    def is_timeout(self, code: int) -> bool:
        """True for the error a statement past its time limit ends with."""
        return code == (1969 if self.mariadb else 3024)

    @property
    def explain_prefix(self) -> str:
        """MariaDB's ANALYZE runs the query and times it; MySQL's JSON plan only estimates."""
        return "ANALYZE FORMAT=JSON " if self.mariadb else "EXPLAIN FORMAT=JSON "


def flavor_of(version: str, comment: str) -> Flavor:
    """Tell MariaDB from MySQL by ``VERSION()`` and ``@@version_comment``."""
    mariadb = "mariadb" in version.lower() or "mariadb" in comment.lower()
    return Flavor(mariadb, version)
