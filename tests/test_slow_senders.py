"""Slow senders time out: a request's head and body have a deadline in the server.

Eight connections trickle their headers and eight their body, one byte a second: each is answered 408 and closed
once its deadline has passed, `/healthy` answers within a second the whole time (on the event loop a slow sender
holds no thread), nothing the slow senders sent is stored, and a normal event posted afterwards is. A head
past its size limit gets a 431; a connection that never sends a byte is closed after the header deadline.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import ORIGIN, VISITOR_UA, Collector, LocalBigQuery, start_collector, stop

THREADS = 8
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
# Every slow connection is cut off at its own deadline, all at about the same time; a second of slack.
ALL_CUT_OFF = BODY_TIMEOUT + 1.5


@pytest.fixture(scope="module")
def slow_collector(local_bigquery: LocalBigQuery) -> Iterator[Collector]:
    running = start_collector(
        local_bigquery.url,
        "slow-senders",
        THREADS=str(THREADS),
        HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    )
    try:
        yield running
    finally:
        stop(running.process)


def address(collector: Collector) -> tuple[str, int]:
    url = urlsplit(collector.url)
    return url.hostname or "127.0.0.1", url.port or 80


def request_head(length: int) -> bytes:
    return (
        f"POST / HTTP/1.1\r\nHost: collector\r\nOrigin: {ORIGIN}\r\nUser-Agent: {VISITOR_UA}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


class Trickler:
    """One connection sending what it has one byte a second, and what the server answered before closing it."""

    def __init__(self, where: tuple[str, int], first: bytes, rest: bytes) -> None:
        self.sock = socket.create_connection(where, timeout=5)
        self.sock.sendall(first)
        self.rest = rest
        self.answer = b""
        self.closed_at: float | None = None

    def step(self, now: float) -> None:
        if self.closed_at is not None:
            return
        while select.select([self.sock], [], [], 0)[0]:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed_at = now
                self.sock.close()
                return
            self.answer += data
        if self.rest:
            try:
                self.sock.send(self.rest[:1])
                self.rest = self.rest[1:]
            except OSError:
                pass


def test_trickling_headers_and_bodies_are_cut_off_and_healthy_answers(
    slow_collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    where = address(slow_collector)
    body = json.dumps({"event": "close", "bot_id": tag, "label": "x" * 200}).encode()
    head = request_head(len(body))
    # Eight send their request line and headers a byte a second (they never finish), eight send whole headers
    # and then the body a byte a second: sixteen slow senders for eight threads.
    slow = [Trickler(where, head[:1], head[1:]) for _ in range(THREADS)]
    slow += [Trickler(where, head, body) for _ in range(THREADS)]
    start = time.monotonic()
    stop_trickling = threading.Event()

    def trickle() -> None:
        while not stop_trickling.is_set():
            for sender in slow:
                sender.step(time.monotonic() - start)
            stop_trickling.wait(1.0)

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    polls: list[tuple[float, float | None]] = []  # (seconds since the start, latency or None for no answer)
    try:
        while time.monotonic() - start < ALL_CUT_OFF + 3:
            sent = time.monotonic()
            try:
                answer = requests.get(slow_collector.url + "/healthy", timeout=1)
                polls.append((sent - start, time.monotonic() - sent if answer.ok else None))
            except requests.RequestException:
                polls.append((sent - start, None))
            time.sleep(max(0.0, 0.25 - (time.monotonic() - sent)))
    finally:
        stop_trickling.set()
        trickler.join(5)

    # /healthy answered within a second every time, while sixteen slow senders were connected and after.
    assert polls and all(latency is not None and latency < 1.0 for _, latency in polls), polls
    during = [at for at, _ in polls if at < HEADER_TIMEOUT]
    assert len(during) >= 4, polls
    print(f"/healthy: {len(polls)} polls, slowest {max(latency or 0 for _, latency in polls) * 1000:.0f} ms")

    # Every slow connection was answered 408 and closed, none in less than its deadline.
    for sender in slow:
        assert sender.closed_at is not None, "a slow sender's connection is still open"
        assert sender.answer.startswith(b"HTTP/1.1 408 "), sender.answer[:200]
        assert b"connection: close" in sender.answer.lower()
        assert json.loads(sender.answer.split(b"\r\n\r\n", 1)[1])["error"]["reason"] == "request_timeout"
        assert sender.closed_at >= HEADER_TIMEOUT - 0.5
    log = slow_collector.log_lines()
    cut = [line for line in log if line.get("event") == "slow_sender"]
    assert sorted(line["phase"] for line in cut) == ["body"] * THREADS + ["headers"] * THREADS, cut

    # A normal event afterwards is stored; what the slow senders sent is not (not even as a refusal).
    answer = slow_collector.post(json.dumps({"event": "close", "detail": {"bot_id": tag, "label": "after"}}))
    assert answer.status_code == 200, answer.text
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    assert [row["label"] for row in rows] == ["after"]
    assert local_bigquery.rejected("CONTAINS_SUBSTR(raw_payload, @tag)", tag=tag) == []


def test_a_body_sent_in_pieces_within_the_deadline_and_keep_alive_are_untouched(
    slow_collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    body = json.dumps({"event": "close", "detail": {"bot_id": tag, "label": "pieces"}}).encode()
    with socket.create_connection(address(slow_collector), timeout=10) as sock:
        # Headers in three pieces over a second, the body in three over another: slow, but within both deadlines.
        head = request_head(len(body))
        for piece in (head[:10], head[10:40], head[40:], body[:5], body[5:20], body[20:]):
            sock.sendall(piece)
            time.sleep(0.3)
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200 "), first[:300]
        assert b"connection: close" not in first.lower()
        # The same connection serves the next request (keep-alive), after a pause shorter than gunicorn's.
        time.sleep(1.0)
        sock.sendall(b"GET /healthy HTTP/1.1\r\nHost: collector\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    assert [row["label"] for row in local_bigquery.events("bot_id = @tag", tag=tag)] == ["pieces"]

    # A body over the limit still gets its 413, quickly.
    started = time.monotonic()
    too_large = slow_collector.post(b"x" * (600 * 1024))
    assert too_large.status_code == 413, too_large.text
    assert time.monotonic() - started < BODY_TIMEOUT


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return head + b"\r\n\r\n" + rest


def test_a_head_past_its_limit_gets_431_and_a_silent_connection_is_closed(slow_collector: Collector) -> None:
    where = address(slow_collector)
    with socket.create_connection(where, timeout=10) as sock:
        sock.sendall(b"GET /healthy HTTP/1.1\r\nHost: collector\r\nX-Large: " + b"a" * (100 * 1024) + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["reason"] == "headers_too_large"

    started = time.monotonic()
    with socket.create_connection(where, timeout=10) as sock:
        assert sock.recv(65536) == b""  # closed by the server, nothing answered
    assert HEADER_TIMEOUT - 0.5 <= time.monotonic() - started < HEADER_TIMEOUT + 2

    # A long query string within the limit is served (GA4 hits can carry their payload there); past it, 414.
    assert requests.get(slow_collector.url + "/healthy?" + "a" * (60 * 1024), timeout=10).status_code == 200
    too_long = requests.get(slow_collector.url + "/healthy?" + "a" * (70 * 1024), timeout=10)
    assert too_long.status_code == 414 and too_long.json()["error"]["reason"] == "url_too_long", too_long.text


def test_install_gives_the_asgi_server_the_limited_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions_framework._http.gunicorn import UvicornApplication
    from starlette.applications import Starlette

    from loyjoy_collector import server_limits

    monkeypatch.setattr(UvicornApplication, "load_config", UvicornApplication.load_config)  # undone afterwards
    server_limits.install()
    server_limits.install()  # idempotent
    worker = UvicornApplication(Starlette(), "127.0.0.1", 0, False).cfg.worker_class
    assert worker is server_limits.DeadlineWorker
    assert worker.CONFIG_KWARGS["http"] is server_limits.DeadlineHttpTools
    assert worker.CONFIG_KWARGS["proxy_headers"] is False  # the collector counts X-Forwarded-For hops itself
