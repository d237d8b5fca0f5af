"""The demo's question, progress, summary and what to try next."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from analytics_cli.console import Output, Step

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings


def demo_scope(settings: Settings, days: int) -> str:
    """What the demo is about to write on a configured database, for its question."""
    from analytics_cli.dsn import describe

    return (
        f"the demo creates the iR Engine platform tables in {describe(settings.source_dsn or '')} "
        f"and writes {days} days of collected history to table {settings.table} "
        f"in {describe(settings.store_dsn or '')}"
    )


DEMO_NEXT = """
Next, try:
  analytics-cli show                             the latest value and trend of every metric
  analytics-cli show activeInstances --since 7d  a chart of one metric
  analytics-cli export --csv > analytics.csv     every stored row, as CSV
  analytics-cli report --html report.html        one HTML page to share: headline and charts
  analytics-cli collect                          one more cycle now, as cron runs it
  analytics-cli config init                      write a config file for your own platform

status --anomalies judges each latest value against 3 weeks or more of history:
  analytics-cli demo --days 22                   three weeks and a day of history (2-4 min)
  analytics-cli status --anomalies               is each latest value in its usual range?
"""


def demo_next_text(*, charts: bool) -> str:
    """The demo's closing lines; without matplotlib the report line starts with its install."""
    if charts:
        return DEMO_NEXT
    from analytics_cli.errors import install_line

    report = "analytics-cli report --html report.html"
    return DEMO_NEXT.replace(
        f"  {report}        one HTML page to share: headline and charts\n",
        f"  {report}        one HTML page to share: headline and charts,\n"
        f"    after: {install_line('report')}\n",
    )


@contextmanager
def demo_progress(out: Output, unit: str) -> Iterator[Any]:
    """The demo's progress callback (done, total, report): a bar, quarter lines, or None."""
    verb = "collected" if unit == "slots" else "done"
    with out.steps("demo", unit, verb) as step:
        yield None if step is None else _demo_step(step)


def _demo_step(step: Step) -> Any:
    def update(done: int, total: int, report: Any) -> None:
        step(done, total, f" {report.slot:%a %d %b %H:%M}" if report is not None else "")

    return update


def demo_summary(out: Output, result: Any, seed: int) -> None:
    """The line after the demo's last slot: how many, how long, what the platform holds."""
    rows = ", ".join(f"{n} {t}" for t, n in result.rows.items() if n)
    out.info(
        f"demo: {result.slots} slots collected in {result.seconds:.1f}s "
        f"(seed {seed}; platform rows: {rows})"
    )


def demo_next(out: Output, result: Any) -> None:
    """What to try after the demo, and a warning when some of its metrics failed."""
    import importlib.util

    try:
        charts = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        charts = False
    print(demo_next_text(charts=charts), end="")
    if result.failed:
        out.warn(f"{result.failed} metric results failed; see the table above")
