"""Generated event histories against the analyst tables (issue 23, rule 6): whatever a sender's events look like
and whenever the refresh runs, the incremental runs build what one full run builds, for every table, and every
figure keeps its bound.

A history is a few clients' events, each sent in one of a few runs' windows: ids sent again (with another time,
on another day or the same), sessions spanning runs and days, events that happened days before they arrived
(late days, queued past the refresh's bounded pass), clocks that are hours or a day off (with or without the
send time that corrects them), numbers that jump past the snippet's queue or to 2^53, drop reports of 10^9, a
handful of process ids for a bound of two a day. Runs are minutes to days apart (further than the lookback), at
simulated times. After the last run, hourly runs drain the late days' queue; then one full run must build the
same rows. Invariants on every history: rates in [0, 1], session durations under the cap, no figure above the
events sent times its bound.

The local BigQuery takes seconds a refresh, so CI runs a hand-made history with every kind of trouble and two
derandomized ones (the file in under 3 minutes); ANALYST_EXAMPLES=50 ANALYST_RANDOM=1 runs more, and new ones.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loyjoy_collector.ops.bootstrap import bootstrap
from loyjoy_collector.ops.refresh import Refreshed, built, model_sql, refresh, snippet_bounds
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row
from loyjoy_collector.settings import Settings
from loyjoy_collector.sink import BigQuerySink

from .conftest import PROJECT, VISITOR_UA

EXAMPLES = int(os.environ.get("ANALYST_EXAMPLES", "2"))
RANDOM = os.environ.get("ANALYST_RANDOM") == "1"
LATE_DAYS_PER_RUN = 2
IDS_PER_DAY = 2
SESSION_MAX_HOURS = int(re.search(r"DECLARE session_max_hours INT64 DEFAULT (\d+);", model_sql("refresh"))[1])
NAMES = ("load", "show", "open", "session_started", "sign_up", "newsletter_single_opt_in", "close", "message")
AGES = (
    timedelta(0),
    timedelta(minutes=5),
    timedelta(minutes=40),
    timedelta(hours=3),
    timedelta(hours=26),
    timedelta(days=3),
    timedelta(days=27),
)
GAPS = (timedelta(minutes=10), timedelta(minutes=50), timedelta(hours=2), timedelta(days=1), timedelta(days=3))


@dataclass(frozen=True)
class Sent:
    client: int
    session: int | None  # None: no session id (no analytics consent)
    name: str
    batch: int  # the run whose window it arrives in
    age: timedelta  # how long before it arrived it happened
    skew: timedelta  # the client's clock, off by this
    send_time: bool  # whether it says when it was sent (what corrects a skewed clock)
    step: int  # its number is the client's last one plus this
    copy_of: int | None  # sent again: the id of an earlier event (its index), with its own time
    dropped: dict[str, int] | None
    process: str | None
    process_name: str


def sent(clients: int, batches: int) -> st.SearchStrategy[Sent]:
    return st.builds(
        Sent,
        client=st.integers(0, clients - 1),
        session=st.one_of(st.none(), st.integers(0, 1)),
        name=st.sampled_from(NAMES),
        batch=st.integers(0, batches - 1),
        age=st.sampled_from(AGES),
        skew=st.sampled_from((timedelta(0), timedelta(0), timedelta(hours=2), -timedelta(days=1))),
        send_time=st.booleans(),
        step=st.sampled_from((1, 1, 1, 2, 7, 600, 2**40)),
        copy_of=st.one_of(st.none(), st.none(), st.integers(0, 30)),
        dropped=st.sampled_from((None, None, {"overflow": 3}, {"quota": 10**9})),
        process=st.sampled_from(("p-a", "p-a", "p-b", "p-c", "p-d", None)),
        process_name=st.sampled_from(("Shop", "Shop", "Quiz")),
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[timedelta], list[Sent]]:
    batches = draw(st.integers(2, 4))
    gaps = draw(st.lists(st.sampled_from(GAPS), min_size=batches - 1, max_size=batches - 1))
    clients = draw(st.integers(1, 3))
    events = draw(st.lists(sent(clients, batches), min_size=1, max_size=14))
    return gaps, events


def hand_made() -> tuple[list[timedelta], list[Sent]]:
    """One history with every kind of trouble at once, run first, whatever Hypothesis draws after it: a session
    across runs three days apart, an id sent again the next day and three days later, a queue that waited 27 days,
    a clock a day behind without its send time, numbers that jump past the queue and to 2^40, a drop report of
    10^9, and five process ids for a bound of two."""

    def one(client: int, name: str, batch: int, age: timedelta, **extra: Any) -> Sent:
        values: dict[str, Any] = {
            "session": 0,
            "skew": timedelta(0),
            "send_time": True,
            "step": 1,
            "copy_of": None,
            "dropped": None,
            "process": "p-a",
            "process_name": "Shop",
        }
        return Sent(client=client, name=name, batch=batch, age=age, **(values | extra))

    events = [
        one(0, "load", 0, timedelta(minutes=5)),
        one(0, "show", 0, timedelta(0)),
        one(0, "open", 1, timedelta(days=3), copy_of=1),  # the show's id again, its time three days earlier
        one(0, "session_started", 1, timedelta(hours=26), step=600),
        one(1, "sign_up", 1, timedelta(0), session=1, process="p-b", process_name="Quiz"),
        one(1, "message", 2, timedelta(days=27), step=2**40, dropped={"quota": 10**9}, process="p-c"),
        one(1, "load", 2, timedelta(minutes=40), skew=-timedelta(days=1), send_time=False, process="p-d"),
        one(2, "newsletter_single_opt_in", 2, timedelta(hours=3), copy_of=4, process="p-e", session=None),
        one(2, "close", 0, timedelta(days=3), step=7),
        # Client 3 numbers 1 and 3 three days and two days before the first run; 2, made with 1, arrives three
        # days later: it fills the gap counted on the next day, which only the late pass's day around rebuilds.
        one(3, "load", 0, timedelta(days=2, hours=20), session=None),
        one(3, "show", 1, timedelta(days=5, hours=20), session=None),
        one(3, "open", 0, timedelta(days=2), session=None),
    ]
    return [timedelta(days=3), timedelta(hours=2)], events


def rows_of(history: list[Sent], run_times: list[datetime]) -> list[list[dict[str, Any]]]:
    """The rows the collector stores for the history, per run window."""
    scrubber, settings = Scrubber(b"k"), Settings()
    seqs: dict[int, int] = {}
    ids: list[str] = []
    batches: list[list[dict[str, Any]]] = [[] for _ in run_times]
    for n, event in enumerate(history):
        seqs[event.client] = min(seqs.get(event.client, 0) + event.step, 2**53)
        copy = event.copy_of if event.copy_of is not None and event.copy_of < n else None
        ids.append(ids[copy] if copy is not None else uuid.uuid4().hex)
        received = run_times[event.batch] - timedelta(minutes=1 + n % 5)
        happened = received - event.age
        raw: dict[str, Any] = {
            "event": event.name,
            "event_id": ids[-1],
            "ts": (happened + event.skew).isoformat(),
            "client_id": f"c{event.client}",
            "seq": seqs[event.client],
            "bot_id": "b-gen",
            "page_location": "https://gen.example.com/",
            "detail": {"process_name": event.process_name},
        }
        if event.send_time:
            raw["sent_at"] = (received + event.skew).isoformat()
        if event.session is not None:
            raw["session_id"] = f"s{event.client}-{event.session}"
        if event.process is not None:
            raw["process_id"] = event.process
        if event.dropped:
            raw["dropped"] = event.dropped
        if copy is not None:
            raw["retry"] = 1
        ctx = RequestContext(received, "POST", "/", "", "text/plain", None, VISITOR_UA, None, None)
        row = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber)
        batches[event.batch].append(row | {"received_at": received.isoformat().replace("+00:00", "Z")})
    return batches


def tables(local_bigquery, dataset: str) -> dict[str, list[dict[str, Any]]]:
    return {
        name: local_bigquery.query(f"SELECT * FROM `{PROJECT}.{dataset}.{name}`")
        for name in built(ga4=False, loyjoy_export=False)
    }


def as_text(found: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {name: sorted(repr(sorted(row.items())) for row in rows) for name, rows in found.items()}


def check_bounds(found: dict[str, list[dict[str, Any]]], events: int) -> None:
    bound = snippet_bounds().max_queue
    for row in found["funnel_daily"]:
        for column in ("show_rate", "open_rate", "start_rate", "sign_up_rate", "opt_in_rate", "conversion_rate"):
            assert row[column] is None or 0 <= row[column] <= 1, (column, row)
        steps = [row[c] for c in ("sessions", "loaded", "shown", "opened", "started")]
        assert steps == sorted(steps, reverse=True) and row["signed_up"] <= row["started"], row
    for row in found["sessions"]:
        assert 0 <= row["duration_seconds"] < SESSION_MAX_HOURS * 3600, row
    assert len(found["sessions"]) <= events
    for row in found["delivery_health"]:
        assert row["later_page_share"] is None or 0 <= row["later_page_share"] <= 1, row
        for column in ("seq_gaps", "dropped_overflow", "dropped_quota", "dropped_consent"):
            assert 0 <= row[column] <= row["events_received"] * bound, (column, row)
        assert row["resets"] <= row["events_numbered"] and row["clients_with_gaps"] <= row["clients"], row
    assert sum(row["events"] for row in found["daily_counts"]) <= events
    per_day: dict[tuple[Any, str], set[str]] = {}
    for row in found["daily_counts"]:
        for dimension in ("bot_id", "process_id"):
            if row[dimension] not in (None, "(other)"):
                per_day.setdefault((row["day"], dimension), set()).add(row[dimension])
    assert all(len(ids) <= IDS_PER_DAY for ids in per_day.values()), per_day


def run(sink: BigQuerySink, at: datetime, *, full: bool = False) -> Refreshed:
    return refresh(sink, run_at=at, full=full)


def test_incremental_runs_build_what_one_full_run_builds_and_every_figure_keeps_its_bound(local_bigquery):
    # Simulated runs after bootstrap's own (at BigQuery's clock): the first of them is an ordinary incremental one.
    # At noon, so that an age of hours names the same day whenever the test runs.
    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=1)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        derandomize=not RANDOM,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(history=histories())
    @example(history=hand_made())
    def one_history(history: tuple[list[timedelta], list[Sent]]) -> None:
        gaps, events = history
        configured = Settings(
            bigquery_api_endpoint=local_bigquery.url,
            bq_project=PROJECT,
            bq_dataset=f"gen_{uuid.uuid4().hex[:8]}",
            late_days_per_run=LATE_DAYS_PER_RUN,
            ids_per_day=IDS_PER_DAY,
        )
        sink = BigQuerySink(configured)
        bootstrap(configured, sink)
        run_times = [start]
        for gap in gaps:
            run_times.append(run_times[-1] + gap)
        for at, rows in zip(run_times, rows_of(events, run_times), strict=True):
            if rows:
                assert local_bigquery.client.insert_rows_json(f"{sink.table_id('events')}", rows) == []
            ran = run(sink, at)
            assert ran.days <= 2 + LATE_DAYS_PER_RUN, ran  # today, yesterday and the bounded pass
        at = run_times[-1]
        for _ in range(12):  # drain the late days' queue, an hour apart
            at += timedelta(hours=1)
            ran = run(sink, at)
            assert ran.days <= 2 + LATE_DAYS_PER_RUN, ran
            if ran.late_days_queued == 0 and ran.days == 0:
                break
        assert ran.late_days_queued == 0, ran
        incremental = tables(local_bigquery, configured.bq_dataset)
        check_bounds(incremental, len(events))
        run(sink, at, full=True)
        full = tables(local_bigquery, configured.bq_dataset)
        for name, rows in as_text(incremental).items():
            assert rows == as_text(full)[name], name
        local_bigquery.client.delete_dataset(f"{PROJECT}.{configured.bq_dataset}", delete_contents=True)

    one_history()
