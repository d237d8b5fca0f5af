"""Run the CLI in a process where some optional modules cannot be imported.

``python tests/without.py pymysql,matplotlib -- ARGS...`` runs ``analytics-cli ARGS...``
with a finder first on ``sys.meta_path`` that refuses the named top-level modules and
their submodules: ``import pymysql`` raises ModuleNotFoundError, as it does where the
package was never installed.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any


class Blocker(importlib.abc.MetaPathFinder):
    """Refuses every module under the given top-level names."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def main() -> None:
    names, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: without.py NAME[,NAME] -- ARGS..."
    blocked = {n for n in names.split(",") if n}
    for loaded in [m for m in sys.modules if m.partition(".")[0] in blocked]:
        del sys.modules[loaded]
    sys.meta_path.insert(0, Blocker(blocked))
    from analytics_cli.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
