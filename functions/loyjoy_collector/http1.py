"""HTTP/1.1 on the event loop, for the one call the request path makes to BigQuery (insertAll).

A call through urllib3 costs about 0.35 ms of CPU (http.client reads an answer's headers with the `email`
package, and each call builds a request's worth of objects), and running it in a worker thread adds the hand-over
of the interpreter both ways; on the event loop, with this client, the same call costs a twentieth of that and
holds no thread while BigQuery answers. It speaks only what insertAll needs: a POST with a Content-Length body on
keep-alive connections (a small pool, opened on demand), and answers with a Content-Length, chunked, or read to
the end of the connection; TLS with the system's certificates and the host name checked.

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
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024  # an answer's status line and headers
ANSWER_LIMIT = 16 * 1024 * 1024  # an answer's body: insertAll's, with an error for each of 500 rows, is far less
IDLE_SECONDS = 30.0  # a connection idle longer is closed rather than reused (servers drop idle ones)


class BrokenAnswer(ConnectionError):
    """An answer that is no HTTP/1.1 this client reads: a network failure, not a verdict on the request."""


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
                self._host, self._port, ssl=context, server_hostname=self._host if context else None, limit=HEAD_LIMIT
            )
        return _Connection(reader, writer)


class _Stale(Exception):
    """A reused connection ended before the first byte of an answer."""


async def _answer(reader: asyncio.StreamReader, stale_ok: bool) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection may be reused)."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if stale_ok and not exc.partial:
                    raise _Stale from None
                raise BrokenAnswer("the connection closed inside an answer's head") from None
            except ConnectionResetError:
                if stale_ok:
                    raise _Stale from None
                raise
            stale_ok = False
            status, version, headers = _head(head)
            if not 100 <= status < 200:
                break  # an interim answer (100 Continue, 103) is followed by the real one
        keep = version == b"HTTP/1.1" and b"close" not in headers.get(b"connection", b"").lower()
        if status in (204, 304):
            return status, b"", keep
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            return status, await _chunks(reader), keep
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > ANSWER_LIMIT:
                raise BrokenAnswer(f"an answer's Content-Length of {length[:20]!r}")
            return status, await reader.readexactly(int(length)), keep
        data = await reader.read(ANSWER_LIMIT + 1)  # neither: the body ends with the connection
        while len(data) <= ANSWER_LIMIT and (more := await reader.read(ANSWER_LIMIT + 1 - len(data))):
            data += more
        if len(data) > ANSWER_LIMIT:
            raise BrokenAnswer("an answer past its size limit")
        return status, data, False
    except asyncio.IncompleteReadError:
        raise BrokenAnswer("the connection closed inside an answer") from None
    except asyncio.LimitOverrunError:
        raise BrokenAnswer("an answer's head or chunk line past its size limit") from None


def _head(head: bytes) -> tuple[int, bytes, dict[bytes, bytes]]:
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise BrokenAnswer(f"not an HTTP/1.1 status line: {lines[0][:40]!r}")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        headers[key] = headers[key] + b", " + value.strip() if key in headers else value.strip()
    return int(code), version, headers


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BrokenAnswer(f"not a chunk size: {size_text[:20]!r}") from None
        if size < 0 or len(data) + size > ANSWER_LIMIT:
            raise BrokenAnswer("an answer past its size limit")
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the empty line
                pass
            return bytes(data)
        data += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise BrokenAnswer("a chunk without its line end")
