"""Hourly and daily rollups: show on rollups == show on the stored rows, before and after prune."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_cli.engines.shapes import AGGREGATES
from analytics_cli.grain import DAY, HOUR, floor_to
from tests.conftest import Databases, cli, run_proc

SLOT = timedelta(minutes=30)
BUCKETS = ("1h", "3h", "1d", "2d")
# Selections: the total, one series by --where, one series per --by value, and a --where that
# picks several series of a total (read from the stored rows).
PICKS: tuple[tuple[str, ...], ...] = (
    ("--type", "plain"),
    ("--type", "dim"),
    ("--type", "dim", "--where", "location=a", "--where", "source=eu"),
    ("--type", "loc", "--by", "location"),
    ("--type", "dim", "--where", "location=a"),
)


@pytest.fixture
def env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def load(dbs: Databases, rng: random.Random, start: datetime, slots: int, gap: float) -> None:
    """Rows of three types from ``start``: plain, dimensional with two sources, one-key."""
    rows = []
    for i in range(slots):
        at = start + i * SLOT
        if rng.random() < gap:
            continue  # a missed slot
        rows.append(("plain", Decimal(rng.randint(0, 50)), at, {}))
        for loc in "abc":
            if rng.random() < gap:
                continue
            rows.append(("loc", Decimal(rng.randint(0, 900)) / 100, at, {"location": loc}))
            for source in ("eu", "us"):
                count = Decimal(rng.randint(-500, 5000)) / 100
                rows.append(("dim", count, at, {"location": loc, "source": source}))
    with dbs.store_conn() as conn:
        with conn.cursor().copy(
            'COPY analytics (type, count, "timestamp", collected_at, metadata) FROM STDIN'
        ) as copy:
            for type_, count, at, meta in rows:
                copy.write_row((type_, count, at, at + timedelta(seconds=7), json.dumps(meta)))
        conn.commit()


def set_built(dbs: Databases, built: bool) -> None:
    with dbs.store_conn() as conn:
        conn.execute("UPDATE analytics_rollup_state SET built = %s", (built,))
        conn.commit()


def shows(since: datetime, until: datetime) -> dict[tuple[str, ...], str]:
    """Every aggregate, bucket and selection as show's csv, and the summary table."""
    found = {}
    window = ("--since", since.isoformat(), "--until", until.isoformat())
    for pick in PICKS:
        for bucket in BUCKETS:
            for agg in AGGREGATES:
                args = ("show", *pick, *window, "--bucket", bucket, "--agg", agg, "-f", "csv")
                result = cli(*args)
                assert result.exit_code == 0, result.stderr
                found[args] = result.stdout
        args = ("show", *pick, *window, "-f", "table")
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        found[args] = result.stdout
    return found


def compare(dbs: Databases, since: datetime, until: datetime) -> dict[tuple[str, ...], str]:
    """show on rollups and on rows; they must be byte-identical. Returns the rollups' text."""
    set_built(dbs, False)
    raw = shows(since, until)
    set_built(dbs, True)
    rolled = shows(since, until)
    for args, text in raw.items():
        assert rolled[args] == text, args
    assert any(len(text.splitlines()) > 3 for text in raw.values())
    return rolled


def test_rollups_equal_raw_rows_and_survive_prune(env: Databases) -> None:
    now = datetime.now(UTC)
    start = floor_to(now, DAY) - 6 * DAY + 7 * SLOT  # mid-morning, six days ago
    assert cli("db", "init").exit_code == 0
    load(env, random.Random(28), start, 6 * 48, gap=0.1)
    rebuilt = cli("db", "rollup", "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.stderr
    assert "rebuilt" in rebuilt.stdout
    # A window with partial hours at both ends, and one of whole days.
    compare(env, start + timedelta(minutes=75), now - timedelta(minutes=100))
    since, until = floor_to(start, DAY) + DAY, floor_to(now, DAY)
    before = compare(env, since, until)
    pruned = cli("prune", "--older-than", "3d", "--yes")
    assert pruned.exit_code == 0, pruned.stderr
    with env.store_conn() as conn:
        oldest = conn.execute('SELECT min("timestamp") FROM analytics').fetchone()
        assert oldest is not None and oldest[0] > since + DAY
    after = shows(since, until)
    # The same numbers once the rows are gone, save for what only the rows could answer:
    # several series picked by --where (said on stderr).
    for args, text in before.items():
        if "location=a" in args and "source=eu" not in args:
            continue
        assert after[args] == text, args


def test_not_a_multiple_of_an_hour_reads_rows_and_says_so(env: Databases) -> None:
    now = datetime.now(UTC)
    start = floor_to(now, DAY) - 5 * DAY
    assert cli("db", "init").exit_code == 0
    load(env, random.Random(1), start, 5 * 48, gap=0.0)
    assert cli("db", "rollup", "--rebuild").exit_code == 0
    assert cli("prune", "--older-than", "2d", "--yes").exit_code == 0
    result = cli("show", "--type", "plain", "--since", "4d", "--bucket", "90m", "-f", "csv")
    assert result.exit_code == 0, result.stderr
    assert "not a multiple of an hour: read from stored rows" in result.stderr
    assert result.stderr.count("\n") == 1


def test_rollups_do_not_apply_to_the_ir_engine_layout(env: Databases) -> None:
    result = cli("db", "rollup", "--rebuild", "--help")
    assert "not the iR Engine layout" in result.stdout


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    offset=st.integers(0, 47),
    gap=st.sampled_from([0.0, 0.3, 0.6]),
)
def test_property_rollups_equal_rows(env: Databases, seed: int, offset: int, gap: float) -> None:
    with env.store_conn() as conn:
        conn.execute("DROP TABLE IF EXISTS analytics, analytics_hourly, analytics_daily")
        conn.execute("DROP TABLE IF EXISTS analytics_rollup_state")
        conn.commit()
    assert cli("db", "init").exit_code == 0
    now = datetime.now(UTC)
    start = floor_to(now, DAY) - 4 * DAY + offset * SLOT
    load(env, random.Random(seed), start, 2 * 48, gap=gap)
    assert cli("db", "rollup", "--rebuild").exit_code == 0
    since = start + timedelta(minutes=seed % 180)
    compare(env, since, since + 2 * DAY - HOUR)


def test_a_window_starting_before_the_history_is_unchanged_by_prune(env: Databases) -> None:
    now = datetime.now(UTC)
    start = floor_to(now, SLOT) - 5 * DAY
    assert cli("db", "init").exit_code == 0
    load(env, random.Random(5), start, 5 * 48, gap=0.0)
    assert cli("db", "rollup", "--rebuild").exit_code == 0
    show = ("show", "--type", "dim", "--since", "6d", "--bucket", "1d", "-f", "csv")
    before = cli(*show)
    assert cli("prune", "--older-than", "2d", "--yes").exit_code == 0
    after = cli(*show)
    assert after.exit_code == 0, after.stderr
    assert (after.stdout, after.stderr) == (before.stdout, "")
    assert len(after.stdout.splitlines()) >= 6


def test_each_cycle_keeps_its_hour_and_day_rolled_up(env: Databases) -> None:
    assert cli("db", "init").exit_code == 0
    now = floor_to(datetime.now(UTC), SLOT)
    for k in (1, 2, 3, 5, 8):  # slots of a few hours, and a --replace of one of them
        assert cli("collect", "--at", (now - k * SLOT).isoformat()).exit_code in (0, 1)
    assert cli("collect", "--at", (now - 2 * SLOT).isoformat(), "--replace").exit_code in (0, 1)
    filled = cli("collect", "--backfill", "1d", "--only", "chatMessages")
    assert filled.exit_code in (0, 1), filled.stderr
    with env.store_conn() as conn:
        hours = conn.execute("SELECT count(*) FROM analytics_hourly").fetchone()
        assert hours is not None and hours[0] > 0
    window = ("--since", "2d", "--until", (now + SLOT).isoformat())
    set_built(env, False)
    raw = {}
    for args in (
        ("--type", "chatMessages"),
        ("--type", "activeInstances"),
        ("--type", "instanceUsersByLocation", "--by", "location"),
    ):
        for bucket in ("1h", "1d"):
            for agg in AGGREGATES:
                cmd = ("show", *args, *window, "--bucket", bucket, "--agg", agg, "-f", "csv")
                raw[cmd] = cli(*cmd).stdout
    set_built(env, True)
    for cmd, text in raw.items():
        assert cli(*cmd).stdout == text, cmd
    assert any(len(text.splitlines()) > 2 for text in raw.values())


def test_config_check_refuses_a_retention_it_cannot_keep(env: Databases, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    for body, said in (
        (
            'raw = "1y"\nhourly = "180d"',
            "retention.hourly (180d) is shorter than retention.raw (1y)",
        ),
        ('raw = "six months"', "invalid retention.raw 'six months'"),
        ('raw = "1h"', "retention.raw must be at least 2d"),
        ('weekly = "1y"', "weekly"),
    ):
        path.write_text(f"[retention]\n{body}\n")
        result = cli("--config", str(path), "config", "check")
        assert result.exit_code == 2, (body, result.stderr)
        first = result.stderr.splitlines()[0]
        assert first.startswith("error: ") and said in first, (body, result.stderr)
        assert "Traceback" not in result.stderr


def test_prune_without_older_than_applies_the_retention(env: Databases, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start = floor_to(now, DAY) - 6 * DAY
    assert cli("db", "init").exit_code == 0
    load(env, random.Random(3), start, 6 * 48, gap=0.2)
    assert cli("db", "rollup", "--rebuild").exit_code == 0
    path = tmp_path / "c.toml"
    path.write_text('[retention]\nraw = "2d"\nhourly = "4d"\ndaily = "forever"\n')
    daily = ("--config", str(path), "show", "--type", "dim", "--since", "7d", "--bucket", "1d")
    before = cli(*daily, "-f", "csv")
    done = cli("--config", str(path), "prune", "--yes")
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("deleted ") and "older than" in lines[0]
    assert lines[1].startswith("deleted ") and " hourly rollup rows older than " in lines[1]
    assert not lines[1].startswith("deleted 0 ")
    with env.store_conn() as conn:
        oldest = conn.execute("SELECT min(bucket) FROM analytics_hourly").fetchone()
        raw = conn.execute('SELECT min("timestamp") FROM analytics').fetchone()
    assert oldest is not None and oldest[0] >= now - 4 * DAY - HOUR
    assert raw is not None and raw[0] >= now - 2 * DAY - SLOT
    after = cli(*daily, "-f", "csv")
    assert (after.exit_code, after.stdout) == (0, before.stdout)
    hourly = cli("--config", str(path), "show", "--type", "dim", "--since", "6d", "--bucket", "3h")
    assert hourly.exit_code == 0
    assert "hourly rollups begin at" in hourly.stderr
    status = cli("status")
    assert "rollups: oldest hourly bucket " in status.stdout


def test_an_interval_changed_after_a_prune_never_loses_the_older_buckets(
    env: Databases, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    start = floor_to(now, DAY) - 6 * DAY
    assert cli("db", "init").exit_code == 0
    load(env, random.Random(5), start, 6 * 48, gap=0.1)
    assert cli("db", "rollup", "--rebuild").exit_code == 0
    assert cli("prune", "--older-than", "2d", "--yes").exit_code == 0
    daily = ("show", "--type", "dim", "--since", "7d", "--bucket", "1d", "-f", "csv")
    before = cli(*daily)
    with env.store_conn() as conn:
        kept = conn.execute("SELECT count(*), min(bucket) FROM analytics_daily").fetchone()
    assert kept is not None and kept[0] > 0 and kept[1] < now - 3 * DAY
    # Rebuilt for a 15-minute interval from rows that begin two days ago, four days of
    # buckets would go: each command that would rebuild refuses in one line instead.
    path = tmp_path / "c.toml"
    path.write_text('[collect]\ninterval = "15m"\n')
    for args in (
        ("prune", "--older-than", "1d", "--yes"),
        ("db", "init"),
        ("db", "rollup", "--rebuild"),
    ):
        done = cli("--config", str(path), *args)
        assert done.exit_code == 2, (args, done.stderr)
        first, hint = done.stderr.splitlines()
        assert first.startswith("error: the rollups of analytics were kept for a 30m interval")
        assert "would lose the older buckets" in first
        assert hint.startswith("hint: set [collect] interval back to 30m")
    with env.store_conn() as conn:
        assert conn.execute("SELECT count(*), min(bucket) FROM analytics_daily").fetchone() == kept
    assert cli(*daily).stdout == before.stdout


def worked_example() -> list[list[str]]:
    """The commands of docs/operations.md's worked example on the demo, one list a line."""
    import shlex

    page = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text("utf-8")
    after = page[page.index("A worked example on the demo") :]
    start = after.index("```text\n") + len("```text\n")
    block = after[start : after.index("```", start)]
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert all(c[0] == "analytics-cli" for c in commands), commands
    return [c[1:] for c in commands]


@pytest.fixture
def fresh_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A HOME of its own outside pytest's base folder (the embedded server, run as an
    unprivileged account when root, needs search permission on every parent folder)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="analytics-cli-rollups-test-", dir="/tmp"))
    folder.chmod(0o755)
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.chdir(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_the_docs_worked_example_keeps_the_chart(fresh_home: Path) -> None:
    # The page's commands as written, on the embedded default of a fresh HOME; ``> file``
    # is the shell's redirection of the command's output.
    commands = worked_example()
    assert [c[0] for c in commands] == ["demo", "show", "prune", "show", "show"]
    outputs = []
    for command in commands:
        target = None
        if ">" in command:
            at = command.index(">")
            command, target = command[:at], command[at + 1]
        done = run_proc(*command, timeout=1800)
        assert done.exit_code == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr
        if target is not None:
            (fresh_home / target).write_text(done.stdout)
        outputs.append(done)
    before = (fresh_home / "before.csv").read_text()
    after = (fresh_home / "after.csv").read_text()
    # The daily buckets of the sixty days are all there, and prune did delete rows.
    assert len(before.splitlines()) >= 60
    assert outputs[2].stdout.startswith("deleted ") and not outputs[2].stdout.startswith(
        "deleted 0 "
    )
    assert after == before
    chart = outputs[4].stdout
    assert "activeInstances" in chart
