"""Monitoring around ``collect``: the Prometheus textfile and the heartbeat ping."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from analytics_cli import __version__
from analytics_cli.config.schema import Settings
from analytics_cli.console import atomic_write
from analytics_cli.engines.stores import open_store
from analytics_cli.errors import AnalyticsError, ConfigError
from analytics_cli.timeutil import utcnow

if TYPE_CHECKING:
    from analytics_cli.console import Output
    from analytics_cli.cycle.results import CycleReport

PING_TIMEOUT = 5.0


def check_textfile_path(path: Path) -> None:
    """Refuse a textfile path whose directory does not exist, before the cycle runs."""
    if path.is_dir():
        raise ConfigError(f"--textfile {path} is a directory")
    if not path.parent.is_dir():
        raise ConfigError(f"--textfile: directory {path.parent} does not exist")


def slot_values(settings: Settings, slot: datetime) -> dict[str, Decimal]:
    """The value of each metric type stored at one slot: the sum of its rows (every series
    of a dimensional metric, every [[source]]), as show and the report define it."""
    with open_store(settings, doing="store database error", read_only=True, retries=0) as found:
        layout = found.detect()
        if layout is None:
            return {}
        return found.slot_values(layout, slot)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Decimal | float | int) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value != 0 else "0"
    return repr(float(value)) if isinstance(value, float) else str(value)


_LAST_SUCCESS = re.compile(r"^analytics_cli_last_success_timestamp_seconds\s+(\S+)\s*$", re.M)


def previous_last_success(path: Path) -> float | None:
    """The last-success timestamp of an earlier textfile, kept across failed runs."""
    try:
        match = _LAST_SUCCESS.search(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def textfile_text(
    *,
    values: dict[str, Decimal],
    failed: list[str],
    exit_code: int,
    finished: datetime,
    duration: float | None,
    last_success: float | None,
    spooled: int | None = None,
) -> str:
    """A cycle in the Prometheus text exposition format (for node_exporter's textfile collector)."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[str, str]]) -> None:
        if not samples:
            return
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    gauge(
        "analytics_metric",
        "Value of each analytics-cli metric for the last collected slot.",
        [(f'{{type="{_label(t)}"}}', _number(v)) for t, v in sorted(values.items())],
    )
    status = [(t, "1") for t in values if t not in failed] + [(t, "0") for t in failed]
    gauge(
        "analytics_cli_metric_up",
        "1 when the metric ran in the last cycle, 0 when its query failed.",
        [(f'{{type="{_label(t)}"}}', v) for t, v in sorted(status)],
    )
    gauge(
        "analytics_cli_last_run_timestamp_seconds",
        "Unix time the last collect cycle finished, whatever its outcome.",
        [("", _number(round(finished.timestamp(), 3)))],
    )
    gauge(
        "analytics_cli_last_run_exit_code",
        "Exit code of the last collect cycle (0 ok, 1 partial, 2 config, 3 database).",
        [("", str(exit_code))],
    )
    if last_success is not None:
        gauge(
            "analytics_cli_last_success_timestamp_seconds",
            "Unix time the last fully successful collect cycle finished.",
            [("", _number(last_success))],
        )
    if duration is not None:
        gauge(
            "analytics_cli_collect_duration_seconds",
            "Duration of the last collect cycle in seconds.",
            [("", _number(round(duration, 6)))],
        )
    if spooled is not None:
        gauge(
            "analytics_cli_spool_files",
            "Cycles waiting in the spool for the store (0 when it took everything).",
            [("", str(spooled))],
        )
    return "\n".join(lines) + "\n"


def spooled_files(settings: Settings | None) -> int | None:
    """How many cycles wait in the spool; None when unknown (no settings, no spool)."""
    if settings is None or not settings.spool_enabled:
        return None
    from analytics_cli import spool

    try:
        return len(spool.pending(spool.spool_dir(settings)))
    except OSError:
        return None


def write_cycle_textfile(
    path: Path,
    settings: Settings | None,
    report: CycleReport | None,
    exit_code: int,
    *,
    loaded: Settings | None = None,
) -> None:
    """Write the textfile for a finished cycle (or a failed run without a report), atomically."""
    finished = utcnow()
    values: dict[str, Decimal] = {}
    failed: list[str] = []
    duration: float | None = None
    if report is not None:
        duration = report.duration
        failed = [r.type for r in report.failed]
        # One gauge per type, of the slot's total: a type tagged with [[source]]s or with
        # dimensions has several rows, which the store adds up.
        several = {r.type for r in report.results if r.source is not None or r.series is not None}
        plain = [r for r in report.results if r.type not in several]
        values = {r.type: r.count for r in plain if r.count is not None}
        unknown = [r.type for r in plain if r.count is None and r.status != "failed"]
        unknown += sorted(several - set(failed))
        if unknown and settings is not None and not report.dry_run:
            # "Already collected" carries no value in the report, and a total is the
            # store's: read what the slot holds.
            stored = slot_values(settings, report.slot)
            values.update({t: stored[t] for t in unknown if t in stored})
    last_success = finished.timestamp() if exit_code == 0 else previous_last_success(path)
    text = textfile_text(
        values=values,
        failed=failed,
        exit_code=exit_code,
        finished=finished,
        duration=duration,
        last_success=round(last_success, 3) if last_success is not None else None,
        spooled=spooled_files(settings or loaded),
    )
    atomic_write(path, text, mode=0o644)


# ---------------------------------------------------------------------------- heartbeat


def check_ping_url(url: str) -> str:
    """Accept only http(s) URLs with a host for the heartbeat."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "ping URL must be an http:// or https:// URL",
            hint="for example https://hc-ping.com/<uuid>",
        )
    return url


def ping_target(url: str, exit_code: int) -> str:
    """URL after a successful run, URL/fail after any other exit (healthchecks.io style)."""
    if exit_code == 0:
        return url
    base, _, query = url.partition("?")
    return base.rstrip("/") + "/fail" + (f"?{query}" if query else "")


def ping(url: str, exit_code: int, *, timeout: float = PING_TIMEOUT) -> str | None:
    """Call the heartbeat URL; returns None on success or a one-line reason (never raises)."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    target = ping_target(url, exit_code)
    host = urlsplit(target).hostname or "?"
    request = urllib.request.Request(
        target, headers={"User-Agent": f"analytics-cli/{__version__}"}, method="GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        exc.close()  # the error answer's connection
        # The path (a check's UUID) is a secret of sorts: name only the host.
        return f"heartbeat ping to {host} failed: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"heartbeat ping to {host} failed: {reason}"
    return None


# ---------------------------------------------------------------------------- around a cycle


class CycleMonitor:
    """What ``collect --textfile/--ping-url`` does around one cycle."""

    def __init__(
        self, out: Output, textfile: Path | None, ping_url: str | None, dry_run: bool
    ) -> None:
        self.out = out
        self.textfile = textfile
        self.ping_url = ping_url
        # A dry run is a check, not a collection: no heartbeat, no textfile (its
        # last-success time would hide a collector that stopped storing).
        self.dry_run = dry_run
        self.written = False
        # The settings once loaded: a run that fails later still counts its spool.
        self.settings: Settings | None = None

    def loaded(self, settings: Settings) -> None:
        """Take ``[collect] ping_url`` when no --ping-url was given."""
        self.settings = settings
        if self.ping_url is None and settings.ping_url:
            self.ping_url = check_ping_url(settings.ping_url)

    def finished(self, live: Settings, report: CycleReport) -> None:
        """Write the textfile while the store is still reachable (embedded server running)."""
        if self.textfile is not None and not self.dry_run:
            self._write(live, report, report.exit_code)

    def _write(self, live: Settings | None, report: CycleReport | None, code: int) -> None:
        assert self.textfile is not None
        self.written = True
        try:
            write_cycle_textfile(self.textfile, live, report, code, loaded=self.settings)
        except (AnalyticsError, OSError) as exc:
            self.out.warn(f"could not write the textfile {self.textfile}: {exc}")

    def done(self, code: int) -> None:
        """After the run: a textfile for runs that ended without a report, then the ping."""
        if self.dry_run:
            return
        if self.textfile is not None and not self.written:
            self._write(None, None, code)
        if self.ping_url:
            problem = ping(self.ping_url, code)
            if problem:
                self.out.warn(problem)
            else:
                self.out.debug(f"heartbeat sent ({'ok' if code == 0 else 'fail'})")
