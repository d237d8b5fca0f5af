import json

import pytest

from tests.conftest import Databases, cli


def test_collect_stores_every_builtin(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    result = cli("collect", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [m["status"] for m in report["metrics"]] == ["stored"] * 9
    again = cli("collect", "--json")
    assert again.exit_code == 0
    assert [m["status"] for m in json.loads(again.stdout)["metrics"]] == ["present"] * 9
