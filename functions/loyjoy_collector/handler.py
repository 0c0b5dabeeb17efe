"""The request path, top to bottom: origin, route, body, events, BigQuery, answer.

Every refusal has a machine-readable reason and, except a foreign origin's 403, leaves its scrubbed payload
in `events_rejected`; every acknowledgement means BigQuery has the row. Nothing here builds a client or
reads configuration per request: `runtime()` does that once per process.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import flask
from pydantic import ValidationError

from . import __version__, logs
from .cors import cors_headers, origin_allowed, preflight_headers
from .privacy.gate import Gate
from .privacy.keys import Scrubber
from .privacy.tally import Tally
from .protocol import LoyJoyEvent, explain
from .rows import RequestContext, event_row, rejected_row
from .schema import EVENTS, REJECTED
from .settings import Settings, get_settings
from .sgtm import PIXEL, ProtocolError, data_payload, ga4_context, ga4_hits, ga4_to_fields, to_event, unique_event_id
from .sink import BigQuerySink, StorageUnavailable

log = logs.log

JSON_TYPES = frozenset({"", "application/json", "text/plain"})
DATA_TYPES = JSON_TYPES | {"application/x-www-form-urlencoded"}
GA4_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded"})
DRAIN_LIMIT = 32 * 1024 * 1024  # Cloud Run's own request limit: past it the platform answers.


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    scrubber: Scrubber
    gate: Gate
    sink: BigQuerySink
    routes: dict[str, Route]
    stored: logs.StoredCounter


@cache
def runtime() -> Runtime:
    settings = get_settings()
    key = settings.pii_hash_key.get_secret_value().encode() if settings.pii_hash_key else None
    scrubber = Scrubber(key, frozenset(settings.pii_allowed_keys), frozenset(settings.url_allowed_params))
    gate = Gate(scrubber)
    logs.configure(settings.log_format, settings.project, lambda text: gate.text(text, Tally()))
    shown = settings.model_dump(mode="json", exclude={"pii_hash_key"}) | {"pii_hash_key_set": key is not None}
    logs.emit(logging.INFO, f"collector {__version__} started", "start", version=__version__, settings=shown)
    if key is None:
        logs.emit(logging.WARNING, "PII_HASH_KEY is not set: e-mail addresses are dropped instead of hashed", "config")
    routes = dict(ROUTES) | {path.rstrip("/") or "/": DATA_ROUTE for path in settings.data_paths}
    return Runtime(settings, scrubber, gate, BigQuerySink(settings), routes, logs.StoredCounter())


class Refusal(Exception):
    """The whole request is refused; raised anywhere on the path, answered and recorded in one place."""

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


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    handle: Callable[[flask.Request, RequestContext, Runtime], flask.Response]
    protocol: str
    preflight_status: int = 204


@dataclass(frozen=True)
class Refused:
    """An event a protocol could not map: ingest() records it with the reason, like an invalid one."""

    reason: str
    detail: str
    raw: Any


# --------------------------------------------------------------------------------------------- entry


def collect(request: flask.Request) -> flask.Response:
    """Cloud Functions entry point (`--target collect`)."""
    rt = runtime()
    logs.set_trace(logs.trace_from(request.headers.get("traceparent"), request.headers.get("X-Cloud-Trace-Context")))
    ctx = request_context(request)
    if ctx.origin and not allowed_origin(ctx.origin, rt.settings.allowed_origins):
        logs.emit(logging.WARNING, f"origin {ctx.origin} is not allowed", "refused", reason="origin_not_allowed",
                  status=403, origin=ctx.origin)  # fmt: skip
        return answer(403, error_body("origin_not_allowed", f"origin {ctx.origin} is not in ALLOWED_ORIGINS"))
    route = rt.routes.get(route_path(ctx.path, rt.settings.path_prefixes))
    if request.method == "OPTIONS" and route is not None:
        headers = preflight_headers(ctx.origin, ", ".join((*route.methods, "OPTIONS")))
        return flask.Response(status=route.preflight_status, headers=headers)
    try:
        if route is None:
            raise Refusal(404, "unknown_path", "no endpoint at this path; events go to POST /")
        if ctx.method not in route.methods:
            allow = ", ".join((*route.methods, "OPTIONS"))
            raise Refusal(
                405,
                "method_not_allowed",
                f"{ctx.method} is not served here; allowed: {allow}",
                headers={"Allow": allow},
            )
        return route.handle(request, ctx, rt)
    except Refusal as refusal:
        return refuse(request, ctx, rt, refusal, route.protocol if route else None)
    except StorageUnavailable as exc:
        return unavailable(ctx, rt, exc)
    except Exception:  # a bug, not bad input: say so in JSON, and let the sender retry the same events
        log.exception("unexpected error on %s %s", ctx.method, ctx.path)
        body = {"status": "error", "error": {"reason": "internal_error", "detail": "unexpected error; send again"}}
        return answer(500, body, cors_headers(ctx.origin))


def allowed_origin(origin: str, allowed: tuple[str, ...]) -> bool:
    """An Origin that cannot be read as a URL (`http://[::1`) is no allowed one, rather than a 500 before the
    request is even routed."""
    try:
        return origin_allowed(origin, allowed)
    except ValueError:
        return False


def route_path(path: str, prefixes: tuple[str, ...]) -> str:
    """The path without a site's first-party prefix (`/lj/g/collect` -> `/g/collect`): a reverse proxy on the
    site's own domain forwards paths as they came."""
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return path


def request_context(request: flask.Request) -> RequestContext:
    forwarded = request.headers.get("X-Forwarded-For", "")
    path = request.path.rstrip("/") or "/"
    return RequestContext(
        received_at=datetime.now(UTC),
        method=request.method,
        path=path,
        query=request.query_string.decode("latin-1"),
        content_type=request.headers.get("Content-Type"),
        origin=request.headers.get("Origin"),
        user_agent=request.headers.get("User-Agent", ""),
        ip=forwarded.split(",", 1)[0].strip() or request.remote_addr,
        accept_language=request.headers.get("Accept-Language"),
    )


# ------------------------------------------------------------------------------------ the snippet's


def loyjoy_events(request: flask.Request, ctx: RequestContext, rt: Runtime) -> flask.Response:
    """POST / : one event, or {"events": [...], <shared context>}, as JSON or text/plain."""
    text, size = read_text(request, rt.settings, JSON_TYPES)
    payload = parse_json(text, size, rt.settings)
    events = split_batch(payload, size, rt.settings)
    outcome = ingest(events, ctx, rt, "loyjoy", size)
    return answer(outcome.status, outcome.body(), cors_headers(ctx.origin))


def read_text(request: flask.Request, settings: Settings, accepted: frozenset[str]) -> tuple[str, int]:
    """The body as text, within the size limit, in an accepted media type, as valid UTF-8."""
    limit = settings.max_body_bytes
    data = request.stream.read(limit + 1)
    declared = request.content_length
    if len(data) > limit or (declared is not None and declared > limit):
        size = declared if declared is not None else len(data) + drain(request)
        raise Refusal(
            413,
            "body_too_large",
            f"{size} bytes; the limit is {limit}",
            data[:limit].decode("utf-8", "replace"),
            raw_bytes=size,
            truncated=True,
        )
    mimetype = request.mimetype or ""
    if mimetype not in accepted:
        raise Refusal(
            415,
            "unsupported_media_type",
            f"this media type is not accepted; send {' or '.join(sorted(accepted - {''}))}",
            data.decode("utf-8", "replace"),
            raw_bytes=len(data),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(
            400,
            "invalid_utf8",
            f"invalid UTF-8 at byte {exc.start}",
            data.decode("utf-8", "replace"),
            raw_bytes=len(data),
        ) from None
    return text.removeprefix("\ufeff"), len(data)


def drain(request: flask.Request) -> int:
    """Read and discard an oversized body so that the sender sees our 413 rather than a reset."""
    total = 0
    while total < DRAIN_LIMIT and (chunk := request.stream.read(65536)):
        total += len(chunk)
    return total


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str, size: int, settings: Settings) -> Any:
    if not text.strip():
        raise Refusal(400, "empty_body", "the body is empty; send an event as JSON", text, raw_bytes=size)
    try:
        payload = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise Refusal(
            400, "nesting_too_deep", f"more than {settings.max_nesting_depth} levels", text, raw_bytes=size
        ) from None
    except ValueError as exc:
        raise Refusal(400, "invalid_json", str(exc), text, raw_bytes=size) from None
    if nesting_depth(payload, settings.max_nesting_depth) > settings.max_nesting_depth:
        raise Refusal(400, "nesting_too_deep", f"more than {settings.max_nesting_depth} levels", text, raw_bytes=size)
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
            raise Refusal(400, "invalid_shape", "'events' must be an array of events", payload, raw_bytes=size)
    elif isinstance(payload, dict):
        return [payload]
    else:
        raise Refusal(400, "invalid_shape", 'send an event object, or {"events": [...]}', payload, raw_bytes=size)
    if not events:
        raise Refusal(400, "empty_batch", "'events' is empty", payload, raw_bytes=size)
    check_count(len(events), payload, size, settings)
    return [{**shared, **event} if shared and isinstance(event, dict) else event for event in events]


# ----------------------------------------------------------------------------- server-side GTM protocols


def data_client(request: flask.Request, ctx: RequestContext, rt: Runtime) -> flask.Response:
    """/data: Stape's Data Tag. POST JSON (object or array), text/plain or a form; GET pixel with dtcd/dtdc.
    Answered as the Data Client answers: {"timestamp", "unique_event_id"} per event, or a 1x1 GIF."""
    text, size = ("", len(ctx.query)) if ctx.method == "GET" else read_text(request, rt.settings, DATA_TYPES)
    try:
        items, is_array = data_payload(ctx.method, text, request.mimetype or "", request.args.items())
    except ProtocolError as exc:
        raise Refusal(exc.status, exc.reason, exc.detail, text or ctx.query, raw_bytes=size) from None
    if nesting_depth(items, rt.settings.max_nesting_depth + 1) > rt.settings.max_nesting_depth + 1:
        raise Refusal(400, "nesting_too_deep", f"more than {rt.settings.max_nesting_depth} levels", text,
                      raw_bytes=size)  # fmt: skip
    check_count(len(items), items, size, rt.settings)
    ids = [str(item.get("unique_event_id") or "") or unique_event_id() for item in items]
    keep = rt.settings.non_loyjoy_hits == "store"
    mapped = [to_event(item, "data", event_id, keep) for item, event_id in zip(items, ids, strict=True)]
    events = [event for event in mapped if event is not None]
    outcome = ingest(events, ctx, rt, "data", size) if events else Outcome()
    if events and outcome.stored == 0 and len(events) == len(items):
        return answer(outcome.status, outcome.body(), cors_headers(ctx.origin))
    if ctx.method == "GET":
        return flask.Response(PIXEL, status=200, mimetype="image/gif",
                              headers=cors_headers(ctx.origin) | {"Cache-Control": "no-store"})  # fmt: skip
    now = int(time.time())
    answers = [{"timestamp": now, "unique_event_id": event_id} for event_id in ids]
    return answer(200, answers if is_array else answers[0], cors_headers(ctx.origin))


def ga4_collect(request: flask.Request, ctx: RequestContext, rt: Runtime) -> flask.Response:
    """/g/collect: what a GA4 tag with server_container_url sends (one hit per body line). Answered 204."""
    text, size = ("", len(ctx.query)) if ctx.method == "GET" else read_text(request, rt.settings, GA4_TYPES)
    try:
        hits = ga4_hits(ctx.query, text)
    except ProtocolError as exc:
        raise Refusal(exc.status, exc.reason, exc.detail, text or ctx.query, raw_bytes=size) from None
    check_count(len(hits), text or ctx.query, size, rt.settings)
    keep = rt.settings.non_loyjoy_hits == "store"
    events: list[Any] = []
    for hit in hits:
        if isinstance(hit, ProtocolError):
            events.append(Refused(hit.reason, hit.detail, hit.payload))
            continue
        try:
            event = to_event(ga4_to_fields(hit), "ga4", keep_others=keep)
            if event is not None:
                events.append(event | ga4_context(hit))
        except ProtocolError as exc:
            events.append(Refused(exc.reason, exc.detail, hit))
    outcome = ingest(events, ctx, rt, "ga4", size) if events else Outcome()
    if events and outcome.stored == 0 and len(events) == len(hits):
        return answer(outcome.status, outcome.body(), cors_headers(ctx.origin))
    return flask.Response(status=204, headers=cors_headers(ctx.origin))


def check_count(count: int, payload: Any, size: int, settings: Settings) -> None:
    if count > settings.max_events_per_request:
        raise Refusal(413, "too_many_events", f"{count} events; the limit is {settings.max_events_per_request} "
                      "a request", payload, raw_bytes=size)  # fmt: skip


# --------------------------------------------------------------------------------------- the ingest


@dataclass
class Result:
    index: int
    stored: bool
    event_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    rejected_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Outcome:
    results: list[Result] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(result.stored for result in self.results)

    @property
    def status(self) -> int:
        if self.stored == len(self.results):
            return 200
        return 207 if self.stored else 400

    def body(self) -> dict[str, Any]:
        state = {200: "ok", 207: "partial", 400: "rejected"}[self.status]
        body: dict[str, Any] = {
            "status": state,
            "received": len(self.results),
            "stored": self.stored,
            "results": [result.as_json() for result in self.results],
        }
        if state == "rejected" and len(self.results) == 1:  # a lone event: the same shape as any refusal
            only = self.results[0]
            body |= error_body(only.reason or "invalid_event", only.detail or "", only.rejected_id)
        return body


def ingest(events: list[Any], ctx: RequestContext, rt: Runtime, protocol: str, body_bytes: int | None) -> Outcome:
    """Validate each event on its own, store the good ones, keep the refused ones with their reason."""
    outcome = Outcome()
    rows: list[dict[str, Any]] = []
    row_results: list[Result] = []
    row_sources: list[dict[str, Any]] = []  # each row's event as sent, to keep for replay if BigQuery refuses it
    refused: list[tuple[Result, dict[str, Any]]] = []

    def refuse_event(index: int, reason: str, detail: str, raw: Any) -> None:
        result = Result(index, False, reason=reason, detail=detail)
        fields = raw if isinstance(raw, dict) else {}
        # surrogatepass: a JSON "\ud800" escape decodes to a lone surrogate, which has no UTF-8 of its own
        size = (
            body_bytes if len(events) == 1 else len(json.dumps(raw, ensure_ascii=False).encode(errors="surrogatepass"))
        )
        row = rejected_row(
            ctx,
            rt.scrubber,
            reason=reason,
            detail=detail,
            status=400,
            protocol=protocol,
            payload=raw,
            raw_bytes=size,
            event_index=index,
            event_id=fields.get("event_id"),
            event_name=fields.get("event"),
            gate=rt.gate,
        )
        result.rejected_id = row["rejected_id"]
        result.event_id = row["event_id"]
        outcome.results.append(result)
        refused.append((result, row))

    for index, raw in enumerate(events):
        if isinstance(raw, Refused):
            refuse_event(index, raw.reason, raw.detail, raw.raw)
            continue
        if not isinstance(raw, dict):
            refuse_event(index, "invalid_shape", "an event is a JSON object", raw)
            continue
        try:
            event = LoyJoyEvent.model_validate(raw)
        except ValidationError as exc:
            refuse_event(index, *explain(exc), raw)
            continue
        row = event_row(event, raw, ctx, rt.settings, rt.scrubber, protocol, rt.gate)
        result = Result(index, True, event_id=row["event_id"])
        outcome.results.append(result)
        rows.append(row)
        row_results.append(result)
        row_sources.append(raw | {"event_id": row["event_id"]})

    refused_by_bigquery = rt.sink.insert_until_stored(EVENTS, rows, "event_id")
    if refused_by_bigquery:
        logs.emit(logging.ERROR, f"BigQuery refused {len(refused_by_bigquery)} of {len(rows)} rows: "
                  f"{refused_by_bigquery[0].message}", "bigquery_refused", reason="bigquery_refused", protocol=protocol,
                  rows=len(refused_by_bigquery))  # fmt: skip
    for error in refused_by_bigquery:
        result = row_results[error.index]
        result.stored = False
        refuse_event(result.index, "bigquery_refused", error.message, row_sources[error.index])
        outcome.results.remove(result)

    outcome.results.sort(key=lambda result: result.index)
    for _, row in refused:
        row["http_status"] = outcome.status
    keep_rejected(rt, [row for _, row in refused])
    if outcome.stored:
        rt.stored.add(outcome.stored)
    if refused:
        reasons = sorted({result.reason or "" for result, _ in refused})
        ids = [row["rejected_id"] for _, row in refused][:20]
        logs.emit(logging.WARNING, f"refused {len(refused)} of {len(events)} events: {', '.join(reasons)}",
                  "refused", reason=reasons[0], reasons=reasons, protocol=protocol, status=outcome.status,
                  refused=len(refused), events=len(events), rejected_ids=ids)  # fmt: skip
    return outcome


def keep_rejected(rt: Runtime, rows: list[dict[str, Any]]) -> None:
    """Store refusals. A kept payload BigQuery will not take is dropped from its row, so that the refusal
    itself (reason, ids, sizes) is still on record under the rejected_id the sender was given. A refusal that
    cannot be recorded at all is an outage: nothing is answered as final that is not on record."""
    for error in rt.sink.insert_until_stored(REJECTED, rows, "rejected_id"):
        row = rows[error.index]
        logs.emit(logging.ERROR, f"BigQuery refused the record of refusal {row['rejected_id']}: {error.message}",
                  "bigquery_refused", reason=row["reason"], rejected_id=row["rejected_id"])  # fmt: skip
        bare = row | {"raw_payload": None, "raw_truncated": True}
        bare["reason_detail"] = (f"{row['reason_detail'] or ''} [payload not storable: {error.message}]")[:1024]
        if rt.sink.insert_until_stored(REJECTED, [bare], "rejected_id"):
            raise StorageUnavailable(f"BigQuery takes no record of refusal {row['rejected_id']}: {error.message}")


# -------------------------------------------------------------------------------------- the answers


def error_body(reason: str, detail: str, rejected_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "rejected", "error": {"reason": reason, "detail": detail}}
    if rejected_id:
        body["rejected_id"] = rejected_id
    return body


def answer(status: int, body: dict[str, Any] | list[Any], headers: dict[str, str] | None = None) -> flask.Response:
    """A JSON answer that can always be sent: a lone surrogate the sender put in an id it gets echoed (JSON's
    "\\ud800") has no UTF-8, and would turn an answer, after its events were stored, into a 500."""
    response = flask.Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace"),
        status=status,
        mimetype="application/json",
        headers=headers,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def refuse(
    request: flask.Request, ctx: RequestContext, rt: Runtime, refusal: Refusal, protocol: str | None
) -> flask.Response:
    payload, raw_bytes, truncated = refusal.payload, refusal.raw_bytes, refusal.truncated
    if payload is None and request.method not in ("GET", "HEAD"):
        data = request.stream.read(rt.settings.max_body_bytes + 1)
        if data:
            truncated = len(data) > rt.settings.max_body_bytes
            payload = data[: rt.settings.max_body_bytes].decode("utf-8", "replace")
            raw_bytes = request.content_length or len(data)
    row = rejected_row(
        ctx,
        rt.scrubber,
        reason=refusal.reason,
        detail=refusal.detail,
        status=refusal.status,
        protocol=protocol,
        payload=payload,
        raw_bytes=raw_bytes,
        truncated=truncated,
        gate=rt.gate,
    )
    try:
        keep_rejected(rt, [row])
    except StorageUnavailable as exc:
        return unavailable(ctx, rt, exc)
    logs.emit(logging.WARNING, f"refused {ctx.method} {ctx.path}: {refusal.reason}", "refused", reason=refusal.reason,
              protocol=protocol, status=refusal.status, rejected_id=row["rejected_id"], bytes=raw_bytes)  # fmt: skip
    headers = cors_headers(ctx.origin) | refusal.headers
    return answer(refusal.status, error_body(refusal.reason, refusal.detail, row["rejected_id"]), headers)


def unavailable(ctx: RequestContext, rt: Runtime, exc: StorageUnavailable) -> flask.Response:
    logs.emit(logging.ERROR, f"storage unavailable, answering 503: {exc}", "storage_unavailable",
              reason="storage_unavailable", status=503, cause=str(exc)[:500])  # fmt: skip
    headers = cors_headers(ctx.origin) | {"Retry-After": str(rt.settings.retry_after_seconds)}
    return answer(
        503,
        {
            "status": "unavailable",
            "error": {
                "reason": "storage_unavailable",
                "detail": "BigQuery is unavailable; nothing was stored, send again later",
            },
        },
        headers,
    )


@cache
def snippet_source() -> bytes:
    return (Path(__file__).parent / "static" / "loyjoy-collector.min.js").read_bytes()


def snippet(request: flask.Request, ctx: RequestContext, rt: Runtime) -> flask.Response:
    """The browser snippet, from the collector's own host: one URL for site owners to fill in, and a
    deploy updates every site."""
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return flask.Response(snippet_source(), status=200, mimetype="application/javascript", headers=headers)


def healthy(request: flask.Request, ctx: RequestContext, rt: Runtime) -> flask.Response:
    """sGTM containers answer their health check here; load balancers and uptime checks expect it."""
    return flask.Response("ok", status=200, mimetype="text/plain", headers={"Cache-Control": "no-store"})


ROUTES: dict[str, Route] = {
    "/": Route(("POST",), loyjoy_events, "loyjoy"),
    "/g/collect": Route(("GET", "POST"), ga4_collect, "ga4"),
    "/healthy": Route(("GET", "HEAD"), healthy, "health"),
    "/loyjoy-collector.js": Route(("GET", "HEAD"), snippet, "snippet"),
}
DATA_ROUTE = Route(("GET", "POST"), data_client, "data", preflight_status=200)  # Stape answers preflights 200
