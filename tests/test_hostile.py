"""Careless and hostile senders: personal data in any column, values BigQuery cannot hold, poison rows."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from loyjoy_collector.privacy import hashing

from .conftest import HASH_KEY, ORIGIN

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJlbWFpbCI6ImphbmUuZG9lQGV4YW1wbGUuY29tIiwiZmlyc3RuYW1lIjoiSmFuZSJ9."
    "c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)


def pseudonym(value: str) -> str:
    return hashing.pseudonym(HASH_KEY.encode(), value)


def everything(local_bigquery) -> str:
    """Both tables, every column, as one text to search."""
    rows = local_bigquery.query(f"SELECT * FROM `{local_bigquery.table('events')}`")
    rows += local_bigquery.query(f"SELECT * FROM `{local_bigquery.table('events_rejected')}`")
    return json.dumps(rows, default=str, ensure_ascii=False)


def test_a_german_customer_event_keeps_nothing_personal(collector, local_bigquery, tag):
    """A German chat flow's customer event, once stored as sent: before the key allow-list (privacy/keys.py)."""
    detail = {
        "bot_id": tag,
        "process_name": "Kontakt",
        "vorname": "Erikaqx",
        "nachname": "Mustermannqx",
        "telefon": "+49 170 7654321",
        "plz": "10115",
        "strasse": "Hauptstrasse 5",
        "geburtsdatum": "1980-01-02",
        "iban": "DE89370400440532013000",
        "answer": "Ruf mich an: 0170 7654321",
        "label": "Ruf mich an: 0170 7654321 oder schreib an erika@beispiel.de",
        "customer": {"mobile_phone": "+4917076543210"},
    }
    answer = collector.post({"event": "customer", "detail": detail})
    assert answer.status_code == 200, answer.text
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["detail"] == {
        "bot_id": tag,
        "process_name": "Kontakt",
        "label": "Ruf mich an: [phone] oder schreib an [email]",
    }
    # the label twice: in `detail` and in its own column
    assert "pii_keys_dropped=9" in row["quality_flags"] and "pii_values_replaced=4" in row["quality_flags"]
    text = everything(local_bigquery)
    for value in ("Erikaqx", "Mustermannqx", "7654321", "10115", "Hauptstrasse", "1980-01-02", "DE8937", "erika@"):
        assert value not in text, value


def test_personal_values_in_typed_columns_are_scrubbed(collector, local_bigquery, tag):
    """A site that sets its client id to the visitor's e-mail; an event id that is an e-mail (refused)."""
    good = collector.post(
        {
            "event": "open",
            "bot_id": tag,
            "client_id": "visitor.one+shop@example.com",
            "session_id": "+49 170 5556667",
            "page_title": "Hallo Jane <jane.roe@example.org>",
            "utm": {"source": "newsletter", "content": "jane.roe%40example.org"},
            "language": "de\u0000",
        }
    )
    assert good.status_code == 200, good.text
    bad = collector.post({"event": "open", "bot_id": tag, "event_id": "jane.roe@example.org"})
    assert bad.status_code == 400 and bad.json()["error"]["reason"] == "invalid_field"
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    # ids become keyed pseudonyms (a placeholder would merge all such visitors into one), other columns placeholders
    assert row["client_id"] == pseudonym("visitor.one+shop@example.com")
    assert row["session_id"] == pseudonym("+49 170 5556667")
    assert (row["utm_content"], row["language"]) == ("[email]", "de")
    assert row["page_title"] == "Hallo Jane <[email]>"
    [kept] = local_bigquery.rejected("rejected_id = @id", id=bad.json()["rejected_id"])
    assert kept["event_id"] == pseudonym("jane.roe@example.org")
    text = everything(local_bigquery)
    for value in ("visitor.one", "5556667", "jane.roe"):
        assert value not in text, value


def test_damaged_tokens_and_addresses_in_unparseable_bodies(collector, local_bigquery, tag):
    header, payload, signature = JWT.split(".")
    damaged_jwt = f"{header[:10]}\ufffd{header[11:]}.{payload}.{signature}"
    secret_payload = base64.urlsafe_b64encode(b'{"email":"tok.holder@example.com","name":"Holder"}').decode()
    body = (
        f'{{"event": "open", "bot_id": "{tag}", "detail": {{"t": "{damaged_jwt}", "p": "{secret_payload}", '
        '"note": "x.y39541\ufffd@domain.tld", "tel": "0049 (0)170 888 9990", "mail": "a%2Bb%40c.de", '
        '"vorname": "Kunigunde", "frei": "Kunigunde2"'
    )
    answer = collector.post(body.encode())
    assert answer.status_code == 400 and answer.json()["error"]["reason"] == "invalid_json"
    [kept] = local_bigquery.rejected("rejected_id = @id", id=answer.json()["rejected_id"])
    raw = kept["raw_payload"]
    assert tag in raw and '"event": "open"' in raw  # still recognisable for an operator
    for value in (payload, payload[:20], secret_payload[:20], "x.y39541", "domain.tld", "888", "a%2Bb", "Kunigunde"):
        assert value not in raw, value


def test_values_bigquery_cannot_hold_are_refused_or_dropped_never_sent(collector, local_bigquery, tag):
    """The local BigQuery fails a whole insert on an out-of-range INT64 and resets the connection on a non-finite
    number: neither may reach it."""
    refused = collector.post({"event": "open", "bot_id": tag, "ga_session_id": 100000000000000000000})
    assert refused.status_code == 400 and refused.json()["error"]["reason"] == "invalid_field"
    assert "ga_session_id" in refused.json()["error"]["detail"]
    body = json.dumps({"event": "open", "bot_id": tag, "detail": {"label": "lone SUR surrogate\u0007", "score": -3}})
    body = body.replace("SUR", "\\ud800").replace('"score"', '"value": 100000000000000000000, "nps": 1e400, "score"')
    stored = collector.post(body.encode())
    assert stored.status_code == 200, stored.text
    [row] = local_bigquery.events("bot_id = @tag", tag=tag)
    assert row["detail"] == {"label": "lone \ufffd surrogate", "score": -3}
    assert "out_of_range_dropped=2" in row["quality_flags"]
    assert local_bigquery.rejected("rejected_id = @id", id=refused.json()["rejected_id"])


@pytest.mark.parametrize("status", [400, 500])
def test_a_poison_row_does_not_block_its_neighbours(faulty_collector, fault_injector, local_bigquery, tag, status):
    """A value that makes BigQuery fail the whole call (400 as BigQuery does, 500 as the local one does): the
    innocent requests that share the call through group commit are stored, the poison is kept as refused."""
    poison = f"poison-{uuid.uuid4().hex[:8]}"
    fault_injector.delay(0.2)  # calls stay on the wire long enough for requests to gather
    fault_injector.poison(poison, status)

    def send(k: int):
        label = poison if k == 5 else f"ok-{k}"
        return k, faulty_collector.post({"event": "open", "bot_id": tag, "detail": {"label": label}})

    with ThreadPoolExecutor(12) as pool:
        answers = dict(pool.map(send, range(12)))
    mixed = faulty_collector.post(
        {"bot_id": tag, "events": [{"event": "open", "detail": {"label": x}} for x in ("ok-a", poison, "ok-b")]}
    )
    fault_injector.reset()
    for k, answer in answers.items():
        if k == 5:
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["reason"] == "bigquery_refused"
        else:
            assert answer.status_code == 200, (k, answer.text)
    assert mixed.status_code == 207, mixed.text
    assert [r["stored"] for r in mixed.json()["results"]] == [True, False, True]
    labels = sorted(row["label"] for row in local_bigquery.events("bot_id = @tag", tag=tag))
    assert labels == sorted([f"ok-{k}" for k in range(12) if k != 5] + ["ok-a", "ok-b"])
    kept = local_bigquery.rejected("reason = 'bigquery_refused' AND raw_payload LIKE @p", p=f"%{poison}%")
    assert len(kept) == 2 and all("fails every insert" in row["reason_detail"] for row in kept)


def test_bigquery_down_is_still_an_outage_not_a_poison(faulty_collector, fault_injector, tag):
    fault_injector.fail(500)
    answers = [faulty_collector.post({"bot_id": tag, "events": [{"event": "open"}, {"event": "close"}]})]
    answers.append(faulty_collector.post({"event": "open", "bot_id": tag}, headers={"Origin": ORIGIN}))
    assert [a.status_code for a in answers] == [503, 503]
    assert all(a.json()["error"]["reason"] == "storage_unavailable" for a in answers)
