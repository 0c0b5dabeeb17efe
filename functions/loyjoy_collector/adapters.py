"""The server-side GTM routes: Stape's Data Client (`/data`) and GA4's `/g/collect`.

Each adapter reads its protocol's request (sgtm.py knows the formats), hands the LoyJoy events to the same
ingest as the snippet's, and answers as the protocol's own server would, so that tags built for it work
unchanged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import offload
from .answers import RequestRefused, answer
from .body import DATA_TYPES, GA4_TYPES, check_copies, check_count, nesting_depth, read_text
from .cors import cors_headers
from .exchange import Incoming, Reply
from .ingest import Outcome, UnmappedEvent, ingest
from .rows import RequestContext
from .sgtm import PIXEL, ProtocolError, data_payload, ga4_context, ga4_hits, ga4_to_fields, to_event, unique_event_id

if TYPE_CHECKING:
    from .runtime import Runtime


async def data_client(request: Incoming, ctx: RequestContext, rt: Runtime) -> Reply:
    """/data: Stape's Data Tag. POST JSON (object or array), text/plain or a form; GET pixel with dtcd/dtdc.
    Answered as the Data Client answers: {"timestamp", "unique_event_id"} per event, or a 1x1 GIF."""

    def prepare() -> tuple[int, list[Any], bool, list[str], list[Any]]:
        text, size = ("", len(ctx.query)) if ctx.method == "GET" else read_text(request, rt.settings, DATA_TYPES)
        try:
            items, is_array = data_payload(ctx.method, text, request.mimetype, request.args())
        except ProtocolError as exc:
            raise RequestRefused(exc.status, exc.reason, exc.detail, text or ctx.query, raw_bytes=size) from None
        depth = rt.settings.max_nesting_depth + 1
        if nesting_depth(items, depth) > depth:
            detail = f"more than {rt.settings.max_nesting_depth} levels"
            raise RequestRefused(400, "nesting_too_deep", detail, text, raw_bytes=size)
        check_count(len(items), items, size, rt.settings)
        check_copies(len(ctx.query) if text else 0, len(items) + 1, text, size, rt.settings)  # the query, in each
        ids = [str(item.get("unique_event_id") or "") or unique_event_id() for item in items]
        keep = rt.settings.non_loyjoy_hits == "store"
        mapped = [to_event(item, "data", event_id, keep) for item, event_id in zip(items, ids, strict=True)]
        return size, items, is_array, ids, [event for event in mapped if event is not None]

    size, items, is_array, ids, events = await offload.run(request.body_bytes + len(ctx.query), prepare)
    outcome = await ingest(events, ctx, rt, "data", size) if events else Outcome()
    if events and outcome.stored == 0 and len(events) == len(items):
        return answer(outcome.status, outcome.body(), cors_headers(ctx.origin))
    if ctx.method == "GET":
        return Reply(200, PIXEL, "image/gif", cors_headers(ctx.origin) | {"Cache-Control": "no-store"})
    now = int(time.time())
    answers = [{"timestamp": now, "unique_event_id": event_id} for event_id in ids]
    return answer(200, answers if is_array else answers[0], cors_headers(ctx.origin))


async def ga4_collect(request: Incoming, ctx: RequestContext, rt: Runtime) -> Reply:
    """/g/collect: what a GA4 tag with server_container_url sends (one hit per body line). Answered 204."""

    def prepare() -> tuple[int, list[Any], list[Any]]:
        text, size = ("", len(ctx.query)) if ctx.method == "GET" else read_text(request, rt.settings, GA4_TYPES)
        try:
            hits = ga4_hits(ctx.query, text)
        except ProtocolError as exc:
            raise RequestRefused(exc.status, exc.reason, exc.detail, text or ctx.query, raw_bytes=size) from None
        check_count(len(hits), text or ctx.query, size, rt.settings)
        check_copies(len(ctx.query) if text else 0, len(hits) + 1, text, size, rt.settings)  # the query, in each
        keep = rt.settings.non_loyjoy_hits == "store"
        events: list[Any] = []
        for hit in hits:
            if isinstance(hit, ProtocolError):
                events.append(UnmappedEvent(hit.reason, hit.detail, hit.payload))
                continue
            try:
                event = to_event(ga4_to_fields(hit), "ga4", keep_others=keep)
                if event is not None:
                    events.append(event | ga4_context(hit))
            except ProtocolError as exc:
                events.append(UnmappedEvent(exc.reason, exc.detail, hit))
        return size, hits, events

    size, hits, events = await offload.run(request.body_bytes + len(ctx.query), prepare)
    outcome = await ingest(events, ctx, rt, "ga4", size) if events else Outcome()
    if events and outcome.stored == 0 and len(events) == len(hits):
        return answer(outcome.status, outcome.body(), cors_headers(ctx.origin))
    return Reply(204, headers=cors_headers(ctx.origin))
