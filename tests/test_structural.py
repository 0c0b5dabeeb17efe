"""Structural extremes against the running stack: parameter counts, Unicode digits, calendar edges, nesting.

Each of these once answered 500 `internal_error`: nothing recorded, and the good events of the same request
lost. Now each is ordinary traffic (stored) or a precise 4xx whose refusal is on record; a good event sent
alongside is stored either way. The Hypothesis suite at the end looks for the rest on every route, and the
cases it found are plain tests above it.

CI runs 300 generated requests (about 10 s), the same ones every run. A long run with new ones:
`STRUCTURAL_EXAMPLES=5000 STRUCTURAL_RANDOM=1 .venv/bin/python -m pytest -q -s tests/test_structural.py -k extremes`
(prints the statuses and reasons seen).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyjoy_collector.enrich import UTM_KEYS, page_parts

from .conftest import ORIGIN, Collector, LocalBigQuery

SEARCH_PAGE = "https://shop.example.com/search?" + "&".join(f"filter_{i}=on" for i in range(150))


def loyjoy_hit(tag: str, label: str = "open", **extra: str) -> dict[str, str]:
    """A LoyJoy event as a GA4 tag sends it."""
    return {
        "v": "2",
        "tid": "G-TEST123",
        "en": "loyjoy",
        "ep.gaEventCategory": "loyjoy",
        "ep.gaEventLabel": label,
        "ep.bot_id": tag,
        **extra,
    }


def data_push(tag: str, label: str = "open", **extra: Any) -> dict[str, Any]:
    """A LoyJoy event as the Data Tag sends it."""
    return {"event_name": "loyjoy", "gaEventCategory": "loyjoy", "gaEventLabel": label, "bot_id": tag, **extra}


def send(
    collector: Collector, method: str, path: str, body: bytes | str = b"", content_type: str | None = None
) -> requests.Response:
    headers = {"Origin": ORIGIN} | ({"Content-Type": content_type} if content_type else {})
    return requests.request(method, collector.url + path, data=body, headers=headers, timeout=60)


def assert_kept(local_bigquery: LocalBigQuery, answer: requests.Response, status: int, reason: str) -> dict[str, Any]:
    """The answer is the precise refusal, and the refusal it names is on record."""
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"]["reason"] == reason, error
    assert error["error"]["detail"]
    [kept] = local_bigquery.rejected("rejected_id = @id", id=error["rejected_id"])
    assert (kept["reason"], kept["http_status"]) == (reason, status)
    return kept


# ------------------------------------------------------------------------ (a) a faceted-search page


def test_a_page_with_hundreds_of_parameters_is_ordinary_traffic(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    location = SEARCH_PAGE + "&utm_source=news&utm_medium=mail&gclid=abc123&utm_source=second"
    answer = collector.post({"event": "open", "bot_id": tag, "page_location": location})
    assert answer.status_code == 200, answer.text
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    read = (row["utm_source"], row["utm_medium"], row["gclid"], row["page_path"])
    assert read == ("news", "mail", "abc123", "/search")


def test_the_same_page_through_ga4_and_the_data_tag(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    location = SEARCH_PAGE + "&utm_campaign=winter%20sale&utm_content=a+b"
    answer = send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, dl=location)))
    assert answer.status_code == 204, answer.text
    answer = send(collector, "POST", "/data", json.dumps(data_push(tag, "close", page_location=location)), "text/plain")
    assert answer.status_code == 200, answer.text
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    assert sorted(r["event_name"] for r in rows) == ["close", "open"]
    assert {(r["utm_campaign"], r["utm_content"]) for r in rows} == {("winter sale", "a b")}


@settings(max_examples=300, deadline=None, database=None, derandomize=os.environ.get("STRUCTURAL_RANDOM") != "1")
@given(
    pieces=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "utm_source",
                    "utm_medium",
                    "utm%5Fsource",
                    "utm+source",
                    "gclid",
                    "%67clid",
                    "x",
                    "",
                    "utm_content",
                    "UTM_SOURCE",
                    "%zz",
                    "utm_source%00",
                ]
            ),
            st.sampled_from(["", "=", "=a", "=a+b", "=%C3%A9" * 300, "=%E2%82", "==", "=x&", "=%2B"]),
        ),
        max_size=12,
    )
)
def test_page_parameters_read_as_parse_qs_reads_them(pieces: list[tuple[str, str]]) -> None:
    """Walking the pieces by hand gives what parse_qs (without its field limit) gives, whatever the pieces."""
    query = "&".join(name + value for name, value in pieces)
    expected = parse_qs(query)
    parts = page_parts("https://shop.example.com/p?" + query)
    assert parts.utm == {key: expected[key][0][:256] for key in UTM_KEYS if key in expected}
    assert parts.gclid == (expected["gclid"][0][:256] if "gclid" in expected else None)


# ----------------------------------------------------------------------------- (b) Unicode digits


@pytest.mark.parametrize("sid", ["²", "٣", "\uff11\uff12\uff13", "1²"])
def test_a_session_id_in_other_digits_is_an_invalid_field(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, sid: str
) -> None:
    answer = send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, sid=sid)))
    assert_kept(local_bigquery, answer, 400, "invalid_field")


def test_a_bad_session_id_line_costs_its_neighbours_nothing(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    lines = [urlencode(loyjoy_hit(tag, "open")), urlencode(loyjoy_hit(tag, "close", sid="²"))]
    answer = send(collector, "POST", f"/g/collect?v=2&bot_id={tag}", "\n".join(lines), "text/plain")
    assert answer.status_code == 204, answer.text
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["event_name"] == "open"
    [kept] = local_bigquery.rejected("query LIKE @q", q=f"%{tag}%")
    assert (kept["reason"], kept["event_index"]) == ("invalid_field", 1)


def test_snippet_session_numbers_in_other_digits(collector: Collector, local_bigquery: LocalBigQuery, tag: str) -> None:
    answer = collector.post({"bot_id": tag, "events": [{"event": "open"}, {"event": "close", "ga_session_id": "٣"}]})
    assert answer.status_code == 207, answer.text
    refused = answer.json()["results"][1]
    assert refused["reason"] == "invalid_field"
    assert local_bigquery.rejected("rejected_id = @id", id=refused["rejected_id"])
    assert [r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["open"]


def test_ga4_numbers_are_ascii_decimals(collector: Collector, local_bigquery: LocalBigQuery, tag: str) -> None:
    for value in ("٣", "1_000", "nan", "1e999", "9" * 40):
        answer = send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, **{"epn.step": value})))
        assert_kept(local_bigquery, answer, 400, "invalid_field")
    assert send(collector, "GET", "/g/collect?" + urlencode(loyjoy_hit(tag, **{"epn.score": "-2.5"}))).status_code == 204
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["detail"]["score"] == -2.5  # a step of -2.5 would be out of its range (measures.py): dropped


# ---------------------------------------------------------------------- (c, d, e) too many fields


def test_a_form_body_with_501_fields(collector: Collector, local_bigquery: LocalBigQuery, tag: str) -> None:
    form = urlencode(data_push(tag) | {f"f{i}": "x" for i in range(501)})
    answer = send(collector, "POST", "/data", form, "application/x-www-form-urlencoded")
    kept = assert_kept(local_bigquery, answer, 413, "too_many_fields")
    assert tag in kept["raw_payload"]


def test_a_ga4_query_with_501_fields(collector: Collector, local_bigquery: LocalBigQuery, tag: str) -> None:
    query = urlencode(loyjoy_hit(tag) | {f"f{i}": "x" for i in range(501)})
    answer = send(collector, "GET", "/g/collect?" + query)
    kept = assert_kept(local_bigquery, answer, 413, "too_many_fields")
    assert tag in kept["query"]


def test_a_data_pixel_query_with_501_fields(collector: Collector, local_bigquery: LocalBigQuery, tag: str) -> None:
    query = urlencode({"dtcd": json.dumps(data_push(tag))} | {f"f{i}": "x" for i in range(501)})
    assert_kept(local_bigquery, send(collector, "GET", "/data?" + query), 413, "too_many_fields")


def test_a_ga4_body_line_with_501_fields_costs_its_neighbours_nothing(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
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


def test_a_lone_ga4_body_line_with_501_fields(collector: Collector, local_bigquery: LocalBigQuery, tag: str) -> None:
    line = urlencode(loyjoy_hit(tag) | {f"f{i}": "x" for i in range(501)})
    assert_kept(local_bigquery, send(collector, "POST", "/g/collect", line, "text/plain"), 400, "too_many_fields")


# ---------------------------------------------------------------------------------- (f) nesting


@pytest.mark.parametrize("encoding", ["dtcd", "dtdc", "dtdc-url"])
def test_a_pixel_nested_three_thousand_deep(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, encoding: str
) -> None:
    deep = "[" * 3000 + "]" * 3000
    if encoding == "dtcd":
        value = deep
    else:
        value = (base64.urlsafe_b64encode if encoding == "dtdc-url" else base64.b64encode)(deep.encode()).decode()
    answer = send(collector, "GET", f"/data?bot_id={tag}&{encoding[:4]}={quote(value)}")
    kept = assert_kept(local_bigquery, answer, 400, "nesting_too_deep")
    assert tag in kept["query"]


def test_a_data_body_nested_too_deep(collector: Collector, local_bigquery: LocalBigQuery, tag: str) -> None:
    nested: Any = 1
    for _ in range(20):
        nested = [nested]
    for body in ("[" * 3000 + "]" * 3000, json.dumps(data_push(tag, x=nested))):
        assert_kept(local_bigquery, send(collector, "POST", "/data", body, "text/plain"), 400, "nesting_too_deep")


# ------------------------------------------------------------------------------ (g) calendar edges


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("key", ["ts", "sent_at"])
def test_a_time_past_the_calendar_in_utc_is_an_invalid_field(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, moment: str, key: str
) -> None:
    answer = collector.post({"bot_id": tag, "events": [{"event": "open"}, {"event": "close", key: moment}]})
    assert answer.status_code == 207, answer.text
    refused = answer.json()["results"][1]
    assert refused["reason"] == "invalid_field" and key in refused["detail"]
    [kept] = local_bigquery.rejected("rejected_id = @id", id=refused["rejected_id"])
    assert kept["reason"] == "invalid_field"
    assert [r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["open"]


def test_the_calendars_own_edges_fall_back_to_server_time(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
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


# ------------------------------------------------------------------------- found by the generator


@pytest.mark.parametrize("origin", ["http://[::1", "https://[shop.example.com"])
def test_an_origin_that_is_no_url_is_a_foreign_one(collector: Collector, origin: str) -> None:
    answer = requests.post(collector.url + "/", json={"event": "open"}, headers={"Origin": origin}, timeout=30)
    assert answer.status_code == 403 and answer.json()["error"]["reason"] == "origin_not_allowed"


def test_a_lone_surrogate_in_a_batch_is_refused_with_its_neighbour_stored(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    events = '[{"event": "open"}, {"event": "close", "ts": "yesterday", "detail": {"label": "\\ud800"}}]'
    answer = collector.post(f'{{"bot_id": "{tag}", "events": {events}}}')  # JSON's escape of a lone surrogate
    assert answer.status_code == 207, answer.text
    refused = answer.json()["results"][1]
    assert local_bigquery.rejected("rejected_id = @id", id=refused["rejected_id"])
    assert [r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["open"]


def test_a_lone_surrogate_echoed_by_the_data_client(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    """The Data Client answers each item's unique_event_id as sent; the good item's row was stored already."""
    body = f'[{{"event_name": "page_view", "unique_event_id": "\\ud800"}}, {json.dumps(data_push(tag))}]'
    answer = send(collector, "POST", "/data", body, "text/plain")
    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == 2
    assert [r["event_name"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["open"]


ESCAPED_PAIR = b'{"event": "open", "event_id": "\\"\\ud800\\udc00"}'  # JSON text: an escaped quote, U+10000 escaped


def test_a_bug_while_recording_a_refusal_is_still_answered_in_json(collector: Collector) -> None:
    """Whatever fails while a refusal is recorded is answered as any bug is: JSON, with CORS, to send again."""
    answer = requests.put(collector.url + "/", data=ESCAPED_PAIR, headers={"Origin": ORIGIN}, timeout=30)
    assert answer.headers["Content-Type"] == "application/json", answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN


BROKEN_WITH_EMOJI = b'{"event": "open", "detail": {"label": "\\"hi\\" \\ud83d\\ude00"'  # cut off; ensure_ascii's emoji


@pytest.mark.parametrize(
    ("method", "body", "status", "reason"),
    [("PUT", ESCAPED_PAIR, 405, "method_not_allowed"), ("POST", BROKEN_WITH_EMOJI, 400, "invalid_json")],
    ids=["405", "invalid_json"],
)
def test_a_refused_body_with_an_escaped_surrogate_pair_is_kept(
    collector: Collector, local_bigquery: LocalBigQuery, method: str, body: bytes, status: int, reason: str
) -> None:
    answer = send(collector, method, "/", body, "text/plain")
    assert_kept(local_bigquery, answer, status, reason)


# --------------------------------------------------------------------------- the rest, generated

EXAMPLES = int(os.environ.get("STRUCTURAL_EXAMPLES", "300"))  # `STRUCTURAL_EXAMPLES=3000` for a long run
RANDOM = os.environ.get("STRUCTURAL_RANDOM") == "1"  # CI: the same examples every run
ROUTES = [
    "/",
    "/data",
    "/lj-events",
    "/g/collect",
    "/lj/g/collect",
    "/lj/data",
    "/",
    "/data",
    "/g/collect",
    "/g/collect/",
    "/lj",
    "/nope",
    "/healthy",
]
COUNTS = [0, 1, 99, 100, 101, 499, 500, 501, 1500]
DEPTHS = [1, 15, 16, 17, 18, 100, 999, 1000, 1001, 3000, 20_000]
NUMERALS = [
    "²",
    "٣",
    "١٢٣",
    "\uff11\uff12",
    "\U0001d7d8",
    "Ⅻ",
    "½",
    "1_000",
    " 7 ",
    "-0",
    "-1",
    "0x1F",
    "1e999",
    "nan",
    "inf",
    "1.5",
    "99999999999999999999",
    "9" * 5000,
    "",
    "0",
    "17324",
    "\u0663\u0664.\u0665",
]
KEYS = [
    "",
    " ",
    "k" * 129,
    "k" * 10_000,
    "ep.",
    "epn.",
    "up.",
    ".",
    "=",
    "&",
    "%",
    "\u0000",
    "ü",
    "utm_source",
    "event",
    "ts",
    "detail",
    "events",
    "sid",
    "en",
    "dtcd",
    "dtdc",
    "gclid",
    "\ud800",
]
OFFSETS = ["", "Z", "+00:00", "+01:00", "-01:00", "+23:59", "-23:59", "+14:00", "-12:00", "+24:00"]
YEARS = ["0001", "0002", "1969", "1970", "2026", "9998", "9999", "0000", "10000"]
EPOCHS = [
    0,
    -1,
    -62135596800000,
    -62135596800001,
    253402300799999,
    253402300800000,
    10**20,
    -(10**20),
    2**63,
    1e308,
    -1e308,
    1.5,
    1e400,
]


HEADERS = {
    "Origin": [
        *([ORIGIN] * 30),
        "null",
        "",
        "http://[::1",
        "https://shop.example.com:99999",
        "https://²",
        "https://shop.example.com/",
        "https://" + "a" * 5000,
    ],
    "X-Forwarded-For": [
        "",
        "::1",
        "1.2.3.4, 5.6.7.8",
        "²",
        "999.999.999.999",
        "[::1]:80",
        "a" * 1000,
        ",",
        "::ffff:1.2.3.4",
        "fe80::1%eth0",
    ],
    "Accept-Language": ["*", "", "de-DE;q=²", "x" * 500, ",;", "de-DE-x-" + "a" * 100],
    "traceparent": [
        "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "00-²",
        "",
        "-" * 55,
        "ff-" + "0" * 32 + "-" + "0" * 16 + "-00",
    ],
    "X-Cloud-Trace-Context": ["a" * 32 + "/" + "9" * 30 + ";o=1", "a" * 32 + "/²", "/", "a" * 32 + "/-1"],
    "User-Agent": ["", "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0", "x" * 4000, "Googlebot/2.1 (²)"],
    "Content-Length": [],  # set by requests
}


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    query: str
    body: bytes
    content_type: str | None
    headers: tuple[tuple[str, bytes], ...] = ()


def nested_text(depth: int, kind: str, leaf: str = "1") -> str:
    """JSON nested `depth` deep, built as text: json.dumps itself would recurse."""
    if kind == "list":
        return "[" * depth + leaf + "]" * depth
    if kind == "object":
        return '{"a":' * depth + leaf + "}" * depth
    return '{"a":[' * (depth // 2) + leaf + "]}" * (depth // 2)


moments = st.one_of(
    st.builds(
        lambda y, rest, off: f"{y}-{rest}{off}",
        st.sampled_from(YEARS),
        st.sampled_from(
            [
                "01-01T00:00:00",
                "12-31T23:59:59",
                "12-31T23:59:59.999999",
                "02-29T12:00:00",
                "01-01",
                "01-01T00:00:00,5",
                "W01-1T00:00",
            ]
        ),
        st.sampled_from(OFFSETS),
    ),
    st.sampled_from(EPOCHS),
    st.sampled_from(NUMERALS),
)
scalars = st.one_of(
    st.sampled_from(NUMERALS),
    moments,
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(KEYS),
    st.sampled_from(["\ud800", "a\udfffb", "\x00"]),
    st.just([]),
    st.just({"a": [1]}),
)


@st.composite
def url_with(draw: st.DrawFn) -> str:
    """A page URL with many parameters, some of them the ones enrichment reads."""
    count = draw(st.sampled_from(COUNTS))
    pieces = [f"f{i}=v" for i in range(count)]
    pieces += draw(
        st.lists(
            st.sampled_from(
                [
                    "utm_source=a",
                    "utm_source=",
                    "utm%5Fsource=b",
                    "gclid=g",
                    "gclid",
                    "&",
                    "=",
                    "utm_term=" + "x" * 2000,
                    "%zz=1",
                    "utm_source=%E2%82",
                ]
            ),
            max_size=4,
        )
    )
    host = draw(st.sampled_from(["shop.example.com", "[::1", "[::1]:99999", "\u2100", "xn--", "", "a:b@c"]))
    return f"https://{host}/p?" + "&".join(draw(st.permutations(pieces)) if len(pieces) < 8 else pieces)


@st.composite
def snippet_events(draw: st.DrawFn, tag: str) -> dict[str, Any]:
    """A snippet-protocol event with some of its fields at their extremes."""
    event: dict[str, Any] = {
        "event": draw(st.sampled_from(["open", "close", "sign_up", "²", "", "a" * 200])),
        "bot_id": tag,
    }
    for name, values in (
        ("ts", moments),
        ("sent_at", moments),
        ("ga_session_id", scalars),
        ("retry", scalars),
        ("event_id", scalars),
        ("page_location", url_with()),
        ("session_id", scalars),
        ("language", scalars),
    ):
        if draw(st.integers(0, 3)) == 0:
            event[name] = draw(values)
    if draw(st.booleans()):
        event["detail"] = {draw(st.sampled_from(KEYS)): draw(scalars), "label": draw(scalars)}
    return event


def form(fields: dict[str, Any], count: int) -> str:
    extra = "&".join(f"x{i}=1" for i in range(count))
    encoded = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}, errors="replace")
    return "&".join(part for part in (encoded, extra) if part)


@st.composite
def json_text(draw: st.DrawFn, tag: str, data_tag: bool) -> str:
    """A JSON body or pixel value: events (some extreme), deep nesting, or both mixed."""
    shape = draw(st.sampled_from(["event", "batch", "nested", "nested_detail", "array", "broken"]))
    good = data_push(tag) if data_tag else {"event": "open", "bot_id": tag}
    if shape == "nested":
        return nested_text(draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["list", "object", "mixed"])))
    if shape == "nested_detail":
        depth, kind = draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["list", "object", "mixed"]))
        return json.dumps(good)[:-1] + ', "detail": ' + nested_text(depth, kind) + "}"
    if shape == "broken":
        return draw(st.sampled_from(['{"event": "open"', "\ud800", "[]", "{}", "null", '"x"', "1e400", "-", "{" * 5]))
    extreme = draw(snippet_events(tag))
    if data_tag:
        extreme = data_push(tag, **{k: v for k, v in extreme.items() if k != "event"})
        if draw(st.booleans()):
            extreme["unique_event_id"] = draw(scalars)
        if draw(st.integers(0, 3)) == 0:
            extreme["event_name"] = draw(st.sampled_from(["page_view", "loyjoy_open", "loyjoy_", "loyjoy_²"]))
    if shape == "event":
        return json.dumps(extreme, ensure_ascii=draw(st.booleans()))
    if shape == "array" or data_tag:
        return json.dumps([good, extreme])
    return json.dumps({"bot_id": tag, "events": [good, extreme]})


@st.composite
def ga4_line(draw: st.DrawFn, tag: str) -> str:
    fields = loyjoy_hit(tag, draw(st.sampled_from(["open", "close", "²"])))
    names = st.sampled_from(
        ["sid", "epn.step", "epn.x", "up.customer_tier", "upn.n", "dl", "v", "en", "gcs", "gcd", "_p"]
    )
    for name in draw(st.lists(names, max_size=4)):
        fields[name] = draw(url_with()) if name == "dl" else str(draw(scalars))
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=2)):
        fields[key] = "v"
    return form(fields, draw(st.sampled_from(COUNTS)))


@st.composite
def probes(draw: st.DrawFn, tag: str) -> Probe:
    path = draw(st.sampled_from(ROUTES))
    method = draw(st.sampled_from(["GET", "POST"] * 6 + ["HEAD", "OPTIONS", "PUT"]))
    content_type = draw(
        st.sampled_from(
            [
                None,
                "text/plain",
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain;charset=UTF-8",
                "multipart/form-data; boundary=x",
                "text/plain;charset=latin-1",
                "application/json; charset=utf-16",
                ";",
                'text/plain ; x="y"',
            ]
        )
    )
    is_ga4, is_data = path.endswith("/g/collect"), path.endswith(("/data", "/lj-events"))
    query, body = "", ""
    if is_ga4:
        query = draw(ga4_line(tag)) if method == "GET" or draw(st.booleans()) else ""
        if method == "POST":
            body = "\n".join(draw(st.lists(ga4_line(tag), min_size=1, max_size=3)))
            if draw(st.integers(0, 5)) == 0:  # mixed: a JSON or nested body where lines belong
                body = draw(json_text(tag, True))
    elif is_data and method == "GET":
        value = draw(json_text(tag, True))
        encoding = draw(st.sampled_from(["dtcd", "dtdc", "dtdc-url", "both", "plain"]))
        raw = value.encode("utf-8", "surrogatepass")
        encoded = {
            "dtcd": value,
            "dtdc": base64.b64encode(raw).decode(),
            "dtdc-url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        }
        params = {"both": {"dtcd": value, "dtdc": encoded["dtdc"]}, "plain": data_push(tag)}.get(
            encoding, {encoding[:4]: encoded.get(encoding, value)}
        )
        query = form(params, draw(st.sampled_from(COUNTS)))
    elif is_data and content_type == "application/x-www-form-urlencoded":
        fields = data_push(tag) | {draw(st.sampled_from(KEYS)): draw(json_text(tag, True))}
        body = form(fields, draw(st.sampled_from(COUNTS)))
    else:
        body = draw(json_text(tag, is_data))
        if draw(st.integers(0, 5)) == 0:  # mixed: form fields where JSON belongs
            body = form(data_push(tag), draw(st.sampled_from(COUNTS)))
    headers = tuple(
        (name, draw(st.sampled_from(values)).encode())
        for name, values in HEADERS.items()
        if values and (name == "Origin" or draw(st.integers(0, 3)) == 0)
    )
    return Probe(method, path, query, body.encode("utf-8", "surrogatepass"), content_type, headers)


@dataclass
class Ledger:
    stored_ids: list[str] = field(default_factory=list)
    rejected_ids: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


def check(probe: Probe, answer: requests.Response, ledger: Ledger) -> None:
    """2xx or 4xx, and every refusal answered names a kept record (checked at the end, all at once)."""
    where = f"{probe.method} {probe.path}?{probe.query[:300]} {probe.body[:300]!r}: {answer.status_code} "
    where += answer.text[:300]
    ledger.statuses[answer.status_code] += 1
    assert answer.status_code in (200, 204, 207) or 400 <= answer.status_code < 500, where
    if answer.status_code == 204 or probe.method in ("HEAD", "OPTIONS") or probe.path == "/healthy":
        return
    if answer.headers.get("Content-Type") == "image/gif":
        return
    body = answer.json()
    if answer.status_code == 200 and probe.path.endswith(("/data", "/lj-events")):
        return
    if "results" in body:
        for result in body["results"]:
            if result["stored"]:
                ledger.stored_ids.append(result["event_id"])
            else:
                assert result.get("rejected_id") and result.get("reason"), where
                ledger.rejected_ids.append(result["rejected_id"])
                ledger.reasons[result["reason"]] += 1
        return
    if answer.status_code == 403 and body["error"]["reason"] == "origin_not_allowed":
        return  # a foreign origin's request is not recorded: anyone could fill the table
    assert body["error"]["reason"] and body.get("rejected_id"), where
    ledger.rejected_ids.append(body["rejected_id"])
    ledger.reasons[body["error"]["reason"]] += 1


def test_structural_extremes_answer_2xx_or_a_kept_4xx(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str
) -> None:
    ledger = Ledger()
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        derandomize=not RANDOM,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(probe=probes(tag))
    def one(probe: Probe) -> None:
        url = f"{collector.url}{probe.path}" + (f"?{probe.query}" if probe.query else "")
        headers: dict[str, str | bytes] = dict(probe.headers)
        if probe.content_type:
            headers["Content-Type"] = probe.content_type
        body = probe.body if probe.method in ("POST", "PUT") else None
        check(probe, requests.request(probe.method, url, data=body, headers=headers, timeout=60), ledger)

    one()
    events = f"SELECT event_id FROM `{local_bigquery.table('events')}` WHERE event_id IN UNNEST(@ids)"
    stored = {row["event_id"] for row in local_bigquery.query(events, ids=ledger.stored_ids)}
    refusals = f"SELECT rejected_id FROM `{local_bigquery.table('events_rejected')}` WHERE rejected_id IN UNNEST(@ids)"
    kept = {row["rejected_id"] for row in local_bigquery.query(refusals, ids=ledger.rejected_ids)}
    print(
        f"\nstructural: {sum(ledger.statuses.values())} requests in {time.monotonic() - started:.0f} s, "
        f"statuses {dict(sorted(ledger.statuses.items()))}, reasons {dict(ledger.reasons.most_common())}"
    )
    assert set(ledger.stored_ids) <= stored, sorted(set(ledger.stored_ids) - stored)[:5]
    assert set(ledger.rejected_ids) <= kept, sorted(set(ledger.rejected_ids) - kept)[:5]
