"""Pages and servers for running the GTM template (and LoyJoy's own snippet beside it) in real browsers.

Shared by tests/test_gtm_engines.py and bench/gtm_boot.py, so that the benchmark measures exactly what the tests
check. Two servers on loopback:

- `Shop`: the site. `/own` is LoyJoy's own JavaScript-API snippet (its loader, then `LoyJoy('boot', …)` with the
  seed's dataLayer listener); `/tag` fires gtm/template.tpl in tests/gtm_sandbox/sandbox.js, inline at parse
  time as GTM fires a tag on All Pages; `/loyjoy.js` is LoyJoy's loader (the demo's stand-in), answered after a
  delay as from a CDN. The tag asks for https://stable.loyjoy.com/widget.js and https://collector.test/…: the
  harness checks its permissions on those URLs and the page fetches them here (`resolve`, a stand-in for DNS).
- `Front`: the collector's host as the browser sees it, up (a proxy to a real collector, or the built script
  and a 204 for events when there is none) or failing: refused (nothing listens: `stop()`), `hang` (accepts,
  never answers until the mode changes), `500`, `cold` (every request waits until 10 s after the mode was set:
  a cold start), `broken` (a script that throws), `post500` (the script loads, events fail).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import requests

from ..browser_engines import MINIBROWSER, Tab, WebKit, WebKitTab
from . import load

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC = ROOT / "functions/loyjoy_collector/static"
STANDIN = ROOT / "snippet/demo/loyjoy-standin.js"
SANDBOX_JS = Path(__file__).resolve().parent / "sandbox.js"
LOADER = "https://stable.loyjoy.com/widget.js"
COLLECTOR = "https://collector.test"  # what the tag is configured with; the page fetches the front
COLD = 10.0  # a collector answering after 10 s: a cold start behind a slow link
SEED_LISTENER = (
    "function (evt, obj) { dataLayer && dataLayer.push({ 'event': 'loyjoy', 'gaEventCategory': 'loyjoy', "
    "'gaEventAction': obj && obj.process_name, 'gaEventLabel': evt }) }"
)
CHAT = """var chat = LoyJoy.standin.chat;
  LoyJoy('open'); chat.start(); chat.message('Hello'); chat.signUp('jane@example.com'); chat.optIn(); LoyJoy('close');"""
CHAT_EVENTS = sorted(
    [
        "load",
        "show",
        "open",
        "session_started",
        "start",
        "message_received",
        "sign_up",
        "newsletter_single_opt_in",
        "close",
    ]
)
HEAD = """<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>window.dataLayer = [];</script>"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def built_stub(script_url: str, options: dict[str, Any]) -> str:
    """The shipped inline stub, called with this page's script URL and options."""
    body = (STATIC / "loyjoy-collector-stub.min.js").read_text().rsplit("(window,document,", 1)[0]
    return f"{body}(window,document,{json.dumps(script_url)},{json.dumps(options)});"


def inline_json(value: Any) -> str:
    return json.dumps(value).replace("</", "<\\/")


class Shop:
    """The site's pages (see the module's docstring), on a port of its own."""

    def __init__(self, loader_delay: float = 0.5) -> None:
        self.loader_delay = loader_delay
        self.server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> Shop:
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/loyjoy.js":
                    time.sleep(float(query.get("delay", shop.loader_delay)))
                    return self.send(STANDIN.read_bytes(), "application/javascript")
                if url.path == "/gtm/sandbox.js":
                    return self.send(SANDBOX_JS.read_bytes(), "application/javascript")
                if url.path == "/own":
                    page = f"""{HEAD}<title>own</title><script src="/loyjoy.js"></script>
<script>LoyJoy('boot', {{bot: {json.dumps(query["bot"])}, eventListeners: [{SEED_LISTENER}]}});</script>"""
                elif url.path == "/tag":
                    page = HEAD + "<title>tag</title>" + shop.tag_page(json.loads(query["spec"]))
                else:
                    return self.send(b"not found", "text/plain", 404)
                self.send((page + "</head><body><p>shop</p></body></html>").encode(), "text/html")

            def send(self, data: bytes, mimetype: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", mimetype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def tag_page(self, spec: dict[str, Any]) -> str:
        """The head of a page whose GTM fires the template: spec = {front, data, consent?, fires?, stub?,
        pageLoader?, chat?, loaderDelay?}. `consent` is Consent Mode's default for analytics_storage (granted or
        denied); `pageLoader` puts LoyJoy's loader in the page itself, async, arriving after the tag fired (its
        delay); `chat` makes the page run a whole chat the moment LoyJoy has booted (`window.chatMade` says
        whether the collector's script was there yet)."""
        template = load()
        resolve = {
            LOADER: f"{self.url}/loyjoy.js?delay={spec.get('loaderDelay', self.loader_delay)}",
            COLLECTOR + "/": spec["front"] + "/",
        }
        run = {
            "code": template.code,
            "permissions": template.permissions,
            "data": {"collectorUrl": COLLECTOR, **spec["data"]},
            "resolve": resolve,
            "consent": spec.get("consent"),
            "fires": spec.get("fires", 1),
        }
        parts = []
        if spec.get("stub"):
            parts.append(f"<script>{built_stub(spec['front'] + '/loyjoy-collector.js', spec['stub'])}</script>")
        # Inline, as GTM's runtime is part of gtm.js, which a GTM page has loaded before any tag fires.
        parts.append(f"<script>{SANDBOX_JS.read_text()}</script>")
        parts.append(
            f"""<script>(function (run) {{
  window.gtmLogs = [];
  window.gtm = GtmSandbox.createRuntime(run.permissions, GtmSandbox.pageEnv(window, gtmLogs, run.resolve));
  if (run.consent) gtm.setDefaultConsent('analytics_storage', run.consent === 'granted');
  window.gtmOutcomes = [];
  for (var i = 0; i < run.fires; i++) gtmOutcomes.push(GtmSandbox.fire(gtm, run.code, run.data));
  window.gtmOutcome = gtmOutcomes[0];
}})({inline_json(run)});</script>"""
        )
        if spec.get("chat"):  # the visitor chats the moment the chat is there, whatever the driver can see
            parts.append(
                f"""<script>(function chatWhenBooted() {{
  if (!(window.LoyJoy && LoyJoy.standin && LoyJoy.standin.bootedAt())) return setTimeout(chatWhenBooted, 10);
  {CHAT}
  window.chatMade = window.LoyJoyCollector && LoyJoyCollector.version ? 'after the script' : 'before the script';
}})();</script>"""
            )
        if spec.get("pageLoader"):
            parts.append(f'<script async src="/loyjoy.js?delay={spec["pageLoader"]}"></script>')
        return "\n".join(parts)

    def own(self, bot: str) -> str:
        return f"{self.url}/own?bot={bot}"

    def tag(self, front: Front, **spec: Any) -> str:
        return f"{self.url}/tag?" + urlencode({"spec": json.dumps({"front": front.url, **spec})})


class Front:
    """The collector's host as the browser sees it; `mode` says how it answers (see the module's docstring)."""

    def __init__(self, target: str | None = None) -> None:
        self.target = target  # a real collector, or None: the built script, and 204 for events
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._mode = "up"
        self.mode_since = time.monotonic()
        self.held = 0  # requests waiting for an answer right now (hang, cold)
        self.seen: list[str] = []  # "GET /loyjoy-collector.js 500", in the order answered
        self.server: ThreadingHTTPServer | None = None

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._mode = mode
        self.mode_since = time.monotonic()

    def start(self) -> Front:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_OPTIONS(self) -> None:
                self.handle_any()

            def do_GET(self) -> None:
                self.handle_any()

            def do_POST(self) -> None:
                self.handle_any()

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                script = self.path.split("?")[0].endswith("/loyjoy-collector.js")
                mode = front.wait_for_answer()
                if mode == "500" or (mode == "post500" and self.command == "POST"):
                    return self.answer(500, {"Content-Type": "text/plain"}, b"collector failing")
                if mode == "broken" and script:
                    return self.answer(200, {"Content-Type": "application/javascript"}, b"window.LoyJoyCollector = {(")
                if front.target is None:
                    if script:
                        code = (STATIC / "loyjoy-collector.min.js").read_bytes()
                        return self.answer(200, {"Content-Type": "application/javascript"}, code)
                    return self.answer(204, {}, b"")
                answer = requests.request(
                    self.command,
                    front.target + self.path,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() in ("origin", "content-type")},
                    timeout=30,
                )
                keep = ("content-type", "retry-after", "cache-control")
                headers = {
                    k: v for k, v in answer.headers.items() if k.lower() in keep or k.lower().startswith("access-")
                }
                self.answer(answer.status_code, headers, answer.content)

            def answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                front.seen.append(f"{self.command} {self.path.split('?')[0]} {status}")
                try:
                    self.send_response(status)
                    if "Origin" in self.headers and not any(
                        k.lower() == "access-control-allow-origin" for k in headers
                    ):
                        headers["Access-Control-Allow-Origin"] = self.headers["Origin"]  # the page reads the status
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the page went away while we held its request

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def wait_for_answer(self) -> str:
        """Hold the request while the mode says so; then the mode to answer it in."""
        held = False
        while self._mode == "hang" or (self._mode == "cold" and time.monotonic() - self.mode_since < COLD):
            if not held:
                self.held += 1
                held = True
            time.sleep(0.05)
        if held:
            self.held -= 1
        return self._mode

    def stop(self) -> None:
        """Unreachable: nothing listens on the port any more (connections are refused)."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextmanager
def running(shop: Shop) -> Iterator[Shop]:
    try:
        yield shop.start()
    finally:
        shop.stop()


def boot_ms(page: Any, timeout: float = 30) -> float:
    """Milliseconds from navigation start to LoyJoy('boot'), as the stand-in recorded it."""
    return page.wait("return window.LoyJoy && LoyJoy.standin && LoyJoy.standin.bootedAt()", timeout=timeout)


class PromptWebKitTab(WebKitTab):
    """A WebKit tab whose `goto` returns once the new document is parsed (DOMContentLoaded), as the other engines'
    tabs do. WebKit counts a script injected from the load event as part of the page's load, and its WebDriver
    (`normal` and, in this build, `eager` too) holds `goto` and every later command until that load ends: a
    collector that never answers would hold the test though the page runs on. So: strategy `none`, and the tab
    waits for the new document itself."""

    def __init__(self, driver_url: str) -> None:
        self.driver_url = driver_url
        capabilities = {
            "browserName": "MiniBrowser",
            "pageLoadStrategy": "none",
            "webkitgtk:browserOptions": {"binary": MINIBROWSER, "args": ["--automation"]},
        }
        answer = requests.post(
            f"{driver_url}/session", json={"capabilities": {"alwaysMatch": capabilities}}, timeout=60
        ).json()["value"]
        if "sessionId" not in answer:
            raise RuntimeError(f"WebKitWebDriver: {answer}")
        self.session = f"{driver_url}/session/{answer['sessionId']}"

    def goto(self, url: str) -> None:
        self.evaluate_json("(window.__leftBehind = true, 'null')")
        super().goto(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                if json.loads(self.evaluate_json("JSON.stringify(!window.__leftBehind && document.readyState)")) in (
                    "interactive",
                    "complete",
                ):
                    return
            except RuntimeError:
                pass  # between documents
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.02)


class PromptWebKit(WebKit):
    """WebKit with PromptWebKitTab's tabs."""

    def new_tab(self) -> Tab:
        return PromptWebKitTab(self.url)
