"""`report --html`: one self-contained page, loaded from disk by a real headless Chromium;
its headline numbers against an independent SQL computation over the window."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests.chromium import Browser, browser  # noqa: F401 (a fixture)
from tests.conftest import Databases, cli, proc_env
from tests.helpers import insert_store_rows

T0 = datetime(2026, 1, 5, tzinfo=UTC)
INTERVAL = timedelta(minutes=30)
SINCE, UNTIL = T0 + timedelta(days=2), T0 + timedelta(days=4)
WINDOW = ("--since", SINCE.isoformat(), "--until", UNTIL.isoformat())
LOCATIONS = ("Lobby", "Plaza", "Arena", "Gallery", "Beach", "Studio")


def load(dsn: str) -> None:
    """Four days of slots (two before the window: the previous period), three metrics.

    activeInstances misses three slots in the window; instanceUsersByLocation has six
    locations (the chart draws the top five); dailyUsers has fractions.
    """
    rows: list[tuple[str, Decimal, datetime, dict[str, str]]] = []
    for k in range(4 * 48):
        slot = T0 + k * INTERVAL
        if k not in (110, 111, 150):
            rows.append(("activeInstances", Decimal(5 + (k * 7) % 13), slot, {}))
        rows.append(("dailyUsers", Decimal(100 + k) / 4, slot, {}))
        for i, name in enumerate(LOCATIONS):
            rows.append(
                (
                    "instanceUsersByLocation",
                    Decimal((k + i * 3) % 9 + 10 * i),
                    slot,
                    {"location": name},
                )
            )
    insert_store_rows(dsn, rows)


@pytest.fixture
def fixed(dbs: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", dbs.source)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    load(dbs.store)
    return dbs


# The headline, computed straight from the table: per type and slot the sum of its rows,
# then over those slots; the previous period's average; the missing slots of the window
# from the type's first slot on (generate_series), none of it through analytics_cli.
INDEPENDENT = """
WITH slots AS (
    SELECT type, "timestamp" AS t, sum(count) AS v FROM analytics
    WHERE "timestamp" >= %(since)s AND "timestamp" < %(until)s GROUP BY 1, 2
), before AS (
    SELECT type, avg(pv) AS pv FROM (
        SELECT type, sum(count) AS pv FROM analytics
        WHERE "timestamp" >= %(since)s - (%(until)s - %(since)s) AND "timestamp" < %(since)s
        GROUP BY type, "timestamp") AS p GROUP BY 1
)
SELECT s.type,
       (SELECT v FROM slots l WHERE l.type = s.type ORDER BY t DESC LIMIT 1) AS latest,
       min(s.v), avg(s.v), max(s.v), count(*),
       (SELECT count(*) FROM generate_series(min(s.t), %(until)s - interval '30 minutes',
                                             interval '30 minutes') AS g(t)
         WHERE NOT EXISTS (SELECT 1 FROM slots x WHERE x.type = s.type AND x.t = g.t)),
       (avg(s.v) - b.pv) / b.pv * 100
FROM slots s JOIN before b USING (type) GROUP BY s.type, b.pv ORDER BY 1
"""

CELLS = """JSON.stringify([...document.querySelectorAll('#headline tbody tr')].map(tr => [
  tr.dataset.type,
  Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.key, td.innerText]))
]))"""

CHARTS = """JSON.stringify([...document.querySelectorAll('figure.chart')].map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {type: f.dataset.type, width: box.width, height: box.height,
          lines: svg ? svg.querySelectorAll('path').length : 0,
          text: svg ? svg.textContent : ''};
}))"""


def test_the_report_loads_offline_in_chromium_and_its_numbers_match_sql(
    fixed: Databases,
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    page = tmp_path / "report.html"
    result = cli("report", "--html", str(page), *WINDOW)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == f"wrote the report of 3 metric(s) to {page}\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    text = page.read_text()
    # Nothing to fetch: no script, stylesheet link, import or source; every url() and href
    # points inside the page (the SVG's own clip paths and markers).
    for pattern in (r"<script", r"<link", r"@import", r"\bsrc=", r"url\((?!#)", r'href="(?!#)'):
        assert not re.search(pattern, text), pattern
    assert re.search(r'href="#', text) or "url(#" in text

    url = page.as_uri()
    session, loaded = browser.open(url)
    assert loaded.requests == [url]  # the page itself, from disk; nothing else attempted
    assert loaded.errors == []

    charts = json.loads(browser.evaluate(session, CHARTS))
    assert [c["type"] for c in charts] == [
        "activeInstances",
        "dailyUsers",
        "instanceUsersByLocation",
    ]
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 100, chart
        assert chart["lines"] > 5, chart
    # The dimensional chart draws the top five locations by average, not the sixth.
    legend = charts[2]["text"]
    assert all(name in legend for name in LOCATIONS[1:])
    assert "Lobby" not in legend

    cells = dict(json.loads(browser.evaluate(session, CELLS)))
    with psycopg.connect(fixed.store) as conn:
        expected = conn.execute(INDEPENDENT, {"since": SINCE, "until": UNTIL}).fetchall()
    assert [row[0] for row in expected] == list(cells)
    for name, latest, low, mean, high, slots, gaps, change in expected:
        got = cells[name]
        assert Decimal(got["latest"]) == latest, name
        assert Decimal(got["min"]) == low, name
        assert abs(Decimal(got["avg"]) - mean) <= Decimal("0.005"), name
        assert Decimal(got["max"]) == high, name
        assert int(got["slots"]) == slots, name
        assert int(got["gaps"]) == gaps, name
        assert abs(Decimal(got["change"].rstrip(" %")) - change) <= Decimal("0.05"), name
        assert got["at"] == "2026-01-08 23:30"
    assert cells["activeInstances"]["gaps"] == "3"

    shot = browser.screenshot(session, tmp_path / "report.png")
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 20_000
    printed = browser.pdf(session)
    assert printed.startswith(b"%PDF-")


def test_times_in_another_zone_and_the_window_header(fixed: Databases, tmp_path: Path) -> None:
    page = tmp_path / "paris.html"
    result = cli("report", "--html", str(page), *WINDOW, "--tz", "Europe/Paris", "-t", "dailyUsers")
    assert result.exit_code == 0, result.stderr
    text = page.read_text()
    assert "Window: 2026-01-07 01:00 to 2026-01-09 01:00, times in Europe/Paris." in text
    assert "with the window before, 2026-01-05 01:00 to 2026-01-07 01:00 (n/a: no data" in text
    assert '<td data-key="at">2026-01-09 00:30</td>' in text
    assert text.count('<figure class="chart"') == 1


def test_errors_leave_no_file(fixed: Databases, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    unknown = cli("report", "--html", str(page), "-t", "nope")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("error: unknown metric type 'nope'\n")
    missing = cli("report", "--html", str(tmp_path / "no" / "r.html"))
    assert missing.exit_code == 2
    assert (
        missing.stderr
        == f"error: cannot write {tmp_path / 'no' / 'r.html'}: folder {tmp_path / 'no'} does not exist\n"
    )
    page.write_text("old")
    zone = cli("report", "--html", str(page), "--tz", "Mars/Olympus")
    assert zone.exit_code == 2
    assert page.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "r.html"]
    needs = cli("report")
    assert needs.exit_code == 2
    assert "--html" in needs.stderr


def test_without_matplotlib_the_error_names_the_extra(fixed: Databases, tmp_path: Path) -> None:
    code = (
        "import sys\nsys.modules['matplotlib'] = None\nfrom analytics_cli.cli import main\nmain()\n"
    )
    page = tmp_path / "r.html"
    done = subprocess.run(
        [sys.executable, "-c", code, "report", "--html", str(page), *WINDOW],
        capture_output=True,
        text=True,
        env=proc_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: report needs matplotlib for its charts: pip install 'platform-analytics-cli[report]'"
    ]
    assert not page.exists()


@pytest.mark.parametrize("args", [("--help",), ("collect", "--help"), ("collect",)])
def test_only_report_imports_the_charting_library(fixed: Databases, args: tuple[str, ...]) -> None:
    # -X importtime lists every module a start-up imports: matplotlib is not among them.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "analytics_cli", *args],
        capture_output=True,
        text=True,
        env=proc_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "analytics_cli.cli" in imported
    assert not [m for m in imported if m.split(".")[0] in ("matplotlib", "numpy", "PIL")]
    assert "analytics_cli.report" not in imported


PHONE = """JSON.stringify({
  page: document.documentElement.scrollWidth,
  charts: [...document.querySelectorAll('figure.chart')].map(f => {
    const shown = [...f.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 0);
    const box = shown.length ? shown[0].getBoundingClientRect() : {width: 0};
    return {shown: shown.length, narrow: shown.length ? !!shown[0].closest('div.narrow') : false,
            width: box.width,
            scale: shown.length ? box.width / shown[0].viewBox.baseVal.width : 0};
  }),
  cells: [...document.querySelectorAll('#headline thead th')]
    .filter(th => th.getBoundingClientRect().width > 0).map(th => th.innerText)
})"""


def test_default_window_is_the_stored_span_and_the_page_fits_a_phone(
    fixed: Databases,
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    # Four days stored: without --since the window is those four days, not 30 with 26 empty.
    page = tmp_path / "r.html"
    until = (T0 + timedelta(days=4)).isoformat()
    result = cli("report", "--html", str(page), "--until", until)
    assert result.exit_code == 0, result.stderr
    text = page.read_text()
    assert "Window: 2026-01-05 00:00 to 2026-01-09 00:00, times in UTC." in text
    # Nothing before the window: no change column, and the page says why.
    assert "No change column: the store holds nothing from the window before" in text
    assert 'data-key="change"' not in text
    # No stray offset label (2026-Jan) under the charts: the window above gives the year.
    assert "2026-Jan" not in text and text.count('<figure class="chart"') == 3

    session, loaded = browser.open(page.as_uri())
    assert loaded.errors == []
    wide = json.loads(browser.evaluate(session, PHONE))
    assert [(c["shown"], c["narrow"]) for c in wide["charts"]] == [(1, False)] * 3
    assert "at" in wide["cells"] and "slots" in wide["cells"]
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        session,
        width=390,
        height=844,
        deviceScaleFactor=3,
        mobile=True,
    )
    phone = json.loads(browser.evaluate(session, PHONE))
    assert phone["page"] <= 390  # nothing wider than the phone: no sideways scrolling
    for chart in phone["charts"]:
        # The phone's own drawing, at nearly its natural size: its 9 pt text stays readable.
        assert chart["shown"] == 1 and chart["narrow"], chart
        assert chart["width"] <= 390 and chart["scale"] >= 0.8, chart
    assert phone["cells"] == ["metric", "latest", "min", "avg", "max", "gaps"]

    # A history longer than 30 days: the window is the last 30 days.
    late = cli("report", "--html", str(page), "--until", (T0 + timedelta(days=40)).isoformat())
    assert late.exit_code == 0, late.stderr
    assert "Window: 2026-01-15 00:00 to 2026-02-14 00:00, times in UTC." in page.read_text()
