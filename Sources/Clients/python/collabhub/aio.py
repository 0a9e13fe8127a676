"""`AsyncClient`: the same methods as `Client`, as coroutines, and list methods as async iterators.

Each HTTP exchange runs in a worker thread (`asyncio.to_thread`) through the very transport `Client` uses;
waits between retries are `asyncio.sleep`, so they hold no thread. Why not HTTP over asyncio streams: the
standard library has no asyncio HTTP client, and one of our own would be a second HTTP/1.1 parser
(chunked transfer encoding, which transcripts use, included) to get right and keep right, for a server SDK
whose calls are few and short. A cancelled call stops waiting at once; a request already sent finishes in
its thread (the hub deduplicates the ones the SDK retries)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Tuple

from . import _ops
from ._http import Answer, Call
from ._paging import items_of, next_call
from .client import _Base, _Buffer, _event
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


class AsyncClient(_Base):
    """The asyncio client: `await client.create_session(...)`, `async for e in client.transcript(code)`."""

    @classmethod
    def from_env(cls, **overrides: Any) -> "AsyncClient":
        """A client for `COLLABHUB_URL`, with `COLLABHUB_API_KEY` and `COLLABHUB_JWT_SECRET` if set."""
        return cls(**{**cls._env(), **overrides})

    async def _send(self, call: Call) -> Answer:
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self._transport.send, call)
            except CollabHubError as error:
                attempt += 1
                wait = self._delay(error, call, attempt)
                if wait is None:
                    raise
                await asyncio.sleep(wait)

    async def _run(self, op: "_ops.Op[Any]") -> Any:
        return op.read(await self._send(op.call))

    async def _pages(self, listing: _ops.Listing) -> AsyncIterator[Dict[str, Any]]:
        call: Optional[Call] = listing.call
        while call is not None:
            body = (await self._send(call)).json()
            for item in items_of(body, listing.items):
                yield item
            call = next_call(call, body)

    # Sessions

    async def create_session(
        self,
        title: Optional[str] = None,
        *,
        max_participants: Optional[int] = None,
        guest_policy: Optional[str] = None,
        events: Optional[Mapping[str, Sequence[str]]] = None,
    ) -> CreatedSession:
        result: CreatedSession = await self._run(_ops.create_session(title, max_participants, guest_policy, events))
        return result

    async def get_session(self, code: str) -> Session:
        result: Session = await self._run(_ops.get_session(code))
        return result

    def list_sessions(self, *, page_size: Optional[int] = None) -> AsyncIterator[Session]:
        return self._pages(_ops.list_sessions(page_size))  # type: ignore[return-value]

    async def update_session(
        self,
        code: str,
        *,
        title: Optional[str] = None,
        guest_policy: Optional[str] = None,
        events: Optional[Mapping[str, Sequence[str]]] = None,
        host_key: Optional[str] = None,
    ) -> Session:
        result: Session = await self._run(_ops.update_session(code, title, guest_policy, events, host_key))
        return result

    async def end_session(
        self, code: str, *, reason: Optional[str] = None, host_key: Optional[str] = None
    ) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._run(_ops.end_session(code, reason, host_key))
        return result

    async def members(self, code: str, *, host_key: Optional[str] = None) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._run(_ops.members(code, host_key))
        return result

    async def remove_member(self, code: str, member_id: str, *, host_key: Optional[str] = None) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._run(_ops.remove_member(code, member_id, host_key))
        return result

    # Messages and transcripts

    async def post_message(
        self, code: str, text: str, *, idempotency_key: Optional[str] = None, host_key: Optional[str] = None
    ) -> PostedMessage:
        result: PostedMessage = await self._run(_ops.post_message(code, text, idempotency_key, host_key))
        return result

    async def post_event(
        self,
        code: str,
        name: str,
        data: Optional[Mapping[str, Any]] = None,
        *,
        durable: bool = True,
        idempotency_key: Optional[str] = None,
        host_key: Optional[str] = None,
    ) -> PostedMessage:
        op = _ops.post_event(code, name, data, durable, idempotency_key, host_key)
        result: PostedMessage = await self._run(op)
        return result

    # Share links

    async def share(self, code: str, *, ttl_s: Optional[int] = None, host_key: Optional[str] = None) -> ShareLink:
        result: ShareLink = await self._run(_ops.share(code, ttl_s, host_key))
        return result

    async def revoke_share(self, code: str, share_id: str, *, host_key: Optional[str] = None) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._run(_ops.revoke_share(code, share_id, host_key))
        return result

    def transcript(
        self, code: str, *, after: int = 0, page_size: Optional[int] = None, host_key: Optional[str] = None
    ) -> AsyncIterator[Event]:
        return self._pages(_ops.transcript(code, after, page_size, host_key))

    # Runs

    async def publish_run_events(
        self,
        run_id: str,
        events: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: Optional[str] = None,
        batch_size: int = _ops.MAX_BATCH,
    ) -> PublishResult:
        key = _ops.check_key(idempotency_key, room=24) if idempotency_key is not None else _ops.new_key()
        out: PublishResult = {"run": run_id, "events": []}
        for batch_key, batch in _ops.event_batches(events, key, 0, batch_size):
            result: PublishResult = await self._run(_ops.publish_batch(run_id, batch_key, batch))
            out["events"].extend(result["events"])
        return out

    def run(
        self, run_id: str, *, batch_size: int = 100, idempotency_key: Optional[str] = None
    ) -> "AsyncRunPublisher":
        return AsyncRunPublisher(self, run_id, batch_size=batch_size, idempotency_key=idempotency_key)

    async def get_run(self, run_id: str) -> Run:
        result: Run = await self._run(_ops.get_run(run_id))
        return result

    def list_runs(
        self, *, owner: Optional[str] = None, status: Optional[str] = None, page_size: Optional[int] = None
    ) -> AsyncIterator[Run]:
        return self._pages(_ops.list_runs(owner, status, page_size))

    def activity(
        self,
        *,
        session: Optional[str] = None,
        actor: Optional[str] = None,
        since: Optional[int] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[ActivityEntry]:
        return self._pages(_ops.activity(session, actor, since, page_size))

    # Webhooks

    async def create_webhook(
        self,
        url: str,
        *,
        events: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout_s: Optional[float] = None,
        max_attempts: Optional[int] = None,
    ) -> Webhook:
        op = _ops.create_webhook(url, events, description, headers, timeout_s, max_attempts)
        result: Webhook = await self._run(op)
        return result

    async def update_webhook(
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
        result: Webhook = await self._run(op)
        return result

    async def get_webhook(self, webhook_id: str) -> Webhook:
        result: Webhook = await self._run(_ops.get_webhook(webhook_id))
        return result

    def list_webhooks(self, *, page_size: Optional[int] = None) -> AsyncIterator[Webhook]:
        return self._pages(_ops.list_webhooks(page_size))  # type: ignore[return-value]

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._run(_ops.delete_webhook(webhook_id))

    async def rotate_webhook_secret(self, webhook_id: str) -> Webhook:
        result: Webhook = await self._run(_ops.rotate_webhook_secret(webhook_id))
        return result

    async def test_webhook(self, webhook_id: str) -> Delivery:
        result: Delivery = await self._run(_ops.test_webhook(webhook_id))
        return result

    def webhook_deliveries(
        self, webhook_id: str, *, status: Optional[str] = None, page_size: Optional[int] = None
    ) -> AsyncIterator[Delivery]:
        return self._pages(_ops.webhook_deliveries(webhook_id, status, page_size))  # type: ignore[return-value]

    async def retry_delivery(self, webhook_id: str, delivery_id: int) -> Delivery:
        result: Delivery = await self._run(_ops.retry_delivery(webhook_id, delivery_id))
        return result

    # API keys

    async def create_key(
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
        op = _ops.create_key(name, scopes, runs, owners, per_minute, per_hour, per_month)
        result: ApiKey = await self._run(op)
        return result

    def list_keys(self, *, page_size: Optional[int] = None) -> AsyncIterator[ApiKey]:
        return self._pages(_ops.list_keys(page_size))  # type: ignore[return-value]

    async def revoke_key(self, key_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._run(_ops.revoke_key(_ops.key_id_of(key_id)))
        return result

    async def key_usage(self, key_id: str) -> KeyUsage:
        result: KeyUsage = await self._run(_ops.key_usage(_ops.key_id_of(key_id)))
        return result


class AsyncRunPublisher:
    """`RunPublisher` for `AsyncClient`: `await pub.log("...")`, `async with client.run("r1") as pub:`."""

    def __init__(
        self, client: AsyncClient, run_id: str, *, batch_size: int, idempotency_key: Optional[str]
    ) -> None:
        self._client = client
        self._buffer = _Buffer(run_id, batch_size, idempotency_key)

    @property
    def results(self) -> List[PublishResult]:
        return list(self._buffer.results)

    async def add(self, event: Mapping[str, Any]) -> None:
        if self._buffer.add(dict(event)):
            await self.flush()

    async def flush(self) -> None:
        batches: List[Tuple[str, List[Dict[str, Any]]]] = self._buffer.batches()
        for batch_key, batch in batches:
            op = _ops.publish_batch(self._buffer.run_id, batch_key, batch)
            result: PublishResult = await self._client._run(op)
            self._buffer.sent(len(batch), result)

    async def __aenter__(self) -> "AsyncRunPublisher":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.flush()

    async def started(self, owner: str, *, name: Optional[str] = None, session: Optional[str] = None) -> None:
        await self.add(_event("started", owner=owner, name=name, session=session))

    async def step_started(self, step: str) -> None:
        await self.add(_event("step_started", step=step))

    async def step_completed(self, step: str) -> None:
        await self.add(_event("step_completed", step=step))

    async def step_failed(self, step: str, error: Optional[str] = None) -> None:
        await self.add(_event("step_failed", step=step, error=error))

    async def log(self, line: str) -> None:
        await self.add(_event("log", line=line))

    async def progress(self, percent: float, message: Optional[str] = None) -> None:
        await self.add(_event("progress", percent=percent, message=message))

    async def paused(self, message: Optional[str] = None) -> None:
        await self.add(_event("paused", message=message))

    async def resumed(self, message: Optional[str] = None) -> None:
        await self.add(_event("resumed", message=message))

    async def completed(self, outcome: str = "succeeded") -> None:
        await self.add(_event("completed", outcome=outcome))
