"""Tools the suite needs beside Python: skipped where missing, failed where required.

A test that needs a program this machine lacks is skipped with the reason, unless
``ANALYTICS_REQUIRE_<NAME>=1`` (CI sets every one) turns the skip into a failure: in CI a
missing server must fail the run, never pass it silently.

The switches are read once, when this module is imported (tests/conftest.py imports it
first): the autouse ``clean_env`` fixture deletes every ``ANALYTICS_*`` variable before each
test, so a switch read inside a test would always look unset.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

# Switch name -> what it makes required (.ci/run sets them all).
SWITCHES = {
    "MARIADB": "mariadbd and mariadb-install-db (the MySQL source and store tests)",
    "PGBOUNCER": "pgbouncer (tests/deploy/test_poolers.py)",
    "CRON": "crontab (the shipped crontab's check)",
    "CHROMIUM": "chromium (report --html in a browser)",
    "SYSTEMD": "systemd-analyze (the systemd unit and timer checks)",
    "PROMETHEUS": "promtool, prometheus, node_exporter, alertmanager and amtool (alerting)",
}
REQUIRED = frozenset(
    name for name in SWITCHES if os.environ.get(f"ANALYTICS_REQUIRE_{name}") == "1"
)


def required(switch: str) -> bool:
    """True when ANALYTICS_REQUIRE_<switch>=1 was set when the suite started."""
    if switch not in SWITCHES:
        raise KeyError(f"no ANALYTICS_REQUIRE_{switch} switch (known: {', '.join(SWITCHES)})")
    return switch in REQUIRED


def unavailable(switch: str, reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when the switch makes the tool required."""
    if required(switch):
        pytest.fail(f"{reason}; ANALYTICS_REQUIRE_{switch}=1 makes it required", pytrace=False)
    pytest.skip(reason)


def binary(switch: str, name: str, package: str) -> str:
    """The path of program ``name`` on PATH; else skip (or fail, when required)."""
    found = shutil.which(name)
    if found is None:
        unavailable(switch, f"{name} is not installed (apt-get install {package})")
    return found
