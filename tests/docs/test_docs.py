"""The manual and the tool agree: every config key, every command's page, every quoted message."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from analytics_cli.config import schema
from analytics_cli.config.validate import settings_from_file
from tests.config.test_cli import _commands
from tests.conftest import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "analytics_cli"


# ---------------------------------------------------------------- configuration reference


def schema_keys() -> set[str]:
    """Every key the config loader accepts, spelt as the reference's first column."""
    keys = {f"{section}.{key}" for section, table in schema.SCHEMA.items() for key in table}
    keys |= {f"[[metric]].{key}" for key in schema.METRIC_KEYS}
    keys |= {f"[[metric]].http.{key}" for key in schema.HTTP_KEYS}
    keys |= {f"[[metric]].alert.{key}" for key in schema.ALERT_KEYS}
    keys |= {f"[[query]].{key}" for key in schema.QUERY_KEYS}
    keys |= {f"[[source]].{key}" for key in schema.SOURCE_KEYS}
    keys |= {f"[alert].TYPE.{key}" for key in schema.ALERT_KEYS}
    return keys


def reference_rows() -> dict[str, list[str]]:
    """The rows of configuration.md's "Every key" table: key -> its other cells."""
    text = (DOCS / "configuration.md").read_text()
    section = text[text.index("## Every key") :]
    section = section[: section.index("\n## ", 1)]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        match = re.fullmatch(r"`([^`]+)`", cells[0]) if line.startswith("| `") else None
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is listed twice"
            rows[match.group(1)] = cells[1:]
    return rows


def test_the_configuration_reference_lists_every_key_of_the_schema_and_no_other() -> None:
    rows = reference_rows()
    assert set(rows) == schema_keys()
    # Every row has its type, default and meaning.
    assert all(len(cells) == 3 and all(cells) for cells in rows.values()), rows


def test_the_reference_defaults_are_the_loader_defaults() -> None:
    rows = reference_rows()
    defaults = {
        "store.table": schema.DEFAULT_TABLE,
        "collect.interval": schema.DEFAULT_INTERVAL,
        "collect.statement_timeout": schema.DEFAULT_STATEMENT_TIMEOUT,
        "collect.connect_timeout": schema.DEFAULT_CONNECT_TIMEOUT,
        "collect.retries": str(schema.DEFAULT_RETRIES),
        "collect.source_concurrency": str(schema.DEFAULT_SOURCE_CONCURRENCY),
        "collect.catch_up": f"{schema.DEFAULT_CATCH_UP_HOURS}h",
        "[[metric]].max_series": str(schema.DEFAULT_MAX_SERIES),
        "[[query]].max_series": str(schema.DEFAULT_MAX_SERIES),
        "[[metric]].http.timeout": schema.DEFAULT_HTTP_TIMEOUT,
    }
    assert {key: rows[key][1] for key in defaults} == {k: f"`{v}`" for k, v in defaults.items()}
    # The settings a file without [collect] gets are the ones the page states.
    settings = settings_from_file(None, {})
    assert str(settings.retries) == str(schema.DEFAULT_RETRIES)
    layouts = rows["store.layout"][2]
    assert all(f"`{name}`" in layouts for name in schema.STORE_LAYOUTS)


# ---------------------------------------------------------------- each command's page


@pytest.mark.parametrize("command", ["", *_commands()])
def test_every_help_names_a_page_that_describes_the_command(command: str) -> None:
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0
    pages = re.findall(r"Manual: docs/([\w-]+\.md)", result.stdout)
    assert len(pages) == 1, result.stdout
    page = DOCS / pages[0]
    assert page.is_file(), f"{command or 'analytics-cli'} --help names {page}, which is missing"
    assert f"analytics-cli {command}".strip() in page.read_text(), f"{page} never names it"


# ---------------------------------------------------------------- quoted messages

# Lines the tool prints that the pages quote: what follows one of these words in a code
# span or an output block must still be produced by some message template of the code.
PREFIXES = ("error: ", "warning: ", "hint: ", "anomaly: ")
# Quoted output without such a prefix: the start of the code spans to check. (The
# key=value summary lines are compared with real runs in tests/docs/test_readme.py.)
QUOTED = (
    "the newest stored slot of",
    "missing slots of",
    "table analytics has the iR Engine layout",
    "too little history",
    "refused: ",
)


def quoted_messages() -> list[tuple[str, str]]:
    """(page, message) for every quoted line of output on the README and the pages."""
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = page.read_text()
        spans = re.findall(r"(?<!`)`([^`]+)`(?!`)", text)
        fences = re.finditer(r"^```([^\n`]*)\n(.*?)^```", text, re.S | re.M)
        blocks = [f.group(2) for f in fences if f.group(1).strip() in ("", "text")]
        lines = [line for block in blocks for line in block.splitlines()]
        for candidate in [" ".join(s.split()) for s in spans] + lines:
            if candidate.startswith(PREFIXES) or candidate.startswith(QUOTED):
                message = candidate
                for prefix in PREFIXES:
                    message = message.removeprefix(prefix)
                if len(message.strip("….")) > 8:
                    found.append((page.name, message))
    return found


@dataclass(frozen=True)
class Template:
    """One string of the package: as a pattern (values match any text), and as text."""

    pattern: re.Pattern[str]
    text: str  # the literal parts, each value as "\0"

    def says(self, message: str) -> bool:
        """Whether this template can print ``message`` (``…`` in it stands for any text)."""
        wild = message.replace("…", "x").replace("...", "x")
        if self.pattern.fullmatch(wild):
            return True
        # "too little history: …": the quote stops early; what it shows must start the text.
        cut = message.removesuffix("…").removesuffix("...")
        return cut != message and len(cut) >= 8 and self.text.startswith(cut)


def templates() -> list[Template]:
    """Every string of the package that could be a message (values stand for any text)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                values = node.values
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                values = [node]
            else:
                continue
            literal = [v.value if isinstance(v, ast.Constant) else None for v in values]
            # A template that is mostly values would match anything: it proves nothing.
            if len("".join(p for p in literal if p).strip()) < 8:
                continue
            pattern = "".join(".+?" if p is None else re.escape(p) for p in literal)
            text = "".join("\0" if p is None else p for p in literal)
            found.append(Template(re.compile(pattern, re.S), text))
    return found


def printed(message: str, known: list[Template]) -> bool:
    """Whether the tool can print ``message``: one template, or "doing: the server's error"."""
    if any(t.says(message) for t in known):
        return True
    doing, sep, _ = message.partition(": ")
    return bool(sep) and any(t.pattern.fullmatch(doing) for t in known)


def test_the_pages_quote_messages_the_tool_still_prints() -> None:
    messages = quoted_messages()
    # The pages do quote messages (the grants, the standby, anomalies, MySQL's refusals).
    assert len(messages) >= 10, messages
    known = templates()
    assert [(page, m) for page, m in messages if not printed(m, known)] == []


def test_a_changed_message_is_caught() -> None:
    known = templates()
    assert printed("report needs matplotlib for its charts", known)
    assert not printed("report needs plotly for its charts", known)
    assert printed("too little history: …", known)
    assert not printed("not enough history: …", known)
