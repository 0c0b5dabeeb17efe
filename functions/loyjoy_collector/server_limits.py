"""Header and body deadlines in the server, so that a slow sender cannot hold one of the THREADS threads.

gunicorn's gthread worker (what functions-framework runs) gives a connection a thread as soon as its first byte
arrives, and then reads the request line, the headers and (through `wsgi.input`) the body with blocking reads
that never time out: eight connections trickling a byte a second hold eight threads for as long as they like.

Here every read of a request carries a deadline: the request line and headers must be complete within
`HEADER_TIMEOUT_SECONDS` of their first byte, the body within `BODY_TIMEOUT_SECONDS` of the end of the headers.
Each socket read waits at most for what is left (so a silent sender and a trickling one are cut off alike). A
sender that misses a deadline gets `408 request_timeout` with `Connection: close` and the connection is closed;
its request never reaches the collector's code past the body read, so nothing it sent is stored or acknowledged.
A body deadline missed while gunicorn drains a body the collector did not read (after a 413, say) closes the
connection without another answer.

`install()` runs at import of functions/main.py, in the functions-framework process before gunicorn forks its
worker: it wraps functions-framework's GunicornApplication so that its worker class (gthread, or
functions-framework's own gthread subclass) is replaced by a subclass with the deadlines. Nothing else changes:
keep-alive, the 413 path and functions-framework's options stay as they are.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from typing import Any

import gunicorn
from gunicorn import util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

log = logging.getLogger("loyjoy_collector")

DEFAULT_HEADER_TIMEOUT = 5.0
DEFAULT_BODY_TIMEOUT = 10.0


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        value = default
    return value if value > 0 else default


class SlowSender(BaseException):
    """A request missed its header or body deadline.

    A BaseException on purpose: raised from inside `wsgi.input.read()`, it must pass through the collector's and
    Flask's `except Exception` (which would answer 500 and invite a retry of half a body) up to the worker,
    which answers 408 and closes the connection.
    """

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"{phase} not complete within {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


class Deadline:
    """The deadline of the read in progress on one connection; `at` is None between requests."""

    __slots__ = ("at", "phase", "seconds")

    def __init__(self) -> None:
        self.at: float | None = None
        self.phase = ""
        self.seconds = 0.0

    def arm(self, phase: str, seconds: float) -> None:
        self.phase, self.seconds, self.at = phase, seconds, time.monotonic() + seconds

    def disarm(self) -> None:
        self.at = None


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader (request line, headers and body all come through `chunk`), with a deadline."""

    def __init__(self, sock: socket.socket, max_chunk: int, deadline: Deadline) -> None:
        super().__init__(sock, max_chunk)
        self.deadline = deadline

    def chunk(self, size_hint: int | None = None) -> bytes:
        at = self.deadline.at
        if at is None:
            return super().chunk(size_hint)
        remaining = at - time.monotonic()
        if remaining <= 0:
            raise SlowSender(self.deadline.phase, self.deadline.seconds)
        prior = self.sock.gettimeout()  # gunicorn's own drain sets one; the shorter of the two applies
        own = prior is None or remaining < prior
        self.sock.settimeout(remaining if own else prior)
        try:
            return super().chunk(size_hint)
        except TimeoutError:
            if own:
                raise SlowSender(self.deadline.phase, self.deadline.seconds) from None
            raise
        finally:
            self.sock.settimeout(prior)


# How long a closed connection waits for the peer's FIN (reading what it still sends) before it is dropped:
# gunicorn's own figure, and less for a slow sender, which has had its time.
CLOSE_LINGER = 2.0
SLOW_SENDER_LINGER = 1.0


class _Closed:
    """Stands in for a socket the worker thread has closed, so that the main loop's close is a no-op."""

    def setblocking(self, flag: bool) -> None:
        pass

    def settimeout(self, value: float | None) -> None:
        pass

    def shutdown(self, how: int) -> None:
        raise OSError(errno.ENOTCONN, "closed by the worker thread")

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1


ANSWER_BODY = json.dumps(
    {
        "status": "error",
        "error": {"reason": "request_timeout", "detail": "request not received in time; nothing was stored"},
    }
).encode()
ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(ANSWER_BODY)}\r\n\r\n".encode()
    + ANSWER_BODY
)


class DeadlineWorkerMixin:
    """Mixed in before gunicorn's ThreadWorker (or a subclass of it): the deadlines per connection and request."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    body_timeout = DEFAULT_BODY_TIMEOUT

    def handle(self, conn: gthread.TConn) -> Any:
        deadline = getattr(conn, "loyjoy_deadline", None)
        if deadline is None:
            # A new connection: a thread waits for its first byte at most `header_timeout` (gunicorn: 5 s), then
            # the connection waits in the poller without a thread (gunicorn's keepalive, 2 s); from its first byte
            # on, the request line and headers have `header_timeout`.
            waited = min(gthread.DEFAULT_WORKER_DATA_TIMEOUT, self.header_timeout)
            if not conn.initialized and not conn.data_ready and not conn.wait_for_data(waited):
                return gthread._DEFER
            deadline = conn.loyjoy_deadline = Deadline()
            init = conn.init

            def init_with_deadline() -> None:
                init()
                parser = conn.parser
                unreader = getattr(parser, "unreader", None)
                if not conn.is_http2 and type(unreader) is SocketUnreader:
                    replacement = DeadlineUnreader(unreader.sock, unreader.mxchunk, deadline)
                    replacement.buf = unreader.buf
                    parser.unreader = replacement

            conn.init = init_with_deadline
        deadline.arm("headers", self.header_timeout)
        linger = CLOSE_LINGER
        try:
            result = super().handle(conn)  # type: ignore[misc]
        except SlowSender as exc:
            self._too_slow(conn, exc, answer=exc.phase != "drain")
            result, linger = False, SLOW_SENDER_LINGER
        finally:
            deadline.disarm()
        if result is not gthread._DEFER and not result:
            # gunicorn would close it on its main loop, lingering up to 2 s for the peer's FIN: a peer that never
            # closes (a trickling sender keeps sending) would stall accepting and every kept-alive connection
            # for that long, one connection after the other. Here the lingering costs this thread only.
            util.close_graceful(conn.sock, timeout=linger)
            conn.sock = _Closed()
        return result

    def handle_request(self, req: Any, conn: gthread.TConn) -> Any:
        deadline: Deadline | None = getattr(conn, "loyjoy_deadline", None)
        if deadline is None:
            return super().handle_request(req, conn)  # type: ignore[misc]
        deadline.arm("body", self.body_timeout)
        try:
            keep = super().handle_request(req, conn)  # type: ignore[misc]
        except SlowSender:
            raise  # the body was not complete: the collector has not answered, the 408 is still to come
        # Answered; what is left of the body is gunicorn's drain, under the same deadline but answered already.
        deadline.phase = "drain"
        return keep

    def _too_slow(self, conn: gthread.TConn, exc: SlowSender, *, answer: bool) -> None:
        log.warning(
            "slow sender cut off: %s",
            exc,
            extra={"fields": {"event": "slow_sender", "phase": exc.phase, "status": 408 if answer else None}},
        )
        if answer:
            try:
                conn.sock.settimeout(1.0)
                conn.sock.sendall(ANSWER)
            except OSError:
                pass


_workers: dict[type, type] = {}


def deadline_worker(base: type) -> type:
    """The subclass of a gthread worker class with the deadlines (one per base class)."""
    if base not in _workers:
        _workers[base] = type(
            "Deadline" + base.__name__,
            (DeadlineWorkerMixin, base),
            {
                "__module__": __name__,
                "header_timeout": _seconds("HEADER_TIMEOUT_SECONDS", DEFAULT_HEADER_TIMEOUT),
                "body_timeout": _seconds("BODY_TIMEOUT_SECONDS", DEFAULT_BODY_TIMEOUT),
            },
        )
    return _workers[base]


def supported() -> bool:
    """Whether this gunicorn's gthread worker has what the deadlines rely on (gunicorn 27's, where `handle`
    returns a bool or `_DEFER` and the first byte is awaited in `TConn.wait_for_data`)."""
    return (
        hasattr(gthread, "_DEFER")
        and hasattr(gthread, "DEFAULT_WORKER_DATA_TIMEOUT")
        and hasattr(gthread.TConn, "wait_for_data")
        and hasattr(gthread.ThreadWorker, "handle_request")
        and hasattr(util, "close_graceful")
    )


def install() -> None:
    """Give functions-framework's gunicorn a worker with the deadlines; idempotent, a no-op without gunicorn."""
    try:
        from functions_framework._http import gunicorn as ff_gunicorn
    except ImportError:  # functions-framework without gunicorn (Windows, debug): Flask's server, not ours
        return
    app_class = ff_gunicorn.GunicornApplication
    if getattr(app_class.load_config, "loyjoy_deadlines", False):
        return
    if not supported():
        log.warning("no header and body deadlines: gunicorn %s's gthread worker is not the one they were built on "
                    "(27: TConn.wait_for_data, _DEFER)", getattr(gunicorn, "__version__", "?"))  # fmt: skip
        return
    load_config = app_class.load_config

    def load_config_with_deadlines(self: Any) -> None:
        load_config(self)
        chosen = self.cfg.worker_class  # resolved: gthread when THREADS > 1, else the sync worker
        if isinstance(chosen, type) and issubclass(chosen, gthread.ThreadWorker):
            self.cfg.set("worker_class", deadline_worker(chosen))
        else:
            log.warning("no header and body deadlines: worker %s is not gthread (set THREADS above 1)", chosen)

    load_config_with_deadlines.loyjoy_deadlines = True  # type: ignore[attr-defined]
    app_class.load_config = load_config_with_deadlines
