"""HTTP JSON metrics: fetch a document, reduce it with a small path language, parse quantities.

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

import http.client as http_client
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics_cli.errors import ConfigError

if TYPE_CHECKING:
    from analytics_cli.config import MetricSpec
    from analytics_cli.metrics import MetricFailure, Sample

# A metrics API answer for a few hundred nodes is well under a megabyte; cap far above that.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
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


# ---------------------------------------------------------------------------- fetching


def in_cluster(env: Mapping[str, str]) -> bool:
    """True when running inside a Kubernetes pod."""
    return bool(env.get("KUBERNETES_SERVICE_HOST"))


def credentials(spec: MetricSpec, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(token file, CA file) to use: configured, else the service account's inside a pod.

    An empty string in the configuration turns the default off.
    """
    assert spec.http is not None
    token, ca = spec.http.token_file, spec.http.ca_file
    if in_cluster(env):
        if token is None and (SERVICE_ACCOUNT / "token").is_file():
            token = str(SERVICE_ACCOUNT / "token")
        if ca is None and (SERVICE_ACCOUNT / "ca.crt").is_file():
            ca = str(SERVICE_ACCOUNT / "ca.crt")
    return token or None, ca or None


def fetch_json(spec: MetricSpec, env: Mapping[str, str] | None = None) -> Any:
    """GET the metric's URL and decode the JSON body; raises ValueError with one line."""
    # Imported here: ssl and urllib cost start-up time every other command does not need.
    import ssl
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A bearer token must never follow a redirect elsewhere: refuse every redirect."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    assert spec.http is not None
    env = os.environ if env is None else env
    http = spec.http
    timeout = http.timeout.total_seconds()
    token_file, ca_file = credentials(spec, env)
    headers = {"Accept": "application/json", "User-Agent": "analytics-cli"}
    if token_file is not None:
        try:
            token = Path(token_file).read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ValueError(f"cannot read token file {token_file}: {reason}") from None
        headers["Authorization"] = f"Bearer {token}"
    handlers: list[Any] = [NoRedirect()]
    if http.url.startswith("https://"):
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load CA file {ca_file}: {exc}") from None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(http.url, headers=headers, method="GET")
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            chunks: list[bytes] = []
            size = 0
            while True:
                # The socket timeout bounds each read; the deadline bounds a slow trickle.
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = response.read(64 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise ValueError(
                        f"response from {shown_url(http.url)} is larger than {MAX_RESPONSE_BYTES} bytes"
                    )
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"HTTP {exc.code} {exc.reason} from {shown_url(http.url)}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise ValueError(f"no answer from {shown_url(http.url)} within {timeout:g}s") from None
        raise ValueError(f"cannot fetch {shown_url(http.url)}: {reason}") from None
    except TimeoutError:
        raise ValueError(f"no answer from {shown_url(http.url)} within {timeout:g}s") from None
    except OSError as exc:
        raise ValueError(f"cannot fetch {shown_url(http.url)}: {exc}") from None
    except http_client.HTTPException as exc:
        # A short or malformed answer (IncompleteRead, BadStatusLine) is not an OSError.
        raise ValueError(
            f"bad HTTP answer from {shown_url(http.url)}: {type(exc).__name__}"
        ) from None
    try:
        return json.loads(b"".join(chunks))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"response from {shown_url(http.url)} is not JSON") from None


def shown_url(url: str) -> str:
    """The URL for messages: no user:password@ and no query string (they may hold secrets)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def run_http_metric(
    spec: MetricSpec, env: Mapping[str, str] | None = None
) -> Sample | MetricFailure:
    """Fetch and reduce one HTTP metric; any failure is returned, never raised."""
    from analytics_cli.metrics import MetricFailure, Sample, check_count

    assert spec.http is not None
    try:
        document = fetch_json(spec, env)
        value = evaluate(document, parse_path(spec.http.path))
        return Sample(spec.type, check_count(value))
    except (ValueError, InvalidOperation, ConfigError) as exc:
        return MetricFailure(spec.type, str(exc))
    except Exception as exc:
        return MetricFailure(spec.type, f"{type(exc).__name__}: {exc}")
