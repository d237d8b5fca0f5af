"""The JSON path language of HTTP metrics, and exact Kubernetes quantities; a leaf.

The path language, in full:

    expression := path | FUNCTION "(" path ")"
    FUNCTION   := sum | count | min | max | avg
    path       := step ( "." NAME | "[" INDEX "]" | "[" "*" "]" | "[" '"' KEY '"' "]" )*
    step       := NAME                      (the first key of the document)

``[*]`` fans out over every element of an array; ``[0]`` / ``[-1]`` pick one element;
``["kubernetes.io/hostname"]`` reads a key that is not a plain name. A bare path must select
exactly one value. ``count(p)`` counts the selected values (the elements, when ``p`` selects
one array without ``[*]``); ``sum``, ``min``, ``max`` and ``avg`` combine the selected values.
Values are JSON numbers or Kubernetes quantities ("250m", "1Gi", "1e3", "500n"), read exactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from analytics_cli.errors import ConfigError

FUNCTIONS = ("sum", "count", "min", "max", "avg")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
}
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<si>[numkMGTPE]?))"
)
# Kubernetes itself refuses quantities beyond these sizes; so does this parser.
_MAX_QUANTITY_CHARS = 64
_MAX_EXPONENT = 60


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("250m", "1Gi", "1e3", "500n", "1.5") as an exact Decimal."""
    if len(text) > _MAX_QUANTITY_CHARS:
        raise ValueError(f"quantity {text[:20]!r}... is too long")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a number or a Kubernetes quantity")
    # Enough precision that no supported quantity is ever rounded.
    with localcontext() as ctx:
        ctx.prec = 200
        number = Decimal(match["number"])
        if match["binary"]:
            return number * _BINARY[match["binary"]]
        if match["exponent"] is not None:
            exponent = int(match["exponent"])
            if abs(exponent) > _MAX_EXPONENT:
                raise ValueError(f"quantity {text!r}: exponent out of range")
            return number.scaleb(exponent)
        return number * _DECIMAL[match["si"]]


def as_number(value: Any, where: str) -> Decimal:
    """A JSON value that is a number or a quantity string, as an exact Decimal."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: {json.dumps(value)} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return parse_quantity(value.strip())
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    raise ValueError(f"{where}: a {type(value).__name__} is not a number")


# ---------------------------------------------------------------------------- paths

_STEP = re.compile(
    r'\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|\[(?:(?P<index>-?[0-9]+)|(?P<star>\*)|"(?P<key>[^"]*)")\]'
)
_HEAD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class PathExpr:
    """A parsed expression: an optional function and the steps of its path."""

    function: str | None
    steps: tuple[str | int | None, ...]  # key, index, or None for [*]
    text: str

    @property
    def fans_out(self) -> bool:
        """True when the path contains ``[*]``."""
        return any(step is None for step in self.steps)


def parse_path(text: str, *, where: str = "path") -> PathExpr:
    """Parse an expression such as ``sum(items[*].usage.cpu)``; errors name the position."""
    body = text.strip()
    function = None
    call = re.fullmatch(r"([a-z]+)\s*\((.*)\)", body, re.DOTALL)
    if call:
        function = call[1]
        if function not in FUNCTIONS:
            raise ConfigError(
                f"{where}: unknown function {function!r}", hint="use " + ", ".join(FUNCTIONS)
            )
        body = call[2].strip()
    head = _HEAD.match(body)
    if head is None:
        raise ConfigError(
            f"{where}: {text!r} must start with a key name",
            hint='for example: sum(items[*].usage.cpu), count(items), items[0].metadata["name"]',
        )
    steps: list[str | int | None] = [head[0]]
    pos = head.end()
    while pos < len(body):
        step = _STEP.match(body, pos)
        if step is None:
            raise ConfigError(f"{where}: cannot read {text!r} at {body[pos:]!r}")
        if step["name"] is not None:
            steps.append(step["name"])
        elif step["index"] is not None:
            steps.append(int(step["index"]))
        elif step["star"] is not None:
            steps.append(None)
        else:
            steps.append(step["key"])
        pos = step.end()
    return PathExpr(function, tuple(steps), text)


def _label(steps: tuple[str | int | None, ...]) -> str:
    out = ""
    for step in steps:
        if step is None:
            out += "[*]"
        elif isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", step):
            out += f".{step}" if out else step
        else:
            out += f'["{step}"]'
    return out


def select(document: Any, expr: PathExpr) -> list[Any]:
    """Every value the path selects (several only through ``[*]``); missing keys are errors."""
    current = [document]
    for i, step in enumerate(expr.steps):
        here = _label(expr.steps[: i + 1])
        following: list[Any] = []
        for value in current:
            if step is None:
                if not isinstance(value, list):
                    raise ValueError(f"{here}: not an array")
                following.extend(value)
            elif isinstance(step, int):
                if not isinstance(value, list):
                    raise ValueError(f"{here}: not an array")
                if not -len(value) <= step < len(value):
                    raise ValueError(f"{here}: index out of range (array of {len(value)})")
                following.append(value[step])
            else:
                if not isinstance(value, dict):
                    raise ValueError(f"{here}: not an object")
                if step not in value:
                    raise ValueError(f"{here}: no such key")
                following.append(value[step])
        current = following
    return current


def evaluate(document: Any, expr: PathExpr) -> Decimal:
    """Reduce a JSON document to one exact number with a parsed expression."""
    values = select(document, expr)
    label = _label(expr.steps)
    if expr.function == "count":
        if not expr.fans_out and len(values) == 1 and isinstance(values[0], list):
            return Decimal(len(values[0]))
        return Decimal(len(values))
    if expr.function is None:
        if len(values) != 1:
            raise ValueError(f"{label} selects {len(values)} values; use sum(), count(), ...")
        return as_number(values[0], label)
    if not expr.fans_out and len(values) == 1 and isinstance(values[0], list):
        values = values[0]
    numbers = [as_number(v, f"{label}[{i}]") for i, v in enumerate(values)]
    with localcontext() as ctx:
        ctx.prec = 200
        if expr.function == "sum":
            return sum(numbers, Decimal(0))
        if not numbers:
            raise ValueError(f"{expr.function}({label}): no values")
        if expr.function == "min":
            return min(numbers)
        if expr.function == "max":
            return max(numbers)
        return sum(numbers, Decimal(0)) / len(numbers)
