"""The documentation's pictures come from a script that still runs: demo, show, report."""

from __future__ import annotations

import html
import importlib.util
import struct
from pathlib import Path

import pytest

from tests.chromium import chromium_path
from tests.required import unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"


@pytest.mark.slow
def test_the_screenshot_script_draws_show_and_the_report_from_the_demo(tmp_path: Path) -> None:
    if chromium_path() is None:
        unavailable("CHROMIUM", "chromium is not installed (apt-get install chromium)")
    spec = importlib.util.spec_from_file_location("screenshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    written = script.make(tmp_path, days=2)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "img/show-chart.svg",
        "img/show-table.svg",
        "report.png",
    ]
    # rich writes each space as &#160; (a no-break space).
    table, chart = (
        html.unescape((tmp_path / "img" / name).read_text()).replace("\xa0", " ")
        for name in ("show-table.svg", "show-chart.svg")
    )
    assert table.startswith("<svg") and chart.startswith("<svg")
    # Nothing to fetch when a page shows them: rich's web font links are taken out.
    assert 'url("http' not in table and 'url("http' not in chart
    # The overview names every default metric; the chart draws braille dots.
    for metric in ("activeInstances", "dailyUsers", "chatMessages"):
        assert metric in table
    assert "analytics-cli show activeInstances --since 3d" in chart
    assert any(0x2801 <= ord(c) <= 0x28FF for c in chart)
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1000, script.REPORT_HEIGHT)
    # The pictures the pages show are the script's, in the places it writes.
    docs = SCRIPT.parent.parent / "docs"
    for path in written:
        assert (docs / path.relative_to(tmp_path)).stat().st_size > 0
