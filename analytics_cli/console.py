"""The console: stderr lines (text or JSON), verbosity, TTY detection, progress, atomic files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from analytics_cli.errors import ConfigError


class LogFormat(StrEnum):
    """How progress and log lines on stderr are written."""

    text = "text"
    json = "json"


# A word (no space) longer than this in a message is cut: a 10,000-character name given by
# mistake is named by its start and its length, not echoed whole into every log line.
LONG_WORD = 160
_KEEP = 60


def cut_long_words(message: str) -> str:
    """``message`` with every word longer than ``LONG_WORD`` characters cut to its start."""
    if len(message) <= LONG_WORD:
        return message
    import re

    def cut(match: re.Match[str]) -> str:
        word = match.group(0)
        return f"{word[:_KEEP]}...{word[-2:]} ({len(word)} characters)"

    return re.sub(rf"\S{{{LONG_WORD + 1},}}", cut, message)


class Output:
    """stderr messages: plain text or JSON lines, filtered by -v / -q; stdout with secrets scrubbed."""

    def __init__(self) -> None:
        self.log_format = LogFormat.text
        self.verbosity = 0
        self.secrets: set[str] = set()

    def configure(self, log_format: LogFormat, verbosity: int) -> None:
        """Start an invocation: --log-format, -v/-q (count of -v minus -q), no secrets yet."""
        self.log_format = log_format
        self.verbosity = verbosity
        self.secrets = set()

    def hide(self, *dsns: str | None) -> None:
        """Every password these connection strings carry is scrubbed from all later output."""
        # db stays out of the start-up path of --help: imported when a DSN is seen.
        from analytics_cli.dsn import dsn_secrets

        for dsn in dsns:
            self.secrets |= dsn_secrets(dsn)

    def line(self, level: str, message: str, **fields: Any) -> None:
        """Write one stderr line at ``level`` whatever the verbosity (the summary, errors)."""
        # db stays out of the start-up path of --help: imported when a line is written.
        from analytics_cli.dsn import scrub

        # Scrubbed first: a secret cut in two would no longer be found.
        message = cut_long_words(scrub(message, self.secrets))
        if self.log_format is LogFormat.json:
            import json  # only JSON logs need it: not on the start-up path of --help

            # Scrub every field before encoding: JSON escaping would hide a quote or backslash.
            clean = {
                k: scrub(v, self.secrets) if isinstance(v, str) else v for k, v in fields.items()
            }
            record = {"level": level, "message": message, **clean}
            text = scrub(json.dumps(record, default=str), self.secrets)
            print(text, file=sys.stderr, flush=True)
        else:
            prefix = "" if level == "info" else f"{level}: "
            print(f"{prefix}{message}", file=sys.stderr, flush=True)

    def info(self, message: str, **fields: Any) -> None:
        """Progress and summaries; hidden by -q."""
        if self.verbosity >= 0:
            self.line("info", message, **fields)

    def debug(self, message: str, **fields: Any) -> None:
        """Details shown with -v."""
        if self.verbosity > 0:
            self.line("debug", message, **fields)

    def warn(self, message: str, **fields: Any) -> None:
        """Something the operator should fix; always shown."""
        self.line("warning", message, **fields)

    def error(self, message: str, hint: str | None = None) -> None:
        """One clear line (plus a hint line where one helps); always shown."""
        if self.log_format is LogFormat.json:
            self.line("error", message, **({"hint": hint} if hint else {}))
            return
        self.line("error", message)
        if hint:
            self.line("hint", hint)

    def write(self, text: str) -> None:
        """Write text to stdout with every known password scrubbed."""
        from analytics_cli.dsn import scrub

        sys.stdout.write(scrub(text, self.secrets))

    @property
    def quiet(self) -> bool:
        """True with -q."""
        return self.verbosity < 0

    @property
    def json_logs(self) -> bool:
        """True with --log-format json."""
        return self.log_format is LogFormat.json

    @contextmanager
    def steps(
        self, label: str, unit: str, verb: str, *, every: int | None = None
    ) -> Iterator[Step | None]:
        """Progress of a long job: a bar on a terminal (redrawn several times a second), a line
        each quarter otherwise (and each ``every`` units when given), none with -q.

        The step callback takes (done, total, detail); detail is shown beside the bar.
        """
        if self.quiet:
            yield None
            return
        if stderr_is_terminal() and self.log_format is LogFormat.text:
            # rich is imported only for a bar on a terminal: it costs start-up time.
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as bar:
                task = bar.add_task(f"{label}: collecting {unit}", total=None)

                def update(done: int, total: int, detail: str) -> None:
                    bar.update(
                        task, completed=done, total=total, description=f"{label}: {unit}{detail}"
                    )

                yield update
            return
        said: set[int] = set()

        def lines(done: int, total: int, detail: str) -> None:
            quarter = done * 4 // max(total, 1)
            # A long job in a log says it is alive every few units, not only each quarter.
            counted = every is not None and done % every == 0
            if quarter in said and not counted:
                return
            said.add(quarter)
            self.info(f"{label}: {done}/{total} {unit} {verb}", done=done, total=total)

        yield lines


Step = Callable[[int, int, str], None]


def stdout_is_terminal() -> bool:
    """True when stdout is a terminal (TTY_COMPATIBLE and FORCE_COLOR override, as in rich)."""
    tty = os.environ.get("TTY_COMPATIBLE", "")
    if tty in ("0", "1"):
        return tty == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return sys.stdout.isatty()
    except ValueError:
        return False


def stderr_is_terminal() -> bool:
    """True when stderr is a terminal (progress bars and colour tables go there)."""
    try:
        return sys.stderr.isatty()
    except ValueError:
        return False


def stdin_is_terminal() -> bool:
    """True when a person can answer a question on stdin."""
    try:
        return sys.stdin.isatty()
    except ValueError:
        return False


def terminal_width() -> int:
    """Columns available: $COLUMNS, else the terminal's size, else 80."""
    import shutil

    return max(40, shutil.get_terminal_size((80, 24)).columns)


class RowProgress:
    """A progress bar of rows on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, label: str) -> None:
        # rich is imported only when a bar is drawn: it costs start-up time.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.bar.add_task(label, total=total)
        self.done = 0
        self.shown = 0.0

    def __enter__(self) -> RowProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def advance(self, rows: int) -> None:
        """Count rows written; redraw when due."""
        import time

        self.done += rows
        now = time.monotonic()
        if now - self.shown >= 0.1:
            self.shown = now
            self.bar.update(self.task, completed=self.done)


def atomic_write(path: Path, text: str, *, mode: int) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    import tempfile

    # The temporary name does not end in .prom, so node_exporter never reads a partial file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside ``path``, renamed onto it only when the block completes."""
    import tempfile

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a folder")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; give the result the mode a plain open() would have had.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
