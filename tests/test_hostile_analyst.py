"""The hostile analyst's findings that the analyst tables close (issue 23): no request moves a figure, an alert or
the refresh's cost by more than the events it carries.

One test per finding, each with rows as the collector stores what any page visitor can send (a browser's user
agent, numbers and ids of the sender's choosing): (2) sums that would overflow INT64, (3) loss made up by a jump
in the numbers or a huge drop report, and an alert set off by one client, (4) sessions and funnel, (6) incremental
runs against a full rebuild, (7) delays, (8) the refresh's cost, (9) example_detail, (10) new ids, (11) sums and
averages of visitor numbers. The collector's half of the issue is in tests/test_hostile_analyst_gate.py.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loyjoy_collector.ops.cli import local_env
from loyjoy_collector.ops.refresh import delivery_gap_check, snippet_bounds
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row
from loyjoy_collector.settings import Settings

from .conftest import PROJECT, VISITOR_UA

DATASET = "hostile_analyst"
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def env(local_bigquery) -> dict[str, str]:
    return bootstrapped(local_env(local_bigquery.port, "") | {"BQ_DATASET": DATASET})


def bootstrapped(environment: dict[str, str]) -> dict[str, str]:
    """The environment, once `loyjoy-collector bootstrap` has made its dataset's tables."""
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"],
        env=environment,
        check=True,
        capture_output=True,
    )
    return environment


def stored(raw: dict[str, Any], received_at: datetime | None = None) -> dict[str, Any]:
    """The row the collector writes for one event a visitor sent (`ts`: when it happened, on its clock, which is
    right: sent when received, a minute ago unless said)."""
    received = received_at or datetime.now(UTC) - timedelta(minutes=1)
    raw = {"event_id": uuid.uuid4().hex, "sent_at": received.isoformat(), **raw}
    ctx = RequestContext(received, "POST", "/", "", "text/plain", None, VISITOR_UA, None, None)
    row = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, Settings(bq_dataset=DATASET), Scrubber(b"k"))
    return row | {"received_at": received.isoformat().replace("+00:00", "Z")}


def insert(local_bigquery, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5000):
        assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows[start : start + 5000]) == []


def refresh(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def query(local_bigquery, sql: str) -> list[dict[str, Any]]:
    return local_bigquery.query(sql.replace("`t.", f"`{PROJECT}.{DATASET}."))


def health(local_bigquery, host: str) -> dict[str, int]:
    """delivery_health summed over the host's rows."""
    rows = query(local_bigquery, f"SELECT * FROM `t.delivery_health` WHERE page_hostname = '{host}'")
    columns = ("events_received", "seq_gaps", "resets", "clients_with_gaps", "dropped_overflow", "dropped_quota")
    return {column: sum(r.get(column) or 0 for r in rows) for column in columns}


def numbered(client: str, seq: int, ts: datetime, host: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": "message",
        "ts": ts.isoformat(),
        "client_id": client,
        "session_id": "s-" + client,
        "seq": seq,
        "page_location": f"https://{host}/",
        **extra,
    }


# ------------------------------------------------------------------------------- (2) a sum past INT64


def test_sequence_jumps_of_many_clients_cannot_overflow_the_gap_sum(env, local_bigquery):
    """1,025 clients each send seq 1 and then 2^53 (the largest the gate takes). Summed as loss, their gaps pass
    INT64, where real BigQuery's SUM fails and the refresh with it (the local BigQuery adds past it silently, so
    the bound is checked by arithmetic: the stored figure is the capped one). Each jump is wider than the
    snippet's queue: a reset, not loss."""
    host, at = f"overflow-{uuid.uuid4().hex[:6]}.example.com", datetime.now(UTC) - timedelta(hours=1)
    clients = [f"o{n}-{uuid.uuid4().hex[:6]}" for n in range(1025)]
    rows = [stored(numbered(c, seq, at + timedelta(seconds=seq > 1), host)) for c in clients for seq in (1, 2**53)]
    insert(local_bigquery, rows)
    assert INT64_MAX < 1025 * (2**53 - 2)  # what the old sum was
    refresh(env)
    found = health(local_bigquery, host)
    bound = snippet_bounds().max_queue
    assert (found["events_received"], found["seq_gaps"], found["resets"]) == (2050, 0, 1025)
    assert found["seq_gaps"] <= found["events_received"] * bound  # no figure above events sent times its bound


# ------------------------------------------------------------------------------- (3) loss made up, an alert set off


def test_a_jump_in_the_numbers_and_a_huge_drop_report_are_no_loss(env, local_bigquery):
    """One client's jump from seq 1 to 10^8 was 99,999,998 lost events, and a drop report of 10^9 was stored as
    sent. The jump is a reset; a drop report counts what the queue could have dropped, at most."""
    bound = snippet_bounds().max_queue
    host = f"loss-{uuid.uuid4().hex[:6]}.example.com"
    at = datetime.now(UTC) - timedelta(hours=1)
    client = f"j-{uuid.uuid4().hex[:6]}"
    insert(
        local_bigquery,
        [
            stored(numbered(client, 1, at, host)),
            stored(numbered(client, 10**8, at + timedelta(seconds=1), host, dropped={"overflow": 10**9})),
            stored(numbered(client, 10**8 + bound + 1, at + timedelta(seconds=2), host)),  # bound missing: loss
        ],
    )
    refresh(env)
    found = health(local_bigquery, host)
    assert (found["seq_gaps"], found["resets"], found["clients_with_gaps"]) == (bound, 1, 1)
    assert found["dropped_overflow"] == bound  # clamped to what the queue could have dropped


def test_one_client_sets_off_no_gap_alert_and_the_alert_quotes_no_sender_text(env, local_bigquery):
    """The gap alert fired from one request once a site had 100 numbered events a day, and named the host the
    sender chose. Yesterday here: 200 numbered events of real visitors without a gap, and one client whose numbers
    jump by as much as the queue holds (loss, by the bound) on a host it named. One client: no alert."""
    bound = snippet_bounds().max_queue
    yesterday = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    alert = f"alert_{uuid.uuid4().hex[:6]}"
    local_bigquery.client.create_dataset(f"{PROJECT}.{alert}")
    environment = env | {"BQ_DATASET": alert}
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"],
        env=environment,
        check=True,
        capture_output=True,
    )
    visitors = [
        stored(numbered(f"v{n}", seq, yesterday + timedelta(minutes=n, seconds=seq), "shop.example.com"))
        for n in range(20)
        for seq in range(1, 11)
    ]
    named = "=HYPERLINK(evil).example.com"
    hostile = [stored(numbered("h-1", seq, yesterday, named)) for seq in (1, bound + 1)]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{alert}.events", visitors + hostile) == []
    refresh(environment)
    check = delivery_gap_check(PROJECT, alert, threshold=0.01, min_clients=10)
    [result] = local_bigquery.query(check)  # no error: no alert
    assert (result["gaps"], result["clients"]) == (bound - 1, 1)
    assert result["gap_rate"] > 0.01  # the rate alone would have alerted
    # Ten such clients are ten clients: the alert fires, and quotes no text any of them wrote.
    more = [stored(numbered(f"h-{n}", seq, yesterday, named)) for n in range(2, 11) for seq in (1, 3)]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{alert}.events", more) == []
    refresh(environment)
    from google.api_core.exceptions import BadRequest

    with pytest.raises(BadRequest) as fired:
        local_bigquery.query(check)
    assert "by 10 clients" in str(fired.value) and "worst engine: Blink" in str(fired.value)
    assert "HYPERLINK" not in str(fired.value) and "example.com" not in str(fired.value)


# ------------------------------------------------------------------------------- (4) sessions and funnel


def chat(name: str, ts: datetime, session: str, bot: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": name,
        "ts": ts.isoformat(),
        "session_id": session,
        "client_id": "c-" + session,
        "bot_id": bot,
        **extra,
    }


def test_a_session_lasts_no_month_a_late_event_renames_nothing_and_no_rate_passes_one(env, local_bigquery):
    """A session from `load` 26 days ago to `sign_up` now lasted 26 days; one late event renamed a process for the
    whole day (MAX(process_name)); one started session and twelve that only signed up made a sign_up_rate of 12."""
    bot = f"b4-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)  # one day
    today = now.date()
    long_id = f"s-long-{uuid.uuid4().hex[:6]}"
    rows = [
        stored(chat("load", now - timedelta(days=26), long_id, bot, process_id="p-long")),
        stored(chat("sign_up", now, long_id, bot, process_id="p-long")),
    ]
    # Process p-1, called "Shop" by ten events of real sessions; the funnel of one of them complete.
    steps = ("load", "show", "open", "session_started")
    for n in range(10):
        names = (*steps, "sign_up") if n == 0 else ("load",)
        at = now - timedelta(hours=2, minutes=n)
        rows += [
            stored(
                chat(
                    name,
                    at + timedelta(seconds=i),
                    f"s-real-{n}-{bot}",
                    bot,
                    process_id="p-1",
                    detail={"process_name": "Shop"},
                )
            )
            for i, name in enumerate(names)
        ]
    # Twelve sessions that only sign up, and one late event that names the process otherwise.
    rows += [
        stored(chat("sign_up", now - timedelta(hours=1), f"s-only-{n}-{bot}", bot, process_id="p-1")) for n in range(12)
    ]
    rows.append(
        stored(
            chat(
                "load", now - timedelta(hours=3), f"s-late-{bot}", bot, process_id="p-1", detail={"process_name": "ZZZ"}
            )
        )
    )
    insert(local_bigquery, rows)
    refresh(env)

    parts = query(local_bigquery, f"SELECT * FROM `t.sessions` WHERE bot_id = '{bot}' AND process_id = 'p-long'")
    assert sorted((p["day"], p["duration_seconds"]) for p in parts) == [(today - timedelta(days=26), 0), (today, 0)]
    longest = query(local_bigquery, f"SELECT MAX(duration_seconds) AS s FROM `t.sessions` WHERE bot_id = '{bot}'")
    assert longest[0]["s"] < 24 * 3600

    named = query(
        local_bigquery,
        f"SELECT DISTINCT process_name FROM `t.daily_counts` WHERE bot_id = '{bot}' AND process_id = 'p-1'",
    )
    assert named == [{"process_name": "Shop"}]
    [funnel] = query(local_bigquery, f"SELECT * FROM `t.funnel_daily` WHERE bot_id = '{bot}' AND process_id = 'p-1'")
    assert funnel["process_name"] == "Shop"
    assert (funnel["sessions"], funnel["loaded"], funnel["started"], funnel["signed_up"]) == (23, 11, 1, 1)
    rates = ("show_rate", "open_rate", "start_rate", "sign_up_rate", "opt_in_rate", "conversion_rate")
    assert all(0 <= funnel[rate] <= 1 for rate in rates), {rate: funnel[rate] for rate in rates}
    assert funnel["sign_up_rate"] == 1.0


# ------------------------------------------------------------------------------- (7) delays


def test_delay_figures_come_only_from_clocks_within_the_event_age(env, local_bigquery):
    """Delay percentiles came from raw client clocks: a p95 of 1,823 years and a negative p50. Two events sent on
    time, one from a clock in the year 203 and four from clocks ten days ahead: the delays are the two real ones,
    and the five others are counted as left out."""
    host, now = f"delay-{uuid.uuid4().hex[:6]}.example.com", datetime.now(UTC).replace(microsecond=0)
    received = now - timedelta(minutes=1)
    client = f"d-{uuid.uuid4().hex[:6]}"
    times = [received - timedelta(seconds=1), received - timedelta(seconds=3), datetime(203, 6, 1, tzinfo=UTC)]
    times += [received + timedelta(days=10)] * 4
    rows = [stored(numbered(client, n + 1, ts, host), received_at=received) for n, ts in enumerate(times)]
    insert(local_bigquery, rows)
    refresh(env)
    [found] = query(local_bigquery, f"SELECT * FROM `t.delivery_health` WHERE page_hostname = '{host}'")
    assert (found["events_received"], found["delays_left_out"]) == (7, 5)
    assert (found["delay_p50_ms"], found["delay_p95_ms"]) == (2000, 2900)  # between 1 s and 3 s, as BigQuery


# ------------------------------------------------------------------------------- (6) incremental against full


def fresh_dataset(local_bigquery, env: dict[str, str], name: str) -> dict[str, str]:
    """A dataset of the test's own, bootstrapped: its refresh's window is only what the test sends."""
    return bootstrapped(env | {"BQ_DATASET": f"{name}_{uuid.uuid4().hex[:6]}"})


def tables_of(local_bigquery, dataset: str) -> dict[str, list[str]]:
    """Every analyst table a refresh builds without LoyJoy's or GA4's export: its rows, sorted, as text."""
    from loyjoy_collector.ops.refresh import built

    found = {}
    for name in built(ga4=False, loyjoy_export=False):
        rows = local_bigquery.query(f"SELECT * FROM `{PROJECT}.{dataset}.{name}`")
        found[name] = sorted(repr(sorted(row.items())) for row in rows)
    return found


def test_incremental_runs_build_what_a_full_run_builds_with_ids_sent_again_and_sessions_across_runs(
    env, local_bigquery
):
    """An event_id sent again with a time on the next day was counted twice by the run that got it, and a session
    whose events came in two runs days apart stayed two rows (a full run built one, wherever a session began)."""
    environment = fresh_dataset(local_bigquery, env, "drift")
    dataset = environment["BQ_DATASET"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    event_id = uuid.uuid4().hex
    earlier = datetime.now(UTC) - timedelta(hours=2)  # received before the second run's lookback: runs far apart
    rows = [
        stored(chat("load", today - timedelta(days=3, minutes=10), "s-across", "b-6"), earlier),
        stored(
            {**chat("open", today - timedelta(days=2) + timedelta(hours=23), "s-once", "b-6"), "event_id": event_id},
            earlier,
        ),
    ]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{dataset}.events", rows) == []
    refresh(environment, "--full")  # the first run after these arrived (bootstrap ran one before)
    rows = [
        stored(chat("sign_up", today + timedelta(minutes=20), "s-across", "b-6")),
        # the same event again, its time an hour later (the next day)
        stored({**chat("open", today - timedelta(hours=1), "s-once", "b-6"), "event_id": event_id}),
    ]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{dataset}.events", rows) == []
    refresh(environment)
    incremental = tables_of(local_bigquery, dataset)
    counted = local_bigquery.query(
        f"SELECT COUNT(*) AS n FROM `{PROJECT}.{dataset}.events_clean` WHERE event_id = '{event_id}'"
    )
    refresh(environment, "--full")
    full = tables_of(local_bigquery, dataset)
    assert counted == [{"n": 1}]
    for name in incremental:
        assert incremental[name] == full[name], name


# ------------------------------------------------------------------------------- (8) the refresh's cost


def run(local_bigquery, dataset: str, at: datetime | None = None, *, full: bool = False, **settings: Any) -> Any:
    """One refresh as the schedule runs it, at the time `at` (runs hours apart, without waiting hours), with
    the settings given (LATE_DAYS_PER_RUN, IDS_PER_DAY, ...)."""
    from loyjoy_collector.ops.refresh import refresh as refreshed
    from loyjoy_collector.sink import BigQuerySink

    settings = Settings(bigquery_api_endpoint=local_bigquery.url, bq_project=PROJECT, bq_dataset=dataset, **settings)
    return refreshed(BigQuerySink(settings), full=full, run_at=at)


def test_one_request_with_events_on_28_past_days_costs_each_run_a_few_days(env, local_bigquery):
    """One request with events on 28 past days made every run inside the lookback rebuild 29 days. Hourly runs
    now rebuild today, yesterday and at most 3 late days each, the rest queued in the manifest, until every day
    is done; then the tables are what a full run builds."""
    environment = fresh_dataset(local_bigquery, env, "late")
    dataset = environment["BQ_DATASET"]
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        stored(chat("load", now - timedelta(days=k) + timedelta(minutes=1), f"s-{k}", "b-8"), now) for k in range(29)
    ]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{dataset}.events", rows) == []
    at, runs = now + timedelta(minutes=5), []
    for _ in range(30):
        ran = run(local_bigquery, dataset, at)
        runs.append((ran.days, ran.late_days_queued))
        if ran.late_days_queued == 0 and ran.days <= 2:
            break
        at += timedelta(hours=1)
    assert max(days for days, _ in runs) <= 2 + 3, runs
    assert runs[0] == (5, 27 - 3) and runs[-1][1] == 0, runs
    assert len(runs) <= 2 + 27 // 3 + 3, runs  # the lookback finds them all twice; a few runs do seconds
    incremental = tables_of(local_bigquery, dataset)
    run(local_bigquery, dataset, at, full=True)
    full = tables_of(local_bigquery, dataset)
    for name in incremental:
        assert incremental[name] == full[name], name


# ------------------------------------------------------------------------------- (9) example_detail


def test_example_detail_is_the_days_first_refusal_not_the_text_a_sender_sorts_last(env, local_bigquery):
    """rejected_by_reason.example_detail showed whatever text a sender chose: MAX(reason_detail), won by any
    refusal whose text sorts last, at any time of the day. It is the day's first refusal of its row."""
    from loyjoy_collector import __version__

    reason, first = (
        f"invalid_x_{uuid.uuid4().hex[:6]}",
        datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30),
    )

    def refusal(detail: str, at: datetime) -> dict[str, Any]:
        return {
            "rejected_id": uuid.uuid4().hex,
            "received_at": at.isoformat(),
            "reason": reason,
            "reason_detail": detail,
            "http_status": 400,
            "protocol": "loyjoy",
            "raw_truncated": False,
            "collector_version": __version__,
        }

    rows = [refusal("event must be a string", first)]
    rows += [refusal(f"zzz {n} 'WIN THIS PRIZE: visit example.org", first + timedelta(minutes=n)) for n in range(1, 4)]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{DATASET}.events_rejected", rows) == []
    refresh(env)
    [row] = query(local_bigquery, f"SELECT * FROM `t.rejected_by_reason` WHERE reason = '{reason}'")
    assert (row["rejections"], row["example_detail"]) == (4, "event must be a string")


# ------------------------------------------------------------------------------- (10) new ids


def test_one_request_with_a_hundred_new_process_ids_adds_no_groups_past_the_bound(env, local_bigquery):
    """One request added 100 new groups to daily_counts and funnel_daily. Per day, the analyst tables name
    IDS_PER_DAY bots and processes (here 20), ranked by distinct clients, and count the rest under '(other)':
    the five real processes, each with three visitors, keep their names and their counts."""
    environment = fresh_dataset(local_bigquery, env, "ids")
    dataset = environment["BQ_DATASET"]
    at = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = []
    for p in range(5):
        for v in range(3):
            session = f"s-real-{p}-{v}"
            rows += [
                stored(chat(name, at + timedelta(minutes=p, seconds=n), session, "b-10", process_id=f"p-real-{p}"))
                for n, name in enumerate(("load", "show", "open"))
            ]
    # One request: one client, a hundred made-up process ids, a session each.
    rows += [
        stored({**chat("load", at + timedelta(hours=1), f"s-x-{n}", "b-10", process_id=f"x{n:03}"), "client_id": "c-x"})
        for n in range(100)
    ]
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{dataset}.events", rows) == []
    run(local_bigquery, dataset, ids_per_day=20)

    def groups(table: str) -> dict[str, int]:
        found = local_bigquery.query(f"SELECT * FROM `{PROJECT}.{dataset}.{table}` WHERE bot_id = 'b-10'")
        counted: dict[str, int] = {}
        for row in found:
            counted[row["process_id"]] = (
                counted.get(row["process_id"], 0) + row["events" if "events" in row else "sessions"]
            )
        return counted

    for table in ("daily_counts", "funnel_daily"):
        counted = groups(table)
        assert len(counted) <= 20 + 1, (table, len(counted))
        per_real = 9 if table == "daily_counts" else 3  # three events or one session of each of three visitors
        assert all(counted[f"p-real-{p}"] == per_real for p in range(5)), (table, counted)
        assert sum(counted.values()) == (5 * 9 + 100 if table == "daily_counts" else 5 * 3 + 100)
        assert counted["(other)"] == 100 - (20 - 5), (table, counted)


# ------------------------------------------------------------------------------- (11) visitor numbers


def test_no_visitor_number_moves_a_sum_past_its_bound(env, local_bigquery):
    """A visitor's numbers, at the ends of INT64, as rows stored before the gate bounded them (`value` 2^63-1 and
    `nps` 1e308 in detail, numbers and drop reports at INT64's ends): no step of the refresh fails on them (real
    BigQuery fails a SUM or a subtraction past INT64; the local one does not, so the figures are checked against
    the capped ones), and every figure stays within the events sent times its bound."""
    bound = snippet_bounds().max_queue
    host, at = f"numbers-{uuid.uuid4().hex[:6]}.example.com", datetime.now(UTC) - timedelta(hours=1)
    rows = []
    for n, (low, high) in enumerate(((1, INT64_MAX), (-(2**63), INT64_MAX), (5, 7))):
        client = f"n{n}-{uuid.uuid4().hex[:6]}"
        for i, seq in enumerate((low, high)):
            row = stored(numbered(client, 1, at + timedelta(seconds=i), host, detail={"label": "x"}))
            rows.append(
                row
                | {
                    "client_seq": seq,
                    "dropped_overflow": INT64_MAX,
                    "dropped_quota": INT64_MAX,
                    "detail": '{"nps": 1e308, "value": 9223372036854775807}',
                    "ga_session_id": INT64_MAX,
                }
            )
    insert(local_bigquery, rows)
    refresh(env)
    found = health(local_bigquery, host)
    assert (found["events_received"], found["resets"], found["seq_gaps"]) == (6, 2, 1)
    assert (found["dropped_overflow"], found["dropped_quota"]) == (6 * bound, 6 * bound)
    [row] = query(local_bigquery, f"SELECT * FROM `t.delivery_health` WHERE page_hostname = '{host}'")
    numbers = [v for v in row.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    assert all(abs(v) <= 6 * bound for v in numbers if v not in (row["delay_p50_ms"], row["delay_p95_ms"])), row
