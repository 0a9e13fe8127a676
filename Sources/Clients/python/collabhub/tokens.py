"""Member and watcher tokens: HS256 JWTs signed with the hub's `--jwt-secret`, carrying exactly the claims
the hub checks (Sources/Hub/Token.swift): `sub`, `exp`, `iat`, and `session` + `role` (member) or
`channels` (watcher); `name`, `nbf`, `aud`, `iss` when given; `kid` in the header for a rotated key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Optional, Sequence, Union

ROLES = ("host", "editor", "viewer", "publisher")

Secret = Union[str, bytes]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _key(secret: Secret) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < 16:
        raise ValueError("the JWT secret must be at least 16 bytes (the hub refuses shorter ones)")
    return key


def _fits(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit


def sign(claims: Dict[str, Any], secret: Secret, *, kid: Optional[str] = None) -> str:
    """An HS256 JWT of `claims` (keys sorted, compact JSON)."""
    header: Dict[str, str] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        if not _fits(kid, 128):
            raise ValueError("kid must be a string of 1-128 characters")
        header["kid"] = kid
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode())
    )
    mac = hmac.new(_key(secret), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(mac)


def _common(
    sub: str,
    ttl: float,
    now: Optional[float],
    name: Optional[str],
    not_before: Optional[int],
    audience: Optional[str],
    issuer: Optional[str],
) -> Dict[str, Any]:
    if not isinstance(sub, str) or not _fits(sub, 128):
        raise ValueError("sub must be a string of 1-128 characters")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= 10 * 365 * 86400:
        raise ValueError("ttl must be a positive number of seconds")
    issued = int(time.time() if now is None else now)
    claims: Dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + int(ttl)}
    if name is not None:
        if not isinstance(name, str) or not _fits(name, 64):
            raise ValueError("name must be a string of 1-64 characters")
        claims["name"] = name
    if not_before is not None:
        claims["nbf"] = int(not_before)
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return claims


def member_token(
    secret: Secret,
    *,
    sub: str,
    session: str,
    role: str = "viewer",
    ttl: float = 3600,
    name: Optional[str] = None,
    kid: Optional[str] = None,
    audience: Optional[str] = None,
    issuer: Optional[str] = None,
    not_before: Optional[int] = None,
    now: Optional[float] = None,
) -> str:
    """A token that joins `session` (a code, or `*` for any) as `sub` with `role` (host, editor, viewer;
    publisher joins nothing), and reads that session over HTTP. Expires `ttl` seconds from now."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(session, str) or not _fits(session, 32):
        raise ValueError("session must be a session code or *")
    claims = _common(sub, ttl, now, name, not_before, audience, issuer)
    claims["session"] = session  # the hub normalizes a code (case, separators)
    claims["role"] = role
    return sign(claims, secret, kid=kid)


def watcher_token(
    secret: Secret,
    *,
    sub: str,
    channels: Sequence[str],
    ttl: float = 3600,
    kid: Optional[str] = None,
    audience: Optional[str] = None,
    issuer: Optional[str] = None,
    not_before: Optional[int] = None,
    now: Optional[float] = None,
) -> str:
    """A token for `/watch` of `channels` (`run:ID`, `dashboard:OWNER`, a trailing `*` a prefix) and
    `GET /api/runs/{id}` of those runs. Expires `ttl` seconds from now."""
    if isinstance(channels, str):
        raise ValueError("channels must be a list of strings, not one string")
    names = list(channels)
    if not 1 <= len(names) <= 100 or not all(isinstance(c, str) and _fits(c, 256) for c in names):
        raise ValueError("channels must be 1-100 strings of 1-256 characters")
    claims = _common(sub, ttl, now, None, not_before, audience, issuer)
    claims["channels"] = names
    return sign(claims, secret, kid=kid)
