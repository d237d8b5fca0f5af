"""The ANALYTICS_REQUIRE_* guards themselves: with a tool hidden, a required one fails the
run and one not required is skipped, even after clean_env has emptied the environment."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import required
from tests.conftest import proc_env

ROOT = Path(__file__).resolve().parents[2]

# Each guard as the suite uses it, collected from a file outside tests/ so that only these
# run. clean_env is imported too: autouse, it deletes ANALYTICS_* before each test, as in
# the suite. MariaDB's programs are also looked for in /usr/sbin: hidden by patching.
TINY = """
import pytest

from tests import mariadb_server
from tests.chromium import browser
from tests.conftest import clean_env
from tests.mariadb_server import mariadb
from tests.pgbouncer_server import pgbouncer
from tests.ops.test_cron import (
    test_crontab_is_accepted_by_crontab_command,
    test_systemd_calendar_fires_at_00_and_30,
)


def test_chromium(browser):
    pass


def test_pgbouncer(pgbouncer):
    pass


def test_mariadb(monkeypatch, request):
    monkeypatch.setattr(mariadb_server, "_binary", lambda name: None)
    request.getfixturevalue("mariadb")
"""
# (test, switch) of every guard above; pgbouncer's fixture runs once per pool mode.
GUARDS = [
    ("test_chromium", "CHROMIUM"),
    ("test_pgbouncer[transaction]", "PGBOUNCER"),
    ("test_pgbouncer[session]", "PGBOUNCER"),
    ("test_mariadb", "MARIADB"),
    ("test_crontab_is_accepted_by_crontab_command", "CRON"),
    ("test_systemd_calendar_fires_at_00_and_30", "SYSTEMD"),
]


def run_tiny(tmp_path: Path, switches: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_tiny.py").write_text(TINY)
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = proc_env(
        PATH=str(empty),  # no crontab, systemd-analyze or chromium on it
        PYTHONPATH=str(ROOT),
        ANALYTICS_PGBOUNCER=str(empty / "pgbouncer"),
        **switches,
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "test_tiny.py"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def test_required_tools_that_are_missing_fail_the_run(tmp_path: Path) -> None:
    done = run_tiny(tmp_path, {f"ANALYTICS_REQUIRE_{s}": "1" for s in required.SWITCHES})
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    # MariaDB's fixture is asked for in the test's body: a failure, not a setup error.
    assert re.search(r"\b3 failed, 3 errors\b", out), out
    assert "skipped" not in out, out
    lines = out.splitlines()
    for test, switch in GUARDS:
        assert any(ln.startswith((f"FAILED test_tiny.py::{test}", f"ERROR test_tiny.py::{test}"))
                   for ln in lines), (test, out)  # fmt: skip
        assert f"ANALYTICS_REQUIRE_{switch}=1 makes it required" in out, (switch, out)


def test_missing_tools_that_are_not_required_are_skipped(tmp_path: Path) -> None:
    done = run_tiny(tmp_path, {})
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(r"\b6 skipped\b", out), out
    for reason in (
        "chromium is not installed (apt-get install chromium)",
        f"pgbouncer is not installed ({tmp_path / 'bin' / 'pgbouncer'})",
        "mariadb-install-db not found (apt-get install mariadb-server)",
        "crontab is not installed (apt-get install cron)",
        "systemd-analyze is not installed (apt-get install systemd)",
    ):
        assert reason in out, (reason, out)


def test_ci_sets_every_switch() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    for switch in required.SWITCHES:
        assert f"export ANALYTICS_REQUIRE_{switch}=1\n" in script, switch
    named = set(re.findall(r"ANALYTICS_REQUIRE_([A-Z]+)", script))
    assert named == set(required.SWITCHES)


def test_an_unknown_switch_is_a_mistake() -> None:
    with pytest.raises(KeyError, match="no ANALYTICS_REQUIRE_MYSQL switch"):
        required.required("MYSQL")
