"""Delivery of findings where operators look: Alertmanager's API v2 and a generic webhook.

One run sends at most one request to each target. Alertmanager gets every firing alert again
(``endsAt`` a few intervals ahead, so an alert the tool stops sending resolves by itself) and
every alert it sent before that is gone now (``endsAt`` = now). The webhook is told only of
changes: new alerts and resolved ones. What was sent lives in a small state file beside the
spool folder, one per command. Delivery never raises: a failure is one warning line.
"""

from __future__ import annotations

import json
import shlex
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics_cli import __version__
from analytics_cli.config.schema import Notify, Settings
from analytics_cli.timeutil import format_duration, iso, utcnow

if TYPE_CHECKING:
    from analytics_cli.anomalies import AnomalyReport, Finding
    from analytics_cli.cycle.results import CycleReport
    from analytics_cli.status import StatusReport

# A firing alert's endsAt, in [collect] intervals ahead, unless [notify] resolve_after says.
RESOLVE_INTERVALS = 3
# Label values for the findings' kinds (routing matchers want no spaces).
KINDS = {"below limit": "below_limit", "above limit": "above_limit"}
SEVERITY = {
    "drop": "warning",
    "spike": "warning",
    "below_limit": "critical",
    "above_limit": "critical",
}
STATE_VERSION = 1


@dataclass(frozen=True)
class Notice:
    """One alert: labels that route it, annotations a person reads."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def key(self) -> str:
        """The identity of the alert (Alertmanager's: its label set)."""
        return json.dumps(dict(sorted(self.labels.items())), separators=(",", ":"))


def _show_command(metric: str) -> str:
    return f"analytics-cli show --type {shlex.quote(metric)} --since 2d"


def _number(value: Any) -> str:
    """A value as people write it: 20, not 20.0000000000000000."""
    from decimal import Decimal

    number = Decimal(value).normalize()
    return format(number, "f") if number != 0 else "0"


def from_anomalies(report: AnomalyReport, line: Callable[[Finding], str]) -> list[Notice]:
    """Each finding of ``status --anomalies`` (drop, spike, below/above limit) as an alert."""
    notices = []
    for finding in report.findings:
        kind = KINDS.get(finding.kind, finding.kind)
        notices.append(
            Notice(
                {
                    "alertname": "AnalyticsAnomaly",
                    "type": finding.type,
                    "kind": kind,
                    "severity": SEVERITY.get(kind, "warning"),
                },
                {
                    "summary": line(finding),
                    "description": f"{finding.kind}: {finding.why}",
                    "value": _number(finding.value),
                    "slot": iso(finding.at),
                    "expected": finding.expected,
                    "command": _show_command(finding.type),
                },
            )
        )
    return notices


def from_status(report: StatusReport) -> list[Notice]:
    """A stale store and each stale metric of ``status`` as alerts."""
    notices = []
    if report.stale:
        newest = report.newest
        if not report.table_exists:
            why = f"table {report.table} does not exist: nothing was collected yet"
        elif newest is None:
            why = f"table {report.table} holds no rows"
        else:
            why = (
                f"the newest row of {report.table} is "
                f"{format_duration(report.now - newest)} old, older than "
                f"{format_duration(report.max_age)}"
            )
        notices.append(
            Notice(
                {"alertname": "AnalyticsStoreStale", "kind": "stale", "severity": "critical"},
                {"summary": why, "command": "analytics-cli status"},
            )
        )
    for m in report.metrics:
        if not m.stale:
            continue
        age = (
            f"its newest slot {iso(m.latest)} is {format_duration(report.now - m.latest)} old"
            if m.latest is not None
            else "it has no row"
        )
        notices.append(
            Notice(
                {
                    "alertname": "AnalyticsMetricStale",
                    "type": m.type,
                    "kind": "stale",
                    "severity": "warning",
                },
                {
                    "summary": f"metric {m.type} is stale: {age}",
                    "command": _show_command(m.type),
                },
            )
        )
    return notices


def from_cycle(report: CycleReport | None, failure: Exception | None) -> dict[str, list[Notice]]:
    """``collect``'s own failures as alerts, by scope: ``store`` (down, spooled) and, when the
    cycle ran to its end, ``metrics`` (each failed one). A run that ended at the store says
    nothing of the metrics: their alerts stay as they are."""
    groups: dict[str, list[Notice]] = {"store": []}
    if report is not None:
        notices = groups["metrics"] = []
        for r in report.failed:
            labels = {
                "alertname": "AnalyticsMetricFailing",
                "type": r.type,
                "kind": "failing",
                "severity": "warning",
            }
            if r.source is not None:
                labels["source"] = r.source
            notices.append(
                Notice(
                    labels,
                    {
                        "summary": f"metric {r.type} failed at slot {iso(report.slot)}: "
                        f"{r.error or 'failed'}",
                        "command": f"analytics-cli config check --only {shlex.quote(r.type)}",
                    },
                )
            )
    if failure is not None and getattr(failure, "exit_code", 0) == 3:
        text = str(failure)
        kind = "spooled" if " spooled (" in text else "store_down"
        groups["store"].append(
            Notice(
                {"alertname": "AnalyticsStoreDown", "kind": kind, "severity": "critical"},
                {"summary": text, "command": "analytics-cli status"},
            )
        )
    return groups


# ---------------------------------------------------------------------------- state


def state_path(settings: Settings, command: str) -> Path:
    """The state file of ``command``: beside the spool folder, found the way the spool is."""
    from analytics_cli import spool

    return spool.spool_dir(settings).parent / f"notify-{command}.json"


def _load_state(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("version") == STATE_VERSION else {}


def _save_state(path: Path, doc: dict[str, Any]) -> str | None:
    from analytics_cli.console import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, json.dumps(doc, indent=1, sort_keys=True) + "\n", mode=0o600)
    except OSError as exc:
        return f"could not keep the alert state in {path}: {exc.strerror or exc}"
    return None


# ---------------------------------------------------------------------------- delivery


@dataclass
class Delivery:
    """What one run sent: requests per target (the measure of its cost) and warnings."""

    requests: int = 0
    warnings: tuple[str, ...] = ()


def deliver(
    settings: Settings,
    command: str,
    groups: Mapping[str, Iterable[Notice]],
    *,
    now: datetime | None = None,
    secrets: set[str] | None = None,
) -> Delivery:
    """Send the alerts of ``groups`` (scope → current notices) and resolve what healed.

    Only the scopes given are compared with the state: ``status`` without ``--anomalies``
    leaves the anomaly alerts as they are. Never raises.
    """
    from analytics_cli.dsn import scrub

    notify = settings.notify
    result = Delivery()
    if not notify.enabled:
        return result
    now = now or utcnow()
    ahead = notify.resolve_after or RESOLVE_INTERVALS * settings.interval
    path = state_path(settings, command)
    state = _load_state(path)
    targets = [t for t in ("alertmanager", "webhook") if getattr(notify, t)]
    found = secrets if secrets is not None else set()
    warnings: list[str] = []
    new_state: dict[str, Any] = {"version": STATE_VERSION}
    current = {scope: {n.key: n for n in notices} for scope, notices in groups.items()}
    for target in targets:
        before: dict[str, dict[str, Any]] = state.get(target, {})
        kept = {s: v for s, v in before.items() if s not in current}
        firing: list[dict[str, Any]] = []
        resolved: list[dict[str, Any]] = []
        new = False
        after: dict[str, dict[str, Any]] = {}
        for scope, notices in current.items():
            old: dict[str, Any] = before.get(scope, {})
            after[scope] = {}
            for key, notice in notices.items():
                started = old.get(key, {}).get("startsAt") or iso(now)
                new = new or key not in old
                entry = {
                    "labels": {**dict(notify.labels), **notice.labels},
                    # An error text may quote a connection string: scrubbed like output.
                    "annotations": {k: scrub(v, found) for k, v in notice.annotations.items() if v},
                    "startsAt": started,
                }
                after[scope][key] = entry
                firing.append({**entry, "endsAt": iso(now + ahead), "status": "firing"})
            for key, entry in old.items():
                if key not in notices:
                    resolved.append({**entry, "endsAt": iso(now), "status": "resolved"})
        problem = None
        if target == "alertmanager" and (firing or resolved):
            result.requests += 1
            problem = _post_alertmanager(notify, [*firing, *resolved], found)
        elif target == "webhook" and (new or resolved):
            result.requests += 1
            problem = _post_webhook(notify, command, firing, resolved, now)
        if problem is not None:
            warnings.append(problem)
            # Keep what was delivered before: to the next run, the new alerts are still new
            # and the healed ones still to resolve.
            for scope in after:
                after[scope] = dict(before.get(scope, {}))
        new_state[target] = {**kept, **after}
    failed = _save_state(path, new_state)
    if failed:
        warnings.append(failed)
    result.warnings = tuple(scrub(w, found) for w in warnings)
    return result


def _ssl_context(notify: Notify) -> Any:
    import ssl

    return ssl.create_default_context(cafile=notify.ca_file) if notify.ca_file else None


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise _Undeliverable(f"cannot read the {what} file {path}: {reason}") from None


class _Undeliverable(Exception):
    """A delivery that cannot be tried (credentials file unreadable, CA file bad)."""


def _post_alertmanager(
    notify: Notify, alerts: list[dict[str, Any]], secrets: set[str]
) -> str | None:
    import base64

    assert notify.alertmanager is not None
    url = notify.alertmanager.rstrip("/") + "/api/v2/alerts"
    headers = {"Content-Type": "application/json"}
    try:
        if notify.token_file:
            token = _read_secret(notify.token_file, "notify.token_file")
            secrets.add(token)
            headers["Authorization"] = f"Bearer {token}"
        elif notify.username and notify.password_file:
            password = _read_secret(notify.password_file, "notify.password_file")
            secrets.add(password)
            pair = base64.b64encode(f"{notify.username}:{password}".encode()).decode()
            secrets.add(pair)
            headers["Authorization"] = f"Basic {pair}"
    except _Undeliverable as exc:
        return f"alerts not delivered to Alertmanager: {exc}"
    body = [{k: v for k, v in a.items() if k != "status"} for a in alerts]
    return _post(notify, url, body, headers, "Alertmanager")


def webhook_body(
    command: str,
    firing: list[dict[str, Any]],
    resolved: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The webhook's JSON body (README: "Alerting"): the batch, with a text for chat tools."""
    lines = [f"analytics-cli {command}: {len(firing)} firing, {len(resolved)} resolved"]
    lines += [f"[FIRING] {a['annotations'].get('summary', '')}" for a in firing]
    lines += [f"[RESOLVED] {a['annotations'].get('summary', '')}" for a in resolved]
    return {
        "version": 1,
        "sender": "analytics-cli",
        "command": command,
        "status": "firing" if firing else "resolved",
        "sent_at": iso(now),
        "text": "\n".join(lines),
        "alerts": [*firing, *resolved],
    }


def _post_webhook(
    notify: Notify,
    command: str,
    firing: list[dict[str, Any]],
    resolved: list[dict[str, Any]],
    now: datetime,
) -> str | None:
    assert notify.webhook is not None
    body = webhook_body(command, firing, resolved, now)
    if notify.webhook_format == "slack":
        body = {"text": body["text"]}
    return _post(notify, notify.webhook, body, {"Content-Type": "application/json"}, "webhook")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Answers a redirect as the HTTP error it is, instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(notify: Notify, url: str, body: Any, headers: dict[str, str], name: str) -> str | None:
    """POST ``body`` as JSON with bounded retries; None on success, else one line (the URL's
    host only: a webhook's path is its secret)."""
    import http.client
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a port number: the request below says so as its reason
        port = None
    where = f"{name} at {parts.hostname}" + (f":{port}" if port else "")
    data = json.dumps(body).encode("utf-8")
    headers = {**headers, "User-Agent": f"analytics-cli/{__version__}"}
    try:
        context = _ssl_context(notify)
    except OSError as exc:
        return f"alerts not delivered to {where}: CA file {notify.ca_file}: {exc.strerror or exc}"
    # A redirect is not followed: urllib would repeat the request elsewhere with the
    # Authorization header (a token or a password) on it. It is answered as the 3xx it is.
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _RefuseRedirects()
    )
    attempts = notify.retries + 1
    reason = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=notify.timeout.total_seconds()) as response:
                response.read(65536)
            return None
        except urllib.error.HTTPError as exc:
            with exc:  # its connection, partly read: closed now, not at some later GC
                detail = exc.read(300).decode("utf-8", "replace").strip().splitlines()
            reason = f"HTTP {exc.code}" + (f" ({detail[0][:200]})" if detail else "")
            if exc.code < 500 and exc.code != 429:
                break  # the request itself is wrong: sending it again changes nothing
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            # HTTPException: something that is not an HTTP server answered (BadStatusLine).
            reason = str(getattr(exc, "reason", exc)) or type(exc).__name__
    tries = f" after {attempt + 1} attempts" if attempt else ""
    return f"alerts not delivered to {where}{tries}: {reason}"
