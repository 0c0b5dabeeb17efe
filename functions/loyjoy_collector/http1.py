"""HTTP/1.1 on the event loop, for the one call the request path makes to BigQuery (insertAll).

A call through urllib3 costs about 0.4 ms of CPU (http.client reads an answer's headers with the `email`
package, and each call builds a request's worth of objects), plus a worker thread's hand-over of the interpreter
both ways; aiohttp's ClientSession, on the event loop, costs three to five times this client and adds a fifth of
a second of imports to a cold start (bench/http_client.py). So this module keeps the transport: asyncio streams,
a small pool of keep-alive connections opened on demand, TLS with the system's certificates and the host name
checked, a POST with a Content-Length body. The answer is read by httptools (llhttp, the parser uvicorn serves
the function with): status line, headers, Content-Length and chunked bodies, interim answers, whether the
connection may be reused. Left here is what llhttp does not decide: the size limits, and the end of an answer
without either framing, which is the end of its connection.

Every failure of the network or of an answer's framing is an OSError (a timeout, a reset, `BrokenAnswer`), which
the sink treats as the network's fault, never a row's. A pooled connection that the server closed while it was
idle is found out before a byte of the answer arrived; the call is then made once more on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

HEAD_LIMIT = 64 * 1024  # an answer's status line and headers
ANSWER_LIMIT = 16 * 1024 * 1024  # an answer's body: insertAll's, with an error for each of 500 rows, is far less
IDLE_SECONDS = 30.0  # a connection idle longer is closed rather than reused (servers drop idle ones)
READ_SIZE = 64 * 1024


class BrokenAnswer(ConnectionError):
    """An answer that llhttp refuses, cut short or past a limit: a network failure, not a verdict on the request."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing()) and (
            time.monotonic() - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # its event loop is closed already
            self.writer.close()


class Http1:
    """Connections to one origin (`base`), for one event loop at a time."""

    def __init__(self, base: str, timeout: float, pool_size: int = 16) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._authority = parts.netloc.rpartition("@")[2]
        self._timeout = timeout
        self._pool_size = pool_size
        self._idle: deque[_Connection] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: ssl.SSLContext | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """The answer's status and body; raises OSError when the network or the answer fails."""
        head = [f"POST {path} HTTP/1.1", f"Host: {self._authority}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for fresh in (False, True):
            connection = None if fresh else self._pooled()
            reused = connection is not None
            connection = connection or await self._open()
            try:
                async with asyncio.timeout(self._timeout):
                    connection.writer.write(request)
                    await connection.writer.drain()
                    status, data, keep = await _answer(connection.reader, stale_ok=reused)
            except _Stale:
                connection.close()
                continue  # the server had closed it while it was idle: nothing of this call reached an answer
            except BaseException:
                connection.close()
                raise
            if keep:
                self._park(connection)
            else:
                connection.close()
            return status, data
        raise BrokenAnswer("a new connection closed before it answered")  # not reached: _Stale is only for reused

    def _pooled(self) -> _Connection | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._idle.clear()
            self._loop = loop
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    def _park(self, connection: _Connection) -> None:
        if len(self._idle) >= self._pool_size:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    async def _open(self) -> _Connection:
        context = None
        if self._tls:
            if self._context is None:  # reading the system's certificates takes a while: not on the loop
                self._context = await asyncio.get_running_loop().run_in_executor(None, ssl.create_default_context)
            context = self._context
        async with asyncio.timeout(self._timeout):
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=context, server_hostname=self._host if context else None
            )
        return _Connection(reader, writer)


class _Stale(Exception):
    """A reused connection ended before the first byte of an answer."""


class _Answer:
    """httptools' callbacks for one answer: its status, its body within the limit, whether its head framed it
    and whether its connection may be reused (llhttp knows that only until the answer is complete)."""

    __slots__ = ("body", "complete", "framed", "keep", "parser", "refused", "size", "status")

    def __init__(self) -> None:
        self.parser: Any = httptools.HttpResponseParser(self)
        self.refused = ""
        self.on_message_begin()

    def on_message_begin(self) -> None:  # an interim answer (100 Continue, 103) is a message before the real one
        self.body: list[bytes] = []
        self.size = self.status = 0
        self.framed = self.keep = self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 14 and name.lower() == b"content-length":  # digits: llhttp refuses any other
            self.framed = True
            if int(value) > ANSWER_LIMIT:  # refused before its bytes arrive
                self.refused = "an answer's Content-Length past its size limit"
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > ANSWER_LIMIT:
            self.refused = "an answer past its size limit"
        else:
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self.status < 200:  # an interim answer: the head still to come is the real one's
            self.status = 0
        else:
            self.complete = True


async def _answer(reader: asyncio.StreamReader, stale_ok: bool) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection may be reused). httptools reads the status line, the headers and
    the framing (Content-Length, chunked); an answer with neither ends with its connection, which llhttp cannot
    be told, so that is decided here at the end of the stream."""
    answer = _Answer()
    parser, fed = answer.parser, 0
    try:
        while True:
            try:  # while the head is unfinished, no more than its limit is read
                data = await reader.read(READ_SIZE if answer.status else HEAD_LIMIT + 1 - fed)
            except ConnectionResetError:
                if stale_ok and not fed:
                    raise _Stale from None
                raise
            if not data:
                if stale_ok and not fed:
                    raise _Stale
                if answer.status and not answer.framed:
                    return answer.status, b"".join(answer.body), False
                raise BrokenAnswer("the connection closed inside an answer")
            fed += len(data)
            try:
                parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                raise BrokenAnswer(f"an answer this client does not read: {exc}") from None
            if answer.refused:
                raise BrokenAnswer(answer.refused)
            if answer.complete:
                return answer.status, b"".join(answer.body), answer.keep
            if not answer.status and fed > HEAD_LIMIT:
                raise BrokenAnswer("an answer's head past its size limit")
    finally:
        answer.parser = None  # it holds the answer's callbacks: no cycle left for the garbage collector
