"""What the store says once per command about its table (the layout found), to a listener."""

from __future__ import annotations

import sys
from collections.abc import Callable

_said: set[str] = set()
_listener: Callable[[str], None] | None = None


def listen(callback: Callable[[str], None]) -> None:
    """Send layout notices to ``callback`` from now on, each at most once (one command)."""
    global _listener
    _listener = callback
    _said.clear()


def notice(message: str) -> None:
    """Tell the user something about the table's layout, once per command."""
    if message in _said:
        return
    _said.add(message)
    if _listener is not None:
        _listener(message)
    else:
        print(message, file=sys.stderr, flush=True)
