"""Shared helpers for the hand-run benchmarks: a server, a scratch database, timed processes."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Benchmark servers trade durability for load speed; the measured reads are unaffected.
FAST_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@contextmanager
def admin_server(dsn: str | None) -> Iterator[str]:
    """A superuser connection string: the given one, or a throwaway embedded server."""
    if dsn:
        yield dsn
        return
    from analytics_cli.engines.postgresql import embedded

    home = Path(tempfile.mkdtemp(prefix="analytics-cli-bench-"))
    try:
        with embedded.server(home, databases=(), options=FAST_OPTIONS) as server:
            yield server.dsn("postgres")
    finally:
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class Run:
    """One timed child process."""

    seconds: float
    max_rss_mb: float
    exit_code: int


# The command runs under a small Python parent that reports its peak RSS. Measured straight
# from this process, a child would inherit this process's own high-water RSS (the kernel
# keeps it across vfork + exec), and the benchmark process grows while it works.
_MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as handle:
    handle.write(f"{usage.ru_maxrss} {seconds}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` with stdout to /dev/null; its wall time and its own peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as peak:
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, peak.name, *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        if proc.returncode != 0:
            raise SystemExit(
                f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
            )
        rss_kib, seconds = peak.read().split()
        # ru_maxrss is in KiB on Linux; the time is the command's alone, not its parent's.
        return Run(float(seconds), int(rss_kib) / 1024, proc.returncode)


def median_runs(repeat: int, fn: Callable[[], Run]) -> Run:
    """Median wall time of ``repeat`` runs; the largest peak RSS seen."""
    runs = [fn() for _ in range(repeat)]
    return Run(statistics.median(r.seconds for r in runs), max(r.max_rss_mb for r in runs), 0)


def cli_command(*args: str) -> list[str]:
    """The analytics-cli command line of this interpreter."""
    return [sys.executable, "-m", "analytics_cli", *args]


def psql_command(dsn: str, *args: str) -> list[str]:
    """psql without ~/.psqlrc, quiet, stopping at the first error."""
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("psql not found: install the PostgreSQL client (postgresql-client)")
    return [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, *args]


@dataclass(frozen=True)
class Result:
    """One line of a benchmark table."""

    measure: str
    value: str
    ratio: str
    target: str
    met: bool | None


def print_table(title: str, results: list[Result]) -> None:
    """Print results as an aligned plain-text table (paste-able into docs/performance.md)."""
    width = max(len(r.measure) for r in results)
    vwidth = max(len(r.value) for r in results)
    print(title)
    print(f"{'measure'.ljust(width)}  {'value'.ljust(vwidth)}  {'ratio':>6}  {'target':<10} met")
    for r in results:
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        print(
            f"{r.measure.ljust(width)}  {r.value.ljust(vwidth)}  {r.ratio:>6}  {r.target:<10} {met}"
        )
