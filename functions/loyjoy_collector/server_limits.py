"""The server's own limits: a deadline and a size limit for a request's head, so that a slow or endless sender
costs a socket for a bounded time and bounded memory.

functions-framework's ASGI mode runs uvicorn (in gunicorn's arbiter). On an event loop a slow sender no longer
holds a thread, but uvicorn waits for a request line and headers for as long as they trickle in, and its
httptools parser keeps whatever they add up to. Here the request line and headers must be complete within
`HEADER_TIMEOUT_SECONDS` of their first byte and within 96 KiB (httptools itself takes URLs of up to 64 KiB:
past that, 414); past either, the sender gets a 408 or 431 in the collector's JSON with `Connection: close`,
and the connection is closed. A connection that sends nothing at all is closed after the
same time. The body's deadline (`BODY_TIMEOUT_SECONDS`, from the end of the headers) is the entry point's: it
reads the body before any route runs (handler.collect).

`install()` runs at import of functions/main.py, in the functions-framework process before gunicorn forks its
worker: it gives functions-framework's UvicornApplication this module's worker class, which also pins what
tests and the deployment run alike (httptools, and no rewriting of the client address from X-Forwarded-For:
the collector reads that header itself, counting hops from the end).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from .settings import get_settings

log = logging.getLogger("loyjoy_collector")

HEAD_LIMIT = 96 * 1024  # request line and headers: httptools takes URLs of up to 64 KiB, and 32 KiB of headers
URL_LIMIT = 65535  # httptools' own limit on a URL (its offsets are 16-bit)


def _answer(status: int, reason_phrase: str, reason: str, detail: str) -> bytes:
    body = json.dumps({"status": "error", "error": {"reason": reason, "detail": detail}}).encode()
    return (
        f"HTTP/1.1 {status} {reason_phrase}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Cache-Control: no-store\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


TIMEOUT_ANSWER = _answer(408, "Request Timeout", "request_timeout", "request not received in time; nothing was stored")
TOO_LARGE_ANSWER = _answer(
    431, "Request Header Fields Too Large", "headers_too_large", f"the request's head is over {HEAD_LIMIT} bytes"
)
URL_TOO_LONG_ANSWER = _answer(
    414, "URI Too Long", "url_too_long", f"the URL is over {URL_LIMIT} bytes; send the payload as a POST body"
)
INVALID_ANSWER = _answer(400, "Bad Request", "invalid_http", "the request is not valid HTTP/1.1")


def slow_sender(phase: str, seconds: float, status: int | None) -> None:
    log.warning(
        "slow sender cut off: %s not complete within %g s",
        phase,
        seconds,
        extra={"fields": {"event": "slow_sender", "phase": phase, "status": status}},
    )


def _exit_normally(number: int, frame: Any) -> None:
    sys.exit(0)


class HeadRefused(Exception):
    """Raised from a parser callback: httptools turns it into the HttpParserError uvicorn answers."""


class DeadlineHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request's head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._head_timeout = settings.header_timeout_seconds
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = None  # bytes read while a head was in progress; None between requests
        self._parsed = 0  # bytes of the head the parser has handed over
        self._refusal: bytes | None = None  # what a parser callback refused the request with

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is closed after the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:  # a head in progress since an earlier read: what it grows by
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_LIMIT:
                self._too_large()
                return
        super().data_received(data)  # may begin a request (and arm), or complete its head (and disarm)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._parsed = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        """A head that arrived in one read is only seen here, by the parser's callbacks."""
        self._parsed += size
        if self._parsed > HEAD_LIMIT:
            self._refusal = TOO_LARGE_ANSWER
            raise HeadRefused  # out of the parser: uvicorn answers through send_400_response

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_bytes = None
        if len(self.url) > URL_LIMIT:
            self._refusal = URL_TOO_LONG_ANSWER
            raise HeadRefused
        super().on_headers_complete()

    def _too_large(self) -> None:
        self._refusal = TOO_LARGE_ANSWER
        self.send_400_response("head too large")

    def send_400_response(self, msg: str) -> None:
        """httptools refused the request, or a callback above did: answered in the collector's JSON."""
        self._disarm()
        answer, self._refusal = self._refusal or INVALID_ANSWER, None
        reason = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["reason"]
        log.warning("refused by the HTTP parser: %s", reason, extra={"fields": {"event": "refused", "reason": reason}})
        self._refuse(answer)

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self._head_timeout, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes is None and self.cycle is not None:
            return  # a request is being answered: its body has the entry point's deadline
        if self._head_bytes is None:  # nothing sent: no request to answer
            self.transport.close()
            return
        slow_sender("headers", self._head_timeout, 408)
        self._refuse(TIMEOUT_ANSWER)

    def _refuse(self, answer: bytes) -> None:
        self.transport.write(answer)
        self.transport.close()


class DeadlineWorker(UvicornWorker):
    def init_signals(self) -> None:
        """uvicorn shuts down gracefully on SIGTERM and then raises the signal again, to exit by it: with the
        default handler that ends the process before `atexit` runs, and the counts of refusals past the budget
        (floods.Flusher) are stored there. Here that second SIGTERM (or SIGINT) exits the normal way."""
        super().init_signals()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, _exit_normally)

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",
        "http": DeadlineHttpTools,
        "proxy_headers": False,
        "server_header": False,
    }


def install() -> None:
    """Give functions-framework's ASGI server this module's worker; idempotent, a no-op without gunicorn."""
    try:
        from functions_framework._http import gunicorn as ff_gunicorn
    except ImportError:  # functions-framework without gunicorn (Windows, debug): uvicorn's own server, not ours
        return
    app_class = ff_gunicorn.UvicornApplication
    if getattr(app_class.load_config, "loyjoy_limits", False):
        return
    load_config = app_class.load_config

    def load_config_with_limits(self: Any) -> None:
        load_config(self)
        self.cfg.set("worker_class", DeadlineWorker)

    load_config_with_limits.loyjoy_limits = True  # type: ignore[attr-defined]
    app_class.load_config = load_config_with_limits
