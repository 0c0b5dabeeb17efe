"""insertAll's HTTP/1.1 client on the event loop (http1.py) against answers the local BigQuery never gives:
chunked bodies, interim answers, bodies that end with the connection, idle connections the server closed, broken
or oversized answers and servers that do not answer. Each server here is a few lines of asyncio that answer as
scripted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from loyjoy_collector import http1
from loyjoy_collector.http1 import BrokenAnswer, Http1

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def run_alone(coroutine: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


async def serve(script: Script, calls: list[tuple[int, str]], timeout: float = 2.0) -> Any:
    """Run `calls` (connection-independent: (number, path)) against a server answering with `script`; returns
    the client's answers (or the exception each raised) and how many connections the server saw."""
    connections = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await script(reader, writer, connections)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Http1(f"http://127.0.0.1:{port}", timeout)
    answers: list[Any] = []
    for _, path in calls:
        try:
            answers.append(await client.post(path, b'{"rows": []}', {"Content-Type": "application/json"}))
        except Exception as exc:  # the test looks at what was raised
            answers.append(exc)
        await asyncio.sleep(0.05)  # the server's close, if any, reaches the client before the next call
    server.close()
    return answers, connections


def test_chunked_answers_are_read_whole_and_the_connection_is_kept():
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                b'5;ext=1\r\n{"ins\r\n0b\r\nertErrors":\r\n3\r\n[]}\r\n0\r\nX-Trailer: t\r\n\r\n'
            )
            await writer.drain()

    answers, connections = run_alone(serve(chunked, [(1, "/a"), (2, "/b"), (3, "/c")]))
    assert answers == [(200, b'{"insertErrors":[]}')] * 3
    assert connections == 1


def test_an_interim_answer_is_followed_by_the_real_one():
    async def interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)  # the real answer in a packet of its own
            writer.write(
                b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
            )
            await writer.drain()

    answers, connections = run_alone(serve(interim, [(1, "/a"), (2, "/b")]))
    assert answers == [(200, b"{}")] * 2
    assert connections == 1


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error():
    async def one_answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        # then closes: the client's pooled connection is dead when the next call comes

    answers, connections = run_alone(serve(one_answer_each, [(1, "/a"), (2, "/b")]))
    assert answers == [(200, b"{}"), (200, b"{}")]
    assert connections == 2


def test_a_reused_connection_closed_before_any_answer_is_sent_again_on_a_new_one():
    """The race of an idle connection: the server closes it as the next request arrives, before answering."""

    async def closes_on_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        if number == 1:
            await read_request(reader)  # and closes without a byte of an answer

    answers, connections = run_alone(serve(closes_on_the_second, [(1, "/a"), (2, "/b")]))
    assert answers == [(200, b"{}"), (200, b"{}")]
    assert connections == 2


def test_an_answer_without_a_length_ends_with_its_connection():
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n" + b"x" * 100_000)
        await writer.drain()

    answers, connections = run_alone(serve(until_close, [(1, "/a"), (2, "/b")]))
    assert answers == [(503, b"x" * 100_000)] * 2
    assert connections == 2  # `Connection: close` is never reused


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",  # no HTTP at all
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",  # past the answer limit
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # cut short
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",  # cut before a chunk
        b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n",  # a head past its limit
    ],
)
def test_a_broken_answer_is_a_network_failure_and_is_not_sent_again(answer: bytes):
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    [outcome], connections = run_alone(serve(broken, [(1, "/a")]))
    assert isinstance(outcome, BrokenAnswer) and isinstance(outcome, OSError), outcome
    assert connections == 1  # a fresh connection that failed is not retried: the sink's policy decides


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"400\r\n" + b"x" * 1024 + b"\r\n") * 5,
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000,  # ends with the connection
    ],
)
def test_an_answer_past_its_size_limit_is_refused(answer: bytes, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(http1, "ANSWER_LIMIT", 3000)

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(1)  # and keeps the connection open: the client stops at the limit, not at the end

    [outcome], _ = run_alone(serve(large, [(1, "/a")]))
    assert isinstance(outcome, BrokenAnswer) and "size limit" in str(outcome), outcome


def test_a_server_that_does_not_answer_times_out_as_a_network_failure():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    [outcome], _ = run_alone(serve(silent, [(1, "/a")], timeout=0.3))
    assert isinstance(outcome, TimeoutError) and isinstance(outcome, OSError)
