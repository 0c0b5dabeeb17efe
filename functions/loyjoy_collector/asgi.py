"""The collector as a bare ASGI application, under the server functions-framework runs for `--target collect`.

functions-framework wraps the target in a Starlette app: two middlewares of its own (an execution id for every
request, a plain-text 500 for an exception), Starlette's two, its router, a Request object, a wrapper that sets
a context variable, and a Response object to answer. For an answer the collector has already made (bytes,
status, headers) that is about a third of the CPU of an ASGI hello-world, on every request. Here the server
hands each HTTP request straight to `handler.exchange` and sends its `Reply` as two ASGI messages; lifespan
events, and everything when the operator asks functions-framework for execution ids in logs
(`LOG_EXECUTION_ID`), still go to functions-framework's app, which keeps calling `handler.collect`.

What the Starlette app did that callers could see is kept: `/robots.txt` and `/favicon.ico` answer 404 without
reaching the collector (nothing recorded), an exception is a 500 (in the collector's JSON), and the answer's
headers are Starlette's (Content-Length, and a charset for text).

`install()` runs at import of functions/main.py, before gunicorn forks its worker, like `server_limits.install`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .body import Disconnected
from .exchange import Reply
from .handler import exchange

log = logging.getLogger("loyjoy_collector")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

NOT_FOUND = Reply(404, b"Not Found", "text/plain")  # functions-framework's own answer for these two
FRAMEWORK_404 = frozenset({"/robots.txt", "/favicon.ico"})
INTERNAL_ERROR = (
    b'{"status":"error","error":{"reason":"internal_error","detail":"unexpected error; send again"}}',
    "application/json",
)


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """One HTTP request, answered by the collector."""
    started = False

    async def reply_with(reply: Reply) -> None:
        nonlocal started
        started = True
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers(reply)})
        await send({"type": "http.response.body", "body": reply.body})

    try:
        if scope["path"] in FRAMEWORK_404 and scope["method"] in ("GET", "HEAD"):
            await reply_with(NOT_FOUND)
            return
        await reply_with(await exchange(scope, receive))
    except Disconnected:
        return  # the sender left before its body was complete
    except Exception:
        log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
        if not started:
            await reply_with(Reply(500, *INTERNAL_ERROR))


def raw_headers(reply: Reply) -> list[tuple[bytes, bytes]]:
    """The answer's headers as Starlette's Response writes them: names in lower case, a Content-Length unless
    the status has no body, a Content-Type with a charset for text."""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items()]
    named = {name for name, _ in headers}
    if b"content-length" not in named and reply.status >= 200 and reply.status not in (204, 304):
        headers.append((b"content-length", str(len(reply.body)).encode()))
    if reply.media_type and b"content-type" not in named:
        media_type = reply.media_type
        if media_type.startswith("text/") and "charset=" not in media_type.lower():
            media_type += "; charset=utf-8"
        headers.append((b"content-type", media_type.encode("latin-1")))
    return headers


class Lean:
    """HTTP to `application`; lifespan (and anything else) to functions-framework's app."""

    def __init__(self, framework_app: ASGIApp) -> None:
        self.framework_app = framework_app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await application(scope, receive, send)
        else:
            await self.framework_app(scope, receive, send)


def install() -> None:
    """Serve HTTP requests through `application` in functions-framework's gunicorn server; idempotent, a no-op
    without gunicorn (functions-framework then serves its own app, which calls `handler.collect`) and when
    execution ids are to be logged (functions-framework adds them in its own wrappers)."""
    try:
        import functions_framework
        from functions_framework._http import gunicorn as ff_gunicorn
    except ImportError:
        return
    if functions_framework._enable_execution_id_logging():
        return
    app_class = ff_gunicorn.UvicornApplication
    if getattr(app_class.load, "loyjoy_lean", False):
        return
    load = app_class.load

    def load_lean(self: Any) -> Any:
        return Lean(load(self))

    load_lean.loyjoy_lean = True  # type: ignore[attr-defined]
    app_class.load = load_lean
