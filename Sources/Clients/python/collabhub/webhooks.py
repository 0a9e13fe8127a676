"""Verifying webhooks the hub sends, per Standard Webhooks: `webhook-id`, `webhook-timestamp` (Unix
seconds) and `webhook-signature` (space-separated `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`,
one per secret: during a rotation the hub signs with the old and the new one); the secret is
`whsec_<base64 key>`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from .errors import WebhookVerificationError

DEFAULT_TOLERANCE = 300.0


def _key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret:
        raise ValueError("a webhook secret is a string (whsec_...)")
    raw = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret is whsec_ followed by base64")
    return key


def _header(headers: Any, name: str) -> Optional[str]:
    """A header from a dict (any case), an `email.message.Message` (http.server) or similar."""
    get = getattr(headers, "get", None)
    if get is not None and not isinstance(headers, Mapping):
        value = get(name)
        return value if isinstance(value, str) else None
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name and isinstance(value, str):
                return value
    return None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature the hub would send for this message (for tests and tooling)."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify_webhook(
    secret: Union[str, Sequence[str]],
    headers: Any,
    body: Union[bytes, str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: Optional[float] = None,
) -> Dict[str, Any]:
    """Checks a delivery and returns its JSON payload (`{"type", "timestamp", "data"}`).

    `secret`: the endpoint's `whsec_...` secret, or several (while you move to a rotated one). `headers`:
    the request's headers (a dict, or http.server's `self.headers`). `body`: the raw body bytes, exactly
    as received (verify before parsing). Raises `WebhookVerificationError` (code `missing_header`,
    `invalid_timestamp`, `timestamp_out_of_tolerance`, `invalid_signature` or `invalid_payload`).
    Deduplicate on the `webhook-id` header: a retry repeats it."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    keys = [_key(s) for s in secrets]
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    for name, value in (("webhook-id", msg_id), ("webhook-timestamp", stamp), ("webhook-signature", signatures)):
        if not value:
            raise WebhookVerificationError(f"the {name} header is missing", code="missing_header")
    assert msg_id is not None and stamp is not None and signatures is not None
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time in seconds", code="invalid_timestamp")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is more than {tolerance:g} s from now (a replay, or a wrong clock)",
            code="timestamp_out_of_tolerance",
        )
    signed = f"{msg_id}.{stamp}.".encode() + raw
    expected = [hmac.new(k, signed, hashlib.sha256).digest() for k in keys]
    matched = False
    for candidate in signatures.split(" "):
        version, _, encoded = candidate.partition(",")
        if version != "v1" or not encoded:
            continue  # another scheme (v1a, ...) or an empty entry
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Every comparison runs, in constant time, whatever matched before.
        for mac in expected:
            matched = hmac.compare_digest(mac, given) or matched
    if not matched:
        raise WebhookVerificationError("no webhook-signature matches the secret", code="invalid_signature")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookVerificationError("the body is not JSON", code="invalid_payload") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object", code="invalid_payload")
    return payload


class WebhookVerifier:
    """`verify_webhook` with its secrets and tolerance bound: `WebhookVerifier("whsec_...").verify(h, b)`."""

    def __init__(self, secret: Union[str, Sequence[str]], *, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        for s in self.secrets:
            _key(s)
        self.tolerance = tolerance

    def verify(self, headers: Any, body: Union[bytes, str], *, now: Optional[float] = None) -> Dict[str, Any]:
        return verify_webhook(self.secrets, headers, body, tolerance=self.tolerance, now=now)
