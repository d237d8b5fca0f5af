"""The shape of the code, checked: small modules, one place that knows each engine, no circle.

import-linter (pyproject.toml, run by CI) holds the layers; these tests hold what it cannot
say in a contract, or says only for packages: the size of every module, engine questions
asked in text, and circles between any two modules through every import there is (inside
functions and under TYPE_CHECKING included).
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "analytics_cli"
MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
MAX_LINES = 500
# The registry (dsn.py) is the one place outside the engines that names an engine.
REGISTRY = "dsn.py"
# The demo fills its own PostgreSQL platform database: the one listed user of a driver
# outside the engines.
DRIVER_EXCEPTIONS = ("demo/",)
ASKS = re.compile(r'is_mysql|engine_of\(.*\) *==|== *MYSQL|"postgresql"')
DRIVERS = {"psycopg", "pymysql"}


def _lines(name: str) -> int:
    return len((PACKAGE / name).read_text("utf-8").splitlines())


@pytest.mark.parametrize("name", MODULES)
def test_no_module_is_over_500_lines(name: str) -> None:
    assert _lines(name) <= MAX_LINES, f"{name}: {_lines(name)} lines; split it by job"


def _outside_engines(name: str) -> bool:
    return not name.startswith("engines/")


@pytest.mark.parametrize("name", [m for m in MODULES if _outside_engines(m) and m != REGISTRY])
def test_no_module_outside_the_engines_asks_which_engine(name: str) -> None:
    text = (PACKAGE / name).read_text("utf-8")
    found = [
        f"{name}:{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if ASKS.search(line)
    ]
    assert found == []


def _imported(name: str) -> set[str]:
    """Every top-level package a module imports, wherever the import statement stands."""
    tree = ast.parse((PACKAGE / name).read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "name",
    [m for m in MODULES if _outside_engines(m) and not m.startswith(DRIVER_EXCEPTIONS)],
)
def test_no_module_outside_the_engines_imports_a_driver(name: str) -> None:
    assert _imported(name) & DRIVERS == set()


def test_the_checks_see_what_they_look_for() -> None:
    for line in (
        "if mysql.is_mysql(conn):",
        "if engine_of(dsn) == MYSQL:",
        'engine = "postgresql"',
    ):
        assert ASKS.search(line), line
    assert not ASKS.search("with open_store(settings, doing=doing) as found:")
    # A driver imported inside a function is an import all the same.
    probe = PACKAGE / "engines" / "base.py"
    assert "import" in probe.read_text("utf-8")
    tree = ast.parse("def f():\n    from psycopg import sql\n")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "psycopg" for n in ast.walk(tree))


def test_the_driver_contract_names_every_module_but_the_engines_and_the_demo() -> None:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    contracts = doc["tool"]["importlinter"]["contracts"]
    (drivers,) = [c for c in contracts if c.get("forbidden_modules") == ["psycopg", "pymysql"]]
    top = {
        f"analytics_cli.{p.stem if p.is_file() else p.name}"
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert set(drivers["source_modules"]) == top - {"analytics_cli.engines", "analytics_cli.demo"}


def _circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected sets of modules (Tarjan), larger than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in graph.modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_circle_between_any_two_modules() -> None:
    graph = grimp.build_graph("analytics_cli", exclude_type_checking_imports=False)
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _circles(graph) == [["p.a", "p.b", "p.c"]]
