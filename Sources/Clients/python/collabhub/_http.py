"""One HTTP exchange with the hub (http.client, standard library), and the retry policy both clients share."""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

from ._version import __version__
from .errors import CollabHubError, ConnectionFailed, error_from_response

Query = Mapping[str, Optional[object]]

USER_AGENT = f"collabhub-python/{__version__}"


@dataclass
class Call:
    """A request to make: built once, sent (and re-sent on a retry) unchanged."""

    method: str
    path: str
    query: Dict[str, str] = field(default_factory=dict)
    body: Optional[Any] = None
    headers: Dict[str, str] = field(default_factory=dict)
    # Whether sending it twice does no harm (GET, DELETE, and POSTs the hub deduplicates by key). A call
    # that is not is retried only when the hub certainly did not act: 429, 503, a refused connection.
    idempotent: bool = True

    def target(self) -> str:
        q = urllib.parse.urlencode(self.query)
        return self.path + ("?" + q if q else "")


def query(**params: Optional[object]) -> Dict[str, str]:
    """Query parameters without the None ones; booleans as true/false."""
    out: Dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def segment(value: str) -> str:
    """One path segment, escaped (ids and codes come from callers)."""
    if not isinstance(value, str) or not value:
        raise ValueError("ids and session codes must be non-empty strings")
    return urllib.parse.quote(value, safe="")


@dataclass
class Answer:
    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CollabHubError(
                f"the hub answered {self.status} with a body that is not JSON: {e}",
                status=self.status,
                code="bad_response",
                retryable=False,
            ) from None


class Transport:
    """Sends one `Call` and returns its `Answer`, or raises `CollabHubError` (a status >= 400, or no answer)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        ssl_context: Optional[ssl.SSLContext],
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or (443 if self.https else 80)
        self.prefix = parsed.path.rstrip("/")
        self.headers = dict(headers)
        self.timeout = timeout
        self.ssl_context = ssl_context

    def send(self, call: Call) -> Answer:
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context or ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers, **call.headers}
        payload: Optional[bytes] = None
        if call.body is not None:
            payload = json.dumps(call.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            try:
                conn.request(call.method, self.prefix + call.target(), body=payload, headers=headers)
            except ConnectionRefusedError as e:
                # Nothing reached the hub: safe to try again whatever the call is.
                raise ConnectionFailed(
                    f"cannot connect to {self.host}:{self.port}: {e}", code="connection_refused"
                ) from None
            response = conn.getresponse()
            body = response.read()
            answer = Answer(response.status, {k: v for k, v in response.getheaders()}, body)
        except CollabHubError:
            raise
        except socket.timeout:
            raise ConnectionFailed(f"no answer from {self.host}:{self.port} within {self.timeout} s", code="timeout")
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionFailed(f"connection to {self.host}:{self.port} failed: {e!r}", code="connection_error")
        finally:
            conn.close()
        if answer.status >= 400:
            raise error_from_response(answer.status, answer.headers, answer.body)
        return answer


# Called before each retry with the error, the retry's number (1 for the first) and the seconds it waits.
RetryHook = Callable[[CollabHubError, int, float], None]


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter (a random wait up to ``base * 2**(n-1)``, at most ``cap``
    seconds), never shorter than the hub's ``Retry-After``. A ``Retry-After`` longer than
    ``max_retry_after`` is not waited for: the error is raised at once (its ``retry_after`` says when)."""

    retries: int = 4
    base: float = 0.25
    cap: float = 20.0
    max_retry_after: float = 60.0
    on_retry: Optional[RetryHook] = None

    def delay(self, error: CollabHubError, call: Call, attempt: int) -> Optional[float]:
        """Seconds to wait before retry number ``attempt``, or None to raise ``error``."""
        if attempt > self.retries or not error.retryable:
            return None
        if not call.idempotent and not (error.status in (429, 503) or error.code == "connection_refused"):
            return None
        wait = random.uniform(0, min(self.cap, self.base * (2 ** (attempt - 1))))
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            # At least what the hub asked, spread a little so that refused callers do not return together.
            wait = error.retry_after + random.uniform(0, min(1.0, 0.1 * error.retry_after + 0.05))
        return wait


def headers_for(
    api_key: Optional[str], token: Optional[str], extra: Optional[Mapping[str, str]]
) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if api_key:
        out["X-API-Key"] = api_key
    if token:
        out["Authorization"] = "Bearer " + token
    if extra:
        out.update(extra)
    for name, value in out.items():
        if any(c in value for c in "\r\n") or any(c in name for c in "\r\n:"):
            raise ValueError(f"header {name!r} holds a line break")
    return out


def ensure_object(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise CollabHubError(f"{what}: expected a JSON object from the hub", code="bad_response", retryable=False)
    return value


def ensure_list(value: Any, what: str) -> List[Any]:
    if not isinstance(value, list):
        raise CollabHubError(f"{what}: expected a JSON array from the hub", code="bad_response", retryable=False)
    return value
