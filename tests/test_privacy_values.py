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
        ("https://x.test/?e=jane%40example.org", "https://x.test/?e=[redacted]"),  # a URL's query: allow-listed
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
        "https://shop.example.com/produkte/kaffeemaschinen?utm_source=newsletter&utm_medium=email&gclid=Cj0K",
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


# ------------------------------------------------------------ round two: shapes, URLs, typed places


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call 212-555-0199 today", "call [phone] today"),
        ("(212) 555-0199", "[phone]"),
        ("212.555.0199", "[phone]"),
        ("+1 212 555 0199", "[phone]"),
        ("mobile 347 123 4567", "mobile [phone]"),
        ("612 34 56 78", "[phone]"),
        ("0170 1234567 89x", "[phone] 89x"),  # the longest number that ends on a boundary
        ("+49 170 1234567 und +49 170 7654321", "[phone] und [phone]"),
        ("0170 1234567,0170 7654321", "[phone],[phone]"),  # one boundary character between two values
        ("\uff10\uff11\uff17\uff10 1234567", "[phone]"),  # full-width digits
        ("from 203.0.113.9 via 10.0.0.1", "from [ip] via [ip]"),
        ("addr 2001:db8::8a2e:370:7334.", "addr [ip]."),
        ("::ffff:192.0.2.1", "[ip]"),
        ("jane(at)example(dot)com", "[email]"),
        ("jane [at] example [dot] com", "[email]"),
        ("jane at example dot com", "[email]"),
        ("Jane.Doe (AT) example.org", "[email]"),
        ("IBAN DE89 3704 0044 0532 0130 00 bitte", "IBAN [iban] bitte"),
    ],
)
def test_round_two_shapes_are_found(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Chrome/120.0.0.0 Safari/537.36",  # a product token's version
        "um 12:30:45 Uhr",
        "wir treffen uns at 10.30",
        "Schritt 5 von 7",
        "Version 2.4.1",
        "2024-11-24T12:30:45Z",
        "c0a80101-7f3e-4f1a-9d2b-2a1b3c4d5e6f",
        "Preis: 1.299,00 EUR",
    ],
)
def test_round_two_shapes_leave_analytics_alone(text):
    assert scrub(text) == text


def clean(url: str, params: frozenset[str] = frozenset()) -> str:
    from loyjoy_collector.privacy.urls import clean_url

    return clean_url(url, Tally(), params)


def test_urls_keep_scheme_host_path_and_allowed_parameters_only():
    url = "https://user:secret@shop.example.com:8443/kunde/p?utm_source=nl&gclid=Cj0K&password=hunter2&customer=Erika&flag#access_token=abc"
    assert (
        clean(url)
        == "https://shop.example.com:8443/kunde/p?utm_source=nl&gclid=Cj0K&password=[redacted]&customer=[redacted]&flag"
    )
    assert (
        clean("https://x.test/?utm_term=erika+mustermann&utm_medium=cpc")
        == "https://x.test/?utm_term=[redacted]&utm_medium=cpc"
    )
    assert clean("https://x.test/?page=2&q=shoes", frozenset({"page"})) == "https://x.test/?page=2&q=[redacted]"
    assert clean("https://www.google.de/search?q=erika+mustermann+adresse") == "https://www.google.de/"
    assert clean("https://duckduckgo.com/?q=jane") == "https://duckduckgo.com/"
    assert clean("Kaffeemaschinen # Angebote") == "Kaffeemaschinen # Angebote"  # no URL, left to the detectors
    assert clean("http://[::1") == "[redacted]"


def test_url_columns_and_url_keys_pass_the_url_rules_everywhere():
    gate = Gate(Scrubber(b"k", url_params=frozenset({"page"})))
    row = {
        "page_location": "https://shop.example.com/?page=2&user=jane&utm_term=Erika#token=x",
        "page_referrer": "https://www.bing.com/search?q=erika",
        "utm_term": "erika mustermann",
        "detail": {"link_url": "https://x.test/a?email_token=abc&utm_source=x", "label": "https://x.test/?kunde=Erika"},
    }
    sealed = gate.seal("events", row, Tally())
    assert sealed["page_location"] == "https://shop.example.com/?page=2&user=[redacted]&utm_term=[redacted]"
    assert sealed["page_referrer"] == "https://www.bing.com/"
    assert sealed["utm_term"] is None
    assert json.loads(sealed["detail"])["link_url"] == "https://x.test/a?email_token=[redacted]&utm_source=x"
    # a refused GA4 query string: `dl` is allowed, the URL inside it is cleaned (percent-encoded as it came)
    query = "v=2&en=page_view&dl=" + quote("https://shop.example.com/?password=hunter2&utm_source=x", safe="")
    kept = scrub_text(query, Tally(), STRICT_KEYS, strict=True)
    assert "hunter2" not in kept and "password" in kept and "utm_source" in kept


def test_language_keeps_bcp47_tags_only():
    from loyjoy_collector.privacy.values import language_tags

    assert language_tags("de-DE,de;q=0.9,en;q=0.8", Tally()) == "de-DE,de,en"
    assert language_tags("zh-Hant-TW", Tally()) == "zh-Hant-TW"
    assert language_tags("es-419", Tally()) == "es-419"
    assert language_tags("Erika Mustermann", Tally()) is None
    assert language_tags("Max", Tally()) is None
    tally = Tally()
    assert language_tags("de, Erika", tally) == "de" and tally.replaced == 1


def test_numbers_that_are_phone_or_card_numbers_are_replaced_unless_their_key_says_what_they_are():
    gate = Gate(Scrubber(b"k"))
    tally = Tally()
    detail = {
        "value": 4917055512345,
        "score": 9,
        "duration_ms": 1732550400,
        "ts": 1732550400123,
        "count": 4111111111111111,
        "position": 12.5,
        "product_id": 123456789012,
    }
    kept = json.loads(gate.json_text(detail, tally))
    assert kept == {
        "value": "[phone]",
        "score": 9,
        "duration_ms": 1732550400,
        "ts": 1732550400123,
        "count": "[card]",
        "position": 12.5,
        "product_id": 123456789012,
    }
    assert tally.replaced == 2


@pytest.mark.parametrize(
    ("name", "personal"),
    [
        ("tel_01705551234", True),
        ("call_212_555_0199", True),
        ("ip_203_0_113_9", True),  # seven digits in a name: an address written with underscores
        ("quiz_answered", False),
        ("nps_survey_score_9", False),
        ("jump_decision_3", False),
        ("step_20241124", True),  # eight digits in a name: a date, a number, an id; never analytics
    ],
)
def test_event_names_carrying_values_are_pseudonymised(name, personal):
    gate = Gate(Scrubber(b"k"))
    sealed = gate.seal("events", {"event_name": name, "event_name_raw": name}, Tally())
    assert (sealed["event_name"] != name) is personal
    if personal:
        assert sealed["event_name"].startswith("pii-") and sealed["event_name_raw"] == sealed["event_name"]


def test_the_new_shapes_take_no_id_and_no_chat_text():
    """60,000 ids of ten shapes sites send and 5,000 chat texts (dates, times, prices, versions, order numbers):
    nothing changed. Random 16-byte ids (nanoid) are left out: one in a thousand decodes to readable text
    and is taken for base64, as before the new shapes."""
    from bench.false_positives import changed, chat_corpus, id_shapes

    rng = random.Random(14)
    for name, make in id_shapes(rng).items():
        if name != "nanoid":
            assert changed([make() for _ in range(6000)]) == [], name
    assert changed(chat_corpus(rng, 5000)) == []
