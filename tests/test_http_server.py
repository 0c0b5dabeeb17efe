"""The HTTP server under the collector, spoken to byte by byte: what a browser, an sGTM container or a broken
client may send reaches the collector or gets the collector's JSON, never a hang or a 5xx.

uvicorn with httptools parses the requests (functions-framework's ASGI mode) and `server_limits` adds a head
deadline and size limits to its protocol: chunked bodies, `Expect: 100-continue`, pipelining, HTTP/1.0, a body
shorter than its Content-Length and bytes that are no HTTP at all.
"""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import urlsplit

from .conftest import ORIGIN, VISITOR_UA, Collector, LocalBigQuery


def exchange(collector: Collector, data: bytes, *, close_write: bool = False, timeout: float = 10.0) -> bytes:
    """Everything the server sends back until it closes the connection (or `timeout` passes)."""
    url = urlsplit(collector.url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
    return answer


def head(path: str = "/", extra: str = "", version: str = "1.1") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: collector\r\nOrigin: {ORIGIN}\r\nUser-Agent: {VISITOR_UA}\r\n"
        f"Content-Type: text/plain\r\nConnection: close\r\n{extra}"
    ).encode()


def event(tag: str, label: str) -> bytes:
    return json.dumps({"event": "open", "detail": {"bot_id": tag, "label": label}}).encode()


def statuses(answer: bytes) -> list[int]:
    """The status of each response (a pipelined one follows the previous body without a line break)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


def test_chunked_continue_pipelined_and_http_1_0_requests_are_served(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    body = event(tag, "chunked")
    chunked = (
        head(extra="Transfer-Encoding: chunked\r\n\r\n")
        + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
        + b"0\r\n\r\n"
    )
    assert statuses(exchange(collector, chunked)) == [200]

    body = event(tag, "continue")
    url = urlsplit(collector.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head(extra=f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"))
        sock.sendall(body)  # as curl does after a second without an answer; the 100 may come first
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert statuses(answer)[-1] == 200, answer[:300]

    first, second = event(tag, "pipelined-1"), event(tag, "pipelined-2")
    keep = head().replace(b"Connection: close\r\n", b"")
    framed = [keep + f"Content-Length: {len(first)}\r\n\r\n".encode() + first]
    framed.append(head() + f"Content-Length: {len(second)}\r\n\r\n".encode() + second)
    pipelined = b"".join(framed)  # both requests in one write
    assert statuses(exchange(collector, pipelined)) == [200, 200]

    old = event(tag, "http-1.0")
    assert statuses(
        exchange(collector, head(version="1.0") + f"Content-Length: {len(old)}\r\n\r\n".encode() + old)
    ) == [200]

    labels = sorted(row["label"] for row in local_bigquery.events("bot_id = @tag", tag=tag))
    assert labels == ["chunked", "continue", "http-1.0", "pipelined-1", "pipelined-2"]


def test_broken_requests_get_the_collectors_json_and_nothing_is_stored(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    garbage = exchange(collector, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n")
    assert statuses(garbage) == [400]
    assert json.loads(garbage.split(b"\r\n\r\n", 1)[1])["error"]["reason"] == "invalid_http"

    short = event(tag, "short")  # says 500 bytes, sends fewer, then closes its side: no answer is owed
    started = time.monotonic()
    exchange(collector, head(extra="Content-Length: 500\r\n\r\n") + short, close_write=True)
    assert time.monotonic() - started < 5

    big = b"x" * (600 * 1024)  # a chunked body past the limit: 413, its start kept as the refusal's payload
    chunked = head(extra="Transfer-Encoding: chunked\r\n\r\n") + b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)
    answer = exchange(collector, chunked)
    assert statuses(answer) == [413]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["reason"] == "body_too_large"

    assert local_bigquery.events("bot_id = @tag", tag=tag) == []
    # The server still answers, at once.
    assert statuses(exchange(collector, b"GET /healthy HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n")) == [200]


def test_the_frameworks_own_paths_answer_404_and_record_nothing(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """The bare ASGI path (asgi.py) keeps functions-framework's routes for /robots.txt and /favicon.ico: a
    browser's look at the collector's host leaves no refusal behind; any other unknown path is recorded."""
    import requests

    for path in ("/robots.txt", "/favicon.ico"):
        answer = requests.get(f"{collector.url}{path}?{tag}", timeout=10)
        assert (answer.status_code, answer.text, answer.headers["Content-Type"]) == (
            404,
            "Not Found",
            "text/plain; charset=utf-8",
        )
    unknown = requests.get(f"{collector.url}/nothing-here?{tag}", timeout=10)
    assert (unknown.status_code, unknown.json()["error"]["reason"]) == (404, "unknown_path")
    recorded = local_bigquery.rejected("query = @tag", tag=tag)
    assert [row["path"] for row in recorded] == ["/nothing-here"]


def test_functions_frameworks_own_app_answers_as_the_bare_path_does(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """With LOG_EXECUTION_ID set, functions-framework's Starlette app serves `collect` (it adds the execution ids
    to log lines in its own wrappers): the same answers, byte for byte but for the ids they carry."""
    import requests

    from .conftest import start_collector, stop

    framework = start_collector(local_bigquery.url, "framework-collector", LOG_EXECUTION_ID="true")
    try:
        for server in (collector, framework):
            answers = [
                server.post({"event": "open", "bot_id": tag, "detail": {"label": server.log.stem}}),
                server.post({"event": 5, "bot_id": tag}),
                requests.options(f"{server.url}/", headers={"Origin": ORIGIN}, timeout=10),
                requests.get(f"{server.url}/healthy", timeout=10),
                requests.get(f"{server.url}/loyjoy-collector.js", timeout=10),
            ]
            shapes = [
                (a.status_code, a.headers.get("Content-Type"), a.headers.get("Content-Length"), sorted(a.headers))
                for a in answers
            ]
            if server is collector:
                expected = shapes
            else:
                assert shapes == expected
        labels = sorted(row["label"] for row in local_bigquery.events("bot_id = @tag", tag=tag))
        assert labels == ["collector", "framework-collector"]
    finally:
        stop(framework.process)
