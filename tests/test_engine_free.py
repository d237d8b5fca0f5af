"""The commands and the cycle talk to a Store: they never ask which engine is behind it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "analytics_cli"
# The modules above the Store: they get one from engines.stores.open_store and call it.
ENGINE_FREE = (
    "anomalies.py",
    "check.py",
    "grain.py",
    "history.py",
    "migrate.py",
    "monitor.py",
    "prune.py",
    "report.py",
    "rollups.py",
    "status.py",
    *sorted(f"cycle/{p.name}" for p in (PACKAGE / "cycle").glob("*.py")),
)
ASKS = re.compile(r'is_mysql|engine_of\(.*\) *==|== *MYSQL|"postgresql"|\bpsycopg\b|\bpymysql\b')


@pytest.mark.parametrize("name", ENGINE_FREE)
def test_module_never_asks_which_engine(name: str) -> None:
    text = (PACKAGE / name).read_text("utf-8")
    found = [
        f"{name}:{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if ASKS.search(line)
    ]
    assert found == []


def test_the_check_sees_an_engine_question() -> None:
    # The pattern must catch each way the code used to ask.
    for line in (
        "if mysql.is_mysql(conn):",
        "if engine_of(dsn) == MYSQL:",
        'engine = "postgresql"',
        "import psycopg",
        "from pymysql import err",
    ):
        assert ASKS.search(line), line
    assert not ASKS.search("with open_store(settings, doing=doing) as found:")
