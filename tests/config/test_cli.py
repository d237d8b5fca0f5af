"""The command line surface: help, version, global options, usage errors, docs coverage."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from analytics_cli import __version__
from analytics_cli.cli import app
from tests.conftest import cli, run_proc

ROOT = Path(__file__).resolve().parents[2]


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


def test_output_options_are_taken_after_the_command_too(tmp_path: Path) -> None:
    from analytics_cli.cli import hoist_output_options

    config = tmp_path / "x.toml"
    config.write_text("[collect]\nretries = 11\n")  # a configuration error
    before = cli("-q", "--log-format", "json", "-c", str(config), "collect")
    after = cli("-c", str(config), "collect", "-q", "--log-format", "json")
    assert (after.exit_code, after.stdout) == (before.exit_code, before.stdout) == (2, "")
    assert after.stderr == before.stderr
    assert json.loads(after.stderr.splitlines()[0])["level"] == "error"
    # In the subcommand of a group, with = and counted flags.
    assert cli("config", "show", "--log-format=json", "-vv").exit_code == 0
    # An option's value and what follows -- stay where they are.
    assert hoist_output_options(["show", "--where", "-q", "-v"]) == [
        "-v",
        "show",
        "--where",
        "-q",
    ]
    assert hoist_output_options(["export", "--", "-q"]) == ["export", "--", "-q"]
    assert hoist_output_options(["-q", "show"]) == ["-q", "show"]
    # Real processes too.
    assert run_proc("metrics", "-q", "--log-format", "json").exit_code == 0


def test_a_bare_number_for_a_duration_gets_the_spelling_with_its_unit(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text("[collect]\ninterval = 30\nstatement_timeout = 2.5\n")
    result = cli("-c", str(config), "collect")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {config}: collect.interval must be a string, got int",
        'hint: a duration is a string with its unit: interval = "30m" (units s, m, h, d, w, y)',
    ]
    config.write_text('[collect]\ninterval = "30m"\nstatement_timeout = 2.5\n')
    assert cli("-c", str(config), "collect").stderr.splitlines()[1] == (
        'hint: a duration is a string with its unit: statement_timeout = "2.5s" '
        "(units s, m, h, d, w, y)"
    )


@pytest.mark.parametrize(
    "body",
    [
        '[collect]\nmetrics = ["dailyUser"]\n',
        '[[metric]]\ntype = "dailyUsers"\nsql = "SELECT 1 AS count"\n',
        '[[metric]]\ntype = "x"\nsql = "SELECT 1 AS count"\nevery = "45m"\n',
        "[collect]\nretries = 11\n",
        '[store]\nlayout = "other"\n',
    ],
)
def test_every_config_error_names_the_file(tmp_path: Path, body: str) -> None:
    config = tmp_path / "x.toml"
    config.write_text(body)
    result = cli("-c", str(config), "collect", "--dry-run")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {config}: "), result.stderr


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_and_a_docs_mention(command: str) -> None:
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    doc = re.search(r"Usage: .*?\n\s*\n\s*(\S.*)", result.stdout)
    assert doc is not None, f"{command} has no help text"
    # Square brackets in help strings are rich markup: an unescaped "[[source]]" vanishes.
    assert "[]" not in result.stdout
    # The page its help names describes it (tests/docs/test_docs.py checks which page).
    page = re.search(r"Manual: (docs/[\w-]+\.md)", result.stdout)
    assert page is not None, f"{command} --help names no page of the manual"
    text = (ROOT / page.group(1)).read_text()
    assert f"analytics-cli {command}" in text, f"{page.group(1)} does not mention {command}"


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


def _shim(folder: Path) -> dict[str, str]:
    """An environment whose PATH has an ``analytics-cli`` running this checkout."""
    import os
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "analytics-cli"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m analytics_cli "$@"\n')
    script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    return env


def _bash(script: str, env: dict[str, str]) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


def test_bash_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    env = _shim(tmp_path / "bin")
    # The shell is detected from the parent process, as when a person types it in bash.
    code, out, err = _bash(
        "source <(analytics-cli --show-completion)\n"
        'ask() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()\n'
        '  _analytics_cli_completion analytics-cli; printf "%s\\n" "${COMPREPLY[@]}"; echo --; }\n'
        "ask analytics-cli sh\n"
        "ask analytics-cli show --fo\n"
        "ask analytics-cli show --format c\n"
        "ask analytics-cli config ch\n",
        env,
    )
    assert (code, err) == (0, "")
    assert out.split("--\n") == ["show\n", "--format\n", "chart\ncsv\n", "check\n", ""]


def test_install_completion_for_bash_in_the_home_folder(tmp_path: Path) -> None:
    env = _shim(tmp_path / "bin")
    home = Path(env["HOME"])
    code, out, err = _bash("analytics-cli --install-completion; true", env)
    assert (code, err) == (0, "")
    script = home / ".bash_completions" / "analytics-cli.sh"
    assert out == (
        f"bash completion installed in {script}\n"
        "Completion will take effect once you restart the terminal\n"
    )
    assert "complete -o default -F _analytics_cli_completion analytics-cli" in script.read_text()
    assert f"source '{script}'" in (home / ".bashrc").read_text()


@pytest.mark.parametrize(
    ("shell", "script_line", "installed"),
    [
        ("zsh", "compdef _analytics_cli_completion analytics-cli", ".zfunc/_analytics-cli"),
        (
            "fish",
            "complete --command analytics-cli --no-files",
            ".config/fish/completions/analytics-cli.fish",
        ),
    ],
)
def test_zsh_and_fish_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell: str, script_line: str, installed: str
) -> None:
    # Neither shell is on the build machine: Typer's switch names the shell instead.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    shown = run_proc("--show-completion", shell)
    assert shown.exit_code == 0, shown.stderr
    assert script_line in shown.stdout
    assert shown.stderr == ""
    done = run_proc("--install-completion", shell)
    assert done.exit_code == 0, done.stderr
    home = Path(os.environ["HOME"])
    # (Typer's switch names the shell by its enum in this line: Shells.zsh.)
    assert done.stdout.splitlines() == [
        f"Shells.{shell} completion installed in {home / installed}",
        "Completion will take effect once you restart the terminal",
    ]
    assert script_line in (home / installed).read_text()


def test_zsh_and_fish_completion_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_ANALYTICS_CLI_COMPLETE", "complete_zsh")
    monkeypatch.setenv("_TYPER_COMPLETE_ARGS", "analytics-cli sta")
    zsh = run_proc()
    assert zsh.exit_code == 0, zsh.stderr
    assert zsh.stdout == (
        '_arguments \'*: :(("status":"Show the latest slot of each metric and..."))\'\n'
    )
    monkeypatch.setenv("_ANALYTICS_CLI_COMPLETE", "complete_fish")
    monkeypatch.setenv("_TYPER_COMPLETE_FISH_ACTION", "get-args")
    monkeypatch.setenv("_TYPER_COMPLETE_ARGS", "analytics-cli show --f")
    monkeypatch.setenv("COLUMNS", "60")
    fish = run_proc()
    assert fish.exit_code == 0, fish.stderr
    # One line per candidate even on a narrow terminal: a wrapped help would be a candidate.
    assert fish.stdout == (
        "--format\ttable, chart, json or csv. Default: a chart with --type on a terminal, "
        "else a table; plain text when stdout is not a terminal.\n"
    )


def test_every_duration_option_says_years_are_taken() -> None:
    # Retention is thought of in years: every option that takes a duration says `y` works.
    options = {
        ("collect",): ["--backfill"],
        ("show",): ["--since", "--until", "--bucket"],
        ("export",): ["--since", "--until", "--bucket"],
        ("report",): ["--since", "--until"],
        ("status",): ["--max-age"],
        ("prune",): ["--older-than"],
    }
    for command, names in options.items():
        result = cli(*command, "--help")
        assert result.exit_code == 0
        # Each option is a row of the options table; its wrapped lines are joined back.
        rows: dict[str, str] = {}
        current = None
        for line in result.stdout.splitlines():
            cell = line.strip().strip("│").strip().removeprefix("* ").strip()
            if cell.startswith("-"):
                current = cell.split()[0].rstrip(",")
                rows[current] = cell
            elif current is not None and cell and not cell.startswith(("╭", "╰")):
                rows[current] += " " + cell
            else:
                current = None
        for name in names:
            assert "365 days" in " ".join(rows[name].split()), (command, name, rows[name])
