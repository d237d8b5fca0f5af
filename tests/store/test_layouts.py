"""Each store layout behind the Layout protocol: the same behaviour, one test over both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from analytics_cli.config.schema import MetricSpec, Settings
from analytics_cli.engines.base import Layout
from analytics_cli.engines.postgresql.layouts import detect, ensure
from analytics_cli.samples import MetricFailure, Sample
from tests.conftest import Databases

SLOT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
LATER = SLOT + timedelta(minutes=30)
JOBS = [(MetricSpec("a", "SELECT 1 AS count"), None), (MetricSpec("b", "SELECT 1 AS count"), None)]


@pytest.fixture(params=["native", "ir-engine"])
def store(request: pytest.FixtureRequest, dbs: Databases) -> Iterator[tuple[Any, Layout]]:
    """A connection and the layout of an empty store table of each kind."""
    # The platform's database holds the iR Engine's own table; the store database gets the
    # analytics-cli table created by ensure().
    dsn = dbs.store if request.param == "native" else dbs.source
    settings = Settings(store_dsn=dsn, layout=request.param)
    with psycopg.connect(dsn) as conn:
        layout = ensure(conn, settings)[0] if request.param == "native" else detect(conn, settings)
        assert layout is not None
        conn.commit()
        yield conn, layout


def _read(conn: Any, layout: Layout) -> list[tuple[str, Decimal, datetime]]:
    query = sql.SQL('SELECT type, count, "timestamp" FROM {} ORDER BY 3, 1').format(
        layout.relation()
    )
    return [(r[0], r[1], r[2]) for r in conn.execute(query)]


def test_write_present_and_read_back(store: tuple[Any, Layout]) -> None:
    conn, layout = store
    assert layout.present(conn, SLOT, JOBS) == set()
    written = layout.write(conn, SLOT, SLOT, None, [Sample("a", Decimal(3))], replace=False)
    assert written == {"a": True}
    assert layout.present(conn, SLOT, JOBS) == {("a", None)}
    assert layout.present(conn, LATER, JOBS) == set()
    layout.write(
        conn, LATER, LATER, None, [Sample("a", Decimal(4)), Sample("b", Decimal(5))], replace=False
    )
    assert _read(conn, layout) == [
        ("a", Decimal(3), SLOT),
        ("a", Decimal(4), LATER),
        ("b", Decimal(5), LATER),
    ]
    assert layout.stored_slots(conn, SLOT, LATER, JOBS) == {
        ("a", None, SLOT),
        ("a", None, LATER),
        ("b", None, LATER),
    }
    assert layout.stored_slots(conn, LATER, LATER, JOBS[1:]) == {("b", None, LATER)}


def test_replace_updates_the_slot_in_place(store: tuple[Any, Layout]) -> None:
    conn, layout = store
    layout.write(conn, SLOT, SLOT, None, [Sample("a", Decimal(3))], replace=False)
    layout.write(conn, SLOT, LATER, None, [Sample("a", Decimal(9))], replace=True)
    assert _read(conn, layout) == [("a", Decimal(9), SLOT)]


def test_time_column_and_insertion_order_name_real_columns(store: tuple[Any, Layout]) -> None:
    conn, layout = store
    layout.write(conn, SLOT, SLOT, None, [Sample("a", Decimal(1))], replace=False)
    columns = [layout.time_column, *([layout.insertion_order] if layout.insertion_order else [])]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(layout.table)
    )
    (row,) = conn.execute(query).fetchall()
    assert row[0] == SLOT


def test_fit_and_refuse(store: tuple[Any, Layout]) -> None:
    _, layout = store
    whole, fraction = Sample("a", Decimal(2)), Sample("a", Decimal("0.5"))
    assert layout.fit(whole) == whole
    dimensional = MetricSpec("d", "SELECT 1", dimensions=("k",))
    if layout.name == "native":
        assert layout.fit(fraction) == fraction
        layout.refuse(Settings(), [dimensional])  # everything fits
    else:
        assert layout.fit(fraction) == MetricFailure(
            "a", "count 0.5 is not a whole number; the iR Engine analytics table stores integers"
        )
        with pytest.raises(Exception, match="has dimensions"):
            layout.refuse(Settings(), [dimensional])


def test_report_and_anomaly_reads_agree_on_both_layouts(store: tuple[Any, Layout]) -> None:
    # report and status --anomalies read per-slot totals through the layout's relation.
    from analytics_cli.engines.postgresql.store import PostgresStore
    from analytics_cli.engines.reading import total_points
    from analytics_cli.engines.shapes import Selection

    conn, layout = store
    found = PostgresStore(conn, Settings(table=layout.table))
    for k, value in enumerate((3, 5, 4)):
        slot = SLOT + k * timedelta(minutes=30)
        layout.write(conn, slot, slot, None, [Sample("a", Decimal(value))], replace=False)
    sel = found.selection(
        layout, Selection(layout.table, SLOT, SLOT + timedelta(hours=2), ("a",)), say_gaps=False
    )
    interval = timedelta(minutes=30)
    [summary] = found.summaries(sel, interval)
    assert (summary.latest, summary.min, summary.max, summary.slots) == (4, 3, 5, 3)
    assert summary.avg == 4
    points = total_points(found, sel, interval, interval)
    assert [(p.timestamp, p.count) for p in points] == [
        (SLOT + k * interval, Decimal(v)) for k, v in enumerate((3, 5, 4))
    ]
    assert found.first_metadata(sel, "a") == {}
