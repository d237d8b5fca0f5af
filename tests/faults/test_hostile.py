"""Hostile input: injection attempts are refused or harmless; fuzzed config and times never crash."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from analytics_cli.config.dump import dump, to_document
from analytics_cli.config.load import load
from analytics_cli.errors import ConfigError
from analytics_cli.metrics import builtin_metrics, enabled_metrics
from analytics_cli.timeutil import parse_duration, parse_timestamp, parse_when
from tests.conftest import Databases, cli
from tests.faults.conftest import SLOT
from tests.helpers import custom_config

INJECTIONS = [
    "x' OR 'a'='a",
    "ok'; DROP TABLE analytics; --",
    'ok"; DROP TABLE "user"; --',
    "ok') UNION SELECT usename, 1, now(), '{}', now() FROM pg_user --",
    "ok\x00; DELETE FROM analytics",
    "$$; DELETE FROM analytics; $$",
]


def _tables(dbs: Databases) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The store's rows and the platform's user rows, to show nothing was touched."""
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count::text FROM analytics ORDER BY type").fetchall()
    with dbs.source_conn() as conn:
        users = conn.execute('SELECT count(*) FROM "user"').fetchall()
    return rows, users


@pytest.fixture
def collected(dbs: Databases, tmp_path: Path) -> Path:
    """A store with one collected slot and a config pointing at it."""
    path = custom_config(
        tmp_path / "h.toml",
        [("ok", "SELECT 1 AS count")],
        source={"dsn": dbs.source},
        store={"dsn": dbs.store},
        collect={"retries": 0},
    )
    result = cli("-c", str(path), "collect", "--at", SLOT)
    assert result.exit_code == 0, result.stderr
    return path


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(
    "command", [["show"], ["show", "-f", "csv"], ["export"], ["export", "--ndjson"]]
)
def test_type_injection_is_refused(
    dbs: Databases, collected: Path, command: list[str], value: str
) -> None:
    before = _tables(dbs)
    result = cli("-c", str(collected), *command, "--since", "3650d", "--type", value)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: unknown metric type {value!r}\nhint: known types: ok\n"
    assert _tables(dbs) == before == ([("ok", "1")], [(0,)])


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("command", ["show", "export"])
def test_window_injection_is_refused(
    dbs: Databases, collected: Path, command: str, option: str, value: str
) -> None:
    before = _tables(dbs)
    result = cli("-c", str(collected), command, f"{option}={value}")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: invalid {option} {value!r}\n"
        "hint: use ISO 8601 (2026-11-29, 2026-11-29T10:30:00Z) or a duration ago (30m, 7d)\n"
    )
    assert _tables(dbs) == before


@pytest.mark.parametrize("value", INJECTIONS)
def test_collect_only_and_at_injection_is_refused(
    dbs: Databases, collected: Path, value: str
) -> None:
    before = _tables(dbs)
    only = cli("-c", str(collected), "collect", "--only", value)
    assert (only.exit_code, only.stdout) == (2, "")
    known = ", ".join([m.type for m in builtin_metrics()] + ["ok"])
    assert only.stderr == f"error: unknown metric type {value!r}\nhint: known types: {known}\n"
    at = cli("-c", str(collected), "collect", "--at", value)
    assert (at.exit_code, at.stdout) == (2, "")
    assert at.stderr.startswith(f"error: invalid --at {value!r}\n")
    assert _tables(dbs) == before


@pytest.mark.parametrize(
    "table",
    [
        'analytics; DROP TABLE "user"; --',
        'analytics"; DROP TABLE "user"; --',
        "analytics' OR '1'='1",
        "public.analytics.extra",
        "pg_catalog.pg_class; --",
        "a b",
        "",
    ],
)
def test_store_table_injection_is_refused(dbs: Databases, tmp_path: Path, table: str) -> None:
    path = custom_config(
        tmp_path / "t.toml",
        [("ok", "SELECT 1 AS count")],
        source={"dsn": dbs.source},
        store={"dsn": dbs.store, "table": table},
    )
    for command in (["collect"], ["db", "init"], ["show"], ["export"]):
        result = cli("-c", str(path), *command)
        assert (result.exit_code, result.stdout) == (2, ""), command
        assert result.stderr == (
            f"error: {path}: store.table {table!r} is not a valid table name\n"
            "hint: use letters, digits and underscores, optionally schema-qualified: "
            "metrics.analytics\n"
        )
    with dbs.source_conn() as conn:
        assert conn.execute("SELECT to_regclass('\"user\"') IS NOT NULL").fetchone() == (True,)
    with dbs.store_conn() as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)


def test_odd_but_valid_table_name_is_quoted(dbs: Databases, tmp_path: Path) -> None:
    # Upper case and $ are legal identifiers: quoted, they name exactly that table.
    path = custom_config(
        tmp_path / "t.toml",
        [("ok", "SELECT 1 AS count")],
        source={"dsn": dbs.source},
        store={"dsn": dbs.store, "table": "Metrics$1.Select"},
    )
    result = cli("-c", str(path), "collect", "--at", SLOT)
    assert result.exit_code == 0, result.stderr
    with dbs.store_conn() as conn:
        rows = conn.execute('SELECT type, count FROM "Metrics$1"."Select"').fetchall()
    assert [(t, int(c)) for t, c in rows] == [("ok", 1)]


# ---------------------------------------------------------------------------- fuzzing

KNOWN_KEYS = [
    "source",
    "store",
    "collect",
    "metric",
    "dsn",
    "table",
    "interval",
    "statement_timeout",
    "connect_timeout",
    "retries",
    "metrics",
    "ping_url",
    "type",
    "sql",
    "description",
]
PLAUSIBLE = st.sampled_from(
    ["30m", "0s", "1h30m", "999999999w999999999w", "analytics", "x.y", "activeUsers", "", " "]
)
SCALARS = st.one_of(
    st.text(max_size=12),
    PLAUSIBLE,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
)
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=8))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
DOCUMENTS = st.dictionaries(
    KEYS,
    st.one_of(
        st.dictionaries(KEYS, VALUES, max_size=5),
        st.lists(st.dictionaries(KEYS, VALUES, max_size=4), max_size=3),
        VALUES,
    ),
    max_size=4,
)
TOMLISH = st.one_of(
    st.text(),
    st.lists(
        st.sampled_from(
            ["[collect]", "[[metric]]", "[store]", "interval = ", "retries = ", "type = ", "sql = ",
             '"', "'''", "[", "]", "{", "}", "=", "\n", "1e999", "9" * 5000, "[" * 2000,
             "0x", "1979-02-30", "nan", "table = ", '"30m"', "'x'", ",", "#", "\\u0000"]
        ) | st.text(max_size=5),
        max_size=30,
    ).map("".join),
)  # fmt: skip


def _load(text: str | bytes) -> None:
    """Load a config text: it must give Settings or a ConfigError, nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            settings = load(path, env={})
            enabled_metrics(settings)
            dump(to_document(settings))
        except ConfigError as exc:
            assert str(exc).strip()


def _dumps(doc: dict[str, Any]) -> str:
    try:
        return tomli_w.dumps(doc)
    except (TypeError, ValueError):
        reject()


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(TOMLISH)
def test_fuzz_config_text(text: str) -> None:
    _load(text.encode("utf-8", errors="replace"))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_config_bytes(data: bytes) -> None:
    _load(data)


@FUZZ
@given(DOCUMENTS)
def test_fuzz_config_documents(doc: dict[str, Any]) -> None:
    _load(_dumps(doc))


@FUZZ
@given(st.one_of(st.text(), st.from_regex(r"\d{1,12}[smhdwSMHDW]{0,2}(\d{1,12}[smhdw])*")))
def test_fuzz_durations(text: str) -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    for parse in (
        lambda t: parse_duration(t),
        lambda t: parse_timestamp(t),
        lambda t: parse_when(t, now=now),
    ):
        try:
            parse(text)
        except ConfigError as exc:
            assert str(exc).startswith(("invalid", "empty"))


def _error_lines(stderr: str) -> list[str]:
    """stderr after any warnings: exactly one error line, maybe a hint, never a traceback."""
    lines = [line for line in stderr.splitlines() if not line.startswith("warning: ")]
    assert lines, stderr
    assert lines[0].startswith("error: "), stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), stderr
    assert len(lines) <= 2, stderr
    return lines


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(DOCUMENTS.map(_dumps), TOMLISH))
def test_fuzz_config_through_the_cli_exits_2(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        path.write_bytes(text.encode("utf-8", errors="replace"))
        # Nothing to connect to: every run must stop at a configuration error, exit 2.
        result = cli(
            "--dsn", "host=127.0.0.1 port=1 connect_timeout=1", "-c", str(path),
            "collect", "--dry-run", "--only", "no such metric!",
        )  # fmt: skip
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr
    _error_lines(result.stderr)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=40))
def test_fuzz_times_through_the_cli(text: str) -> None:
    result = cli(
        "--dsn", "host=127.0.0.1 port=1", "collect", f"--at={text}", "--only", "no such metric!"
    )
    assert (result.exit_code, result.stdout) == (2, "")
    lines = _error_lines(result.stderr)
    assert lines[0].startswith(("error: invalid --at", "error: unknown metric type")), lines
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text('[collect]\nretries = 0\nconnect_timeout = "1s"\n')
        for option in ("--since", "--until"):
            shown = cli(
                "--dsn", "host=127.0.0.1 port=1", "-c", str(path), "export", f"{option}={text}"
            )
            # Either the time is refused (2) or it is fine and the absent server is (3).
            assert shown.exit_code in (2, 3), shown.stderr
            assert shown.stdout == ""
            lines = _error_lines(shown.stderr)
            if shown.exit_code == 3:
                assert lines[0].startswith("error: cannot connect to the store database"), lines
            else:
                assert lines[0].startswith(f"error: invalid {option}") or lines[0] == (
                    "error: --since must be before --until"
                ), lines


def test_json_report_of_hostile_metric_names_is_valid(dbs: Databases, tmp_path: Path) -> None:
    # Metric names are restricted, so even the report and the store's JSON stay clean.
    path = custom_config(
        tmp_path / "m.toml",
        [("a.b:c-d_e", "SELECT 1 AS count")],
        source={"dsn": dbs.source},
        store={"dsn": dbs.store},
    )
    result = cli("-c", str(path), "collect", "--at", SLOT, "--json")
    assert result.exit_code == 0, result.stderr
    assert [m["type"] for m in json.loads(result.stdout)["metrics"]] == ["a.b:c-d_e"]
    bad = custom_config(
        tmp_path / "bad.toml", [("x'; DROP TABLE analytics; --", "SELECT 1 AS count")]
    )
    refused = cli("-c", str(bad), "collect")
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr.startswith(
        f'error: {bad}: metric[0].type: invalid metric type "x\'; DROP TABLE analytics; --"\n'
    )
