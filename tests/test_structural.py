"""Structural extremes against the running stack: parameter counts, Unicode digits, calendar edges, nesting.

Each of these once answered 500 `internal_error`: nothing recorded, and the good events of the same request
lost. Now each is ordinary traffic (stored) or a precise 4xx whose refusal is on record; a good event sent
alongside is stored either way. The Hypothesis suite at the end looks for the rest on every route.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests

from .conftest import ORIGIN

SEARCH_PAGE = "https://shop.example.com/search?" + "&".join(f"filter_{i}=on" for i in range(150))


def loyjoy_hit(tag: str, label: str = "open", **extra: str) -> dict[str, str]:
    """A LoyJoy event as a GA4 tag sends it."""
    return {"v": "2", "tid": "G-TEST123", "en": "loyjoy", "ep.gaEventCategory": "loyjoy", "ep.gaEventLabel": label,
            "ep.bot_id": tag, **extra}  # fmt: skip


def data_push(tag: str, label: str = "open", **extra: Any) -> dict[str, Any]:
    """A LoyJoy event as the Data Tag sends it."""
    return {"event_name": "loyjoy", "gaEventCategory": "loyjoy", "gaEventLabel": label, "bot_id": tag, **extra}


def send(collector, method: str, path: str, body: bytes | str = b"", content_type: str | None = None):
    headers = {"Origin": ORIGIN} | ({"Content-Type": content_type} if content_type else {})
    return requests.request(method, collector.url + path, data=body, headers=headers, timeout=60)


def assert_kept(local_bigquery, answer: requests.Response, status: int, reason: str) -> dict[str, Any]:
    """The answer is the precise refusal, and the refusal it names is on record."""
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"]["reason"] == reason, error
    assert error["error"]["detail"]
    [kept] = local_bigquery.rejected("rejected_id = @id", id=error["rejected_id"])
    assert (kept["reason"], kept["http_status"]) == (reason, status)
    return kept


# ------------------------------------------------------------------------ (a) a faceted-search page


def test_a_page_with_hundreds_of_parameters_is_ordinary_traffic(collector, local_bigquery, tag):
    location = SEARCH_PAGE + "&utm_source=news&utm_medium=mail&gclid=abc123&utm_source=second"
    answer = collector.post({"event": "open", "bot_id": tag, "page_location": location})
    assert answer.status_code == 200, answer.text
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert (row["utm_source"], row["utm_medium"], row["gclid"], row["page_path"]) == (
        "news", "mail", "abc123", "/search")  # fmt: skip


def test_the_same_page_through_ga4_and_the_data_tag(collector, local_bigquery, tag):
    location = SEARCH_PAGE + "&utm_campaign=winter%20sale&utm_term=a+b"
    answer = send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, dl=location)))
    assert answer.status_code == 204, answer.text
    answer = send(collector, "POST", "/data", json.dumps(data_push(tag, "close", page_location=location)), "text/plain")
    assert answer.status_code == 200, answer.text
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    assert sorted(r["event_name"] for r in rows) == ["close", "open"]
    assert {(r["utm_campaign"], r["utm_term"]) for r in rows} == {("winter sale", "a b")}


# ----------------------------------------------------------------------------- (b) Unicode digits


@pytest.mark.parametrize("sid", ["²", "٣", "\uff11\uff12\uff13", "1²"])
def test_a_session_id_in_other_digits_is_an_invalid_field(collector, local_bigquery, tag, sid):
    answer = send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, sid=sid)))
    assert_kept(local_bigquery, answer, 400, "invalid_field")


def test_a_bad_session_id_line_costs_its_neighbours_nothing(collector, local_bigquery, tag):
    lines = [urlencode(loyjoy_hit(tag, "open")), urlencode(loyjoy_hit(tag, "close", sid="²"))]
    answer = send(collector, "POST", f"/g/collect?v=2&bot_id={tag}", "\n".join(lines), "text/plain")
    assert answer.status_code == 204, answer.text
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["event_name"] == "open"
    [kept] = local_bigquery.rejected("query LIKE @q", q=f"%{tag}%")
    assert (kept["reason"], kept["event_index"]) == ("invalid_field", 1)


def test_snippet_session_numbers_in_other_digits(collector, local_bigquery, tag):
    answer = collector.post({"bot_id": tag, "events": [{"event": "open"}, {"event": "close", "ga_session_id": "٣"}]})
    assert answer.status_code == 207, answer.text
    refused = answer.json()["results"][1]
    assert refused["reason"] == "invalid_field"
    assert local_bigquery.rejected("rejected_id = @id", id=refused["rejected_id"])
    assert [r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["open"]


def test_ga4_numbers_are_ascii_decimals(collector, local_bigquery, tag):
    for value in ("٣", "1_000", "nan", "1e999", "9" * 40):
        answer = send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, **{"epn.step": value})))
        assert_kept(local_bigquery, answer, 400, "invalid_field")
    assert send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, **{"epn.step": "-2.5"}))).status_code == 204
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["detail"]["step"] == -2.5


# ---------------------------------------------------------------------- (c, d, e) too many fields


def test_a_form_body_with_501_fields(collector, local_bigquery, tag):
    form = urlencode(data_push(tag) | {f"f{i}": "x" for i in range(501)})
    answer = send(collector, "POST", "/data", form, "application/x-www-form-urlencoded")
    kept = assert_kept(local_bigquery, answer, 413, "too_many_fields")
    assert tag in kept["raw_payload"]


def test_a_ga4_query_with_501_fields(collector, local_bigquery, tag):
    query = urlencode(loyjoy_hit(tag) | {f"f{i}": "x" for i in range(501)})
    answer = send(collector, "GET", "/g/collect?" + query)
    kept = assert_kept(local_bigquery, answer, 413, "too_many_fields")
    assert tag in kept["query"]


def test_a_data_pixel_query_with_501_fields(collector, local_bigquery, tag):
    query = urlencode({"dtcd": json.dumps(data_push(tag))} | {f"f{i}": "x" for i in range(501)})
    assert_kept(local_bigquery, send(collector, "GET", "/data?" + query), 413, "too_many_fields")


def test_a_ga4_body_line_with_501_fields_costs_its_neighbours_nothing(collector, local_bigquery, tag):
    lines = [
        urlencode(loyjoy_hit(tag, "open")),
        urlencode(loyjoy_hit(tag, "close") | {f"f{i}": "x" for i in range(501)}),
    ]
    answer = send(collector, "POST", f"/g/collect?bot_id={tag}", "\n".join(lines), "text/plain")
    assert answer.status_code == 204, answer.text
    assert [r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["open"]
    [kept] = local_bigquery.rejected("query LIKE @q", q=f"%{tag}%")
    assert (kept["reason"], kept["event_index"]) == ("too_many_fields", 1)
    assert "&f500=" in kept["raw_payload"]


def test_a_lone_ga4_body_line_with_501_fields(collector, local_bigquery, tag):
    line = urlencode(loyjoy_hit(tag) | {f"f{i}": "x" for i in range(501)})
    assert_kept(local_bigquery, send(collector, "POST", "/g/collect", line, "text/plain"), 400, "too_many_fields")


# ---------------------------------------------------------------------------------- (f) nesting


@pytest.mark.parametrize("encoding", ["dtcd", "dtdc", "dtdc-url"])
def test_a_pixel_nested_three_thousand_deep(collector, local_bigquery, tag, encoding):
    deep = "[" * 3000 + "]" * 3000
    if encoding == "dtcd":
        value = deep
    else:
        value = (base64.urlsafe_b64encode if encoding == "dtdc-url" else base64.b64encode)(deep.encode()).decode()
    answer = send(collector, "GET", f"/data?bot_id={tag}&{encoding[:4]}={quote(value)}")
    kept = assert_kept(local_bigquery, answer, 400, "nesting_too_deep")
    assert tag in kept["query"]


def test_a_data_body_nested_too_deep(collector, local_bigquery, tag):
    nested: Any = 1
    for _ in range(20):
        nested = [nested]
    for body in ("[" * 3000 + "]" * 3000, json.dumps(data_push(tag, x=nested))):
        assert_kept(local_bigquery, send(collector, "POST", "/data", body, "text/plain"), 400, "nesting_too_deep")


# ------------------------------------------------------------------------------ (g) calendar edges


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("field", ["ts", "sent_at"])
def test_a_time_past_the_calendar_in_utc_is_an_invalid_field(collector, local_bigquery, tag, moment, field):
    answer = collector.post({"bot_id": tag, "events": [{"event": "open"}, {"event": "close", field: moment}]})
    assert answer.status_code == 207, answer.text
    refused = answer.json()["results"][1]
    assert refused["reason"] == "invalid_field" and field in refused["detail"]
    [kept] = local_bigquery.rejected("rejected_id = @id", id=refused["rejected_id"])
    assert kept["reason"] == "invalid_field"
    assert [r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["open"]


def test_the_calendars_own_edges_fall_back_to_server_time(collector, local_bigquery, tag):
    events = [
        {"event": "open", "ts": "0001-01-01T00:00:00Z", "sent_at": "9999-12-31T23:59:59Z"},
        {"event": "close", "ts": "9999-12-31T23:59:59Z", "sent_at": "0001-01-01T00:00:00Z"},
        {"event": "sign_up", "ts": -62135596800000, "sent_at": 253402300799000},
    ]
    answer = collector.post({"bot_id": tag, "events": events})
    assert answer.status_code == 200, answer.text
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    assert len(rows) == 3
    for row in rows:
        assert row["event_ts"] == row["received_at"]
        assert "client_clock_skewed" in row["quality_flags"]
