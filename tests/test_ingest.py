"""The snippet's protocol, end to end: functions-framework on loopback writing into the local BigQuery."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from loyjoy_collector.privacy import hashing

from .conftest import HASH_KEY, ORIGIN, Collector, LocalBigQuery
from .fault_bigquery import FaultyBigQuery

SEED_EVENTS = [
    "hide",
    "load",
    "open",
    "show",
    "start",
    "participation",
    "signin",
    "close",
    "signup",
    "customer",
    "signout",
    "newsletter_opt_in",
    "profiling_opt_in",
    "reminder_opt_in",
]
EMAIL = "Jane.Doe@Example.com"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJlbWFpbCI6ImphbmUuZG9lQGV4YW1wbGUuY29tIiwiZmlyc3RuYW1lIjoiSmFuZSJ9."
    "c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36"
)


def seed_detail(tag: str) -> dict:
    """The listener's second argument as LoyJoy documents it."""
    return {"bot_id": tag, "process_id": "p-1", "process_name": "Test-Name", "email": EMAIL, "token": JWT}


def test_seed_events_all_land_with_current_names(collector, local_bigquery, tag):
    body = {"events": [{"event": name, "detail": seed_detail(tag)} for name in SEED_EVENTS]}
    answer = collector.post(body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 14

    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    by_raw = {row["event_name_raw"]: row for row in rows}
    assert sorted(by_raw) == sorted(SEED_EVENTS)
    assert by_raw["signin"]["event_name"] == "sign_in"
    assert by_raw["signup"]["event_name"] == "sign_up"
    assert by_raw["signout"]["event_name"] == "sign_out"
    assert by_raw["newsletter_opt_in"]["event_name"] == "newsletter_single_opt_in"
    assert by_raw["customer"]["event_name"] == "customer_updated"
    assert by_raw["open"]["event_name"] == "open"
    assert all(row["event_known"] for row in rows)
    assert {row["process_name"] for row in rows} == {"Test-Name"}
    assert {row["protocol"] for row in rows} == {"loyjoy"}


def test_current_and_custom_names_land_and_are_labelled(collector, local_bigquery, tag):
    names = [
        "session_started",
        "jump_decision_3",
        "nps_survey_score_10",
        "newsletter_double_opt_in",
        "link_clicked",
        "my_flow_custom_step",
    ]
    answer = collector.post({"events": [{"event": n, "detail": {"bot_id": tag, "label": "Yes"}} for n in names]})
    assert answer.status_code == 200, answer.text
    rows = {row["event_name"]: row for row in local_bigquery.events("bot_id = @tag", tag=tag)}
    assert set(rows) == set(names)
    assert not rows["my_flow_custom_step"]["event_known"]
    assert all(rows[n]["event_known"] for n in names[:-1])
    assert rows["link_clicked"]["label"] == "Yes"


def test_answer_names_each_event_id_and_client_ids_are_kept(collector, local_bigquery, tag):
    ids = [f"{tag}-{i}" for i in range(3)]
    answer = collector.post(
        {
            "client_id": "c-1",
            "session_id": "s-1",
            "bot_id": tag,
            "events": [{"event": "open", "event_id": i} for i in ids],
        }
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert [r["event_id"] for r in answer.json()["results"]] == ids
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    assert sorted(r["event_id"] for r in rows) == ids
    assert {(r["client_id"], r["session_id"]) for r in rows} == {("c-1", "s-1")}


def test_sendbeacon_text_plain_body_is_accepted(collector, local_bigquery, tag):
    answer = collector.post(json.dumps({"event": "close", "bot_id": tag}))
    assert answer.status_code == 200
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 1


def test_enrichment_device_traffic_language_ip(collector, local_bigquery, tag):
    answer = collector.post(
        {
            "event": "open",
            "bot_id": tag,
            "page_location": "https://shop.example.com/sale?utm_source=news&utm_medium=email&utm_campaign=bf&gclid=G1",
            "page_referrer": "https://www.google.com/",
            "page_title": "Sale",
        },
        headers={
            "User-Agent": CHROME_ANDROID,
            "Accept-Language": "de-DE,de;q=0.9",
            "X-Forwarded-For": "203.0.113.77, 10.0.0.1",
        },
    )
    assert answer.status_code == 200
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert (row["browser"], row["os"], row["device_type"]) == ("Chrome Mobile", "Android", "mobile")
    assert row["browser_version"] == "124.0"
    assert (row["utm_source"], row["utm_medium"], row["utm_campaign"], row["gclid"]) == ("news", "email", "bf", "G1")
    assert (row["page_hostname"], row["page_path"], row["page_title"]) == ("shop.example.com", "/sale", "Sale")
    assert row["language"] == "de-DE"
    assert row["ip_truncated"] == "203.0.113.0"


def test_privacy_token_and_plain_email_reach_no_table(collector, local_bigquery, tag):
    detail = seed_detail(tag) | {
        "firstname": "Jane",
        "phone_number": "+49 170 1234567",
        "payload": {"text": "my address is Main St 1"},
        "user_data": {"mail": EMAIL},
    }
    good = collector.post(
        {
            "event": "message_received",
            "detail": detail,
            "page_location": f"https://shop.example.com/?email={EMAIL}&t={JWT}",
        }
    )
    assert good.status_code == 200
    bad_event = collector.post({"event": "Not A Name", "detail": detail})
    assert bad_event.status_code == 400
    broken = collector.post(f'{{"event": "open", "detail": {{"email": "{EMAIL}", "token": "{JWT}"')
    assert broken.status_code == 400

    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    expected = hashing.email_hash(HASH_KEY.encode(), EMAIL)
    assert row["email_hash"] == expected
    assert row["detail"] == {
        "bot_id": tag,
        "process_id": "p-1",
        "process_name": "Test-Name",
        "user_data": {"email_hash": expected},
    }
    assert "pii_keys_dropped=4" in row["quality_flags"]  # token, firstname, phone_number, payload
    assert {"dropped_key:firstname", "dropped_key:payload"} <= set(row["quality_flags"])

    everything = json.dumps(
        local_bigquery.query(f"SELECT * FROM `{local_bigquery.table('events')}`")
        + local_bigquery.query(f"SELECT * FROM `{local_bigquery.table('events_rejected')}`"),
        default=str,
    )
    for secret in (EMAIL, EMAIL.lower(), JWT, JWT.split(".")[1], 'Jane"', "1234567", "Main St"):
        assert secret not in everything, secret
    rejected = local_bigquery.rejected("rejected_id = @id", id=broken.json()["rejected_id"])
    assert rejected[0]["raw_payload"] == '{"event": "open", "detail": {"email": "[email]", "token": "[redacted]"'


def test_absurd_client_clocks_are_corrected_or_clamped(collector, local_bigquery, tag):
    now = datetime.now(UTC)
    skewed_ts = (now - timedelta(hours=3) - timedelta(seconds=5)).isoformat()
    skewed_sent = (now - timedelta(hours=3)).isoformat()
    answer = collector.post(
        {
            "bot_id": tag,
            "events": [
                {
                    "event": "open",
                    "label": "skew",
                    "ts": skewed_ts,
                    "sent_at": skewed_sent,
                    "detail": {"label": "skew"},
                },
                {"event": "open", "ts": "2999-01-01T00:00:00Z", "detail": {"label": "future"}},
                {"event": "open", "ts": 0, "detail": {"label": "epoch"}},
            ],
        }
    )
    assert answer.status_code == 200, answer.text
    rows = {row["label"]: row for row in local_bigquery.events("bot_id = @tag", tag=tag)}
    skew = rows["skew"]
    # Client clock 3 h behind: the event happened ~5 s before it was received.
    lag = (skew["received_at"] - skew["event_ts"]).total_seconds()
    assert 4 < lag < 7, lag
    assert "client_clock_skewed" in skew["quality_flags"]
    assert rows["future"]["event_ts"] == rows["future"]["received_at"]
    assert rows["future"]["client_ts"].year == 2999
    assert "client_ts_future" in rows["future"]["quality_flags"]
    assert rows["epoch"]["event_ts"] == rows["epoch"]["received_at"]
    assert "client_ts_too_old" in rows["epoch"]["quality_flags"]


def test_denied_analytics_consent_drops_identifiers(collector, local_bigquery, tag):
    answer = collector.post(
        {
            "event": "open",
            "bot_id": tag,
            "client_id": "c",
            "session_id": "s",
            "ga_client_id": "123.456",
            "ga_session_id": "1700000000",
            "consent": {"analytics_storage": "denied"},
        }
    )
    assert answer.status_code == 200
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert (row["client_id"], row["session_id"], row["ga_client_id"], row["ga_session_id"]) == (None,) * 4
    assert row["consent_analytics"] == "denied"


def test_ga4_ids_are_typed_for_the_join(collector, local_bigquery, tag):
    answer = collector.post(
        {
            "event": "open",
            "bot_id": tag,
            "ga_client_id": "123.456",
            "ga_session_id": "1700000000",
            "consent": {"analytics_storage": "granted"},
        }
    )
    assert answer.status_code == 200
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert (row["ga_client_id"], row["ga_session_id"], row["consent_analytics"]) == ("123.456", 1700000000, "granted")


def test_a_batch_with_bad_events_stores_the_good_and_keeps_the_bad(collector, local_bigquery, tag):
    answer = collector.post(
        {
            "bot_id": tag,
            "events": [
                {"event": "open"},
                {"event": "Sign In"},
                {"detail": {}},
                "oops",
                {"event": "close", "ts": "yesterday"},
            ],
        }
    )
    assert answer.status_code == 207
    results = answer.json()["results"]
    assert [r["stored"] for r in results] == [True, False, False, False, False]
    assert [r.get("reason") for r in results] == [
        None,
        "invalid_event_name",
        "missing_event",
        "invalid_shape",
        "invalid_field",
    ]
    assert "ts" in results[4]["detail"]
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 1
    for result in results[1:]:
        [kept] = local_bigquery.rejected("rejected_id = @id", id=result["rejected_id"])
        assert kept["reason"] == result["reason"]
        assert kept["event_index"] == result["index"]
        assert kept["http_status"] == 207
        assert kept["raw_payload"]


BAD_REQUESTS = [
    # (name, body, headers, method, path, status, reason)
    ("not json", b"hello there", {}, "POST", "/", 400, "invalid_json"),
    ("json NaN", b'{"event": NaN}', {}, "POST", "/", 400, "invalid_json"),
    ("empty", b"", {}, "POST", "/", 400, "empty_body"),
    ("wrong type", b'{"event": 42}', {}, "POST", "/", 400, "invalid_event_name"),
    ("detail not object", b'{"event": "open", "detail": "x"}', {}, "POST", "/", 400, "invalid_field"),
    ("missing event", b'{"detail": {"bot_id": "b"}}', {}, "POST", "/", 400, "missing_event"),
    ("malformed name", b'{"event": "DROP TABLE"}', {}, "POST", "/", 400, "invalid_event_name"),
    ("top-level string", b'"open"', {}, "POST", "/", 400, "invalid_shape"),
    ("events not list", b'{"events": {"event": "open"}}', {}, "POST", "/", 400, "invalid_shape"),
    ("empty batch", b'{"events": []}', {}, "POST", "/", 400, "empty_batch"),
    ("too many", json.dumps({"events": [{"event": "open"}] * 101}).encode(), {}, "POST", "/", 413, "too_many_events"),
    (
        "oversized",
        b'{"event": "open", "detail": {"x": "' + b"a" * 600_000 + b'"}}',
        {},
        "POST",
        "/",
        413,
        "body_too_large",
    ),
    (
        "deep",
        b'{"event": "open", "detail": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
        {},
        "POST",
        "/",
        400,
        "nesting_too_deep",
    ),
    ("very deep", b"[" * 100_000 + b"]" * 100_000, {}, "POST", "/", 400, "nesting_too_deep"),
    ("invalid utf-8", b'{"event": "open", "detail": {"x": "\xff\xfe"}}', {}, "POST", "/", 400, "invalid_utf8"),
    (
        "media type",
        b"a=1",
        {"Content-Type": "application/x-www-form-urlencoded"},
        "POST",
        "/",
        415,
        "unsupported_media_type",
    ),
    ("method", b"", {}, "GET", "/", 405, "method_not_allowed"),
    ("put", b'{"event": "open"}', {}, "PUT", "/", 405, "method_not_allowed"),
    ("path", b'{"event": "open"}', {}, "POST", "/wp-login.php", 404, "unknown_path"),
]


@pytest.mark.parametrize(
    ("name", "body", "headers", "method", "path", "status", "reason"),
    BAD_REQUESTS,
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_precise_4xx_and_is_kept(
    collector, local_bigquery, name, body, headers, method, path, status, reason
):
    import requests

    headers = {"Origin": ORIGIN, "Content-Type": "text/plain", **headers}
    answer = requests.request(method, collector.url + path, data=body, headers=headers, timeout=60)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"]["reason"] == reason
    assert error["error"]["detail"]
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    [kept] = local_bigquery.rejected("rejected_id = @id", id=error["rejected_id"])
    assert (kept["reason"], kept["http_status"], kept["method"]) == (reason, status, method)
    if body:
        assert kept["raw_payload"]
        assert kept["raw_bytes"] == len(body)
    if reason == "body_too_large":
        assert kept["raw_truncated"] and len(kept["raw_payload"]) <= 512 * 1024


def test_disallowed_origin_is_refused_and_not_stored(collector, local_bigquery, tag):
    before = len(local_bigquery.rejected("reason = 'origin_not_allowed'"))
    answer = collector.post({"event": "open", "bot_id": tag}, origin="https://evil.example.net")
    assert answer.status_code == 403
    assert answer.json()["error"]["reason"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert local_bigquery.events("bot_id = @tag", tag=tag) == []
    assert len(local_bigquery.rejected("reason = 'origin_not_allowed'")) == before


def test_preflight(collector):
    import requests

    ok = requests.options(
        collector.url + "/",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    assert "content-type" in ok.headers["Access-Control-Allow-Headers"].lower()
    assert ok.headers["Access-Control-Max-Age"] == "600"
    refused = requests.options(collector.url + "/", headers={"Origin": "https://evil.example.net"})
    assert refused.status_code == 403


def test_the_snippet_is_served_for_script_tags(collector):
    import requests

    from loyjoy_collector.handler import snippet_source

    answer = requests.get(collector.url + "/loyjoy-collector.js", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/javascript")
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert answer.content == snippet_source() and b"LoyJoyCollector" in answer.content


def test_health_check(collector):
    import requests

    answer = requests.get(collector.url + "/healthy", timeout=5)
    assert (answer.status_code, answer.text) == (200, "ok")


# ------------------------------------------------------------------------------------ BigQuery faults


def test_transient_503s_are_retried_and_the_event_stored(faulty_collector, fault_injector, local_bigquery, tag):
    fault_injector.fail(503, times=2)
    answer = faulty_collector.post({"event": "open", "bot_id": tag})
    assert answer.status_code == 200, answer.text
    assert len(fault_injector.insert_calls) == 3
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 1


def test_bigquery_down_answers_503_with_retry_after_and_stores_nothing(
    faulty_collector, fault_injector, local_bigquery, tag
):
    fault_injector.fail(503)
    answer = faulty_collector.post({"event": "open", "bot_id": tag})
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["error"]["reason"] == "storage_unavailable"
    assert len(fault_injector.insert_calls) > 2
    fault_injector.reset()
    assert local_bigquery.events("bot_id = @tag", tag=tag) == []
    again = faulty_collector.post({"event": "open", "bot_id": tag})
    assert again.status_code == 200


def test_bad_input_is_not_acknowledged_while_bigquery_is_down(faulty_collector, fault_injector):
    fault_injector.fail(503)
    answer = faulty_collector.post(b"not json")
    assert answer.status_code == 503


def test_429_then_success(faulty_collector, fault_injector, local_bigquery, tag):
    fault_injector.fail(429, times=1)
    assert faulty_collector.post({"event": "open", "bot_id": tag}).status_code == 200
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 1


def test_bigquery_timeout_answers_503(faulty_collector, fault_injector, local_bigquery, tag):
    fault_injector.delay(1.0)  # longer than BQ_TIMEOUT_SECONDS=0.5
    answer = faulty_collector.post({"event": "open", "bot_id": tag})
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "7"


@pytest.fixture(scope="module")
def hasty_collector(fault_injector: FaultyBigQuery) -> Iterator[Collector]:
    """Behind the fault injector with a retry deadline of a few attempts: a flaky network often outlasts it."""
    from .conftest import start_collector, stop

    running = start_collector(
        fault_injector.url,
        "hasty-collector",
        BQ_TIMEOUT_SECONDS="0.5",
        BQ_RETRY_DEADLINE_SECONDS="0.3",
        RETRY_AFTER_SECONDS="7",
    )
    try:
        yield running
    finally:
        stop(running.process)


@pytest.mark.parametrize("deadline", ["short", "usual"])
def test_a_flaky_network_is_an_outage_never_a_refusal(
    faulty_collector: Collector,
    hasty_collector: Collector,
    fault_injector: FaultyBigQuery,
    local_bigquery: LocalBigQuery,
    tag: str,
    deadline: str,
) -> None:
    """Half of the calls to BigQuery are reset (before or after it stored the rows). Every
    event is answered 200 (stored) or 503 (send again); none is taken for poison and refused for good."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    collector = hasty_collector if deadline == "short" else faulty_collector
    fault_injector.reset_connections(0.5)

    def send(k: int) -> tuple[list[str], requests.Response]:
        labels = [f"{tag}-{k}-{i}" for i in range(1 + k % 3)]
        events = [{"event": "open", "detail": {"label": label}} for label in labels]
        if k % 5 == 0:
            events.append({"event": "Not A Name"})  # refused for what it is, not for the network
        return labels, collector.post({"bot_id": tag, "events": events})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(40)))
    resets = fault_injector.resets
    fault_injector.reset()
    statuses = Counter(answer.status_code for _, answer in answers)
    assert set(statuses) <= {200, 207, 503}, statuses
    acknowledged = []
    for labels, answer in answers:
        if answer.status_code == 503:
            assert answer.json()["error"]["reason"] == "storage_unavailable"
            continue
        results = answer.json()["results"]
        assert all(r["stored"] or r["reason"] == "invalid_event_name" for r in results), answer.text
        acknowledged += labels
    stored = {row["label"] for row in local_bigquery.events("bot_id = @tag", tag=tag)}
    assert set(acknowledged) <= stored, sorted(set(acknowledged) - stored)[:5]
    assert resets >= 3 and acknowledged, (resets, statuses)  # group commit makes few calls: resets vary
    assert not local_bigquery.rejected("reason = 'bigquery_refused' AND raw_payload LIKE @p", p=f"%{tag}%")


@pytest.mark.parametrize("status", [400, 500])
def test_a_poison_row_on_a_flaky_network_costs_only_itself(
    faulty_collector: Collector, fault_injector: FaultyBigQuery, local_bigquery: LocalBigQuery, tag: str, status: int
) -> None:
    """Poison and resets at once: the poison may be found (400 bigquery_refused) or the answer may be 503, but an
    event that shares its calls is never refused for good, and one answered 200 is stored."""
    from concurrent.futures import ThreadPoolExecutor

    poison = f"poison-{uuid.uuid4().hex[:8]}"
    fault_injector.poison(poison, status)
    fault_injector.reset_connections(0.5)

    def send(k: int) -> tuple[int, requests.Response]:
        label = poison if k == 3 else f"{tag}-{k}"
        return k, faulty_collector.post({"event": "open", "bot_id": tag, "detail": {"label": label}})

    with ThreadPoolExecutor(8) as pool:
        answers = dict(pool.map(send, range(16)))
    fault_injector.reset()
    for k, answer in answers.items():
        if k == 3:
            assert answer.status_code in (400, 503), answer.text
            if answer.status_code == 400:
                assert answer.json()["error"]["reason"] == "bigquery_refused"
        else:
            assert answer.status_code in (200, 503), (k, answer.text)
    stored = {row["label"] for row in local_bigquery.events("bot_id = @tag", tag=tag)}
    acknowledged = {f"{tag}-{k}" for k, answer in answers.items() if answer.status_code == 200}
    assert acknowledged and acknowledged <= stored and poison not in stored


@pytest.mark.parametrize("stop_others", [False, True], ids=["skip-invalid", "stopped"])
def test_rows_bigquery_refuses_go_to_rejected_with_its_reason(
    faulty_collector, fault_injector, local_bigquery, tag, stop_others
):
    fault_injector.refuse_rows(
        lambda row: "no such field: bad" if row.get("label") == "refuse-me" else None, stop_others=stop_others
    )
    answer = faulty_collector.post(
        {
            "bot_id": tag,
            "events": [
                {"event": "open"},
                {"event": "close", "detail": {"label": "refuse-me", "email": EMAIL}},
                {"event": "show"},
            ],
        }
    )
    assert answer.status_code == 207, answer.text
    results = answer.json()["results"]
    assert [r["stored"] for r in results] == [True, False, True]
    assert results[1]["reason"] == "bigquery_refused"
    assert "no such field" in results[1]["detail"]
    fault_injector.reset()
    assert sorted(r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)) == ["open", "show"]
    [kept] = local_bigquery.rejected("rejected_id = @id", id=results[1]["rejected_id"])
    assert kept["reason"] == "bigquery_refused"
    assert "no such field" in kept["reason_detail"]
    assert EMAIL not in kept["raw_payload"]
    kept_event = json.loads(kept["raw_payload"])
    assert (kept_event["event"], kept_event["event_id"]) == ("close", results[1]["event_id"])  # replayable as sent


def test_event_ids_are_insert_ids(faulty_collector, fault_injector, tag):
    event_id = f"{tag}-{uuid.uuid4().hex[:8]}"
    assert faulty_collector.post({"event": "open", "bot_id": tag, "event_id": event_id}).status_code == 200
    [call] = fault_injector.insert_calls
    assert [row["insertId"] for row in call["rows"]] == [event_id]
    timestamp = call["rows"][0]["json"]["received_at"]
    assert timestamp.endswith("Z") and "T" in timestamp  # RFC 3339, not float epochs


def test_concurrent_requests_each_get_their_own_results(faulty_collector, fault_injector, local_bigquery, tag):
    """Group commit merges concurrent requests into shared insertAll calls: refusals must still reach the
    request (and event) they belong to."""
    from concurrent.futures import ThreadPoolExecutor

    fault_injector.delay(0.2)  # calls stay on the wire long enough for others to gather
    fault_injector.refuse_rows(lambda row: "refused" if (row.get("label") or "").endswith("-7") else None)

    def send(k: int):
        events = [{"event": "open", "detail": {"label": f"{k}-{i}"}} for i in range(8)]
        return k, faulty_collector.post({"bot_id": tag, "events": events})

    with ThreadPoolExecutor(12) as pool:
        answers = dict(pool.map(send, range(12)))
    for answer in answers.values():
        assert answer.status_code == 207, answer.text
        results = answer.json()["results"]
        assert [r["stored"] for r in results] == [True] * 7 + [False]
        assert results[7]["reason"] == "bigquery_refused"
    calls = len(fault_injector.insert_calls)
    fault_injector.reset()
    assert calls < 20  # without group commit: 24 (12 requests x events + their refusal)
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    assert len(rows) == 12 * 7 and not [r for r in rows if r["label"].endswith("-7")]


def test_refused_payloads_can_be_replayed_once_the_cause_is_fixed(
    faulty_collector, fault_injector, collector, local_bigquery, tag
):
    from loyjoy_collector.ops.replay import replay

    fault_injector.refuse_rows(lambda row: "no such field" if row.get("bot_id") == tag else None)
    refused = faulty_collector.post({"event": "signin", "bot_id": tag, "detail": {"email": EMAIL, "label": "x"}})
    assert refused.status_code == 400
    fault_injector.reset()
    kept = local_bigquery.rejected("rejected_id = @id", id=refused.json()["rejected_id"])
    results = replay(kept, collector.url, ORIGIN, HASH_KEY.encode())
    assert [r.status for r in results] == [200]
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert (row["event_name"], row["label"], row["event_id"]) == (
        "sign_in",
        "x",
        refused.json()["results"][0]["event_id"],
    )
    hashed = hashing.email_hash(HASH_KEY.encode(), EMAIL)
    assert row["email_hash"] == hashed  # the hash survives the replay; the address never was kept

    whole = collector.post(b'{"event": "open", "bot_id": "' + tag.encode() + b'"')  # truncated JSON
    assert whole.status_code == 400
    [again] = replay(local_bigquery.rejected("rejected_id = @id", id=whole.json()["rejected_id"]), collector.url)
    assert again.status == 400 and "invalid_json" in again.answer  # still broken: refused again, not lost


def test_replay_command_line(collector, local_bigquery, tag):
    import subprocess
    import sys

    from loyjoy_collector.ops.cli import local_env

    refused = collector.post({"event": "Bad Name", "bot_id": tag, "event_id": f"{tag}-replay"})
    assert refused.status_code == 400
    env = local_env(local_bigquery.port, ORIGIN)
    replay = ["replay", "--to", collector.url, "--origin", ORIGIN, "--reason", "invalid_event_name"]
    command = [sys.executable, "-m", "loyjoy_collector.ops.cli", *replay]
    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True, check=True)
    *listed, planned = dry.stdout.splitlines()
    assert {"rejected_id": refused.json()["rejected_id"], "reason": "invalid_event_name"} in map(json.loads, listed)
    assert planned == f"{len(listed)} payloads would be sent to {collector.url}"
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode == 1  # an invalid name stays invalid: reported, not hidden
    *lines, summary = run.stdout.splitlines()
    results = [json.loads(line) for line in lines]  # one per payload sent, each refused again
    assert (refused.json()["rejected_id"], 400) in {(r["rejected_id"], r["status"]) for r in results}
    assert summary == f"0 of {len(listed)} accepted" and len(results) == len(listed)  # what the dry run listed


def test_every_endpoint_answers_under_the_first_party_prefix(collector, local_bigquery, tag):
    """A site's reverse proxy forwards https://shop.example.com/lj/... as it came."""
    stored = collector.post({"event": "open", "bot_id": tag}, path="/lj/")
    assert stored.status_code == 200, stored.text
    data = collector.post({"event_name": "loyjoy", "gaEventLabel": "close", "bot_id": tag}, path="/lj/data")
    assert data.status_code == 200 and "unique_event_id" in data.json()
    ga4 = requests.get(
        collector.url + "/lj/g/collect",
        params={"v": "2", "en": "loyjoy", "ep.gaEventCategory": "loyjoy", "ep.gaEventLabel": "show", "ep.bot_id": tag},
        headers={"Origin": ORIGIN},
        timeout=30,
    )
    assert ga4.status_code == 204
    assert requests.get(collector.url + "/lj/healthy", timeout=30).text == "ok"
    script = requests.get(collector.url + "/lj/loyjoy-collector.js", timeout=30)
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("application/javascript")
    assert sorted(r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)) == ["close", "open", "show"]
    assert collector.post({"event": "open"}, path="/other/").json()["error"]["reason"] == "unknown_path"


def test_delivery_facts_land_in_their_columns(collector, local_bigquery, tag):
    """seq, dropped and later_page (the snippet's delivery facts) as the collector stores them."""
    dropped, none = {"overflow": 2, "quota": 1, "consent": 3}, {"overflow": 0}
    answer = collector.post(
        {
            "bot_id": tag,
            "client_id": f"{tag}-client",
            "events": [
                {"event": "open", "event_id": f"{tag}-1", "seq": 7, "later_page": True, "dropped": dropped},
                {"event": "close", "event_id": f"{tag}-2", "seq": 2**53, "later_page": False, "dropped": none},
                {"event": "show", "event_id": f"{tag}-3"},
            ],
        }
    )
    assert answer.status_code == 200, answer.text
    columns = ("client_seq", "dropped_overflow", "dropped_quota", "dropped_consent", "delivered_later_page")
    rows = {r["event_id"]: tuple(r[c] for c in columns) for r in local_bigquery.events("bot_id = @tag", tag=tag)}
    assert rows == {
        f"{tag}-1": (7, 2, 1, 3, True),
        f"{tag}-2": (2**53, 0, None, None, False),
        f"{tag}-3": (None, None, None, None, None),
    }
    assert not any(
        "unknown_fields_ignored" in r["quality_flags"] for r in local_bigquery.events("bot_id = @tag", tag=tag)
    )


BAD_DELIVERY_FACTS = [
    # (name, fields, the field the detail names)
    ("seq as string", {"seq": "3"}, "seq"),
    ("seq zero", {"seq": 0}, "seq"),
    ("seq negative", {"seq": -4}, "seq"),
    ("seq fraction", {"seq": 1.5}, "seq"),
    ("seq as float", {"seq": 3.0}, "seq"),
    ("seq as bool", {"seq": True}, "seq"),
    ("seq past 2^53", {"seq": 2**53 + 1}, "seq"),
    ("negative count", {"dropped": {"overflow": -1}}, "dropped.overflow"),
    ("count as string", {"dropped": {"quota": "2"}}, "dropped.quota"),
    ("count as bool", {"dropped": {"consent": True}}, "dropped.consent"),
    ("count past a billion", {"dropped": {"quota": 1_000_000_001}}, "dropped.quota"),
    ("dropped not an object", {"dropped": 3}, "dropped"),
    ("later_page as string", {"later_page": "true"}, "later_page"),
    ("later_page as number", {"later_page": 1}, "later_page"),
]


@pytest.mark.parametrize(("name", "fields", "where"), BAD_DELIVERY_FACTS, ids=[c[0] for c in BAD_DELIVERY_FACTS])
def test_delivery_facts_are_strict(collector, local_bigquery, tag, name, fields, where):
    event = {"event": "open", "bot_id": tag, "event_id": f"{tag}-bad", **fields}
    answer = collector.post(event)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["error"]["reason"] == "invalid_field"
    assert error["error"]["detail"].startswith(where + ":")
    [kept] = local_bigquery.rejected("rejected_id = @id", id=error["rejected_id"])
    assert (kept["reason"], kept["http_status"], kept["event_id"]) == ("invalid_field", 400, f"{tag}-bad")
    payload = kept["raw_payload"] if isinstance(kept["raw_payload"], dict) else json.loads(kept["raw_payload"])
    assert (payload["event"], payload["event_id"]) == ("open", f"{tag}-bad")
    assert local_bigquery.events("bot_id = @tag", tag=tag) == []
