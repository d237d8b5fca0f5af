"""``[retention]``: how long stored rows, hourly and daily rollups are kept (a config leaf)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from analytics_cli.errors import ConfigError
from analytics_cli.timeutil import format_duration, parse_duration

FOREVER = "forever"
GRAINS = ("raw", "hourly", "daily")


@dataclass(frozen=True)
class Retention:
    """How long each grain is kept; None: forever (or not said: prune needs --older-than)."""

    raw: timedelta | None = None
    hourly: timedelta | None = None
    daily: timedelta | None = None

    @property
    def configured(self) -> bool:
        """Whether any grain has a limit."""
        return any(v is not None for v in (self.raw, self.hourly, self.daily))

    def dump(self) -> dict[str, str]:
        """The ``[retention]`` table as a config file writes it."""
        return {
            name: format_duration(value) if value is not None else FOREVER
            for name, value in zip(GRAINS, (self.raw, self.hourly, self.daily), strict=True)
        }


def parse(where: str, doc: Mapping[str, Any]) -> Retention:
    """``[retention]`` of the file ``where``: durations or "forever", each grain kept at least
    as long as the finer one before it (the coarser grain is built from it)."""
    found: list[timedelta | None] = []
    texts = [str(doc.get(name, FOREVER)) for name in GRAINS]
    for name in GRAINS:
        text = doc.get(name, FOREVER)
        if text.strip().lower() == FOREVER:
            found.append(None)
            continue
        try:
            value = parse_duration(text, what=f"retention.{name}")
        except ConfigError as exc:
            raise ConfigError(
                f"{where}: {exc}", hint='a duration such as "180d" or "2y", or "forever"'
            ) from None
        if value <= timedelta(0):
            raise ConfigError(f'{where}: retention.{name} must be more than 0, or "forever"')
        found.append(value)
    for a, b in ((0, 1), (1, 2), (0, 2)):
        short, long = found[a], found[b]
        if short is not None and long is not None and long < short:
            raise ConfigError(
                f"{where}: retention.{GRAINS[b]} ({texts[b]}) is shorter than "
                f"retention.{GRAINS[a]} ({texts[a]})",
                hint=f"keep {GRAINS[b]} at least as long as {GRAINS[a]}: it is built from it",
            )
    if found[0] is not None and found[0] < timedelta(days=2):
        raise ConfigError(
            f"{where}: retention.raw must be at least 2d",
            hint="the rows of the last day feed the rollups and the anomalies",
        )
    return Retention(found[0], found[1], found[2])
