"""The entry point: origin, route, then the route's own handler; refusals and outages answered.

`collect` is an ASGI function: it reads the body on the event loop and hands an `Incoming` (exchange.py) to
`handle`, which awaits BigQuery through group commit. The request path runs downhill from here: `routes.py`
names each path's handler, `body.py` reads a body within its limits, `adapters.py` holds the server-side GTM
routes, `ingest.py` validates, stores and keeps each event, `answers.py` the JSON answers, and `runtime.py`
what the process builds once (no module reaches back here for it). Every refusal has a machine-readable
reason and, except a foreign origin's 403, leaves its scrubbed payload in `events_rejected`; every
acknowledgement means BigQuery has the row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import functions_framework.aio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from . import logs, offload
from .answers import RateLimited, RequestRefused, answer, error_body
from .body import Disconnected, receive_body
from .cors import cors_headers, origin_allowed, preflight_headers
from .exchange import Incoming, Reply, joined_headers
from .floods import retry_after
from .ingest import keep_rejected
from .privacy import hashing
from .routes import STORING_PROTOCOLS, route_path, route_table
from .rows import RequestContext, rejected_row
from .runtime import Runtime, runtime
from .server_limits import slow_sender
from .sink import StorageUnavailable

log = logs.log


# --------------------------------------------------------------------------------------------- entry


@functions_framework.aio.http
async def collect(request: Request) -> Response:
    """Cloud Functions entry point (`--target collect`), as functions-framework's Starlette app calls it.

    Under functions-framework's own server (gunicorn and uvicorn, here and in the deployment) the same requests
    take the bare ASGI path instead (`asgi.py`), without Starlette's layers; both end in `exchange`.
    """
    try:
        reply = await exchange(request.scope, request.receive)
    except Disconnected:
        raise ClientDisconnect from None
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type)


async def exchange(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]]) -> Reply:
    """One request, from its ASGI scope and messages to its answer.

    Everything runs on the event loop: the body is read within its deadline (a slow sender holds nothing but
    its socket), validation and the gate run once per event, and a request then awaits BigQuery's answer for
    its rows while group commit gathers the rows of concurrent requests into one insertAll call. No request
    holds a thread while it waits. Raises Disconnected when the sender left before its body was complete.
    """
    settings = runtime().settings
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            body, size = await receive_body(receive, settings.max_body_bytes)
    except TimeoutError:
        slow_sender("body", settings.body_timeout_seconds, 408)
        detail = "request not received in time; nothing was stored"
        timed_out = {"status": "error", "error": {"reason": "request_timeout", "detail": detail}}
        return answer(408, timed_out, {"Connection": "close"})
    client = scope.get("client")
    incoming = Incoming(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b""),
        headers=joined_headers(scope["headers"]),
        body=body,
        body_bytes=size,
        remote_addr=client[0] if client else None,
    )
    return await handle(incoming)


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
    route = route_table(rt.settings.data_paths).get(route_path(ctx.path, rt.settings.path_prefixes))
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
