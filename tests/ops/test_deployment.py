"""The shipped deployment files keep the spool's promise where they run, and their configs
work against the platform they are written for.

Each test reads the file as shipped and runs the tool the way that file would: the systemd
unit with the environment systemd gives a ``DynamicUser=yes`` service, root's crontab line
with its variables, the CronJob with its container's env and volume mounts. The root filesystem is read-only around the run (as
``ProtectSystem=strict`` and ``readOnlyRootFilesystem`` make it), writable only where the
file gives the tool a folder; a store outage must then spool the cycle there, and the next
run that reaches the store must write it once.
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml

from analytics_cli import spool
from analytics_cli.config.load import load as load_config
from analytics_cli.config.schema import Settings
from tests.conftest import Databases, Result, cli
from tests.docs.test_examples import check_values
from tests.faults.conftest import tcp_dsn, unix_target
from tests.faults.test_spool import Switch
from tests.mariadb_server import MySQLPlatform
from tests.ops.test_cron import crontab_entries
from tests.ops.test_ops import BUILTINS

ROOT = Path(__file__).resolve().parents[2]
CRON = ROOT / "cron"
K8S = CRON / "kubernetes"
# systemd's PATH for services (its compiled-in default).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ---------------------------------------------------------------------------- helpers


def confined(argv: list[str], writable: list[Path]) -> list[str]:
    """``argv`` run with the root filesystem read-only except ``writable`` (bind mounts in a
    private mount namespace): ProtectSystem=strict, readOnlyRootFilesystem. A non-root
    account cannot write "/" in the first place: it runs ``argv`` as it is."""
    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux) is needed to make / read-only for a run"
    binds = "".join(
        f"mount --bind {shlex.quote(str(d))} {shlex.quote(str(d))} && " for d in writable
    )
    script = f"{binds}mount -o remount,bind,ro / && exec {shlex.join(argv)}"
    return [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script]


def run(argv: list[str], env: dict[str, str], writable: list[Path], cwd: Path) -> Result:
    """Run the tool (``argv`` after the command name) confined, with exactly ``env``."""
    command = confined([sys.executable, "-m", "analytics_cli", *argv], writable)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=180)
    return Result(done.returncode, done.stdout, done.stderr)


def spooled_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{spool.SUFFIX}")) if folder.is_dir() else []


def pg_rows(dsn: str) -> list[tuple[str, datetime]]:
    """(type, slot) of every stored row; none before the first run has made the table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('analytics')").fetchone()
        if row is None or row[0] is None:
            return []
        rows = conn.execute('SELECT type, "timestamp" FROM analytics ORDER BY 2, 1').fetchall()
    return [(str(t), when.astimezone(UTC)) for t, when in rows]


def mysql_rows(platform: MySQLPlatform) -> list[tuple[str, datetime]]:
    with platform.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT `type`, `createdAt` FROM `analytics` ORDER BY 2, 1")
        # UTC wall time in a datetime column.
        return [(str(t), when.replace(tzinfo=UTC)) for t, when in cur.fetchall()]


def once_each(rows: list[tuple[str, datetime]], types: list[str]) -> None:
    """Every metric of every stored slot is there exactly once, all of ``types``."""
    assert rows
    assert len(rows) == len(set(rows)), rows
    for when in {when for _, when in rows}:
        assert sorted(t for t, w in rows if w == when) == sorted(types), when


def with_port(url: str, port: int) -> str:
    """A mysql:// URL with another port: the same store identity but for the port."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def outage_then_back(
    launch: Callable[[], Result],
    folder: Path,
    front: Switch,
    stored: Callable[[], list[tuple[str, datetime]]],
    types: list[str],
) -> None:
    """The store (behind ``front``) is down: a run exits 3 and the cycle waits in
    ``folder``. The store is back: the next run writes it, once, and empties the spool."""
    front.stop()
    down = launch()
    assert down.exit_code == 3, down.stderr
    (spooled,) = spooled_files(folder)
    assert str(folder) in down.stderr
    assert spooled.stat().st_mode & 0o777 == 0o600
    cycle = spool.decode(spooled.read_text())
    assert sorted(e.type for b in cycle.batches for e in b.entries) == sorted(types)
    assert stored() == []

    front.start()
    up = launch()
    assert up.exit_code == 0, up.stderr
    assert spooled_files(folder) == []
    rows = stored()
    once_each(rows, types)
    assert cycle.slot.astimezone(UTC) in {when for _, when in rows}
    again = launch()
    assert again.exit_code == 0, again.stderr
    assert stored() == rows


# ---------------------------------------------------------------------------- systemd


def read_unit() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=("#", ";"), delimiters=("=",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CRON / "analytics-cli.service").read_text())
    return parser["Service"]


def systemd_env(
    service: configparser.SectionProxy, state_root: Path, env_file: str
) -> dict[str, str]:
    """What systemd gives the unit's process: its PATH, a dynamic user's HOME "/", each
    Environment= line, $STATE_DIRECTORY for StateDirectory= (under ``state_root`` rather
    than /var/lib), and the EnvironmentFile's lines (here ``env_file``'s text)."""
    env = {"PATH": SYSTEMD_PATH, "HOME": "/", "LANG": "C.UTF-8"}
    for assignment in shlex.split(service.get("Environment", "")):
        key, value = assignment.split("=", 1)
        env[key] = value
    names = service["StateDirectory"].split()
    env["STATE_DIRECTORY"] = ":".join(str(state_root / name) for name in names)
    for line in env_file.splitlines():
        key, value = line.split("=", 1)
        env[key] = value
    return env


@pytest.fixture
def pg_store(dbs: Databases) -> Iterator[Switch]:
    """The test's PostgreSQL store behind a TCP front that can be stopped and started."""
    front = Switch(unix_target(dbs.admin))
    yield front
    front.close()


def test_unit_spools_under_state_directory_and_replays_once(
    dbs: Databases, tmp_path: Path, pg_store: Switch
) -> None:
    switch = pg_store
    service = read_unit()
    # ExecStart= as shipped: the tool's own arguments follow the binary's path.
    binary, *args = shlex.split(service["ExecStart"])
    assert binary == "/usr/local/bin/analytics-cli" and args[-1] == "collect"
    state_root = tmp_path / "var-lib"
    state = state_root / service["StateDirectory"]
    # systemd creates the folder before starting the process (StateDirectoryMode=).
    state.mkdir(parents=True, mode=int(service["StateDirectoryMode"], 8))
    store = tcp_dsn(dbs.store, switch.port)
    env = systemd_env(
        service, state_root, f"ANALYTICS_SOURCE_DSN={dbs.source}\nANALYTICS_STORE_DSN={store}"
    )
    assert env["HOME"] == "/" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    folder = state / "spool"

    switch.stop()
    # Without $STATE_DIRECTORY the spool would go under the read-only home: lost.
    without = {k: v for k, v in env.items() if k != "STATE_DIRECTORY"}
    lost = run(args, without, [state], cwd=Path("/"))
    assert lost.exit_code == 3, lost.stderr
    assert "the slot could not be spooled either (/.local/state/analytics-cli/spool" in lost.stderr
    assert not Path("/.local/state/analytics-cli").exists()

    # As shipped: the cycle waits in $STATE_DIRECTORY/spool.
    switch.start()
    outage_then_back(
        lambda: run(args, env, [state], cwd=Path("/")),
        folder,
        switch,
        lambda: pg_rows(dbs.store),
        BUILTINS,
    )


# ---------------------------------------------------------------------------- crontab


def test_crontab_spools_under_its_state_directory_and_replays_once(
    dbs: Databases, tmp_path: Path, pg_store: Switch
) -> None:
    """Root's crontab line as shipped, run by sh with the crontab's variables: the tool runs
    as a system account without a home of its own (read-only here); the cycle waits in
    $STATE_DIRECTORY/spool."""
    variables, jobs = crontab_entries()
    assert variables["STATE_DIRECTORY"] == "/var/lib/analytics-cli"
    command = jobs[0].split(None, 5)[5]
    if os.geteuid() == 0:
        # runuser gives the account its own HOME, and keeps the crontab's other variables.
        seen = subprocess.run(
            ["runuser", "-u", "nobody", "--", "env"],
            env=variables,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert "STATE_DIRECTORY=/var/lib/analytics-cli" in seen
        assert f"HOME={pwd.getpwnam('nobody').pw_dir}" in seen
    state = tmp_path / "var-lib-analytics-cli"
    state.mkdir(mode=0o700)  # the install -d line of the crontab's comment
    env_file = tmp_path / "env"
    env_file.write_text(f"ANALYTICS_DSN={shlex.quote(dbs.source)}\n")
    # The line, with the test's env file, this interpreter for the installed command (the
    # account switch shown above), and its output on stdout rather than syslog.
    for shipped, here in (
        ("/etc/analytics-cli/env", str(env_file)),
        ("runuser -u analytics -- analytics-cli", f"{sys.executable} -m analytics_cli"),
        ("logger -t analytics-cli", "cat"),
    ):
        assert shipped in command
        command = command.replace(shipped, here)
    env = {
        **variables,
        "STATE_DIRECTORY": str(state),
        "HOME": "/home/analytics",  # useradd --system makes no home folder
        # The store alone goes down: the line's ANALYTICS_DSN stays the source.
        "ANALYTICS_STORE_DSN": tcp_dsn(dbs.store, pg_store.port),
    }

    def launch() -> Result:
        argv = confined([variables["SHELL"], "-c", command], [state])
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=180)
        assert done.returncode == 0, done.stderr  # the pipeline's: logger's (here cat's)
        status = re.findall(r"^exit status (\d+)$", done.stdout, re.M)
        assert len(status) == 1, done.stdout
        return Result(int(status[0]), done.stdout, done.stdout)

    outage_then_back(launch, state / "spool", pg_store, lambda: pg_rows(dbs.store), BUILTINS)


# ---------------------------------------------------------------------------- STATE_DIRECTORY


def test_state_directory_is_the_spools_parent(tmp_path: Path) -> None:
    """$STATE_DIRECTORY wins over $XDG_STATE_HOME; of several folders, the first."""
    first, second = tmp_path / "a", tmp_path / "b"
    xdg = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    settings = Settings()
    assert spool.spool_dir(settings, {**xdg, "STATE_DIRECTORY": str(first)}) == first / "spool"
    both = f"{first}:{second}"
    assert spool.spool_dir(settings, {**xdg, "STATE_DIRECTORY": both}) == first / "spool"
    assert spool.spool_dir(settings, {**xdg, "STATE_DIRECTORY": ""}) == (
        tmp_path / "xdg" / "analytics-cli" / "spool"
    )
    # An explicit [store] spool still comes first.
    own = Settings(spool_dir=str(tmp_path / "own"))
    assert spool.spool_dir(own, {"STATE_DIRECTORY": str(first)}) == tmp_path / "own"


# ---------------------------------------------------------------------------- Kubernetes


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def container_and_volumes() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    pod = load(K8S / "cronjob.yaml")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return container, {v["name"]: v for v in pod["volumes"]}


def under(path: str, folder: str) -> bool:
    return Path(path).is_relative_to(folder)


def pod(
    container: dict[str, Any], root: Path, secret: str
) -> tuple[dict[str, str], dict[str, Path], list[Path]]:
    """The container's env with each volume's mountPath moved under ``root`` (one folder per
    volume), the Secret's value in place of its secretKeyRef; the folders by volume name,
    and those mounted writable."""
    mounts = {m["mountPath"]: root / m["name"] for m in container["volumeMounts"]}

    def moved(value: str) -> str:
        for path, local in mounts.items():
            if value == path or value.startswith(path + "/"):
                return str(local) + value[len(path) :]
        return value

    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8"}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = moved(item["value"])
        else:
            assert item["valueFrom"]["secretKeyRef"] == {"name": "analytics-cli", "key": "dsn"}
            env[item["name"]] = secret
    for local in mounts.values():
        local.mkdir(parents=True)
    writable = [root / m["name"] for m in container["volumeMounts"] if not m.get("readOnly")]
    return env, {m["name"]: root / m["name"] for m in container["volumeMounts"]}, writable


def test_cronjob_spool_lies_on_the_persistent_volume(tmp_path: Path) -> None:
    container, volumes = container_and_volumes()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    claim = load(K8S / "pvc.yaml")
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    size = re.fullmatch(r"(\d+)Mi", claim["spec"]["resources"]["requests"]["storage"])
    assert size is not None and 1 <= int(size.group(1)) <= 64
    # The pod's user can write the claim's volume: its group owns it.
    spec = load(K8S / "cronjob.yaml")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]
    # The env the container gets (the Secret's value does not matter here), with either
    # ConfigMap: the spool the tool resolves lies on the claim's volume, mounted writable.
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    for name in ("configmap.yaml", "configmap.postgresql.yaml"):
        path = tmp_path / name
        path.write_text(load(K8S / name)["data"]["config.toml"])
        folder = str(spool.spool_dir(load_config(path, env={}), env))
        (mount,) = [m for m in container["volumeMounts"] if under(folder, m["mountPath"])]
        assert not mount.get("readOnly", False), name
        volume = volumes[mount["name"]]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"], name


def test_cronjob_store_outage_spools_on_the_volume_and_replays_once(
    mysql_platform: MySQLPlatform, tmp_path: Path
) -> None:
    """The CronJob as shipped, with the default (MySQL) ConfigMap, on MariaDB: the store
    goes down, the cycle waits on the claim's volume; back up, the next run writes it once."""
    container, volumes = container_and_volumes()
    seed_users_mysql(mysql_platform)
    env, folders, writable = pod(container, tmp_path / "volumes", secret=mysql_platform.url)
    (data,) = [v["configMap"]["name"] for v in volumes.values() if "configMap" in v]
    configmap = load(K8S / "configmap.yaml")
    assert configmap["metadata"]["name"] == data
    for key, text in configmap["data"].items():
        (folders["config"] / key).write_text(text)
    # The store alone goes down (the same database, reached through a front that stops).
    front = Switch((socket.AF_INET, ("127.0.0.1", mysql_platform.server.port)))
    try:
        env["ANALYTICS_STORE_DSN"] = with_port(mysql_platform.url, front.port)
        folder = spool.spool_dir(Settings(), env)
        claim = [n for n, v in volumes.items() if "persistentVolumeClaim" in v]
        assert [n for n in claim if folder.is_relative_to(folders[n])] == claim

        outage_then_back(
            lambda: run(container["args"], env, writable, cwd=Path("/")),
            folder,
            front,
            lambda: mysql_rows(mysql_platform),
            [*BUILTINS, "registeredUsers"],
        )
        # Nothing went to the pod's scratch space (the emptyDir on /tmp dies with the pod).
        assert list(folders["tmp"].rglob(f"*{spool.SUFFIX}")) == []
    finally:
        front.close()


# ---------------------------------------------------------------------------- the configs

# (name, isGuest, isDeactivated): registeredUsers counts a, b and c (NULL is not deactivated).
USERS = [("a", 0, 0), ("b", 0, 0), ("c", 0, None), ("d", 1, 0), ("e", 0, 1)]
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def seed_users_mysql(platform: MySQLPlatform) -> None:
    with platform.connect() as conn, conn.cursor() as cur:
        for name, guest, deactivated in USERS:
            cur.execute(
                "INSERT INTO `user` (`id`, `name`, `isGuest`, `isDeactivated`, `createdAt`, "
                "`updatedAt`) VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    str(uuid.uuid4()),
                    name,
                    guest,
                    deactivated,
                    CREATED.replace(tzinfo=None),
                    CREATED.replace(tzinfo=None),
                ),
            )


def seed_users_pg(dbs: Databases) -> None:
    with dbs.source_conn() as conn:
        for name, guest, deactivated in USERS:
            conn.execute(
                'INSERT INTO "user" (id, name, "isGuest", "isDeactivated", "createdAt", '
                '"updatedAt") VALUES (%s, %s, %s, %s, %s, %s)',
                (
                    uuid.uuid4(),
                    name,
                    bool(guest),
                    None if deactivated is None else bool(deactivated),
                    CREATED,
                    CREATED,
                ),
            )


def configmap_toml(name: str, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(load(K8S / name)["data"]["config.toml"])
    return path


def test_configmap_for_the_ir_engine_checks_on_mariadb(
    mysql_platform: MySQLPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default ConfigMap, with the Secret's one DSN, against the iR Engine's MySQL."""
    seed_users_mysql(mysql_platform)
    monkeypatch.setenv("ANALYTICS_DSN", mysql_platform.url)
    settings = load_config(configmap_toml("configmap.yaml", tmp_path), env={})
    assert settings.layout == "ir-engine"
    values = check_values(configmap_toml("configmap.yaml", tmp_path))
    assert list(values) == [*BUILTINS, "registeredUsers"]
    assert values["registeredUsers"] == "3"


def test_configmap_for_postgresql_checks_on_postgresql(
    dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_users_pg(dbs)
    monkeypatch.setenv("ANALYTICS_DSN", dbs.source)
    values = check_values(configmap_toml("configmap.postgresql.yaml", tmp_path))
    assert list(values) == [*BUILTINS, "registeredUsers"]
    assert values["registeredUsers"] == "3"


def test_configmap_for_postgresql_fails_on_mariadb(
    mysql_platform: MySQLPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: PostgreSQL's quoting is an error on MySQL."""
    seed_users_mysql(mysql_platform)
    monkeypatch.setenv("ANALYTICS_DSN", mysql_platform.url)
    result = cli(
        "-c", str(configmap_toml("configmap.postgresql.yaml", tmp_path)), "config", "check"
    )
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "registeredUsers" in result.stdout + result.stderr
