"""Texts for the privacy detectors: what a chat sends every day, and what an attacker would craft.

The adversarial texts aim at what made backtracking engines slow: long runs that almost match (digits with
every separator a phone pattern allows, `@` after `@`, quotes and escapes that never close, IBAN, card and
address shapes one character short), and bodies of the maximum size. Both `bench/detectors.py` and the tests
use them, so the benchmark's figures and the test's bound are about the same texts.
"""

from __future__ import annotations

import base64
import json

MAX_BODY = 512 * 1024  # the collector's default body limit


def typical_texts() -> list[str]:
    """Strings of a realistic LoyJoy chat as the gate sees them: labels, titles, URLs, ids, whole events."""
    base = {"bot_id": "b-2f1c", "process_id": "p-88a1", "process_name": "Gewinnspiel Herbst"}
    base["sub_process_name"] = "Frage 2"
    events = [
        {"event": "open", "detail": base},
        {"event": "message_received", "detail": base | {"type": "text", "payload": {"text": "Ich heisse Erika"}}},
        {"event": "quiz_answered", "detail": base | {"label": "Antwort B: Kaffeevollautomat", "score": 3}},
        {"event": "link_clicked", "detail": base | {"label": "Zum Produkt", "url": "https://shop.example.de/p/1"}},
        {"event": "newsletter_double_opt_in", "detail": base | {"label": "Ja, gerne!", "topic": "newsletter"}},
        {"event": "nps_survey_score_9", "detail": base | {"score": 9}},
    ]
    texts = [json.dumps(event, ensure_ascii=False) for event in events]
    texts += [
        "Kaffeemaschinen & Vollautomaten \u2013 Angebote der Woche | Shop Example",
        "https://shop.example.com/produkte/kaffeemaschinen?utm_source=newsletter&utm_medium=email&page=2",
        "https://www.example.de/kontakt/",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
        "Safari/537.36",
        "de-DE,de;q=0.9,en;q=0.8",
        "GA1.1.1234567890.1700000000",
        "1732550400000_123456789",
        "Schritt 5 von 7 \u2013 Paket 3 gewählt, Preis: 1.299,00 EUR",
        "Ja, ich möchte den Newsletter erhalten und stimme der Datenschutzerklärung zu.",
        "c0a80101-7f3e-4f1a-9d2b-2a1b3c4d5e6f",
    ]
    return texts


def adversarial_texts(size: int = 64 * 1024) -> dict[str, str]:
    """Named worst cases, each about `size` characters (and a 75-byte near phone number: +49, 70 ones, a letter)."""

    def fill(unit: str) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    quoted = fill('"\\')
    jwtish = fill("eyJ" + base64.urlsafe_b64encode(b'{"email":"x"}').decode()[3:] + ".")
    return {
        "near_phone_75_bytes": "+49 " + "1" * 70 + "x",
        "phone_digits": "+49 " + fill("1") + "x",
        "phone_separators": fill("+49 (0) 1-2/3.4 "),
        "national_groups": fill("0170 12 "),
        "nanp_near_miss": fill("(212) 555-01 "),
        "grouped_digits": fill("123 45 6"),
        "at_signs": fill("a@"),
        "at_escapes": fill("x%40&#64;\\u0040"),
        "spelled_at": fill("jane (at) example (dot) "),
        "quotes_escapes": quoted,
        "quotes_unclosed": fill('{"a":"\\"'),
        "keyed_pairs": fill("a=b&"),
        "keyed_colons": fill('"k":'),
        "iban_near_miss": fill("DE89 3704 0044 0532 0130 0X "),
        "card_near_miss": fill("4111 1111 1111 111 "),
        "street_near_miss": fill("Hauptstrassestrasse "),
        "street_words": fill("Via Roma Via Roma "),
        "base64_run": fill("QUJD"),
        "jwt_segments": jwtish,
        "ipv4_near_miss": fill("1.2.3."),
        "ipv6_colons": fill("1:"),
        "percent_escapes": fill("%25%32%35"),
        "unicode_digits": fill("\u0660\u0661\u0667\u0660 "),
        "slash_groups": fill("089 / 12 / "),
        "hidden_characters": fill("+49\u200b1\u00ad7\u202e0 \u00a0"),
        "key_word_letters": fill("v_o-r.n\u0130a_m"),
        "max_body_quotes": ('"\\' * (MAX_BODY // 2))[:MAX_BODY],
        "max_body_digits": ("+49 " + "1" * (MAX_BODY - 5) + "x"),
    }
