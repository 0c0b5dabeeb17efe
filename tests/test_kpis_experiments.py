"""loyjoy_kpis (LoyJoy's own KPI tab) and experiments (decision jumps read as A/B tests) in the local BigQuery,
over seeded chat sessions and a seeded GA4 export, checked against the same sessions counted in Python: the
z-test's p-value against math.erfc."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
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

DATASET = "kpis_test"
GA4 = "kpis_ga4"
VISITOR = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PROCESSES = ["p-shop", "p-quiz"]
OPT_INS = ["newsletter_single_opt_in", "newsletter_double_opt_in", "profiling_single_opt_in", "reminder_double_opt_in"]


@dataclass
class Session:
    id: str
    process: str
    start: datetime
    events: list[tuple[str, datetime, dict]] = field(default_factory=list)
    ga: tuple[str, int] | None = None
    bot: bool = False

    @property
    def day(self) -> date:
        return self.start.date()


def simulate(rng: random.Random, today: datetime) -> list[Session]:
    sessions = []
    for offset in (2, 1, 0):
        day = today - timedelta(days=offset)
        for process in PROCESSES:
            for n in range(rng.randint(30, 45)):
                start = day + timedelta(hours=1, minutes=rng.randint(0, 600), seconds=n)
                s = Session(f"s-{process}-{offset}-{n}", process, start)
                clock = [start]

                def add(name: str, session: Session = s, clock: list[datetime] = clock, **detail: object) -> None:
                    clock[0] += timedelta(seconds=rng.randint(2, 30))
                    session.events.append((name, clock[0], detail))

                add("load")
                if rng.random() < 0.3:  # an opt-in before the jump: no outcome of the experiment
                    add("newsletter_single_opt_in")
                if rng.random() < 0.7:
                    add("open")
                    add(rng.choice(["session_started", "start", "session_interacted"]))
                    if rng.random() < 0.8:
                        option = rng.choice([1, 2, 2]) if process == "p-shop" else rng.choice([1, 2, 3])
                        add(f"jump_decision_{option}", sub_process_name="ab-test")
                        if rng.random() < 0.2:  # the same jump again: the first option stays
                            add(f"jump_decision_{3 - option if option < 3 else 1}", sub_process_name="ab-test")
                        bias = 0.25 + 0.15 * option
                        if rng.random() < bias:
                            add(rng.choice(OPT_INS))
                        if rng.random() < bias / 2:
                            add(rng.choice(["sign_up", "customer_created"]))
                    if rng.random() < 0.1:
                        add("participation")
                        add("participation")
                    if rng.random() < 0.1:
                        add("customer_created")
                        add("customer_created")  # twice in one session: one new customer
                    if rng.random() < 0.5:
                        add(f"nps_survey_score_{rng.randint(0, 10)}")
                        if rng.random() < 0.3:  # changed the answer: the last one counts
                            add(f"nps_survey_score_{rng.randint(0, 10)}")
                    if rng.random() < 0.05:
                        add("nps_survey_score_11")  # not a LoyJoy score: no answer
                if rng.random() < 0.3:
                    s.ga = (f"{rng.randint(10**8, 10**9)}.1700000000", int(start.timestamp()))
                sessions.append(s)
        bot = Session(f"bot-{offset}", "p-shop", day + timedelta(hours=3), bot=True)
        for i, name in enumerate(["load", "session_started", "jump_decision_2", "sign_up", "nps_survey_score_0"]):
            bot.events.append((name, bot.start + timedelta(seconds=i), {"sub_process_name": "ab-test"}))
        sessions.append(bot)
    return sessions


def rows_of(sessions: list[Session], anonymous: list[tuple[str, datetime]]) -> list[dict]:
    settings, scrubber, rows = Settings(bq_dataset=DATASET), Scrubber(b"k"), []
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for s in sessions:
        for name, ts, detail in s.events:
            raw = {
                "event": name,
                "ts": ts.isoformat(),
                "session_id": s.id,
                "client_id": "c-" + s.id,
                "bot_id": "b-kpi",
                "process_id": s.process,
                "event_id": uuid.uuid4().hex,
                "detail": detail,
            }
            if s.ga:
                raw |= {"ga_client_id": s.ga[0], "ga_session_id": s.ga[1]}
            ctx = RequestContext(ts, "POST", "/", "", "text/plain", None, GOOGLEBOT if s.bot else VISITOR, None, None)
            rows.append(event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber) | {"received_at": now})
    for process, ts in anonymous:  # no consent: no session
        raw = {"event": "load", "ts": ts.isoformat(), "bot_id": "b-kpi", "process_id": process}
        ctx = RequestContext(ts, "POST", "/", "", "text/plain", None, VISITOR, None, None)
        rows.append(event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber) | {"received_at": now})
    return rows


def kpis(sessions: list[Session], anonymous: list[tuple[str, datetime]]) -> dict[tuple, dict]:
    out: dict[tuple, Counter] = defaultdict(Counter)
    answers: dict[tuple, list[int]] = defaultdict(list)
    for s in sessions:
        if s.bot:
            continue
        names = [n for n, _, _ in s.events]
        for name, ts, _ in s.events:
            key = (ts.date(), "b-kpi", s.process)
            out[key]["chat_starts"] += name == "load"
            out[key]["participations"] += name == "participation"
        key = (s.day, "b-kpi", s.process)
        out[key]["sessions"] += 1
        out[key]["sessions_with_conversation"] += bool({"start", "session_started", "session_interacted"} & set(names))
        once = {(n, ts.date()) for n, ts, _ in s.events}
        for name, day in once:
            for column in ["customer_created", *OPT_INS]:
                if name == column:
                    out[(day, "b-kpi", s.process)][column] += 1
        scores = [(ts, int(n.rsplit("_", 1)[1])) for n, ts, _ in s.events if n.startswith("nps_survey_score_")]
        scores = [(ts, v) for ts, v in scores if v <= 10]
        if scores:
            ts, value = max(scores)
            answers[(ts.date(), "b-kpi", s.process)].append(value)
    for process, ts in anonymous:
        out[(ts.date(), "b-kpi", process)]["chat_starts"] += 1
    result = {}
    for key, c in out.items():
        given = answers.get(key, [])
        promoters = sum(v >= 9 for v in given)
        detractors = sum(v <= 6 for v in given)
        result[key] = {
            "chat_starts": c["chat_starts"],
            "sessions": c["sessions"],
            "sessions_with_conversation": c["sessions_with_conversation"],
            "bounces": c["sessions"] - c["sessions_with_conversation"],
            "participations": c["participations"],
            "new_customers": c["customer_created"],
            "newsletter_single_opt_ins": c["newsletter_single_opt_in"],
            "newsletter_double_opt_ins": c["newsletter_double_opt_in"],
            "profiling_single_opt_ins": c["profiling_single_opt_in"],
            "profiling_double_opt_ins": 0,
            "reminder_single_opt_ins": 0,
            "reminder_double_opt_ins": c["reminder_double_opt_in"],
            "nps_responses": len(given),
            "promoters": promoters,
            "passives": sum(7 <= v <= 8 for v in given),
            "detractors": detractors,
            "nps": 100 * (promoters - detractors) / len(given) if given else None,
        }
    return result


def experiments(sessions: list[Session], converted: set[str], days: list[date]) -> dict[tuple, dict]:
    """Per (day, process, option, outcome): the day's counts, the trailing 30 days', and the z-test against the
    first option."""
    daily: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for s in sessions:
        if s.bot:
            continue
        jumps = [(ts, int(n.rsplit("_", 1)[1])) for n, ts, d in s.events if n.startswith("jump_decision_")]
        if not jumps:
            continue
        at, option = jumps[0]
        after = {n for n, ts, _ in s.events if ts >= at}
        reached = {
            "opt_in": bool(after & set(OPT_INS)),
            "sign_up": bool(after & {"sign_up", "customer_created"}),
            "ga4_conversion": s.id in converted,
        }
        for outcome, hit in reached.items():
            row = daily[(at.date(), s.process, option, outcome)]
            row[0] += 1
            row[1] += hit
    result = {}
    for day in days:
        window: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for (d, process, option, outcome), (n, x) in daily.items():
            if day - timedelta(days=29) <= d <= day:
                w = window[(process, option, outcome)]
                w[2] += n
                w[3] += x
                if d == day:
                    w[0] += n
                    w[1] += x
        for (process, option, outcome), (n_day, x_day, n, x) in window.items():
            first = min(o for (p, o, out) in window if p == process and out == outcome)
            n1, x1 = window[(process, first, outcome)][2:]
            rate, base = x / n, x1 / n1
            p_value = z = low = high = None
            if option != first:
                pooled = (x + x1) / (n + n1)
                se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n1))
                if se_pooled:
                    z = (rate - base) / se_pooled
                    p_value = math.erfc(abs(z) / math.sqrt(2))
                se = math.sqrt(rate * (1 - rate) / n + base * (1 - base) / n1)
                low, high = rate - base - 1.959963984540054 * se, rate - base + 1.959963984540054 * se
            result[(day, process, "ab-test", option, outcome)] = {
                "sessions": n_day,
                "reached": x_day,
                "sessions_30d": n,
                "reached_30d": x,
                "rate": rate,
                "baseline_option": first,
                "baseline_rate": base,
                "z": z,
                "p_value": p_value,
                "difference_low": low,
                "difference_high": high,
            }
    return result


@dataclass
class World:
    sessions: list[Session]
    anonymous: list[tuple[str, datetime]]
    converted: set[str]
    days: list[date]
    snapshot: dict[str, list[str]]


def refresh(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh"], env=env, check=True, capture_output=True
    )


def table(local_bigquery, name: str) -> list[dict]:
    return local_bigquery.query(f"SELECT * FROM `{PROJECT}.{DATASET}.{name}`")


def snapshot(local_bigquery) -> dict[str, list[str]]:
    return {
        name: sorted(
            repr(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in row.items()))
            for row in table(local_bigquery, name)
        )
        for name in ("loyjoy_kpis", "experiments")
    }


@pytest.fixture(scope="module")
def world(local_bigquery) -> World:
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if now - today < timedelta(hours=12):  # every seeded event in the past
        today -= timedelta(days=1)
    rng = random.Random(2526)
    sessions = simulate(rng, today)
    anonymous = [(p, today - timedelta(days=k, hours=-2)) for k in (0, 1, 2) for p in PROCESSES]
    # GA4: a visit for each session that carried GA4 ids; about half buy after their chat's decision.
    client = local_bigquery.client
    client.create_dataset(f"{PROJECT}.{GA4}", exists_ok=True)
    visits, converted = [], set()
    for s in sessions:
        if not s.ga:
            continue
        v = Visit(s.ga[0], s.ga[1], "desktop", "google", "cpc", ("google", "cpc"))
        v.hits = [Hit(s.start, "session_start")]
        jumped = [ts for n, ts, _ in s.events if n.startswith("jump_decision_")]
        if rng.random() < 0.5:
            v.hits.append(Hit(s.events[-1][1] + timedelta(minutes=1), "purchase", f"T-{s.id}", 10.0))
            if jumped:
                converted.add(s.id)
        visits.append(v)
    tables = ga4_export.Export(visits, 0).tables()
    ga4_export.seed(client, f"{PROJECT}.{GA4}", tables)

    env = local_env(local_bigquery.port, "") | {
        "BQ_DATASET": DATASET,
        "GA4_EXPORT_DATASET": GA4,
        "GA4_START_DATE": (today - timedelta(days=5)).date().isoformat(),
    }
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=env, check=True, capture_output=True
    )
    rows = rows_of(sessions, anonymous)
    for start in range(0, len(rows), 500):
        assert client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows[start : start + 500]) == []
    refresh(env)
    before = snapshot(local_bigquery)
    refresh(env)
    assert snapshot(local_bigquery) == before  # a second run changes nothing
    days = sorted({s.day for s in sessions} | {datetime.now(UTC).date()})
    return World(sessions, anonymous, converted, days, before)


def test_loyjoy_kpis_are_loyjoys_definitions_over_our_events(local_bigquery, world):
    rows = {(r["day"], r["bot_id"], r["process_id"]): r for r in table(local_bigquery, "loyjoy_kpis")}
    expected = kpis(world.sessions, world.anonymous)
    assert set(rows) == set(expected)
    for key, want in expected.items():
        got = {k: rows[key][k] for k in want}
        assert got == pytest.approx(want), key
    total = {k: sum(r[k] for r in rows.values()) for k in ("nps_responses", "sessions", "bounces", "new_customers")}
    assert all(total.values())  # every figure is exercised
    assert all(r["promoters"] + r["passives"] + r["detractors"] == r["nps_responses"] for r in rows.values())


def test_experiments_are_two_proportion_z_tests_against_the_first_option(local_bigquery, world):
    rows = {
        (r["day"], r["process_id"], r["jump"], r["option"], r["outcome"]): r
        for r in table(local_bigquery, "experiments")
    }
    expected = experiments(world.sessions, world.converted, world.days)
    assert set(rows) == set(expected)
    for key, want in expected.items():
        got = {k: rows[key][k] for k in want}
        assert got == pytest.approx(want, abs=2e-7), key  # Abramowitz and Stegun 7.1.26: |error| < 1.5e-7
    tested = [r for r in rows.values() if r["p_value"] is not None]
    assert tested and {r["outcome"] for r in tested} == {"opt_in", "sign_up", "ga4_conversion"}
    assert min(r["p_value"] for r in tested) < 0.05 < max(r["p_value"] for r in tested)  # some tests decide
    assert all(0 <= r["p_value"] <= 1 for r in tested)
    assert all(r["difference_low"] < r["difference"] < r["difference_high"] for r in tested)


def test_the_p_value_formula_is_the_normal_tail_over_its_whole_range():
    """The SQL's p-value, the expression of models/experiments.sql evaluated in Python, against math.erfc."""

    def p_value(z: float) -> float:
        t = 1 / (1 + 0.3275911 * abs(z) / math.sqrt(2))
        poly = 0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
        return t * poly * math.exp(-z * z / 2)

    for step in range(0, 801):
        z = step / 100
        assert abs(p_value(z) - math.erfc(z / math.sqrt(2))) < 1.5e-7, z
        assert p_value(-z) == p_value(z)
