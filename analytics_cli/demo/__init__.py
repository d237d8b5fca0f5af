"""The demo: a simulated iR Engine platform, collected slot by slot by the real collect cycle."""

from analytics_cli.demo.platform import (
    MARKER,
    apply_slot,
    prepare_source,
    schema_sql,
    schema_tables,
)
from analytics_cli.demo.run import DemoResult, Progress, check_store_target, run
from analytics_cli.demo.simulation import Plan, Platform, plan, simulate
from analytics_cli.demo.state import COLUMNS, ENDABLE, SimRow, rhythm

__all__ = [
    "COLUMNS",
    "ENDABLE",
    "MARKER",
    "DemoResult",
    "Plan",
    "Platform",
    "Progress",
    "SimRow",
    "apply_slot",
    "check_store_target",
    "plan",
    "prepare_source",
    "rhythm",
    "run",
    "schema_sql",
    "schema_tables",
    "simulate",
]
