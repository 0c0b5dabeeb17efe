"""The entry point, the per-process runtime and the routes: origin, route, then the route's own handler.

`collect` is an ASGI function: it reads the body on the event loop and hands an `Incoming` (exchange.py) to
`handle`, which awaits BigQuery through group commit. Where the rest of the request path lives: `body.py`
reads a body within its limits, `adapters.py` holds the
server-side GTM routes, `ingest.py` validates, stores and keeps each event, `answers.py` the JSON answers.
Every refusal has a machine-readable reason and, except a foreign origin's 403, leaves its scrubbed payload
in `events_rejected`; every acknowledgement means BigQuery has the row. Nothing here builds a client or
reads configuration per request: `runtime()` does that once per process.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from . import __version__, logs, offload
from .adapters import data_client, ga4_collect
from .answers import RateLimited, RequestRefused, answer, error_body
from .body import JSON_TYPES, parse_json, read_text, receive, split_batch
from .cors import cors_headers, origin_allowed, preflight_headers
from .exchange import Incoming, Reply
from .floods import Flusher, RateLimits, RefusalBudget, TokenBuckets, retry_after
from .ingest import ingest, keep_rejected
from .privacy import hashing
from .privacy.gate import Gate
from .privacy.keys import Scrubber
from .privacy.tally import Tally
from .rows import RequestContext, rejected_row
from .schema import REJECTED
from .server_limits import slow_sender
from .settings import Settings, get_settings
from .sink import BigQuerySink, StorageUnavailable

log = logs.log


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    scrubber: Scrubber
    gate: Gate
    sink: BigQuerySink
    routes: dict[str, Route]
    stored: logs.StoredCounter
    limits: RateLimits
    budget: RefusalBudget


@cache
def runtime() -> Runtime:
    settings = get_settings()
    key = settings.pii_hash_key.get_secret_value().encode() if settings.pii_hash_key else None
    scrubber = Scrubber(key, frozenset(settings.pii_allowed_keys), frozenset(settings.url_allowed_params))
    gate = Gate(scrubber)
    # Log lines pass the same detectors, with the settings' own names allowed as keys: the start line shows
    # `client_address_hop=2`, not a value redacted for the word "address" in its name.
    settings_names = frozenset(type(settings).model_fields)
    log_gate = Gate(Scrubber(key, scrubber.allowed_keys | settings_names, scrubber.url_params))
    logs.configure(settings.log_format, settings.project, lambda text: log_gate.text(text, Tally()))
    shown = settings.model_dump(mode="json", exclude={"pii_hash_key"}) | {"pii_hash_key_set": key is not None}
    logs.emit(logging.INFO, f"collector {__version__} started", "start", version=__version__, settings=shown)
    if key is None:
        logs.emit(logging.WARNING, "PII_HASH_KEY is not set: e-mail addresses are dropped instead of hashed", "config")
    routes = dict(ROUTES) | {path.rstrip("/") or "/": DATA_ROUTE for path in settings.data_paths}
    limits = RateLimits(
        TokenBuckets(settings.rate_limit_address_per_second, settings.rate_limit_address_burst),
        TokenBuckets(settings.rate_limit_client_per_second, settings.rate_limit_client_burst),
        TokenBuckets(settings.rate_limit_sgtm_address_per_second, settings.rate_limit_sgtm_address_burst),
    )
    sink = BigQuerySink(settings)
    budget = RefusalBudget(settings.refusal_budget_per_minute)
    flusher = Flusher(budget, lambda rows: store_counts(sink, gate, rows), every=5.0)
    atexit.register(flusher.flush, True)
    return Runtime(settings, scrubber, gate, sink, routes, logs.StoredCounter(), limits, budget)


def store_counts(sink: BigQuerySink, gate: Gate, rows: list[dict[str, Any]]) -> None:
    """The count rows of refusals past the budget, and a log line for each (the log keeps the count too).
    Through the gate like every row: a count row names the path its refusals came to."""
    rows = [gate.seal(REJECTED, row, Tally()) for row in rows]
    for row in rows:
        logs.emit(
            logging.WARNING,
            f"{row['refusals']} refusals past the budget: {row['reason']}",
            "refused_counted",
            reason=row["reason"],
            refusals=row["refusals"],
            rejected_id=row["rejected_id"],
        )
    if sink.insert_until_stored(REJECTED, rows, "rejected_id"):
        raise StorageUnavailable("BigQuery refused the count rows of refusals past the budget")


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    handle: Callable[[Incoming, RequestContext, Runtime], Awaitable[Reply]]
    protocol: str
    preflight_status: int = 204


# --------------------------------------------------------------------------------------------- entry


@functions_framework.aio.http
async def collect(request: Request) -> Response:
    """Cloud Functions entry point (`--target collect`), on functions-framework's ASGI mode.

    Everything runs on the event loop: the body is read within its deadline (a slow sender holds nothing but
    its socket), validation and the gate run once per event, and a request then awaits BigQuery's answer for
    its rows while group commit gathers the rows of concurrent requests into one insertAll call (the call
    itself in a worker thread: sink.py). No request holds a thread while it waits.
    """
    rt = runtime()
    settings = rt.settings
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            body, size = await receive(request.stream(), settings.max_body_bytes)
    except TimeoutError:
        slow_sender("body", settings.body_timeout_seconds, 408)
        detail = "request not received in time; nothing was stored"
        timed_out = {"status": "error", "error": {"reason": "request_timeout", "detail": detail}}
        return respond(answer(408, timed_out, {"Connection": "close"}))
    incoming = Incoming(
        method=request.method,
        path=request.url.path,
        query=request.scope.get("query_string", b""),
        headers=joined_headers(request.scope["headers"]),
        body=body,
        body_bytes=size,
        remote_addr=request.client.host if request.client else None,
    )
    return respond(await handle(incoming))


def joined_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names in lower case; a repeated header's values joined with ", ", as a list header's are (RFC 9110
    §5.3): a second X-Forwarded-For line must not hide the entry the platform appended."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def respond(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type)


async def handle(request: Incoming) -> Reply:
    """Origin, route, then the route's own handler; every outcome an answer (never an exception)."""
    rt = runtime()
    logs.set_trace(logs.trace_from(request.header("traceparent"), request.header("X-Cloud-Trace-Context")))
    ctx = request_context(request, rt.settings.client_address_hop, rt.scrubber.hash_key)
    if ctx.origin and not allowed_origin(ctx.origin, rt.settings.allowed_origins):
        logs.emit(
            logging.WARNING,
            f"origin {ctx.origin} is not allowed",
            "refused",
            reason="origin_not_allowed",
            status=403,
            origin=ctx.origin,
        )
        return answer(403, error_body("origin_not_allowed", f"origin {ctx.origin} is not in ALLOWED_ORIGINS"))
    route = rt.routes.get(route_path(ctx.path, rt.settings.path_prefixes))
    if request.method == "OPTIONS" and route is not None:
        headers = preflight_headers(ctx.origin, ", ".join((*route.methods, "OPTIONS")))
        return Reply(route.preflight_status, headers=headers)
    try:  # the outer handler also catches what recording a refusal raises: a bug there is still JSON
        try:
            if route is None:
                raise RequestRefused(404, "unknown_path", "no endpoint at this path; events go to POST /")
            if ctx.method not in route.methods:
                allow = ", ".join((*route.methods, "OPTIONS"))
                raise RequestRefused(
                    405,
                    "method_not_allowed",
                    f"{ctx.method} is not served here; allowed: {allow}",
                    headers={"Allow": allow},
                )
            if route.protocol in STORING_PROTOCOLS:  # at the door; each further event of a batch pays later
                wait = rt.limits.wait(ctx.address, [], sgtm=route.protocol != "loyjoy")
                if wait:
                    raise RateLimited(wait)
            return await route.handle(request, ctx, rt)
        except RequestRefused as refusal:
            return await answer_refusal(request, ctx, rt, refusal, route.protocol if route else None)
        except RateLimited as limited:
            return answer_rate_limited(ctx, rt, limited, route.protocol if route else None)
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


def client_address(request: Incoming, hop: int) -> str | None:
    """The address the platform saw: `hop` entries from the end of X-Forwarded-For (what Cloud Run and a load
    balancer append; the entries before are whatever the sender wrote), else the socket's peer."""
    forwarded = [part.strip() for part in request.header("X-Forwarded-For", "").split(",") if part.strip()]
    if len(forwarded) >= hop:
        return forwarded[-hop]
    return request.remote_addr


def route_path(path: str, prefixes: tuple[str, ...]) -> str:
    """The path without a site's first-party prefix (`/lj/g/collect` -> `/g/collect`): a reverse proxy on the
    site's own domain forwards paths as they came."""
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return path


def request_context(request: Incoming, address_hop: int, hash_key: bytes | None) -> RequestContext:
    forwarded = request.header("X-Forwarded-For", "") or ""
    signature = request.header(hashing.REPLAY_HEADER)
    path = request.path.rstrip("/") or "/"
    return RequestContext(
        received_at=datetime.now(UTC),
        method=request.method,
        path=path,
        query=request.query.decode("latin-1"),
        content_type=request.header("Content-Type"),
        origin=request.header("Origin"),
        user_agent=request.header("User-Agent", "") or "",
        ip=forwarded.split(",", 1)[0].strip() or request.remote_addr,
        accept_language=request.header("Accept-Language"),
        address=client_address(request, address_hop),
        replayed=hashing.replay_signed(hash_key, signature, request.query, request.body),
    )


# ------------------------------------------------------------------------------------ the snippet's


async def loyjoy_events(request: Incoming, ctx: RequestContext, rt: Runtime) -> Reply:
    """POST / : one event, or {"events": [...], <shared context>}, as JSON or text/plain."""

    def prepare() -> tuple[list[Any], int]:
        text, size = read_text(request, rt.settings, JSON_TYPES)
        return split_batch(parse_json(text, size, rt.settings), size, rt.settings), size

    events, size = await offload.run(request.body_bytes, prepare)
    outcome = await ingest(events, ctx, rt, "loyjoy", size)
    return answer(outcome.status, outcome.body(), cors_headers(ctx.origin))


# ---------------------------------------------------------------------------- refusals, outages


async def answer_refusal(
    request: Incoming, ctx: RequestContext, rt: Runtime, refusal: RequestRefused, protocol: str | None
) -> Reply:
    """Record a refused request with what was read of it (the rest of its body, if nothing was), then answer."""
    payload, raw_bytes, truncated = refusal.payload, refusal.raw_bytes, refusal.truncated
    if payload is None and request.method not in ("GET", "HEAD"):
        data = request.body
        if data:
            truncated = len(data) > rt.settings.max_body_bytes
            payload = data[: rt.settings.max_body_bytes].decode("utf-8", "replace")
            raw_bytes = request.content_length or request.body_bytes

    def scrubbed() -> dict[str, Any]:
        return rejected_row(
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

    row = await offload.run(request.body_bytes + len(request.query), scrubbed)
    try:
        await keep_rejected(rt, [row])
    except StorageUnavailable as exc:
        return unavailable(ctx, rt, exc)
    logs.emit(
        logging.WARNING,
        f"refused {ctx.method} {ctx.path}: {refusal.reason}",
        "refused",
        reason=refusal.reason,
        protocol=protocol,
        status=refusal.status,
        rejected_id=row["rejected_id"],
        bytes=raw_bytes,
    )
    headers = cors_headers(ctx.origin) | refusal.headers
    return answer(refusal.status, error_body(refusal.reason, refusal.detail, row["rejected_id"]), headers)


def answer_rate_limited(ctx: RequestContext, rt: Runtime, limited: RateLimited, protocol: str | None) -> Reply:
    """429, counted per reason and minute like refusals past the budget: a flood leaves one row a minute."""
    rejected_id = rt.budget.count("rate_limited", 429, protocol, ctx.path)
    detail = "too many requests from this client; send again after Retry-After seconds"
    headers = cors_headers(ctx.origin) | {"Retry-After": retry_after(limited.wait)}
    return answer(429, error_body("rate_limited", detail, rejected_id), headers)


def unavailable(ctx: RequestContext, rt: Runtime, exc: StorageUnavailable) -> Reply:
    logs.emit(
        logging.ERROR,
        f"storage unavailable, answering 503: {exc}",
        "storage_unavailable",
        reason="storage_unavailable",
        status=503,
        cause=str(exc)[:500],
    )
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


async def snippet(request: Incoming, ctx: RequestContext, rt: Runtime) -> Reply:
    """The browser snippet, from the collector's own host: one URL for site owners to fill in, and a
    deploy updates every site."""
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Reply(200, snippet_source(), "application/javascript", headers)


async def healthy(request: Incoming, ctx: RequestContext, rt: Runtime) -> Reply:
    """sGTM containers answer their health check here; load balancers and uptime checks expect it."""
    return Reply(200, b"ok", "text/plain", {"Cache-Control": "no-store"})


STORING_PROTOCOLS = frozenset({"loyjoy", "ga4", "data"})
ROUTES: dict[str, Route] = {
    "/": Route(("POST",), loyjoy_events, "loyjoy"),
    "/g/collect": Route(("GET", "POST"), ga4_collect, "ga4"),
    "/healthy": Route(("GET", "HEAD"), healthy, "health"),
    "/loyjoy-collector.js": Route(("GET", "HEAD"), snippet, "snippet"),
}
DATA_ROUTE = Route(("GET", "POST"), data_client, "data", preflight_status=200)  # Stape answers preflights 200
