"""The ir-engine layout's rules on any engine: the platform's own analytics table, used
exactly as it is (integer counts, no metadata, never created, altered or partitioned)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from analytics_cli.engines.notices import notice
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec, Settings
    from analytics_cli.samples import Outcome

IR_ENGINE = "ir-engine"
# The columns, as PostgreSQL names their types (each engine says its own in ``accept``).
SHAPE_TEXT = 'id uuid, count integer, type varchar(255), "createdAt", "updatedAt"'
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# An open window's ends, as instants every engine's time column can compare with.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def accept(settings: Settings, shape_text: str = SHAPE_TEXT) -> None:
    """Accept the table's ir-engine layout, unless the config insists on the native one.

    ``shape_text`` names the columns as the store's engine types them.
    """

    if settings.layout == "native":
        raise ConfigError(
            f"table {settings.table!r} is the iR Engine's own analytics table "
            f'({SHAPE_TEXT}) but [store] layout is "native"; it was left untouched',
            hint='set [store] layout = "ir-engine" to collect into it, '
            'or point [store] table at another name, for example table = "analytics_cli"',
        )
    if settings.layout != IR_ENGINE:
        notice(
            f"table {settings.table} has the iR Engine layout ({shape_text}): "
            'reading and writing it in that layout (set [store] layout = "ir-engine" '
            "to say so in the config)"
        )


def missing_table(settings: Settings) -> ConfigError:
    """The error for ``layout = "ir-engine"`` when the platform's table is not there."""
    return ConfigError(
        f'[store] layout is "ir-engine" but table {settings.table!r} does not exist',
        hint="the iR Engine's migrations create it: point [store] dsn at the platform "
        "database, or remove [store] layout to let analytics-cli create its own table",
    )


def fit_count(outcome: Outcome) -> Outcome:
    """A sample the integer ``count`` column can hold unchanged, or that metric's failure."""
    from analytics_cli.samples import MetricFailure, Sample

    if isinstance(outcome, MetricFailure):
        return outcome
    if not isinstance(outcome, Sample) or outcome.metadata:
        return MetricFailure(
            outcome.type, "row has metadata, which the iR Engine table cannot store"
        )
    count = outcome.count
    if count != count.to_integral_value():
        return MetricFailure(
            outcome.type,
            f"count {count} is not a whole number; the iR Engine analytics table stores integers",
        )
    if not INT_MIN <= count <= INT_MAX:
        return MetricFailure(
            outcome.type,
            f"count {count} does not fit the iR Engine analytics table's integer column "
            f"({INT_MIN} to {INT_MAX})",
        )
    return outcome


def refuse_rows_with_metadata(settings: Settings, specs: Sequence[MetricSpec]) -> None:
    """Refuse metrics whose rows carry metadata: the iR Engine table has no column for it."""
    names = [s.type for s in specs if s.dimensional]
    if names:
        raise ConfigError(
            f"metric {', '.join(repr(n) for n in names)} has dimensions, which the iR Engine "
            f"analytics table ({SHAPE_TEXT}) cannot store; nothing was collected",
            hint="remove its dimensions, or store into an analytics-cli table: "
            'set [store] table = "analytics_cli" (and remove [store] layout)',
        )
    if settings.sources:
        raise ConfigError(
            "[[source]] databases tag their rows with the source name, which the iR Engine "
            f"analytics table ({SHAPE_TEXT}) cannot store; nothing was collected",
            hint="use the single [source] dsn of the platform, "
            'or set [store] table = "analytics_cli"',
        )


def not_applicable(table: str) -> ConfigError:
    """The iR Engine's table (PostgreSQL or MySQL) is the platform's: never partitioned here."""
    return ConfigError(
        f"table {table} is the iR Engine's own analytics table: partitions and partition "
        "pruning apply to the analytics-cli (native) store only; it was left as it is"
    )
