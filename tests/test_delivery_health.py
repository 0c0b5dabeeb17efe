"""delivery_health in the local BigQuery: exact sequence gaps on a hand-made set (within a day, across days, a
late event filling a gap, copies counted once), the snippet's drop reports, delays, engines; incremental equals
full, a second run changes nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loyjoy_collector.ops.cli import local_env
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row
from loyjoy_collector.settings import Settings

from .conftest import PROJECT

DATASET = "delivery_test"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73"
    " Mobile/15E148 Safari/604.1"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Safari/605.1.15"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
KEYS = ("event_date", "page_hostname", "browser", "engine", "device_type", "protocol")


@dataclass
class Event:
    """One event as the snippet sends it: client, its number, when it happened, and what it reports."""

    client: str
    seq: int | None
    ts: datetime
    agent: str = CHROME
    host: str = "shop.example.com"
    retry: int | None = None
    dropped: dict[str, int] | None = None
    later_page: bool | None = None
    delay: timedelta | None = None  # received this long after it happened (default: when sent)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def row(event: Event, received_at: datetime) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "event": "message",
        "ts": event.ts.isoformat(),
        "sent_at": event.ts.isoformat(),
        "client_id": event.client,
        "session_id": "s-" + event.client,
        "bot_id": "b-delivery",
        "process_id": "p-1",
        "event_id": event.event_id,
        "page_location": f"https://{event.host}/page",
    }
    for key, value in (("seq", event.seq), ("retry", event.retry), ("dropped", event.dropped),
                       ("later_page", event.later_page)):  # fmt: skip
        if value is not None:
            raw[key] = value
    ctx = RequestContext(event.ts, "POST", "/", "", "text/plain", None, event.agent, None, None)
    made = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, Settings(bq_dataset=DATASET), Scrubber(b"k"))
    received = event.ts + event.delay if event.delay is not None else received_at
    return made | {"received_at": received.isoformat().replace("+00:00", "Z")}


@pytest.fixture(scope="module")
def env(local_bigquery):
    environment = local_env(local_bigquery.port, "") | {"BQ_DATASET": DATASET}
    subprocess.run([sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=environment, check=True,
                   capture_output=True)  # fmt: skip
    return environment


def send(local_bigquery, events: list[Event], ago: timedelta = timedelta(0)) -> None:
    """Rows as the collector writes them, received `ago` before now."""
    received = datetime.now(UTC) - ago
    rows = [row(e, received) for e in events]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows) == []


def refresh(env, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", *args], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def health(local_bigquery, where: str = "TRUE") -> list[dict[str, Any]]:
    return local_bigquery.query(
        f"SELECT * FROM `{PROJECT}.{DATASET}.delivery_health` WHERE {where} ORDER BY {', '.join(KEYS)}"
    )


def by(local_bigquery, *keys: str, where: str = "TRUE") -> dict[Any, dict[str, Any]]:
    """The table summed over the other keys: {(key values): {column: sum}}."""
    out: dict[Any, dict[str, Any]] = {}
    for r in health(local_bigquery, where):
        key = tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]
        totals = out.setdefault(key, {})
        for column in ("events_received", "events_numbered", "seq_gaps", "dropped_overflow", "dropped_quota",
                       "dropped_consent", "resent", "duplicates"):  # fmt: skip
            totals[column] = totals.get(column, 0) + r[column]
    return out


def snapshot(local_bigquery) -> list[str]:
    return sorted(repr(sorted(r.items())) for r in health(local_bigquery))


def test_gaps_within_a_day_across_days_late_fills_copies_and_incremental_equals_full(env, local_bigquery):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    d = [today - timedelta(days=n) for n in (0, 1, 2, 3)]  # today, yesterday, ...
    a, b, c, g = (f"{name}-{uuid.uuid4().hex[:6]}" for name in "abcg")
    h = "gaps.example.com"  # this test's host: the other tests' rows stay out of its numbers
    eight = Event(a, 8, d[1] + timedelta(hours=11), host=h)
    hours_ago = timedelta(hours=3)  # received before the next runs' lookback: they see only what comes later
    send(local_bigquery, [
        # Client a, Chrome: 1 2 _ 4 the day before yesterday (one gap), _ _ 7 8 yesterday (two, across the
        # night), 9 _ _ 12 today (two). 8 arrives twice: the second copy flagged resent.
        Event(a, 1, d[2] + timedelta(hours=9), host=h), Event(a, 2, d[2] + timedelta(hours=9, minutes=1), host=h),
        Event(a, 4, d[2] + timedelta(hours=10), host=h),
        Event(a, 7, d[1] + timedelta(hours=10), host=h), eight,
        Event(a, 9, d[0] + timedelta(minutes=10), host=h), Event(a, 12, d[0] + timedelta(minutes=20), host=h),
        # Client b, Chrome on an iPhone (WebKit, like every iOS browser): 1 2 3 _ 5 today; 4 comes later.
        *[Event(b, n, d[0] + timedelta(minutes=n), agent=CHROME_IOS, host=h) for n in (1, 2, 3, 5)],
        # Client c, Firefox: 1 three days ago, _ 3 yesterday; 2 comes later, dated three days ago.
        Event(c, 1, d[3] + timedelta(hours=8), agent=FIREFOX, host=h),
        Event(c, 3, d[1] + timedelta(hours=8), agent=FIREFOX, host=h),
        # Client g starts at 3 (numbers below a client's first count nothing: it may be a returning visitor).
        Event(g, 3, d[0] + timedelta(minutes=30), agent=SAFARI_MAC, host=h),
        Event(g, 4, d[0] + timedelta(minutes=31), agent=SAFARI_MAC, host=h),
    ], ago=hours_ago)  # fmt: skip
    send(local_bigquery, [Event(a, 8, eight.ts, host=h, retry=1, event_id=eight.event_id)], ago=hours_ago)
    refresh(env, "--full")

    def per_day() -> dict[Any, tuple[int, int]]:
        days = by(local_bigquery, "event_date", where=f"page_hostname = '{h}'")
        return {day: (v["events_received"], v["seq_gaps"]) for day, v in days.items()}

    assert per_day() == {
        d[3].date(): (1, 0),
        d[2].date(): (3, 1),  # a: 3
        d[1].date(): (3, 2 + 1),  # a: 5 6 (below 7), c: 2 (below 3, two days after 1)
        d[0].date(): (2 + 4 + 2, 2 + 1),  # a: 10 11, b: 4
    }
    copies = by(local_bigquery, "event_date", where=f"page_hostname = '{h}'")[d[1].date()]
    assert (copies["resent"], copies["duplicates"]) == (1, 1)  # a's 8 counted once, its copy seen
    engines = by(local_bigquery, "browser", "engine", where=f"page_hostname = '{h}'")
    assert {key: v["seq_gaps"] for key, v in engines.items()} == {
        ("Chrome", "Blink"): 5,
        ("Chrome Mobile iOS", "WebKit"): 1,
        ("Firefox", "Gecko"): 1,
        ("Safari", "WebKit"): 0,
    }

    before = snapshot(local_bigquery)
    refresh(env)
    assert snapshot(local_bigquery) == before  # idempotent

    # A late event alone: c's 2, dated three days ago. The run rebuilds that day, and yesterday too, where the
    # gap it fills was counted (on c's 3).
    send(local_bigquery, [Event(c, 2, d[3] + timedelta(hours=9), agent=FIREFOX, host=h, retry=2)])
    assert "rebuilt 1 event days" in refresh(env)
    assert per_day() == {d[3].date(): (2, 0), d[2].date(): (3, 1), d[1].date(): (3, 2), d[0].date(): (8, 3)}
    resent = by(local_bigquery, "event_date", where=f"page_hostname = '{h}'")[d[3].date()]
    assert (resent["resent"], resent["duplicates"]) == (1, 0)  # sent again, yet the only copy that arrived

    # More late ones: b's 4 today, a's 3 and a's 5 (sent twice, from a later page).
    five = Event(a, 5, d[1] + timedelta(hours=9), host=h, later_page=True)
    send(local_bigquery, [Event(b, 4, d[0] + timedelta(minutes=4), agent=CHROME_IOS, host=h, later_page=True),
                          Event(a, 3, d[2] + timedelta(hours=9, minutes=30), host=h), five])  # fmt: skip
    send(local_bigquery, [Event(a, 5, five.ts, host=h, retry=1, later_page=True, event_id=five.event_id)])
    refresh(env)
    assert per_day() == {
        d[3].date(): (2, 0),
        d[2].date(): (4, 0),  # a's 3 filled the gap below 4
        d[1].date(): (4, 1),  # a's 6 is still missing (below 7)
        d[0].date(): (9, 2),  # b's 4 arrived; a's 10 and 11 did not
    }
    copies = by(local_bigquery, "event_date", where=f"page_hostname = '{h}'")[d[1].date()]
    assert (copies["resent"], copies["duplicates"]) == (2, 2)
    [ios] = health(local_bigquery, f"page_hostname = '{h}' AND browser = 'Chrome Mobile iOS'")
    assert (ios["engine"], ios["device_type"], ios["protocol"]) == ("WebKit", "mobile", "loyjoy")
    assert ios["later_page_share"] == pytest.approx(1 / 5)

    incremental = snapshot(local_bigquery)
    refresh(env, "--full")
    assert snapshot(local_bigquery) == incremental  # the increments built what a full run builds


def test_drops_reported_by_the_snippet_delays_and_bots(env, local_bigquery):
    now = datetime.now(UTC).replace(microsecond=0)
    h, client = "drops.example.com", f"d-{uuid.uuid4().hex[:6]}"
    delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 100]  # seconds from the event to the collector
    events = [Event(client, n + 1, now - timedelta(seconds=200 - n), host=h, delay=timedelta(seconds=s))
              for n, s in enumerate(delays)]  # fmt: skip
    events[3].dropped = {"overflow": 40, "quota": 2}
    events[7].dropped = {"consent": 5}
    send(local_bigquery, events)
    send(local_bigquery, [Event(client, 4, events[3].ts, host=h, retry=1, dropped={"overflow": 40, "quota": 2},
                                event_id=events[3].event_id, delay=timedelta(seconds=4))])  # fmt: skip
    # A crawler's events, numbered with holes: bots are in no analyst number.
    send(local_bigquery, [Event("bot-" + client, n, now - timedelta(seconds=60 - n), agent=GOOGLEBOT, host=h)
                          for n in (1, 5, 9)])  # fmt: skip
    refresh(env)
    [r] = health(local_bigquery, f"page_hostname = '{h}'")
    assert (r["events_received"], r["events_numbered"], r["clients"], r["seq_gaps"]) == (10, 10, 1, 0)
    assert (r["dropped_overflow"], r["dropped_quota"], r["dropped_consent"]) == (40, 2, 5)  # the copy counts once
    assert (r["resent"], r["duplicates"]) == (1, 1)
    assert (r["delay_p50_ms"], r["delay_p95_ms"]) == (5500, 59050)  # linear between the ranks, as BigQuery does
    assert r["later_page_share"] == 0
    assert r["engine"] == "Blink" and r["browser"] == "Chrome" and r["device_type"] == "desktop"

    refresh(env, "--include-bots")
    bots = by(local_bigquery, "engine", where=f"page_hostname = '{h}'")
    assert bots["other"]["events_received"] == 3 and bots["other"]["seq_gaps"] == 6
    refresh(env, "--exclude-bots")
    assert "other" not in by(local_bigquery, "engine", where=f"page_hostname = '{h}'")
