"""What runs around collect and status: the textfile, the heartbeat and alert delivery."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from analytics_cli.commands.common import handled, out
from analytics_cli.errors import Interrupted

if TYPE_CHECKING:
    from analytics_cli.config.schema import Settings
    from analytics_cli.monitor import CycleMonitor

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


def with_notify(settings: Settings, alertmanager: str | None, webhook: str | None) -> Settings:
    """The settings with --alertmanager / --webhook in place of [notify]'s URLs."""
    from dataclasses import replace

    from analytics_cli.config.dump import url_secrets

    # The config parser loads only when a command runs (start-up time).
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


def deliver(settings: Settings, command: str, groups: Mapping[str, Any]) -> None:
    """Send the findings; a failure is a warning line (the findings are printed anyway)."""
    # Delivery (urllib, json) loads only when a command runs (start-up time).
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


@contextmanager
def cycle_hooks(
    textfile: Path | None, ping_url: str | None, dry_run: bool = False
) -> Iterator[CycleMonitor]:
    """The textfile and heartbeat around a cycle, told the exit code however the run ends."""
    # The monitor (and the store readers behind it) loads only when a command runs.
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
