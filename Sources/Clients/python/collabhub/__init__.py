"""CollabHub's Python server SDK (standard library only).

    from collabhub import Client
    hub = Client("http://127.0.0.1:8080", api_key="...", jwt_secret="...")
    session = hub.create_session("Bug bash")
    hub.post_message(session["code"], "Deploy 41 started")
    for event in hub.transcript(session["code"]):
        print(event["seq"], event["type"])

`AsyncClient` has the same methods as coroutines (and async iterators). Errors are `CollabHubError`.
"""

from ._version import __version__
from .aio import AsyncClient, AsyncRunPublisher
from .client import Client, RunPublisher
from .errors import (
    AuthenticationError,
    BadRequestError,
    CollabHubError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TokenExpiredError,
    WebhookVerificationError,
)
from .tokens import member_token, watcher_token
from .webhooks import WebhookVerifier, verify_webhook

# The hub version this SDK is made for: SDK x.y.z goes with hub x.y.*.
HUB_VERSION = __version__

__all__ = [
    "AsyncClient",
    "AsyncRunPublisher",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "CollabHubError",
    "ConflictError",
    "ConnectionFailed",
    "HUB_VERSION",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RunPublisher",
    "ServerError",
    "TokenExpiredError",
    "WebhookVerificationError",
    "WebhookVerifier",
    "__version__",
    "member_token",
    "verify_webhook",
    "watcher_token",
]
