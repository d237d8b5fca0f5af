"""`config check --explain`: each metric's plan, cost and time, through its source's engine."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from analytics_cli.engines.base import MetricPlan

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec, Settings


def explain(settings: Settings, specs: list[MetricSpec], slot: datetime) -> list[MetricPlan]:
    """Every metric's plan on the (first) source, through its engine's Source."""
    from analytics_cli.sources import open_source

    assert settings.source_dsn is not None
    return open_source(settings.source_dsn, settings).explain(specs, slot)
