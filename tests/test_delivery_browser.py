"""Delivery you can prove: the snippet's numbers (`seq`) and drop counts (`dropped`) in a real Chromium.

An edge between the page and the collector (Playwright's request interception, as in test_gtm_template.py)
forwards requests to the real collector, answers some with a fake success without forwarding them (lost for
good: the snippet believes them delivered), or fails them (a network error) for the rest of a visit, so the
next visit delivers them. The collector's rows then show exactly the gaps the edge made, no more; and
`delivery_health`, refreshed as the scheduled query does it, counts exactly those.

Each test serves its page from a host of its own (`https://<tag>.delivery.test`, intercepted, never resolved),
so the host's rows in `delivery_health` are that test's alone; the edge forwards with the origin the session's
collector allows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from .conftest import Collector, LocalBigQuery

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PAGE_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Delivery test page</title>
<link rel="icon" href="data:,">
<script src="/page.js"></script>
<script src="/loyjoy-standin.js"></script>
<script src="/loyjoy-collector.min.js"></script>
</head><body><p>Delivery test page.</p></body></html>"""
FILES = {
    "/page.html": (PAGE_HTML, "text/html"),
    "/page.js": ((ROOT / "snippet/test/page.js").read_text(), "text/javascript"),
    "/loyjoy-standin.js": ((ROOT / "snippet/demo/loyjoy-standin.js").read_text(), "text/javascript"),
    # What the collector serves to every site: the shipped build, not the source.
    "/loyjoy-collector.min.js": (
        (ROOT / "functions/loyjoy_collector/static/loyjoy-collector.min.js").read_text(),
        "text/javascript",
    ),
}


@dataclass
class Edge:
    """The network between one test's page and the collector: `mode` says what happens to the next request.

    forward: to the collector, its answer back; fake: 200 without forwarding (lost, and the snippet cannot
    know); fail: a network error (the snippet keeps the events and tries again later).
    """

    collector: Collector
    host: str
    mode: str = "forward"
    requests: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (mode, events) in order

    @property
    def origin(self) -> str:
        return f"https://{self.host}"

    def events(self, mode: str) -> list[dict[str, Any]]:
        return [event for seen, events in self.requests if seen == mode for event in events]

    def seqs(self, mode: str) -> set[int]:
        return {event["seq"] for event in self.events(mode)}

    def handle(self, route: Route) -> None:
        request = route.request
        path = urlparse(request.url).path
        if request.method == "GET" and path in FILES:
            body, kind = FILES[path]
            return route.fulfill(status=200, body=body, content_type=kind)
        if request.method != "POST" or path != "/lj/":
            return route.fulfill(status=404, body="not found", content_type="text/plain")
        body = request.post_data_buffer or b""
        mode = self.mode
        self.requests.append((mode, json.loads(body)["events"]))
        if mode == "fake":
            return route.fulfill(status=200, body='{"stored": true}', content_type="application/json")
        if mode == "fail":
            return route.abort("connectionreset")
        answer = self.collector.post(body)  # with the origin the collector allows and a visitor's user agent
        route.fulfill(status=answer.status_code, body=answer.content, content_type=answer.headers["Content-Type"])


class Visitor:
    """One tab on the edge's host; its page can go to the next visit (same tab, same storage)."""

    def __init__(self, context: BrowserContext, edge: Edge) -> None:
        self.edge = edge
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def visit(self, **options: Any) -> None:
        self.page.goto(self.edge.origin + "/page.html")
        self.boot(**options)

    def boot(self, **options: Any) -> None:
        options = {"collector": self.edge.origin + "/lj/", "maxBackoff": 300, **options}
        self.page.evaluate("options => LoyJoyCollector.boot(options)", options)

    def click(self, *labels: str) -> None:
        """Chat events, one `link_clicked` per label (the label tells them apart)."""
        self.page.evaluate("labels => labels.forEach(l => LoyJoy.standin.chat.click(l))", list(labels))

    def pending(self) -> int:
        return self.page.evaluate("() => LoyJoyCollector.pending()")

    def drained(self, timeout: float = 15_000) -> None:
        self.page.wait_for_function("() => LoyJoyCollector.pending() === 0", timeout=timeout)

    def wait_for_requests(self, mode: str, count: int, timeout: float = 15) -> None:
        """Let the page run (the edge answers only while Playwright is called) until `count` such requests."""
        deadline = time.monotonic() + timeout
        while sum(1 for seen, _ in self.edge.requests if seen == mode) < count:
            assert time.monotonic() < deadline, f"fewer than {count} {mode} requests"
            self.page.wait_for_timeout(100)


def open_edge(browser: Browser, collector: Collector) -> tuple[Edge, BrowserContext]:
    """A fresh browser profile whose requests to a host of its own go through an edge."""
    context = browser.new_context()
    edge = Edge(collector, f"t{uuid.uuid4().hex[:12]}.delivery.test")
    context.route(edge.origin + "/**", edge.handle)
    return edge, context


@pytest.fixture
def edge(browser: Browser, collector: Collector) -> Iterator[tuple[Edge, BrowserContext]]:
    edge, context = open_edge(browser, collector)
    try:
        yield edge, context
    finally:
        context.close()


def rows_of(local_bigquery: LocalBigQuery, host: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The host's rows once `count` arrived (and a moment more, to see any extra)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = local_bigquery.events("page_hostname = @host", host=host)
        if len(rows) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    time.sleep(0.5)
    return local_bigquery.events("page_hostname = @host", host=host)


def health(local_bigquery: LocalBigQuery, host: str) -> dict[str, Any]:
    """delivery_health summed over the host's rows, refreshed as the scheduled query does it."""
    local_bigquery.refresh()
    [summed] = local_bigquery.query(
        f"""SELECT SUM(seq_gaps) AS seq_gaps, SUM(dropped_overflow) AS overflow, SUM(dropped_quota) AS quota,
                   SUM(dropped_consent) AS consent, SUM(events_received) AS events_received
            FROM `{local_bigquery.table("delivery_health")}` WHERE page_hostname = @host""",
        host=host,
    )
    return summed


def missing(seqs: list[int]) -> set[int]:
    """Numbers never received below the highest received: the gaps."""
    return set(range(1, max(seqs) + 1)) - set(seqs)


@dataclass
class Delivery:
    edge: Edge
    rows: list[dict[str, Any]]
    later: set[str]  # event_ids failed on the first visit


@pytest.fixture(scope="module")
def delivery(browser, collector, local_bigquery) -> Iterator[Delivery]:
    """Two visits of one visitor through an edge that loses some requests for good and fails others until the
    next visit; what the collector stored."""
    edge, context = open_edge(browser, collector)
    try:
        yield two_visits(edge, context, local_bigquery)
    finally:
        context.close()


def two_visits(edge: Edge, context: BrowserContext, local_bigquery: LocalBigQuery) -> Delivery:
    visitor = Visitor(context, edge)
    visitor.visit()  # load, show: forwarded
    visitor.drained()
    edge.mode = "fake"  # lost for good, and the snippet believes them delivered
    visitor.click("lost-1", "lost-2")
    visitor.drained()
    edge.mode = "forward"
    visitor.click("kept-1")
    visitor.drained()
    edge.mode = "fake"
    visitor.click("lost-3")
    visitor.drained()
    edge.mode = "forward"
    visitor.click("kept-2", "kept-3")
    visitor.drained()
    edge.mode = "fail"  # from here on this visit delivers nothing: the queue waits for the next page
    visitor.click("later-1", "later-2", "later-3")
    visitor.wait_for_requests("fail", 3)  # the first try and two retries
    assert visitor.pending() == 3
    visitor.page.goto(edge.origin + "/page.html")  # the next visit, in the same tab; the old page is gone
    edge.mode = "forward"
    visitor.boot()
    visitor.drained()
    later = {event["event_id"] for event in edge.events("fail")}
    assert len(later) == 3
    sent = {event["event_id"] for mode in ("forward", "fail") for event in edge.events(mode)}
    rows = rows_of(local_bigquery, edge.host, len(sent))
    assert visitor.errors == []
    return Delivery(edge, rows, later)


def test_the_gaps_are_exactly_the_requests_lost_at_the_edge(delivery):
    edge, rows = delivery.edge, delivery.rows
    lost = edge.seqs("fake")
    assert len(lost) == 3 and len(edge.events("fake")) == 3  # lost-1, lost-2, lost-3
    # Every event the edge let through arrived once; none it faked did.
    through = {event["event_id"] for mode in ("forward", "fail") for event in edge.events(mode)}
    assert sorted(r["event_id"] for r in rows) == sorted(through)
    assert not {event["event_id"] for event in edge.events("fake")} & {r["event_id"] for r in rows}
    assert len({r["client_id"] for r in rows}) == 1
    received = [r["client_seq"] for r in rows]
    assert len(received) == len(set(received))  # one number per event
    assert missing(received) == lost  # exactly the events lost at the edge, no more
    # Nothing the snippet knew of was lost: no drop counts.
    assert all(r[c] is None for r in rows for c in ("dropped_overflow", "dropped_quota", "dropped_consent"))


def test_events_failed_on_one_visit_arrive_from_the_next_marked_later_page(delivery):
    rows = {r["event_id"]: r for r in delivery.rows}
    assert delivery.later <= set(rows)  # all of them arrived: no gap
    assert {r["label"] for i, r in rows.items() if i in delivery.later} == {"later-1", "later-2", "later-3"}
    assert all(rows[i]["delivered_later_page"] is True for i in delivery.later)
    assert all("resent" in rows[i]["quality_flags"] for i in delivery.later)  # tried before: maybe a copy
    assert all(r["delivered_later_page"] is None for i, r in rows.items() if i not in delivery.later)
    # The second visit numbers on from the first.
    second_visit = [r for r in rows.values() if r["event_name"] in ("load", "show")][2:]
    assert min(r["client_seq"] for r in second_visit) > max(rows[i]["client_seq"] for i in delivery.later)


def test_delivery_health_counts_exactly_those_gaps(delivery, local_bigquery):
    local_bigquery.refresh()
    [health] = local_bigquery.query(
        f"""SELECT SUM(seq_gaps) AS seq_gaps, SUM(events_received) AS events_received, SUM(resent) AS resent,
                   SUM(dropped_overflow + dropped_quota + dropped_consent) AS dropped,
                   MAX(later_page_share) AS later_page_share, COUNT(*) AS groups,
                   STRING_AGG(DISTINCT engine) AS engine
            FROM `{local_bigquery.table("delivery_health")}` WHERE page_hostname = @host""",
        host=delivery.edge.host,
    )
    assert health["seq_gaps"] == len(delivery.edge.seqs("fake")) == 3
    assert health["events_received"] == len(delivery.rows)
    assert health["dropped"] == 0
    assert health["resent"] == len(delivery.later)  # tried on the first visit, delivered from the second
    assert health["later_page_share"] == pytest.approx(len(delivery.later) / len(delivery.rows))
    assert (health["groups"], health["engine"]) == (1, "Blink")  # one day, one browser


def test_overflow_past_max_queue_reports_the_exact_count(edge, local_bigquery):
    """12 events into a queue of 5 that is not sent meanwhile: the 7 oldest go, and the reports say 7."""
    edge, context = edge
    visitor = Visitor(context, edge)
    visitor.visit(maxQueue=5, flushInterval=600_000)  # load, show
    visitor.click(*(f"click-{n}" for n in range(10)))
    assert visitor.pending() == 5
    assert edge.requests == []  # nothing sent yet: the 7 never left the browser
    visitor.page.evaluate("() => LoyJoyCollector.flush()")
    visitor.drained()
    visitor.click("after")  # carries what was still pending (the report of an event that overflowed too)
    visitor.page.evaluate("() => LoyJoyCollector.flush()")
    visitor.drained()
    rows = rows_of(local_bigquery, edge.host, 6)
    assert sorted(r["label"] or r["event_name"] for r in rows) == ["after"] + [f"click-{n}" for n in range(5, 10)]
    assert sum(r["dropped_overflow"] or 0 for r in rows) == 7
    assert missing([r["client_seq"] for r in rows]) == set(range(1, 8))  # the dropped ones are the gaps
    assert all(r["dropped_quota"] is None and r["dropped_consent"] is None for r in rows)
    # Below a client's first received number delivery_health sees no gap (a returning visitor's numbers start
    # anywhere): the report is what tells.
    summed = health(local_bigquery, edge.host)
    assert (summed["overflow"], summed["seq_gaps"], summed["quota"], summed["consent"]) == (7, 0, 0, 0)


def test_events_discarded_by_a_refusal_are_counted_once_consent_comes(edge, local_bigquery):
    """Pending, then refused: the waiting events go, nothing sent or stored. Granted later on the same page: the
    next event reports how many went, and their numbers are the gaps."""
    edge, context = edge
    visitor = Visitor(context, edge)
    visitor.page.goto(edge.origin + "/page.html")
    visitor.page.evaluate(
        "collector => LoyJoyCollector.boot({collector, maxBackoff: 300, consent: () => window.__consent})",
        edge.origin + "/lj/",
    )  # load, show: waiting for consent
    visitor.click("waiting-1", "waiting-2")
    assert visitor.pending() == 4
    visitor.page.evaluate("() => { window.__consent = false; }")
    visitor.click("refused")  # not even built
    visitor.page.wait_for_timeout(1500)
    assert visitor.pending() == 0 and edge.requests == []
    assert visitor.page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('ljc:'))") == []
    visitor.page.evaluate("() => { window.__consent = true; }")
    visitor.click("granted")
    visitor.drained()
    [row] = rows_of(local_bigquery, edge.host, 1)
    assert (row["label"], row["dropped_consent"], row["client_seq"]) == ("granted", 4, 5)
    assert row["dropped_overflow"] is None and row["dropped_quota"] is None
    summed = health(local_bigquery, edge.host)
    assert (summed["consent"], summed["seq_gaps"], summed["events_received"]) == (4, 0, 1)


FILL_STORAGE = """() => {
  let n = 0, size = 1 << 20;
  while (size >= 1) {
    try { localStorage.setItem('site-' + n, 'x'.repeat(size)); n++; } catch (e) { size >>= 1; }
  }
  try { localStorage.setItem('site-probe', 'x'); } catch (e) { return true; }
  return false;
}"""


def test_a_full_storage_counts_what_the_page_could_neither_keep_nor_send(edge, local_bigquery):
    """The site filled localStorage: the queue cannot be kept. The collector fails, one event was tried, two
    more wait for the retry when the visitor moves on: those two never left the browser and are counted
    (`quota`, reported by the next page); the one that was tried may have arrived for all the page knows, and
    only its gap shows it."""
    edge, context = edge
    visitor = Visitor(context, edge)
    visitor.visit(flushInterval=50, maxBackoff=60_000)  # load, show: delivered
    visitor.drained()
    assert visitor.page.evaluate(FILL_STORAGE) is True  # not one more character fits
    edge.mode = "fail"
    visitor.click("tried")
    visitor.wait_for_requests("fail", 1)  # failed: the retry is 1 to 2 s away
    visitor.click("waiting-1", "waiting-2")
    assert visitor.pending() == 3
    visitor.page.goto(edge.origin + "/page.html")  # before the retry: nothing is handed over while failing
    edge.mode = "forward"
    visitor.boot(flushInterval=50)  # load, show; the storage is as full as before
    visitor.page.wait_for_timeout(500)  # the previous page's record taken over
    visitor.click("after")
    visitor.drained()
    rows = rows_of(local_bigquery, edge.host, 5)
    assert sorted(r["label"] or r["event_name"] for r in rows) == ["after", "load", "load", "show", "show"]
    assert sum(r["dropped_quota"] or 0 for r in rows) == 2  # waiting-1 and waiting-2
    [tried] = edge.seqs("fail")
    assert missing([r["client_seq"] for r in rows]) == {tried, tried + 1, tried + 2}
    assert all(r["dropped_overflow"] is None and r["dropped_consent"] is None for r in rows)
    assert visitor.errors == []
    summed = health(local_bigquery, edge.host)
    assert (summed["seq_gaps"], summed["quota"], summed["overflow"]) == (3, 2, 0)  # known: 2; lost: 3


def test_two_tabs_of_one_client_never_give_the_same_number(edge, local_bigquery):
    """Tabs taking turns, as a visitor switching between them does: each numbers on from the other's last.
    (Each tab reads the counter from its own process's copy of localStorage, which the browser brings up to
    date within moments: two tabs building an event in the same instant may both give one number, which hides
    a gap and never makes one.)"""
    edge, context = edge
    tabs = [Visitor(context, edge), Visitor(context, edge)]

    def caught_up(tab: Visitor) -> None:
        counter = tab.page.evaluate("() => localStorage.getItem('ljc:seq')")
        for other in tabs:  # every tab's copy of the counter has caught up
            if other.page.url.startswith(edge.origin):
                other.page.wait_for_function("c => localStorage.getItem('ljc:seq') === c", arg=counter)

    def turn(tab: Visitor, label: str) -> None:
        tab.click(label)
        caught_up(tab)

    for index, tab in enumerate(tabs):
        tab.visit()  # load, show each
        caught_up(tab)
        turn(tab, f"tab-{index}-boot")
    for n in range(4):
        for index, tab in enumerate(tabs):
            turn(tab, f"tab-{index}-{n}")
    for tab in tabs:
        tab.drained()
    rows = rows_of(local_bigquery, edge.host, 14)
    assert len(rows) == 14 and len({r["client_id"] for r in rows}) == 1
    assert sorted(r["client_seq"] for r in rows) == list(range(1, 15))  # each number once, none skipped
    made = ["load", "show", "tab-0-boot", "load", "show", "tab-1-boot"]
    made += [f"tab-{index}-{n}" for n in range(4) for index in range(2)]
    assert [r["label"] or r["event_name"] for r in sorted(rows, key=lambda r: r["client_seq"])] == made  # in turn


def test_taking_over_an_earlier_pages_queue_past_max_queue_counts_what_goes(edge, local_bigquery):
    """The first visit has no collector (nothing sent, nothing handed over on leaving): its 5 events wait in
    localStorage. The next visit, with a queue of 3, takes them over beside its own 2: 4 of the 7 go, counted."""
    edge, context = edge
    visitor = Visitor(context, edge)
    visitor.visit(collector="")  # load, show
    visitor.click("first-1", "first-2", "first-3")
    assert visitor.pending() == 5
    visitor.page.goto(edge.origin + "/page.html")
    assert edge.requests == []
    visitor.boot(maxQueue=3)  # load, show; then the earlier page's 5
    visitor.drained()
    visitor.click("after")  # carries the count
    visitor.drained()
    rows = rows_of(local_bigquery, edge.host, 4)
    assert len(rows) == 4
    assert sum(r["dropped_overflow"] or 0 for r in rows) == 4
    gaps = missing([r["client_seq"] for r in rows])
    assert len(gaps) == 4 and max(gaps) < max(r["client_seq"] for r in rows)
    assert sum(bool(r["delivered_later_page"]) for r in rows) == len([r for r in rows if r["client_seq"] <= 5])


def test_a_count_not_yet_reported_survives_a_reload(edge, local_bigquery):
    """The count waits with the queue in localStorage: the page that comes next reports it."""
    edge, context = edge
    visitor = Visitor(context, edge)
    visitor.visit(collector="", maxQueue=3)  # no collector yet: nothing leaves; load, show
    visitor.click("first-1", "first-2", "first-3")  # 5 events into 3: load and show go
    assert visitor.pending() == 3
    visitor.page.reload()
    visitor.boot()  # load, show; the earlier page's 3 and its count taken over
    visitor.drained()
    visitor.click("after")
    visitor.drained()
    rows = {r["label"] or r["event_name"]: r for r in rows_of(local_bigquery, edge.host, 6) if r["client_seq"] > 2}
    assert sorted(rows) == ["after", "first-1", "first-2", "first-3", "load", "show"]
    assert rows["first-3"]["dropped_overflow"] == 1  # load went when first-2 came; first-3 was the next built
    assert rows["after"]["dropped_overflow"] == 1  # show went when first-3 came: reported by the next page
    assert sum(r["dropped_overflow"] or 0 for r in rows.values()) == 2
    assert missing([r["client_seq"] for r in rows.values()]) == {1, 2}
