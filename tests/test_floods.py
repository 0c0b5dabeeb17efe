"""Floods contained, nothing silently lost: per-client rate limits (429 with Retry-After), a per-instance budget
for refusals stored whole (the rest counted, one row per reason and minute), and bounded amplification."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from loyjoy_collector.floods import RefusalBudget, TokenBuckets, fold, rows_allowed

from .conftest import ORIGIN, Collector, LocalBigQuery, start_collector, stop

# ------------------------------------------------------------------------------------------- pure


def test_a_bucket_lets_a_burst_through_then_asks_to_wait_and_refills():
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("k", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", now=100.0) == pytest.approx(0.5)  # one token comes every half second
    assert buckets.take("other", now=100.0) == 0.0
    assert buckets.take("k", now=101.0) == 0.0  # refilled


def test_buckets_keep_a_bounded_number_of_keys():
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=100)
    for index in range(1000):
        buckets.take(f"k{index}", now=1.0)
    assert len(buckets._buckets) == 100


def rejected(reason: str, index: int) -> dict:
    return {"rejected_id": f"r{index}", "reason": reason, "http_status": 400, "protocol": "loyjoy", "path": "/"}


def test_the_budget_stores_so_many_a_minute_whole_and_counts_the_rest_per_reason():
    budget = RefusalBudget(per_minute=3)
    rows = [rejected("invalid_json" if index % 2 else "invalid_shape", index) for index in range(10)]
    kept = budget.admit(rows, now=600.0)
    assert [row["rejected_id"] for row in kept] == ["r0", "r1", "r2"]
    counted = rows[3:]
    ids = {row["reason"]: row["rejected_id"] for row in counted}
    assert all(row["rejected_id"] == ids[row["reason"]] for row in counted)  # each names its count row
    assert budget.due(now=630.0) == []  # the minute is not over
    due = {row["reason"]: row for row in budget.due(now=660.0)}
    assert {reason: row["refusals"] for reason, row in due.items()} == {"invalid_json": 4, "invalid_shape": 3}
    assert {reason: row["rejected_id"] for reason, row in due.items()} == ids
    assert budget.admit([rejected("invalid_json", 99)], now=660.0)  # a new minute, a new budget


def test_one_request_stores_two_refusals_a_kb_and_folds_the_rest_into_one_row_per_reason():
    assert rows_allowed(452) == 2 and rows_allowed(10 * 1024) == 20
    rows = [rejected("invalid_shape", index) | {"raw_payload": "0"} for index in range(100)]
    kept = fold(rows, rows_allowed(452))
    assert len(kept) == 3
    assert kept[2]["refusals"] == 98 and kept[2]["raw_payload"] is None
    assert {row["rejected_id"] for row in rows[2:]} == {kept[2]["rejected_id"]}


# ------------------------------------------------------------------------------------- the stack


@pytest.fixture
def strict_collector(local_bigquery: LocalBigQuery) -> Iterator[Collector]:
    """A collector with low limits, so that a test can meet them."""
    running = start_collector(
        local_bigquery.url,
        "strict-collector",
        RATE_LIMIT_CLIENT_PER_SECOND="1",
        RATE_LIMIT_CLIENT_BURST="5",
        RATE_LIMIT_ADDRESS_PER_SECOND="0.01",  # no refill while a test sends: the burst is all there is
        RATE_LIMIT_ADDRESS_BURST="20",
        RATE_LIMIT_SGTM_ADDRESS_PER_SECOND="0.01",
        RATE_LIMIT_SGTM_ADDRESS_BURST="40",
        REFUSAL_BUDGET_PER_MINUTE="3",
    )
    try:
        yield running
    finally:
        stop(running.process)


def post(collector: Collector, body: object, address: str, **headers: str) -> requests.Response:
    headers = {"Origin": ORIGIN, "X-Forwarded-For": address} | headers
    return requests.post(collector.url + "/", json=body, headers=headers, timeout=30)


def test_a_burst_from_one_client_meets_429_with_retry_after_and_loses_nothing(strict_collector, local_bigquery, tag):
    client = "c-" + tag
    answers = [
        post(strict_collector, {"event": "open", "bot_id": tag, "client_id": client}, f"10.1.0.{i}") for i in range(8)
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}
    limited = answers[-1]
    assert limited.json()["error"]["reason"] == "rate_limited"
    wait = int(limited.headers["Retry-After"])
    assert wait >= 1
    time.sleep(wait)
    assert post(strict_collector, {"event": "open", "bot_id": tag, "client_id": client}, "10.1.0.99").status_code == 200
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 6  # every 200, nothing a 429 refused


def test_the_address_limit_reads_the_platforms_entry_of_x_forwarded_for(strict_collector, tag):
    def send(forwarded: str) -> int:
        return post(
            strict_collector, {"event": "open", "bot_id": tag, "client_id": uuid.uuid4().hex}, forwarded
        ).status_code

    assert [send("203.0.113.7") for _ in range(20)] == [200] * 20
    assert send("203.0.113.7") == 429
    assert send("198.51.100.1, 203.0.113.7") == 429  # what the sender wrote before the platform's entry is no way out
    assert send("203.0.113.8") == 200


def test_past_the_budget_refusals_are_counted_in_one_row_per_reason_and_minute(local_bigquery, tag):
    running = start_collector(local_bigquery.url, "budget-collector", REFUSAL_BUDGET_PER_MINUTE="3")
    try:
        answers = [post(running, {"event": "Not A Name", "bot_id": tag}, f"10.2.0.{i}") for i in range(10)]
        assert {answer.status_code for answer in answers} == {400}
        ids = [answer.json()["rejected_id"] for answer in answers]
    finally:
        stop(running.process)  # its last counts are stored on the way out
    rows = local_bigquery.rejected("rejected_id IN UNNEST(@ids)", ids=sorted(set(ids)))
    whole = [row for row in rows if row["refusals"] is None]
    counted = [row for row in rows if row["refusals"] is not None]
    assert len(whole) >= 1 and len(counted) >= 1
    assert len(whole) + sum(row["refusals"] for row in counted) == 10  # every refusal on record, as a count
    assert all(row["raw_payload"] is None and row["reason"] == "invalid_event_name" for row in counted)
    assert len(set(ids)) == len(whole) + len(counted)


def test_what_a_request_stores_is_bounded_by_what_it_sent(collector, local_bigquery, tag):
    zeros = {"events": [0] * 100, "bot_id": tag}
    answer = collector.post(zeros)
    assert answer.status_code == 400
    ids = {result["rejected_id"] for result in answer.json()["results"]}
    assert len(ids) == 3  # two refusals whole (a 500-byte body), the other 98 as one counted row
    rows = local_bigquery.rejected("rejected_id IN UNNEST(@ids)", ids=sorted(ids))
    assert sorted(row["refusals"] or 1 for row in rows) == [1, 1, 98]

    shared = {"detail": {"label": "x" * 200_000}, "bot_id": tag, "events": [{"event": "open"}] * 100}
    answer = collector.post(shared)
    assert answer.status_code == 413 and answer.json()["error"]["reason"] == "shared_fields_too_large"
    assert local_bigquery.rejected("rejected_id = @id", id=answer.json()["rejected_id"])
    assert collector.post(shared | {"events": [{"event": "open"}]}).status_code == 200  # once is fine


def test_an_address_pays_per_event_so_a_batch_is_no_way_around_its_rate(strict_collector, tag):
    batch = {"bot_id": tag, "events": [{"event": "open", "client_id": uuid.uuid4().hex} for _ in range(30)]}
    answer = post(strict_collector, batch, "203.0.113.50")
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1
    assert post(strict_collector, batch | {"events": batch["events"][:3]}, "203.0.113.51").status_code == 200


def test_the_sgtm_routes_have_a_per_address_limit_of_their_own(strict_collector, local_bigquery, tag):
    """A flood of GA4 hits or Data Tag events from one address, each with a new client id, meets the sGTM routes'
    address limit (their own buckets, far above a browser's); other addresses and the snippet's route go on."""

    def ga4(address: str, count: int = 1) -> int:
        hits = "\n".join(
            f"en=loyjoy&ep.gaEventCategory=loyjoy&ep.gaEventLabel=open&ep.bot_id={tag}&cid={uuid.uuid4().int % 10**9}.1"
            for _ in range(count)
        )
        headers = {"Origin": ORIGIN, "X-Forwarded-For": address, "Content-Type": "text/plain"}
        return requests.post(
            strict_collector.url + "/g/collect?v=2", data=hits, headers=headers, timeout=30
        ).status_code

    def data(address: str) -> int:
        body = {"event_name": "loyjoy", "gaEventCategory": "loyjoy", "gaEventLabel": "open", "bot_id": tag}
        headers = {"Origin": ORIGIN, "X-Forwarded-For": address}
        body["client_id"] = uuid.uuid4().hex
        return requests.post(strict_collector.url + "/data", json=body, headers=headers, timeout=30).status_code

    assert [ga4("203.0.113.70") for _ in range(30)] == [204] * 30  # more than a browser's burst (20)
    assert [data("203.0.113.70") for _ in range(10)] == [200] * 10
    assert ga4("203.0.113.70") == 429 and data("203.0.113.70") == 429
    assert ga4("203.0.113.71", count=41) == 429  # a batch pays per event
    assert ga4("203.0.113.72") == 204
    assert post(strict_collector, {"event": "open", "bot_id": tag, "client_id": tag}, "203.0.113.70").status_code == 200
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 42


def test_a_reason_met_once_past_the_share_stays_whole():
    rows = [rejected(reason, index) | {"raw_payload": "x"} for index, reason in enumerate("aabcc")]
    kept = fold(rows, 2)
    assert [(row["reason"], row.get("refusals"), row["raw_payload"]) for row in kept] == [
        ("a", None, "x"),
        ("a", None, "x"),
        ("b", None, "x"),
        ("c", 2, None),
    ]
