"""The spool reader trusts nothing: links, folders, other users' or writable files and
non-finite values are set aside with a warning, never replayed."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from analytics_cli import spool
from analytics_cli.config.schema import Settings
from analytics_cli.samples import Sample
from tests.conftest import Databases, proc_env, run_proc
from tests.helpers import custom_config, spool_file

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _slot(i: int) -> str:
    return (BASE + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(tmp: Path) -> dict[str, str]:
    return proc_env(XDG_STATE_HOME=str(tmp / "state"))


def _folder(tmp: Path) -> Path:
    return tmp / "state" / "analytics-cli" / "spool"


def _config(tmp: Path, dbs: Databases) -> Path:
    return custom_config(
        tmp / "c.toml",
        [("plain", "SELECT 7 AS count")],
        collect={"retries": 0, "connect_timeout": "1s"},
        source={"dsn": dbs.source},
        store={"dsn": dbs.store},
    )


def _stored(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT type, to_char(\"timestamp\" AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), count::text FROM analytics ORDER BY 2, 1'
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def _cycle(dbs: Databases, folder: Path, i: int, count: str = "5") -> Path:
    """A valid cycle of this store for slot ``i``, then its count rewritten as given."""
    slot = BASE + timedelta(minutes=30 * i)
    identity = spool.store_identity(Settings(store_dsn=dbs.store))
    path = spool_file(folder, slot, [Sample("plain", Decimal(5))], identity)
    if count != "5":
        doc = json.loads(path.read_text())
        doc["batches"][0]["entries"][0]["rows"][0][0] = count
        path.write_text(json.dumps(doc))
    return path


def _run_and_check_set_aside(
    dbs: Databases, tmp: Path, name: str, reason: str, *, untouched: Callable[[], object]
) -> None:
    """One collect: exit 0, this cycle stored, nothing of the bad entry, one warning."""
    before = untouched()
    result = run_proc("-c", str(_config(tmp, dbs)), "collect", "--at", _slot(3), env=_env(tmp))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    prefix = f"warning: spool file {name} set aside in {_folder(tmp)}/rejected: "
    assert warnings[0].startswith(prefix), warnings[0]
    assert reason in warnings[0], warnings[0]
    assert _stored(dbs.store) == [("plain", _slot(3), "7")]
    assert spool.pending(_folder(tmp)) == []
    assert os.path.lexists(_folder(tmp) / "rejected" / name)
    assert untouched() == before


@pytest.mark.parametrize("count", ["NaN", "Infinity", "-Infinity", "sNaN", "1e400"])
def test_non_finite_count_is_set_aside(dbs: Databases, tmp_path: Path, count: str) -> None:
    path = _cycle(dbs, _folder(tmp_path), 0, count)
    reason = "out of range" if count == "1e400" else "not a finite number"
    _run_and_check_set_aside(dbs, tmp_path, path.name, reason, untouched=lambda: None)


def test_symlink_to_a_file_elsewhere_is_never_followed(dbs: Databases, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = _cycle(dbs, outside, 0)  # a valid cycle of this very store
    folder = _folder(tmp_path)
    folder.mkdir(parents=True)
    link = folder / target.name
    link.symlink_to(target)
    _run_and_check_set_aside(
        dbs,
        tmp_path,
        link.name,
        f"a symbolic link to {target}, not a regular file (never followed)",
        untouched=target.read_bytes,
    )
    assert target.exists()  # the link moved, not what it points to


def test_dangling_link_is_set_aside(dbs: Databases, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    folder.mkdir(parents=True)
    link = folder / "20260101T000000Z-dangling.json"
    link.symlink_to(tmp_path / "gone.json")
    _run_and_check_set_aside(dbs, tmp_path, link.name, "a symbolic link to", untouched=lambda: None)


def test_link_to_a_folder_is_set_aside(dbs: Databases, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    folder.mkdir(parents=True)
    (tmp_path / "somewhere").mkdir()
    link = folder / "20260101T000000Z-folder.json"
    link.symlink_to(tmp_path / "somewhere")
    _run_and_check_set_aside(dbs, tmp_path, link.name, "a symbolic link to", untouched=lambda: None)
    assert (tmp_path / "somewhere").is_dir()


def test_a_folder_named_like_a_spool_file_is_set_aside(dbs: Databases, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "20260101T000000Z-dir.json").mkdir(parents=True)
    _run_and_check_set_aside(
        dbs, tmp_path, "20260101T000000Z-dir.json", "not a regular file", untouched=lambda: None
    )


def test_file_writable_by_others_is_set_aside(dbs: Databases, tmp_path: Path) -> None:
    path = _cycle(dbs, _folder(tmp_path), 0)
    path.chmod(0o666)
    _run_and_check_set_aside(
        dbs,
        tmp_path,
        path.name,
        "writable by group or others (mode 0666)",
        untouched=lambda: None,
    )


def test_file_of_another_user_is_set_aside(dbs: Databases, tmp_path: Path) -> None:
    path = _cycle(dbs, _folder(tmp_path), 0)
    nobody = pwd.getpwnam("nobody").pw_uid
    assert os.geteuid() != nobody
    os.chown(path, nobody, -1)
    path.chmod(0o644)
    _run_and_check_set_aside(
        dbs,
        tmp_path,
        path.name,
        f"owned by uid {nobody}, not by this user (uid {os.geteuid()})",
        untouched=lambda: None,
    )


def test_status_lists_what_cannot_be_replayed_without_reading_it(
    dbs: Databases, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    folder.mkdir(parents=True)
    link = folder / "20260101T000000Z-link.json"
    link.symlink_to("/etc/shadow")
    result = run_proc("-c", str(_config(tmp_path, dbs)), "status", "--json", env=_env(tmp_path))
    doc = json.loads(result.stdout)
    assert doc["spooled"] == []
    assert doc["spool_unreadable"] == [
        {
            "file": str(link),
            "reason": "a symbolic link to /etc/shadow, not a regular file (never followed)",
        }
    ]
