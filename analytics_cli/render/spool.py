"""What ``spool list`` prints: each waiting file and the files set aside, as text or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from analytics_cli.timeutil import iso

if TYPE_CHECKING:
    from analytics_cli.spool import Listed


def spool_listing(
    folder: Path, items: Sequence[Listed], aside: Sequence[Path], *, as_json: bool
) -> str:
    """The spool folder's files (slot and rows, another store, or why not replayable) and
    the ones set aside in rejected/."""
    if as_json:
        import json  # only --json needs it

        doc = {
            "folder": str(folder),
            "files": [
                {
                    "file": str(i.path),
                    "slot": iso(i.slot) if i.slot else None,
                    "rows": i.rows,
                    "store": i.foreign,
                    "problem": i.problem,
                }
                for i in items
            ],
            "rejected": [str(p) for p in aside],
        }
        return json.dumps(doc, indent=2) + "\n"
    lines = [f"spool folder {folder}: {len(items)} file(s), {len(aside)} set aside"]
    for i in items:
        if i.problem is not None:
            lines.append(f"{i.path}  cannot be replayed: {i.problem}")
        elif i.foreign is not None:
            lines.append(f"{i.path}  another store: {i.foreign}")
        else:
            lines.append(f"{i.path}  slot {iso(i.slot) if i.slot else '?'}, {i.rows} row(s)")
    lines += [f"{p}  set aside" for p in aside]
    return "\n".join(lines) + "\n"
