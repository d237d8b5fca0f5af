"""The ir-engine layout: collecting into the platform's own analytics table, and reading it back."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics_cli.timeutil import floor_slot, iso, utcnow
from tests import platform_data
from tests.conftest import Databases, cli, proc_env, spawn
from tests.helpers import write_config

AT = "2026-11-29T10:10:00Z"  # inside the slot starting at platform_data.SLOT
SLOT = platform_data.SLOT
INTERVAL = timedelta(minutes=30)
ODD = timedelta(minutes=7, seconds=13, microseconds=250000)  # the old collector's offset
BUILTINS = list(platform_data.EXPECTED)
NOTICE = (
    "table analytics has the iR Engine layout (id uuid, count integer, type varchar(255), "
    '"createdAt", "updatedAt"): reading and writing it in that layout '
    '(set [store] layout = "ir-engine" to say so in the config)\n'
)

# What the platform's old collector left behind: rows at arbitrary times, not on slot starts.
OLD_ROWS = [
    ("activeInstances", 4, SLOT - INTERVAL + ODD),
    ("activeInstances", 6, SLOT - 2 * INTERVAL + ODD),
    ("instanceUsers", 11, SLOT - INTERVAL + ODD),
    ("activeChannels", 25, SLOT - INTERVAL + ODD),  # every channel ever created, then
]


def old_id(index: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-cli-test:old-collector:{index}")


def add_old_rows(dbs: Databases, rows: list[tuple[str, int, datetime]]) -> None:
    with dbs.source_conn() as conn:
        for index, (type_, count, created) in enumerate(rows):
            conn.execute(
                'INSERT INTO analytics (id, count, type, "createdAt", "updatedAt") '
                "VALUES (%s, %s, %s, %s, %s)",
                (old_id(index), count, type_, created, created),
            )


@pytest.fixture
def ir(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """The hand-counted platform plus old-collector rows; source and store are one database."""
    with dbs.source_conn() as conn:
        platform_data.load(conn)
    add_old_rows(dbs, OLD_ROWS)
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.source)
    return dbs


def rows(dbs: Databases) -> list[tuple[Any, ...]]:
    with dbs.source_conn() as conn:
        return conn.execute(
            'SELECT id, type, count, "createdAt", "updatedAt" FROM analytics '
            'ORDER BY "createdAt", type, id'
        ).fetchall()


def at_slot(dbs: Databases, slot: datetime) -> dict[str, tuple[Any, ...]]:
    found = [r for r in rows(dbs) if r[3] == slot]
    assert len({r[1] for r in found}) == len(found), "two rows of one type in a slot"
    return {r[1]: r for r in found}


def definition(dbs: Databases) -> dict[str, Any]:
    """The analytics table as the catalog describes it: everything an ALTER could change."""
    queries = {
        "class": "SELECT relkind, relpersistence, reloptions, relacl::text, relowner::regrole::text, "
        "relrowsecurity, relhasrules, relhastriggers, relreplident "
        "FROM pg_class WHERE oid = 'analytics'::regclass",
        "columns": "SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), "
        "a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, "
        "a.attcollation::regcollation::text, a.attstattarget, a.attacl::text, "
        "col_description(a.attrelid, a.attnum) "
        "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
        "AND d.adnum = a.attnum WHERE a.attrelid = 'analytics'::regclass AND a.attnum > 0 "
        "ORDER BY a.attnum",
        "constraints": "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'analytics'::regclass ORDER BY conname",
        "indexes": "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = 'analytics'::regclass ORDER BY 1",
        "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = 'analytics'::regclass ORDER BY tgname",
        "rules": "SELECT rulename, pg_get_ruledef(oid) FROM pg_rewrite "
        "WHERE ev_class = 'analytics'::regclass ORDER BY rulename",
        "policies": "SELECT polname FROM pg_policy WHERE polrelid = 'analytics'::regclass",
        "comment": "SELECT obj_description('analytics'::regclass, 'pg_class')",
        "dependents": "SELECT classid::regclass::text, objid FROM pg_depend "
        "WHERE refobjid = 'analytics'::regclass AND deptype <> 'i' ORDER BY 1, 2",
        "relations": "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname ILIKE '%analytics%' ORDER BY 1",
    }
    with dbs.source_conn() as conn:
        return {name: conn.execute(q).fetchall() for name, q in queries.items()}  # type: ignore[call-overload]


SCHEMA_DEFINITION = {
    "columns": [
        (1, "id", "uuid", True, None, "", "", "-", None, None, None),
        (2, "count", "integer", False, None, "", "", "-", None, None, None),
        (3, "type", "character varying(255)", False, None, "", "", '"default"', None, None, None),
        (4, "createdAt", "timestamp with time zone", True, None, "", "", "-", None, None, None),
        (5, "updatedAt", "timestamp with time zone", True, None, "", "", "-", None, None, None),
    ],
    "constraints": [("analytics_pkey", "p", "PRIMARY KEY (id)")],
    "indexes": [
        (
            "analytics_pkey",
            "CREATE UNIQUE INDEX analytics_pkey ON public.analytics USING btree (id)",
        )
    ],
    "triggers": [],
    "rules": [],
    "policies": [],
    "comment": [(None,)],
    "relations": [("analytics",), ("analytics_pkey",)],
}


def check_definition(got: dict[str, Any]) -> None:
    """The fixture's table is what ir_engine_schema.sql creates (so the comparison has teeth)."""
    for key, expected in SCHEMA_DEFINITION.items():
        value = got[key]
        if key == "columns":
            # attstattarget is -1 on older servers and NULL on PostgreSQL 17.
            value = [(*c[:8], None, *c[9:]) for c in value]
        if key == "constraints":
            # PostgreSQL 18 lists NOT NULL as constraints too; older servers do not.
            value = [c for c in value if c[1] != "n"]
        assert value == expected, key


# ---------------------------------------------------------------------------- collect


def test_a_cycle_adds_exactly_one_row_per_metric(ir: Databases) -> None:
    before_def = definition(ir)
    check_definition(before_def)
    before = rows(ir)
    result = cli("collect", "--at", AT, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == NOTICE + (
        "collect slot=2026-11-29T10:00:00Z stored=9 present=0 failed=0"
        + result.stderr.split("failed=0", 1)[1]
    )
    assert result.stderr.count("iR Engine layout") == 1
    report = json.loads(result.stdout)
    assert {m["type"]: (m["status"], m["count"]) for m in report["metrics"]} == {
        t: ("stored", n) for t, n in platform_data.EXPECTED.items()
    }
    after = rows(ir)
    assert [r for r in after if r in before] == before  # the old rows are untouched
    new = at_slot(ir, SLOT)
    assert len(after) == len(before) + len(BUILTINS)
    assert {t: r[2] for t, r in new.items()} == platform_data.EXPECTED
    collected_at = datetime.fromisoformat(report["collected_at"])
    for type_, (id_, _, count, created, updated) in new.items():
        assert isinstance(id_, uuid.UUID) and id_.version == 4, type_
        assert isinstance(count, int)
        assert created == SLOT
        assert updated == collected_at
    assert len({r[0] for r in after}) == len(after)
    assert definition(ir) == before_def


def test_a_second_run_and_eight_concurrent_runs_add_nothing(ir: Databases) -> None:
    before_def = definition(ir)
    first = cli("collect", "--at", AT)
    assert first.exit_code == 0, first.stderr
    after_first = rows(ir)
    second = cli("collect", "--at", AT, "--json")
    assert second.exit_code == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["note"] == "slot already collected"
    assert [m["status"] for m in report["metrics"]] == ["present"] * len(BUILTINS)
    assert rows(ir) == after_first

    # Eight real processes race for the next slot. The table is held against writes until
    # all eight wait on a lock, so every one of them gets as far as it can before any row
    # lands: only the slot's lock and the check after it keep the rows single.
    env = proc_env(ANALYTICS_SOURCE_DSN=ir.source, ANALYTICS_STORE_DSN=ir.source)
    with psycopg.connect(ir.source) as holder, ir.source_conn() as watcher:
        holder.execute("LOCK TABLE analytics IN SHARE ROW EXCLUSIVE MODE")
        procs = [
            spawn("collect", "--at", "2026-11-29T10:40:00Z", "--json", env=env) for _ in range(8)
        ]
        for _ in range(1200):
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'analytics-cli' "
                "AND wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()
            if waiting == (8,) or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.05)
        assert waiting == (8,), [p.communicate() for p in procs if p.poll() is not None]
    outputs = [(p.wait(timeout=120), *p.communicate(timeout=120)) for p in procs]
    assert [code for code, _, _ in outputs] == [0] * 8, [err for _, _, err in outputs]
    statuses = sorted(
        tuple(sorted({m["status"] for m in json.loads(out)["metrics"]})) for _, out, _ in outputs
    )
    assert statuses == [("present",)] * 7 + [("stored",)]
    slot2 = SLOT + INTERVAL
    assert len(at_slot(ir, slot2)) == len(BUILTINS)
    assert len(rows(ir)) == len(after_first) + len(BUILTINS)
    assert definition(ir) == before_def


def test_replace_updates_the_rows_in_place(ir: Databases) -> None:
    before_def = definition(ir)
    assert cli("collect", "--at", AT).exit_code == 0
    first = at_slot(ir, SLOT)
    old_time = datetime(2020, 1, 1, tzinfo=UTC)
    with ir.source_conn() as conn:
        # Spoil the stored values so the replacement is visible.
        conn.execute(
            'UPDATE analytics SET count = count + 100, "updatedAt" = %s WHERE "createdAt" = %s',
            (old_time, SLOT),
        )
    result = cli("collect", "--at", AT, "--replace", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {m["type"]: m["status"] for m in report["metrics"]} == dict.fromkeys(
        BUILTINS, "replaced"
    )
    second = at_slot(ir, SLOT)
    assert {t: r[0] for t, r in second.items()} == {t: r[0] for t, r in first.items()}
    assert {t: r[2] for t, r in second.items()} == platform_data.EXPECTED
    collected_at = datetime.fromisoformat(report["collected_at"])
    assert {r[4] for r in second.values()} == {collected_at}
    assert collected_at > old_time
    assert len(rows(ir)) == len(OLD_ROWS) + len(BUILTINS)
    assert definition(ir) == before_def


def test_counts_the_integer_column_cannot_hold_fail_alone(ir: Databases, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        '[store]\nlayout = "ir-engine"\n\n'
        '[[metric]]\ntype = "cpuCores"\nsql = "SELECT 2.5 AS count"\n\n'
        '[[metric]]\ntype = "bigNumber"\nsql = "SELECT 3000000000 AS count"\n\n'
        '[[metric]]\ntype = "wholeNumber"\nsql = "SELECT 7.000 AS count"\n',
    )
    before_def = definition(ir)
    result = cli(
        "--config", str(config), "collect", "--at", AT, "--json",
        "--only", "cpuCores", "--only", "bigNumber", "--only", "wholeNumber",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "iR Engine layout" not in result.stderr  # configured, so nothing to announce
    report = json.loads(result.stdout)
    assert report["metrics"] == [
        {
            "type": "cpuCores",
            "status": "failed",
            "count": None,
            "error": "count 2.5 is not a whole number; the iR Engine analytics table "
            "stores integers",
        },
        {
            "type": "bigNumber",
            "status": "failed",
            "count": None,
            "error": "count 3000000000 does not fit the iR Engine analytics table's integer "
            "column (-2147483648 to 2147483647)",
        },
        {"type": "wholeNumber", "status": "stored", "count": 7},
    ]
    assert {t: r[2] for t, r in at_slot(ir, SLOT).items()} == {"wholeNumber": 7}
    assert definition(ir) == before_def


def test_a_dimensional_metric_is_refused_before_anything_runs(
    ir: Databases, tmp_path: Path
) -> None:
    before = rows(ir)
    before_def = definition(ir)
    result = cli(
        "collect", "--at", AT, "--only", "activeInstances", "--only", "instanceUsersByLocation"
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == NOTICE + (
        "error: metric 'instanceUsersByLocation' has dimensions, which the iR Engine analytics "
        'table (id uuid, count integer, type varchar(255), "createdAt", "updatedAt") cannot '
        "store; nothing was collected\n"
        "hint: remove its dimensions, or store into an analytics-cli table: "
        'set [store] table = "analytics_cli" (and remove [store] layout)\n'
    )
    assert rows(ir) == before
    # Configured explicitly, the same refusal; and config check says it too.
    config = write_config(
        tmp_path / "c.toml",
        '[store]\nlayout = "ir-engine"\n\n[collect]\n'
        'metrics = ["activeInstances", "instanceUsersByLocation"]\n',
    )
    for args in (["collect", "--at", AT], ["config", "check"]):
        again = cli("--config", str(config), *args)
        assert again.exit_code == 2, args
        assert again.stderr.startswith("error: metric 'instanceUsersByLocation' has dimensions"), (
            again.stderr
        )
    assert rows(ir) == before
    assert definition(ir) == before_def


def test_layout_mismatches_are_configuration_errors(
    ir: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native = write_config(tmp_path / "native.toml", '[store]\nlayout = "native"\n')
    result = cli("--config", str(native), "collect", "--at", AT)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: table 'analytics' is the iR Engine's own analytics table (id uuid, count "
        'integer, type varchar(255), "createdAt", "updatedAt") but [store] layout is "native"; '
        "it was left untouched\n"
        'hint: set [store] layout = "ir-engine" to collect into it, or point [store] table at '
        'another name, for example table = "analytics_cli"\n'
    )
    # layout = "ir-engine" where the table does not exist: refused, nothing created.
    ir_config = write_config(tmp_path / "ir.toml", '[store]\nlayout = "ir-engine"\n')
    monkeypatch.setenv("ANALYTICS_STORE_DSN", ir.store)
    missing = cli("--config", str(ir_config), "collect", "--at", AT)
    assert missing.exit_code == 2
    assert missing.stderr.startswith(
        "error: [store] layout is \"ir-engine\" but table 'analytics' does not exist\n"
    )
    with ir.store_conn() as conn:
        assert conn.execute("SELECT to_regclass('analytics')").fetchone() == (None,)
    bad = write_config(tmp_path / "bad.toml", '[store]\nlayout = "dashboard"\n')
    wrong = cli("--config", str(bad), "collect")
    assert wrong.exit_code == 2
    assert wrong.stderr == (
        f"error: {bad}: store.layout must be one of auto, native, ir-engine, got 'dashboard'\n"
    )
    # Auto on an empty store: the native table is created, as always, without a notice.
    auto = cli("collect", "--at", AT, "--only", "activeInstances")
    assert auto.exit_code == 0, auto.stderr
    assert "iR Engine" not in auto.stderr
    with ir.store_conn() as conn:
        assert conn.execute("SELECT type, count FROM analytics").fetchall() == [
            ("activeInstances", 7)
        ]
    assert len(rows(ir)) == len(OLD_ROWS)


# ---------------------------------------------------------------------------- reading back


def test_show_and_export_include_old_and_new_rows(ir: Databases) -> None:
    collect = cli("collect", "--at", AT, "--only", "activeInstances", "--only", "instanceUsers")
    assert collect.exit_code == 0, collect.stderr
    new = at_slot(ir, SLOT)
    result = cli("export", "--format", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == NOTICE
    got = [json.loads(line) for line in result.stdout.splitlines()]

    def row(type_: str, count: int, ts: datetime, collected: datetime) -> dict[str, Any]:
        return {
            "type": type_,
            "count": count,
            "timestamp": iso(ts),
            "metadata": {},
            "collected_at": iso(collected),
        }

    stamp = {t: r[4] for t, r in new.items()}
    # Export streams by time, then type.
    assert got == [
        row("activeInstances", 6, SLOT - 2 * INTERVAL + ODD, SLOT - 2 * INTERVAL + ODD),
        row("activeChannels", 25, SLOT - INTERVAL + ODD, SLOT - INTERVAL + ODD),
        row("activeInstances", 4, SLOT - INTERVAL + ODD, SLOT - INTERVAL + ODD),
        row("instanceUsers", 11, SLOT - INTERVAL + ODD, SLOT - INTERVAL + ODD),
        row("activeInstances", 7, SLOT, stamp["activeInstances"]),
        row("instanceUsers", 2, SLOT, stamp["instanceUsers"]),
    ]
    csv = cli("export", "--type", "activeInstances", "--since", "2026-11-29T09:00:00Z")
    assert csv.exit_code == 0, csv.stderr
    assert csv.stdout.splitlines() == [
        "type,count,timestamp,metadata,collected_at",
        "activeInstances,6,2026-11-29T09:07:13.25Z,{},2026-11-29T09:07:13.25Z",
        "activeInstances,4,2026-11-29T09:37:13.25Z,{},2026-11-29T09:37:13.25Z",
        f"activeInstances,7,2026-11-29T10:00:00Z,{{}},{iso(stamp['activeInstances'])}",
    ]
    shown = cli(
        "show", "activeInstances", "--format", "json",
        "--since", "2026-11-29T00:00:00Z", "--until", "2026-11-30T00:00:00Z",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout) == [
        {k: v for k, v in r.items() if k != "collected_at"}
        for r in got
        if r["type"] == "activeInstances"
    ]
    bucketed = cli(
        "show", "activeInstances", "--format", "json", "--bucket", "1h", "--agg", "max",
        "--since", "2026-11-29T00:00:00Z", "--until", "2026-11-30T00:00:00Z",
    )  # fmt: skip
    assert bucketed.exit_code == 0, bucketed.stderr
    assert json.loads(bucketed.stdout) == [
        {"type": "activeInstances", "timestamp": "2026-11-29T09:00:00Z", "count": 6},
        {"type": "activeInstances", "timestamp": "2026-11-29T10:00:00Z", "count": 7},
    ]
    overview = cli("show", "--since", "2026-11-29T00:00:00Z", "--until", "2026-11-30T00:00:00Z")
    assert overview.exit_code == 0, overview.stderr
    lines = {line.split()[0]: line.split() for line in overview.stdout.splitlines() if line}
    assert lines["activeInstances"][1] == "7"
    assert lines["activeChannels"][1] == "25"
    assert lines["instanceUsers"][1] == "2"


# ---------------------------------------------------------------------------- operations


def test_status_reads_old_and_new_rows(ir: Databases) -> None:
    current = floor_slot(utcnow(), INTERVAL)
    # The old collector's rows of the last hours (one slot missed), then one cycle now.
    old = [("activeInstances", k, current - k * INTERVAL + ODD) for k in range(1, 11) if k != 4]
    with ir.source_conn() as conn:
        conn.execute("DELETE FROM analytics")
    add_old_rows(ir, old)
    collect = cli("collect", "--only", "activeInstances", "--only", "chatMessages")
    assert collect.exit_code == 0, collect.stderr
    result = cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == NOTICE
    report = json.loads(result.stdout)
    assert report["table_exists"] is True
    assert report["stale"] is False
    assert report["newest"] == iso(current)
    by_type = {m["type"]: m for m in report["metrics"]}
    assert by_type["activeInstances"]["latest"] == iso(current)
    assert by_type["activeInstances"]["expected_slots"] == 10
    assert by_type["activeInstances"]["missing"] == [iso(current - 4 * INTERVAL)]
    assert by_type["chatMessages"]["latest"] == iso(current)
    assert by_type["chatMessages"]["missing"] == []
    assert by_type["instanceUsers"]["latest"] is None


def test_prune_deletes_old_rows_of_either_collector(ir: Databases) -> None:
    before_def = definition(ir)
    current = floor_slot(utcnow(), INTERVAL)
    day = timedelta(days=1)
    with ir.source_conn() as conn:
        conn.execute("DELETE FROM analytics")
    # Always before "now - k days", whatever the time within the current slot.
    add_old_rows(ir, [("activeInstances", k, current - k * day - ODD) for k in range(12)])
    assert cli("collect", "--only", "activeInstances").exit_code == 0
    dry = cli("prune", "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.startswith("would delete 5 rows older than ")
    done = cli("prune", "--older-than", "7d", "--yes", "--batch-size", "2")
    assert done.exit_code == 0, done.stderr
    assert done.stderr == NOTICE
    assert done.stdout.startswith("deleted 5 rows older than ")
    assert done.stdout.endswith(" from table analytics (3 batches)\n")
    left = rows(ir)
    assert [r[2] for r in left if r[3] != current] == [6, 5, 4, 3, 2, 1, 0]
    assert [(r[1], r[2]) for r in left if r[3] == current] == [("activeInstances", 7)]
    assert definition(ir) == before_def


def test_textfile_reads_an_already_collected_slot(ir: Databases, tmp_path: Path) -> None:
    assert cli("collect", "--at", AT, "--only", "activeInstances").exit_code == 0
    prom = tmp_path / "analytics.prom"
    again = cli("collect", "--at", AT, "--only", "activeInstances", "--textfile", str(prom))
    assert again.exit_code == 0, again.stderr
    assert 'analytics_metric{type="activeInstances"} 7\n' in prom.read_text()


def test_counts_are_decimal_in_reads(ir: Databases) -> None:
    # The integer column is read as numeric, like the native layout's count.
    from analytics_cli import history
    from analytics_cli.config.load import load
    from analytics_cli.engines.shapes import Selection

    settings = load(None, env={"ANALYTICS_DSN": ir.source}, discover=False)
    data = history.show_data(
        settings,
        Selection(settings.table, SLOT - 3 * INTERVAL, SLOT + INTERVAL, ("activeInstances",)),
        series=True,
        summary=False,
    )
    # Each point is a slot (its start) and the sum of the slot's rows.
    assert [(p.timestamp, p.count) for p in data.points] == [
        (SLOT - 2 * INTERVAL, Decimal(6)),
        (SLOT - INTERVAL, Decimal(4)),
    ]
