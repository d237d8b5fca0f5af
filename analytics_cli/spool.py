"""Cycles the store could not take: atomic files, replayed first by the next run that reaches it."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from analytics_cli.config.schema import Settings
from analytics_cli.dsn import dsn_secrets, engine_for, scrub
from analytics_cli.samples import cut
from analytics_cli.spool_format import Corrupt, Identity, Spooled, decode, encode

SUFFIX = ".json"
REJECTED = "rejected"
# No cycle this tool writes comes near this size; a bigger file is not read into memory.
MAX_FILE_BYTES = 64 * 1024 * 1024


def spool_dir(settings: Settings, env: dict[str, str] | None = None) -> Path:
    """``[store] spool``, else ``$STATE_DIRECTORY/spool``, else
    ``$XDG_STATE_HOME/analytics-cli/spool``, else ``~/.local/state/…``."""
    env = dict(os.environ) if env is None else env
    if settings.spool_dir is not None:
        return Path(settings.spool_dir).expanduser()
    # systemd's StateDirectory= sets STATE_DIRECTORY (several folders: a colon-separated
    # list, the unit's first one first): the service's own writable folder, where the
    # dynamic user's home ("/") is read-only.
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "spool"
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]).expanduser() / "analytics-cli" / "spool"
    return Path.home() / ".local" / "state" / "analytics-cli" / "spool"


def store_identity(settings: Settings) -> Identity:
    """The identity of the store ``settings`` write to, read from its connection string.

    Missing parts take what the client library would use (libpq: the PG* variables and its
    defaults; MySQL: the option file and MYSQL_* variables), so that two spellings of one
    store agree. Every value is scrubbed of the connection string's secrets: a malformed
    string may put a piece of its password where a host belongs.
    """
    dsn = settings.store_dsn or ""
    found = engine_for(dsn).identity(dsn)
    found["table"] = settings.table
    secrets = dsn_secrets(dsn)
    return {key: scrub(value, secrets) for key, value in found.items()}


def write(folder: Path, cycle: Spooled) -> Path:
    """Write a cycle atomically (temporary file, fsync, rename), mode 0600; returns its path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Names sort by slot, then by when they were spooled: replay order is name order.
    stamp = cycle.slot.strftime("%Y%m%dT%H%M%SZ")
    final = folder / f"{stamp}-{uuid.uuid4().hex[:12]}{SUFFIX}"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".spool-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(encode(cycle))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def pending(folder: Path) -> list[Path]:
    """The spooled cycles waiting in ``folder``, oldest slot first: every ``*.json`` entry,
    links and folders included (the reader sets those aside; nothing is skipped silently)."""
    try:
        return sorted(
            p for p in folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith(".")
        )
    except FileNotFoundError:
        return []


class Unsafe(Corrupt):
    """A spool entry that is not a private regular file of this user: never read."""


def read_private(path: Path) -> str:
    """The text of a spool file, opened without following a link (O_NOFOLLOW), and only when
    it is a regular file owned by this user that no group or other user can write; Unsafe
    otherwise (OSError when it cannot be read at all)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unsafe(_link(path)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unsafe("not a regular file")
        if info.st_uid != os.geteuid():
            raise Unsafe(f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})")
        if info.st_mode & 0o022:
            raise Unsafe(f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})")
        if info.st_size > MAX_FILE_BYTES:
            raise Unsafe(f"{info.st_size} bytes, larger than any spooled cycle")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8")


def _link(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        return "a symbolic link, not a regular file (never followed)"
    return f"a symbolic link to {cut(target, 300)}, not a regular file (never followed)"


def set_aside(path: Path, reason: str, warn: Callable[[str], None]) -> None:
    """Move a file that is not a cycle we can replay out of the way, and say so."""
    aside = path.parent / REJECTED
    try:
        aside.mkdir(exist_ok=True, mode=0o700)
        info = aside.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise OSError(errno.ENOTDIR, "not a folder of this user")
        path.replace(aside / path.name)
    except OSError as exc:
        warn(
            f"warning: spool file {path} not replayed ({reason}); cannot move it to {aside}: "
            f"{exc.strerror}"
        )
        return
    warn(f"warning: spool file {path.name} set aside in {aside}: {reason}")


def readable(folder: Path, warn: Callable[[str], None]) -> Iterator[tuple[Path, Spooled]]:
    """Each pending cycle that parses, oldest first; the others are set aside with a warning."""
    for path in pending(folder):
        try:
            yield path, decode(read_private(path))
        except (Corrupt, UnicodeDecodeError) as exc:
            set_aside(path, str(exc) if isinstance(exc, Corrupt) else "not UTF-8 text", warn)
        except OSError as exc:
            warn(f"warning: cannot read spool file {path}: {exc.strerror}")


@dataclass(frozen=True)
class Listed:
    """A spool entry as ``status`` and ``spool list`` show it."""

    path: Path
    slot: datetime | None = None
    rows: int = 0
    # The store it names when that is not the current one (a readable description).
    foreign: str | None = None
    # Why it cannot be replayed (unreadable, unsafe), None when it can.
    problem: str | None = None


def summary(folder: Path, identity: Identity | None = None) -> list[Listed]:
    """Every pending entry, for status and ``spool list``; with ``identity``, the files of
    another store are marked as such."""
    out: list[Listed] = []
    for path in pending(folder):
        try:
            cycle = decode(read_private(path))
        except (Corrupt, UnicodeDecodeError) as exc:
            out.append(Listed(path, problem=str(exc) if isinstance(exc, Corrupt) else "not UTF-8"))
            continue
        except OSError as exc:
            out.append(Listed(path, problem=str(exc.strerror)))
            continue
        mine = identity is None or cycle.belongs(identity)
        out.append(Listed(path, cycle.slot, cycle.rows, None if mine else store_text(cycle)))
    return out


def rejected(folder: Path) -> list[Path]:
    """The files set aside in ``folder``'s rejected/ folder."""
    try:
        return sorted(p for p in (folder / REJECTED).iterdir() if not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def store_text(cycle: Spooled) -> str:
    """The store a spooled cycle names, as one line without secrets."""
    if cycle.store is None:
        return f"table {cycle.table} (a file of the first spool format)"
    s = cycle.store
    if "store" in s:
        where = s["store"]
    else:
        # Only the parts an identity holds: never a password, whatever a hand-made file says.
        parts = [f"{key} {s[key]}" for key in ("user", "host", "port", "socket") if s.get(key)]
        where = f"{s.get('engine', '?')} database {s.get('dbname', '?')} ({', '.join(parts)})"
    return cut(f"{where}, table {s.get('table', cycle.table)}", 200)


DROP_COMMAND = "analytics-cli spool drop --foreign"


def foreign_warning(folder: Path, cycles: Sequence[Spooled]) -> str:
    """The one warning of a run that found spool files of other stores."""
    stores = sorted({store_text(c) for c in cycles})
    named = stores[0] if len(stores) == 1 else f"{len(stores)} stores: " + "; ".join(stores)
    return (
        f"warning: {len(cycles)} spool file(s) in {folder} are for another store ({named}) "
        f"and are not replayed here; remove them with: {DROP_COMMAND}"
    )


def droppable(folder: Path, identity: Identity, *, foreign: bool, rejected_too: bool) -> list[Path]:
    """The files ``spool drop`` removes: other stores' cycles, and the set-aside ones."""
    found: list[Path] = []
    if foreign:
        found += [item.path for item in summary(folder, identity) if item.foreign is not None]
    if rejected_too:
        found += rejected(folder)
    return found


def remove(path: Path) -> None:
    """Remove one spool entry (a link is removed, never what it points to)."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
