"""`export`: CSV / JSON / NDJSON round trips, files written whole or not at all, closed pipes."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from analytics_cli.engines.postgresql.native import ensure_table
from tests.conftest import Databases, cli, proc_env, run_proc, with_db
from tests.history.test_show import load_fixed

# PostgreSQL text cannot hold NUL and jsonb refuses \u0000; everything else is fair game.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
ROW = st.fixed_dictionaries(
    {
        "type": TEXT.filter(bool),
        "count": st.decimals(
            min_value=-(10**12), max_value=10**12, places=4, allow_nan=False, allow_infinity=False
        ),
        "timestamp": st.datetimes(
            min_value=datetime(1971, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.just(UTC),
        ),
        "metadata": st.dictionaries(TEXT, TEXT | st.integers(-1000, 1000), max_size=3),
    }
)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse(fmt: str, text: str) -> list[dict[str, Any]]:
    """Exported text back into comparable rows."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        assert reader.fieldnames == ["type", "count", "timestamp", "metadata", "collected_at"]
        raw = [
            {**r, "count": Decimal(r["count"]), "metadata": json.loads(r["metadata"])}
            for r in reader
        ]
    elif fmt == "json":
        raw = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    else:
        raw = [
            json.loads(line, parse_float=Decimal, parse_int=Decimal)
            for line in text.split("\n")[:-1]
        ]
    return [
        {
            "type": r["type"],
            "count": Decimal(r["count"]),
            "timestamp": parse_time(r["timestamp"]),
            "metadata": r["metadata"],
            "collected_at": parse_time(r["collected_at"]),
        }
        for r in raw
    ]


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["type"], row["timestamp"])


@pytest.fixture
def store_env(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_DSN", dbs.store)
    with psycopg.connect(dbs.store, autocommit=True) as conn, conn.transaction():
        ensure_table(conn, "analytics")
    return dbs


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(ROW, max_size=8, unique_by=lambda r: (r["type"], r["timestamp"])))
def test_round_trip(store_env: Databases, rows: list[dict[str, Any]]) -> None:
    collected = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    with psycopg.connect(store_env.store, autocommit=True) as conn:
        conn.execute("TRUNCATE analytics")
        with conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO analytics (type, count, "timestamp", collected_at, metadata) '
                "VALUES (%s, %s, %s, %s, %s::jsonb)",
                [
                    (r["type"], r["count"], r["timestamp"], collected, json.dumps(r["metadata"]))
                    for r in rows
                ],
            )
    want = sorted(({**r, "collected_at": collected} for r in rows), key=key)
    for fmt in ("csv", "json", "ndjson"):
        result = cli("export", f"--{fmt}")
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        assert sorted(parse(fmt, result.stdout), key=key) == want
        if fmt == "json" and not rows:
            assert result.stdout == "[]\n"


def test_csv_exact_from_a_real_process(store_env: Databases) -> None:
    load_fixed(store_env.store)
    with psycopg.connect(store_env.store, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp", collected_at, metadata) VALUES '
            "('dailyUsers', 0.5, '2026-01-05T00:00:00Z', '2026-01-05T00:00:01.5Z', "
            "%s::jsonb)",
            (json.dumps({"location": 'Zürich, "old town"\nnorth'}),),
        )
    result = run_proc(
        "export", "-t", "dailyUsers", "--since", "2026-01-05", "--until", "2026-01-05T01:00Z"
    )
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout == (
        "type,count,timestamp,metadata,collected_at\n"
        "dailyUsers,10,2026-01-05T00:00:00Z,{},2026-01-05T00:00:05Z\n"
        'dailyUsers,0.5,2026-01-05T00:00:00Z,"{""location"": ""Zürich, \\""old town\\""\\nnorth""}",'
        "2026-01-05T00:00:01.5Z\n"
        "dailyUsers,12.5,2026-01-05T00:30:00Z,{},2026-01-05T00:30:05Z\n"
    )


def test_order_is_time_then_type_then_metadata_by_value(store_env: Databases) -> None:
    """The sort is on the stored values, never on the text the export writes.

    As text, ``…00Z`` sorts after ``…00.5Z``, and ``{"a": …, "b": …}`` before ``{"b": …}``;
    by value, whole seconds come first and jsonb puts the object with fewer keys first.
    """
    rows = [
        ("b", "2026-01-05T00:00:00.5Z", {}),
        ("b", "2026-01-05T00:00:00Z", {"a": "1", "b": "2"}),
        ("b", "2026-01-05T00:00:00Z", {"b": "1"}),
        ("a", "2026-01-05T00:00:01Z", {}),
        ("a", "2026-01-05T00:00:00Z", {}),
    ]
    with psycopg.connect(store_env.store, autocommit=True) as conn:
        conn.execute("TRUNCATE analytics")
        for type_, at, metadata in rows:
            conn.execute(
                'INSERT INTO analytics (type, count, "timestamp", collected_at, metadata) '
                "VALUES (%s, 1, %s, %s, %s::jsonb)",
                (type_, at, at, json.dumps(metadata)),
            )
    want = [
        ("a", "2026-01-05T00:00:00Z", {}),
        ("b", "2026-01-05T00:00:00Z", {"b": "1"}),
        ("b", "2026-01-05T00:00:00Z", {"a": "1", "b": "2"}),
        ("b", "2026-01-05T00:00:00.5Z", {}),
        ("a", "2026-01-05T00:00:01Z", {}),
    ]
    for fmt in ("csv", "json", "ndjson"):
        result = cli("export", f"--{fmt}")
        assert result.exit_code == 0, result.stderr
        text = result.stdout
        if fmt == "csv":
            got = [
                (r["type"], r["timestamp"], json.loads(r["metadata"]))
                for r in csv.DictReader(io.StringIO(text, newline=""))
            ]
        else:
            objects = json.loads(text) if fmt == "json" else map(json.loads, text.splitlines())
            got = [(o["type"], o["timestamp"], o["metadata"]) for o in objects]
        assert got == want, fmt


def test_an_empty_table_exports_the_header_alone(store_env: Databases) -> None:
    with psycopg.connect(store_env.store, autocommit=True) as conn:
        conn.execute("TRUNCATE analytics")
    assert cli("export", "--csv").stdout == "type,count,timestamp,metadata,collected_at\n"
    assert cli("export", "--json").stdout == "[]\n"
    assert cli("export", "--ndjson").stdout == ""


def test_output_file_written_whole(store_env: Databases, tmp_path: Path) -> None:
    load_fixed(store_env.store)
    target = tmp_path / "out.ndjson"
    result = cli("export", "--ndjson", "-t", "activeInstances", "--output", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"exported 7 rows to {target}\n"
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["count"] for r in rows] == [3, 5, 4, 6, 8, 7, 9]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out.ndjson"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_no_table_writes_no_file(
    dbs: Databases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ANALYTICS_DSN", dbs.store)
    result = cli("export", "--output", str(tmp_path / "x.csv"))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == (
        "no data yet: the store has no table analytics (run 'analytics-cli collect' first)\n"
    )
    assert not (tmp_path / "x.csv").exists()


def test_conflicting_formats_exit_2(store_env: Databases) -> None:
    result = cli("export", "--csv", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "error: choose one of --csv, --json, --ndjson (or --format)\n"


def test_unknown_type_exit_2(store_env: Databases) -> None:
    load_fixed(store_env.store)
    result = cli("export", "-t", "dailyUser")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: unknown metric type 'dailyUser'",
        "hint: did you mean 'dailyUsers'?",
    ]


# ---------------------------------------------------------------------------- big store

BIG_ROWS = 600_000


@pytest.fixture(scope="module")
def big_store(admin_dsn: str) -> Iterator[str]:
    """A store with enough rows that an export takes a noticeable moment."""
    name = f"t_big_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_db(admin_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            ensure_table(conn, "analytics")
        conn.execute(
            'INSERT INTO analytics (type, count, "timestamp", metadata) '
            "SELECT 'activeInstances', g %% 977, '2020-01-01'::timestamptz + g * interval '1 minute', "
            "jsonb_build_object('note', repeat('x', 40)) FROM generate_series(1, %s) g",
            (BIG_ROWS,),
        )
    yield dsn
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.mark.parametrize("fmt", ["--csv", "--json"])
def test_closed_pipe_ends_quietly(big_store: str, fmt: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "analytics_cli", "export", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=proc_env(ANALYTICS_DSN=big_store),
    )
    with proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader goes away, like `| head -1`
        code = proc.wait(timeout=120)
        stderr = proc.stderr.read().decode()
    assert first in (b"type,count,timestamp,metadata,collected_at\n", b"[\n")
    assert code == 0
    assert stderr == ""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_output_leaves_no_file(big_store: str, tmp_path: Path, how: int) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "export.csv"
    with subprocess.Popen(
        [sys.executable, "-m", "analytics_cli", "export", "--output", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=proc_env(ANALYTICS_DSN=big_store),
    ) as proc:
        # Wait until rows are landing in the temporary file, then interrupt mid-export.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(folder.glob(".export.csv.*.part"))
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the export ended before it could be interrupted"
        proc.send_signal(how)
        stdout, stderr = proc.communicate(timeout=60)
    assert not target.exists()
    assert stdout == b""
    if how == signal.SIGTERM:
        assert proc.returncode == 143
        assert list(folder.iterdir()) == []  # the temporary file was removed too
        assert stderr.decode() == (
            "error: terminated (SIGTERM); open transactions were rolled back\n"
        )
    else:
        assert proc.returncode == -signal.SIGKILL
        assert [p.suffix for p in folder.iterdir()] == [".part"]


def test_a_session_ended_mid_stream_is_one_error_line(big_store: str) -> None:
    """The server ends the export's session while rows flow: exit 3, one line, no trace."""
    with subprocess.Popen(
        [sys.executable, "-m", "analytics_cli", "export", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=proc_env(ANALYTICS_DSN=f"{big_store} application_name=export-mid-stream"),
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"[\n"  # rows are flowing; the pipe holds the rest
        with psycopg.connect(big_store, autocommit=True) as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'export-mid-stream' AND backend_type = 'client backend'"
            ).fetchall()
        assert ended == [(True,)]
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: store read failed: ")
    assert "terminat" in lines[0]
    assert not stdout.endswith(b"]\n")  # a cut-off array is never closed as if whole


def test_large_export_counts_every_row(big_store: str, tmp_path: Path) -> None:
    target = tmp_path / "all.csv"
    result = run_proc("export", "-o", str(target), env=proc_env(ANALYTICS_DSN=big_store))
    assert result.exit_code == 0
    assert result.stderr == f"exported {BIG_ROWS} rows to {target}\n"
    with target.open(newline="") as handle:
        assert sum(1 for _ in csv.reader(handle)) == BIG_ROWS + 1


def test_progress_bar_when_stderr_is_a_terminal(store_env: Databases, tmp_path: Path) -> None:
    import pty

    load_fixed(store_env.store)
    target = tmp_path / "p.csv"
    master, slave = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "analytics_cli", "export", "--output", str(target)],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=proc_env(ANALYTICS_DSN=store_env.store, COLUMNS="100"),
    ) as proc:
        os.close(slave)
        seen = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            seen += data
        proc.wait(timeout=60)
    os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0
    assert "exporting p.csv" in text
    assert text.rstrip().endswith(f"exported 15 rows to {target}")
    assert len(target.read_text().splitlines()) == 16
