"""The network edge as a visitor with uBlock Origin or Brave Shields has it: the real filter lists, a real engine.

A loopback server that plays three hosts for a real Chromium (every `*.localhost` name resolves to loopback):

- the shop (`shop.localhost`, presented to the filter engine as `https://www.shop-example.de`): test pages, and a
  reverse proxy from `/lj/` to the collector, as a site would configure it (first-party delivery);
- the collector on its own host (`collector.localhost`, presented as a Cloud Functions URL: third-party);
- a partner site (`partner.localhost`) that chat links lead to, without the snippet.

Every request is matched against the lists Debian's `webext-ublock-origin-chromium` ships (EasyList,
EasyPrivacy, uBlock filters, uBlock privacy, badware, quick fixes, unbreak) with Brave's adblock-rust engine
(PyPI `adblock`), typed from Chromium's Fetch Metadata (a beacon is `Sec-Fetch-Mode: no-cors` with an empty
destination; a fetch, keepalive or not, is `cors`), and dropped when it matches, as the extension would:
the connection closes, and the page sees a network error (a beacon sees nothing at all).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

UBO_ASSETS = Path("/usr/share/chromium/extensions/ublock-origin/assets")
# uBlock Origin's default filter lists, as shipped in its assets folder.
DEFAULT_LISTS = (
    "thirdparties/easylist/easylist.txt",
    "thirdparties/easylist/easyprivacy.txt",
    "ublock/filters.min.txt",
    "ublock/privacy.min.txt",
    "ublock/badware.min.txt",
    "ublock/quick-fixes.min.txt",
    "ublock/unbreak.min.txt",
)
SHOP = "shop.localhost"
COLLECTOR = "collector.localhost"
PARTNER = "partner.localhost"
PRESENTED = {
    SHOP: "https://www.shop-example.de",
    COLLECTOR: "https://europe-west3-shop-analytics.cloudfunctions.net/loyjoy-collector",
    PARTNER: "https://www.partner-example.com",
}


def load_engine() -> Any:
    import adblock

    filters = adblock.FilterSet()
    for name in DEFAULT_LISTS:
        filters.add_filter_list((UBO_ASSETS / name).read_text(encoding="utf-8"))
    return adblock.Engine(filters)


def request_type(headers: Any) -> str:
    """adblock's request type from Chromium's Fetch Metadata."""
    destination = headers.get("Sec-Fetch-Dest", "")
    mode = headers.get("Sec-Fetch-Mode", "")
    if destination in ("document", "iframe"):
        return "document" if destination == "document" else "subdocument"
    if destination in ("script", "image", "style", "font"):
        return {"style": "stylesheet"}.get(destination, destination)
    if destination == "empty":
        return "ping" if mode == "no-cors" else "xmlhttprequest"
    return "other"


def presented(host: str, path: str) -> str:
    return PRESENTED.get(host.split(":")[0], f"https://{host.split(':')[0]}") + path


class Edge:
    def __init__(self, engine: Any, collector_url: str, pages: Callable[[str, str], tuple[str, bytes] | None]) -> None:
        self.engine = engine
        self.collector_url = collector_url
        self.pages = pages
        self.blocking = False
        self.collector_down = False
        self.seen: Counter[tuple[str, str, str, str]] = Counter()  # (host, type, path, verdict)
        self._lock = threading.Lock()
        self._session = requests.Session()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.handle(self)

            do_POST = do_OPTIONS = do_HEAD = do_GET

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a page that goes away resets its requests: that is the point of the test, not an error

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, kind: str, verdict: str, host: str | None = None) -> int:
        with self._lock:
            return sum(n for (h, t, _, v), n in self.seen.items() if t == kind and v == verdict and host in (None, h))

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        host = (request.headers.get("Host") or "").split(":")[0]
        path = request.path
        kind = request_type(request.headers)
        source = request.headers.get("Origin") or request.headers.get("Referer") or ""
        source_host = source.split("//", 1)[-1].split("/", 1)[0].split(":")[0] if source else host
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        blocked = (
            self.blocking
            and request.command != "OPTIONS"
            and self.engine.check_network_urls(presented(host, path), presented(source_host, "/"), kind).matched
        )
        with self._lock:
            self.seen[(host, kind, path.split("?")[0], "blocked" if blocked else "passed")] += 1
        if blocked:  # as an extension cancels it: no answer at all
            request.close_connection = True
            return
        to_collector = host == COLLECTOR or (host == SHOP and (path == "/lj" or path.startswith("/lj/")))
        page = self.pages(host, path)
        if to_collector and page is None:
            self._forward(request, body)
            return
        if page is None:
            self._answer(request, 404, "text/plain", b"not found")
        else:
            self._answer(request, 200, page[0], page[1])

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        if self.collector_down and request.command == "POST":
            self._answer(request, 503, "application/json", b'{"status":"unavailable"}', {"Retry-After": "1"})
            return
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length", "connection"}
        }
        headers["X-Forwarded-For"] = request.client_address[0]
        answer = self._session.request(
            request.command, self.collector_url + request.path, data=body, headers=headers, timeout=60
        )
        passed = {k: v for k, v in answer.headers.items() if k.lower().startswith(("access-control", "retry-after"))}
        self._answer(request, answer.status_code, answer.headers.get("Content-Type", ""), answer.content, passed)

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler, status: int, mimetype: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        request.send_response(status)
        if mimetype:
            request.send_header("Content-Type", mimetype)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Cache-Control", "no-store")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)
