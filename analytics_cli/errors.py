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


class Interrupted(KeyboardInterrupt):
    """Raised from the SIGTERM handler so that open transactions roll back like on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
