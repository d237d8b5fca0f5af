"""The command line surface: help, version, global options, usage errors, docs coverage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analytics_cli import __version__
from analytics_cli.cli import app
from tests.conftest import cli, run_proc

README = Path(__file__).resolve().parent.parent / "README.md"


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    names: list[str] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        if sub:
            names += [f"{name} {s}" for s in sub]
        else:
            names.append(name)
    return sorted(names)


def test_no_arguments_prints_help() -> None:
    result = cli()
    assert result.exit_code == 0
    assert "Usage: analytics-cli" in result.stdout
    assert "collect" in result.stdout


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"analytics-cli {__version__}\n"


def test_module_entry_point() -> None:
    result = run_proc("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"analytics-cli {__version__}"


def test_unknown_option_is_one_line_exit_2() -> None:
    result = cli("collect", "--bogus")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: No such option: --bogus (see 'analytics-cli collect --help')"
    ]


def test_unknown_command_exit_2() -> None:
    result = cli("colect")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No such command 'colect'")


def test_bad_at_exit_2() -> None:
    result = cli("collect", "--at", "tomorrow-ish")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "error: invalid --at 'tomorrow-ish'"


def test_global_options_go_before_the_command(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text("[collect]\nnot_a_key = 1\n")
    result = cli("--config", str(config), "collect")
    assert result.exit_code == 2
    assert "unknown key collect.not_a_key" in result.stderr


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_and_a_readme_mention(command: str) -> None:
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    doc = re.search(r"Usage: .*?\n\s*\n\s*(\S.*)", result.stdout)
    assert doc is not None, f"{command} has no help text"
    # Square brackets in help strings are rich markup: an unescaped "[[source]]" vanishes.
    assert "[]" not in result.stdout
    assert f"analytics-cli {command}" in README.read_text(), f"README does not mention {command}"


def test_a_closed_pipe_ends_any_command_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    # 400 custom metrics: metrics --sql writes far more than a pipe buffer (64 KiB), and
    # the reader takes one line and goes, so the command meets a closed pipe.
    padding = "x" * 200
    config = tmp_path / "many.toml"
    config.write_text(
        "".join(
            f'[[metric]]\ntype = "m{i}"\nsql = "SELECT 1 AS count -- {padding}"\n'
            for i in range(400)
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "analytics_cli", "--config", str(config), "metrics", "--sql"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    assert first
    assert err == b""


def test_counted_flags_show_as_flags_in_help() -> None:
    result = cli("--help")
    assert result.exit_code == 0
    assert result.stderr == ""
    lines = [
        line for line in result.stdout.splitlines() if "--verbose" in line or "--quiet" in line
    ]
    # No value and no default: -v and -q are flags, repeated for more (-vv).
    assert len(lines) == 2
    assert re.fullmatch(r"│ --verbose\s+-v\s+More detail \(repeat for more: -vv\)\.\s+│", lines[0])
    assert re.fullmatch(r"│ --quiet\s+-q\s+Only the summary and errors\.\s+│", lines[1])
