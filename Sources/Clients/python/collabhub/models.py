"""Shapes of what the hub answers: the fields the SDK relies on (the hub may send more; they are kept)."""

from __future__ import annotations

from typing import Any, Dict, List, TypedDict

# A durable event of a transcript (`type`, `seq`, `ts`, then the kind's own fields), a run, a member:
# free-form JSON objects, as Protocol/schemas describes them.
Event = Dict[str, Any]
Run = Dict[str, Any]
ActivityEntry = Dict[str, Any]


class Session(TypedDict, total=False):
    code: str
    title: str
    max_participants: int
    guest_policy: str
    created_at: int
    status: str
    ended_at: int
    end_reason: str
    events: Any
    members: int
    connections: int


class CreatedSession(TypedDict, total=False):
    code: str
    title: str
    max_participants: int
    guest_policy: str
    host_key: str
    url: str


class ShareLink(TypedDict, total=False):
    id: str
    url: str
    token: str
    expires_at: int


class PostedMessage(TypedDict, total=False):
    seq: int
    ts: int
    duplicate: bool
    delivered: bool


class PublishedEvent(TypedDict, total=False):
    seq: int
    duplicate: bool


class PublishResult(TypedDict):
    run: str
    events: List[PublishedEvent]


class Webhook(TypedDict, total=False):
    id: str
    url: str
    events: List[str]
    description: str
    headers: Dict[str, str]
    timeout_s: float
    max_attempts: int
    active: bool
    created_at: int
    disabled_reason: str
    failing_since: int
    pending: int
    secret: str


class Delivery(TypedDict, total=False):
    id: int
    webhook: str
    webhook_id: str
    event: str
    status: str
    attempts: int
    response_status: int
    duration_ms: int
    last_error: str
    next_attempt: int
    created_at: int
    delivered_at: int


class ApiKey(TypedDict, total=False):
    id: str
    key: str
    name: str
    scopes: List[str]
    runs: List[str]
    owners: List[str]
    per_minute: int
    per_hour: int
    per_month: int
    created_at: int
    revoked_at: int
    active: bool


class KeyUsage(TypedDict, total=False):
    id: str
    minute: int
    hour: int
    month: int
