"""HTTP JSON metrics: fetch a document and reduce it to one number (see jsonpath.py)."""

from __future__ import annotations

import http.client as http_client
import json
import os
import time
from collections.abc import Mapping
from decimal import InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics_cli.errors import ConfigError
from analytics_cli.jsonpath import evaluate, parse_path

if TYPE_CHECKING:
    from analytics_cli.config.schema import MetricSpec
    from analytics_cli.samples import MetricFailure, Sample

# A metrics API answer for a few hundred nodes is well under a megabyte; cap far above that.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

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
        # Closed here: as the ValueError's context it would keep the connection open.
        exc.close()
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
    from analytics_cli.samples import MetricFailure, Sample, check_count

    assert spec.http is not None
    try:
        document = fetch_json(spec, env)
        value = evaluate(document, parse_path(spec.http.path))
        return Sample(spec.type, check_count(value))
    except (ValueError, InvalidOperation, ConfigError) as exc:
        return MetricFailure(spec.type, str(exc))
    except Exception as exc:
        return MetricFailure(spec.type, f"{type(exc).__name__}: {exc}")
