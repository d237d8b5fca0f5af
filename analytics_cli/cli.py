"""The command line: options → one core call → output. The only place errors become exit codes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from analytics_cli import __version__
from analytics_cli.console import LogFormat, Output
from analytics_cli.errors import AnalyticsError, DatabaseError, Interrupted, missing_extra

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings
    from analytics_cli.monitor import CycleMonitor

# The commands import the library inside their bodies, not here: `--help`, `--version`
# and a usage error then start without loading psycopg, rich or the config parser.

HELP = (
    "Collect platform usage metrics into PostgreSQL, one cycle per run, and read them back.\n\n"
    "Schedule 'analytics-cli collect' from cron, a systemd timer or a Kubernetes CronJob "
    "(every 30 minutes); look at the history with 'show'; stream it out with 'export'. "
    "With no connection string configured, an embedded PostgreSQL is used: try 'demo'."
)


def docs(page: str) -> str:
    """The help's closing line: the page of the manual (docs/, a MkDocs site) for a command."""
    return f"Manual: docs/{page}"


EPILOG = (
    "Exit codes: 0 ok, 1 some metrics failed, stale data or an anomaly, 2 usage/config error, "
    "3 database error, 130/143 interrupted (SIGINT/SIGTERM).\n\n" + docs("index.md")
)
# The variable a shell's completion script sets to ask for completions (Typer's protocol).
COMPLETE_VAR = "_ANALYTICS_CLI_COMPLETE"
# Every option that takes a duration says which spellings it takes.
AGO = "ISO 8601 or a duration ago (30m, 6h, 7d, 2w, 1y = 365 days)"
# The units every duration option takes (timeutil.parse_duration).
UNITS = "units s, m, h, d, w, y = 365 days"


class _Group(TyperGroup):
    """The command group: a reader that closed the pipe (| head) ends any command with exit 0."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; BrokenPipeError anywhere in it is a quiet end, not exit 1."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None


app = typer.Typer(
    cls=_Group,
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(
    help="Manage the analytics table (the store).",
    epilog=docs("architecture.md"),
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")


@dataclass
class Globals:
    """Options given before the command name that commands read (output options go to ``out``)."""

    config: Path | None = None
    dsn: str | None = None

    def settings(self) -> Settings:
        """Load the effective settings; warnings go to stderr."""
        from analytics_cli.config.load import load

        settings = load(self.config, dsn=self.dsn)
        for warning in settings.warnings:
            out.warn(warning)
        return settings


out = Output()


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


@contextmanager
def handled() -> Iterator[None]:
    """Turn typed errors into one line on stderr and their exit code."""
    try:
        yield
    except AnalyticsError as exc:
        out.error(str(exc), exc.hint)
        raise typer.Exit(exc.exit_code) from None
    except ImportError as exc:
        # An optional library reached without its extra: one line naming the extra.
        missing = missing_extra(exc)
        if missing is None:
            raise
        out.error(str(missing), missing.hint)
        raise typer.Exit(missing.exit_code) from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(0) from None


def fail(message: str, code: int = 2, hint: str | None = None) -> NoReturn:
    """Stop with an error line and an exit code."""
    out.error(message, hint)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        print(f"analytics-cli {__version__}")
        raise typer.Exit(0)


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file. Default: $ANALYTICS_CLI_CONFIG, ./analytics-cli.toml, "
        "~/.config/analytics-cli/config.toml, /etc/analytics-cli/config.toml.",
        dir_okay=False,
        show_default=False,
    ),
]
DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="Connection string for both the source and the store "
        "(overrides $ANALYTICS_DSN and the file). Prefer PGPASSFILE for passwords.",
        show_default=False,
    ),
]


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: ConfigOpt = None,
    dsn: DsnOpt = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="stderr format: text or json (one per line).")
    ] = LogFormat.text,
    # Counted flags (-vv): no value to show and no default worth printing.
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            metavar="",
            show_default=False,
            help="More detail (repeat for more: -vv).",
        ),
    ] = 0,
    quiet: Annotated[
        int,
        typer.Option(
            "--quiet",
            "-q",
            count=True,
            metavar="",
            show_default=False,
            help="Only the summary and errors.",
        ),
    ] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Collect platform usage metrics into PostgreSQL, one cycle per run, and read them back."""
    ctx.obj = Globals(config=config, dsn=dsn)
    out.configure(log_format, verbose - quiet)
    from analytics_cli.store import layout

    layout.listen(out.info)  # the store layout's notice: once per command, like other info
    out.hide(dsn, *(os.environ.get(f"ANALYTICS_{n}DSN") for n in ("", "SOURCE_", "STORE_")))
    from analytics_cli.dsn import dsn_secrets

    if dsn and dsn_secrets(dsn):
        # The command line of a process is public: every local user reads it with ps.
        out.warn(
            "--dsn holds a password, which other local users can read in the process list; "
            "put it in PGPASSFILE (~/.pgpass), $ANALYTICS_DSN or a config file of mode 600"
        )


def _load(ctx: typer.Context) -> Settings:
    """The effective settings of this invocation; their passwords join the scrub list."""
    return _remember_secrets(_globals(ctx).settings())


def _remember_secrets(settings: Settings) -> Settings:
    """Every password the settings carry is scrubbed from all later output."""
    out.hide(settings.source_dsn, settings.store_dsn, *(s.dsn for s in settings.sources))
    return settings


def _announce(message: str) -> None:
    out.info(message)


AlertmanagerOpt = Annotated[
    str | None,
    typer.Option(
        "--alertmanager",
        help="Send findings to this Alertmanager (http://host:9093; overrides [notify] "
        "alertmanager). A failed delivery is a warning, never an exit code.",
        show_default=False,
    ),
]
WebhookOpt = Annotated[
    str | None,
    typer.Option(
        "--webhook",
        help="Post new and resolved findings to this URL as JSON (overrides [notify] webhook).",
        show_default=False,
    ),
]


def _with_notify(settings: Settings, alertmanager: str | None, webhook: str | None) -> Settings:
    """The settings with --alertmanager / --webhook in place of [notify]'s URLs."""
    from dataclasses import replace

    from analytics_cli.config.dump import url_secrets
    from analytics_cli.config.validate import check_notify_url

    notify = settings.notify
    if alertmanager is not None:
        notify = replace(
            notify, alertmanager=check_notify_url(alertmanager, where="--alertmanager")
        )
    if webhook is not None:
        notify = replace(notify, webhook=check_notify_url(webhook, where="--webhook"))
    out.secrets |= url_secrets(notify.alertmanager, path_is_secret=False)
    out.secrets |= url_secrets(notify.webhook, path_is_secret=True)
    return replace(settings, notify=notify)


def _deliver(settings: Settings, command: str, groups: Mapping[str, Any]) -> None:
    """Send the findings; a failure is a warning line (the findings are printed anyway)."""
    from analytics_cli import notify

    if not settings.notify.enabled:
        return
    try:
        sent = notify.deliver(settings, command, groups, secrets=out.secrets)
    except (OSError, RuntimeError, ValueError) as exc:
        # Delivery never decides the outcome of a run (no home folder for the state, ...).
        out.warn(f"alerts not delivered: {exc}")
        return
    for warning in sent.warnings:
        out.warn(warning)
    out.debug(f"alerts: {sent.requests} request(s) sent", requests=sent.requests)


# ---------------------------------------------------------------------------- collect

# Without a terminal, a backfill logs a progress line each this many slots (and each quarter):
# a year of 30-minute slots says it is alive every few seconds, not every few hours.
BACKFILL_LOG_EVERY = 100


@app.command(epilog=docs("collect.md"))
def collect(
    ctx: typer.Context,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Collect the slot containing this ISO 8601 time instead of now "
            "(the platform's current state is still what is counted).",
            show_default=False,
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only this metric type (repeatable).", show_default=False),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run the queries and report; write nothing.")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite the slot's rows instead of keeping them.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable report of the cycle on stdout.")
    ] = False,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help="Also write the cycle in Prometheus text format here (node_exporter textfile).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    ping_url: Annotated[
        str | None,
        typer.Option(
            "--ping-url",
            help="Heartbeat: GET this URL after exit 0, URL/fail after any other exit.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Read only the source of this name (repeatable); HTTP metrics are then skipped.",
            show_default=False,
        ),
    ] = None,
    backfill: Annotated[
        str | None,
        typer.Option(
            "--backfill",
            help="Also compute every missing slot of this window before the slot (12h, 7d; "
            f"{UNITS}) "
            "for the metrics marked backfill = true, oldest first, each slot stored once.",
            show_default=False,
        ),
    ] = None,
    no_spool: Annotated[
        bool,
        typer.Option(
            "--no-spool",
            help="When the store fails, do not keep the cycle in the spool for the next run.",
        ),
    ] = False,
    alertmanager: AlertmanagerOpt = None,
    webhook: WebhookOpt = None,
) -> None:
    """Run ONE collection cycle: count every metric and store one row each for the slot.

    The slot is now floored to the interval (UTC). All metrics read one snapshot
    (REPEATABLE READ, READ ONLY); all rows are written in one transaction under
    the slot's advisory lock, so re-runs and concurrent runs never duplicate.
    Exit 0 ok (or already collected), 1 some metrics failed, 2 config, 3 database.
    """
    import dataclasses

    from analytics_cli import db, notify
    from analytics_cli.cycle.backfill import backfill as run_backfill
    from analytics_cli.cycle.plan import plan as plan_jobs
    from analytics_cli.cycle.results import CycleReport
    from analytics_cli.cycle.run import run_cycle
    from analytics_cli.metrics import enabled_metrics
    from analytics_cli.render import collect as render
    from analytics_cli.timeutil import check_slot_time, parse_duration, parse_timestamp, utcnow

    settings: Settings | None = None
    report: CycleReport | None = None
    failure: AnalyticsError | None = None
    failed: DatabaseError | None = None
    with _cycle_hooks(textfile, ping_url, dry_run) as hooks:
        try:
            with handled():
                try:
                    settings = _with_notify(_load(ctx), alertmanager, webhook)
                    hooks.loaded(settings)
                    when = parse_timestamp(at, what="--at") if at else None
                    if when is not None:
                        # Before any database is used: nothing counted, nothing written.
                        check_slot_time(when, now=utcnow(), interval=settings.interval, what="--at")
                    window = parse_duration(backfill, what="--backfill") if backfill else None
                    if no_spool:
                        settings = dataclasses.replace(settings, spool_enabled=False)
                    # Configuration errors (an unknown --only type) surface before any
                    # database is used.
                    jobs = plan_jobs(settings, enabled_metrics(settings, only), source)
                    filled = None
                    with db.resolved(settings, announce=_announce) as live:
                        try:
                            report = run_cycle(
                                live,
                                at=when,
                                only=only,
                                dry_run=dry_run,
                                replace=replace,
                                sources=source,
                            )
                        except DatabaseError as exc:
                            # Exit 3 keeps the cycle's report: shown below, after the error.
                            if not isinstance(exc.report, CycleReport):
                                raise
                            report, failed = exc.report, exc
                        if failed is None:
                            hooks.finished(live, report)
                        if window is not None and not dry_run and failed is None:
                            with out.steps(
                                "backfill", "slots", "written", every=BACKFILL_LOG_EVERY
                            ) as step:
                                filled = run_backfill(
                                    live,
                                    jobs,
                                    since=report.slot - window,
                                    until=report.slot,
                                    progress=(lambda d, t: step(d, t, "")) if step else None,
                                )
                except AnalyticsError as exc:
                    failure = exc
                    raise
        finally:
            # The run's own failures as alerts: a finished cycle (failed metrics) or a store
            # that could not be written (exit 3); a usage error says nothing of the metrics,
            # nor does a cycle that ended at the store (its report holds no metric).
            ended = report is not None or (failure is not None and failure.exit_code == 3)
            if settings is not None and ended and not dry_run:
                finished = report if failed is None else None
                _deliver(settings, "collect", notify.from_cycle(finished, failure or failed))
        assert report is not None
        if failed is not None:
            # The error first (cron mails its first line), then the report and summary.
            out.error(str(failed), failed.hint)
        render.collect_report(report, out, as_json=as_json)
        if failed is not None:
            raise typer.Exit(failed.exit_code)
        if filled is not None:
            render.backfill_report(filled, out)
        raise typer.Exit(max(report.exit_code, filled.exit_code if filled else 0))


# ---------------------------------------------------------------------------- db


@db_app.command("init", epilog=docs("architecture.md"))
def db_init(ctx: typer.Context) -> None:
    """Create the analytics table if it does not exist (safe to run again)."""
    from analytics_cli import db
    from analytics_cli.cycle.table import ensure_store
    from analytics_cli.render import db as render

    with handled():
        settings = _load(ctx)
        with db.resolved(settings, announce=_announce) as live:
            created = ensure_store(live)
            from analytics_cli import rollups

            rollups.init_built(live, progress=_months_progress())
    render.db_init(out, settings.table, created)


@db_app.command("migrate", epilog=docs("operations.md"))
def db_migrate(
    ctx: typer.Context,
    partition: Annotated[
        bool,
        typer.Option(
            "--partition",
            help="Convert an unpartitioned native table to monthly partitions, online: "
            "every row kept, collect goes on; run again to resume.",
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows copied per transaction.")
    ] = 10_000,
) -> None:
    """Change the store table's shape (today: --partition)."""
    from analytics_cli import db
    from analytics_cli import migrate as migrate_mod
    from analytics_cli.render import db as render

    with handled():
        if not partition:
            fail("say what to migrate: --partition", hint="analytics-cli db migrate --partition")
        settings = _load(ctx)
        with db.resolved(settings, announce=_announce) as live:
            done = migrate_mod.migrate_partition(
                live,
                batch_size=batch_size,
                progress=lambda n: out.debug(f"copied through id {n}"),
            )
    render.migrated(out, settings.table, done)


@db_app.command("rollup", epilog=docs("operations.md"))
def db_rollup(
    ctx: typer.Context,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Rebuild the hourly and daily rollups from the stored rows (buckets older "
            "than the rows kept stay). Native store only: not the iR Engine layout.",
        ),
    ] = False,
) -> None:
    """Hourly and daily rollups (native store only; not the iR Engine layout)."""
    from analytics_cli import db, rollups

    with handled():
        if not rebuild:
            fail("say what to do: --rebuild", hint="analytics-cli db rollup --rebuild")
        settings = _load(ctx)
        with db.resolved(settings, announce=_announce) as live:
            done = rollups.rebuild(live, progress=_months_progress())
    out.write(
        f"rollups of {settings.table} rebuilt: {done.hourly} hourly rows, {done.chunks} month(s)\n"
    )


def _months_progress() -> Any:
    """A progress line per rebuilt month on a terminal's stderr; nothing otherwise."""
    import sys

    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else "\r"
        print(f"rolling up: month {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


# ---------------------------------------------------------------------------- show / export


class ShowFormat(StrEnum):
    """What ``show`` prints."""

    table = "table"
    chart = "chart"
    json = "json"
    csv = "csv"


class ExportFormat(StrEnum):
    """What ``export`` writes."""

    csv = "csv"
    json = "json"
    ndjson = "ndjson"


class Agg(StrEnum):
    """How points in one bucket are combined."""

    avg = "avg"
    min = "min"
    max = "max"
    sum = "sum"
    last = "last"


TypeOpt = Annotated[
    list[str] | None,
    typer.Option("--type", "-t", help="Metric type (repeatable).", show_default=False),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        help=f"End of the window (exclusive): {AGO}. Default: now.",
        show_default=False,
    ),
]
BucketOpt = Annotated[
    str | None,
    typer.Option(
        "--bucket",
        help="Aggregate into buckets of this size (aligned to UTC): 1h, 1d, 1w, 1y = 365 days.",
        show_default=False,
    ),
]
AggOpt = Annotated[Agg, typer.Option("--agg", help="How a bucket's points are combined.")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="Only rows whose metadata has key=value, e.g. location=Lobby or source=eu "
        "(repeatable; all must match).",
        show_default=False,
    ),
]


def _where_pairs(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    """Parse --where key=value options."""
    from analytics_cli.errors import ConfigError

    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--where {item!r} is not key=value", hint="for example: --where location=Lobby"
            )
        key = key.strip()
        if key in pairs and pairs[key] != value:
            raise ConfigError(f"--where gives two values for {key!r}; a row has only one")
        pairs[key] = value
    return tuple(pairs.items())


def _window(
    since: str | None, until: str | None, bucket: str | None, *, open_end: bool = True
) -> tuple[Any, Any, Any]:
    """Parse --since / --until / --bucket (now is read once so both ends agree)."""
    from analytics_cli.errors import ConfigError
    from analytics_cli.timeutil import parse_duration, parse_when, utcnow

    now = utcnow()
    start = parse_when(since, now=now, what="--since") if since else None
    end = parse_when(until, now=now, what="--until") if until else None if open_end else now
    if start is not None and end is not None and start >= end:
        raise ConfigError("--since must be before --until")
    size = parse_duration(bucket, what="--bucket") if bucket else None
    return start, end, size


def _types(*groups: list[str] | None) -> tuple[str, ...] | None:
    chosen: list[str] = []
    for group in groups:
        for name in group or []:
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen) or None


@app.command(epilog=docs("history.md"))
def show(
    ctx: typer.Context,
    types: Annotated[
        list[str] | None,
        typer.Argument(help="Metric types to chart (same as --type).", show_default=False),
    ] = None,
    type_: TypeOpt = None,
    since: Annotated[str, typer.Option("--since", help=f"Start of the window: {AGO}.")] = "7d",
    until: UntilOpt = None,
    bucket: BucketOpt = None,
    agg: AggOpt = Agg.avg,
    fmt: Annotated[
        ShowFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="table, chart, json or csv. Default: a chart with --type on a terminal, "
            "else a table; plain text when stdout is not a terminal.",
            show_default=False,
        ),
    ] = None,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone for displayed times: UTC, local or IANA name.")
    ] = "UTC",
    where: WhereOpt = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="With one --type: one series per value of this metadata key "
            "(location, source), the --top ones by average.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", min=1, max=100, help="How many --by series to draw.")
    ] = 5,
) -> None:
    """Show the stored history: every metric at a glance, or a chart of some.

    Without a type: one row per metric type with its latest value, min / avg / max,
    points, missing slots (gaps) and a trend. With types: a line chart sized to the
    terminal above a compact table. Long windows are bucketed automatically for
    charts and tables (the bucket used is printed); json and csv give every stored
    point unless --bucket is given.
    """
    from analytics_cli import db, history, store
    from analytics_cli.render import show as render
    from analytics_cli.timeutil import zone

    with handled():
        settings = _load(ctx)
        start, end, size = _window(since, until, bucket, open_end=False)
        tzone = zone(tz)
        chosen = _types(types, type_)
        pairs = _where_pairs(where)
        if by is not None and (chosen is None or len(chosen) != 1):
            fail("--by needs exactly one metric type", hint="e.g. show --type X --by location")
        view = render.show_view(fmt.value if fmt else None, chosen, end - start, settings.interval)
        sel = store.Selection(
            settings.table, start, end, chosen, size, agg.value, where=pairs, by=by
        )
        with db.resolved(settings, announce=_announce) as live:
            try:
                if view.streamed:
                    render.show_streamed(out, history.show_rows(live, sel, view.mode), tzone)
                    return
                data = history.show_data(
                    live,
                    sel,
                    series=view.series,
                    summary=view.summary,
                    target=view.target,
                    spark_width=view.spark_width,
                    top=top if by is not None else None,
                )
            except history.NoData:
                render.no_table(out, settings.table)
                return
    render.show(out, data, tzone, view)


@app.command(epilog=docs("history.md"))
def export(
    ctx: typer.Context,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row (default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    ndjson: Annotated[bool, typer.Option("--ndjson", help="One JSON object a line.")] = False,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option("--format", "-f", help="csv, json or ndjson.", show_default=False),
    ] = None,
    type_: TypeOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Start of the window: {AGO}. Default: everything.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help=f"End of the window (exclusive): {AGO}. Default: no end.",
            show_default=False,
        ),
    ] = None,
    bucket: BucketOpt = None,
    agg: AggOpt = Agg.avg,
    where: WhereOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (complete or not at all) instead of stdout.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Stream the stored rows out as CSV, JSON or NDJSON, with flat memory however many.

    Columns: type, count, timestamp (ISO 8601, UTC), metadata (JSON), collected_at.
    CSV comes straight from PostgreSQL's COPY. With --output the file appears only
    when the export is complete; a closed pipe (| head) ends quietly.
    """
    from analytics_cli import console, db, history, store
    from analytics_cli.render import export as render
    from analytics_cli.render.show import no_table

    with handled():
        flags = [f for f, on in (("csv", csv), ("json", as_json), ("ndjson", ndjson)) if on]
        if fmt is not None:
            flags.append(fmt.value)
        if len(set(flags)) > 1:
            fail("choose one of --csv, --json, --ndjson (or --format)")
        chosen_fmt = flags[0] if flags else "csv"
        settings = _load(ctx)
        start, end, size = _window(since, until, bucket)
        sel = store.Selection(
            settings.table, start, end, _types(type_), size, agg.value, where=_where_pairs(where)
        )
        progress = output is not None and console.stderr_is_terminal() and not out.quiet
        with db.resolved(settings, announce=_announce) as live:
            try:
                rows = history.export(live, sel, chosen_fmt, output, progress=progress)
            except history.NoData:
                no_table(out, settings.table)
                return
    render.exported(out, rows, output)


@app.command(epilog=docs("history.md"))
def report(
    ctx: typer.Context,
    html: Annotated[
        Path,
        typer.Option(
            "--html",
            help="Write the report to this HTML file (complete or not at all).",
            dir_okay=False,
            show_default=False,
        ),
    ],
    type_: TypeOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Start of the window: {AGO}. Default: the oldest stored slot, at most 30 "
            "days back.",
            show_default=False,
        ),
    ] = None,
    until: UntilOpt = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Chart dimensional metrics by this metadata key (location, source), the "
            "--top values by average. Default: each metric's first dimension.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", min=1, max=20, help="How many series a dimensional chart draws.")
    ] = 5,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone for displayed times: UTC, local or IANA name.")
    ] = "UTC",
) -> None:
    """Write ONE self-contained HTML report for the product side: opens offline, prints well.

    A headline table per metric (latest, change of the average against the previous
    period of the same length, min / avg / max, gaps) and one chart per metric (the
    top --by series for dimensional ones), the window and when it was made. Styles
    and charts (SVG, drawn by matplotlib from the 'report' extra) are
    inline: no request leaves the page.
    """
    from analytics_cli import db, history
    from analytics_cli import report as report_mod
    from analytics_cli.render import export as render
    from analytics_cli.render.show import no_table
    from analytics_cli.timeutil import utcnow, zone

    with handled():
        report_mod.require_charts()
        settings = _load(ctx)
        start, end, _ = _window(since, until, None, open_end=False)
        tzone = zone(tz)
        generated = utcnow()
        with db.resolved(settings, announce=_announce) as live:
            try:
                data = report_mod.report_data(
                    live,
                    since=start,
                    until=end,
                    generated=generated,
                    types=_types(type_),
                    by=by,
                    top=top,
                )
            except history.NoData:
                no_table(out, settings.table)
                return
        report_mod.write_report(data, html, tzone)
    render.report_written(out, html, len(data.metrics))


# ---------------------------------------------------------------------------- demo


class Scale(StrEnum):
    """How big the demo platform is."""

    small = "small"
    large = "large"


@app.command("demo", epilog=docs("getting-started.md"))
def demo_cmd(
    ctx: typer.Context,
    days: Annotated[
        int, typer.Option("--days", min=1, max=90, help="How many days of history to simulate.")
    ] = 7,
    scale: Annotated[
        Scale,
        typer.Option(
            "--scale",
            help="small: a lively platform collected slot by slot; large: 1 million users and "
            "5 million attendance rows built in the database, collected once (for benchmarks).",
        ),
    ] = Scale.small,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed gives the same platform.")
    ] = 1,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask before writing to a configured database."),
    ] = False,
) -> None:
    """Simulate an iR Engine platform for N days and collect its history.

    With no connection string configured it runs on the embedded PostgreSQL
    (nothing to set up). Users sign up, join and leave world and channel
    instances and chat, with a daily and weekly rhythm. For every 30-minute
    slot the platform is brought to that moment and the real collect cycle
    runs for the slot (as 'collect --at'): the history shown at the end is
    collected, not invented. On a configured database it asks first (--yes
    skips the question) and never drops tables it did not create.
    """
    from analytics_cli import db
    from analytics_cli import demo as demo_mod
    from analytics_cli.render import demo as render

    with handled():
        settings = _load(ctx)
        if not settings.embedded:
            _confirm_demo(settings, days=days, yes=yes)
        with db.resolved(settings, announce=_announce) as live:
            unit = "slots" if scale is Scale.small else "steps"
            with render.demo_progress(out, unit) as progress:
                result = demo_mod.run(
                    live, days=days, seed=seed, scale=scale.value, progress=progress
                )
            render.demo_summary(out, result, seed)
            # The history read back by the real 'show': the overview, then one chart.
            window = f"{days}d" if scale is Scale.small else "1h"
            show(ctx, since=window)
            print()
            show(ctx, types=["activeInstances"], since=window, fmt=ShowFormat.chart)
    render.demo_next(out, result)
    if result.failed:
        raise typer.Exit(1)


def _confirm_demo(settings: Settings, *, days: int, yes: bool) -> None:
    from analytics_cli import console
    from analytics_cli.render import demo as render

    if yes:
        return
    what = render.demo_scope(settings, days)
    if not console.stdin_is_terminal():
        fail(f"{what}: confirmation needed", 2, hint="pass --yes to go ahead without a question")
    if not typer.confirm(f"{what}. Continue?", default=False, err=True):
        fail("cancelled; nothing was changed", 1)


# ---------------------------------------------------------------------------- operations


config_app = typer.Typer(
    help="Write, show and check the configuration.",
    epilog=docs("configuration.md"),
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")

PathArg = Annotated[
    Path | None,
    typer.Argument(
        help="Config file (default: --config or the usual lookup).",
        dir_okay=False,
        show_default=False,
    ),
]


@contextmanager
def _cycle_hooks(
    textfile: Path | None, ping_url: str | None, dry_run: bool = False
) -> Iterator[CycleMonitor]:
    """The textfile and heartbeat around a cycle, told the exit code however the run ends."""
    from analytics_cli import monitor

    with handled():
        if ping_url is not None:
            monitor.check_ping_url(ping_url)
    # No textfile at all until its path is known to be usable.
    hooks = monitor.CycleMonitor(out, None, ping_url, dry_run)
    code = 130
    try:
        with handled():
            if textfile is not None:
                monitor.check_textfile_path(textfile)
                hooks.textfile = textfile
        yield hooks
        code = 0
    except typer.Exit as exc:
        code = exc.exit_code
        raise
    except KeyboardInterrupt as exc:
        code = 128 + exc.signum if isinstance(exc, Interrupted) else 130
        raise
    finally:
        hooks.done(code)


def _load_from(ctx: typer.Context, path: Path | None) -> Settings:
    """Like ``_load``, with an optional config path given to the command itself."""
    from dataclasses import replace

    if path is None:
        return _load(ctx)
    return _remember_secrets(replace(_globals(ctx), config=path).settings())


class Dialect(StrEnum):
    """The SQL dialect of the platform database (the source)."""

    postgresql = "postgresql"
    mysql = "mysql"


@config_app.command("init", epilog=docs("configuration.md"))
def config_init(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(help="Where to write it ('-' for stdout).", dir_okay=False),
    ] = Path("analytics-cli.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    dialect: Annotated[
        Dialect | None,
        typer.Option(
            "--dialect",
            help="SQL of the example metric. Default: the source's, from --dsn, "
            "$ANALYTICS_SOURCE_DSN or $ANALYTICS_DSN (mysql:// gives mysql), else postgresql.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a starter configuration: defaults, the built-in metrics, an example custom metric."""
    from analytics_cli.config import starter
    from analytics_cli.metrics import builtin_metrics
    from analytics_cli.render import config as render

    source = _globals(ctx).dsn or os.environ.get("ANALYTICS_SOURCE_DSN")
    chosen = (
        dialect.value if dialect else starter.dialect_of(source or os.environ.get("ANALYTICS_DSN"))
    )
    with handled():
        if str(path) == "-":
            out.write(
                starter.starter_config(starter.DEFAULT_CONFIG_PATH, builtin_metrics(), chosen)
            )
            return
        starter.write_starter(path, builtin_metrics(), force=force, dialect=chosen)
    render.starter_written(out, path)


@config_app.command("show", epilog=docs("configuration.md"))
def config_show(ctx: typer.Context, path: PathArg = None) -> None:
    """Print the effective configuration (file + environment + flags) as TOML, passwords redacted."""
    from analytics_cli.config import starter
    from analytics_cli.config.dump import dump, to_document
    from analytics_cli.render import config as render

    with handled():
        settings = _load_from(ctx, path)
    text = starter.readable_toml(dump(to_document(settings)))
    out.write(render.config_text(settings, text))


@config_app.command("check", epilog=docs("operations.md"))
def config_check(
    ctx: typer.Context,
    path: PathArg = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Also print each metric's plan: estimated cost, real time, sequential scans "
            "over large tables and the index that would make the metric cheap.",
        ),
    ] = False,
) -> None:
    """Validate the config, connect to both databases and run every metric read-only.

    Prints each value and the time of the snapshot it was read in; writes nothing.
    Exit 0 ok, 1 some metrics failed, 2 config error, 3 database unreachable.
    """
    from analytics_cli import check, db
    from analytics_cli.render import config as render

    with handled():
        settings = _load_from(ctx, path)
        with db.resolved(settings, announce=_announce) as live:
            report = check.check(live, explain=explain)
    out.write(render.check_text(live, report))
    render.check_failed(out, report)
    raise typer.Exit(report.exit_code)


@app.command("metrics", epilog=docs("metrics.md"))
def metrics_cmd(
    ctx: typer.Context,
    show_sql: Annotated[bool, typer.Option("--sql", help="Print each metric's SQL.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the metrics: type, built-in or custom, enabled, description."""
    from analytics_cli.metrics import all_metrics, enabled_metrics
    from analytics_cli.render import metrics as render

    with handled():
        settings = _load(ctx)
        every = all_metrics(settings)
        enabled = {m.type for m in enabled_metrics(settings)}
    out.write(render.metrics_text(every, enabled, show_sql=show_sql, as_json=as_json))


@app.command("status", epilog=docs("operations.md"))
def status_cmd(
    ctx: typer.Context,
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age",
            help=f"Stale when the newest row is older than this duration (2h, 1d; {UNITS}; "
            "default: twice the interval).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    anomalies: Annotated[
        bool,
        typer.Option(
            "--anomalies",
            help="Also judge each metric's latest value: against its median and MAD at the "
            "same time of week over the last 4 weeks, and against its [alert] limits "
            "(one stderr line per finding; exit 1 when any fires).",
        ),
    ] = False,
    ping_url: Annotated[
        str | None,
        typer.Option(
            "--ping-url",
            help="Heartbeat: GET this URL after exit 0, URL/fail after any other exit.",
            show_default=False,
        ),
    ] = None,
    alertmanager: AlertmanagerOpt = None,
    webhook: WebhookOpt = None,
) -> None:
    """Show the latest slot of each metric and the slots missing in the last 24 hours.

    Exit 1 when the newest row is older than --max-age, or with --anomalies when a value
    left its usual range or a configured limit, so it can drive an alert or a probe.
    """
    from analytics_cli import db, status
    from analytics_cli.render import status as render
    from analytics_cli.timeutil import parse_duration

    with _cycle_hooks(None, ping_url) as _hooks, handled():
        settings = _with_notify(_load(ctx), alertmanager, webhook)
        limit = parse_duration(max_age, what="--max-age") if max_age else None
        found = None
        with db.resolved(settings, announce=_announce) as live:
            report = status.status(live, max_age=limit)
            if anomalies and report.store_error is None:
                from analytics_cli import anomalies as anomalies_mod

                found = anomalies_mod.anomalies(live)
        out.write(render.status_with_anomalies(report, found, as_json=as_json))
        if report.store_error is not None:
            out.error(report.store_error, report.store_hint)
        else:
            render.future_rows(out, report)
            render.stale_reason(out, report)
        if found is not None:
            render.anomaly_findings(out, found)
        if settings.notify.enabled:
            from analytics_cli import notify

            groups = {"status": notify.from_status(report)}
            if found is not None:
                groups["anomalies"] = notify.from_anomalies(found, render.finding_line)
            _deliver(settings, "status", groups)
        raise typer.Exit(max(report.exit_code, found.exit_code if found else 0))


@app.command("prune", epilog=docs("operations.md"))
def prune_cmd(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Delete rows whose slot is older than this duration: 90d, 26w, 1y (365 days). "
            "Months are not a unit (their length varies): write days. Default: [retention] "
            "raw, then the hourly and daily rollups past their [retention].",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the rows that would be deleted.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows deleted per transaction.")
    ] = 10_000,
) -> None:
    """Delete old rows in small batches (no long lock); asks first on a terminal unless --yes."""
    from analytics_cli import console, db, prune
    from analytics_cli.render import prune as render
    from analytics_cli.timeutil import parse_duration

    with handled():
        settings = _load(ctx)
        kept = settings.retention
        if older_than is None and not kept.configured:
            fail(
                "say how old: --older-than, or [retention] in the config",
                hint='e.g. prune --older-than 180d, or [retention] raw = "180d"',
            )
        older = parse_duration(older_than, what="--older-than") if older_than else kept.raw
        if not (dry_run or yes or console.stdin_is_terminal()):
            fail(
                "refusing to delete without confirmation (no terminal)",
                hint="add --yes to prune from a script or cron, or --dry-run to count",
            )
        with db.resolved(settings, announce=_announce) as live:
            if older is None:  # [retention] keeps rows forever: only rollups expire
                _prune_rollups(live, kept if older_than is None else None, dry_run)
                return
            cutoff = prune.prune_cutoff(older)
            scope = render.prune_scope(cutoff, live.table)
            todo = prune.count_older(live, cutoff)
            if dry_run:
                out.write(render.prune_preview(todo, scope))
                return
            if todo and not yes and not typer.confirm(f"delete {todo} rows {scope}?", err=True):
                fail("nothing was deleted", code=1)
            done = prune.prune(
                live,
                cutoff,
                batch_size=batch_size,
                progress=lambda n: out.debug(f"deleted {n} rows so far"),
            )
            out.write(render.pruned(done.rows, done.batches, scope, dropped=done.dropped))
            _prune_rollups(live, kept if older_than is None else None, dry_run)


def _prune_rollups(settings: Any, kept: Any, dry_run: bool) -> None:
    """[retention] hourly and daily: drop the rollup buckets older than theirs."""
    from analytics_cli import prune, rollups

    if kept is None or dry_run:
        return
    for grain, older in (("hourly", kept.hourly), ("daily", kept.daily)):
        if older is not None:
            cutoff = prune.prune_cutoff(older)
            gone = rollups.prune_grain(settings, grain, cutoff)
            out.write(
                f"deleted {gone} {grain} rollup rows older than {cutoff:%Y-%m-%dT%H:%M:%SZ}\n"
            )


# ---------------------------------------------------------------------------- spool

spool_app = typer.Typer(
    help="List the cycles waiting in the local spool; remove the ones never replayed here.",
    no_args_is_help=True,
    epilog=docs("operations.md"),
)
app.add_typer(spool_app, name="spool")


@spool_app.command("list", epilog=docs("operations.md"))
def spool_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List every spool file: its slot and rows, or the other store it is for, or why it
    cannot be replayed; and the files set aside in rejected/. Connects to no database."""
    import json

    from analytics_cli import db, spool
    from analytics_cli.timeutil import iso

    with handled():
        settings = _load(ctx)
        with db.resolved(settings) as live:
            folder = spool.spool_dir(live)
            items = spool.summary(folder, spool.store_identity(live))
        aside = spool.rejected(folder)
    if as_json:
        doc = {
            "folder": str(folder),
            "files": [
                {
                    "file": str(i.path),
                    "slot": iso(i.slot) if i.slot else None,
                    "rows": i.rows,
                    "store": i.foreign,
                    "problem": i.problem,
                }
                for i in items
            ],
            "rejected": [str(p) for p in aside],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    lines = [f"spool folder {folder}: {len(items)} file(s), {len(aside)} set aside"]
    for i in items:
        if i.problem is not None:
            lines.append(f"{i.path}  cannot be replayed: {i.problem}")
        elif i.foreign is not None:
            lines.append(f"{i.path}  another store: {i.foreign}")
        else:
            lines.append(f"{i.path}  slot {iso(i.slot) if i.slot else '?'}, {i.rows} row(s)")
    lines += [f"{p}  set aside" for p in aside]
    out.write("\n".join(lines) + "\n")


@spool_app.command("drop", epilog=docs("operations.md"))
def spool_drop(
    ctx: typer.Context,
    foreign: Annotated[
        bool, typer.Option("--foreign", help="Remove the files spooled for another store.")
    ] = False,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="Remove the files set aside in rejected/.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove spool files that this configuration never replays; asks first on a terminal."""
    from analytics_cli import console, db, spool

    with handled():
        if not (foreign or rejected):
            fail("nothing to drop", hint="name what to remove: --foreign, --rejected or both")
        settings = _load(ctx)
        with db.resolved(settings) as live:
            folder = spool.spool_dir(live)
            todo = spool.droppable(
                folder, spool.store_identity(live), foreign=foreign, rejected_too=rejected
            )
        if not todo:
            out.info(f"nothing to remove in {folder}")
            return
        if not yes:
            if not console.stdin_is_terminal():
                fail(
                    "refusing to delete without confirmation (no terminal)",
                    hint="add --yes to drop from a script",
                )
            for path in todo:
                out.info(f"would remove {path}")
            if not typer.confirm(f"remove {len(todo)} spool file(s)?", err=True):
                fail("nothing was removed", code=1)
        for path in todo:
            spool.remove(path)
        out.info(f"removed {len(todo)} spool file(s) from {folder}")


# ---------------------------------------------------------------------------- entry point


_TERMINATED: list[int] = []


def _on_sigterm(signum: int, _frame: object) -> None:
    _TERMINATED.append(signum)
    raise Interrupted(signum)


def _click_exception() -> type[Exception]:
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # Typer releases that use the separate click package
        from click.exceptions import ClickException  # type: ignore[no-redef, import-not-found, assignment, unused-ignore]
    return ClickException


def _output_flag(token: str) -> bool:
    """-q, -v (and -qq, -vv...), --quiet, --verbose, --log-format[=X]: the output options."""
    return (
        token in ("--quiet", "--verbose", "--log-format")
        or token.startswith("--log-format=")
        or (len(token) > 1 and token[0] == "-" and set(token[1:]) in ({"q"}, {"v"}))
    )


def hoist_output_options(argv: list[str]) -> list[str]:
    """The output options typed after the command (``collect -q``) moved before it, where
    the group reads them; a token that is an option's value, or follows ``--``, stays."""
    if not any(_output_flag(t) for t in argv):
        return argv
    command: Any = typer.main.get_command(app)
    root = command
    kept: list[str] = []
    hoisted: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            kept += [token, *tokens]
            break
        if token.startswith("-") and token != "-":
            name = token.partition("=")[0]
            option = next((p for p in command.params if name in getattr(p, "opts", ())), None)
            if option is None and command is not root and _output_flag(token):
                hoisted.append(token)
                if token == "--log-format":
                    hoisted.append(next(tokens, ""))
                continue
            kept.append(token)
            takes_value = option is not None and not (option.is_flag or option.count)
            if takes_value and "=" not in token:
                kept.append(next(tokens, ""))
            continue
        kept.append(token)
        sub = getattr(command, "commands", {}).get(token)
        if sub is not None:
            command = sub
    return hoisted + kept


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: run the app and exit with the documented code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if os.environ.get(COMPLETE_VAR):
        # A shell asks for completions: each comes with its help on one line, which rich
        # would wrap at the terminal's width, and fish takes a wrapped tail for a candidate.
        os.environ["COLUMNS"] = "100000"
    click_exception = _click_exception()
    try:
        args = hoist_output_options(sys.argv[1:] if argv is None else list(argv))
        result = app(args=args, prog_name="analytics-cli", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                typer.echo(ctx.get_help(), nl=False)
            code = 0
        else:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "analytics-cli"
            message = exc.format_message()  # type: ignore[attr-defined,unused-ignore]
            out.error(f"{message} (see '{where} --help')")
            code = int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        code = 130
    except KeyboardInterrupt:
        code = 130
    except ImportError as exc:
        # The last net for an optional library reached outside a command's error handling.
        missing = missing_extra(exc)
        if missing is None:
            raise
        out.error(str(missing), missing.hint)
        code = missing.exit_code
    if code == 130:
        if _TERMINATED:
            out.error("terminated (SIGTERM); open transactions were rolled back")
            code = 128 + _TERMINATED[0]
        else:
            out.error("interrupted (SIGINT); open transactions were rolled back")
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    sys.exit(code)


def _silence_stdout() -> None:
    """After the reader of stdout went away (| head), drop further output quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
