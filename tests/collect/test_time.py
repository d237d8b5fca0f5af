"""Time: a metric's own every, backfill of past slots, catch-up after a short outage."""

from __future__ import annotations

import json
import os
import signal
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics_cli.config.load import load
from analytics_cli.config.schema import Settings
from analytics_cli.cycle.backfill import backfill
from analytics_cli.cycle.plan import plan
from analytics_cli.cycle.run import run_cycle
from analytics_cli.metrics import enabled_metrics
from analytics_cli.status import status
from tests import platform_data
from tests.conftest import Databases, cli, spawn
from tests.faults.conftest import finish
from tests.helpers import wait_until, write_config
from tests.metric_definitions import POSTGRESQL

T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)


def _settings(
    tmp: Path, dbs: Databases, body: str, *, source: str | None = None, **collect: object
) -> Settings:
    """A config file: [collect] (no built-in metric unless ``metrics`` names some), the test's
    databases (or another ``source``), and ``body``."""
    path = tmp / "c.toml"
    text = "[collect]\n" + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in {"metrics": [], **collect}.items()
    )
    text += f"[source]\ndsn = {json.dumps(source or dbs.source)}\n"
    text += f"[store]\ndsn = {json.dumps(dbs.store)}\n"
    write_config(path, text + body)
    return load(path, env={})


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
            f"{tmp_path / 'c.toml'}: metric 'hourly': every = 45m is not a multiple of "
            "[collect] interval = 30m"
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
    wait_until(lambda: len(_rows(dbs, "slowly")) >= 3, "some backfilled slots")
    os.kill(proc.pid, signal.SIGTERM)
    code, _, _ = finish(proc)
    assert code == 143
    messages = [t for t, _ in _rows(dbs, "messages")]
    slowly = [t for t, _ in _rows(dbs, "slowly")]
    # Each slot's rows were committed together: both metrics, or neither.
    assert messages == slowly
    assert 3 <= len(slowly) < 49


# ---------------------------------------------------------------------------- calendar KPIs

DAY = timedelta(days=1)
SEC = timedelta(seconds=1)
KPI_SLOT = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def _uid(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-cli-test-time:{name}")


def _kpi_rows() -> list[tuple[str, dict[str, Any]]]:
    """Attendance on the edges of the 7- and 30-day windows around KPI_SLOT (S)."""
    users = "ABCDEFG"
    old = KPI_SLOT - 60 * DAY
    out: list[tuple[str, dict[str, Any]]] = [
        ("user", {"id": _uid(u), "name": u, "createdAt": old, "updatedAt": old}) for u in users
    ]
    attendance = [
        ("A", KPI_SLOT - 7 * DAY),  # the weekly left edge: out of (S-7d, S], in the month
        ("A", KPI_SLOT - 8 * DAY),  # A again; the weekly left edge of S-1d
        ("B", KPI_SLOT - 7 * DAY + SEC),  # just inside the week
        ("B", KPI_SLOT - timedelta(hours=1)),  # B again
        ("C", KPI_SLOT),  # the right edge: in
        ("C", KPI_SLOT - 20 * DAY),  # C again, in the month only
        ("D", KPI_SLOT + SEC),  # after the slot: out
        ("E", KPI_SLOT - 30 * DAY),  # the monthly left edge: out
        ("F", KPI_SLOT - 30 * DAY + SEC),  # just inside the month
        ("G", KPI_SLOT - 31 * DAY),  # the monthly left edge of S-1d
        (None, KPI_SLOT - DAY),  # no user
        (None, KPI_SLOT - 10 * DAY),  # no user
    ]
    for i, (user, created) in enumerate(attendance):
        row = {
            "id": _uid(f"a{i}"),
            "userId": _uid(user) if user else None,
            "isChannel": False,
            "ended": True,
            "createdAt": created,
            "updatedAt": created,
        }
        out.append(("instance-attendance", row))
    return out


# The rows above counted by hand: (weeklyUsers, monthlyUsers) at each slot.
KPI_EXPECTED = {
    # (S-8d, S-1d]: A (S-7d) and B, not A at S-8d; (S-31d, S-1d]: A B C E F, not G.
    KPI_SLOT - DAY: (2, 5),
    # (S-7d, S]: B and C; (S-30d, S]: A B C F, not E; D comes after the slot.
    KPI_SLOT: (2, 4),
    # (S-6d, S+1d]: B (S-1h), C, D; (S-29d, S+1d]: A B C D, F has left.
    KPI_SLOT + DAY: (3, 4),
}


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_weekly_and_monthly_users_are_exact_on_the_window_edges(
    engine: str, dbs: Databases, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = None
    if engine == "mariadb":
        my = request.getfixturevalue("mysql_platform")
        with my.connect() as conn:
            platform_data.insert_mysql(conn, _kpi_rows())
        source = my.url
    else:
        with dbs.source_conn() as conn:
            for table, row in _kpi_rows():
                names = ", ".join(f'"{name}"' for name in row)
                marks = ", ".join(["%s"] * len(row))
                conn.execute(
                    f'INSERT INTO "{table}" ({names}) VALUES ({marks})', tuple(row.values())
                )
    # Off by default (they read 30 days of attendance): enabled in [collect] metrics.
    default = _settings(tmp_path, dbs, "")
    assert "weeklyUsers" not in [m.type for m in enabled_metrics(replace(default, metrics=None))]
    kpis = ["weeklyUsers", "monthlyUsers"]
    settings = _settings(tmp_path, dbs, "", source=source, metrics=kpis, catch_up="0")
    for slot in KPI_EXPECTED:
        # A cycle at 00:30 stores the day's slot (00:00); the one at 01:00 finds it present.
        first = run_cycle(settings, at=slot + HALF)
        assert [(r.type, r.status, r.slot) for r in first.results] == [
            (k, "stored", slot) for k in kpis
        ]
        again = run_cycle(settings, at=slot + 2 * HALF)
        assert [(r.type, r.status) for r in again.results] == [(k, "present") for k in kpis]
    weekly, monthly = _rows(dbs, "weeklyUsers"), _rows(dbs, "monthlyUsers")
    assert [(t, w, m) for (t, w), (_, m) in zip(weekly, monthly, strict=True)] == [
        (t, Decimal(w), Decimal(m)) for t, (w, m) in KPI_EXPECTED.items()
    ]


# ---------------------------------------------------------------------------- built-in backfill

BACKFILLABLE = ["dailyUsers", "dailyNewUsers", "chatMessages", "weeklyUsers", "monthlyUsers"]
NOW = [
    "activeInstances",
    "activeLocations",
    "activeScenes",
    "activeChannels",
    "instanceUsers",
    "channelUsers",
]

# The backfillable built-ins counted again, one plain statement each, at %(slot)s.
INDEPENDENT = {
    "dailyUsers": """SELECT count(DISTINCT "userId") FROM "instance-attendance"
        WHERE "createdAt" > %(slot)s - interval '24 hours' AND "createdAt" <= %(slot)s""",
    "dailyNewUsers": """SELECT count(*) FROM "user"
        WHERE "createdAt" > %(slot)s - interval '24 hours' AND "createdAt" <= %(slot)s""",
    "chatMessages": """SELECT count(*) FROM message WHERE NOT "isNotification"
        AND "createdAt" > %(slot)s - interval '30 minutes' AND "createdAt" <= %(slot)s""",
    "weeklyUsers": """SELECT count(DISTINCT "userId") FROM "instance-attendance"
        WHERE "createdAt" > %(slot)s - interval '7 days' AND "createdAt" <= %(slot)s""",
    "monthlyUsers": """SELECT count(DISTINCT "userId") FROM "instance-attendance"
        WHERE "createdAt" > %(slot)s - interval '30 days' AND "createdAt" <= %(slot)s""",
}


def _platform(dbs: Databases) -> None:
    """40 days of sign-ups, attendance of a drifting crowd (some without a user), messages and
    notifications, and a few running instances: every count moves from slot to slot."""
    with dbs.source_conn() as conn:
        conn.execute(
            'INSERT INTO "user" (id, name, "createdAt", "updatedAt") '
            "SELECT md5('u' || g)::uuid, 'u' || g, %(t)s - interval '39 days' "
            "+ g * interval '97 minutes', now() FROM generate_series(0, 599) AS g",
            {"t": T0},
        )
        conn.execute(
            'INSERT INTO "instance-attendance" (id, "userId", "isChannel", ended, "createdAt", '
            '"updatedAt") SELECT gen_random_uuid(), CASE WHEN g %% 17 = 0 THEN NULL '
            "ELSE md5('u' || ((g / 10 + g * 7919 %% 50) %% 600))::uuid END, g %% 3 = 0, "
            "g < 3990, %(t)s - interval '35 days' + g * interval '13 minutes', now() "
            "FROM generate_series(0, 3999) AS g",
            {"t": T0},
        )
        conn.execute(
            'INSERT INTO message (id, text, "isNotification", "createdAt", "updatedAt") '
            "SELECT gen_random_uuid(), 'm', g %% 5 = 0, %(t)s - interval '1 hour' "
            "+ g * interval '7 minutes', now() FROM generate_series(0, 420) AS g",
            {"t": T0},
        )
        conn.execute(
            'INSERT INTO instance (id, "roomCode", "channelId", ended, "createdAt", "updatedAt") '
            "SELECT gen_random_uuid(), 'r' || g, 'c' || g % 2, g > 2, now(), now() "
            "FROM generate_series(0, 4) AS g"
        )


def test_backfill_restores_the_builtin_metrics_exactly_and_never_a_now_metric(
    dbs: Databases, tmp_path: Path
) -> None:
    _platform(dbs)
    settings = _settings(tmp_path, dbs, "", metrics=BACKFILLABLE + NOW, catch_up="0")
    assert {m.type for m in enabled_metrics(settings) if m.backfill} == set(BACKFILLABLE)
    # A day of cycles, 2026-11-29 00:00 to 2026-11-30 00:00: the daily KPIs at both midnights.
    for i in range(49):
        run_cycle(settings, at=T0 + i * HALF)
    before = {t: _rows(dbs, t) for t in BACKFILLABLE + NOW}
    assert [len(before[t]) for t in BACKFILLABLE + NOW] == [49, 49, 49, 2, 2] + [49] * 6
    # An outage of 15 hours: every row of the first 30 slots (the first midnight's KPIs too).
    deleted = [T0 + i * HALF for i in range(30)]
    with dbs.store_conn() as conn:
        conn.execute('DELETE FROM analytics WHERE "timestamp" = ANY(%s)', (deleted,))
    assert settings.path is not None
    result = cli(
        "-c", str(settings.path), "collect", "--at", "2026-11-30T00:10:00Z", "--backfill", "1d"
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    # No terminal: a line each quarter, then the summary line.
    assert [line for line in lines if line.startswith("backfill")] == [
        "backfill: 1/30 slots written",
        "backfill: 8/30 slots written",
        "backfill: 15/30 slots written",
        "backfill: 23/30 slots written",
        "backfill: 30/30 slots written",
        "backfill since=2026-11-29T00:00:00Z until=2026-11-30T00:00:00Z slots=30 written=30 "
        "present=0 busy=0 failed=0",
    ]
    for type_ in BACKFILLABLE:
        after = _rows(dbs, type_)
        assert after == before[type_], type_
        with dbs.source_conn() as conn:
            for slot, count in after:
                row = conn.execute(INDEPENDENT[type_], {"slot": slot}).fetchone()
                assert row is not None
                assert (type_, slot, count) == (type_, slot, row[0])
    # The "now" metrics are never computed for the past: their 30 slots stay empty.
    for type_ in NOW:
        assert _rows(dbs, type_) == [(t, c) for t, c in before[type_] if t not in deleted]
