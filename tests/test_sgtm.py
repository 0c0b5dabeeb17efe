"""Server-side GTM protocols end to end: Stape Data Tag bodies and pixels, GA4 /g/collect hits and batches.

Fixtures follow the protocols as docs/protocols.md describes them: LoyJoy's GTM dataLayer push (`event: 'loyjoy'`
with `gaEventCategory`, `gaEventAction`, `gaEventLabel`) as a Data Tag sends it and as a GA4 tag sends it
(`en=loyjoy` with `ep.*` parameters), and LoyJoy's newer GTM push.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, urlencode

import pytest
import requests

from loyjoy_collector.privacy import hashing
from loyjoy_collector.sgtm import PIXEL, ga4_hits, loyjoy_event, to_event

from .conftest import HASH_KEY, ORIGIN

EMAIL = "jane.doe@example.com"
DATA_ANSWER = re.compile(rb'\{"timestamp":(\d{10}),"unique_event_id":"(\d{13}_\d{9})"\}')


def email_hash(email: str) -> str:
    return hashing.email_hash(HASH_KEY.encode(), email)


def seed_push(tag: str, evt: str = "signin", process: str = "Newsletter") -> dict:
    """LoyJoy's GTM dataLayer push as a Data Tag sends it, with the usual common event data."""
    return {
        "event_name": "loyjoy",
        "gaEventCategory": "loyjoy",
        "gaEventAction": process,
        "gaEventLabel": evt,
        "bot_id": tag,
        "client_id": "dc-client-1",
        "page_location": "https://shop.example.com/landing?utm_source=news",
        "page_referrer": "https://www.google.com/",
        "page_title": "Landing",
        "language": "de-de",
        "screen_resolution": "1920x1080",
        "user_data": {
            "email_address": EMAIL,
            "phone_number": "+491701234567",
            "sha256_email_address": "a" * 64,
            "address": {"first_name": "Jane", "last_name": "Doe", "city": "Berlin"},
        },
    }


def rows_for(local_bigquery, tag: str) -> list[dict]:
    return local_bigquery.events("bot_id = @tag", tag=tag)


# ------------------------------------------------------------------------------------------- Data Tag


def test_data_tag_post_answers_like_the_data_client_and_lands(collector, local_bigquery, tag):
    answer = requests.post(
        collector.url + "/data",
        data=json.dumps(seed_push(tag)),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": ORIGIN},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert DATA_ANSWER.fullmatch(answer.content), answer.content
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    [row] = rows_for(local_bigquery, tag)
    named = (row["event_name"], row["event_name_raw"], row["process_name"], row["protocol"])
    assert named == ("sign_in", "signin", "Newsletter", "data")
    assert row["event_id"] == DATA_ANSWER.fullmatch(answer.content).group(2).decode()
    context = (row["client_id"], row["page_title"], row["utm_source"], row["language"])
    assert context == ("dc-client-1", "Landing", "news", "de-de")
    assert row["email_hash"] == email_hash(EMAIL)
    assert row["detail"]["user_data"] == {"email_hash": email_hash(EMAIL)}
    assert "gaEventLabel" not in row["detail"] and "screen_resolution" not in row["detail"]
    for secret in (EMAIL, "+491701234567", "Jane", "a" * 64):
        assert secret not in json.dumps(row, default=str)


def test_data_tag_array_mixes_old_and_new_pushes_and_ignores_other_events(collector, local_bigquery, tag):
    body = [
        seed_push(tag, "newsletter_opt_in"),
        {
            "event_name": "loyjoy",
            "event_category": "LoyJoy Chat",
            "event_action": "Quiz",
            "event_label": "link_clicked/Shop now",
            "bot_id": tag,
        },
        {"event_name": "page_view", "bot_id": tag, "page_location": "https://shop.example.com/"},
    ]
    answer = requests.post(collector.url + "/data", json=body, headers={"Origin": ORIGIN}, timeout=30)
    assert answer.status_code == 200
    answers = answer.json()
    assert isinstance(answers, list) and len(answers) == 3
    assert all(DATA_ANSWER.fullmatch(json.dumps(a, separators=(",", ":")).encode()) for a in answers)
    assert len({a["unique_event_id"] for a in answers}) == 3
    rows = {r["event_name"]: r for r in rows_for(local_bigquery, tag)}
    assert set(rows) == {"newsletter_single_opt_in", "link_clicked"}  # the page_view is not a LoyJoy event
    assert (rows["link_clicked"]["process_name"], rows["link_clicked"]["label"]) == ("Quiz", "Shop now")


def test_data_tag_form_body_query_merge_and_custom_path(collector, local_bigquery, tag):
    form = {"event_name": "loyjoy_sign_up", "gaEventAction": "Newsletter", "bot_id": tag}
    answer = requests.post(
        collector.url + "/lj-events?client_id=from-query&page_title=Q",
        data=form,
        headers={"Origin": ORIGIN},
        timeout=30,
    )
    assert answer.status_code == 200 and DATA_ANSWER.fullmatch(answer.content)
    [row] = rows_for(local_bigquery, tag)
    assert (row["event_name"], row["client_id"], row["page_title"]) == ("sign_up", "from-query", "Q")


@pytest.mark.parametrize("encoding", ["dtcd", "dtdc"])
def test_data_tag_pixel(collector, local_bigquery, tag, encoding):
    data = json.dumps(seed_push(tag, "open"))
    value = data if encoding == "dtcd" else base64.b64encode(data.encode()).decode()
    answer = requests.get(f"{collector.url}/data?{encoding}={quote(value)}", headers={"Origin": ORIGIN}, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/gif"
    assert answer.content == PIXEL and answer.content.startswith(b"GIF89a") and len(PIXEL) == 43
    [row] = rows_for(local_bigquery, tag)
    assert (row["event_name"], row["protocol"]) == ("open", "data")


def test_data_preflight_like_the_data_client(collector):
    answer = requests.options(
        collector.url + "/data",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-gtm-server-preview",
        },
        timeout=10,
    )
    assert answer.status_code == 200 and answer.content == b""
    allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-gtm-server-preview"} <= allowed
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert {"GET", "POST"} <= set(answer.headers["Access-Control-Allow-Methods"].replace(" ", "").split(","))


# ------------------------------------------------------------------------------------------------ GA4

# The client id shares no run of digits with test_ingest's phone numbers: that test searches every table for them.
GA4_SHARED = {
    "v": "2",
    "tid": "G-TEST123",
    "gtm": "45je4b20v9",
    "_p": "1732440000000",
    "cid": "2024681357.1732000000",
    "ul": "de-de",
    "sr": "1920x1080",
    "sid": "1732440000",
    "sct": "3",
    "seg": "1",
    "dl": "https://shop.example.com/?utm_source=ga4",
    "dr": "https://www.google.com/",
    "dt": "Shop",
}


def test_ga4_get_hit_from_the_seed_push(collector, local_bigquery, tag):
    params = GA4_SHARED | {
        "en": "loyjoy",
        "ep.gaEventCategory": "loyjoy",
        "ep.gaEventAction": "Newsletter",
        "ep.gaEventLabel": "sign_up",
        "ep.bot_id": tag,
        "gcs": "G111",
        "_et": "12",
    }
    answer = requests.get(collector.url + "/g/collect?" + urlencode(params), headers={"Origin": ORIGIN}, timeout=30)
    assert answer.status_code == 204 and answer.content == b""
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    [row] = rows_for(local_bigquery, tag)
    assert (row["event_name"], row["process_name"], row["protocol"]) == ("sign_up", "Newsletter", "ga4")
    ids = (row["ga_client_id"], row["ga_session_id"], row["session_id"])
    assert ids == ("2024681357.1732000000", 1732440000, "2024681357.1732000000.1732440000")
    assert (row["page_title"], row["utm_source"], row["consent_analytics"]) == ("Shop", "ga4", "granted")
    assert row["detail"]["measurement_id"] == "G-TEST123"


def test_ga4_post_batch_one_hit_per_line(collector, local_bigquery, tag):
    lines = [
        "en=page_view&_et=10",
        urlencode(
            {
                "en": "loyjoy",
                "ep.event_category": "LoyJoy Chat",
                "ep.event_action": "Quiz",
                "ep.event_label": "quiz_started/Start",
                "ep.bot_id": tag,
                "epn.step": "2",
            }
        ),
        urlencode(
            {
                "en": "loyjoy",
                "ep.gaEventCategory": "loyjoy",
                "ep.gaEventLabel": "newsletter_opt_in",
                "ep.bot_id": tag,
                "ep.email": EMAIL,
                "up.customer_tier": "gold",
            }
        ),
        "en=scroll&epn.percent_scrolled=90",
    ]
    answer = requests.post(
        collector.url + "/g/collect?" + urlencode(GA4_SHARED),
        data="\n".join(lines),
        headers={"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"},
        timeout=30,
    )
    assert answer.status_code == 204
    rows = {r["event_name"]: r for r in rows_for(local_bigquery, tag)}
    assert set(rows) == {"quiz_started", "newsletter_single_opt_in"}
    quiz = rows["quiz_started"]
    assert (quiz["process_name"], quiz["label"], quiz["detail"]["step"]) == ("Quiz", "Start", 2)
    opt_in = rows["newsletter_single_opt_in"]
    assert opt_in["email_hash"] == email_hash(EMAIL)
    assert opt_in["detail"]["user_properties"] == {"customer_tier": "gold"}
    assert EMAIL not in json.dumps(list(rows.values()), default=str)


def test_ga4_denied_consent_keeps_no_identifiers(collector, local_bigquery, tag):
    params = GA4_SHARED | {
        "en": "loyjoy",
        "ep.gaEventCategory": "loyjoy",
        "ep.gaEventLabel": "open",
        "ep.bot_id": tag,
        "gcs": "G100",
    }
    assert requests.get(collector.url + "/g/collect?" + urlencode(params), timeout=30).status_code == 204
    [row] = rows_for(local_bigquery, tag)
    ids = (row["ga_client_id"], row["ga_session_id"], row["client_id"])
    assert ids == (None, None, None) and row["consent_analytics"] == "denied"


def test_non_loyjoy_hits_are_acknowledged_and_not_stored(collector, local_bigquery):
    before = len(local_bigquery.events("protocol = 'ga4' AND event_name = 'page_view'"))
    answer = requests.get(collector.url + "/g/collect?" + urlencode(GA4_SHARED | {"en": "page_view"}), timeout=30)
    assert answer.status_code == 204  # the tag must not retry
    assert len(local_bigquery.events("protocol = 'ga4' AND event_name = 'page_view'")) == before


# ------------------------------------------------------------------------------------------ bad input

BAD = [
    ("data invalid json", "POST", "/data", b'{"event_name": "loyjoy",', "text/plain", 400, "invalid_json"),
    ("data not objects", "POST", "/data", b"[1, 2]", "application/json", 400, "invalid_shape"),
    ("data empty array", "POST", "/data", b"[]", "application/json", 400, "invalid_shape"),
    ("data bad base64", "GET", "/data?dtdc=%%%not-base64", b"", None, 400, "invalid_base64"),
    ("data pixel bad json", "GET", "/data?dtcd=%7Bnope", b"", None, 400, "invalid_json"),
    (
        "data bad label",
        "POST",
        "/data",
        b'{"event_name":"loyjoy","gaEventCategory":"loyjoy","gaEventLabel":"Sign In"}',
        "text/plain",
        400,
        "invalid_event_name",
    ),
    ("data xml", "POST", "/data", b"<e/>", "application/xml", 415, "unsupported_media_type"),
    ("data put", "PUT", "/data", b"{}", "text/plain", 405, "method_not_allowed"),
    ("ga4 no en", "GET", "/g/collect?v=2&tid=G-1&cid=1.2", b"", None, 400, "missing_event"),
    (
        "ga4 bad number",
        "GET",
        "/g/collect?v=2&en=loyjoy&ep.gaEventCategory=loyjoy&ep.gaEventLabel=open&epn.x=abc",
        b"",
        None,
        400,
        "invalid_field",
    ),
    (
        "ga4 bad sid",
        "GET",
        "/g/collect?v=2&en=loyjoy&ep.event_category=loyjoy&ep.event_label=open&sid=abc",
        b"",
        None,
        400,
        "invalid_field",
    ),
    ("ga4 v1", "GET", "/g/collect?v=1&en=loyjoy", b"", None, 400, "invalid_field"),
    (
        "ga4 too many",
        "POST",
        "/g/collect?v=2",
        "\n".join(["en=page_view"] * 101).encode(),
        "text/plain",
        413,
        "too_many_events",
    ),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "content_type", "status", "reason"), BAD, ids=[b[0] for b in BAD]
)
def test_malformed_hits_get_the_cores_treatment(
    collector, local_bigquery, name, method, path, body, content_type, status, reason
):
    headers = {"Origin": ORIGIN} | ({"Content-Type": content_type} if content_type else {})
    answer = requests.request(method, collector.url + path, data=body, headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"]["reason"] == reason
    [kept] = local_bigquery.rejected("rejected_id = @id", id=error["rejected_id"])
    assert kept["reason"] == reason and kept["http_status"] == status
    assert kept["protocol"] in ("data", "ga4")


# ----------------------------------------------------------------------------------------- pure parts


def test_recognition_rules():
    assert loyjoy_event({"event": "loyjoy", "gaEventLabel": "signin", "gaEventAction": "P"}) == ("signin", "P", None)
    assert loyjoy_event({"e_n": "x", "eventCategory": "LoyJoy Chat", "eventLabel": "close"}) == ("close", None, None)
    assert loyjoy_event({"event_name": "loyjoy_nps_survey_score_9"}) == ("nps_survey_score_9", None, None)
    assert loyjoy_event({"event_name": "page_view", "event_category": "video"}) is None
    assert to_event({"event_name": "page_view"}, "ga4") is None
    assert to_event({"event_name": "page_view"}, "ga4", keep_others=True)["event"] == "page_view"


def test_ga4_lines_merge_with_the_query():
    hits = ga4_hits("v=2&cid=1.2&en=default", "en=a&ep.x=1\n\nen=b")
    assert hits == [{"v": "2", "cid": "1.2", "en": "a", "ep.x": "1"}, {"v": "2", "cid": "1.2", "en": "b"}]
    assert ga4_hits("v=2&en=solo", "") == [{"v": "2", "en": "solo"}]
