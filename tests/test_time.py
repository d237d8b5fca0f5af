"""Time: a metric's own every, backfill of past slots, catch-up after a short outage."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from analytics_cli import config
from analytics_cli.cycle import backfill, plan, run_cycle
from analytics_cli.metrics import enabled_metrics
from analytics_cli.status import status
from tests.conftest import Databases, spawn
from tests.faults.conftest import finish, wait_for
from tests.metric_definitions import POSTGRESQL

T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)


def _settings(tmp: Path, dbs: Databases, body: str, **collect: object) -> config.Settings:
    path = tmp / "c.toml"
    text = "[collect]\nmetrics = []\n" + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in collect.items()
    )
    text += f"[source]\ndsn = {json.dumps(dbs.source)}\n[store]\ndsn = {json.dumps(dbs.store)}\n"
    path.write_text(text + body)
    path.chmod(0o600)
    return config.load(path, env={})


def _rows(dbs: Databases, type_: str) -> list[tuple[datetime, Decimal]]:
    with psycopg.connect(dbs.store) as conn:
        found = conn.execute("SELECT to_regclass('analytics')").fetchone()
        if found is None or found[0] is None:
            return []  # not created yet
        return [
            (r[0], r[1])
            for r in conn.execute(
                'SELECT "timestamp", count FROM analytics WHERE type = %s ORDER BY 1', (type_,)
            )
        ]


HOURLY = '[[metric]]\ntype = "hourly"\nsql = "SELECT 1 AS count"\nevery = "1h"\n'


def test_every_1h_stores_one_row_an_hour_and_makes_up_a_missed_hour(
    dbs: Databases, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, dbs, HOURLY, catch_up="0")
    first = run_cycle(settings, at=T0)
    assert [(r.type, r.status) for r in first.results] == [("hourly", "stored")]
    half = run_cycle(settings, at=T0 + HALF)
    assert [(r.type, r.status) for r in half.results] == [("hourly", "present")]
    # 01:00 is missed; the 01:30 cycle finds the 01:00 slot empty and stores it.
    late = run_cycle(settings, at=T0 + 3 * HALF)
    assert [(r.type, r.status, r.slot) for r in late.results] == [
        ("hourly", "stored", T0 + 2 * HALF)
    ]
    assert [t for t, _ in _rows(dbs, "hourly")] == [T0, T0 + 2 * HALF]
    # At 01:45 the 01:00 row is 45 minutes old: not stale for an hourly metric.
    report = status(settings, now=T0 + 3 * HALF + timedelta(minutes=15))
    (hourly,) = report.metrics
    assert (hourly.latest, hourly.stale, hourly.missing) == (T0 + 2 * HALF, False, ())
    assert hourly.every == timedelta(hours=1)


def test_every_must_be_a_multiple_of_the_interval(dbs: Databases, tmp_path: Path) -> None:
    settings = _settings(tmp_path, dbs, HOURLY.replace('"1h"', '"45m"'))
    try:
        enabled_metrics(settings)
    except Exception as exc:
        assert str(exc) == (
            "metric 'hourly': every = 45m is not a multiple of [collect] interval = 30m"
        )
    else:
        raise AssertionError("every = 45m was accepted")


BACKFILLED = """
[[metric]]
type = "messages"
backfill = true
sql = '''SELECT count(*) AS count FROM message
WHERE "createdAt" > %(slot)s - %(interval)s AND "createdAt" <= %(slot)s'''

[[metric]]
type = "now"
sql = "SELECT count(*) AS count FROM instance WHERE ended = false"
"""


def _messages(dbs: Databases, slots: int) -> None:
    """A message every 7 minutes over the slots, so that counts differ from slot to slot."""
    with psycopg.connect(dbs.source) as conn:
        conn.execute(
            'INSERT INTO message (id, text, "isNotification", "createdAt", "updatedAt") '
            "SELECT gen_random_uuid(), 'm', false, %s + g * interval '7 minutes', now() "
            "FROM generate_series(0, %s) AS g",
            (T0 - HALF, slots * 30 // 7 + 10),
        )


def _independent(dbs: Databases, slot: datetime) -> Decimal:
    with psycopg.connect(dbs.source) as conn:
        row = conn.execute(POSTGRESQL["chatMessages"], {"slot": slot, "interval": HALF}).fetchone()
    assert row is not None
    return Decimal(row[0])


def test_backfill_restores_deleted_slots_exactly_and_never_a_now_metric(
    dbs: Databases, tmp_path: Path
) -> None:
    _messages(dbs, 40)
    settings = _settings(tmp_path, dbs, BACKFILLED, catch_up="0")
    for i in range(40):
        run_cycle(settings, at=T0 + i * HALF)
    before = _rows(dbs, "messages")
    assert len(before) == 40
    deleted = [T0 + i * HALF for i in range(5, 35)]
    with psycopg.connect(dbs.store) as conn:
        conn.execute('DELETE FROM analytics WHERE "timestamp" = ANY(%s)', (deleted,))
    jobs = plan(settings, enabled_metrics(settings), None)
    report = backfill(settings, jobs, since=T0, until=T0 + 39 * HALF)
    assert (report.slots, report.written, report.present, report.failed) == (30, 30, 0, [])
    after = _rows(dbs, "messages")
    assert after == before
    for slot, count in after:
        assert count == _independent(dbs, slot)
    # The "now" metric is never computed for the past.
    assert [t for t, _ in _rows(dbs, "now")] == [t for t, _ in before if t not in deleted]


def test_catch_up_heals_a_short_outage_but_invents_no_history(
    dbs: Databases, tmp_path: Path
) -> None:
    _messages(dbs, 20)
    settings = _settings(tmp_path, dbs, BACKFILLED, catch_up="6h")
    first = run_cycle(settings, at=T0 + 10 * HALF)
    assert first.caught_up == 0  # nothing before the first run is filled in
    # The collector is down for three slots, then back.
    back = run_cycle(settings, at=T0 + 14 * HALF)
    assert back.caught_up == 3
    stored = _rows(dbs, "messages")
    assert [t for t, _ in stored] == [T0 + i * HALF for i in range(10, 15)]
    assert all(c == _independent(dbs, t) for t, c in stored)
    assert [t for t, _ in _rows(dbs, "now")] == [T0 + 10 * HALF, T0 + 14 * HALF]


def test_8_concurrent_backfills_store_each_slot_once(dbs: Databases, tmp_path: Path) -> None:
    _messages(dbs, 48)
    settings = _settings(tmp_path, dbs, BACKFILLED, catch_up="0")
    assert settings.path is not None
    args = (
        "-c",
        str(settings.path),
        "-q",
        "collect",
        "--at",
        "2026-11-30T00:00:00Z",
        "--backfill",
        "1d",
    )
    procs = [spawn(*args) for _ in range(8)]
    results = [finish(p) for p in procs]
    assert [r[0] for r in results] == [0] * 8, [r[2] for r in results]
    rows = _rows(dbs, "messages")
    assert [t for t, _ in rows] == [T0 + i * HALF for i in range(49)]
    assert all(c == _independent(dbs, t) for t, c in rows)


def test_sigterm_mid_backfill_leaves_only_whole_slots(dbs: Databases, tmp_path: Path) -> None:
    _messages(dbs, 48)
    body = BACKFILLED + (
        '[[metric]]\ntype = "slowly"\nbackfill = true\n'
        'sql = "SELECT count(*) AS count FROM pg_sleep(0.2)"\n'
    )
    settings = _settings(tmp_path, dbs, body, catch_up="0")
    assert settings.path is not None
    proc = spawn(
        "-c", str(settings.path), "collect", "--at", "2026-11-30T00:00:00Z", "--backfill", "1d"
    )
    wait_for(lambda: len(_rows(dbs, "slowly")) >= 3, "some backfilled slots")
    os.kill(proc.pid, signal.SIGTERM)
    code, _, _ = finish(proc)
    assert code == 143
    messages = [t for t, _ in _rows(dbs, "messages")]
    slowly = [t for t, _ in _rows(dbs, "slowly")]
    # Each slot's rows were committed together: both metrics, or neither.
    assert messages == slowly
    assert 3 <= len(slowly) < 49
