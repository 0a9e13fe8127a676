"""Every API operation as a request and a reading of its answer, written once for both clients."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar, cast

from ._http import Answer, Call, ensure_object, query, segment
from ._paging import check_page_size
from .models import (
    ApiKey,
    CreatedSession,
    Delivery,
    KeyUsage,
    PostedMessage,
    PublishResult,
    Run,
    Session,
    ShareLink,
    Webhook,
)

T = TypeVar("T")

# The hub's bounds on one POST /api/runs/{id}/events: 1,000 events and a 1 MiB body.
MAX_BATCH = 1000
MAX_BATCH_BYTES = 768 * 1024
RUN_EVENT_TYPES = (
    "started",
    "step_started",
    "step_completed",
    "step_failed",
    "paused",
    "resumed",
    "log",
    "progress",
    "completed",
)


@dataclass
class Op(Generic[T]):
    call: Call
    read: Callable[[Answer], T]


@dataclass
class Listing:
    """The first page's request of a list and the name of its array."""

    call: Call
    items: str


def _object(what: str) -> Callable[[Answer], Any]:
    return lambda a: ensure_object(a.json(), what)


def _nothing(a: Answer) -> None:
    return None


def check_key(key: str, *, room: int = 0) -> str:
    """An idempotency key the hub takes (1-128 printable ASCII characters, no spaces), `room` left for a
    suffix the SDK adds."""
    if not isinstance(key, str) or not 1 <= len(key) <= 128 - room or not all(33 <= ord(c) < 127 for c in key):
        raise ValueError(f"an idempotency key must be 1-{128 - room} printable ASCII characters without spaces")
    return key


def new_key() -> str:
    return uuid.uuid4().hex


# Sessions


def fields(**values: Any) -> Dict[str, Any]:
    """A JSON body of the given fields without the None ones (the body's counterpart of `query`)."""
    return {key: value for key, value in values.items() if value is not None}


def _event_policy(events: Optional[Mapping[str, Sequence[str]]]) -> Optional[Dict[str, List[str]]]:
    return None if events is None else {role: list(names) for role, names in events.items()}


def create_session(
    title: Optional[str],
    max_participants: Optional[int],
    guest_policy: Optional[str],
    events: Optional[Mapping[str, Sequence[str]]],
) -> Op[CreatedSession]:
    body = fields(
        title=title, max_participants=max_participants, guest_policy=guest_policy, events=_event_policy(events)
    )
    return Op(Call("POST", "/api/sessions", body=body, idempotent=False), _object("create_session"))


def get_session(code: str) -> Op[Session]:
    return Op(Call("GET", "/api/sessions/" + segment(code)), _object("get_session"))


def list_sessions(page_size: Optional[int]) -> Listing:
    return Listing(Call("GET", "/api/sessions", query=query(limit=check_page_size(page_size))), "sessions")


def _host(host_key: Optional[str]) -> Dict[str, str]:
    return {"X-Host-Key": host_key} if host_key else {}


def update_session(
    code: str,
    title: Optional[str],
    guest_policy: Optional[str],
    events: Optional[Mapping[str, Sequence[str]]],
    host_key: Optional[str],
) -> Op[Session]:
    body = fields(title=title, guest_policy=guest_policy, events=_event_policy(events))
    return Op(
        Call("PATCH", "/api/sessions/" + segment(code), body=body, headers=_host(host_key)), _object("update_session")
    )


def end_session(code: str, reason: Optional[str], host_key: Optional[str]) -> Op[Dict[str, Any]]:
    body: Dict[str, Any] = {} if reason is None else {"reason": reason}
    return Op(
        Call(
            "POST", "/api/sessions/" + segment(code) + "/end", body=body, headers=_host(host_key), idempotent=False
        ),
        _object("end_session"),
    )


def members(code: str, host_key: Optional[str]) -> Op[List[Dict[str, Any]]]:
    def read(a: Answer) -> List[Dict[str, Any]]:
        obj = ensure_object(a.json(), "members")
        return cast(List[Dict[str, Any]], obj.get("members") or [])

    return Op(Call("GET", "/api/sessions/" + segment(code) + "/members", headers=_host(host_key)), read)


def remove_member(code: str, member_id: str, host_key: Optional[str]) -> Op[Dict[str, Any]]:
    path = "/api/sessions/" + segment(code) + "/members/" + segment(member_id)
    return Op(Call("DELETE", path, headers=_host(host_key)), _object("remove_member"))


# Messages and transcripts


def post_message(
    code: str, text: str, idempotency_key: Optional[str], host_key: Optional[str]
) -> Op[PostedMessage]:
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    key = check_key(idempotency_key) if idempotency_key is not None else new_key()
    headers = {"Idempotency-Key": key, **_host(host_key)}
    call = Call("POST", "/api/sessions/" + segment(code) + "/messages", body={"kind": "system", "text": text})
    call.headers = headers
    return Op(call, _object("post_message"))


def post_event(
    code: str,
    name: str,
    data: Optional[Mapping[str, Any]],
    durable: bool,
    idempotency_key: Optional[str],
    host_key: Optional[str],
) -> Op[PostedMessage]:
    body: Dict[str, Any] = {"type": "event", "name": name, "data": dict(data or {}), "durable": durable}
    headers = _host(host_key)
    if durable or idempotency_key is not None:
        headers["Idempotency-Key"] = check_key(idempotency_key) if idempotency_key is not None else new_key()
    # A durable event is stored once per key, so sending it again is harmless; an ephemeral one is not.
    call = Call("POST", "/api/sessions/" + segment(code) + "/messages", body=body, idempotent=durable)
    call.headers = headers
    return Op(call, _object("post_event"))


def share(code: str, ttl_s: Optional[int], host_key: Optional[str]) -> Op[ShareLink]:
    if ttl_s is not None and (isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 60 <= ttl_s <= 2592000):
        raise ValueError("ttl_s must be whole seconds from 60 to 2592000 (30 days)")
    body: Dict[str, Any] = {} if ttl_s is None else {"ttl_s": ttl_s}
    path = "/api/sessions/" + segment(code) + "/share"
    return Op(Call("POST", path, body=body, headers=_host(host_key), idempotent=False), _object("share"))


def revoke_share(code: str, share_id: str, host_key: Optional[str]) -> Op[Dict[str, Any]]:
    path = "/api/sessions/" + segment(code) + "/share/" + segment(share_id)
    return Op(Call("DELETE", path, headers=_host(host_key)), _object("revoke_share"))


def transcript(code: str, after: int, page_size: Optional[int], host_key: Optional[str]) -> Listing:
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValueError("after must be a non-negative integer (a seq)")
    q = query(after=after or None, limit=check_page_size(page_size))
    return Listing(Call("GET", "/api/sessions/" + segment(code) + "/transcript", query=q, headers=_host(host_key)), "events")


# Runs


def event_batches(
    events: Sequence[Mapping[str, Any]], key: str, start: int, batch_size: int
) -> List[Tuple[str, List[Dict[str, Any]]]]:
    """Splits `events` into requests of at most `batch_size` events and about 768 KiB each (a request's
    `Idempotency-Key` is `{key}.{n}`, n its first event's index). Every event
    without an `id` gets `{key}.{n}`: the hub stores each id once per run, so a batch sent again (a retry,
    or the same call repeated with the same key) is acknowledged as duplicates, not stored twice. (The hub
    would name them from the header alone too, `KEY.i` by position in the request; the SDK names them by
    position in the whole call, so a call split into several requests keeps the same ids however it is split.)"""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be from 1 to {MAX_BATCH}")
    out: List[Tuple[str, List[Dict[str, Any]]]] = []
    batch: List[Dict[str, Any]] = []
    size = 0
    for i, event in enumerate(events):
        if not isinstance(event, Mapping) or event.get("type") not in RUN_EVENT_TYPES:
            raise ValueError(f"events[{i}] must be an object whose type is one of {', '.join(RUN_EVENT_TYPES)}")
        e = dict(event)
        if e.get("id") is None:
            e["id"] = f"{key}.{start + i}"
        encoded = len(json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode("utf-8")) + 1
        if batch and (len(batch) >= batch_size or size + encoded > MAX_BATCH_BYTES):
            out.append((f"{key}.{start + i - len(batch)}", batch))
            batch, size = [], 0
        batch.append(e)
        size += encoded
    if batch:
        out.append((f"{key}.{start + len(events) - len(batch)}", batch))
    return out


def publish_batch(run_id: str, batch_key: str, batch: List[Dict[str, Any]]) -> Op[PublishResult]:
    call = Call("POST", "/api/runs/" + segment(run_id) + "/events", body={"events": batch})
    call.headers = {"Idempotency-Key": batch_key}

    def read(a: Answer) -> PublishResult:
        obj = ensure_object(a.json(), "publish_run_events")
        return {"run": str(obj.get("run", run_id)), "events": list(obj.get("events") or [])}

    return Op(call, read)


def get_run(run_id: str) -> Op[Run]:
    return Op(Call("GET", "/api/runs/" + segment(run_id)), _object("get_run"))


def list_runs(owner: Optional[str], status: Optional[str], page_size: Optional[int]) -> Listing:
    return Listing(
        Call("GET", "/api/runs", query=query(owner=owner, status=status, limit=check_page_size(page_size, 500))),
        "runs",
    )


def activity(
    session: Optional[str], actor: Optional[str], since: Optional[int], page_size: Optional[int]
) -> Listing:
    q = query(session=session, actor=actor, since=since, limit=check_page_size(page_size))
    return Listing(Call("GET", "/api/activity", query=q), "activity")


# Webhooks


def _webhook_body(
    url: Optional[str],
    events: Optional[Sequence[str]],
    description: Optional[str],
    headers: Optional[Mapping[str, str]],
    timeout_s: Optional[float],
    max_attempts: Optional[int],
    active: Optional[bool],
) -> Dict[str, Any]:
    if isinstance(events, str):
        raise ValueError("events must be a list of event types (or [\"*\"])")
    return fields(
        url=url,
        events=None if events is None else list(events),
        description=description,
        headers=None if headers is None else dict(headers),
        timeout_s=timeout_s,
        max_attempts=max_attempts,
        active=active,
    )


def create_webhook(
    url: str,
    events: Optional[Sequence[str]],
    description: Optional[str],
    headers: Optional[Mapping[str, str]],
    timeout_s: Optional[float],
    max_attempts: Optional[int],
) -> Op[Webhook]:
    body = _webhook_body(url, events, description, headers, timeout_s, max_attempts, None)
    return Op(Call("POST", "/api/webhooks", body=body, idempotent=False), _object("create_webhook"))


def update_webhook(
    webhook_id: str,
    url: Optional[str],
    events: Optional[Sequence[str]],
    description: Optional[str],
    headers: Optional[Mapping[str, str]],
    timeout_s: Optional[float],
    max_attempts: Optional[int],
    active: Optional[bool],
) -> Op[Webhook]:
    body = _webhook_body(url, events, description, headers, timeout_s, max_attempts, active)
    return Op(Call("PATCH", "/api/webhooks/" + segment(webhook_id), body=body), _object("update_webhook"))


def get_webhook(webhook_id: str) -> Op[Webhook]:
    return Op(Call("GET", "/api/webhooks/" + segment(webhook_id)), _object("get_webhook"))


def list_webhooks(page_size: Optional[int]) -> Listing:
    return Listing(Call("GET", "/api/webhooks", query=query(limit=check_page_size(page_size))), "webhooks")


def delete_webhook(webhook_id: str) -> Op[None]:
    return Op(Call("DELETE", "/api/webhooks/" + segment(webhook_id)), _nothing)


def rotate_webhook_secret(webhook_id: str) -> Op[Webhook]:
    path = "/api/webhooks/" + segment(webhook_id) + "/rotate-secret"
    return Op(Call("POST", path, idempotent=False), _object("rotate_webhook_secret"))


def test_webhook(webhook_id: str) -> Op[Delivery]:
    path = "/api/webhooks/" + segment(webhook_id) + "/test"
    return Op(Call("POST", path, idempotent=False), _object("test_webhook"))


def webhook_deliveries(webhook_id: str, status: Optional[str], page_size: Optional[int]) -> Listing:
    q = query(status=status, limit=check_page_size(page_size))
    return Listing(Call("GET", "/api/webhooks/" + segment(webhook_id) + "/deliveries", query=q), "deliveries")


def retry_delivery(webhook_id: str, delivery_id: int) -> Op[Delivery]:
    path = "/api/webhooks/" + segment(webhook_id) + "/deliveries/" + segment(str(int(delivery_id))) + "/retry"
    return Op(Call("POST", path), _object("retry_delivery"))


# API keys


def create_key(
    name: str,
    scopes: Sequence[str],
    runs: Optional[Sequence[str]],
    owners: Optional[Sequence[str]],
    per_minute: Optional[int],
    per_hour: Optional[int],
    per_month: Optional[int],
) -> Op[ApiKey]:
    if isinstance(scopes, str):
        raise ValueError("scopes must be a list of scope names")
    body: Dict[str, Any] = {"name": name, "scopes": list(scopes)}
    for field_name, value in (("runs", runs), ("owners", owners)):
        if value is not None:
            if isinstance(value, str):
                raise ValueError(f"{field_name} must be a list")
            body[field_name] = list(value)
    for field_name, limit in (("per_minute", per_minute), ("per_hour", per_hour), ("per_month", per_month)):
        if limit is not None:
            body[field_name] = limit
    return Op(Call("POST", "/api/keys", body=body, idempotent=False), _object("create_key"))


def list_keys(page_size: Optional[int]) -> Listing:
    return Listing(Call("GET", "/api/keys", query=query(limit=check_page_size(page_size))), "keys")


def revoke_key(key_id: str) -> Op[Dict[str, Any]]:
    return Op(Call("DELETE", "/api/keys/" + segment(key_id)), _object("revoke_key"))


def key_usage(key_id: str) -> Op[KeyUsage]:
    return Op(Call("GET", "/api/keys/" + segment(key_id) + "/usage"), _object("key_usage"))


def key_id_of(key: str) -> str:
    """The id of an API key `chk_<id>_<secret>` (what the key routes take)."""
    parts = key.split("_")
    if len(parts) == 3 and parts[0] == "chk" and parts[1]:
        return parts[1]
    return key
