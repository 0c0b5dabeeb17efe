"""Delivery under ad blockers: a real Chromium, the filter lists uBlock Origin ships, a real matching engine.

For each scenario — a chat that ends in a link click leading to another site, a tab closed mid-chat, a reload,
a collector that is down while the page is left — with the blocker off and on, and with the collector on its
own (third-party) host and behind the site's own `/lj/` path (first-party): every chat event lands, and each
counts once in the analyst tables however often it was sent. A control run proves the edge really blocks:
a browser without keepalive fetch, which must fall back to sendBeacon, loses events to the blocker.

ADBLOCK_TRIALS (default 1) chats of EVENTS_PER_CHAT events per scenario; `bash scripts/adblock-proof` runs
enough for 500 events per scenario and prints the table. ADBLOCK_SNIPPET=<file> serves another build of the
snippet instead of the collector's (e.g. a previous release, to measure what it lost).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page

from .adblock_edge import COLLECTOR, PARTNER, SHOP, UBO_ASSETS, Edge, load_engine
from .conftest import LocalBigQuery, start_collector, stop

pytestmark = pytest.mark.browser

TRIALS = int(os.environ.get("ADBLOCK_TRIALS", "1"))
OTHER_SNIPPET = Path(os.environ["ADBLOCK_SNIPPET"]).read_bytes() if os.environ.get("ADBLOCK_SNIPPET") else None
EVENTS_PER_CHAT = 12
STANDIN = (Path(__file__).resolve().parent.parent / "snippet/demo/loyjoy-standin.js").read_bytes()
SCENARIOS = ("link_away", "tab_closed", "reload", "collector_down")
ORPHAN_AFTER_S = 16  # the snippet adopts a closed tab's queue once it is 15 s old


def page_html(collector_base: str, tag: str, no_keepalive: bool) -> bytes:
    """A shop page: LoyJoy (the stand-in) and the snippet from the collector's URL, booted in JavaScript."""
    strip = "<script>delete Request.prototype.keepalive;</script>" if no_keepalive else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,">
{strip}<script src="/loyjoy-standin.js"></script>
<script src="{collector_base}loyjoy-collector.js"></script>
<script>LoyJoyCollector.boot({{loyjoy: {{bot: {json.dumps(tag)}}}, maxBackoff: 1500}});</script>
</head><body><a id="out" href="http://{PARTNER}:PORT/product">Zum Produkt</a></body></html>""".encode()


@dataclass
class World:
    edge: Edge
    context: BrowserContext
    first_party: bool
    tags: dict[str, list[str]] = field(default_factory=dict)  # scenario -> tags of its chats

    def shop(self, tag: str) -> str:
        return self.edge.url(SHOP, f"/page?tag={tag}")


@pytest.fixture(scope="module")
def engine():
    if not UBO_ASSETS.is_dir():
        pytest.fail("webext-ublock-origin-chromium is not installed: bash scripts/setup --browser installs it")
    return load_engine()


@pytest.fixture(scope="module")
def edge_collector(local_bigquery: LocalBigQuery):
    running = start_collector(local_bigquery.url, "adblock-collector", ALLOWED_ORIGINS="*")
    try:
        yield running
    finally:
        stop(running.process)


def make_edge(engine, collector_url: str, blocking: bool, no_keepalive: bool = False) -> Edge:
    holder: dict[str, Edge] = {}

    def pages(host: str, path: str) -> tuple[str, bytes] | None:
        edge = holder["edge"]
        if host == SHOP and path.startswith("/page"):
            tag = path.split("tag=", 1)[1]
            base = edge.url(SHOP, "/lj/") if "fp" in tag.split("-")[0] else edge.url(COLLECTOR, "/")
            html = page_html(base, tag, no_keepalive).replace(b":PORT", f":{edge.port}".encode())
            return "text/html; charset=utf-8", html
        if host == SHOP and path == "/loyjoy-standin.js":
            return "application/javascript", STANDIN
        if OTHER_SNIPPET is not None and path.endswith("/loyjoy-collector.js"):
            return "application/javascript", OTHER_SNIPPET
        if host == PARTNER:
            return "text/html", b"<!doctype html><title>Partner</title><p>A product page elsewhere.</p>"
        return None

    edge = Edge(engine, collector_url, pages)
    holder["edge"] = edge
    edge.blocking = blocking
    edge.start()
    return edge


def new_tag(world: World, scenario: str) -> str:
    tag = f"{'fp' if world.first_party else 'tp'}-{scenario[:4]}-{uuid.uuid4().hex[:10]}"
    world.tags.setdefault(scenario, []).append(tag)
    return tag


def open_shop(world: World, tag: str) -> Page:
    page = world.context.new_page()
    page.goto(world.shop(tag))
    page.wait_for_function("() => window.LoyJoyCollector && window.LoyJoy && LoyJoy.standin")
    return page


def chat(page: Page, then: str = "") -> None:
    """EVENTS_PER_CHAT events in quick succession (within one flush interval), then `then` at once."""
    page.evaluate(
        """([n, then]) => {
          const s = LoyJoy.standin;
          for (let i = 0; i < n; i++) s.emit(i === n - 1 ? 'link_clicked' : 'message_received', s.detail({label: 'seq-' + i}));
          if (then === 'away') document.getElementById('out').click();
        }""",
        [EVENTS_PER_CHAT, then],
    )


def run_scenario(world: World, scenario: str) -> None:
    edge = world.edge
    if scenario == "link_away":  # the last event is a click that leaves for another site
        page = open_shop(world, tag := new_tag(world, scenario))
        chat(page, "away")
        page.wait_for_url(f"**{PARTNER}**")
        page.wait_for_timeout(300)
        page.goto(world.shop(tag))  # the visitor comes back: the same tab adopts what was not confirmed
        page.wait_for_function("() => LoyJoyCollector.pending() === 0", timeout=20_000)
        page.close()
    elif scenario == "tab_closed":
        page = open_shop(world, new_tag(world, scenario))
        chat(page)
        page.close(run_before_unload=True)
    elif scenario == "reload":
        page = open_shop(world, tag := new_tag(world, scenario))
        chat(page)
        page.reload()
        page.wait_for_function("() => window.LoyJoyCollector && LoyJoyCollector.pending() === 0", timeout=20_000)
        page.close()
    elif scenario == "collector_down":
        edge.collector_down = True
        page = open_shop(world, tag := new_tag(world, scenario))
        page.wait_for_timeout(300)
        chat(page)
        page.wait_for_timeout(1200)  # a flush meets the 503: the snippet backs off
        page.goto(world.shop(tag))  # the page is left while the collector is down
        page.wait_for_timeout(500)
        edge.collector_down = False
        page.wait_for_function("() => LoyJoyCollector.pending() === 0", timeout=30_000)
        page.close()


def next_visit(world: World) -> None:
    """A visitor's next visit in a new tab (once closed tabs' queues count as orphaned)."""
    page = open_shop(world, f"{'fp' if world.first_party else 'tp'}-next-{uuid.uuid4().hex[:8]}")
    page.wait_for_function("() => LoyJoyCollector.pending() === 0", timeout=30_000)
    page.wait_for_timeout(1000)
    page.close()


@dataclass
class Tally:
    sent: int
    lost: int
    copies: int  # rows beyond the first of an event_id
    counted: int  # what events_dedup counts


def tally(local_bigquery: LocalBigQuery, tags: list[str], wait: float = 10.0) -> Tally:
    expected = {(tag, f"seq-{i}") for tag in tags for i in range(EVENTS_PER_CHAT)}
    table, view = local_bigquery.table("events"), local_bigquery.table("events_dedup")
    deadline = time.monotonic() + wait
    while True:
        rows = local_bigquery.query(
            f"SELECT bot_id, label, event_id FROM `{table}` WHERE bot_id IN UNNEST(@tags) AND label LIKE 'seq-%'",
            tags=tags,
        )
        found = {(row["bot_id"], row["label"]) for row in rows}
        if expected <= found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    local_bigquery.refresh()  # events_dedup reads the analyst table events_clean
    [counted] = local_bigquery.query(
        f"SELECT COUNT(*) AS n FROM `{view}` WHERE bot_id IN UNNEST(@tags) AND label LIKE 'seq-%'", tags=tags
    )
    return Tally(len(expected), len(expected - found), len(rows) - len({r["event_id"] for r in rows}), counted["n"])


@pytest.fixture(scope="module")
def worlds(browser, engine, edge_collector) -> Iterator[dict[tuple[str, bool], World]]:
    made: dict[tuple[str, bool], World] = {}
    edges = {blocking: make_edge(engine, edge_collector.url, blocking) for blocking in (False, True)}
    contexts = []
    for blocking, edge in edges.items():
        for first_party in (False, True):
            context = browser.new_context()
            contexts.append(context)
            made[("blocker" if blocking else "none", first_party)] = World(edge, context, first_party)
    try:
        yield made
    finally:
        for context in contexts:
            context.close()
        for edge in edges.values():
            edge.stop()


def test_no_chat_event_is_lost_under_ad_blockers_and_copies_count_once(worlds, local_bigquery):
    for world in worlds.values():
        for scenario in SCENARIOS:
            for _ in range(TRIALS):
                run_scenario(world, scenario)
    time.sleep(ORPHAN_AFTER_S)
    for world in worlds.values():
        next_visit(world)  # sends what closed tabs could not confirm

    lines, failures = [], []
    for (blocker, first_party), world in worlds.items():
        for scenario in SCENARIOS:
            result = tally(local_bigquery, world.tags[scenario])
            endpoint = "first-party /lj/" if first_party else "third-party host"
            lines.append(
                f"{scenario:15} {blocker:8} {endpoint:17} sent {result.sent:5}  lost {result.lost:3}  "
                f"copies {result.copies:3}  counted once {result.counted:5}"
            )
            if result.lost or result.counted != result.sent:
                failures.append(lines[-1])
    blocked_beacons = sum(w.edge.count("ping", "blocked") for w in worlds.values())
    print("\n" + "\n".join(lines) + f"\nbeacons blocked: {blocked_beacons}")
    assert not failures, failures
    # The blocker was really on: it blocked requests of the pages (GA-style paths, beacons), and the snippet's
    # keepalive fetches to the collector passed it.
    blocking_edge = worlds[("blocker", False)].edge
    assert blocking_edge.count("xmlhttprequest", "passed", COLLECTOR) > 0


def test_control_without_keepalive_the_blocker_drops_beacons(browser, engine, edge_collector, local_bigquery):
    """A browser without keepalive fetch falls back to sendBeacon; EasyPrivacy's `$ping,third-party` drops
    those beacons to the collector's own host. Proof that the edge blocks what uBlock Origin blocks — and that
    even then the snippet loses nothing once the visitor comes back, since beacons are never acknowledged."""
    edge = make_edge(engine, edge_collector.url, blocking=True, no_keepalive=True)
    context = browser.new_context()
    world = World(edge, context, first_party=False)
    try:
        page = open_shop(world, tag := new_tag(world, "link_away"))
        assert page.evaluate("() => 'keepalive' in Request.prototype") is False
        chat(page, "away")
        page.wait_for_url(f"**{PARTNER}**")
        page.wait_for_timeout(1500)
        before = tally(local_bigquery, [tag], wait=2)
        assert edge.count("ping", "blocked", COLLECTOR) > 0
        assert before.lost > 0  # what the old snippet lost for good: it acknowledged on handing to the beacon
        page.goto(world.shop(tag))  # the visitor comes back
        page.wait_for_function("() => LoyJoyCollector.pending() === 0", timeout=20_000)
        after = tally(local_bigquery, [tag])
        assert after.lost == 0 and after.counted == after.sent
    finally:
        context.close()
        edge.stop()
