"""The MySQL/MariaDB source against a real MariaDB: values, snapshot, hostile metrics, CLI."""

from __future__ import annotations

from analytics_cli.config import Settings
from analytics_cli.metrics import Sample, builtin_metrics
from analytics_cli.sources.base import open_source
from tests import platform_data
from tests.mariadb_server import MySQLPlatform

AT = "2026-11-29T10:10:00Z"


def test_smoke(mysql_platform: MySQLPlatform) -> None:
    with mysql_platform.connect() as conn:
        platform_data.load_mysql(conn)
    specs = [m for m in builtin_metrics() if m.enabled and m.http is None]
    snap = open_source(mysql_platform.url, Settings()).read(specs, platform_data.SLOT)
    values = {o.type: int(o.count) for o in snap.outcomes if isinstance(o, Sample)}
    print(snap.outcomes)
    assert values == platform_data.EXPECTED
