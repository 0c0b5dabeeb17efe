"""Reading a request body within its limits: size, media type, UTF-8, JSON, nesting and event count.

Every limit refuses the whole request (RequestRefused) with what was read of it, so that the refusal is
recorded with its payload; a body past the size limit is drained, so that the sender sees the 413 rather
than a reset connection.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from .answers import RequestRefused
from .exchange import Incoming
from .settings import Settings

JSON_TYPES = frozenset({"", "application/json", "text/plain"})
DATA_TYPES = JSON_TYPES | {"application/x-www-form-urlencoded"}
GA4_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded"})
DRAIN_LIMIT = 32 * 1024 * 1024  # Cloud Run's own request limit: past it the platform answers.


def read_text(request: Incoming, settings: Settings, accepted: frozenset[str]) -> tuple[str, int]:
    """The body as text, within the size limit, in an accepted media type, as valid UTF-8."""
    limit = settings.max_body_bytes
    data = request.body
    declared = request.content_length
    if len(data) > limit or (declared is not None and declared > limit):
        size = declared if declared is not None else request.body_bytes
        raise RequestRefused(
            413,
            "body_too_large",
            f"{size} bytes; the limit is {limit}",
            data[:limit].decode("utf-8", "replace"),
            raw_bytes=size,
            truncated=True,
        )
    if request.mimetype not in accepted:
        types = " or ".join(sorted(accepted - {""}))
        raise refused_bytes(415, "unsupported_media_type", f"this media type is not accepted; send {types}", data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refused_bytes(400, "invalid_utf8", f"invalid UTF-8 at byte {exc.start}", data) from None
    return text.removeprefix("\ufeff"), len(data)


def refused_bytes(status: int, reason: str, detail: str, data: bytes) -> RequestRefused:
    """A whole body refused before it is text: kept as far as it decodes, its size as received."""
    return RequestRefused(status, reason, detail, data.decode("utf-8", "replace"), raw_bytes=len(data))


class Disconnected(Exception):
    """The sender closed its connection before its body was complete: nothing to answer."""


async def receive_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> tuple[bytes, int]:
    """The body's first `limit + 1` bytes, from the ASGI server's messages, and how many arrived in all. Past the
    limit the rest is read and discarded (up to Cloud Run's own limit), so that the sender sees the 413 rather
    than a reset connection; memory stays bounded by the limit whatever was sent."""
    kept = bytearray()
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected
        chunk = message.get("body", b"")
        total += len(chunk)
        if len(kept) <= limit:
            kept += chunk[: limit + 1 - len(kept)]
        if total >= DRAIN_LIMIT or not message.get("more_body", False):
            return bytes(kept), total


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str, size: int, settings: Settings) -> Any:
    if not text.strip():
        raise RequestRefused(400, "empty_body", "the body is empty; send an event as JSON", text, raw_bytes=size)
    try:
        payload = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise RequestRefused(
            400, "nesting_too_deep", f"more than {settings.max_nesting_depth} levels", text, raw_bytes=size
        ) from None
    except ValueError as exc:
        raise RequestRefused(400, "invalid_json", str(exc), text, raw_bytes=size) from None
    if nesting_depth(payload, settings.max_nesting_depth) > settings.max_nesting_depth:
        raise RequestRefused(
            400, "nesting_too_deep", f"more than {settings.max_nesting_depth} levels", text, raw_bytes=size
        )
    return payload


def nesting_depth(value: Any, limit: int) -> int:
    """Depth of a JSON value, without recursion, giving up just past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def split_batch(payload: Any, size: int, settings: Settings) -> list[Any]:
    """A batch's other top-level fields are context shared by its events (an event's own fields win)."""
    if isinstance(payload, list):
        events, shared = payload, {}
    elif isinstance(payload, dict) and "events" in payload:
        events = payload["events"]
        shared = {key: value for key, value in payload.items() if key != "events"}
        if not isinstance(events, list):
            raise RequestRefused(400, "invalid_shape", "'events' must be an array of events", payload, raw_bytes=size)
    elif isinstance(payload, dict):
        return [payload]
    else:
        raise RequestRefused(
            400, "invalid_shape", 'send an event object, or {"events": [...]}', payload, raw_bytes=size
        )
    if not events:
        raise RequestRefused(400, "empty_batch", "'events' is empty", payload, raw_bytes=size)
    check_count(len(events), payload, size, settings)
    if shared:
        shared_bytes = len(json.dumps(shared, ensure_ascii=False).encode(errors="surrogatepass"))
        check_copies(shared_bytes, sum(isinstance(event, dict) for event in events), payload, size, settings)
    return [{**shared, **event} if shared and isinstance(event, dict) else event for event in events]


def check_count(count: int, payload: Any, size: int, settings: Settings) -> None:
    if count > settings.max_events_per_request:
        raise RequestRefused(
            413,
            "too_many_events",
            f"{count} events; the limit is {settings.max_events_per_request} a request",
            payload,
            raw_bytes=size,
        )


def check_copies(shared_bytes: int, copies: int, payload: Any, size: int, settings: Settings) -> None:
    """Shared context is copied into every event it is shared with: each copy counts against the body limit,
    so that what a request stores stays bounded by what it sent (a 200 KB shared label and 100 tiny events
    would otherwise store 20 MB)."""
    stored = size + shared_bytes * max(0, copies - 1)
    if stored > settings.max_body_bytes:
        raise RequestRefused(
            413,
            "shared_fields_too_large",
            f"{shared_bytes} bytes of shared fields copied into {copies} events make {stored} bytes; the limit is "
            f"{settings.max_body_bytes}: send the fields with fewer events, or with each event",
            payload,
            raw_bytes=size,
        )
