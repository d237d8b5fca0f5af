"""Dimensional metrics: one row per location, max_series, metadata filters and --by charts."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import location_data
from tests.conftest import Databases, cli

AT = "2026-11-29T10:10:00Z"
SLOT = "2026-11-29T10:00:00Z"
BY_LOCATION = ["instanceUsersByLocation", "activeInstancesByLocation"]


@pytest.fixture
def places(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """The per-location dataset; source and store through the environment."""
    with dbs.source_conn() as conn:
        location_data.load(conn)
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    return dbs


def by_type(dbs: Databases) -> dict[str, dict[str, int]]:
    """Stored rows as type -> {location: count}."""
    out: dict[str, dict[str, int]] = {}
    with dbs.store_conn() as conn:
        rows = conn.execute("SELECT type, count, metadata FROM analytics").fetchall()
    for type_, count, metadata in rows:
        assert isinstance(metadata, dict) and set(metadata) == {"location"}
        out.setdefault(str(type_), {})[metadata["location"]] = int(str(count))
    return out


def collect_locations(*extra: str) -> Any:
    args = ["collect", "--at", AT]
    for name in BY_LOCATION:
        args += ["--only", name]
    return cli(*args, *extra)


def test_per_location_values_equal_an_independent_count(places: Databases) -> None:
    result = collect_locations("--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"] == [
        {"type": "instanceUsersByLocation", "status": "stored", "count": None, "series": 3},
        {"type": "activeInstancesByLocation", "status": "stored", "count": None, "series": 2},
    ]
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"collect slot={SLOT} stored=2 present=0 failed=0 duration=")
    stored = by_type(places)
    assert stored == location_data.EXPECTED
    with places.source_conn() as conn:
        for metric in BY_LOCATION:
            assert stored[metric] == location_data.independent_counts(conn, metric)


def test_disabled_by_default_and_enabled_by_collect_metrics(
    places: Databases, tmp_path: Path
) -> None:
    listing = cli("metrics", "--json")
    assert listing.exit_code == 0, listing.stderr
    enabled = {m["type"]: m["enabled"] for m in json.loads(listing.stdout)}
    assert enabled["instanceUsersByLocation"] is False
    assert enabled["activeInstancesByLocation"] is False
    assert enabled["activeInstances"] is True
    plain = cli("collect", "--at", AT, "--json")
    assert plain.exit_code == 0, plain.stderr
    assert not {m["type"] for m in json.loads(plain.stdout)["metrics"]} & set(BY_LOCATION)
    config = tmp_path / "c.toml"
    config.write_text('[collect]\nmetrics = ["activeInstancesByLocation"]\n')
    result = cli("--config", str(config), "collect", "--at", "2026-11-29T10:40:00Z", "--json")
    assert result.exit_code == 0, result.stderr
    assert [m["type"] for m in json.loads(result.stdout)["metrics"]] == [
        "activeInstancesByLocation"
    ]


def test_rerun_is_present_and_replace_drops_vanished_values(places: Databases) -> None:
    first = collect_locations()
    assert first.exit_code == 0
    assert first.stdout == ""
    assert first.stderr.splitlines()[:2] == [
        f"slot={SLOT} type=instanceUsersByLocation status=stored series=3",
        f"slot={SLOT} type=activeInstancesByLocation status=stored series=2",
    ]
    again = collect_locations("--json")
    assert again.exit_code == 0, again.stderr
    assert [m["status"] for m in json.loads(again.stdout)["metrics"]] == ["present", "present"]
    with places.source_conn() as conn:
        conn.execute("UPDATE instance SET ended = true WHERE \"roomCode\" IN ('i1', 'i2')")
    replaced = collect_locations("--replace", "--json")
    assert replaced.exit_code == 0, replaced.stderr
    assert by_type(places)["activeInstancesByLocation"] == {"Arena": 2}
    assert by_type(places)["instanceUsersByLocation"] == {"Lobby": 2, "Arena": 1, "Garden": 1}


def custom(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(body)
    return path


ALL_NAMES = """
SELECT name AS location, 1 AS count FROM (SELECT DISTINCT name FROM location) AS n
"""


def test_more_rows_than_max_series_fails_that_metric_alone(
    places: Databases, tmp_path: Path
) -> None:
    config = custom(
        tmp_path,
        f'[[metric]]\ntype = "names"\ndimensions = ["location"]\nmax_series = 3\n'
        f'sql = """{ALL_NAMES}"""\n',
    )
    result = cli(
        "--config", str(config), "collect", "--at", AT, "--only", "names",
        "--only", "activeInstances", "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics == [
        {
            "type": "names",
            "status": "failed",
            "count": None,
            "error": "query returned more than max_series = 3 rows; nothing was stored",
        },
        {"type": "activeInstances", "status": "stored", "count": 5},
    ]
    with places.store_conn() as conn:
        rows = conn.execute("SELECT type, count::int FROM analytics").fetchall()
    assert rows == [("activeInstances", 5)]
    # Four names (Lobby, Arena, Garden, Empty): exactly at the cap it is stored.
    config.write_text(config.read_text().replace("max_series = 3", "max_series = 4"))
    ok = cli("--config", str(config), "collect", "--at", AT, "--only", "names")
    assert ok.exit_code == 0, ok.stderr
    with places.store_conn() as conn:
        got = conn.execute("SELECT metadata->>'location' FROM analytics WHERE type = 'names'")
        assert sorted(r[0] for r in got) == ["Arena", "Empty", "Garden", "Lobby"]


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        (
            "SELECT name AS place, 1 AS count FROM location",
            "query columns ['place', 'count'] do not match count plus dimensions ['location']",
        ),
        (
            "SELECT name AS location, 1 AS count FROM location",
            "query returned the dimensions {'location': 'Arena'} more than once",
        ),
        (
            "SELECT name AS location, NULL::int AS count FROM location WHERE name = 'Lobby'",
            "count is None, not a number (at {'location': 'Lobby'})",
        ),
        (
            "SELECT repeat('x', 2000) AS location, 1 AS count",
            "dimension location value is too long (2000 bytes)",
        ),
    ],
)
def test_bad_dimensional_queries_fail_cleanly(
    places: Databases, tmp_path: Path, sql: str, error: str
) -> None:
    config = custom(
        tmp_path, f'[[metric]]\ntype = "bad"\ndimensions = ["location"]\nsql = """{sql}"""\n'
    )
    result = cli("--config", str(config), "collect", "--at", AT, "--only", "bad", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["metrics"] == [
        {"type": "bad", "status": "failed", "count": None, "error": error}
    ]


def test_rows_per_location_without_dimensions_say_what_to_add(
    places: Databases, tmp_path: Path
) -> None:
    # The query is right for a dimensional metric; only the dimensions key is missing.
    config = custom(
        tmp_path,
        '[[metric]]\ntype = "perLocation"\nsql = """\n'
        "SELECT l.name AS location, count(*) AS count FROM instance AS i\n"
        'JOIN location AS l ON l.id = i."locationId" GROUP BY l.name\n"""\n'
        '[[metric]]\ntype = "perPair"\nsql = """\n'
        "SELECT l.name AS location, i.ended AS ended, count(*) AS count FROM instance AS i\n"
        'JOIN location AS l ON l.id = i."locationId" GROUP BY 1, 2\n"""\n',
    )
    result = cli(
        "--config",
        str(config),
        "collect",
        "--at",
        AT,
        "--only",
        "perLocation",
        "--only",
        "perPair",
        "--json",
    )
    assert result.exit_code == 1
    errors = [(m["type"], m["error"]) for m in json.loads(result.stdout)["metrics"]]
    assert errors == [
        (
            "perLocation",
            "query must return exactly one row, got more than one row; it also returns "
            'location: for one row per location, add dimensions = ["location"]',
        ),
        (
            "perPair",
            "query must return exactly one row, got more than one row; it also returns "
            'location, ended: for one row per location and ended, add dimensions = ["location", "ended"]',
        ),
    ]


def test_no_rows_is_a_successful_empty_collection(places: Databases, tmp_path: Path) -> None:
    config = custom(
        tmp_path,
        '[[metric]]\ntype = "none"\ndimensions = ["location"]\n'
        'sql = "SELECT name AS location, 1 AS count FROM location WHERE false"\n',
    )
    result = cli("--config", str(config), "collect", "--at", AT, "--only", "none", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"] == [
        {"type": "none", "status": "stored", "count": None, "series": 0}
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'dimensions = ["source"]',
            "dimensions: 'source' is reserved for the [[source]] tag of each row",
        ),
        ('dimensions = ["count"]', "dimensions[0] must be a column name other than count"),
        ("max_series = 5", "max_series applies only to a metric with dimensions"),
        ('dimensions = ["a"]\nmax_series = 0', "max_series must be between 1 and 100000"),
        ("dimensions = true", "metric[0].dimensions must be a list, got bool"),
    ],
)
def test_dimension_config_errors(tmp_path: Path, body: str, message: str) -> None:
    config = custom(tmp_path, f'[[metric]]\ntype = "x"\nsql = "SELECT 1 AS count"\n{body}\n')
    result = cli("--config", str(config), "metrics")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr.splitlines()[0]
    assert result.stderr.startswith("error: ")


def collect_three_slots(places: Databases) -> None:
    """Three slots of both per-location metrics; one Lobby instance ends before the last."""
    for at in ("2026-11-29T09:10:00Z", "2026-11-29T09:40:00Z"):
        result = cli("collect", "--at", at, "--only", BY_LOCATION[0], "--only", BY_LOCATION[1])
        assert result.exit_code == 0, result.stderr
    with places.source_conn() as conn:
        conn.execute("UPDATE instance SET ended = true WHERE \"roomCode\" = 'i2'")
    assert collect_locations().exit_code == 0


def test_show_and_export_filter_on_metadata(places: Databases) -> None:
    collect_three_slots(places)
    since = ["--since", "2026-11-29T09:00:00Z", "--until", "2026-11-29T11:00:00Z"]
    shown = cli("show", "--type", "activeInstancesByLocation", "--where", "location=Lobby",
                *since, "--format", "json")  # fmt: skip
    assert shown.exit_code == 0, shown.stderr
    assert shown.stderr == ""
    points = json.loads(shown.stdout)
    assert [(p["timestamp"], p["count"], p["metadata"]) for p in points] == [
        ("2026-11-29T09:00:00Z", 2, {"location": "Lobby"}),
        ("2026-11-29T09:30:00Z", 2, {"location": "Lobby"}),
        ("2026-11-29T10:00:00Z", 1, {"location": "Lobby"}),
    ]
    exported = cli("export", "--ndjson", "--where", "location=Arena", "--where", "location=Arena")
    assert exported.exit_code == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted((r["type"], r["timestamp"], r["count"]) for r in rows) == [
        ("activeInstancesByLocation", "2026-11-29T09:00:00Z", 2),
        ("activeInstancesByLocation", "2026-11-29T09:30:00Z", 2),
        ("activeInstancesByLocation", "2026-11-29T10:00:00Z", 2),
        ("instanceUsersByLocation", "2026-11-29T09:00:00Z", 1),
        ("instanceUsersByLocation", "2026-11-29T09:30:00Z", 1),
        ("instanceUsersByLocation", "2026-11-29T10:00:00Z", 1),
    ]
    assert {json.dumps(r["metadata"]) for r in rows} == {'{"location": "Arena"}'}
    # A value that looks like SQL or JSON is only ever a parameter.
    odd = cli("export", "--where", "location=x' OR '1'='1", "--where", 'a"b={"c": 1}')
    assert (odd.exit_code, odd.stdout, odd.stderr) == (
        0,
        "type,count,timestamp,metadata,collected_at\n",
        "",
    )
    bad = cli("export", "--where", "location")
    assert bad.exit_code == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines()[0] == "error: --where 'location' is not key=value"
    two = cli("show", "--where", "location=a", "--where", "location=b")
    assert two.exit_code == 2
    assert (
        two.stderr.splitlines()[0]
        == "error: --where gives two values for 'location'; a row has only one"
    )


def test_show_by_location_draws_one_series_per_value(places: Databases) -> None:
    collect_three_slots(places)
    window = ["--since", "2026-11-29T09:00:00Z", "--until", "2026-11-29T10:30:00Z"]
    result = cli("show", "--type", "instanceUsersByLocation", "--by", "location",
                 "--format", "chart", *window)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    # Legend: the top values by average, highest first (ties by name).
    assert lines[1] == "Lobby  Arena  Garden"
    table = lines[lines.index(next(line for line in lines if line.startswith("location"))) :]
    assert [row.split()[:2] for row in table[1:]] == [
        ["Lobby", "2"],
        ["Arena", "1"],
        ["Garden", "1"],
    ]
    top = cli("show", "--type", "instanceUsersByLocation", "--by", "location", "--top", "1",
              "--format", "chart", *window)  # fmt: skip
    assert top.exit_code == 0, top.stderr
    top_lines = top.stdout.splitlines()
    assert top_lines[1] == "Lobby"
    assert top_lines[-2].split()[:2] == ["Lobby", "2"]
    assert top_lines[-1] == "2 more location values not shown; see --top"
    bucketed = cli("show", "--type", "activeInstancesByLocation", "--by", "location",
                   "--bucket", "1h", "--agg", "max", "--format", "json", *window)  # fmt: skip
    assert bucketed.exit_code == 0, bucketed.stderr
    assert [(p["timestamp"], p["count"], p["metadata"]) for p in json.loads(bucketed.stdout)] == [
        ("2026-11-29T09:00:00Z", 2, {"location": "Arena"}),
        ("2026-11-29T09:00:00Z", 2, {"location": "Lobby"}),
        ("2026-11-29T10:00:00Z", 2, {"location": "Arena"}),
        ("2026-11-29T10:00:00Z", 1, {"location": "Lobby"}),
    ]
    table = cli("show", "--type", "activeInstancesByLocation", "--by", "location",
                "--bucket", "1h", "--agg", "min", "--format", "table", *window)  # fmt: skip
    assert table.exit_code == 0, table.stderr
    assert [line.split() for line in table.stdout.splitlines()[1:]] == [
        ["time", "type", "count", "metadata"],
        ["2026-11-29", "09:00", "activeInstancesByLocation", "2", '{"location":', '"Arena"}'],
        ["2026-11-29", "09:00", "activeInstancesByLocation", "2", '{"location":', '"Lobby"}'],
        ["2026-11-29", "10:00", "activeInstancesByLocation", "2", '{"location":', '"Arena"}'],
        ["2026-11-29", "10:00", "activeInstancesByLocation", "1", '{"location":', '"Lobby"}'],
    ]
    needs_one = cli("show", "--by", "location")
    assert needs_one.exit_code == 2
    assert needs_one.stderr.splitlines()[0] == "error: --by needs exactly one metric type"


def test_metadata_survives_export_and_import(places: Databases) -> None:
    collect_three_slots(places)
    first = cli("export", "--csv")
    assert first.exit_code == 0, first.stderr
    with psycopg.connect(places.store, autocommit=True) as conn:
        conn.execute("CREATE TABLE copied (LIKE analytics INCLUDING ALL)")
        with (
            conn.cursor() as cur,
            cur.copy(
                'COPY copied (type, count, "timestamp", metadata, collected_at) '
                "FROM STDIN (FORMAT csv, HEADER)"
            ) as copy,
        ):
            copy.write(first.stdout.encode())
    config = Path("copied.toml")
    config.write_text('[store]\ntable = "copied"\n')
    for fmt in ("--csv", "--ndjson", "--json"):
        original = cli("export", fmt)
        again = cli("--config", str(config), "export", fmt)
        assert again.exit_code == 0, again.stderr
        assert again.stdout == original.stdout
    rows = list(csv.DictReader(io.StringIO(first.stdout)))
    assert len(rows) == 3 * 3 + 2 * 2 + 2
    assert {r["metadata"] for r in rows} == {
        '{"location": "Lobby"}',
        '{"location": "Arena"}',
        '{"location": "Garden"}',
    }
    # instanceUsersByLocation 2 + 1 + 1 per slot; activeInstancesByLocation 4, 4, then 3.
    assert sum(Decimal(r["count"]) for r in rows) == 3 * 4 + 4 + 4 + 3
