"""Text pieces the commands share: counts and numbers as text, plain aligned tables."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def format_count(value: Any) -> str:
    """A count as text: integers without decimals, fractions as stored."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return f"{int(value):,}".replace(",", "_") if abs(value) >= 10**6 else str(int(value))
        return f"{value.normalize():f}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def number(value: Any) -> str:
    """A value for tables: integers as they are, fractions to two decimals."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return str(int(value))
        return f"{value.quantize(Decimal('0.01')).normalize():f}"
    return format_count(value)


def plain_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """Columns padded with spaces, no box drawing: easy for grep, awk and cut."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
