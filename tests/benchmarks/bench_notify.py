"""What alert delivery costs `status --anomalies`: requests per run and time, against a real
Alertmanager (Debian's prometheus-alertmanager) on loopback.

    python tests/benchmarks/bench_notify.py [--dsn SUPERUSER_DSN] [--metrics 40] [--runs 5]

A store holds ``--metrics`` types at the current slot, each above its ``[alert]`` limit (so
every run has that many findings). The same `status --anomalies` runs with and without
`--alertmanager`; a counting proxy in front of Alertmanager counts the requests it receives.
Target: at most one request (one round trip) per run, whatever the number of findings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.common import Result, admin_server, median_runs, print_table, timed
from tests.scratch import scratch_database


def measure(admin: str, metrics: int, runs: int) -> list[Result]:
    """Time status --anomalies with and without delivery; count Alertmanager's requests."""
    from analytics_cli.timeutil import floor_slot, utcnow
    from tests.ops.test_notify import http_server
    from tests.prometheus_servers import alertmanager

    work = Path(tempfile.mkdtemp(prefix="analytics-cli-bench-notify-"))
    with scratch_database(admin, "bench_notify_store") as store:
        slot = floor_slot(utcnow(), timedelta(minutes=30))
        with psycopg.connect(store, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE analytics (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                'type text NOT NULL, count numeric NOT NULL, "timestamp" timestamptz NOT NULL, '
                "collected_at timestamptz NOT NULL DEFAULT now(), "
                "metadata jsonb NOT NULL DEFAULT '{}', "
                'UNIQUE (type, "timestamp", metadata))'
            )
            with conn.cursor() as cur:
                cur.executemany(
                    'INSERT INTO analytics (type, count, "timestamp") VALUES (%s, 5, %s)',
                    [(f"m{i:03d}", slot) for i in range(metrics)],
                )
        limits = "".join(f"m{i:03d} = {{ above = 1 }}\n" for i in range(metrics))
        conf = work / "c.toml"
        conf.write_text(
            f'[store]\ndsn = "{store}"\n[collect]\nmetrics = []\n[alert]\n{limits}'.replace(
                "\\", "\\\\"
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
        env["XDG_STATE_HOME"] = str(work / "state")
        base = [sys.executable, "-m", "analytics_cli", "-c", str(conf), "status", "--anomalies"]
        with alertmanager() as am, http_server(upstream=am.url) as (proxy, got):
            # status exits 1 (findings): timed() wants 0, so the runs go through a shell.
            def shell(cmd: list[str]) -> list[str]:
                return ["sh", "-c", '"$@"; test $? -eq 1', "sh", *cmd]

            without = median_runs(runs, lambda: timed(shell(base), env))
            with_am = median_runs(runs, lambda: timed(shell([*base, "--alertmanager", proxy]), env))
            requests = got.count()
    per_run = requests / runs
    ratio = with_am.seconds / without.seconds
    return [
        Result(
            f"status --anomalies, {metrics} findings, Alertmanager requests per run",
            f"{per_run:g}",
            "-",
            "<= 1",
            per_run <= 1,
        ),
        Result(
            f"status --anomalies, {metrics} findings, with delivery vs without",
            f"{with_am.seconds:.2f} s / {without.seconds:.2f} s",
            f"{ratio:.2f}x",
            "report",
            None,
        ),
    ]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dsn", help="superuser connection string (default: embedded server)")
    parser.add_argument("--metrics", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with admin_server(args.dsn) as admin:
        results = measure(admin, args.metrics, args.runs)
    print_table("analytics-cli alert delivery", results)


if __name__ == "__main__":
    main()
