"""The routes: which path answers which methods with which handler, and the snippet's own routes.

`handler.handle` finds a request's route here (a site's first-party prefix already taken off); the server-side
GTM routes are `adapters.py`'s, the events of every protocol end in `ingest.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from . import offload
from .adapters import data_client, ga4_collect
from .answers import answer
from .body import JSON_TYPES, parse_json, read_text, split_batch
from .cors import cors_headers
from .exchange import Incoming, Reply
from .ingest import ingest
from .rows import RequestContext
from .runtime import Runtime


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    handle: Callable[[Incoming, RequestContext, Runtime], Awaitable[Reply]]
    protocol: str
    preflight_status: int = 204


async def loyjoy_events(request: Incoming, ctx: RequestContext, rt: Runtime) -> Reply:
    """POST / : one event, or {"events": [...], <shared context>}, as JSON or text/plain."""

    def prepare() -> tuple[list[Any], int]:
        text, size = read_text(request, rt.settings, JSON_TYPES)
        return split_batch(parse_json(text, size, rt.settings), size, rt.settings), size

    events, size = await offload.run(request.body_bytes, prepare)
    outcome = await ingest(events, ctx, rt, "loyjoy", size)
    return answer(outcome.status, outcome.body(), cors_headers(ctx.origin))


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


def route_path(path: str, prefixes: tuple[str, ...]) -> str:
    """The path without a site's first-party prefix (`/lj/g/collect` -> `/g/collect`): a reverse proxy on the
    site's own domain forwards paths as they came."""
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return path


@cache
def route_table(data_paths: tuple[str, ...]) -> dict[str, Route]:
    """Every route, the Data Client's at each path the operator configured (DATA_PATHS)."""
    return dict(ROUTES) | {path.rstrip("/") or "/": DATA_ROUTE for path in data_paths}
