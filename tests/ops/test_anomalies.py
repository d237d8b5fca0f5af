"""`status --anomalies`: generated histories with a daily and weekly rhythm, drops, spikes,
hard limits and too little history, on a real PostgreSQL; and four weeks of the demo."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics_cli import anomalies, demo
from analytics_cli.config.load import load
from analytics_cli.timeutil import floor_slot, iso, utcnow
from tests.conftest import Databases, cli
from tests.demo.test_demo import empty_source  # noqa: F401 (a fixture)
from tests.ops.test_ops import _Recorder, monitor  # noqa: F401 (a fixture)

INTERVAL = timedelta(minutes=30)
WEEK = timedelta(days=7)


@pytest.fixture
def env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """The tool pointed at the test databases, with an empty store table."""
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    assert cli("db", "init").exit_code == 0
    return dbs


def busy(moment: datetime, rng: random.Random) -> int:
    """A lively metric: 100 at night to 400 on a weekend evening, with noise."""
    return round(100 + 300 * demo.rhythm(int(moment.timestamp())) + rng.gauss(0, 8))


def quiet(moment: datetime, rng: random.Random) -> int:
    """A small count that is often 0 at night: the kind that must not fire on noise."""
    return max(0, round(12 * demo.rhythm(int(moment.timestamp())) + rng.gauss(0, 1.5)))


def generate(
    dbs: Databases,
    *,
    weeks: float,
    last: dict[str, int] | None = None,
    now: datetime | None = None,
    seed: int = 1,
) -> datetime:
    """``weeks`` of slots up to the current one for 'busy' and 'quiet'; ``last`` overrides
    the newest slot's values. Returns the newest slot."""
    rng = random.Random(seed)
    newest = floor_slot(now or utcnow(), INTERVAL)
    count = int(weeks * WEEK / INTERVAL)
    rows = []
    for k in range(count, -1, -1):
        slot = newest - k * INTERVAL
        for name, fn in (("busy", busy), ("quiet", quiet)):
            value = fn(slot, rng)
            if k == 0 and last and name in last:
                value = last[name]
            rows.append((name, value, slot))
    with dbs.store_conn() as conn, conn.cursor() as cur:
        cur.executemany(
            'INSERT INTO analytics (type, count, "timestamp", collected_at) VALUES (%s, %s, %s, %s)',
            [(t, c, s, s) for t, c, s in rows],
        )
    return newest


def config_file(tmp_path: Path, text: str = "") -> str:
    """A config that collects nothing built in (only the generated types are judged)."""
    path = tmp_path / "c.toml"
    path.write_text("[collect]\nmetrics = []\n" + text)
    return str(path)


def findings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("anomaly: ")]


def test_four_clean_weeks_raise_nothing(env: Databases, tmp_path: Path) -> None:
    generate(env, weeks=4)
    result = cli("-c", config_file(tmp_path), "status", "--anomalies")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert rows["busy"].endswith(" ok")
    assert rows["quiet"].endswith(" ok")
    assert result.stdout.splitlines()[-1] == "anomalies: 0 finding(s)"


def test_clean_weeks_raise_nothing_at_any_time_of_the_last_day(env: Databases) -> None:
    # The same history judged as status would have judged it at each slot of its last day.
    newest = generate(env, weeks=5, seed=3)
    settings = load(env={"ANALYTICS_STORE_DSN": env.store}, discover=False)
    for k in range(48):
        report = anomalies.anomalies(settings, now=newest - k * INTERVAL + timedelta(seconds=1))
        assert report.findings == [], (k, report.findings)
        assert [c.weeks for c in report.checks if c.type == "busy"] == [4]


def test_an_injected_drop_is_found(env: Databases, tmp_path: Path) -> None:
    newest = generate(env, weeks=4, last={"busy": 20})
    drop = cli("-c", config_file(tmp_path), "status", "--anomalies")
    assert drop.exit_code == 1
    [line] = findings(drop.stderr)
    assert line.startswith(f"anomaly: busy = 20 at {iso(newest)}, expected ")
    assert ": drop, below the usual range (median " in line
    assert line.endswith(" values within 1h of this time of week over 4 weeks)")


def test_a_spike_is_found(env: Databases, tmp_path: Path) -> None:
    newest = generate(env, weeks=4)
    with env.store_conn() as conn:
        row = conn.execute(
            "SELECT count FROM analytics WHERE type = 'busy' AND \"timestamp\" = %s", (newest,)
        ).fetchone()
        assert row is not None
        conn.execute(
            "UPDATE analytics SET count = %s WHERE type = 'busy' AND \"timestamp\" = %s",
            (int(row[0]) * 3 + 200, newest),  # type: ignore[call-overload]
        )
    result = cli("-c", config_file(tmp_path), "status", "--anomalies")
    assert result.exit_code == 1
    [line] = findings(result.stderr)
    assert ": spike, above the usual range (median " in line
    assert line.startswith("anomaly: busy = ")


def test_json_matches_the_text(env: Databases, tmp_path: Path) -> None:
    generate(env, weeks=4, last={"busy": 0, "quiet": 50})
    path = config_file(tmp_path, "[alert]\nbusy = { below = 1 }\n")
    text = cli("-c", path, "status", "--anomalies")
    as_json = cli("-c", path, "status", "--anomalies", "--json")
    assert text.exit_code == as_json.exit_code == 1
    assert findings(text.stderr) == findings(as_json.stderr)
    report = json.loads(as_json.stdout)["anomalies"]
    lines = findings(text.stderr)
    assert len(lines) == len(report["findings"]) == 3
    for line, found in zip(lines, report["findings"], strict=True):
        expected = _range(found["low"], found["high"])
        assert line == (
            f"anomaly: {found['type']} = {_num(found['value'])} at {found['at']}, "
            f"expected {expected}: {found['kind']}, {found['why']}"
        )
    kinds = [(f["type"], f["kind"]) for f in report["findings"]]
    assert kinds == [("busy", "drop"), ("busy", "below limit"), ("quiet", "spike")]
    # Each metric's table row names its verdicts as the JSON does.
    rows = {line.split()[0]: line for line in text.stdout.splitlines() if line.strip()}
    assert rows["busy"].endswith(" drop, below limit")
    assert rows["quiet"].endswith(" spike")
    by_type = {m["type"]: m for m in report["metrics"]}
    assert by_type["busy"]["limits"] == {"below": 1.0, "above": None}
    assert by_type["busy"]["weeks"] == 4
    assert report["method"] == {
        "weeks": 4,
        "min_weeks": 3,
        "near_seconds": 3600,
        "threshold": 4.0,
        "poisson": 1.2,
        "floor": 0.05,
    }


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _range(low: float | None, high: float | None) -> str:
    if low is None:
        return f"at most {_num(high or 0)}"
    if high is None:
        return f"at least {_num(low)}"
    return f"{_num(low)} to {_num(high)}"


def test_hard_limits_fire_even_without_history(env: Databases, tmp_path: Path) -> None:
    newest = generate(env, weeks=0.5, last={"busy": 0, "quiet": 3})
    path = config_file(
        tmp_path,
        '[[metric]]\ntype = "quiet"\nsql = "SELECT 1 AS count"\nenabled = false\n'
        "alert = { above = 2 }\n"
        "[alert]\nbusy = { below = 1, above = 1000 }\n",
    )
    result = cli("-c", path, "status", "--anomalies")
    assert result.exit_code == 1
    assert findings(result.stderr) == [
        f"anomaly: busy = 0 at {iso(newest)}, expected at least 1: below limit, "
        "below the configured limit (alert below = 1)",
        f"anomaly: quiet = 3 at {iso(newest)}, expected at most 2: above limit, "
        "above the configured limit (alert above = 2)",
    ]
    within = config_file(tmp_path, "[alert]\nbusy = { below = 0 }\nquiet = { above = 3 }\n")
    assert cli("-c", within, "status", "--anomalies").exit_code == 0


def test_an_old_latest_value_is_not_judged(env: Databases, tmp_path: Path) -> None:
    # A metric no longer collected: its last value, two days old and far off, is history.
    newest = generate(env, weeks=4)
    with env.store_conn() as conn:
        conn.execute(
            "DELETE FROM analytics WHERE type = 'busy' AND \"timestamp\" > %s",
            (newest - timedelta(days=2),),
        )
        conn.execute(
            "UPDATE analytics SET count = 0 WHERE type = 'busy' AND \"timestamp\" = %s",
            (newest - timedelta(days=2),),
        )
    path = config_file(tmp_path, "[alert]\nbusy = { below = 1 }\n")
    result = cli("-c", path, "status", "--anomalies", "--json")
    assert result.exit_code == 0, result.stderr
    checks = {m["type"]: m for m in json.loads(result.stdout)["anomalies"]["metrics"]}
    assert checks["busy"]["note"] == (
        "not judged: the latest value is old (status reports staleness)"
    )
    assert checks["busy"]["findings"] == []
    assert checks["quiet"]["expected"] is not None


def test_too_little_history_says_so_and_never_fires(env: Databases, tmp_path: Path) -> None:
    # Two weeks and a wild newest value: not enough to judge, so nothing fires.
    generate(env, weeks=2, last={"busy": 0, "quiet": 10_000})
    result = cli("-c", config_file(tmp_path), "status", "--anomalies", "--json")
    assert result.exit_code == 0, result.stderr
    assert findings(result.stderr) == []
    checks = {m["type"]: m for m in json.loads(result.stdout)["anomalies"]["metrics"]}
    assert checks["busy"]["expected"] is None
    assert checks["busy"]["weeks"] == 2
    assert checks["busy"]["note"] == (
        "too little history: 2 of the last 4 weeks have a value at this time of week, 3 needed"
    )
    text = cli("-c", config_file(tmp_path), "status", "--anomalies")
    assert text.exit_code == 0
    # The anomaly table comes after the status table: its row is the last one of the type.
    row = [line for line in text.stdout.splitlines() if line.startswith("busy ")][-1]
    assert row.endswith(
        " too little history: 2 of the last 4 weeks have a value at this time of week, 3 needed"
    )


def test_ping_url_pings_fail_on_a_finding(
    env: Databases,
    tmp_path: Path,
    monitor: tuple[str, type[_Recorder]],  # noqa: F811
) -> None:
    url, handler = monitor
    generate(env, weeks=4)
    path = config_file(tmp_path)
    assert cli("-c", path, "status", "--anomalies", "--ping-url", url).exit_code == 0
    with env.store_conn() as conn:
        conn.execute(
            "UPDATE analytics SET count = 0 WHERE type = 'busy' "
            'AND "timestamp" = (SELECT max("timestamp") FROM analytics)'
        )
    assert cli("-c", path, "status", "--anomalies", "--ping-url", url).exit_code == 1
    assert handler.paths == ["/ping/abc", "/ping/abc/fail"]
    bad = cli("-c", path, "status", "--ping-url", "ftp://x")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: ping URL must be an http:// or https:// URL\n")


def test_bad_limits_are_config_errors(env: Databases, tmp_path: Path) -> None:
    for text, message in (
        ("[alert]\nbusy = 1\n", "alert.busy must be a table"),
        ("[alert]\nbusy = { under = 1 }\n", "unknown key alert.busy.under"),
        ("[alert]\nbusy = { below = 5, above = 1 }\n", "below must be less than above"),
        ('[alert]\nbusy = { below = "1" }\n', "alert.busy.below must be"),
    ):
        result = cli("-c", config_file(tmp_path, text), "status", "--anomalies")
        assert result.exit_code == 2, text
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr


@pytest.mark.slow
def test_four_weeks_of_the_demo_raise_nothing(
    dbs: Databases,
    empty_source: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The demo's simulation (daily and weekly rhythm, bursts of sessions) collected slot by
    # slot for four weeks, judged by the default settings at each slot of its last day.
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", empty_source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    now = datetime(2026, 11, 30, 21, 10, tzinfo=UTC)
    settings = load(discover=False)
    result = demo.run(settings, days=28, seed=1, now=now)
    assert result.failed == 0
    last = floor_slot(now, INTERVAL)
    for k in range(48):
        report = anomalies.anomalies(settings, now=last - k * INTERVAL + timedelta(seconds=1))
        assert report.findings == [], (k, report.findings)
        judged = [c for c in report.checks if c.low is not None]
        assert len(judged) >= 9, [(c.type, c.note) for c in report.checks]


def _weekly(values: list[float], latest: float, step: timedelta) -> dict[datetime, Decimal]:
    """A history with ``values`` repeating every ``step`` for four weeks, then ``latest``."""
    end = datetime(2026, 12, 1, 3, tzinfo=UTC)
    count = int(4 * WEEK / step)
    history = {end - k * step: Decimal(str(values[k % len(values)])) for k in range(1, count + 1)}
    history[end] = Decimal(str(latest))
    return history


def test_a_metric_that_never_moves_fires_only_on_a_real_change() -> None:
    # MAD 0: the √median and level terms give the range its width.
    assert anomalies.check("flat", _weekly([100], 101, INTERVAL), None).findings == ()
    assert anomalies.check("flat", _weekly([100], 80, INTERVAL), None).findings == ()
    [spike] = anomalies.check("flat", _weekly([100], 200, INTERVAL), None).findings
    assert spike.kind == "spike"
    [drop] = anomalies.check("flat", _weekly([100], 10, INTERVAL), None).findings
    assert drop.kind == "drop"
    # Always 0 (a rarely used feature): one event is not an anomaly, ten are.
    assert anomalies.check("rare", _weekly([0], 1, INTERVAL), None).findings == ()
    assert anomalies.check("rare", _weekly([0], 10, INTERVAL), None).findings != ()


def test_a_daily_metric_has_one_reference_value_a_week() -> None:
    step = timedelta(days=1)
    judged = anomalies.check("weeklyUsers", _weekly([900, 950, 1000], 960, step), None)
    assert (judged.samples, judged.weeks, judged.findings) == (4, 4, ())
    assert judged.median is not None and 900 <= judged.median <= 1000
    [drop] = anomalies.check("weeklyUsers", _weekly([900, 950, 1000], 300, step), None).findings
    assert drop.kind == "drop"
