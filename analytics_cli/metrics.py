"""The metric registry: the built-in packs and the custom specs, enabled and grouped; no I/O."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from analytics_cli.config.schema import MetricSpec, Settings
from analytics_cli.dsn import all_engines, default_engine
from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    from datetime import datetime


def _pack(engine: str) -> dict[str, Any]:
    path = resources.files("analytics_cli").joinpath("packs", f"{engine}.toml")
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text("utf-8"))


@cache
def builtin_metrics() -> tuple[MetricSpec, ...]:
    """The built-in iR Engine pack: ``packs/postgresql.toml``, plus the other dialects' texts
    (a metric's own, or that of the [[query]] of the same name that fills it)."""
    from dataclasses import replace

    from analytics_cli.config.validate import metric_spec, with_queries

    base = default_engine().name
    texts: dict[tuple[str, str], list[tuple[str, str]]] = {}
    # The other engines' packs: same types and meaning, each in its engine's dialect.
    for engine in [e.name for e in all_engines() if e.name != base]:
        doc = _pack(engine)
        for item in doc.get("metric", []):
            if "sql" in item:
                texts.setdefault(("metric", item["type"]), []).append((engine, item["sql"].strip()))
        for item in doc.get("query", []):
            texts.setdefault(("query", item["name"]), []).append((engine, item["sql"].strip()))
    doc = _pack(base)
    where = f"packs/{base}.toml"
    items = with_queries(doc["metric"], doc.get("query", []), where=where)
    specs = []
    for item in items:
        key = ("query", item["query"]) if "query" in item else ("metric", item["type"])
        spec = metric_spec(item, where=f"{where}: {item['type']}", builtin=True)
        # Every engine's text, the default engine's first: nothing asks which engine is "the" one.
        own = ((base, spec.sql.strip()),)
        specs.append(replace(spec, dialects=own + tuple(texts.get(key, ()))))
    return tuple(specs)


def all_metrics(settings: Settings) -> tuple[MetricSpec, ...]:
    """Every metric known to this configuration: built-ins, then custom ones."""
    builtin = builtin_metrics()
    names = {m.type for m in builtin}
    for spec in settings.custom:
        if spec.type in names:
            raise ConfigError(
                in_file(settings, f"custom metric {spec.type!r} has the name of a built-in metric"),
                hint="choose another type name, or disable the built-in via [collect] metrics",
            )
    return builtin + settings.custom


def in_file(settings: Settings, message: str) -> str:
    """A configuration error's line, starting with the file it is in (as the parser's do)."""
    return f"{settings.path}: {message}" if settings.path is not None else message


def suggest(name: str, known: list[str]) -> str:
    """A 'did you mean' hint for an unknown metric type."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    lowered = [k for k in known if k.lower() == name.lower() and k not in close]
    close = lowered + close
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known types: " + ", ".join(known) if known else "no metric types are known"


def enabled_metrics(settings: Settings, only: list[str] | None = None) -> list[MetricSpec]:
    """The metrics a cycle runs: [collect] metrics (built-ins) + custom ones, narrowed by --only."""
    every = all_metrics(settings)
    by_name = {m.type: m for m in every}
    builtin_names = [m.type for m in every if m.builtin]
    if settings.metrics is not None:
        for name in settings.metrics:
            if name not in builtin_names:
                raise ConfigError(
                    in_file(settings, f"[collect] metrics: unknown built-in metric {name!r}"),
                    hint=suggest(name, builtin_names),
                )
        chosen = [by_name[n] for n in builtin_names if n in settings.metrics]
    else:
        # Built-ins marked enabled = false (dimensional, HTTP) run only when asked for.
        chosen = [m for m in every if m.builtin and m.enabled]
    chosen += [m for m in every if not m.builtin and m.enabled]
    if only:
        known = [m.type for m in every]
        for name in only:
            if name not in by_name:
                raise ConfigError(f"unknown metric type {name!r}", hint=suggest(name, known))
        chosen = [by_name[n] for n in dict.fromkeys(only)]
    for spec in chosen:
        check_every(spec, settings)
    return chosen


def check_every(spec: MetricSpec, settings: Settings) -> None:
    """A metric's ``every`` must be a whole number of collection intervals."""
    from analytics_cli.timeutil import format_duration

    if spec.every is None or spec.every % settings.interval == timedelta(0):
        return
    raise ConfigError(
        in_file(
            settings,
            f"metric {spec.type!r}: every = {format_duration(spec.every)} is not a multiple of "
            f"[collect] interval = {format_duration(settings.interval)}",
        ),
        hint="choose an every (and an interval) so that the interval divides it, e.g. 30m and 1d",
    )


def groups(
    specs: Sequence[MetricSpec], slots: Mapping[str, datetime] | None = None
) -> list[list[MetricSpec]]:
    """The specs as they run: one group per [[query]] and slot (its metrics, in order), the
    others alone. Types of one query due at different slots run it once per slot."""
    out: list[list[MetricSpec]] = []
    shared: dict[tuple[str, datetime | None], list[MetricSpec]] = {}
    for spec in specs:
        if spec.query is None:
            out.append([spec])
            continue
        key = (spec.query, slots[spec.type] if slots is not None else None)
        if key in shared:
            shared[key].append(spec)
        else:
            shared[key] = [spec]
            out.append(shared[key])
    return out
