"""Every command the shell blocks of the README and of every docs page, and the demo's closing
lines, suggest runs as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics_cli import errors
from analytics_cli.engines.postgresql import embedded
from analytics_cli.metrics import builtin_metrics
from analytics_cli.render.demo import DEMO_NEXT, demo_next_text

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"
# Fences whose lines are typed at a shell prompt; cron, toml and output blocks are not.
SHELL_FENCES = ("sh", "shell", "bash", "console")
OPERATORS = {"&&", "||", ";", "&"}

# Commands that cannot run here, each with the server it needs. Every other one runs
# against the embedded PostgreSQL filled by the README's own `analytics-cli demo`.
NEEDS_EXTERNAL_SERVER: dict[str, str] = {
    "'ANALYTICS_SOURCE_DSN=host=pgbouncer.internal port=6432 dbname=platform user=analytics' "
    "'ANALYTICS_STORE_DSN=host=pgbouncer.internal port=6432 dbname=metrics user=analytics' "
    "analytics-cli collect": "a pgbouncer in front of the platform (tests/deploy/ runs one)",
}

# Commands whose stdout is empty by design, and why.
NO_STDOUT = {
    "analytics-cli collect --only instanceUsersByLocation": "the cycle's lines go to stderr",
    "analytics-cli show --type instanceUsersByLocation --where location=Lobby": (
        "nobody may be in the Lobby in the demo's last slot: the window can be empty"
    ),
    "analytics-cli export --ndjson --where location=Lobby --where source=eu": (
        "demo rows carry no source: that tag comes from several [[source]] databases"
    ),
    "analytics-cli export > analytics.csv": "written to analytics.csv",
    "analytics-cli export --since 2026-01-01 --output history.csv": "written to history.csv",
    "analytics-cli export --csv > analytics.csv": "written to analytics.csv",
    "analytics-cli collect": "the cycle's lines go to stderr",
    "analytics-cli collect --backfill 2d --only chatMessages": "the summary lines go to stderr",
    "analytics-cli config init": "writes ./analytics-cli.toml",
    "analytics-cli report --html report.html": "written to report.html",
    "analytics-cli report --html week.html --since 7d -t activeInstances "
    "-t instanceUsersByLocation --tz Europe/Paris": "written to week.html",
}


# Lines the pages quote (``…`` for a time), with the command that prints them.
STORED_AT = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
QUOTED_LINES = {
    # A slot the demo collected and the outage of collect.md pruned: the metric is stored.
    f"analytics-cli collect --only activeInstances --at {STORED_AT}": (
        "`slot=… type=activeInstances count=12 status=stored`",
    ),
    "analytics-cli collect": ("`collect slot=… stored=9 present=0 failed=0 duration=0.05s`",),
    "analytics-cli collect --backfill 2d --only chatMessages": (
        "`backfill since=… until=… slots=49 written=49 present=0 busy=0 failed=0`",
    ),
}


def fields(line: str) -> list[str]:
    """The keys of a key=value line, in order (a leading verb such as ``collect`` kept)."""
    return [word.split("=", 1)[0] for word in shlex.split(line.strip("`"))]


# The demo's closing lines on anomalies: a longer history, then the check. They run last
# (the longer demo replaces the week the other commands read).
ANOMALIES = ("analytics-cli demo --days 22", "analytics-cli status --anomalies")


def first_install_extras() -> set[str]:
    """The extras the README's first command installs (``pip install -e '.[a,b]'``)."""
    first = README.read_text().split("```sh\n", 1)[1].splitlines()[0]
    found = re.match(r"pip install -e '\.\[([a-z,]+)\]' && analytics-cli demo", first)
    assert found, first
    return set(found.group(1).split(","))


def not_installed_first() -> str:
    """The optional modules the README's first command does not install, comma-separated."""
    extras = first_install_extras()
    return ",".join(sorted(m for m, (extra, _) in errors.EXTRAS.items() if extra not in extras))


def _is_operator(token: str) -> bool:
    return bool(token) and all(c in "();<>|&" for c in token)


def invocations(line: str) -> list[str]:
    """The ``analytics-cli`` commands of one shell line, with their pipes and redirections.

    The line is split as the shell splits it (quotes, comments, ``&&``/``;``); leading
    ``NAME=value`` assignments are skipped when finding the command's name.
    """
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    found = []
    for words in segments:
        names = [w for w in words if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w)]
        if names and names[0] == "analytics-cli":
            found.append(" ".join(w if _is_operator(w) else shlex.quote(w) for w in words))
    return found


def pages() -> list[Path]:
    """The README, then the docs pages in the order of mkdocs.yml's nav (the reading order)."""
    listed = re.findall(r"^\s*- (?:[^\n]*: )?([\w./-]+\.md)\s*$", MKDOCS.read_text(), re.M)
    return [README, *(DOCS / name for name in listed)]


def shell_commands(text: str) -> list[str]:
    """The ``analytics-cli`` commands in the shell blocks of one Markdown text, in order."""
    commands = []
    fences = re.finditer(r"^```([^\n`]*)\n(.*?)^```", text, re.S | re.M)
    for fence in fences:
        if fence.group(1).strip() not in SHELL_FENCES:
            continue
        for line in fence.group(2).replace("\\\n", " ").splitlines():
            line = line.strip()
            commands += invocations(line[2:] if line.startswith("$ ") else line)
    return commands


def readme_commands() -> list[str]:
    """The ``analytics-cli`` commands of the README's shell blocks, in reading order."""
    return shell_commands(README.read_text())


def documented_commands() -> list[str]:
    """Every distinct command of the README and the docs pages, first appearance first."""
    found: list[str] = []
    for page in pages():
        found += [c for c in shell_commands(page.read_text()) if c not in found]
    return found


def demo_commands() -> list[str]:
    """The commands of the demo's closing "Next, try" lines (a description follows each)."""
    lines = [line.strip() for line in DEMO_NEXT.splitlines()]
    return [re.split(r"\s{2,}", line)[0] for line in lines if line.startswith("analytics-cli ")]


def test_the_commands_are_found_and_every_listed_exception_exists() -> None:
    readme = readme_commands()
    assert readme[0] == "analytics-cli demo"  # it fills the store the others read
    assert readme[1:8] == [  # the README's five-minute tour
        "analytics-cli collect",
        "analytics-cli show",
        "analytics-cli show activeInstances --since 3d",
        "analytics-cli show -t dailyUsers -t activeInstances --since 30d --bucket 1d --agg max",
        "analytics-cli export > analytics.csv",
        "analytics-cli report --html report.html",
        "analytics-cli status",
    ]
    # Every page of the site is read, in the nav's order, and the pages add their own.
    assert [p.name for p in pages()][:3] == ["README.md", "index.md", "getting-started.md"]
    assert sorted(p.name for p in pages()[1:]) == sorted(p.name for p in DOCS.glob("*.md"))
    documented = documented_commands()
    assert documented[: len(set(readme))] == list(dict.fromkeys(readme))
    for page_command in (
        "analytics-cli collect --backfill 2d --only chatMessages",  # collect.md
        "analytics-cli show --type instanceUsersByLocation --by location",  # metrics.md
        "analytics-cli export --ndjson --bucket 1d --agg max",  # history.md
        "analytics-cli prune --older-than 1y --dry-run",  # operations.md
    ):
        assert page_command in documented
    assert demo_commands() == [
        "analytics-cli show",
        "analytics-cli show activeInstances --since 7d",
        "analytics-cli export --csv > analytics.csv",
        "analytics-cli report --html report.html",
        "analytics-cli collect",
        "analytics-cli config init",
        *ANOMALIES,
    ]
    every = set(documented) | set(demo_commands())
    # A listed exception that no longer appears is a stale entry.
    assert set(NEEDS_EXTERNAL_SERVER) <= every
    assert set(NO_STDOUT) <= every


def test_invocations_are_split_like_the_shell() -> None:
    assert invocations("pip install -e '.[embedded]' && analytics-cli demo  # the main job") == [
        "analytics-cli demo"
    ]
    assert invocations(
        "ANALYTICS_DSN=x analytics-cli export --where 'location=The Lobby' | head"
    ) == ["ANALYTICS_DSN=x analytics-cli export --where 'location=The Lobby' | head"]
    assert invocations("su postgres -c 'createuser -s root'") == []


@dataclass(frozen=True)
class Ran:
    """One command's outcome."""

    command: str
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def playground() -> Iterator[tuple[Path, dict[str, str]]]:
    """A new user's HOME (outside pytest's temp folder, see test_demo) and a shell environment."""
    home = Path(tempfile.mkdtemp(prefix="analytics-cli-readme-test-", dir="/tmp"))
    try:
        shim = home / "bin"
        shim.mkdir()
        # As installed by the README's first command: the other extras' modules are absent.
        without = Path(__file__).resolve().parents[1] / "without.py"
        (shim / "analytics-cli").write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{without}" "{not_installed_first()}" -- "$@"\n'
        )
        (shim / "analytics-cli").chmod(0o755)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ANALYTICS_", "PG", "XDG_"))
        }
        env.update(HOME=str(home), PATH=f"{shim}{os.pathsep}{env['PATH']}", COLUMNS="100")
        (home / "work").mkdir()
        yield home, env
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(command: str, home: Path, env: dict[str, str]) -> Ran:
    # A second line keeps bash from exec-ing the command: it stays the parent, as when typed.
    done = subprocess.run(
        ["bash", "-c", f"{command}\nexit $?"],
        cwd=home / "work",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Ran(command, done.returncode, done.stdout, done.stderr)


def _problems(ran: Ran) -> list[str]:
    problems = []
    if ran.code != 0:
        problems.append(f"exit {ran.code}")
    bad = [line for line in ran.stderr.splitlines() if line.startswith(("error:", "warning:"))]
    if bad or "Traceback" in ran.stderr:
        problems.append(f"stderr: {ran.stderr.strip()[-300:]}")
    if ran.command not in NO_STDOUT and not ran.stdout.strip():
        problems.append("no output")
    return problems


def test_every_documented_and_demo_command_runs(playground: tuple[Path, dict[str, str]]) -> None:
    home, env = playground
    commands = [c for c in documented_commands() if c not in NEEDS_EXTERNAL_SERVER]
    commands += [c for c in demo_commands() if c not in commands and c not in ANOMALIES]
    # The README's first command, on the embedded default: a new user's first minute.
    assert commands[0] == "analytics-cli demo"
    demo = _run(commands[0], home, env)
    assert demo.code == 0, demo.stderr
    assert "Next, try:" in demo.stdout
    failures: dict[str, list[str]] = {}
    outcomes: dict[str, Ran] = {}
    # The rest share one running server instead of starting and stopping it each.
    with embedded.server(home / ".local" / "share" / "analytics-cli"):
        for command in commands[1:]:
            ran = outcomes[command] = _run(command, home, env)
            if _problems(ran):
                failures[command] = _problems(ran)
        for command in QUOTED_LINES.keys() - outcomes.keys():
            outcomes[command] = _run(command, home, env)
            assert outcomes[command].code == 0, outcomes[command].stderr
    assert failures == {}
    # The summary lines the pages quote have the fields the tool prints, in its order
    # (a line may add more at its end: note="slot already collected", caught_up=…).
    for command, quotes in QUOTED_LINES.items():
        lines = outcomes[command].stderr.strip().splitlines()
        for quoted in quotes:
            want = fields(quoted)
            assert any(fields(line)[: len(want)] == want for line in lines), (quoted, lines)
            assert any(quoted in " ".join(page.read_text().split()) for page in pages()), quoted
    assert (
        (home / "work" / "analytics.csv")
        .read_text()
        .startswith("type,count,timestamp,metadata,collected_at\n")
    )
    assert (home / "work" / "history.csv").stat().st_size > 0
    assert (home / "work" / "analytics-cli.toml").exists()
    assert (home / "work" / "report.html").read_text().startswith("<!DOCTYPE html>")
    # Last, the demo's way to anomalies: after three weeks and a day every metric is judged.
    longer = _run(ANOMALIES[0], home, env)
    assert _problems(longer) == []
    judged = _run(ANOMALIES[1], home, env)
    verdicts = judged.stdout.split("\nmetric ", 2)[-1].splitlines()[1:-1]
    # Each metric the demo collects has an expected range from its history ("0 to 21.58");
    # the ones only the README's own commands added (weeklyUsers...) have a day of it.
    collected = [m.type for m in builtin_metrics() if m.enabled]
    judged_types = {line.split()[0] for line in verdicts if " to " in line}
    assert set(collected) <= judged_types, judged.stdout
    # Exit 1 only with a finding on stderr (the simulated platform may have one).
    findings = [line for line in judged.stderr.splitlines() if line.startswith("anomaly:")]
    assert judged.code == (1 if findings else 0), judged.stderr


def test_the_first_install_has_what_the_demo_suggests() -> None:
    # matplotlib (report) is in the README's first command; mysql is not needed there.
    assert not_installed_first() == "pymysql"
    assert "after: pip install" not in DEMO_NEXT
    without_charts = demo_next_text(charts=False)
    assert (
        "  analytics-cli report --html report.html        one HTML page to share: headline "
        "and charts,\n    after: pip install 'platform-analytics-cli[report]'\n"
    ) in without_charts


def test_every_account_the_pages_use_is_created_before() -> None:
    # Each page is read on its own: a reader may land on any of them.
    seen = 0
    for page in pages():
        text = page.read_text()
        created: dict[str, int] = {}
        for m in re.finditer(r"useradd [^`\n]*?(\w+)(?:`|\s*(?:#|$))", text, re.M):
            created.setdefault(m.group(1), m.start())
        for m in re.finditer(r"(?:install -o|runuser -u) (\w+)", text):
            seen += 1
            name = m.group(1)
            assert name in created and created[name] < m.start(), (page.name, name)
    assert seen >= 3  # the crontab lines and the option file's owner
