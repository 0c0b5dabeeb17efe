"""delivery_health in the local BigQuery: exact sequence gaps on a hand-made set (within a day, across days, a
late event filling a gap, copies counted once), the snippet's drop reports, delays, engines; incremental equals
full, a second run changes nothing."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import hcl2
import pytest

from loyjoy_collector.ops.cli import local_env, wait_for
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row
from loyjoy_collector.settings import Settings

from .conftest import LOGS, PROJECT, free_port
from .terraform_offline import TerraformRefused, evaluate

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
ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
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
    for key, value in (
        ("seq", event.seq),
        ("retry", event.retry),
        ("dropped", event.dropped),
        ("later_page", event.later_page),
    ):
        if value is not None:
            raw[key] = value
    ctx = RequestContext(event.ts, "POST", "/", "", "text/plain", None, event.agent, None, None)
    made = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, Settings(bq_dataset=DATASET), Scrubber(b"k"))
    received = event.ts + event.delay if event.delay is not None else received_at
    return made | {"received_at": received.isoformat().replace("+00:00", "Z")}


@pytest.fixture(scope="module")
def env(local_bigquery):
    environment = local_env(local_bigquery.port, "") | {"BQ_DATASET": DATASET}
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"],
        env=environment,
        check=True,
        capture_output=True,
    )
    return environment


def send(local_bigquery, events: list[Event], ago: timedelta = timedelta(0)) -> None:
    """Rows as the collector writes them, received `ago` before now."""
    received = datetime.now(UTC) - ago
    rows = [row(e, received) for e in events]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows) == []


def refresh(env, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", *args], env=env, capture_output=True, text=True
    )
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
        for column in (
            "events_received",
            "events_numbered",
            "seq_gaps",
            "dropped_overflow",
            "dropped_quota",
            "dropped_consent",
            "resent",
            "duplicates",
        ):
            totals[column] = totals.get(column, 0) + r[column]
    return out


def snapshot(local_bigquery) -> list[str]:
    return sorted(repr(sorted(r.items())) for r in health(local_bigquery))


def test_gaps_within_a_day_across_days_late_fills_copies_and_incremental_equals_full(env, local_bigquery):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    d = [today - timedelta(days=n) for n in (0, 1, 2, 3)]  # today, yesterday, ...
    a, b, c, e, g = (f"{name}-{uuid.uuid4().hex[:6]}" for name in "abceg")
    h = "gaps.example.com"  # this test's host: the other tests' rows stay out of its numbers
    eight = Event(a, 8, d[1] + timedelta(hours=11), host=h)
    hours_ago = timedelta(hours=3)  # received before the next runs' lookback: they see only what comes later
    send(
        local_bigquery,
        [
            # Client a, Chrome: 1 2 _ 4 the day before yesterday (one gap), _ _ 7 8 yesterday (two, across the
            # night), 9 _ _ 12 today (two). 8 arrives twice: the second copy flagged resent.
            Event(a, 1, d[2] + timedelta(hours=9), host=h),
            Event(a, 2, d[2] + timedelta(hours=9, minutes=1), host=h),
            Event(a, 4, d[2] + timedelta(hours=10), host=h),
            Event(a, 7, d[1] + timedelta(hours=10), host=h),
            eight,
            Event(a, 9, d[0] + timedelta(minutes=10), host=h),
            Event(a, 12, d[0] + timedelta(minutes=20), host=h),
            # Client b, Chrome on an iPhone (WebKit, like every iOS browser): 1 2 3 _ 5 today; 4 comes later.
            *[Event(b, n, d[0] + timedelta(minutes=n), agent=CHROME_IOS, host=h) for n in (1, 2, 3, 5)],
            # Client c, Firefox: 1 three days ago, _ 3 the day after; 2 comes later, dated three days ago.
            Event(c, 1, d[3] + timedelta(hours=8), agent=FIREFOX, host=h),
            Event(c, 3, d[2] + timedelta(hours=8), agent=FIREFOX, host=h),
            # Client e: 1 three days ago, 5 yesterday: two days apart, no gap (a number is compared with those a
            # day around it, so that it changes the figures of no more days than that).
            Event(e, 1, d[3] + timedelta(hours=7), host=h),
            Event(e, 5, d[1] + timedelta(hours=7), host=h),
            # Client g starts at 3 (numbers below a client's first count nothing: it may be a returning visitor).
            Event(g, 3, d[0] + timedelta(minutes=30), agent=SAFARI_MAC, host=h),
            Event(g, 4, d[0] + timedelta(minutes=31), agent=SAFARI_MAC, host=h),
        ],
        ago=hours_ago,
    )
    send(local_bigquery, [Event(a, 8, eight.ts, host=h, retry=1, event_id=eight.event_id)], ago=hours_ago)
    refresh(env, "--full")

    def per_day() -> dict[Any, tuple[int, int]]:
        days = by(local_bigquery, "event_date", where=f"page_hostname = '{h}'")
        return {day: (v["events_received"], v["seq_gaps"]) for day, v in days.items()}

    assert per_day() == {
        d[3].date(): (2, 0),
        d[2].date(): (4, 1 + 1),  # a: 3, c: 2 (below 3, a day after 1)
        d[1].date(): (3, 2),  # a: 5 6 (below 7); e: none (5 is two days after 1)
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

    # A late event alone: c's 2, dated three days ago. The run rebuilds that day, and the next too, where the
    # gap it fills was counted (on c's 3).
    send(local_bigquery, [Event(c, 2, d[3] + timedelta(hours=9), agent=FIREFOX, host=h, retry=2)])
    assert "rebuilt 1 event days" in refresh(env)
    assert per_day() == {d[3].date(): (3, 0), d[2].date(): (4, 1), d[1].date(): (3, 2), d[0].date(): (8, 3)}
    resent = by(local_bigquery, "event_date", where=f"page_hostname = '{h}'")[d[3].date()]
    assert (resent["resent"], resent["duplicates"]) == (1, 0)  # sent again, yet the only copy that arrived

    # More late ones: b's 4 today, a's 3 and a's 5 (sent twice, from a later page).
    five = Event(a, 5, d[1] + timedelta(hours=9), host=h, later_page=True)
    send(
        local_bigquery,
        [
            Event(b, 4, d[0] + timedelta(minutes=4), agent=CHROME_IOS, host=h, later_page=True),
            Event(a, 3, d[2] + timedelta(hours=9, minutes=30), host=h),
            five,
        ],
    )
    send(local_bigquery, [Event(a, 5, five.ts, host=h, retry=1, later_page=True, event_id=five.event_id)])
    refresh(env)
    assert per_day() == {
        d[3].date(): (3, 0),
        d[2].date(): (5, 0),  # a's 3 filled the gap below 4
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
    events = [
        Event(client, n + 1, now - timedelta(seconds=200 - n), host=h, delay=timedelta(seconds=s))
        for n, s in enumerate(delays)
    ]
    events[3].dropped = {"overflow": 40, "quota": 2}
    events[7].dropped = {"consent": 5}
    send(local_bigquery, events)
    send(
        local_bigquery,
        [
            Event(
                client,
                4,
                events[3].ts,
                host=h,
                retry=1,
                dropped={"overflow": 40, "quota": 2},
                event_id=events[3].event_id,
                delay=timedelta(seconds=4),
            )
        ],
    )
    # A crawler's events, numbered with holes: bots are in no analyst number.
    send(
        local_bigquery,
        [Event("bot-" + client, n, now - timedelta(seconds=60 - n), agent=GOOGLEBOT, host=h) for n in (1, 5, 9)],
    )
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


ENGINES = {  # real user agents, and the engine each one renders with
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
    "Chrome/121.0.0.0 Mobile Safari/537.36": ("Samsung Internet", "Blink"),
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36": (
        "Chrome Mobile",
        "Blink",
    ),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36 Edg/131.0.0.0": ("Edge", "Blink"),
    "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0": ("Firefox Mobile", "Gecko"),
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "FxiOS/133.0 Mobile/15E148 Safari/605.1.15": ("Firefox iOS", "WebKit"),
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1": ("Mobile Safari", "WebKit"),
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15": (
        "Safari",
        "WebKit",
    ),  # WebKitGTK's MiniBrowser, as the engine tests drive it
    SAFARI_MAC: ("Safari", "WebKit"),
    FIREFOX: ("Firefox", "Gecko"),
    CHROME: ("Chrome", "Blink"),
}


def test_the_engine_comes_from_the_browser_family_and_every_ios_browser_is_webkit(env, local_bigquery):
    host, now = "engines.example.com", datetime.now(UTC) - timedelta(minutes=5)
    send(
        local_bigquery,
        [Event(f"e-{n}-{uuid.uuid4().hex[:4]}", 1, now, agent=agent, host=host) for n, agent in enumerate(ENGINES)],
    )
    refresh(env)
    found = {(r["browser"], r["engine"]) for r in health(local_bigquery, f"page_hostname = '{host}'")}
    assert found == set(ENGINES.values())


# ------------------------------------------------------------------ the alert: its query, run where it would run
ALERT_DATASET = "delivery_alert_test"


def seed_health(local_bigquery, rows: list[tuple[Any, str, str, int, int, int]]) -> None:
    """A delivery_health of hand-made rows: (day, host, browser, numbered events, gaps, clients with gaps)."""
    engines = {"Chrome": "Blink", "Safari": "WebKit", "Firefox": "Gecko"}
    selects = [
        f"SELECT DATE '{day}' AS event_date, '{host}' AS page_hostname, '{browser}' AS browser, "
        f"'{engines[browser]}' AS engine, {numbered} AS events_received, {numbered} AS events_numbered, "
        f"{gaps} AS seq_gaps, {clients} AS clients_with_gaps"
        for day, host, browser, numbered, gaps, clients in rows
    ]
    local_bigquery.client.create_dataset(f"{PROJECT}.{ALERT_DATASET}", exists_ok=True)
    local_bigquery.query(
        f"CREATE OR REPLACE TABLE `{PROJECT}.{ALERT_DATASET}.delivery_health` AS {' UNION ALL '.join(selects)}"
    )


def run_check(local_bigquery, sql: str) -> dict[str, Any]:
    [result] = local_bigquery.query(sql)
    return result


def test_the_gap_check_fails_when_yesterdays_rate_passes_the_threshold(local_bigquery):
    from google.api_core.exceptions import BadRequest

    from loyjoy_collector.ops.refresh import delivery_gap_check

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    today = datetime.now(UTC).date()
    seed_health(
        local_bigquery,
        [
            (yesterday, "shop.example.com", "Chrome", 900, 5, 4),
            (yesterday, "=HYPERLINK(evil)", "Safari", 80, 15, 8),  # the worst engine, on a host a sender named
            (today, "shop.example.com", "Chrome", 10, 500, 50),  # today is not finished: not read
        ],
    )
    check = partial(delivery_gap_check, PROJECT, ALERT_DATASET)
    passed = run_check(local_bigquery, check(threshold=0.05, min_clients=10))
    assert (passed["gaps"], passed["numbered"], passed["clients"]) == (20, 980, 12)
    assert passed["gap_rate"] == pytest.approx(20 / 1000)
    with pytest.raises(BadRequest) as failed:
        run_check(local_bigquery, check(threshold=0.015, min_clients=12))
    message = str(failed.value)
    assert f"LoyJoy delivery gap rate 2.00% on {yesterday} is above 1.50%" in message
    assert "20 events lost on the way by 12 clients, 980 numbered events received" in message
    assert "worst engine: WebKit 15.79%" in message
    assert "HYPERLINK" not in message and "shop.example.com" not in message  # no text a sender wrote
    run_check(local_bigquery, check(threshold=0.015, min_clients=13))  # too few clients to tell: no alert


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Path:
    """A module of infra/'s variables and of its locals that read only variables and files: what `terraform
    console` evaluates without a provider, as `plan` would. Beside it a link to functions/, so that
    `${path.module}/../functions/...` reads the SQL the code reads."""
    assert shutil.which("terraform"), "the terraform binary is needed"
    root = tmp_path_factory.mktemp("delivery")
    module = root / "infra"
    module.mkdir()
    (root / "functions").symlink_to(ROOT / "functions")
    shutil.copy(INFRA / "variables.tf", module / "variables.tf")
    blocks = [
        block
        for name in ("analytics.tf", "monitoring.tf")
        for block in re.findall(r"^locals \{\n.*?^\}\n", (INFRA / name).read_text(), re.M | re.S)
        if "google_" not in block
    ]
    assert any("delivery_gap_sql" in block for block in blocks) and any("refresh_script" in block for block in blocks)
    (module / "locals.tf").write_text("\n".join(blocks))
    return module


def test_the_alert_is_on_by_default_and_its_threshold_a_validated_variable(console):
    assert evaluate(console, "var.delivery_gap_alert") == {
        "enabled": True,
        "threshold": 0.01,
        "min_clients": 10,
        "schedule": "every day 06:00",
    }
    assert evaluate(console, "local.delivery_gap_check") == {"on": True}
    assert evaluate(console, "local.delivery_gap_check", alerts_enabled=False) == {}
    assert evaluate(console, "local.delivery_gap_check", delivery_gap_alert={"enabled": False}) == {}
    chosen = {"threshold": 0.05, "min_clients": 1, "schedule": "every 12 hours"}
    assert evaluate(console, "var.delivery_gap_alert", delivery_gap_alert=chosen) == chosen | {"enabled": True}
    for value, message in (
        ({"threshold": 0}, "threshold is a share above 0 and below 1"),
        ({"threshold": 1}, "threshold is a share above 0 and below 1"),
        ({"threshold": -0.5}, "threshold is a share above 0 and below 1"),
        ({"threshold": "high"}, "Invalid value for input variable"),
        ({"min_clients": 0}, "min_clients is a whole number"),
        ({"min_clients": 2.5}, "min_clients is a whole number"),
        ({"schedule": "daily"}, "schedule is a scheduled query schedule"),
    ):
        with pytest.raises(TerraformRefused, match=message):
            evaluate(console, "var.delivery_gap_alert", delivery_gap_alert=value)


def test_terraform_schedules_the_check_the_local_bigquery_ran(console, local_bigquery):
    """The query Terraform renders is byte for byte the one the test above runs, and it fails where it should."""
    from google.api_core.exceptions import BadRequest

    from loyjoy_collector.ops.refresh import delivery_gap_check

    variables = {"project_id": PROJECT, "dataset_id": ALERT_DATASET}
    sql = evaluate(console, "local.delivery_gap_sql", **variables, delivery_gap_alert={"threshold": 0.015})
    assert sql == delivery_gap_check(PROJECT, ALERT_DATASET, threshold=0.015, min_clients=10)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    seed_health(local_bigquery, [(yesterday, "shop.example.com", "Chrome", 980, 20, 10)])
    with pytest.raises(BadRequest, match=r"delivery gap rate 2\.00%"):
        run_check(local_bigquery, sql)
    relaxed = evaluate(console, "local.delivery_gap_sql", **variables, delivery_gap_alert={"threshold": 0.03})
    assert run_check(local_bigquery, relaxed)["gaps"] == 20


def block_errors(body: dict[str, Any], spec: Any, where: str) -> list[str]:
    """Arguments and nested blocks that the provider's schema does not have, and required ones missing."""
    errors = []
    for key, value in body.items():
        if key.startswith("__") or key in {"for_each", "depends_on", "count", "lifecycle"}:
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value):
            if key not in spec.blocks:
                errors.append(f"{where}: no block {key}")
                continue
            for item in value:
                errors += block_errors(item, spec.blocks[key][1], f"{where}.{key}")
        elif key not in spec.arguments:
            errors.append(f"{where}: no argument {key}")
    present = set(body)
    errors += [
        f"{where}: {name} missing" for name, required in spec.arguments.items() if required and name not in present
    ]
    errors += [
        f"{where}: block {name} missing"
        for name, (required, _) in spec.blocks.items()
        if required and name not in present
    ]
    return errors


def resources(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for item in hcl2.loads((INFRA / name).read_text()).get("resource", []):
        for type_name, named in item.items():
            for resource, body in named.items():
                found[(type_name.strip('"'), resource.strip('"'))] = body
    return found


def test_the_check_and_its_alert_policy_are_resources_the_google_provider_has(console):
    from . import provider_schema

    schema = provider_schema.load()
    mine = {**resources("monitoring.tf"), **resources("analytics.tf")}
    wanted = [
        ("google_bigquery_data_transfer_config", "delivery_gap_check"),
        ("google_monitoring_alert_policy", "delivery_gaps"),
        ("google_bigquery_dataset_iam_member", "refresh_reads_loyjoy_export"),
    ]
    errors = []
    for key in wanted:
        errors += block_errors(mine[key], schema[f"resource.{key[0]}"].block, ".".join(key))
    assert errors == []
    check, policy = mine[wanted[0]], mine[wanted[1]]
    assert check["for_each"] == policy["for_each"] == "${local.delivery_gap_check}"
    assert check["params"]["query"] == "${local.delivery_gap_sql}"
    assert check["data_source_id"].strip('"') == "scheduled_query"
    limit = policy["alert_strategy"][0]["notification_rate_limit"][0]["period"]
    assert limit.strip('"') == "3600s"  # required for a log-match condition
    # The policy matches the error lines of this transfer config's runs: the filter, with the config's name as the
    # provider returns it.
    [condition] = policy["conditions"][0]["condition_matched_log"]
    reference = "google_bigquery_data_transfer_config.delivery_gap_check[each.key].name"
    assert reference in condition["filter"]
    name = "projects/my-project-1/locations/EU/transferConfigs/6a1b2c3d-0000-4000-8000-1234567890ab"
    assert evaluate(console, condition["filter"].replace(reference, json.dumps(name))) == (
        'resource.type="bigquery_dts_config" AND resource.labels.config_id="6a1b2c3d-0000-4000-8000-1234567890ab"'
        " AND severity>=ERROR"
    )


# ------------------------------------------------------------------ reconciliation with LoyJoy's own export
RECONCILE_DATASET, EXPORT = "reconcile_test", "loyjoy_export_test"


def seed_export(local_bigquery, facts: list[tuple[datetime, str, str, int]]) -> None:
    """LoyJoy's export as its documentation shapes it: facts (amount, created_at, entity_id, event_type, id,
    tenant_id) and dimensions (bot_id, bot_name, process_id, process_name, ...)."""
    local_bigquery.client.create_dataset(f"{PROJECT}.{EXPORT}", exists_ok=True)
    rows = " UNION ALL ".join(
        f"SELECT {amount} AS amount, TIMESTAMP '{at.isoformat()}' AS created_at, '{process}' AS entity_id, "
        f"'{kind}' AS event_type, '{uuid.uuid4().hex}' AS id, 't-1' AS tenant_id"
        for at, process, kind, amount in facts
    )
    local_bigquery.query(f"CREATE OR REPLACE TABLE `{PROJECT}.{EXPORT}.facts` AS {rows}")
    local_bigquery.query(
        f"CREATE OR REPLACE TABLE `{PROJECT}.{EXPORT}.dimensions` AS "
        "SELECT 'b-1' AS bot_id, 'Shop bot' AS bot_name, 'p-1' AS process_id, 'Newsletter' AS process_name, "
        "'t-1' AS tenant_id UNION ALL SELECT 'b-1', 'Shop bot', 'p-2', 'Quiz', 't-1'"
    )


def chat(name: str, ts: datetime, process: str, agent: str = CHROME) -> dict[str, Any]:
    raw = {
        "event": name,
        "ts": ts.isoformat(),
        "sent_at": ts.isoformat(),
        "client_id": "c-r",
        "process_id": process,
        "session_id": f"s-{process}-{ts.hour}",
        "bot_id": "b-1",
        "event_id": uuid.uuid4().hex,
    }
    ctx = RequestContext(ts, "POST", "/", "", "text/plain", None, agent, None, None)
    row = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, Settings(bq_dataset=RECONCILE_DATASET), Scrubber(b"k"))
    return row | {"received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


def test_reconciliation_with_loyjoys_export_per_day_process_and_shared_event_type(local_bigquery):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    seed_export(
        local_bigquery,
        [
            (yesterday + timedelta(hours=9), "p-1", "session_started", 2),
            (yesterday + timedelta(hours=10), "p-1", "SESSION_STARTED", 2),  # the case does not matter
            (yesterday + timedelta(hours=9), "p-1", "open", 5),
            (yesterday + timedelta(hours=9), "p-1", "message_sent", 40),  # a server-side type the widget never sends
            (today + timedelta(minutes=5), "p-2", "sign_up", 2),
        ],
    )
    environment = local_env(local_bigquery.port, "") | {
        "BQ_DATASET": RECONCILE_DATASET,
        "LOYJOY_EXPORT_DATASET": EXPORT,
    }
    booted = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=environment, capture_output=True, text=True
    )
    assert booted.returncode == 0, booted.stderr[-3000:]
    rows = [chat("session_started", yesterday + timedelta(hours=h), "p-1") for h in (9, 10, 11)]
    rows += [chat("open", yesterday + timedelta(hours=9, minutes=m), "p-1") for m in range(5)]
    rows += [chat("quiz_answer", yesterday + timedelta(hours=9), "p-1")]  # a custom event LoyJoy does not count
    rows += [chat("open", yesterday + timedelta(hours=12), "p-1", agent=GOOGLEBOT)]  # a bot: left out
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{RECONCILE_DATASET}.events", rows) == []
    refresh(environment)

    def reconciled() -> dict[tuple[Any, str, str], tuple[Any, ...]]:
        found = local_bigquery.query(f"SELECT * FROM `{PROJECT}.{RECONCILE_DATASET}.loyjoy_reconciliation`")
        return {
            (r["day"], r["process_id"], r["event_name"]): (
                r["process_name"],
                r["collector_events"],
                r["loyjoy_events"],
                r["difference"],
                r["coverage"],
            )
            for r in found
        }

    assert reconciled() == {
        (yesterday.date(), "p-1", "session_started"): ("Newsletter", 3, 4, -1, 0.75),
        (yesterday.date(), "p-1", "open"): ("Newsletter", 5, 5, 0, 1.0),
        (today.date(), "p-2", "sign_up"): ("Quiz", 0, 2, -2, 0.0),
    }
    # The export of a day arrives a day late: the next run finds it without a new event of the collector's.
    seed_export(
        local_bigquery,
        [
            (yesterday + timedelta(hours=9), "p-1", "session_started", 3),
            (yesterday + timedelta(hours=9), "p-1", "open", 6),
            (today + timedelta(minutes=5), "p-2", "sign_up", 2),
        ],
    )
    refresh(environment)
    incremental = reconciled()
    assert incremental[(yesterday.date(), "p-1", "session_started")] == ("Newsletter", 3, 3, 0, 1.0)
    assert incremental[(yesterday.date(), "p-1", "open")] == ("Newsletter", 5, 6, -1, 5 / 6)
    refresh(environment, "--full")
    assert reconciled() == incremental


def test_looker_studio_opens_delivery_health_with_every_partition_column_as_the_date_range(console):
    """The link output, evaluated by Terraform: each data source is a day-partitioned table marked isPartitioned
    (REFERENCE: the only way to make the partition column the date range); reconciliation only with the export."""
    [value] = [
        body["value"]
        for item in hcl2.loads((INFRA / "outputs.tf").read_text())["output"]
        for name, body in item.items()
        if name.strip('"') == "looker_studio_url"
    ]
    assert value.startswith("${") and value.endswith("}")

    def sources(**variables: Any) -> dict[str, dict[str, str]]:
        url = evaluate(console, value[2:-1], **variables)
        found: dict[str, dict[str, str]] = {}
        for key, item in parse_qsl(urlsplit(url).query):
            if key.startswith("ds."):
                _, source, field_ = key.split(".", 2)
                found.setdefault(source, {})[field_] = item
        return found

    plain = sources()
    assert [s["tableId"] for s in plain.values()] == [
        "loyjoy_kpis",
        "funnel_daily",
        "sessions",
        "daily_counts",
        "opt_ins",
        "delivery_health",
        "experiments",
    ]
    assert all(s["isPartitioned"] == "true" and s["connector"] == "bigQuery" for s in plain.values())
    assert {s["datasetId"] for s in plain.values()} == {"loyjoy"}
    reconciling = sources(loyjoy_export_dataset="loyjoy_export")
    assert [s["tableId"] for s in reconciling.values()][-1] == "loyjoy_reconciliation"
    assert all(s["isPartitioned"] == "true" for s in reconciling.values())


def test_the_export_dataset_is_validated_and_the_scheduled_refresh_reconciles_with_it(console):
    from loyjoy_collector.ops.refresh import script

    for good, qualified in (
        ("", ""),
        ("loyjoy_export", "my-project-1.loyjoy_export"),
        ("other-project.lj_2", "other-project.lj_2"),
    ):
        assert evaluate(console, "local.loyjoy_export", loyjoy_export_dataset=good) == qualified
    for bad in ("has-hyphens", "a.b.c", "Project.x", "x."):
        with pytest.raises(TerraformRefused, match="loyjoy_export_dataset is a dataset id"):
            evaluate(console, "var.loyjoy_export_dataset", loyjoy_export_dataset=bad)
    # The scheduled refresh is the script `loyjoy-collector refresh` runs with the same setting, both ways.
    for export in ("", "loyjoy_export"):
        scheduled = evaluate(console, "local.refresh_script", loyjoy_export_dataset=export)
        expected = script(
            "my-project-1", "loyjoy", include_bots=False, loyjoy_export_dataset=export, ga4_start_date=date(2026, 1, 1)
        )
        assert scheduled == expected  # ga4_start_date: Terraform's default (no GA4 step runs without an export)
    assert "`my-project-1.loyjoy_export.facts`" in scheduled and "DECLARE reconcile BOOL DEFAULT true;" in scheduled


# ------------------------------------------------------------------ the demo page's chart
def test_the_demo_page_charts_delivery_health(env, local_bigquery, browser):
    """Two weeks of visitors whose browsers lost a few numbers on the way: delivery_health finds exactly the gaps
    between received numbers (none after a client's last, none below its first), and the demo page that
    `loyjoy-collector dev` serves charts the table's days. The screenshot lands in $TEST_LOG_DIR."""
    rng = random.Random(19)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    host, events, expected = "demo.example.com", [], {}
    for offset in range(13, -1, -1):
        day = today - timedelta(days=offset)
        gaps = 0
        for n in range(rng.randint(4, 8)):
            client, length = f"v-{offset}-{n}-{uuid.uuid4().hex[:4]}", rng.randint(6, 30)
            loss = 0.15 if offset in (9, 3) else 0.02  # two bad days
            received = [seq for seq in range(1, length + 1) if rng.random() > loss]
            gaps += sum(b - a - 1 for a, b in pairwise(received))
            agent = rng.choice([CHROME, FIREFOX, CHROME_IOS, SAFARI_MAC])
            for seq in received:
                at = day + timedelta(minutes=5 + 30 * n + seq)
                dropped = {"overflow": 3} if rng.random() < 0.01 else None
                events.append(Event(client, seq, at, agent=agent, host=host, dropped=dropped))
        expected[day.date()] = gaps
    send(local_bigquery, events)
    refresh(env, "--full")  # two weeks arriving at once: an hourly run takes a few late days each (LATE_DAYS_PER_RUN)
    found = by(local_bigquery, "event_date", where=f"page_hostname = '{host}'")
    assert {day: v["seq_gaps"] for day, v in found.items()} == expected
    assert sum(v["events_received"] for v in found.values()) == len(events)

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loyjoy_collector.ops.devserver",
            "--port",
            str(port),
            "--collector",
            "http://127.0.0.1:9/",
        ],
        env=env,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/config.js", 15, server)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("() => (Chart.getChart('delivery') || {data: {labels: []}}).data.labels.length > 0")
        drawn = page.evaluate(
            "() => { const c = Chart.getChart('delivery'); return {days: c.data.labels,"
            " series: c.data.datasets.map(d => [d.label, d.data])}; }"
        )
        page.add_style_tag(content="#loyjoy-standin { display: none !important; }")  # the widget floats over it
        page.locator("#delivery").scroll_into_view_if_needed()
        page.screenshot(path=str(LOGS / "delivery-chart-page.png"), full_page=True)
        page.locator("#delivery").screenshot(path=str(LOGS / "delivery-chart.png"))
        note = page.locator("#delivery-note").inner_text()
        page.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    window = today.date() - timedelta(days=30)
    table = {day: v for day, v in by(local_bigquery, "event_date").items() if day >= window}
    assert drawn["days"] == [str(day) for day in sorted(table)]
    assert drawn["series"] == [
        ["events received", [table[day]["events_received"] for day in sorted(table)]],
        ["sequence gaps (events lost on the way)", [table[day]["seq_gaps"] for day in sorted(table)]],
        [
            "drops the snippet reported",
            [
                sum(table[day][k] for k in ("dropped_overflow", "dropped_quota", "dropped_consent"))
                for day in sorted(table)
            ],
        ],
    ]
    total_gaps = sum(v["seq_gaps"] for v in table.values())
    assert f"{sum(v['events_received'] for v in table.values())} events received, {total_gaps} lost" in note
