"""The incremental refresh of the analyst tables in the local BigQuery: late events, sessions across midnight,
copies, and a second run that changes nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from loyjoy_collector.ops.cli import local_env
from loyjoy_collector.ops.refresh import MODELS
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row
from loyjoy_collector.settings import Settings

from .conftest import PROJECT

DATASET = "refresh_test"


@pytest.fixture(scope="module")
def env(local_bigquery):
    environment = local_env(local_bigquery.port, "") | {"BQ_DATASET": DATASET}
    subprocess.run([sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=environment, check=True,
                   capture_output=True)  # fmt: skip
    return environment


def refresh(env, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", *args], env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout


def send(local_bigquery, events: list[tuple[str, datetime, str]], copies: int = 0) -> list[str]:
    """Rows as the collector writes them, received now: (event name, event time, session id)."""
    now = datetime.now(UTC)
    settings, scrubber, rows = Settings(bq_dataset=DATASET), Scrubber(b"k"), []
    for name, ts, session in events:
        raw = {"event": name, "ts": ts.isoformat(), "sent_at": ts.isoformat(), "session_id": session,
               "client_id": "c-" + session, "bot_id": "b-refresh", "process_id": "p-1", "event_id": uuid.uuid4().hex}  # fmt: skip
        ctx = RequestContext(ts, "POST", "/", "", "text/plain", None, "", None, None)
        row = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber)
        rows.append(row | {"received_at": now.isoformat().replace("+00:00", "Z")})
    rows += rows[:copies]  # the snippet sent these again
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows) == []
    return [row["event_id"] for row in rows]


def table(local_bigquery, name: str, where: str = "TRUE") -> list[dict]:
    return local_bigquery.query(f"SELECT * FROM `{PROJECT}.{DATASET}.{name}` WHERE {where} ORDER BY 1, 2, 3")


def snapshot(local_bigquery) -> dict[str, list[str]]:
    return {name: sorted(repr(sorted(row.items())) for row in table(local_bigquery, name)) for name in MODELS}


def test_incremental_refresh_late_events_midnight_sessions_and_a_second_run(env, local_bigquery):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight = f"s-{uuid.uuid4().hex[:8]}"
    send(local_bigquery, [
        ("load", today - timedelta(minutes=2), midnight),  # yesterday 23:58
        ("open", today - timedelta(minutes=1), midnight),
        ("sign_up", today + timedelta(minutes=1), midnight),  # today 00:01: the same session
        ("load", today + timedelta(hours=9), "s-other"),
    ], copies=2)  # fmt: skip
    first = refresh(env)
    assert "rebuilt 2 event days" in first
    [session] = table(local_bigquery, "sessions", f"session_id = '{midnight}'")
    assert (session["events"], session["day"], session["outcome"]) == (
        3,
        (today - timedelta(days=1)).date(),
        "signed_up",
    )
    clean = local_bigquery.query(f"SELECT COUNT(*) AS n FROM `{PROJECT}.{DATASET}.events_clean`")[0]["n"]
    raw = local_bigquery.query(f"SELECT COUNT(*) AS n FROM `{PROJECT}.{DATASET}.events`")[0]["n"]
    assert (clean, raw) == (4, 6)  # the copies count once

    before = snapshot(local_bigquery)
    refresh(env)  # nothing new: the window is what the lookback covers, rebuilt to the same numbers
    assert snapshot(local_bigquery) == before

    # A queue that waited ten days in a browser, and a late event of the midnight session.
    late_day = today - timedelta(days=10)
    send(local_bigquery, [("load", late_day + timedelta(hours=12), "s-late"),
                          ("close", today + timedelta(minutes=5), midnight)])  # fmt: skip
    third = refresh(env)
    assert f"to {today.date()}" in third and str(late_day.date()) in third
    counts = {(r["day"], r["event_name"]): r["events"] for r in table(local_bigquery, "daily_counts")}
    assert counts[(late_day.date(), "load")] == 1
    [session] = table(local_bigquery, "sessions", f"session_id = '{midnight}'")
    assert (session["events"], session["closed"]) == (4, True)  # rebuilt whole, still one row
    funnel = {r["day"]: r for r in table(local_bigquery, "funnel_daily")}
    assert funnel[(today - timedelta(days=1)).date()]["signed_up"] == 1
    manifest = local_bigquery.query(
        f"SELECT * FROM `{PROJECT}.{DATASET}.refresh_manifest` ORDER BY run_at DESC LIMIT 1"
    )
    assert late_day.date() in manifest[0]["days"]


def test_a_full_refresh_gives_the_same_tables_as_the_increments(env, local_bigquery):
    before = snapshot(local_bigquery)
    assert "rebuilt" in refresh(env, "--full")
    assert snapshot(local_bigquery) == before
