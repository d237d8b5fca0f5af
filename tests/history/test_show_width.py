"""`show` on a real terminal (a pseudo-terminal of 80, 100 and 160 columns): every line fits,
metric names stay whole, columns go in the documented order, chart axes have round ticks."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from decimal import Decimal
from itertools import pairwise

import psycopg
import pytest

from analytics_cli.engines.postgresql.native import ensure_table
from tests.conftest import Databases, Result, proc_env

WINDOW = ("--since", "2026-03-02T00:00:00Z", "--until", "2026-03-09T00:00:00Z")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# The longest names of the built-in pack, a plain metric and dimensional ones.
PLAIN = ("activeInstances", "chatMessages", "dailyUsers")
DIMENSIONAL = ("activeInstancesByLocation", "instanceUsersByLocation")


def load_week(dsn: str) -> None:
    """A week of 30-minute slots: plain metrics, and two metrics with three locations each."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            ensure_table(conn, "analytics")
        slots = (
            "generate_series('2026-03-02T00:00:00Z'::timestamptz, "
            "'2026-03-08T23:30:00Z', interval '30 minutes') WITH ORDINALITY AS s(at, i)"
        )
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp", collected_at) '
            f"SELECT t, (i * 7 + length(t) * 3) %% 29 + (i %% 48), at, at FROM {slots}, "
            "unnest(%s::text[]) t",
            (list(PLAIN),),
        )
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp", collected_at, metadata) '
            f"SELECT t, (i * 5 + k * 11) %% 23, at, at, jsonb_build_object('location', l) "
            f"FROM {slots}, unnest(%s::text[]) t, "
            "unnest(array['Lobby', 'Arena', 'Gallery']) WITH ORDINALITY AS d(l, k)",
            (list(DIMENSIONAL),),
        )


@pytest.fixture
def week(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    load_week(dbs.store)
    return dbs


def on_terminal(columns: int, *args: str) -> Result:
    """Run the CLI with stdout on a pseudo-terminal ``columns`` wide (no $COLUMNS), stderr on
    a pipe; the terminal's text without colour codes."""
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = proc_env()
    for name in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        env.pop(name, None)
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "analytics_cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    with proc:
        stderr = proc.stderr.read() if proc.stderr else b""
        code = proc.wait(timeout=60)
    text = ANSI.sub("", out.decode()).replace("\r\n", "\n")
    return Result(code, text, stderr.decode())


def text_lines(result: Result) -> list[str]:
    return [line.rstrip() for line in result.stdout.splitlines()]


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_overview_fits_the_terminal_and_keeps_names_whole(week: Databases, columns: int) -> None:
    result = on_terminal(columns, "show", *WINDOW)
    assert result.exit_code == 0, result.stderr
    lines = text_lines(result)
    assert max(len(line) for line in lines) <= columns
    header = lines[1].split()
    names = [line.split()[0] for line in lines[2:]]
    assert names == sorted(PLAIN + DIMENSIONAL)  # whole, none cut with "…"
    # The documented order: the trend narrows, `at` loses its year, then `points` goes.
    expected = {
        80: ["type", "latest", "at", "min", "avg", "max", "gaps", "trend"],
        100: ["type", "latest", "at", "min", "avg", "max", "points", "gaps", "trend"],
        160: ["type", "latest", "at", "min", "avg", "max", "points", "gaps", "trend"],
    }[columns]
    assert header == expected
    at = lines[2].split()[2:4]
    assert at == (["03-08", "23:30"] if columns == 80 else ["2026-03-08", "23:30"])
    trend = len(lines[2]) - lines[2].index("23:30") - len("23:30")
    assert (trend > 8) if columns > 80 else (trend >= 8)


def slot_totals(dsn: str, name: str) -> list[Decimal]:
    """The metric's value at each slot, independently: the sum of the slot's rows."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            'SELECT sum(count) FROM analytics WHERE type = %s GROUP BY "timestamp"', (name,)
        ).fetchall()
    return [r[0] for r in rows]


def is_125(step: Decimal) -> bool:
    """True for 1, 2 or 5 times a power of ten."""
    digits = step.normalize().as_tuple().digits
    return digits in ((1,), (2,), (5,))


@pytest.mark.parametrize("columns", [80, 100, 160])
@pytest.mark.parametrize("name", ["activeInstances", "instanceUsersByLocation"])
def test_chart_fits_with_round_ticks(week: Databases, columns: int, name: str) -> None:
    result = on_terminal(columns, "show", name, *WINDOW)
    assert result.exit_code == 0, result.stderr
    lines = text_lines(result)
    assert max(len(line) for line in lines) <= columns
    ticks = [Decimal(m.group(1)) for m in (re.match(r"^\s*(-?[\d.]+) ┤", ln) for ln in lines) if m]
    ticks.reverse()  # bottom first
    steps = {b - a for a, b in pairwise(ticks)}
    assert len(ticks) >= 3 and len(steps) == 1 and is_125(steps.pop())
    totals = slot_totals(week.store, name)
    assert ticks[0] <= min(totals) and ticks[-1] >= max(totals)
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    labels = lines[axis + 1].split()
    assert not re.search(r"\d\d:\d\d:\d\d", lines[axis + 1])  # no seconds
    # As many round times as fit: each midnight (by its date) from 80 columns, and each
    # noon too at 160.
    days = [f"03-{d:02d}" for d in range(2, 10)]
    if columns < 160:
        assert labels == days
    else:
        assert labels == [x for day in days for x in (day, "12:00")][:-1]
    # The summary below: the metric's name whole, its min and max the slot totals'.
    row = next(line.split() for line in lines[axis + 2 :] if line.startswith(name))
    header = lines[axis + 2].split()
    shift = 1 if "at" in header else 0  # the time of `at` is a word of its own
    assert Decimal(row[header.index("min") + shift]) == min(totals)
    assert Decimal(row[header.index("max") + shift]) == max(totals)


def test_at_40_columns_names_are_cut_last_and_numbers_never(week: Databases) -> None:
    wide = text_lines(on_terminal(160, "show", *WINDOW))
    narrow = on_terminal(40, "show", *WINDOW)
    assert narrow.exit_code == 0, narrow.stderr
    lines = text_lines(narrow)
    assert max(len(line) for line in lines) <= 40
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("type ")) :]
    assert lines[0].split() == ["type", "latest", "min", "avg", "max"]
    # Each row's numbers are whole (those of the 160-column table); only long names are cut.
    for cut, full in zip(lines[1:], wide[2:], strict=True):
        name, *numbers = cut.split()
        whole = full.split()
        assert numbers == [whole[1], whole[4], whole[5], whole[6]]
        assert name == whole[0] or (name.endswith("…") and whole[0].startswith(name[:-1]))
    assert any(line.split()[0].endswith("…") for line in lines[1:])
