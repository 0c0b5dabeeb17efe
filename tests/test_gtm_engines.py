"""The GTM template in Chromium, Firefox ESR and WebKit: the chat boots whatever the collector does.

Each page fires gtm/template.tpl in the harness (tests/gtm_sandbox/sandbox.js, permissions checked at call time,
values converted at the edge), inline as GTM fires a tag on All Pages. The tag loads LoyJoy's loader (the demo's
stand-in, arriving after a delay as from a CDN) and the collector's script from a front that is up, refused,
hanging, answering 500, answering after 10 s (a cold start) or serving a broken script; behind it a real
collector on the local BigQuery. Assertions are on order and behaviour, never on times: the chat has booted
while the collector's script is still held or has just failed; the chat made meanwhile lands in BigQuery once
the collector is back, exactly once; GTM's dataLayer sees LoyJoy's own push for every event. The boot time as a
ratio to LoyJoy's own snippet is bench/gtm_boot.py's business (bash scripts/bench-gtm).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .browser_engines import Chromium, Engine, Firefox, Page, available, page_of
from .conftest import LOGS, Collector, LocalBigQuery, start_collector, stop
from .gtm_sandbox.pages import CHAT, CHAT_EVENTS, Front, PromptWebKit, Shop, boot_ms

pytestmark = pytest.mark.browser

LOYJOY_PUSHES = "return dataLayer.filter(function (e) { return e.event === 'loyjoy'; }).map(function (e) { return e.gaEventLabel; })"
HELD = "return LoyJoyCollector.stub.q.length"
ADOPTED = "return !!(window.LoyJoyCollector && LoyJoyCollector.version)"
FAILED_TRIES = "return gtmLogs.filter(function (l) { return l.indexOf('next try in') >= 0; }).length"
FACTS = """return {chatMade: window.chatMade, boots: LoyJoy.standin.boots(), bootedAt: LoyJoy.standin.bootedAt(),
  outcome: gtmOutcome.result, errors: gtm.errors,
  answered: Math.max.apply(null, performance.getEntriesByType('resource').filter(function (e) {
    return e.name.indexOf('/loyjoy-collector.js') >= 0; }).map(function (e) { return e.responseEnd; }))}"""


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    running = Shop(loader_delay=0.2).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def gtm_collector(local_bigquery: LocalBigQuery, shop: Shop) -> Iterator[Collector]:
    running = start_collector(local_bigquery.url, "gtm-engines-collector", ALLOWED_ORIGINS=shop.url)
    try:
        yield running
    finally:
        stop(running.process)


@pytest.fixture
def front(gtm_collector: Collector) -> Iterator[Front]:
    running = Front(gtm_collector.url).start()
    try:
        yield running
    finally:
        running.mode = "up"  # lets any held request go
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
        running = PromptWebKit(LOGS)
    try:
        yield running
    finally:
        running.stop()


def rows_of(local_bigquery: LocalBigQuery, tag: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The tag's rows once `count` arrived, and a moment more to see any extra."""
    deadline = time.monotonic() + timeout
    while len(local_bigquery.events("bot_id = @tag", tag=tag)) < count and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(1)
    return local_bigquery.events("bot_id = @tag", tag=tag)


def exactly_once(local_bigquery: LocalBigQuery, tag: str, names: list[str]) -> list[dict[str, Any]]:
    rows = rows_of(local_bigquery, tag, len(names))
    assert sorted(r["event_name"] for r in rows) == sorted(names)
    assert len({r["event_id"] for r in rows}) == len(rows)
    return rows


def chat(page: Page) -> None:
    page.js(CHAT)
    assert sorted(page.js(LOYJOY_PUSHES)) == CHAT_EVENTS  # GTM's triggers see LoyJoy's own push, collector or not


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["up", "refused", "hang", "500", "cold", "broken"])
def test_the_chat_boots_without_waiting_for_the_collector_and_the_chat_lands_once_it_is_back(
    engine: Engine, front: Front, shop: Shop, local_bigquery: LocalBigQuery, tag: str, mode: str
) -> None:
    if mode == "refused":
        front.stop()
    elif mode != "up":
        front.mode = mode
    with page_of(engine) as page:
        page.goto(shop.tag(front, data={"bot": tag, "consent": "none"}, chat=True))
        if mode in ("hang", "cold"):
            # Watched from the server: WebKit's driver runs nothing in a page whose injected script is pending.
            wait_for(lambda: front.held > 0)  # asked for, and held: the page booted and chatted meanwhile (below)
            if mode == "hang":
                front.mode = "up"  # the held request is answered now
        elif mode != "up":
            page.wait("return window.chatMade")
            page.wait(FAILED_TRIES)  # a try failed (refused, 500, a script that throws); more come, backing off
            assert not page.js(ADOPTED) and page.js(HELD) == len(CHAT_EVENTS)  # made meanwhile: in the queue
            assert local_bigquery.events("bot_id = @tag", tag=tag) == []
            if mode == "refused":
                front.start()
            else:
                front.mode = "up"
        page.wait(ADOPTED, timeout=45)
        facts = page.js(FACTS)
        assert sorted(page.js(LOYJOY_PUSHES)) == CHAT_EVENTS  # GTM's triggers saw LoyJoy's own push, collector or not
        exactly_once(local_bigquery, tag, CHAT_EVENTS)
    assert facts["bootedAt"] < facts["answered"]  # booted before the collector's script arrived
    if mode != "up":
        assert facts["chatMade"] == "before the script"
    assert (facts["boots"], facts["outcome"], facts["errors"]) == (1, "success", [])


def test_consent_mode_denied_nothing_sent_or_stored_then_granted_everything_lands(
    engine: Engine, front: Front, shop: Shop, local_bigquery: LocalBigQuery, tag: str
) -> None:
    with page_of(engine) as page:
        page.goto(shop.tag(front, data={"bot": tag, "consent": "consentMode"}, consent="denied"))
        boot_ms(page)
        page.wait(ADOPTED)
        chat(page)
        time.sleep(1.5)  # a flush interval and more: anything that would leave has left
        assert not [s for s in front.seen if s.startswith("POST")]
        assert (
            page.js("return Object.keys(localStorage).filter(function (k) { return k.indexOf('ljc:') === 0; })") == []
        )
        assert page.js("return LoyJoyCollector.pending()") == len(CHAT_EVENTS)  # in memory only
        page.js("gtm.updateConsent('analytics_storage', true)")  # the banner's Consent Mode update
        rows = exactly_once(local_bigquery, tag, CHAT_EVENTS)
    assert {r["consent_analytics"] for r in rows} == {"granted"}


def test_a_page_left_before_the_collector_arrived_is_counted_on_the_next(
    engine: Engine, front: Front, shop: Shop, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """What the queue held when the visitor left is lost with the page; the next page reports how many."""
    front.stop()
    with page_of(engine) as page:
        page.goto(shop.tag(front, data={"bot": tag, "consent": "none"}))
        boot_ms(page)
        page.wait(FAILED_TRIES)
        chat(page)
        front.start()
        page.goto(shop.tag(front, data={"bot": tag, "consent": "none"}))  # the next page, the same tab
        page.wait(ADOPTED)
        rows = exactly_once(local_bigquery, tag, ["load", "show"])
    assert sum(r["dropped_quota"] or 0 for r in rows) == len(CHAT_EVENTS)


def test_a_collector_failing_only_on_events_delivers_them_from_the_next_page(
    engine: Engine, front: Front, shop: Shop, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """The script arrived, the events are refused (BigQuery down behind it): its localStorage queue carries them
    to the visitor's next page, which sends them once the collector is back."""
    front.mode = "post500"
    data = {"bot": tag, "consent": "none", "maxBackoff": "1000"}
    with page_of(engine) as page:
        page.goto(shop.tag(front, data=data, chat=True))
        page.wait(ADOPTED)
        page.wait("return window.chatMade")
        wait_for(lambda: "POST / 500" in front.seen)
        front.mode = "up"
        page.goto(shop.tag(front, data=data))  # the next page of the same tab
        exactly_once(local_bigquery, tag, [*CHAT_EVENTS, "load", "show"])


def test_it_never_boots_twice_and_boots_from_the_pages_own_loader_before_or_after_it(
    engine: Engine, front: Front, shop: Shop, tag: str
) -> None:
    pages = {
        "fired twice": {"fires": 2},
        "the inline stub first": {"stub": {"loyjoy": {"bot": tag}}, "pageLoader": 0.3},  # its install: the loader
        "the page's loader after the tag": {"data": {"bot": tag, "loadLoyJoy": False}, "pageLoader": 0.3},
    }
    for name, spec in pages.items():
        with page_of(engine) as page:
            page.goto(shop.tag(front, **{"data": {"bot": tag, "consent": "none"}, **spec}))
            boot_ms(page)
            page.wait(ADOPTED)
            page.js("LoyJoy('open')")
            time.sleep(0.3)
            assert page.js("return LoyJoy.standin.boots()") == 1, name
            assert page.js(LOYJOY_PUSHES) == ["load", "show", "open"], name  # one listener, one push each


def test_past_the_queues_bound_the_events_are_counted_and_reported_by_the_script(
    browser: Any, front: Front, shop: Shop, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """In Chromium only: 500 events held, 5 more counted; the script reports the 5 with the first event it sends
    (the 500 then arrive at the pace the collector's per-client flood limit allows)."""
    front.stop()
    with page_of(Chromium(browser)) as page:
        page.goto(shop.tag(front, data={"bot": tag, "consent": "none"}))
        boot_ms(page)
        page.wait(FAILED_TRIES)
        page.js("for (var i = 0; i < 503; i++) LoyJoy.standin.chat.click('link-' + i)")  # + load, show: 505
        assert page.js("return [LoyJoyCollector.stub.q.length, LoyJoyCollector.stub.d]") == [500, 5]
        front.start()
        page.wait(ADOPTED, timeout=45)
        reported = lambda: local_bigquery.events("bot_id = @tag AND dropped_overflow IS NOT NULL", tag=tag)  # noqa: E731
        wait_for(reported)
    [report] = reported()
    assert (report["event_name"], report["dropped_overflow"]) == ("load", 5)  # the oldest held event carries it
