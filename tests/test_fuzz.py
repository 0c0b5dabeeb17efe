"""Generated traffic (Hypothesis) against the real function and the local BigQuery, every protocol.

Each example is a few requests sent at once (so group commit mixes them): valid events, mutated ones and
garbage, for `/`, `/data` (POST and pixels) and `/g/collect`, with personal values planted at random depths,
under keys of six languages, in typed fields, escaped and damaged. Asserted per request: no 5xx, every event
the answer calls stored is stored, every refusal names a kept record. Asserted at the end: each stored event
is there exactly once, and no planted value is in any column of either table or in the collector's log.

CI runs a small profile (FUZZ_EXAMPLES, default 25); `bash scripts/fuzz` runs a large one and prints figures.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ORIGIN, start_collector, stop

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"  # CI: the same examples every run; scripts/fuzz: new ones
PERSONAL_KEYS = [
    "vorname",
    "Nachname",
    "telefon",
    "Handynummer",
    "strasse",
    "PLZ",
    "geburtsdatum",
    "first_name",
    "lastName",
    "phone",
    "mobile_phone",
    "address",
    "prénom",
    "nom",
    "téléphone",
    "adresse",
    "nome",
    "cognome",
    "telefono",
    "indirizzo",
    "nombre",
    "apellidos",
    "teléfono",
    "dirección",
    "voornaam",
    "achternaam",
    "telefoon",
    "adres",
    "antwort",
    "answer",
    "message",
    "free_text",
]
ALLOWED_KEYS = ["label", "process_name", "sub_process_name", "step", "topic", "type", "value", "url"]
OTHER_KEYS = ["feld_7", "customField", "q1", "Eingabe", "réponse", "data", "x"]


# ------------------------------------------------------------------------------------ planted values


@dataclass(frozen=True)
class Plant:
    """A personal value as planted (`text`) and what of it must never be found (`markers`)."""

    text: str
    markers: tuple[str, ...]
    kind: str
    by_value: bool = True  # found by its shape; False: only its key gives it away (a name)


def _marker(draw: st.DrawFn, prefix: str) -> str:
    return prefix + draw(st.text("bcdfghjkmnpqrstvwxz", min_size=7, max_size=7))


def _iban(bank: int, account: int) -> str:
    bban = f"{bank:08d}{account:010d}"
    check = 98 - int(bban + "131400") % 97  # DE = 13 14, then 00
    return f"DE{check:02d}{bban}"


@st.composite
def plants(draw: st.DrawFn) -> Plant:
    kind = draw(st.sampled_from(["email", "email", "jwt", "phone", "iban", "name", "street"]))
    if kind == "email":
        local = _marker(draw, "pz")
        tag = draw(st.sampled_from(["", "+news", ".x"]))
        damage = draw(st.sampled_from(["", "\ufffd", "\x00", "\u200b"]))
        domain = draw(st.sampled_from(["example.com", "bücher.example", "mail.example.co.uk", "xn--bcher-kva.example"]))
        at = draw(st.sampled_from(["@", "@", "%40", "\\u0040", "&#64;", "\uff20"]))
        text = f"{local}{tag}{damage}{at}{domain}"
        if draw(st.booleans()):
            text = text.upper()
        return Plant(text, (local, local.upper()), kind)
    if kind == "jwt":
        local = _marker(draw, "jz")
        claims = json.dumps({"email": f"{local}@example.com", "given_name": local}).encode()
        segment = base64.urlsafe_b64encode(claims).decode().rstrip("=")
        header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        if draw(st.booleans()):  # one byte of the header replaced: the whole-token pattern no longer fits
            at = draw(st.integers(3, len(header) - 1))
            header = header[:at] + "\ufffd" + header[at + 1 :]
        return Plant(f"{header}.{segment}.c2lnbmF0dXJl", (segment[:24], segment[-24:], local), kind)
    if kind == "phone":
        # nine digits: seven could turn up in a random UUID among ten thousand (a false alarm seen once)
        digits = str(draw(st.integers(300_000_000, 999_999_999)))
        text = draw(
            st.sampled_from(
                [
                    f"+49 170 {digits}",
                    f"+4917{digits}0",
                    f"0170 {digits}",
                    f"0049 (0)30 {digits}",
                    f"+41 79 {digits[:3]} {digits[3:5]} {digits[5:]}",
                    f"+33 6 {digits[:2]} {digits[2:4]} {digits[4:6]} {digits[6:]}0",
                    f"030/{digits}",
                ]
            )
        )
        return Plant(text, (text, digits), kind)
    if kind == "iban":
        text = _iban(draw(st.integers(10_000_000, 99_999_999)), draw(st.integers(10**9, 10**10 - 1)))
        if draw(st.booleans()):
            text = " ".join(text[i : i + 4] for i in range(0, len(text), 4))
        return Plant(text, (text, text.replace(" ", "")[4:]), kind)
    if kind == "street":
        name = _marker(draw, "Zs")
        text = f"{name}{draw(st.sampled_from(['strasse', 'straße', 'weg', 'gasse', 'straat']))} {draw(st.integers(1, 200))}"
        return Plant(text, (name,), kind)
    name = _marker(draw, "Zn")
    return Plant(f"{name} {_marker(draw, 'Zm')}", (name,), kind, by_value=False)


# --------------------------------------------------------------------------------------- structures


@st.composite
def placed(draw: st.DrawFn, plant: Plant) -> dict[str, Any]:
    """A `detail`-like object with the plant at a random depth: by-value plants under any key, names only under
    keys that are not analytical (no shape tells a name typed into `label` from a button's text)."""
    keys = PERSONAL_KEYS + OTHER_KEYS + (ALLOWED_KEYS if plant.by_value else [])
    value: Any = plant.text
    if draw(st.booleans()) and plant.by_value:
        value = f"{draw(st.sampled_from(['Ruf mich an: ', 'Kontakt ', 'mail: ', '']))}{value} danke"
    for _ in range(draw(st.integers(0, 4))):
        wrapper = draw(st.sampled_from(["dict", "list", "allowed"]))
        if wrapper == "list":
            value = [value]
        else:
            key = draw(st.sampled_from(["events", "user_data", "user_properties"] if wrapper == "allowed" else keys))
            value = {key: value}
    key = draw(st.sampled_from(keys))
    filler = draw(st.dictionaries(st.sampled_from(ALLOWED_KEYS), st.integers(-5, 5) | st.text(max_size=8), max_size=3))
    return filler | {key: value}


@dataclass
class Request:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    plants: list[Plant]
    tag: str
    loyjoy_hits: int = 0  # GA4 hits that must land (204 has no per-event answer)


def typed_field(draw: st.DrawFn, plant: Plant) -> dict[str, Any]:
    where = draw(st.sampled_from(["client_id", "session_id", "page_title", "page_location", "page_referrer", "utm"]))
    if where == "page_location":
        return {
            where: f"https://shop.example.com/kontakt?{quote(draw(st.sampled_from(PERSONAL_KEYS)))}={quote(plant.text)}"
        }
    if where == "page_referrer":
        return {where: f"https://mail.example.net/read/{quote(plant.text, safe='')}"}
    if where == "utm":
        return {"utm": {"content": plant.text[:256]}}
    return {where: plant.text[:128]}


@st.composite
def loyjoy_request(draw: st.DrawFn) -> Request:
    tag = "fz" + uuid.uuid4().hex[:10]
    garden = draw(st.lists(plants(), min_size=1, max_size=3))
    events = []
    for plant in garden:
        event: dict[str, Any] = {
            "event": draw(st.sampled_from(["open", "customer", "sign_in", "message_received", "link_clicked"])),
            "bot_id": tag,
            "detail": draw(placed(plant)),
        }
        if plant.by_value and draw(st.booleans()):
            event |= typed_field(draw, plant)
        mutation = draw(st.sampled_from(["none", "none", "none", "name", "type", "event_id", "range", "missing"]))
        if mutation == "name":
            event["event"] = draw(st.sampled_from(["Not A Name", "", "x" * 200, "ö"]))
        elif mutation == "type":
            event[draw(st.sampled_from(["client_id", "ts", "detail", "consent"]))] = draw(
                st.sampled_from([12, [1], True, "yesterday", {"a": 1}])
            )
        elif mutation == "event_id":
            event["event_id"] = plant.text if plant.by_value else "short"
        elif mutation == "range":
            event["ga_session_id"] = draw(st.sampled_from([2**64, -1, 10**30]))
        elif mutation == "missing":
            del event["event"]
        events.append(event)
    body = json.dumps({"events": events} if len(events) > 1 or draw(st.booleans()) else events[0], ensure_ascii=False)
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "bytes", "garbage"]))
    raw = body.encode()
    if damage == "truncate":
        raw = raw[: draw(st.integers(1, max(1, len(raw) - 1)))]
    elif damage == "bytes":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + b"\xff\xfe" + raw[at + 2 :]
    elif damage == "garbage":
        raw = draw(st.binary(max_size=64)) + raw
    content_type = draw(st.sampled_from(["text/plain", "application/json", "text/plain;charset=UTF-8"]))
    return Request("POST", "/", raw, {"Content-Type": content_type}, garden, tag)


@st.composite
def data_request(draw: st.DrawFn) -> Request:
    tag = "fz" + uuid.uuid4().hex[:10]
    plant = draw(plants())
    hit = {
        "event_name": "loyjoy",
        "gaEventCategory": "loyjoy",
        "gaEventAction": "Kontakt",
        "gaEventLabel": draw(st.sampled_from(["signin", "customer", "newsletter_opt_in"])),
        "bot_id": tag,
        "client_id": "dc-" + tag,
        "page_location": "https://shop.example.com/",
    }
    hit |= draw(placed(plant))
    if draw(st.booleans()):
        hit["user_data"] = {"email_address": f"{_marker(draw, 'ud')}@example.com", "phone_number": plant.text}
    plants_here = [plant]
    if "user_data" in hit:
        address = hit["user_data"]["email_address"]
        plants_here.append(Plant(address, (address.split("@")[0],), "email"))
    if draw(st.booleans()):
        query = urlencode({"dtcd": json.dumps(hit, ensure_ascii=False)})
        return Request("GET", f"/data?{query}", None, {}, plants_here, tag)
    body = json.dumps(draw(st.sampled_from([hit, [hit]])), ensure_ascii=False).encode()
    if draw(st.integers(0, 5)) == 0:
        body = body[: len(body) // 2]
    return Request("POST", "/data", body, {"Content-Type": "text/plain;charset=UTF-8"}, plants_here, tag)


@st.composite
def ga4_request(draw: st.DrawFn) -> Request:
    tag = "fz" + uuid.uuid4().hex[:10]
    plant = draw(plants())
    key = draw(st.sampled_from(PERSONAL_KEYS + (OTHER_KEYS + ALLOWED_KEYS if plant.by_value else [])))
    shared = {
        "v": "2",
        "tid": "G-FUZZ1",
        "cid": "123.456",
        "dl": f"https://shop.example.com/?{quote(key)}={quote(plant.text)}",
    }
    hits = [
        {
            "en": "loyjoy",
            "ep.gaEventCategory": "loyjoy",
            "ep.gaEventLabel": "signin",
            "ep.bot_id": tag,
            f"ep.{key}": plant.text,
        },
        {"en": "page_view", f"ep.{key}": plant.text},
    ]
    if draw(st.booleans()):
        hits.append(
            {
                "en": "loyjoy",
                "ep.gaEventCategory": "loyjoy",
                "ep.gaEventLabel": "open",
                "ep.bot_id": tag,
                "epn.step": draw(st.sampled_from(["3", "x", "1e999"])),
            }
        )
    landing = 1 + sum(1 for hit in hits[2:] if hit["epn.step"] == "3")
    if draw(st.booleans()):
        return Request("GET", "/g/collect?" + urlencode(shared | hits[0]), None, {}, [plant], tag, loyjoy_hits=1)
    body = "\n".join(urlencode(hit) for hit in hits).encode()
    path = "/g/collect?" + urlencode(shared)
    return Request("POST", path, body, {"Content-Type": "text/plain;charset=UTF-8"}, [plant], tag, loyjoy_hits=landing)


requests_st = st.lists(
    st.one_of(loyjoy_request(), loyjoy_request(), data_request(), ga4_request()), min_size=1, max_size=4
)


# ------------------------------------------------------------------------------------------- the run


@dataclass
class Ledger:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    stored_ids: list[str] = field(default_factory=list)
    rejected_ids: list[str] = field(default_factory=list)
    ga4_tags: dict[str, int] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)  # marker -> kind
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def fuzz_collector(local_bigquery):
    running = start_collector(local_bigquery.url, "fuzz-collector", THREADS="8")
    try:
        yield running, running.log
    finally:
        stop(running.process)


def send(url: str, request: Request) -> requests.Response:
    headers = {"Origin": ORIGIN, **request.headers}
    return requests.request(request.method, url + request.path, data=request.body, headers=headers, timeout=60)


def check_answer(request: Request, answer: requests.Response, ledger: Ledger) -> None:
    ledger.statuses[answer.status_code] += 1
    where = f"{request.method} {request.path[:60]} -> {answer.status_code}"
    assert answer.status_code < 500, f"{where}: {answer.text[:300]}"
    if request.path.startswith("/g/collect"):
        if answer.status_code == 204:
            ledger.ga4_tags[request.tag] = request.loyjoy_hits
        else:
            assert answer.json().get("rejected_id") or answer.json().get("results"), where
        return
    if answer.headers.get("Content-Type", "").startswith("image/gif"):
        return  # a pixel: checked by its rows
    body = answer.json()
    if request.path.startswith("/data") and answer.status_code == 200:
        answers = body if isinstance(body, list) else [body]
        ledger.stored_ids.extend(item["unique_event_id"] for item in answers)
        return
    if "results" in body:
        for result in body["results"]:
            if result["stored"]:
                ledger.stored_ids.append(result["event_id"])
            else:
                assert result.get("rejected_id") and result.get("reason"), where
                ledger.rejected_ids.append(result["rejected_id"])
        return
    assert 400 <= answer.status_code < 500 and body["error"]["reason"], where
    if answer.status_code != 403:
        assert body.get("rejected_id"), where
        ledger.rejected_ids.append(body["rejected_id"])


def test_generated_traffic_loses_nothing_and_leaks_nothing(fuzz_collector, local_bigquery):
    collector, log = fuzz_collector
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
    @given(batch=requests_st)
    def one_batch(batch: list[Request]) -> None:
        for request in batch:
            for plant in request.plants:
                for marker in plant.markers:
                    ledger.markers[marker] = plant.kind
        with ThreadPoolExecutor(len(batch)) as pool:
            answers = list(pool.map(lambda r: send(collector.url, r), batch))
        ledger.sent += len(batch)
        for request, answer in zip(batch, answers, strict=True):
            check_answer(request, answer, ledger)

    one_batch()
    elapsed = time.monotonic() - started

    counts = Counter(
        row["event_id"]
        for row in local_bigquery.query(
            f"SELECT event_id FROM `{local_bigquery.table('events')}` WHERE event_id IN UNNEST(@ids)",
            ids=ledger.stored_ids,
        )
    )
    # An id acknowledged k times (a sender that reuses ids says "the same event": the analyst tables dedupe) is stored
    # at least once and at most k times; more would be the collector's own duplicate.
    acknowledged = Counter(ledger.stored_ids)
    missing = [i for i in acknowledged if counts[i] == 0]
    doubled = [i for i in acknowledged if counts[i] > acknowledged[i]]
    kept = {
        row["rejected_id"]
        for row in local_bigquery.query(
            f"SELECT rejected_id FROM `{local_bigquery.table('events_rejected')}` WHERE rejected_id IN UNNEST(@ids)",
            ids=ledger.rejected_ids,
        )
    }
    lost_refusals = [i for i in ledger.rejected_ids if i not in kept]
    ga4_rows = Counter(
        row["bot_id"]
        for row in local_bigquery.query(
            f"SELECT bot_id FROM `{local_bigquery.table('events')}` WHERE bot_id IN UNNEST(@tags)",
            tags=list(ledger.ga4_tags),
        )
    )
    ga4_short = {tag: (n, ga4_rows[tag]) for tag, n in ledger.ga4_tags.items() if ga4_rows[tag] != n}

    text = json.dumps(
        local_bigquery.query(f"SELECT * FROM `{local_bigquery.table('events')}`")
        + local_bigquery.query(f"SELECT * FROM `{local_bigquery.table('events_rejected')}`"),
        default=str,
        ensure_ascii=False,
    )
    logged = log.read_text(errors="replace")
    found = {marker: kind for marker, kind in ledger.markers.items() if marker in text or marker in logged}

    print(
        f"\nfuzz: {ledger.sent} requests in {elapsed:.0f} s, statuses {dict(sorted(ledger.statuses.items()))}, "
        f"{len(ledger.stored_ids)} events acknowledged ({len(missing)} missing, {len(doubled)} stored twice), "
        f"{len(ledger.rejected_ids)} refusals named ({len(lost_refusals)} not kept), "
        f"{len(ledger.ga4_tags)} GA4 requests ({len(ga4_short)} short), "
        f"{len(ledger.markers)} planted values ({len(found)} found: {Counter(found.values())})"
    )
    assert not missing and not doubled, (missing[:5], doubled[:5])
    assert not lost_refusals, lost_refusals[:5]
    assert not ga4_short, list(ga4_short.items())[:5]
    where = {m: (text + logged)[max(0, (text + logged).find(m) - 300) : (text + logged).find(m) + 100] for m in found}
    assert not found, "\n\n".join(f"{m}: {w}" for m, w in list(where.items())[:5])
    assert ledger.sent >= EXAMPLES
