"""What every route answers with: JSON bodies, and the one exception that refuses a whole request.

Kept apart from the routes so that the body reader, the ingest and the protocol adapters can all refuse a
request or answer one without importing the entry point that imports them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from .exchange import Reply


class RateLimited(Exception):
    """A sender past its rate: answered 429 with Retry-After, counted (never stored whole: that is the point)."""

    def __init__(self, wait: float) -> None:
        super().__init__("rate_limited")
        self.wait = wait


class RequestRefused(Exception):
    """The whole request is refused; raised anywhere on the path, recorded and answered in one place
    (`handler.answer_refusal`)."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        payload: Any = None,
        *,
        raw_bytes: int | None = None,
        truncated: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail, self.payload = status, reason, detail, payload
        self.raw_bytes, self.truncated, self.headers = raw_bytes, truncated, headers or {}


def error_body(reason: str, detail: str, rejected_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "rejected", "error": {"reason": reason, "detail": detail}}
    if rejected_id:
        body["rejected_id"] = rejected_id
    return body


def answer(status: int, body: dict[str, Any] | list[Any], headers: dict[str, str] | None = None) -> Reply:
    """A JSON answer that can always be sent: a lone surrogate the sender put in an id it gets echoed (JSON's
    "\\ud800") has no UTF-8, and would turn an answer, after its events were stored, into a 500."""
    try:
        data = orjson.dumps(body)
    except TypeError:  # orjson refuses lone surrogates: the standard encoder, replacing them
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return Reply(status, data, "application/json", (headers or {}) | NO_STORE)


NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
