"""The install without GTM (inline stub + the collector's script) when the collector fails, in three engines.

An analytics outage must never take a customer-facing chat down. Each scenario loads, in the same run and the
same browser, LoyJoy's own snippet and then the stub install with the collector unreachable, answering 500,
answering after 10 s or serving a broken script, and compares the two times to LoyJoy's boot as a ratio (no
absolute thresholds: CI machines differ, the ratio does not). LoyJoy's loader (the demo's stand-in) arrives
after a fixed delay, as from a CDN, so the ratio measures what the install adds. Then the collector comes
back and every event made meanwhile must land in BigQuery exactly once (distinct event_id).

The pages come from a server of this module's own with a nonce-only Content-Security-Policy, which proves the
stub needs nothing but a nonce (its injected script carries it). The collector sits behind a front that this
module switches between failure modes (tests/gtm_sandbox/pages.py, shared with the GTM template's tests;
"answering after 10 s" is a cold start: every request waits until 10 s after the collector went cold); behind
it, a real collector on the local BigQuery.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from .browser_engines import Chromium, Engine, Firefox, Page, WebKit, available, page_of
from .conftest import LOGS, Collector, LocalBigQuery, free_port, start_collector, stop
from .gtm_sandbox.pages import COLD, Front

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "functions/loyjoy_collector/static"
STANDIN = ROOT / "snippet/demo/loyjoy-standin.js"
LOADER_DELAY = 0.5  # LoyJoy's loader from its CDN: the time both installs wait for, whatever the collector does
NONCE = "n0nce-f0r-the-test"
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
FIGURES: dict[str, dict[str, Any]] = {}


DRAINED = "return LoyJoyCollector.version && LoyJoyCollector.pending() === 0"


def stub_call(script_url: str, options: dict[str, Any]) -> str:
    """The built stub, called with this page's script URL and options (the README's placeholders replaced)."""
    built = (STATIC / "loyjoy-collector-stub.min.js").read_text()
    body = built.rsplit("(window,document,", 1)[0]
    return f"{body}(window,document,{json.dumps(script_url)},{json.dumps(options)});"


HEAD = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script nonce="{NONCE}">window.dataLayer = []; window.cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {{
  window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI); }});</script>"""


class Site(BaseHTTPRequestHandler):
    """The shop's pages: LoyJoy's own snippet, the stub install, and LoyJoy's (delayed) loader."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/loyjoy.js":
            time.sleep(float(query.get("delay", LOADER_DELAY)))
            code = STANDIN.read_bytes()
            if query.get("declared"):  # a loader that declares `function LoyJoy`, which bypasses any setter
                code += b"\nfunction LoyJoy(command, options) { return window.standinLoyJoy(command, options); }"
                code = code.replace(b"window.LoyJoy = function", b"window.standinLoyJoy = function", 1)
                code = code.replace(b"window.LoyJoy.standin =", b"window.standinLoyJoy.standin =", 1)
            return self.send(code, "application/javascript")
        if url.path == "/own":  # LoyJoy's documented JavaScript-API form: its loader, then boot
            page = f"""{HEAD}<title>own</title><script nonce="{NONCE}" src="/loyjoy.js"></script>
<script nonce="{NONCE}">LoyJoy('boot', {{bot: {json.dumps(query["bot"])}, eventListeners: [{SEED_LISTENER}]}});</script>"""
        elif url.path == "/stub":
            options = json.loads(query["options"])
            loader = "/loyjoy.js?" + requests.compat.urlencode(
                {k: query[k] for k in ("delay", "declared") if k in query}
            )
            page = f"""{HEAD}<title>stub</title><script nonce="{NONCE}">{stub_call(query["script"], options)}</script>
<script nonce="{NONCE}" async src="{loader}"></script>"""
            if query.get("chat"):  # the visitor chats at once, whatever the driver's idea of a loaded page
                page += f"""<script nonce="{NONCE}">(function chatWhenBooted() {{
  if (!(window.LoyJoy && LoyJoy.standin && LoyJoy.standin.bootedAt())) return setTimeout(chatWhenBooted, 10);
  {CHAT}
  window.chatMade = LoyJoyCollector.version ? 'after the script' : 'before the script';
}})();</script>"""
        elif url.path == "/tag":  # the one-tag install: the collector's script boots LoyJoy itself
            page = f"""{HEAD}<title>tag</title><script nonce="{NONCE}" async src="/loyjoy.js?delay={query["delay"]}"></script>
<script nonce="{NONCE}" async src="{query["script"]}" data-bot="{query["bot"]}"></script>"""
        else:
            return self.send(b"not found", "text/plain", 404)
        self.send((page + "</head><body><p>shop</p></body></html>").encode(), "text/html", csp=True)

    def send(self, data: bytes, mimetype: str, status: int = 200, csp: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if csp:
            self.send_header(
                "Content-Security-Policy", f"script-src 'nonce-{NONCE}'; object-src 'none'; base-uri 'none'"
            )
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Site)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def shop_collector(local_bigquery: LocalBigQuery, site: str) -> Iterator[Collector]:
    running = start_collector(local_bigquery.url, "engines-collector", ALLOWED_ORIGINS=site)
    try:
        yield running
    finally:
        stop(running.process)


@pytest.fixture
def front(shop_collector: Collector) -> Iterator[Front]:
    running = Front(shop_collector.url).start()
    try:
        yield running
    finally:
        running.mode = "up"
        running.stop()


@pytest.fixture(scope="module", params=["chromium", "firefox", "webkit"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    missing = available(request.param)
    if missing:
        pytest.skip(missing)
    LOGS.mkdir(parents=True, exist_ok=True)
    if request.param == "chromium":
        running: Engine = Chromium(request.getfixturevalue("browser"))
    elif request.param == "firefox":
        running = Firefox(LOGS)
    else:
        running = WebKit(LOGS)
    try:
        yield running
    finally:
        running.stop()
        (LOGS / "snippet-engines.json").write_text(json.dumps(FIGURES, indent=2, sort_keys=True))


def booted_at(page: Page, timeout: float = 30) -> float:
    """Milliseconds from navigation start to LoyJoy('boot'), as the stand-in recorded it."""
    return page.wait("return window.LoyJoy && LoyJoy.standin && LoyJoy.standin.bootedAt()", timeout=timeout)


def own_snippet_boot(page: Page, site: str, tag: str) -> float:
    page.goto(f"{site}/own?bot={tag}-own")
    return booted_at(page)


def stub_url(site: str, front: Front, options: dict[str, Any], chat: bool = False) -> str:
    query = {"script": f"{front.url}/loyjoy-collector.js", "options": json.dumps(options)}
    return f"{site}/stub?" + requests.compat.urlencode({**query, **({"chat": "1"} if chat else {})})


def rows_of(local_bigquery: LocalBigQuery, tag: str, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = local_bigquery.events("bot_id = @tag OR process_id = @tag", tag=tag)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def exactly_once(local_bigquery: LocalBigQuery, tag: str, names: list[str], timeout: float) -> list[dict[str, Any]]:
    rows = rows_of(local_bigquery, tag, len(names), timeout)
    time.sleep(1)  # a late duplicate would show up now
    rows = local_bigquery.events("bot_id = @tag OR process_id = @tag", tag=tag)
    assert sorted(r["event_name"] for r in rows) == sorted(names)
    assert len({r["event_id"] for r in rows}) == len(rows)
    return rows


def record(engine: Engine, mode: str, **figures: Any) -> None:
    FIGURES.setdefault(engine.name, {})[mode] = figures


@pytest.mark.parametrize("mode", ["down", "500", "cold", "broken"])
def test_the_chat_boots_at_once_and_everything_lands_once_the_collector_is_back(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str, mode: str
) -> None:
    with page_of(engine) as page:
        own = own_snippet_boot(page, site, tag)
        if mode == "down":
            front.stop()
        else:
            front.mode = mode
        started = time.monotonic()
        page.goto(stub_url(site, front, {"loyjoy": {"bot": tag}}, chat=True))
        stub = booted_at(page)
        assert page.wait("return window.chatMade") == "before the script"
        # GTM's triggers fire without the collector: the stub makes LoyJoy's own push.
        pushes = page.js("return dataLayer.filter(function (e) { return e.event === 'loyjoy'; }).length")
        assert pushes == len(CHAT_EVENTS)
        if mode != "cold":
            page.wait("return LoyJoyCollector.stub.q.length === arguments[0]", len(CHAT_EVENTS))
            time.sleep(2)  # the stub has tried, and failed, to load the collector's script
            assert page.js("return !LoyJoyCollector.version")
            assert local_bigquery.events("bot_id = @tag", tag=tag) == []
            if mode == "down":
                front.start()
            else:
                front.mode = "up"
        recovered = time.monotonic()
        exactly_once(local_bigquery, tag, CHAT_EVENTS, timeout=COLD + 30)
        landed = time.monotonic()
        assert page.js("return window.cspViolations") == []
    ratio = stub / own
    record(
        engine,
        mode,
        own_boot_ms=round(own),
        stub_boot_ms=round(stub),
        ratio=round(ratio, 2),
        delivered=len(CHAT_EVENTS),
        seconds_to_land_after_recovery=round(landed - recovered, 1),
        seconds_outage=round(recovered - started, 1),
    )
    assert ratio < 1.5, f"the chat booted {ratio:.2f}x slower than with LoyJoy's own snippet"


def test_a_collector_failing_only_on_events_delivers_from_a_later_page(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """The script loads, the events are refused (BigQuery down behind it): localStorage carries them over."""
    with page_of(engine) as page:
        front.mode = "post500"
        url = stub_url(site, front, {"loyjoy": {"bot": tag}, "maxBackoff": 1000})
        page.goto(url)
        booted_at(page)
        page.wait("return !!LoyJoyCollector.version")
        page.js(CHAT)
        page.wait("return LoyJoyCollector.pending() === arguments[0]", len(CHAT_EVENTS))
        deadline = time.monotonic() + 10
        while not any(s.startswith("POST") for s in front.seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(s == "POST / 500" for s in front.seen)
        front.mode = "up"
        page.goto(url)  # a later page of the same tab
        exactly_once(local_bigquery, tag, [*CHAT_EVENTS, "load", "show"], timeout=30)
    record(engine, "post500-later-page", delivered=len(CHAT_EVENTS) + 2)


def test_both_boot_forms_and_the_sites_listeners_with_the_collector_up(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str
) -> None:
    with page_of(engine) as page:
        own = own_snippet_boot(page, site, tag)
        # `process` alone, as LoyJoy's current embeds boot; the site's own map-form listener still runs.
        page.goto(stub_url(site, front, {"loyjoy": {"process": tag, "eventListeners": {"open": []}}}))
        stub = booted_at(page)
        options = page.js("var o = LoyJoy.standin.options(); return {bot: o.bot || null, process: o.process}")
        assert options == {"bot": None, "process": tag}
        page.wait("return !!LoyJoyCollector.version")
        page.js("LoyJoy('open')")
        rows = exactly_once(local_bigquery, tag, ["load", "show", "open"], timeout=20)
        assert {r["process_id"] for r in rows} == {tag}
        tagged = f"{tag}b"
        page.goto(stub_url(site, front, {"loyjoy": {"bot": tagged}}))
        booted_at(page)
        exactly_once(local_bigquery, tagged, ["load", "show"], timeout=20)
    record(engine, "up", own_boot_ms=round(own), stub_boot_ms=round(stub), ratio=round(stub / own, 2))
    assert stub / own < 1.5


def test_the_readme_shows_the_built_stub() -> None:
    """The install people copy is the install guide's: it must be the build, not a hand-edited older copy."""
    built = (STATIC / "loyjoy-collector-stub.min.js").read_text().strip()
    assert f"<script>\n{built}\n</script>" in (ROOT / "docs" / "install.md").read_text()


def test_a_whole_chat_lands_once_without_personal_data_and_gtm_sees_loyjoys_own_push(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str
) -> None:
    with page_of(engine) as page:
        page.goto(stub_url(site, front, {"loyjoy": {"bot": tag}}, chat=True))
        page.wait("return window.chatMade")
        # Keys as LoyJoy's own listener (SEED_LISTENER) makes them (an undefined gaEventAction is still a key), values as JSON.
        pushes = page.js("""return dataLayer.filter(function (e) { return e.event === 'loyjoy'; }).map(function (e) {
          return [Object.keys(e).join(','), e.gaEventCategory, e.gaEventAction === undefined ? '<undefined>' : e.gaEventAction,
                  e.gaEventLabel]; })""")
        page.wait("return LoyJoyCollector.version && LoyJoyCollector.pending() === 0")
        rows = exactly_once(local_bigquery, tag, CHAT_EVENTS, timeout=20)
    assert {p[0] for p in pushes} == {"event,gaEventCategory,gaEventAction,gaEventLabel"}
    assert {p[1] for p in pushes} == {"loyjoy"}
    assert sorted(p[3] for p in pushes) == CHAT_EVENTS
    assert {p[2] for p in pushes if p[3] == "show"} == {"<undefined>"}  # show carries no object
    assert {p[2] for p in pushes if p[3] != "show"} == {"Newsletter sign-up"}
    everything = json.dumps(rows, default=str)
    assert "jane@example.com" not in everything and "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" not in everything
    assert len({r["client_id"] for r in rows}) == 1 and len({r["session_id"] for r in rows}) == 1


def test_consent_mode_nothing_sent_or_stored_before_the_grant_then_everything(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str
) -> None:
    with page_of(engine) as page:
        page.goto(stub_url(site, front, {"loyjoy": {"bot": tag}, "consent": "consent-mode"}, chat=True))
        page.wait("return window.chatMade && LoyJoyCollector.version")
        time.sleep(2)
        assert [s for s in front.seen if s.startswith("POST")] == []
        assert (
            page.js("return Object.keys(localStorage).filter(function (k) { return k.indexOf('ljc:') === 0; })") == []
        )
        assert local_bigquery.events("bot_id = @tag", tag=tag) == []
        page.js("dataLayer.push(['consent', 'update', {analytics_storage: 'granted'}])")
        rows = exactly_once(local_bigquery, tag, CHAT_EVENTS, timeout=20)
    assert {r["consent_analytics"] for r in rows} == {"granted"}


def test_nothing_is_lost_when_the_page_is_left_mid_batch(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """Leaving the page hands the queue to the browser as keepalive requests, which outlive the page."""
    with page_of(engine) as page:
        page.goto(stub_url(site, front, {"loyjoy": {"bot": tag}, "flushInterval": 60_000}))
        page.wait("return LoyJoyCollector.version && LoyJoyCollector.pending() === 2")  # load, show
        page.js(CHAT)
        assert page.js("return LoyJoyCollector.pending()") == len(CHAT_EVENTS)
        page.goto("about:blank")
        exactly_once(local_bigquery, tag, CHAT_EVENTS, timeout=20)


def test_the_chat_boots_however_late_loyjoys_loader_arrives(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """The snippet used to give up after 10 s; a phone on a bad connection can take longer. Both installs wait."""
    late = 11
    script = f"{front.url}/loyjoy-collector.js"
    urls = [
        stub_url(site, front, {"loyjoy": {"bot": tag}}) + f"&delay={late}",
        f"{site}/tag?" + requests.compat.urlencode({"script": script, "bot": f"{tag}t", "delay": late}),
    ]
    if engine.name == "webkit":  # WebKitWebDriver holds one session at a time: one page after the other
        for url in urls:
            with page_of(engine) as page:
                page.goto(url)
                assert booted_at(page, timeout=late + 20) >= late * 1000
                page.wait(DRAINED)
    else:
        with page_of(engine) as stub, page_of(engine) as one_tag:
            for page, url in zip((stub, one_tag), urls, strict=True):
                page.goto(url)
            for page in (stub, one_tag):
                assert booted_at(page, timeout=late + 20) >= late * 1000
                page.wait(DRAINED)
    exactly_once(local_bigquery, tag, ["load", "show"], timeout=20)
    exactly_once(local_bigquery, f"{tag}t", ["load", "show"], timeout=20)


def test_a_loader_that_declares_function_loyjoy_still_boots_the_chat(
    engine: Engine, front: Front, site: str, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """A global function declaration replaces the stub's setter without calling it: a load event catches it."""
    with page_of(engine) as page:
        page.goto(stub_url(site, front, {"loyjoy": {"bot": tag}}) + "&declared=1")
        assert page.wait("return window.standinLoyJoy && standinLoyJoy.standin.bootedAt()") > 0
        assert page.js("return typeof LoyJoy") == "function"
        page.wait(DRAINED)
    exactly_once(local_bigquery, tag, ["load", "show"], timeout=20)
