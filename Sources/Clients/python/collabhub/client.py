"""The blocking client, `Client`, and what both clients share."""

from __future__ import annotations

import os
import ssl
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import _ops, tokens
from ._http import Answer, Call, RetryHook, RetryPolicy, Transport, headers_for
from ._paging import items_of, next_call
from .errors import CollabHubError
from .models import (
    ActivityEntry,
    ApiKey,
    CreatedSession,
    Delivery,
    Event,
    KeyUsage,
    PostedMessage,
    PublishResult,
    Run,
    Session,
    ShareLink,
    Webhook,
)


class _Base:
    """Configuration both clients share: where the hub is, the credential, timeouts and retries, and the
    HS256 secret tokens are minted with."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Optional[str] = None,
        token: Optional[str] = None,
        jwt_secret: Optional[str] = None,
        jwt_kid: Optional[str] = None,
        jwt_audience: Optional[str] = None,
        jwt_issuer: Optional[str] = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff_base: float = 0.25,
        backoff_cap: float = 20.0,
        max_retry_after: float = 60.0,
        on_retry: Optional[RetryHook] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be a non-negative integer")
        self.base_url = base_url.rstrip("/")
        self._transport = Transport(
            base_url, headers=headers_for(api_key, token, headers), timeout=timeout, ssl_context=ssl_context
        )
        self._retry = RetryPolicy(
            retries=retries, base=backoff_base, cap=backoff_cap, max_retry_after=max_retry_after, on_retry=on_retry
        )
        self._jwt_secret = jwt_secret
        self._jwt_kid = jwt_kid
        self._jwt_audience = jwt_audience
        self._jwt_issuer = jwt_issuer

    @classmethod
    def _env(cls) -> Dict[str, Any]:
        url = os.environ.get("COLLABHUB_URL")
        if not url:
            raise ValueError("COLLABHUB_URL is not set (e.g. http://127.0.0.1:8080)")
        return {
            "base_url": url,
            "api_key": os.environ.get("COLLABHUB_API_KEY") or None,
            "jwt_secret": os.environ.get("COLLABHUB_JWT_SECRET") or None,
        }

    def _delay(self, error: CollabHubError, call: Call, attempt: int) -> Optional[float]:
        wait = self._retry.delay(error, call, attempt)
        if wait is not None and self._retry.on_retry is not None:
            self._retry.on_retry(error, attempt, wait)
        return wait

    # Tokens: minted here, no request made (the same on both clients).

    def _secret(self) -> str:
        if not self._jwt_secret:
            raise ValueError("minting tokens needs jwt_secret (the hub's --jwt-secret)")
        return self._jwt_secret

    def member_token(
        self,
        sub: str,
        session: str,
        *,
        role: str = "viewer",
        ttl: float = 3600,
        name: Optional[str] = None,
        now: Optional[float] = None,
    ) -> str:
        """A member token for `session` (see `collabhub.tokens.member_token`), signed with `jwt_secret`."""
        return tokens.member_token(
            self._secret(),
            sub=sub,
            session=session,
            role=role,
            ttl=ttl,
            name=name,
            kid=self._jwt_kid,
            audience=self._jwt_audience,
            issuer=self._jwt_issuer,
            now=now,
        )

    def watcher_token(
        self, sub: str, channels: Sequence[str], *, ttl: float = 3600, now: Optional[float] = None
    ) -> str:
        """A watcher token for `channels` (see `collabhub.tokens.watcher_token`), signed with `jwt_secret`."""
        return tokens.watcher_token(
            self._secret(),
            sub=sub,
            channels=channels,
            ttl=ttl,
            kid=self._jwt_kid,
            audience=self._jwt_audience,
            issuer=self._jwt_issuer,
            now=now,
        )


class Client(_Base):
    """A blocking client of the hub's HTTP API. Every method makes its request (retrying what is safe to
    retry, with backoff) and returns the hub's answer, or raises `CollabHubError`. List methods return
    iterators that fetch one page at a time as you iterate."""

    @classmethod
    def from_env(cls, **overrides: Any) -> "Client":
        """A client for `COLLABHUB_URL`, with `COLLABHUB_API_KEY` and `COLLABHUB_JWT_SECRET` if set."""
        return cls(**{**cls._env(), **overrides})

    def _send(self, call: Call) -> Answer:
        attempt = 0
        while True:
            try:
                return self._transport.send(call)
            except CollabHubError as error:
                attempt += 1
                wait = self._delay(error, call, attempt)
                if wait is None:
                    raise
                time.sleep(wait)

    def _run(self, op: "_ops.Op[Any]") -> Any:
        return op.read(self._send(op.call))

    def _pages(self, listing: _ops.Listing) -> Iterator[Dict[str, Any]]:
        call: Optional[Call] = listing.call
        while call is not None:
            body = self._send(call).json()
            yield from items_of(body, listing.items)
            call = next_call(call, body)

    # Sessions

    def create_session(
        self,
        title: Optional[str] = None,
        *,
        max_participants: Optional[int] = None,
        guest_policy: Optional[str] = None,
        events: Optional[Mapping[str, Sequence[str]]] = None,
    ) -> CreatedSession:
        """Creates a session; the answer holds its `code` and its `host_key` (shown this once)."""
        result: CreatedSession = self._run(_ops.create_session(title, max_participants, guest_policy, events))
        return result

    def get_session(self, code: str) -> Session:
        result: Session = self._run(_ops.get_session(code))
        return result

    def list_sessions(self, *, page_size: Optional[int] = None) -> Iterator[Session]:
        """Every session, live and ended, a page at a time."""
        return self._pages(_ops.list_sessions(page_size))  # type: ignore[return-value]

    def update_session(
        self,
        code: str,
        *,
        title: Optional[str] = None,
        guest_policy: Optional[str] = None,
        events: Optional[Mapping[str, Sequence[str]]] = None,
        host_key: Optional[str] = None,
    ) -> Session:
        result: Session = self._run(_ops.update_session(code, title, guest_policy, events, host_key))
        return result

    def end_session(
        self, code: str, *, reason: Optional[str] = None, host_key: Optional[str] = None
    ) -> Dict[str, Any]:
        """Ends a session (members are told `reason`); the answer comes before they are (202 `ending`)."""
        result: Dict[str, Any] = self._run(_ops.end_session(code, reason, host_key))
        return result

    def members(self, code: str, *, host_key: Optional[str] = None) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self._run(_ops.members(code, host_key))
        return result

    def remove_member(self, code: str, member_id: str, *, host_key: Optional[str] = None) -> Dict[str, Any]:
        result: Dict[str, Any] = self._run(_ops.remove_member(code, member_id, host_key))
        return result

    # Messages and transcripts

    def post_message(
        self, code: str, text: str, *, idempotency_key: Optional[str] = None, host_key: Optional[str] = None
    ) -> PostedMessage:
        """Posts a system chat message; answered once committed with its `seq`. With the same
        `idempotency_key` again the hub answers the first one's seq and `duplicate: True` (without one, the
        SDK makes one per call, so its own retries never post twice)."""
        result: PostedMessage = self._run(_ops.post_message(code, text, idempotency_key, host_key))
        return result

    def post_event(
        self,
        code: str,
        name: str,
        data: Optional[Mapping[str, Any]] = None,
        *,
        durable: bool = True,
        idempotency_key: Optional[str] = None,
        host_key: Optional[str] = None,
    ) -> PostedMessage:
        """Posts an app event (`name`, `data`) into the session: durable (stored with a seq, once per
        key) or, with `durable=False`, only delivered to who is there."""
        result: PostedMessage = self._run(_ops.post_event(code, name, data, durable, idempotency_key, host_key))
        return result

    # Share links

    def share(self, code: str, *, ttl_s: Optional[int] = None, host_key: Optional[str] = None) -> ShareLink:
        """A read-only playback link of the session (`url`, its `token`, its `id` to revoke it by, and
        `expires_at`): it replays the session and reads its transcript, and joins nothing. `ttl_s`: 60 s to 30
        days (the hub's default: 7 days)."""
        result: ShareLink = self._run(_ops.share(code, ttl_s, host_key))
        return result

    def revoke_share(self, code: str, share_id: str, *, host_key: Optional[str] = None) -> Dict[str, Any]:
        """Revokes a share link by its `id`: refused at once, on every node, for good."""
        result: Dict[str, Any] = self._run(_ops.revoke_share(code, share_id, host_key))
        return result

    def transcript(
        self, code: str, *, after: int = 0, page_size: Optional[int] = None, host_key: Optional[str] = None
    ) -> Iterator[Event]:
        """The session's durable events after seq `after`, in seq order, a page at a time."""
        return self._pages(_ops.transcript(code, after, page_size, host_key))

    # Runs

    def publish_run_events(
        self,
        run_id: str,
        events: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: Optional[str] = None,
        batch_size: int = _ops.MAX_BATCH,
    ) -> PublishResult:
        """Publishes `events` (`{"type": "started", "owner": ...}`, `{"type": "log", "line": ...}`, ...) in
        batches of at most `batch_size`. Idempotent: each event gets an id from `idempotency_key` (made up
        when not given), so retries, and a repeat of the call with the same key, store nothing twice
        (`duplicate: True` in the answer)."""
        key = _ops.check_key(idempotency_key, room=24) if idempotency_key is not None else _ops.new_key()
        return self._publish(run_id, _ops.event_batches(events, key, 0, batch_size))

    def _publish(self, run_id: str, batches: List[Tuple[str, List[Dict[str, Any]]]]) -> PublishResult:
        out: PublishResult = {"run": run_id, "events": []}
        for batch_key, batch in batches:
            result: PublishResult = self._run(_ops.publish_batch(run_id, batch_key, batch))
            out["events"].extend(result["events"])
        return out

    def run(
        self, run_id: str, *, batch_size: int = 100, idempotency_key: Optional[str] = None
    ) -> "RunPublisher":
        """A publisher that collects `run_id`'s events and sends them `batch_size` at a time (and what is
        left on `flush()` or at the end of a `with` block)."""
        return RunPublisher(self, run_id, batch_size=batch_size, idempotency_key=idempotency_key)

    def get_run(self, run_id: str) -> Run:
        result: Run = self._run(_ops.get_run(run_id))
        return result

    def list_runs(
        self, *, owner: Optional[str] = None, status: Optional[str] = None, page_size: Optional[int] = None
    ) -> Iterator[Run]:
        return self._pages(_ops.list_runs(owner, status, page_size))

    def activity(
        self,
        *,
        session: Optional[str] = None,
        actor: Optional[str] = None,
        since: Optional[int] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[ActivityEntry]:
        """The activity log, newest first."""
        return self._pages(_ops.activity(session, actor, since, page_size))

    # Webhooks

    def create_webhook(
        self,
        url: str,
        *,
        events: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout_s: Optional[float] = None,
        max_attempts: Optional[int] = None,
    ) -> Webhook:
        """Registers an endpoint; the answer holds its `secret` (`whsec_...`, shown this once)."""
        result: Webhook = self._run(_ops.create_webhook(url, events, description, headers, timeout_s, max_attempts))
        return result

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: Optional[str] = None,
        events: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout_s: Optional[float] = None,
        max_attempts: Optional[int] = None,
        active: Optional[bool] = None,
    ) -> Webhook:
        op = _ops.update_webhook(webhook_id, url, events, description, headers, timeout_s, max_attempts, active)
        result: Webhook = self._run(op)
        return result

    def get_webhook(self, webhook_id: str) -> Webhook:
        result: Webhook = self._run(_ops.get_webhook(webhook_id))
        return result

    def list_webhooks(self, *, page_size: Optional[int] = None) -> Iterator[Webhook]:
        return self._pages(_ops.list_webhooks(page_size))  # type: ignore[return-value]

    def delete_webhook(self, webhook_id: str) -> None:
        self._run(_ops.delete_webhook(webhook_id))

    def rotate_webhook_secret(self, webhook_id: str) -> Webhook:
        """A new secret (in the answer); the old one keeps signing beside it for a day."""
        result: Webhook = self._run(_ops.rotate_webhook_secret(webhook_id))
        return result

    def test_webhook(self, webhook_id: str) -> Delivery:
        """Queues a `webhook.test` delivery to the endpoint."""
        result: Delivery = self._run(_ops.test_webhook(webhook_id))
        return result

    def webhook_deliveries(
        self, webhook_id: str, *, status: Optional[str] = None, page_size: Optional[int] = None
    ) -> Iterator[Delivery]:
        """The endpoint's deliveries (pending, delivered, failed), newest first."""
        return self._pages(_ops.webhook_deliveries(webhook_id, status, page_size))  # type: ignore[return-value]

    def retry_delivery(self, webhook_id: str, delivery_id: int) -> Delivery:
        result: Delivery = self._run(_ops.retry_delivery(webhook_id, delivery_id))
        return result

    # API keys

    def create_key(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        runs: Optional[Sequence[str]] = None,
        owners: Optional[Sequence[str]] = None,
        per_minute: Optional[int] = None,
        per_hour: Optional[int] = None,
        per_month: Optional[int] = None,
    ) -> ApiKey:
        """Makes an API key; the answer holds the `key` itself (`chk_...`, shown this once)."""
        op = _ops.create_key(name, scopes, runs, owners, per_minute, per_hour, per_month)
        result: ApiKey = self._run(op)
        return result

    def list_keys(self, *, page_size: Optional[int] = None) -> Iterator[ApiKey]:
        return self._pages(_ops.list_keys(page_size))  # type: ignore[return-value]

    def revoke_key(self, key_id: str) -> Dict[str, Any]:
        """Revokes a key (its id, or the whole `chk_...` key); refused from then on."""
        result: Dict[str, Any] = self._run(_ops.revoke_key(_ops.key_id_of(key_id)))
        return result

    def key_usage(self, key_id: str) -> KeyUsage:
        result: KeyUsage = self._run(_ops.key_usage(_ops.key_id_of(key_id)))
        return result


class _Buffer:
    """A run's events waiting to be published, each with its idempotency id from the moment it is added."""

    def __init__(self, run_id: str, batch_size: int, idempotency_key: Optional[str]) -> None:
        if not 1 <= batch_size <= _ops.MAX_BATCH:
            raise ValueError(f"batch_size must be from 1 to {_ops.MAX_BATCH}")
        self.run_id = run_id
        self.batch_size = batch_size
        self.key = _ops.check_key(idempotency_key, room=24) if idempotency_key is not None else _ops.new_key()
        self.pending: List[Dict[str, Any]] = []
        self.count = 0
        self.results: List[PublishResult] = []

    def add(self, event: Dict[str, Any]) -> bool:
        """Buffers `event` (checked, and given its id); True when a batch is full."""
        if event.get("id") is None:
            event["id"] = f"{self.key}.{self.count}"
        _ops.event_batches([event], self.key, self.count, 1)  # checks it now, not at the flush
        self.count += 1
        self.pending.append(event)
        return len(self.pending) >= self.batch_size

    def batches(self) -> List[Tuple[str, List[Dict[str, Any]]]]:
        return _ops.event_batches(self.pending, self.key, self.count - len(self.pending), self.batch_size)

    def sent(self, count: int, result: PublishResult) -> None:
        del self.pending[:count]
        self.results.append(result)


def _event(type_: str, **fields: Any) -> Dict[str, Any]:
    return {"type": type_, **{k: v for k, v in fields.items() if v is not None}}


class RunPublisher:
    """Collects one run's events and publishes them in batches (`Client.run`). Every event has its
    idempotency id from the moment it is added, so a failed `flush()` can simply be called again."""

    def __init__(self, client: Client, run_id: str, *, batch_size: int, idempotency_key: Optional[str]) -> None:
        self._client = client
        self._buffer = _Buffer(run_id, batch_size, idempotency_key)

    @property
    def results(self) -> List[PublishResult]:
        """The answers of the batches sent so far."""
        return list(self._buffer.results)

    def add(self, event: Mapping[str, Any]) -> None:
        if self._buffer.add(dict(event)):
            self.flush()

    def flush(self) -> None:
        """Sends what is buffered (in batches); on an error the rest stays buffered for the next flush."""
        for batch_key, batch in self._buffer.batches():
            result: PublishResult = self._client._run(_ops.publish_batch(self._buffer.run_id, batch_key, batch))
            self._buffer.sent(len(batch), result)

    def __enter__(self) -> "RunPublisher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush()

    def started(self, owner: str, *, name: Optional[str] = None, session: Optional[str] = None) -> None:
        self.add(_event("started", owner=owner, name=name, session=session))

    def step_started(self, step: str) -> None:
        self.add(_event("step_started", step=step))

    def step_completed(self, step: str) -> None:
        self.add(_event("step_completed", step=step))

    def step_failed(self, step: str, error: Optional[str] = None) -> None:
        self.add(_event("step_failed", step=step, error=error))

    def log(self, line: str) -> None:
        self.add(_event("log", line=line))

    def progress(self, percent: float, message: Optional[str] = None) -> None:
        self.add(_event("progress", percent=percent, message=message))

    def paused(self, message: Optional[str] = None) -> None:
        self.add(_event("paused", message=message))

    def resumed(self, message: Optional[str] = None) -> None:
        self.add(_event("resumed", message=message))

    def completed(self, outcome: str = "succeeded") -> None:
        self.add(_event("completed", outcome=outcome))
