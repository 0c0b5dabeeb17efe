"""The analyst tables (built by the refresh) and the views beside them, in the local BigQuery over a seeded,
realistic data set; numbers checked against the same data counted in Python."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from loyjoy_collector.ops.cli import local_env
from loyjoy_collector.ops.refresh import MODELS, built
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row, rejected_row
from loyjoy_collector.schema import views
from loyjoy_collector.settings import Settings

from . import ga4_export
from .conftest import PROJECT

DATASET = "views_test"
GA4 = "ga4_export"
PROCESSES = {"p-news": "Newsletter", "p-quiz": "Quiz"}
OPT_INS = ["newsletter_single_opt_in", "newsletter_double_opt_in", "profiling_single_opt_in", "reminder_opt_in"]
VISITORS = [  # real browsers, taken in turn
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
# Traffic that is in `events` and in no analyst number: a crawler that runs the chat, a headless browser, a script.
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "curl/8.5.0",
]


@dataclass
class Session:
    id: str
    process: str
    day: datetime
    events: list[tuple[str, datetime]] = field(default_factory=list)
    ga: tuple[str, int] | None = None


@dataclass
class Seeded:
    sessions: list[Session]
    anonymous: list[tuple[str, str, datetime]]  # (process, event, ts) without consent
    duplicates: int
    bots: int  # rows from BOTS
    rejected: Counter
    ga4_page_views: dict[tuple[str, int], int]


def simulate(rng: random.Random, today: datetime) -> tuple[list[Session], list[tuple[str, str, datetime]]]:
    sessions, anonymous = [], []
    for offset in (2, 1, 0):
        day = today - timedelta(days=offset)
        for process in PROCESSES:
            for n in range(rng.randint(12, 20)):
                start = day + timedelta(hours=8, minutes=rng.randint(0, 600), seconds=n)
                session = Session(f"s-{process}-{offset}-{n}", process, day)
                steps = ["load"]
                if rng.random() < 0.9:
                    steps.append("show")
                    if rng.random() < 0.6:
                        steps.append("open")
                        if rng.random() < 0.7:
                            steps += ["session_started", "start"]
                            if rng.random() < 0.5:
                                steps.append("sign_up" if process == "p-news" else "signup")
                            if rng.random() < 0.4:
                                steps.append(rng.choice(OPT_INS))
                            if rng.random() < 0.2:
                                steps.append("newsletter_opt_out")
                        steps.append("close")
                for i, name in enumerate(steps):
                    session.events.append((name, start + timedelta(seconds=7 * i)))
                if rng.random() < 0.5:
                    session.ga = (f"{rng.randint(10**9, 10**10)}.1700000000", int(start.timestamp()))
                sessions.append(session)
            for _ in range(3):
                anonymous.append((process, "load", day + timedelta(hours=9)))
    return sessions, anonymous


@pytest.fixture(scope="module")
def seeded(local_bigquery) -> Seeded:
    env = local_env(local_bigquery.port, "") | {"BQ_DATASET": DATASET, "GA4_EXPORT_DATASET": GA4}
    client = local_bigquery.client
    client.create_dataset(f"{PROJECT}.{GA4}", exists_ok=True)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(20261124)
    sessions, anonymous = simulate(rng, today)

    # A GA4 export: one daily table per day, page views in the sessions the chats happened in.
    from google.cloud import bigquery

    ga_schema = [bigquery.SchemaField.from_api_repr(spec) for spec in ga4_export.SCHEMA]  # the export's shape
    page_views: dict[tuple[str, int], int] = {}
    ga_rows: dict[str, list[dict]] = {}
    for session in sessions:
        if not session.ga:
            continue
        views_count = rng.randint(1, 5)
        page_views[session.ga] = views_count
        for i in range(views_count):
            ts = session.events[0][1] + timedelta(seconds=i)
            ga_rows.setdefault(session.day.strftime("%Y%m%d"), []).append(
                {
                    "event_date": session.day.strftime("%Y%m%d"),
                    "event_timestamp": int(ts.timestamp() * 1_000_000),
                    "event_name": "page_view",
                    "user_pseudo_id": session.ga[0],
                    "event_params": [
                        {"key": "ga_session_id", "value": {"int_value": session.ga[1]}},
                        {"key": "page_title", "value": {"string_value": "Shop"}},
                    ],
                    "traffic_source": {"source": "google", "medium": "organic"},
                }
            )
    for suffix, rows in ga_rows.items():
        table = f"{PROJECT}.{GA4}.events_{suffix}"
        client.create_table(bigquery.Table(table, schema=ga_schema), exists_ok=True)
        assert client.insert_rows_json(table, rows) == []

    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=env, check=True, capture_output=True
    )

    settings = Settings(bq_dataset=DATASET)
    scrubber = Scrubber(b"k")
    rows, duplicates = [], 0
    for number, session in enumerate(sessions):
        for name, ts in session.events:
            raw = {
                "event": name,
                "ts": ts.isoformat(),
                "session_id": session.id,
                "client_id": f"c-{session.id}",
                "bot_id": "b-1",
                "process_id": session.process,
                "detail": {"process_name": PROCESSES[session.process], "email": f"{session.id}@example.com"},
            }
            if session.ga:
                raw |= {"ga_client_id": session.ga[0], "ga_session_id": session.ga[1]}
            agent = VISITORS[number % len(VISITORS)]
            ctx = RequestContext(ts + timedelta(seconds=1), "POST", "/", "", "text/plain", None, agent, None, None)
            row = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber)
            rows.append(row)
            if rng.random() < 0.1:  # a sender's retry: the same event_id again, received later
                rows.append(row | {"received_at": (ts + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")})
                duplicates += 1
    for process, name, ts in anonymous:
        raw = {"event": name, "ts": ts.isoformat(), "bot_id": "b-1", "process_id": process}
        ctx = RequestContext(ts + timedelta(seconds=1), "POST", "/", "", "text/plain", None, VISITORS[0], None, None)
        rows.append(event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber))
    bots = 0
    for number, agent in enumerate(BOTS):  # whole chat sessions, and an anonymous load, on each day
        for offset in (2, 1, 0):
            start = today - timedelta(days=offset, hours=-10, minutes=number)
            for i, name in enumerate(["load", "show", "open", "start", "sign_up", "newsletter_single_opt_in"]):
                ts = start + timedelta(seconds=i)
                raw = {
                    "event": name,
                    "ts": ts.isoformat(),
                    "session_id": f"bot-{number}-{offset}",
                    "client_id": f"bot-{number}",
                    "bot_id": "b-1",
                    "process_id": "p-news",
                    "detail": {"process_name": "Newsletter"},
                }
                ctx = RequestContext(ts + timedelta(seconds=1), "POST", "/", "", "text/plain", None, agent, None, None)
                rows.append(event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber))
                bots += 1
    assert all(row["is_bot"] for row in rows[-bots:]) and not any(row["is_bot"] for row in rows[:-bots])
    for start in range(0, len(rows), 500):
        assert client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows[start : start + 500]) == []

    rejected = Counter({("invalid_json", 400): 4, ("invalid_event_name", 400): 2, ("body_too_large", 413): 1})
    ctx = RequestContext(datetime.now(UTC), "POST", "/", "", "text/plain", None, "", None, None)
    kept = [
        rejected_row(
            ctx, scrubber, reason=reason, detail="d", status=status, protocol="loyjoy", payload="x", raw_bytes=1
        )
        for (reason, status), count in rejected.items()
        for _ in range(count)
    ]
    assert client.insert_rows_json(f"{PROJECT}.{DATASET}.events_rejected", kept) == []
    # The rows were received days ago, before the manifest's watermark: only a full refresh reads them.
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", "--full"],
        env=env,
        check=True,
        capture_output=True,
    )
    return Seeded(sessions, anonymous, duplicates, bots, rejected, page_views)


def view(local_bigquery, name: str, order: str = "1") -> list[dict]:
    return local_bigquery.query(f"SELECT * FROM `{PROJECT}.{DATASET}.{name}` ORDER BY {order}")


def current(name: str) -> str:
    return {"signup": "sign_up", "reminder_opt_in": "reminder_single_opt_in"}.get(name, name)


def test_every_view_and_analyst_table_exists(local_bigquery, seeded):
    tables = {t.table_id: t.table_type for t in local_bigquery.client.list_tables(f"{PROJECT}.{DATASET}")}
    assert {spec.name for spec in views()} <= set(tables)
    made = built(ga4=True)  # loyjoy_reconciliation only with LoyJoy's export
    assert {tables[name] for name in made} == {"TABLE"}
    assert set(MODELS) - set(made) == {"loyjoy_reconciliation"} and "loyjoy_reconciliation" not in tables


def test_events_dedup_keeps_each_event_once(local_bigquery, seeded):
    total = sum(len(s.events) for s in seeded.sessions) + len(seeded.anonymous)
    raw = local_bigquery.query(f"SELECT COUNT(*) AS n FROM `{PROJECT}.{DATASET}.events`")[0]["n"]
    dedup = local_bigquery.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM `{PROJECT}.{DATASET}.events_dedup`"
    )[0]
    assert seeded.duplicates > 0 and raw == total + seeded.duplicates + seeded.bots  # bots are stored, not counted
    assert dedup == {"n": total, "ids": total}


def test_daily_counts(local_bigquery, seeded):
    expected: Counter = Counter()
    for s in seeded.sessions:
        for name, ts in s.events:
            expected[(ts.date(), s.process, current(name))] += 1
    for process, name, ts in seeded.anonymous:
        expected[(ts.date(), process, name)] += 1
    rows = view(local_bigquery, "daily_counts")
    assert {(r["day"], r["process_id"], r["event_name"]): r["events"] for r in rows} == dict(expected)
    load = {(r["day"], r["process_id"]): r for r in rows if r["event_name"] == "load"}
    some = next(iter(load.values()))
    sessions_that_day = sum(
        1 for s in seeded.sessions if (s.day.date(), s.process) == (some["day"], some["process_id"])
    )
    assert some["sessions"] == sessions_that_day  # anonymous loads have no session
    assert {r["process_name"] for r in rows} == {"Newsletter", "Quiz"}


def outcome(session: Session) -> str:
    names = {current(n) for n, _ in session.events}
    if "sign_up" in names:
        return "signed_up"
    if names & {current(n) for n in OPT_INS}:
        return "opted_in"
    if "start" in names:
        return "engaged"
    return "opened" if "open" in names else "seen"


def test_sessions(local_bigquery, seeded):
    rows = {r["session_id"]: r for r in view(local_bigquery, "sessions")}
    assert set(rows) == {s.id for s in seeded.sessions}
    for s in seeded.sessions:
        row = rows[s.id]
        assert row["events"] == len(s.events)
        assert row["duration_seconds"] == 7 * (len(s.events) - 1)
        assert row["outcome"] == outcome(s), s.events
        assert row["closed"] == any(n == "close" for n, _ in s.events)
        assert (row["ga_client_id"], row["ga_session_id"]) == (s.ga or (None, None))


def test_funnel_daily(local_bigquery, seeded):
    rows = {(r["day"], r["process_id"]): r for r in view(local_bigquery, "funnel_daily")}
    assert len(rows) == 6
    for (day, process), row in rows.items():
        group = [s for s in seeded.sessions if (s.day.date(), s.process) == (day, process)]
        steps = {
            "loaded": {"load"},
            "shown": {"show"},
            "opened": {"open"},
            "started": {"start", "session_started"},
            "signed_up": {"sign_up"},
            "opted_in": {current(n) for n in OPT_INS},
        }
        step = {
            name: sum(1 for s in group if any(current(n) in names for n, _ in s.events))
            for name, names in steps.items()
        }
        assert {k: row[k] for k in step} == step
        assert row["sessions"] == len(group)
        assert row["open_rate"] == pytest.approx(step["opened"] / step["shown"])
        assert row["start_rate"] == pytest.approx(step["started"] / step["opened"] if step["opened"] else None)
        converted = sum(1 for s in group if outcome(s) in ("signed_up", "opted_in"))
        assert row["conversion_rate"] == pytest.approx(converted / step["loaded"])
        assert row["process_name"] == PROCESSES[process]


def test_opt_ins(local_bigquery, seeded):
    expected: Counter = Counter()
    for s in seeded.sessions:
        for name, ts in s.events:
            name = current(name)
            if name.startswith(("newsletter_", "profiling_", "reminder_")):
                topic, step = name.split("_", 1)
                expected[(ts.date(), s.process, topic, step)] += 1
    rows = view(local_bigquery, "opt_ins")
    assert {(r["day"], r["process_id"], r["topic"], r["step"]): r["events"] for r in rows} == dict(expected)
    assert all(r["people"] == r["sessions"] for r in rows)  # one hashed address per seeded session
    assert {r["step"] for r in rows} <= {"single_opt_in", "double_opt_in", "opt_out"}


def test_rejected_by_reason(local_bigquery, seeded):
    rows = view(local_bigquery, "rejected_by_reason")
    got = Counter()
    for r in rows:
        got[(r["reason"], r["http_status"])] += r["rejections"]
    assert got == seeded.rejected


def test_ga4_visits(local_bigquery, seeded):
    rows = {(r["ga_client_id"], r["ga_session_id"]): r for r in view(local_bigquery, "ga4_visits")}
    assert {key: r["ga4_page_views"] for key, r in rows.items()} == seeded.ga4_page_views
    assert {r["ga4_first_user_source"] for r in rows.values()} == {"google"}


def test_ga4_sessions_join(local_bigquery, seeded):
    rows = {r["session_id"]: r for r in view(local_bigquery, "ga4_sessions")}
    assert set(rows) == {s.id for s in seeded.sessions}
    matched = [s for s in seeded.sessions if s.ga]
    assert 0 < len(matched) < len(seeded.sessions)
    for s in seeded.sessions:
        row = rows[s.id]
        assert row["ga4_matched"] == bool(s.ga)
        assert row["ga4_page_views"] == (seeded.ga4_page_views[s.ga] if s.ga else None)
        assert row["ga4_first_user_source"] == ("google" if s.ga else None)
