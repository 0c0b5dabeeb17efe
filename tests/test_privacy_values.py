"""The value detectors and the row gate, without servers: what they must catch, and what they must leave."""

from __future__ import annotations

import base64
import json
import os
import random
import time
import uuid
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyjoy_collector.privacy.gate import Gate
from loyjoy_collector.privacy.keys import CONTAINER_KEYS, Scrubber
from loyjoy_collector.privacy.tally import Tally
from loyjoy_collector.privacy.values import scrub_text

from .test_fuzz import ALLOWED_KEYS, OTHER_KEYS, PERSONAL_KEYS, placed, plants, typed_field

JWT_PAYLOAD = base64.urlsafe_b64encode(b'{"email":"jane.doe@example.com","firstname":"Jane"}').decode().rstrip("=")
JWT = f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{JWT_PAYLOAD}.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def scrub(text: str, strict: bool = False) -> str:
    return scrub_text(text, Tally(), Scrubber(None).kept_keys, strict)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+news@example.com", "write to [email]"),
        ("x.y39541\ufffd@domain.tld", "[email]"),  # damaged local part
        ("jane@bücher.example", "[email]"),  # international domain
        ("JANE@EXAMPLE.COM", "[email]"),
        ("https://x.test/?e=jane%40example.org", "https://x.test/?e=[email]"),
        ("jane\\u0040example\\u002ecom", "[email]"),
        ("jane&#64;example.com", "[email]"),
        ("jane\uff20example.com", "[email]"),
        (JWT, "[jwt].[jwt].[base64]"),
        (f"eyJhbGciOiJIUzI1NiIs\ufffdnR5cCI6IkpXVCJ9.{JWT_PAYLOAD}.sig", "[jwt]\ufffdnR5cCI6IkpXVCJ9.[jwt].sig"),
        (base64.b64encode(b"my name is Erika Mustermann").decode(), "[base64]"),
        ("Ruf mich an: 0170 1234567", "Ruf mich an: [phone]"),
        ("+49 170 1234567", "[phone]"),
        ("tel +4917012345678 bitte", "tel [phone] bitte"),
        ("(030) 1234567", "[phone]"),
        ("0049 (0)30 1234567", "[phone]"),
        ("0049 (0)30 528158520", "[phone]"),  # 13 digits after the prefix and trunk zero: found by the fuzz run
        ("+41 79 123 45 67", "[phone]"),
        ("+49%20170%201234567", "[phone]"),
        ("IBAN DE89 3704 0044 0532 0130 00 EUR", "IBAN [iban] EUR"),
        ("DE89370400440532013000", "[iban]"),
        ("4111 1111 1111 1111", "[card]"),
        ("Hauptstrasse 5", "[address]"),
        ("in der Berliner Str. 12a, Berlin", "in der [address], Berlin"),
        ("12 rue de la Paix", "[address]"),
        ("Via Roma 12", "[address]"),
        ("Calle Mayor, 5", "[address]"),
        ("221B Baker Street", "[address]"),
        ("Kerkstraat 7", "[address]"),
        ("https://shop.example.com/?vorname=Erika&nachname=Mustermann&utm_source=x", None),
    ],
)
def test_personal_values_are_found_by_shape(text, expected):
    if expected is None:
        assert scrub(text) == "https://shop.example.com/?vorname=[redacted]&nachname=[redacted]&utm_source=x"
    else:
        assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-02",
        "01.02.2024",
        "01/02/2024",
        "score 3@45",
        "@loyjoy",
        "GA1.1.1234567890.1700000000",
        "1732550400000_123456789",
        "Kaffeemaschinen-Vollautomaten-Angebote",
        "https://shop.example.com/produkte/kaffeemaschinen?utm_source=newsletter&utm_medium=email&page=2",
        "Schritt 5 von 7",
        "Paket 3 gewählt",
        "process_name=Newsletter",
        "Cj0KCQiA4NWrBhD-ARIsAFCKwWvE9aWQkq2Hk1",
        "Preis: 1.299,00 EUR",
    ],
)
def test_analytical_values_are_left_alone(text):
    assert scrub(text) == text


def test_ids_and_times_are_not_mistaken_for_personal_values():
    rng = random.Random(7)
    values = []
    for _ in range(20_000):
        values += [str(uuid.uuid4()), uuid.uuid4().hex, f"{int(time.time() * 1000)}_{rng.randrange(10**8, 10**9)}"]
    changed = [value for value in values if scrub(value) != value]
    assert changed == []


def test_strict_text_keeps_only_values_of_allowed_keys():
    broken = '{"event": "open", "detail": {"label": "Yes", "antwort": "Erika", "x": [["Mustermann"]], "plz": 10115, "page_title": "Hallo Er'
    assert scrub(broken, strict=True) == (
        '{"event": "open", "detail": {"label": "Yes", "antwort": "[redacted]", "x": [["[redacted]"]], '
        '"plz": [redacted], "page_title": "[redacted]"'
    )


@settings(max_examples=300, deadline=None)
@given(st.text(), st.emails())
def test_an_email_anywhere_in_any_text_is_gone(prefix, email):
    separator = " " if prefix and not prefix[-1].isspace() else ""
    text = f"{prefix}{separator}{email} rest"
    assert email not in scrub(text)


def test_gate_keeps_rows_storable_and_counts_what_it_removed():
    gate = Gate(Scrubber(b"k"))
    tally = Tally()
    row = {
        "event_id": "e" * 200,
        "client_id": "jane@example.com",
        "ga_session_id": 2**64,
        "page_title": "a\x00b\ud800c" + "x" * 600,
        "detail": {"n": 10**20, "f": float("inf"), "ok": 1, "label": "0170 1234567"},
        "quality_flags": ["client_clock_skewed"],
    }
    sealed = gate.seal("events", row, tally)
    assert (
        sealed["client_id"].startswith("pii-") and sealed["client_id"] == gate.seal("events", row, Tally())["client_id"]
    )
    assert sealed["event_id"].startswith("pii-")  # too long for an id: a stable pseudonym
    assert sealed["ga_session_id"] is None
    assert sealed["page_title"].startswith("ab\ufffdc") and len(sealed["page_title"]) == 512
    assert json.loads(sealed["detail"]) == {"ok": 1, "label": "[phone]"}
    assert sealed["quality_flags"] == [
        "client_clock_skewed",
        "truncated_page_title",
        "pii_values_replaced=2",
        "out_of_range_dropped=3",
    ]


def test_a_realistic_loyjoy_chat_keeps_its_analytics():
    """LoyJoy's documented listener objects for a chat: the allow-list keeps what analysts use and drops the
    rest; the counts are what the closing note reports."""
    base = {"bot_id": "b1", "process_id": "p1", "process_name": "Gewinnspiel", "sub_process_name": "Frage 2"}
    chat = [
        ("open", base),
        ("session_started", base),
        ("message_received", base | {"type": "text", "payload": {"text": "Ich heisse Erika, 0170 1234567"}}),
        ("quiz_answered", base | {"label": "Antwort B", "score": 3, "step": 2}),
        ("sign_up", base | {"email": "erika@example.de", "token": JWT, "firstname": "Erika", "lastname": "M"}),
        ("customer_updated", base | {"plz": "10115", "telefon": "0170 1234567", "geburtsdatum": "1980-01-02"}),
        ("newsletter_double_opt_in", base | {"label": "Ja, gerne", "topic": "newsletter"}),
        ("link_clicked", base | {"label": "Zum Produkt", "url": "https://shop.example.de/p/1?mail=erika%40example.de"}),
        ("nps_survey_score_9", base | {"score": 9}),
        ("close", base),
    ]
    scrubber, gate = Scrubber(b"k"), Gate(Scrubber(b"k"))
    dropped: dict[str, list[str]] = {}
    for name, detail in chat:
        tally = Tally()
        kept = json.loads(gate.json_text(scrubber.scrub(detail, tally), tally))
        dropped[name] = sorted(tally.dropped_keys)
        assert {k: v for k, v in kept.items() if k in base} == base  # every analytical field survives
    assert dropped["message_received"] == ["payload"]
    assert dropped["sign_up"] == ["firstname", "lastname", "token"]
    assert dropped["customer_updated"] == ["geburtsdatum", "plz", "telefon"]
    assert all(dropped[n] == [] for n in ("quiz_answered", "newsletter_double_opt_in", "nps_survey_score_9"))
    link = json.loads(gate.json_text(scrubber.scrub(chat[7][1], Tally()), Tally()))
    assert link["url"] == "https://shop.example.de/p/1?mail=[redacted]" and link["label"] == "Zum Produkt"


# -------------------------------------------------------------- generated values, without servers (fast)

TEXT_EXAMPLES = int(os.environ.get("FUZZ_TEXT_EXAMPLES", "300"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
SCRUBBER = Scrubber(b"k")
GATE = Gate(SCRUBBER)
STRICT_KEYS = SCRUBBER.kept_keys - CONTAINER_KEYS


@settings(max_examples=TEXT_EXAMPLES, deadline=None, derandomize=not RANDOM, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_planted_values_never_survive_any_form_of_a_body(data):
    """The fuzz run's planted values in the forms the collector keeps: a parsed event (allow-list and gate), a
    body that did not parse (whole, cut off, or behind garbage: strict text)."""
    plant = data.draw(plants())
    event = {"event": "sign_in", "bot_id": "fz1", "detail": data.draw(placed(plant))}
    if plant.by_value and data.draw(st.booleans()):
        event |= typed_field(data.draw, plant)
    body = json.dumps({"events": [event]}, ensure_ascii=False)
    form = data.draw(st.sampled_from(["parsed", "text", "cut", "garbage"]))
    if form == "parsed":
        tally = Tally()
        kept = GATE.json_text(SCRUBBER.scrub(json.loads(body), tally), tally)
    else:
        if form == "cut":
            body = body[: data.draw(st.integers(1, len(body)))]
        elif form == "garbage":
            body = data.draw(st.text(max_size=10)) + body
        kept = scrub_text(body, Tally(), STRICT_KEYS, strict=True)
    for marker in plant.markers:
        assert marker not in kept


@settings(max_examples=TEXT_EXAMPLES, deadline=None, derandomize=not RANDOM, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_planted_values_never_survive_urls_and_query_strings(data):
    """GA4 hits and page URLs: percent-encoded (twice), form-encoded (`+` for space), under personal keys."""
    plant = data.draw(plants())
    keys = PERSONAL_KEYS + (OTHER_KEYS + ALLOWED_KEYS if plant.by_value else [])
    key = data.draw(st.sampled_from(keys))
    page = f"https://shop.example.com/?{quote(key)}={quote(plant.text)}"
    hit = {"en": "loyjoy", f"ep.{key}": plant.text}
    form = data.draw(st.sampled_from(["query", "lines", "url"]))
    text = {
        "query": urlencode({"v": "2", "dl": page} | hit),
        "lines": urlencode(hit) + "\n" + urlencode({"en": "page_view", f"ep.{key}": plant.text}),
        "url": page,
    }[form]
    kept = scrub_text(text, Tally(), STRICT_KEYS, strict=form != "url")
    for marker in plant.markers:
        assert marker not in kept
