"""chat_impact, chat_conversions and ga4_visits over a seeded GA4 export (tests/ga4_export.py), refreshed as the
scheduled query does, three times: the export as it stood two days ago (with an intraday table), as it stands
now (that day's daily table in its place, a late hit added to an older day, today's intraday table), and again
with nothing new. Every figure is checked against the same export and chats counted here in Python. The refresh
reads the export a few tables a statement (GA4_TABLES_PER_READ), and what each statement read is what the local
BigQuery expanded its wildcard to (ops/local_bigquery.py), not what the refresh says it read."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from loyjoy_collector.ops.cli import local_env
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row
from loyjoy_collector.settings import Settings

from . import ga4_export
from .conftest import PROJECT
from .ga4_export import Hit, Visit

DATASET = "impact_test"
GA4 = "impact_ga4"
TZ_HOURS = 1  # the GA4 property's time zone: an export day is a day of it, not of UTC
WINDOW = 30
CONVERSIONS = {"purchase", "generate_lead"}
VISITOR = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
TABLES = ("ga4_session_days", "ga4_conversions", "ga4_visits", "chat_impact", "chat_conversions")
PER_READ = 3  # export tables a statement reads: every run here reads in turns


@dataclass
class Chat:
    ts: datetime
    client: str
    session: int
    chat_session: str
    bot: bool = False


def local_day(ts: datetime) -> date:
    return (ts + timedelta(hours=TZ_HOURS)).date()


def visible(visit: Visit, through: date, intraday: date | None) -> list[Hit]:
    """The hits of `visit` the export holds with daily tables through `through` and an intraday table."""
    return [
        hit
        for hit in visit.hits
        if (local_day(hit.ts) == intraday)
        or (local_day(hit.ts) <= through and local_day(hit.ts) + timedelta(days=hit.late_days) <= through)
    ]


@dataclass
class Truth:
    impact: dict[tuple, tuple[int, int, int, float]]
    conversions: dict[tuple, tuple]  # (client, session, ts, name) -> the chat_conversions row's other columns
    visits: dict[tuple[str, int], tuple[date, int, float, str, str]]


def truth(visits: list[Visit], chats: list[Chat], through: date, intraday: date | None) -> Truth:
    sessions = {}
    hits = []
    for visit in visits:
        seen = visible(visit, through, intraday)
        if not seen:
            continue
        sessions[(visit.client, visit.session_id)] = (visit, min(h.ts for h in seen).date())
        hits += [(hit, visit) for hit in seen if hit.name in CONVERSIONS]
    # A transaction counts once: its earliest hit.
    hits.sort(key=lambda pair: (pair[0].ts, pair[1].client, pair[1].session_id))
    counted, seen_ids = [], set()
    for hit, visit in hits:
        if hit.transaction_id and hit.transaction_id in seen_ids:
            continue
        seen_ids.add(hit.transaction_id)
        counted.append((hit, visit))
    per_session: dict[tuple[str, int], list[Hit]] = defaultdict(list)
    for hit, visit in counted:
        per_session[(visit.client, visit.session_id)].append(hit)
    people = [chat for chat in chats if not chat.bot]
    marked = {(c.client, c.session, c.ts.date()) for c in people}
    impact: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0])
    visit_rows = {}
    for key, (visit, day) in sessions.items():
        chatted = any((key[0], key[1], day + timedelta(days=k)) in marked for k in (0, 1))
        mine = per_session.get(key, [])
        revenue = sum(h.revenue or 0 for h in mine)
        row = impact[(day, visit.device, visit.source, visit.medium, chatted)]
        row[0] += 1
        row[1] += bool(mine)
        row[2] += len(mine)
        row[3] += revenue
        visit_rows[key] = (day, len(mine), revenue, visit.source, visit.medium)
    attributed = {}
    for hit, visit in counted:
        before = [c for c in people if c.client == visit.client and hit.ts - timedelta(days=WINDOW) <= c.ts <= hit.ts]
        if not before:
            continue
        latest = max(before, key=lambda c: (c.ts, c.chat_session))
        attributed[(visit.client, visit.session_id, hit.ts, hit.name)] = (
            hit.ts.date(),
            hit.transaction_id,
            hit.revenue,
            latest.chat_session,
            any(c.session == visit.session_id for c in before),
            int((hit.ts - latest.ts).total_seconds() // 86400),
        )
    return Truth({k: tuple(v) for k, v in impact.items()}, attributed, visit_rows)


def send_chats(local_bigquery, chats: list[Chat]) -> None:
    """Chat events as the collector writes them, received now, each carrying its GA4 client and session."""
    settings, scrubber, rows = Settings(bq_dataset=DATASET), Scrubber(b"k"), []
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for chat in chats:
        for offset, name in enumerate(["load", "open", "session_started"]):
            ts = chat.ts + timedelta(seconds=offset)
            raw = {
                "event": name,
                "ts": ts.isoformat(),
                "session_id": chat.chat_session,
                "client_id": "c-" + chat.chat_session,
                "bot_id": "b-impact",
                "process_id": "p-1",
                "event_id": uuid.uuid4().hex,
                "ga_client_id": chat.client,
                "ga_session_id": chat.session,
                # what a visitor may claim: no revenue of chat_impact comes from it
                "detail": {"value": 99999, "revenue": 99999, "transaction_id": "T-forged"},
            }
            ctx = RequestContext(
                ts, "POST", "/", "", "text/plain", None, GOOGLEBOT if chat.bot else VISITOR, None, None
            )
            rows.append(event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber) | {"received_at": now})
    for start in range(0, len(rows), 500):
        assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows[start : start + 500]) == []


def refresh(env: dict[str, str]) -> None:
    # Bots counted in the other tables (events_clean keeps them): chat_impact must leave them out by itself.
    ran = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", "--include-bots"], env=env, capture_output=True
    )
    assert ran.returncode == 0, ran.stderr.decode()[-3000:]


def table(local_bigquery, name: str) -> list[dict]:
    return local_bigquery.query(f"SELECT * FROM `{PROJECT}.{DATASET}.{name}`")


def snapshot(local_bigquery) -> dict[str, list[str]]:
    """Each table's rows; floats to 6 places (a float sum's last digits follow the order it was added in)."""

    def cents(value: object) -> object:
        return round(value, 6) if isinstance(value, float) else value

    return {
        name: sorted(repr(sorted((k, cents(v)) for k, v in row.items())) for row in table(local_bigquery, name))
        for name in TABLES
    }


@dataclass
class World:
    visits: list[Visit]
    chats: list[Chat]
    now_local: date
    runs: dict[str, Truth]
    read: dict[str, list[set[str]]]  # the export tables each statement of each run read (its wildcard's tables)
    manifest: dict[str, set[str]]  # the export tables each run says it read (ga4_manifest)
    before_second: dict[str, list[str]]
    special: dict[str, Visit]
    first_impact: dict[tuple, tuple]  # chat_impact after the first run
    newest: date  # the export's newest daily table at the second and third run


@pytest.fixture(scope="module")
def world(local_bigquery) -> World:
    client = local_bigquery.client
    client.create_dataset(f"{PROJECT}.{GA4}", exists_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    today = local_day(now - timedelta(minutes=10))  # the export's today (intraday)
    first = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=8)
    visits = ga4_export.generate(25, first.date(), 7, 25)
    rng = __import__("random").Random(2525)

    # Hand-made visits for the cases a random export may miss.
    def visit(client_id: str, start: datetime, *hits: Hit, device: str = "mobile") -> Visit:
        made = Visit(client_id, int(start.timestamp()), device, "newsletter", "email", ("google", "organic"))
        made.hits = [Hit(start, "session_start"), *hits]
        visits.append(made)
        return made

    day = first + timedelta(days=3, hours=12)
    special = {
        # chats in one session, buys two days later in another: attributed, not the same session
        "chat_first": visit("500.1", day),
        "later_purchase": visit(
            "500.1", day + timedelta(days=2), Hit(day + timedelta(days=2, minutes=3), "purchase", "T-later", 80.0)
        ),
        # buys, then chats in the same session: the purchase came before any chat
        "bought_before": visit("501.1", day, Hit(day + timedelta(seconds=5), "purchase", "T-before", 40.0)),
        # one transaction logged twice, the second a day later in another session: counted once
        "twice": visit("502.1", day, Hit(day + timedelta(minutes=1), "purchase", "T-twice", 25.0)),
        "twice_again": visit(
            "502.1", day + timedelta(days=1), Hit(day + timedelta(days=1, minutes=1), "purchase", "T-twice", 25.0)
        ),
        # a purchase GA4 adds to its day's table three days late
        "late": visit(
            "503.1",
            day + timedelta(days=1),
            Hit(day + timedelta(days=1, minutes=2), "purchase", "T-late", 55.5, late_days=3),
        ),
        # today's visit: only in the intraday table
        "today": visit(
            "504.1", now - timedelta(minutes=10), Hit(now - timedelta(minutes=9), "generate_lead", value=50.0)
        ),
        # a session a bot's chat claims, and nobody else's
        "bot_claimed": visit("505.1", day, Hit(day + timedelta(minutes=2), "purchase", "T-bot", 70.0)),
    }
    chats = []
    for number, v in enumerate(visits):
        if v.client.startswith("50"):
            continue
        if rng.random() < 0.35:  # a chat during the visit
            chats.append(Chat(v.start + timedelta(seconds=10), v.client, v.session_id, f"chat-{number}"))
    chats += [
        Chat(special["chat_first"].start + timedelta(seconds=30), "500.1", special["chat_first"].session_id, "chat-a"),
        Chat(
            special["bought_before"].start + timedelta(seconds=60),
            "501.1",
            special["bought_before"].session_id,
            "chat-b",
        ),
        Chat(special["twice"].start + timedelta(seconds=5), "502.1", special["twice"].session_id, "chat-c"),
        Chat(special["today"].start + timedelta(seconds=5), "504.1", special["today"].session_id, "chat-d"),
        Chat(
            special["bot_claimed"].start + timedelta(seconds=1),
            "505.1",
            special["bot_claimed"].session_id,
            "chat-e",
            bot=True,
        ),
        Chat(day, "999.9", 1, "chat-nowhere"),  # a GA4 session that does not exist: changes nothing
    ]

    env = local_env(local_bigquery.port, "") | {
        "BQ_DATASET": DATASET,
        "GA4_EXPORT_DATASET": GA4,
        "GA4_START_DATE": (today - timedelta(days=12)).isoformat(),
        "GA4_TABLES_PER_READ": str(PER_READ),
    }
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=env, check=True, capture_output=True
    )
    export = ga4_export.Export(visits, TZ_HOURS)
    runs: dict[str, Truth] = {}
    read: dict[str, list[set[str]]] = {}
    manifest: dict[str, set[str]] = {}

    def run(name: str) -> None:
        """A refresh, and what each of its statements that read the export read."""
        before = len(local_bigquery.wildcard_reads())
        refresh(env)
        read[name] = [
            {table.removeprefix("events_") for table in statement["tables"]}
            for statement in local_bigquery.wildcard_reads(before)
            if f"{GA4}.events_*" in statement["sql"]
        ]
        [last] = local_bigquery.query(
            f"SELECT suffixes FROM `{PROJECT}.{DATASET}.ga4_manifest` ORDER BY ran_at DESC LIMIT 1"
        )
        manifest[name] = set(last["suffixes"])

    # Run 1: the export two days ago, an intraday table for the day after its newest daily table.
    early = today - timedelta(days=3)
    ga4_export.seed(client, f"{PROJECT}.{GA4}", export.tables(through=early, intraday=[early + timedelta(days=1)]))
    send_chats(local_bigquery, [c for c in chats if c.ts.date() <= early])
    run("first")
    runs["first"] = truth(visits, chats, early, early + timedelta(days=1))
    runs["first_chats"] = truth(visits, [c for c in chats if c.ts.date() <= early], early, early + timedelta(days=1))
    first_snapshot = snapshot(local_bigquery)
    first_impact = impact_rows(local_bigquery)

    # Run 2: the export now. The intraday table became a daily one, the late hit arrived, today is intraday.
    ga4_export.drop(client, f"{PROJECT}.{GA4}", [f"intraday_{early + timedelta(days=1):%Y%m%d}"])
    now_tables = export.tables(through=today - timedelta(days=1), intraday=[today])
    ga4_export.seed(client, f"{PROJECT}.{GA4}", now_tables)
    newest = max(date.fromisoformat(f"{s[:4]}-{s[4:6]}-{s[6:]}") for s in now_tables if s[0].isdigit())
    send_chats(local_bigquery, [c for c in chats if c.ts.date() > early])
    run("second")
    runs["second"] = truth(visits, chats, today - timedelta(days=1), today)
    before = snapshot(local_bigquery)
    assert before != first_snapshot

    # Run 3: nothing new.
    run("third")
    return World(visits, chats, today, runs, read, manifest, before, special, first_impact, newest)


def impact_rows(local_bigquery) -> dict[tuple, tuple]:
    return {
        (r["day"], r["device_category"], r["source"], r["medium"], r["chatted"]): (
            r["ga4_sessions"],
            r["converting_sessions"],
            r["conversions"],
            round(r["revenue"], 2),
        )
        for r in table(local_bigquery, "chat_impact")
    }


def rounded(rows: dict[tuple, tuple]) -> dict[tuple, tuple]:
    return {key: (*value[:3], round(value[3], 2)) for key, value in rows.items()}


def test_chat_impact_counts_every_ga4_session_with_and_without_a_chat(local_bigquery, world):
    expected = rounded(world.runs["second"].impact)
    assert impact_rows(local_bigquery) == expected
    chatted = Counter(key[4] for key, value in expected.items() for _ in range(value[0]))
    assert chatted[True] > 20 and chatted[False] > 60  # both sides are there to compare


def test_ga4_visits_are_the_sessions_of_the_export(local_bigquery, world):
    rows = {
        (r["ga_client_id"], r["ga_session_id"]): (
            r["day"],
            r["conversions"],
            round(r["revenue"], 2),
            r["source"],
            r["medium"],
        )
        for r in table(local_bigquery, "ga4_visits")
    }
    expected = {k: (v[0], v[1], round(v[2], 2), v[3], v[4]) for k, v in world.runs["second"].visits.items()}
    assert rows == expected
    # the session's source, not the user's first (traffic_source), which the hand-made visits set apart
    special = world.special["chat_first"]
    assert rows[(special.client, special.session_id)][3:] == ("newsletter", "email")


def test_chat_conversions_attribute_what_followed_a_chat(local_bigquery, world):
    rows = {
        (r["ga_client_id"], r["ga_session_id"], r["conversion_ts"], r["event_name"]): (
            r["day"],
            r["transaction_id"],
            r["revenue"],
            r["chat_session_id"],
            r["same_session"],
            r["days_since_chat"],
        )
        for r in table(local_bigquery, "chat_conversions")
    }
    expected = world.runs["second"].conversions
    assert rows == expected
    by_transaction = {value[1]: value for value in rows.values() if value[1]}
    assert by_transaction["T-later"][3:] == ("chat-a", False, 2)  # a conversion in a later session
    assert "T-before" not in by_transaction  # bought before any chat: not attributed
    assert by_transaction["T-twice"][4] is True and sum(1 for v in rows.values() if v[1] == "T-twice") == 1
    assert "T-bot" not in by_transaction  # a bot's chat claims nothing
    assert "T-forged" not in by_transaction


def test_a_transaction_counts_once_and_a_bots_chat_marks_nothing(local_bigquery, world):
    visits = {(r["ga_client_id"], r["ga_session_id"]): r for r in table(local_bigquery, "ga4_visits")}
    first, again = world.special["twice"], world.special["twice_again"]
    assert visits[(first.client, first.session_id)]["conversions"] == 1
    assert visits[(again.client, again.session_id)]["conversions"] == 0
    purchases = {r["transaction_id"] for r in table(local_bigquery, "ga4_conversions") if r["transaction_id"]}
    generated = {h.transaction_id for v in world.visits for h in v.hits if h.transaction_id}
    assert purchases == generated  # every transaction, each in one row (a set would hide a second one)
    assert len([r for r in table(local_bigquery, "ga4_conversions") if r["transaction_id"]]) == len(generated)
    bot = world.special["bot_claimed"]
    key = (bot.start.date(), bot.device, bot.source, bot.medium, True)
    assert world.runs["second"].impact.get(key) is None or impact_rows(local_bigquery).get(key) == rounded(
        world.runs["second"].impact
    ).get(key)
    # the chat events' own `revenue` (99999 each) is nowhere
    assert max(r["revenue"] for r in table(local_bigquery, "chat_impact")) < 99999


def test_a_late_hit_and_an_intraday_day_are_counted_once_when_they_arrive(local_bigquery, world):
    late = world.special["late"]
    first = world.runs["first"].visits[(late.client, late.session_id)]
    second = world.runs["second"].visits[(late.client, late.session_id)]
    assert (first[1], second[1]) == (0, 1)  # not there in the first run's export, there in the second's
    rows = {(r["ga_client_id"], r["ga_session_id"]): r for r in table(local_bigquery, "ga4_visits")}
    assert rows[(late.client, late.session_id)]["conversions"] == 1
    today = world.special["today"]
    assert rows[(today.client, today.session_id)]["from_intraday"] is True
    assert not any(r["from_intraday"] for key, r in rows.items() if r["day"] < world.now_local - timedelta(days=1))


def test_each_run_reads_new_days_the_last_three_and_intraday_only_after_the_newest_daily(world):
    today = world.now_local
    read = {name: set().union(*statements) for name, statements in world.read.items()}
    daily = {f"{world.newest - timedelta(days=k):%Y%m%d}" for k in range(4)}  # the newest daily table, three before
    assert read["second"] >= daily | {f"intraday_{today:%Y%m%d}"}
    assert f"intraday_{today - timedelta(days=2):%Y%m%d}" not in read["second"]  # GA4 dropped it
    assert read["third"] == daily | {f"intraday_{today:%Y%m%d}"}  # nothing new: just the last days
    early = today - timedelta(days=3)
    assert f"intraday_{early + timedelta(days=1):%Y%m%d}" in read["first"]


def test_the_statements_that_read_the_export_name_just_the_tables_of_the_run(world):
    """Each statement reads at most PER_READ export tables, two statements (sessions, conversions) read each
    table once, and together they read what the manifest says the run read: not the export's other tables."""
    for name, statements in world.read.items():
        assert all(0 < len(tables) <= PER_READ for tables in statements), name
        assert sorted(t for tables in statements for t in tables) == sorted(2 * list(world.manifest[name])), name
    assert len(world.read["first"]) > 2  # the first run read in turns


def test_a_second_run_changes_nothing(local_bigquery, world):
    assert snapshot(local_bigquery) == world.before_second


def test_the_first_run_saw_what_the_export_held_then(world):
    """The intraday table counted, the late hit not yet: and the second run took up what changed."""
    assert world.first_impact == rounded(world.runs["first_chats"].impact)
    assert world.runs["first"].visits != world.runs["second"].visits
