"""Make the documentation's pictures from the demo, so they can be refreshed, never drawn by hand.

    python scripts/screenshots.py                 # writes docs/img/show-*.svg and docs/report.png
    python scripts/screenshots.py --out /tmp/x --days 3

It runs `analytics-cli demo` on a fresh embedded PostgreSQL in a temporary home, renders
`show` (the overview and a chart) as a 100-column terminal would show it, exported to SVG by
rich, and captures the top of `report --html` in headless Chromium at 1000 px wide.
Needs the `dev` extra (embedded PostgreSQL, matplotlib, rich) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COLUMNS = 100
# (file name, arguments of `analytics-cli show`, title of the terminal window)
SHOWS = (
    ("show-table.svg", ["show"], "analytics-cli show"),
    (
        "show-chart.svg",
        ["show", "activeInstances", "--since", "3d"],
        "analytics-cli show activeInstances --since 3d",
    ),
)
REPORT = ["report", "--html", "report.html", "--since", "14d"]
REPORT_HEIGHT = 1700  # pixels of the report's top shown


def _environment(home: Path) -> dict[str, str]:
    """A new user's environment: no configuration, the embedded server under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYTICS_", "PG", "XDG_"))}
    env.update(HOME=str(home), ANALYTICS_CLI_HOME=str(home / "data"), COLUMNS=str(COLUMNS))
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, *, colour: bool = False) -> str:
    """Run ``analytics-cli ARGS``; its stdout. A failure stops the script with its stderr."""
    if colour:
        env = {**env, "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "analytics_cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"analytics-cli {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def terminal_svg(ansi: str, title: str) -> str:
    """The SVG of a terminal showing ``ansi`` (rich's own export, fonts inline)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=COLUMNS, file=io.StringIO(), force_terminal=True)
    console.print(Text.from_ansi(ansi.rstrip("\n")))
    svg = console.export_svg(title=title)
    # rich links a web font; the page's own monospace font will do, with nothing to fetch.
    return re.sub(r',?\s*url\("https://[^"]*"\) format\("[^"]*"\)', "", svg)


def report_png(page: Path, png: Path) -> None:
    """A PNG of the whole report page, 1000 px wide, from headless Chromium."""
    from tests.chromium import Browser, chromium_path

    executable = chromium_path()
    if executable is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="analytics-cli-screenshots-"))
    browser = Browser(executable, profile)
    try:
        session, _ = browser.open(page.as_uri())
        # The top of the page: the headline and the first charts (the rest are alike).
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=1000,
            height=REPORT_HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = browser.send("Page.captureScreenshot", session, format="png")
        png.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def make(out: Path, days: int) -> list[Path]:
    """Run the demo on a fresh home and write every picture into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="analytics-cli-screenshots-", dir="/tmp"))
    written = []
    try:
        env = _environment(home)
        _run(["demo", "--days", str(days)], env, home)
        for name, args, title in SHOWS:
            path = out / "img" / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(terminal_svg(_run(args, env, home, colour=True), title))
            written.append(path)
        _run(REPORT, env, home)
        png = out / "report.png"
        report_png(home / "report.html", png)
        written.append(png)
    finally:
        # The server stops with the last command; its folder goes with the home.
        shutil.rmtree(home, ignore_errors=True)
    return written


def main() -> None:
    """Parse the options and write the pictures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="default: docs/")
    parser.add_argument("--days", type=int, default=28, help="days the demo simulates")
    args = parser.parse_args()
    for path in make(args.out, args.days):
        print(path)


if __name__ == "__main__":
    main()
