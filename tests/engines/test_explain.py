"""`config check --explain` on a real platform large enough for sequential scans to matter."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_cli.engines.postgresql.snapshot import suggest_index
from tests.conftest import Databases, cli
from tests.metric_definitions import POSTGRESQL

ATTENDANCE_COLUMNS = ["id", "sceneId", "isChannel", "ended", "userId", "instanceId", "createdAt"]


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        (
            '((NOT ended) AND (NOT "isChannel"))',
            'CREATE INDEX CONCURRENTLY ON "instance-attendance" ("isChannel") WHERE ended = false',
        ),
        (
            '((ended = false) AND ("isChannel" = true))',
            'CREATE INDEX CONCURRENTLY ON "instance-attendance" ("isChannel") WHERE ended = false',
        ),
        (
            '(("createdAt" > ($1 - \'24:00:00\'::interval)) AND ("createdAt" <= $1))',
            'CREATE INDEX CONCURRENTLY ON "instance-attendance" ("createdAt")',
        ),
        (
            "(NOT ended)",
            'CREATE INDEX CONCURRENTLY ON "instance-attendance" ("userId") WHERE ended = false',
        ),
        ("", None),
        ("(length(name) > 3)", None),
    ],
)
def test_suggest_index(filter_text: str, expected: str | None) -> None:
    assert suggest_index("instance-attendance", ATTENDANCE_COLUMNS, filter_text) == expected


def test_explain_flags_sequential_scans_and_creates_nothing(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with dbs.source_conn() as conn:
        conn.execute(
            'INSERT INTO "instance-attendance" (id, "isChannel", ended, "createdAt", "updatedAt") '
            "SELECT gen_random_uuid(), g % 2 = 0, g % 100 <> 0, now() - g * interval '1 minute', now() "
            "FROM generate_series(1, 120000) g"
        )
        conn.execute('ANALYZE "instance-attendance"')
        indexes_before = conn.execute("SELECT count(*) FROM pg_indexes").fetchone()
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    # The single-statement definition beside the pack's fused query (which has an OR).
    config = tmp_path / "c.toml"
    config.write_text(
        '[[metric]]\ntype = "worldUsers"\nsql = """' + POSTGRESQL["instanceUsers"] + '"""\n'
    )
    result = cli("-c", str(config), "config", "check", "--explain")
    assert result.exit_code == 0, result.stderr
    assert "plans (EXPLAIN ANALYZE, read-only; the tool never creates indexes):" in result.stdout
    lines = result.stdout.splitlines()

    def plan_of(metric: str) -> list[str]:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"  {metric}: cost "))
        end = next(
            (i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines)
        )
        return lines[start + 1 : end]

    fused = plan_of("instanceUsers")
    assert fused[0].startswith("    sequential scan on 'instance-attendance' (")
    assert not any("index that would help" in line for line in fused)
    users = plan_of("worldUsers")
    assert users[0].startswith("    sequential scan on 'instance-attendance' (")
    assert users[1] == (
        '    index that would help: CREATE INDEX CONCURRENTLY ON "instance-attendance" '
        '("isChannel") WHERE ended = false;'
    )
    # The instance table is empty: small tables are not flagged.
    assert plan_of("activeInstances") == []
    with dbs.source_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_indexes").fetchone() == indexes_before
    with dbs.store_conn() as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone() == (0,)
