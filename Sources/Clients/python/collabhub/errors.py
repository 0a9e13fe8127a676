"""The one error type of the SDK, and how a hub's answer becomes one."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any, Mapping, Optional

# Statuses worth trying again: the hub (or a proxy in front of it) refused for now, not for good.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class CollabHubError(Exception):
    """Anything that went wrong talking to the hub (or verifying what it sent).

    - ``status``: the HTTP status, or None when no answer came (connection refused, reset, timeout);
    - ``code``: the hub's error code (``unknown_session``, ``invalid_field``, ``token_expired``, ...),
      ``connection_error`` / ``timeout`` without an answer, ``http_<status>`` for a body that is not the
      hub's JSON error;
    - ``message``: the hub's sentence; ``field``: the field it names, if any;
    - ``retryable``: True for 429, 502, 503, 504 and connection errors;
    - ``retry_after``: seconds the hub asked to wait (its ``Retry-After`` header or ``retry_after``), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: str = "error",
        field: Optional[str] = None,
        retryable: Optional[bool] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retryable = (status is None or status in RETRYABLE_STATUSES) if retryable is None else retryable
        self.retry_after = retry_after

    @property
    def expired(self) -> bool:
        """Whether the credential had expired (mint or fetch a fresh one), as opposed to being wrong."""
        return self.code == "token_expired"

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r}, "
            f"field={self.field!r}, retryable={self.retryable!r}, retry_after={self.retry_after!r})"
        )


class ConnectionFailed(CollabHubError):
    """No answer: the connection was refused, reset or timed out (``status`` is None; retryable)."""


class BadRequestError(CollabHubError):
    """400, 413, 415, 422: the request itself is wrong; ``field`` names what, where the hub says."""


class AuthenticationError(CollabHubError):
    """401: no credential, or one the hub does not accept (wrong, forged, revoked)."""


class TokenExpiredError(AuthenticationError):
    """401 ``token_expired``: the credential was valid once; mint or fetch a fresh one."""


class PermissionDeniedError(CollabHubError):
    """403: the credential is valid but does not allow this."""


class NotFoundError(CollabHubError):
    """404 (``unknown_session``, ``unknown_run``, ``unknown_webhook``, ``not_found``, ...)."""


class ConflictError(CollabHubError):
    """409 and 410: the state forbids it (``session_ended``, ``illegal_transition``, ...)."""


class RateLimitedError(CollabHubError):
    """429: over a key's quota or a per-address limit; ``retry_after`` says when to try again."""


class ServerError(CollabHubError):
    """5xx: ``busy``/``storage_unavailable`` (503, retryable) or a proxy's 502/504."""


class WebhookVerificationError(CollabHubError):
    """A webhook whose signature, timestamp or headers do not check out: do not act on it."""

    def __init__(self, message: str, *, code: str = "invalid_signature") -> None:
        super().__init__(message, status=None, code=code, retryable=False)


def _class_for(status: int, code: str) -> type[CollabHubError]:
    if status == 401:
        return TokenExpiredError if code == "token_expired" else AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status in (409, 410):
        return ConflictError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    if status >= 400:
        return BadRequestError
    return CollabHubError


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> CollabHubError:
    """The typed error for an answer with status >= 400: the hub's ``{"error": {code, message, field?,
    retry_after?}}`` when the body is that, else a generic ``http_<status>`` error with the body's text."""
    code, message, field = f"http_{status}", "", None
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    try:
        parsed: Any = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("code"), str) and error["code"]:
            code = error["code"]
        if isinstance(error.get("message"), str):
            message = error["message"]
        if isinstance(error.get("field"), str):
            field = error["field"]
        ra = error.get("retry_after")
        if isinstance(ra, (int, float)) and not isinstance(ra, bool) and ra >= 0 and retry_after is None:
            retry_after = float(ra)
    if not message:
        text = body[:500].decode("utf-8", "replace").strip()
        message = text or f"HTTP {status}"
    return _class_for(status, code)(message, status=status, code=code, field=field, retry_after=retry_after)


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
