"""The paging contract: `limit` and `cursor` in, the route's array and `next` out (a cursor, or null on the
last page). Every list route of the hub this SDK goes with answers `next`; the older fields (`next_after`,
`next_before`, `next_offset`, `has_more`) are gone from the hub, and an answer without `next` is refused as
`bad_response` rather than guessed at."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from ._http import Call
from .errors import CollabHubError

# Parameters a cursor replaces: it alone says where the next page starts.
_POSITION = ("cursor", "after", "before", "offset")


def items_of(body: Any, name: str) -> List[Dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(name), list):
        raise CollabHubError(
            f"a list answer without its {name!r} array", code="bad_response", retryable=False
        )
    items: List[Dict[str, Any]] = body[name]
    if not all(isinstance(i, dict) for i in items):
        raise CollabHubError(f"{name!r} holds something that is not an object", code="bad_response", retryable=False)
    return items


def next_call(call: Call, body: Dict[str, Any]) -> Optional[Call]:
    """The request for the page after `body` (answered to `call`), or None when it was the last."""
    if "next" not in body:
        raise CollabHubError(
            "a list answer without \"next\" (a hub older than this SDK?)", code="bad_response", retryable=False
        )
    cursor = body["next"]
    if cursor is None:
        return None
    if not isinstance(cursor, str) or not cursor:
        raise CollabHubError("\"next\" must be a cursor string or null", code="bad_response", retryable=False)
    q = {k: v for k, v in call.query.items() if k not in _POSITION}
    q["cursor"] = cursor
    if q == call.query:
        # The same position again would ask for the same page forever.
        raise CollabHubError(
            "the hub answered a page whose next position is its own", code="paging_stalled", retryable=False
        )
    return dataclasses.replace(call, query=q)


def check_page_size(page_size: Optional[int], maximum: int = 1000) -> Optional[int]:
    if page_size is None:
        return None
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= maximum:
        raise ValueError(f"page_size must be an integer from 1 to {maximum}")
    return page_size
