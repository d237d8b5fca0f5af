"""What ``export`` and ``report --html`` say about the file they wrote."""

from __future__ import annotations

from typing import Any

from analytics_cli.console import Output


def exported(out: Output, rows: int, output: Any) -> None:
    """After ``export --output``: how many rows the file holds."""
    if output is not None:
        out.info(f"exported {rows} rows to {output}")


def report_written(out: Output, path: Any, metrics: int) -> None:
    """The line after ``report --html``."""
    out.info(f"wrote the report of {metrics} metric(s) to {path}")
