"""The engine registry: one engine per connection string, chosen from its scheme alone,
without loading any driver."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analytics_cli.dsn import all_engines, default_engine, engine_for, engine_named


@pytest.mark.parametrize(
    ("dsn", "engine"),
    [
        ("mysql://u:p@db:3306/platform", "mysql"),
        ("MariaDB://u@db/platform", "mysql"),
        ("mysql+pymysql://u@db/platform", "mysql"),
        ("  mariadb+mysqldb://u@db/platform", "mysql"),
        ("postgresql://u@db/platform", "postgresql"),
        ("postgres://u@db/platform", "postgresql"),
        ("host=db dbname=platform user=u", "postgresql"),
        # A typo of a scheme is libpq's business: it then says what it cannot read.
        ("mysq://u@db/platform", "postgresql"),
        ("", "postgresql"),
        (None, "postgresql"),
    ],
)
def test_engine_for_reads_the_scheme(dsn: str | None, engine: str) -> None:
    assert engine_for(dsn).name == engine


def test_every_engine_once_the_default_first() -> None:
    assert [e.name for e in all_engines()] == ["postgresql", "mysql"]
    assert default_engine() is engine_for("host=db")
    assert engine_named("mysql") is engine_for("mariadb://db/x")


def test_choosing_an_engine_loads_no_driver() -> None:
    """`--help`, a config check and the redaction choose engines: no driver comes with that."""
    code = (
        "import sys\n"
        "from analytics_cli.dsn import describe, engine_for\n"
        "names = [engine_for(d).name for d in ('mysql://u@h/d', 'host=h', None)]\n"
        "drivers = sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'pymysql'))\n"
        "print(names, drivers, describe('mysql://u:secret@h:3306/d'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == "['mysql', 'postgresql', 'postgresql'] [] u@h:3306/d\n"
    assert done.stderr == ""
