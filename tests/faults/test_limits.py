"""Resource limits: runaway metrics are refused as that metric's error, with bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import Databases
from tests.faults.conftest import SLOT, env_for, slot_rows
from tests.helpers import custom_config

# Generous: the collector needs about 50 MB; a 100 MB value loaded into it would pass 300 MB.
MAX_RSS_MB = 200

RUNAWAY = [
    ("manyRows", "SELECT g AS count FROM generate_series(1, 3000000) AS g"),
    ("hugeText", "SELECT repeat('7', 100000000) AS count"),
    ("hugeBytes", "SELECT decode(repeat('ff', 50000000), 'hex') AS count"),
    ("hugeArray", "SELECT array_fill(1, ARRAY[20000000]) AS count"),
    ("hugeNumber", "SELECT repeat('9', 5000)::numeric AS count"),
    ("justTooBig", "SELECT 1000000000000000000 AS count"),
    ("fine", "SELECT 42 AS count"),
]


# The measured command runs under a small Python parent. A child started straight from the
# test process would inherit the test process's own peak RSS (the kernel keeps the high-water
# mark across vfork + exec), so a long pytest session would look like a hungry collector.
_MEASURE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(
    command: list[str], tmp: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str, int]:
    """Run a command; exit code, stdout, stderr and the command's own peak RSS in MB."""
    out, err, peak = tmp / "stdout", tmp / "stderr", tmp / "peak"
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.call(
            [sys.executable, "-c", _MEASURE, str(peak), *command],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
    return code, out.read_text(), err.read_text(), int(peak.read_text()) // 1024


def _run_measured(args: list[str], env: dict[str, str], tmp: Path) -> tuple[int, str, str, int]:
    """Run the CLI as a process; exit code, stdout, stderr and its own peak RSS in MB."""
    return measured([sys.executable, "-m", "analytics_cli", *args], tmp, env)


def test_runaway_metrics_are_refused_with_bounded_memory(dbs: Databases, tmp_path: Path) -> None:
    config = custom_config(tmp_path / "limits.toml", RUNAWAY)
    code, out, err, peak_mb = _run_measured(
        ["-c", str(config), "collect", "--at", SLOT, "--json"], env_for(dbs), tmp_path
    )
    assert code == 1, err
    report = json.loads(out)
    assert [(m["type"], m["status"], m["count"], m.get("error")) for m in report["metrics"]] == [
        ("manyRows", "failed", None, "query must return exactly one row, got more than one row"),
        (
            "hugeText",
            "failed",
            None,
            "count value is too large (100000000 bytes as text), not a count",
        ),
        (
            "hugeBytes",
            "failed",
            None,
            "count value is too large (100000002 bytes as text), not a count",
        ),
        (
            "hugeArray",
            "failed",
            None,
            "count value is too large (40000001 bytes as text), not a count",
        ),
        (
            "hugeNumber",
            "failed",
            None,
            "count value is too large (5000 bytes as text), not a count",
        ),
        (
            "justTooBig",
            "failed",
            None,
            "count 1000000000000000000 is out of range (|count| < 1e18)",
        ),
        ("fine", "stored", 42, None),
    ]
    assert slot_rows(dbs) == [("fine", "42")]
    assert peak_mb < MAX_RSS_MB, f"peak RSS {peak_mb} MB"


def test_the_measure_sees_a_memory_hungry_process(tmp_path: Path) -> None:
    # The RSS measure itself works: a process that holds 300 MB is seen above the bound,
    # and a small one is seen small even from a test process that is large.
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"1" * len(ballast[::4096])
    code, _, _, small = measured([sys.executable, "-c", "pass"], tmp_path)
    assert code == 0
    assert small < 50
    del ballast
    code, _, _, big = measured(
        [
            sys.executable,
            "-c",
            "x = bytearray(300 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])",
        ],
        tmp_path,
    )
    assert code == 0
    assert big > MAX_RSS_MB
