"""Hostile input, round two, on the running stack: planted personal values of 50+ kinds on every protocol,
then every table of the dataset (raw, analyst, scratch) and every log line searched for them; and an
instance that keeps answering while crafted worst cases are in flight."""

from __future__ import annotations

import base64
import json
import random
import string
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests

from .conftest import DATASET, ORIGIN, PROJECT


@dataclass(frozen=True)
class Planted:
    kind: str
    text: str  # what is sent
    marker: str  # what must be found nowhere afterwards


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("123456789") for _ in range(count))


def _word(rng: random.Random) -> str:
    return "Zq" + "".join(rng.choice(string.ascii_lowercase) for _ in range(7))


def corpus(seed: int) -> list[Planted]:
    """Each kind with its own random marker, so that one run's values cannot be confused with another's."""
    rng = random.Random(seed)
    d7 = [_digits(rng, 7) for _ in range(30)]
    w = [_word(rng) for _ in range(30)]
    jwt_body = base64.urlsafe_b64encode(f'{{"email":"{w[0]}@example.com"}}'.encode()).decode().rstrip("=")
    secret_b64 = base64.b64encode(f"my name is {w[1]} Mustermann".encode()).decode()
    card = "4111111111111111"
    hidden_jwt = base64.urlsafe_b64encode(f'{{"email":"{w[25]}@example.com"}}'.encode()).decode().rstrip("=")
    zero_width_jwt = "\u200b".join(hidden_jwt[i : i + 8] for i in range(0, len(hidden_jwt), 8))
    fullwidth = "".join(chr(0xFF10 + int(c)) for c in d7[25])
    return [
        Planted("email", f"mail {w[2]}@example.com", w[2]),
        Planted("email_percent", f"{w[3]}%40example.com", w[3]),
        Planted("email_unicode_escape", f"{w[4]}\\u0040example.com", w[4]),
        Planted("email_html", f"{w[5]}&#64;example.com", w[5]),
        Planted("email_fullwidth", f"{w[6]}\uff20example.com", w[6]),
        Planted("email_at_dot", f"{w[7]}(at)example(dot)com", w[7]),
        Planted("email_brackets", f"{w[8]} [at] example [dot] org", w[8]),
        Planted("email_words", f"{w[9]} at example dot net", w[9]),
        Planted("jwt", f"eyJhbGciOiJIUzI1NiJ9.{jwt_body}.c2lnbmF0dXJl", jwt_body[:20]),
        Planted("base64_text", secret_b64, secret_b64[:16]),
        Planted("phone_intl", f"+49 170 {d7[0]}", d7[0]),
        Planted("phone_00_trunk", f"0049 (0)30 {d7[1]}", d7[1]),
        Planted("phone_national", f"0170 {d7[2]}", d7[2]),
        Planted("phone_area", f"(030) {d7[3]}", d7[3]),
        Planted("phone_nanp_dash", f"212-{d7[4][:3]}-{d7[4][3:]}", f"{d7[4][:3]}-{d7[4][3:]}"),
        Planted("phone_nanp_parens", f"(212) {d7[5][:3]}-{d7[5][3:]}", f"{d7[5][:3]}-{d7[5][3:]}"),
        Planted("phone_nanp_dots", f"212.{d7[6][:3]}.{d7[6][3:]}", f"{d7[6][:3]}.{d7[6][3:]}"),
        Planted("phone_grouped", f"6{d7[7][:2]} {d7[7][2:4]} {d7[7][4:6]} 78", f"{d7[7][2:4]} {d7[7][4:6]} 78"),
        Planted("phone_fullwidth", "0170 " + "".join(chr(0xFF10 + int(c)) for c in d7[8]), d7[8]),
        Planted("phone_plain_digits", f"tel: 0{d7[9]}55", d7[9]),
        Planted("iban", "DE89370400440532013000", "0532013000"),
        Planted("iban_spaced", "DE89 3704 0044 0532 0130 00", "0532 0130"),
        Planted("card_grouped", "4111 1111 1111 1111", "1111 1111 1111"),
        Planted("card_bare", card, card),
        Planted("street_de", f"{w[10]}strasse 12", f"{w[10]}strasse"),
        Planted("street_en", f"221 {w[11].capitalize()} Street", w[11].capitalize()),
        Planted("street_fr", f"12 rue de {w[12].capitalize()}", w[12].capitalize()),
        Planted("street_it", f"Via {w[13].capitalize()} 7", w[13].capitalize()),
        Planted("ipv4", f"from 198.51.{int(d7[10][:2])}.{int(d7[10][2:4])}", f"198.51.{int(d7[10][:2])}."),
        Planted("ipv6", f"addr 2001:db8:{d7[11][:4]}::1", f"2001:db8:{d7[11][:4]}"),
        Planted("url_password", f"https://shop.example.com/?password={w[14]}", w[14]),
        Planted("url_fragment_token", f"https://shop.example.com/cb#access_token={w[15]}", w[15]),
        Planted("url_customer", f"https://shop.example.com/?customer={w[16]}", w[16]),
        Planted("url_user", f"https://shop.example.com/konto?user={w[17]}&utm_source=nl", w[17]),
        Planted("url_utm_term", f"https://shop.example.com/?utm_term={w[18]}&utm_medium=cpc", w[18]),
        Planted("url_userinfo", f"https://{w[19]}:pw@shop.example.com/", w[19]),
        Planted("url_phone_in_path", f"https://shop.example.com/rueckruf/0170{d7[12]}", d7[12]),
        Planted("url_email_in_path", f"https://shop.example.com/u/{w[20]}@example.com/", w[20]),
        Planted("search_referrer", f"https://www.google.com/search?q={w[21]}+mustermann", w[21]),
        Planted("number_phone", f"4917{d7[13]}55", d7[13]),  # sent as a JSON number
        Planted("ga4_epn_phone", f"4917{d7[14]}56", d7[14]),  # sent as a GA4 numeric parameter
        Planted("language_name", f"{w[22]} Mustermann", w[22]),  # in Accept-Language / language
        Planted("event_name_phone", f"tel_0170{d7[15]}", d7[15]),  # as an event name
        Planted("refused_number", w[23], w[23]),  # a GA4 epn.* that is no number: its refusal
        # the German slash notation and its relatives (sent on every protocol: SLASH_AND_HIDDEN)
        Planted("phone_slash", f"089/{d7[16]}", d7[16]),
        Planted("phone_slash_spaced", f"089 / {d7[17][:3]} {d7[17][3:5]} {d7[17][5:]}", f"{d7[17][3:5]} {d7[17][5:]}"),
        Planted("phone_slash_intl_trunk", f"+49 (0)89 / {d7[18]}", d7[18]),
        Planted("phone_slash_intl", f"+49 89 / {d7[19]}", d7[19]),
        Planted("phone_slash_00", f"0049 89/{d7[20]}", d7[20]),
        Planted("phone_slash_parens", f"(089) / {d7[21]}", d7[21]),
        # invisible format characters and full-width forms inside a value
        Planted("email_zero_width", f"{w[24]}\u200b@example.com", w[24]),
        Planted("phone_zero_width", f"+49\u200b170 {d7[22]}", d7[22]),
        Planted("phone_nbsp", f"+49\u00a0170\u00a0{d7[23]}", d7[23]),
        Planted("phone_soft_hyphen", f"0170 {d7[24][:3]}\u00ad{d7[24][3:]}", f"{d7[24][:3]}\u00ad{d7[24][3:]}"),
        Planted("phone_bidi", f"+49 170 \u202e{d7[27]}\u202c", d7[27]),
        Planted("phone_fullwidth_plus", f"\uff0b\uff14\uff19\u3000\uff11\uff17\uff10\u3000{fullwidth}", d7[25]),
        Planted("jwt_zero_width", f"eyJhbGciOiJIUzI1NiJ9.{zero_width_jwt}.c2lnbmF0dXJl", zero_width_jwt[18:26]),
    ]


# Sent on every protocol, each in a request of its own: the snippet's, the Data Tag's, GA4's.
SLASH_AND_HIDDEN = (
    "phone_slash",
    "phone_zero_width",
    "email_zero_width",
    "phone_nbsp",
    "phone_soft_hyphen",
    "phone_bidi",
    "phone_fullwidth_plus",
    "jwt_zero_width",
    "phone_slash_spaced",
    "phone_slash_intl_trunk",
    "phone_slash_intl",
    "phone_slash_00",
    "phone_slash_parens",
)


def _everything(local_bigquery) -> str:
    """Every table of the dataset, every column, as one text."""
    rows: list[dict[str, Any]] = []
    for table in local_bigquery.client.list_tables(f"{PROJECT}.{DATASET}"):
        if table.table_type == "TABLE":
            rows += local_bigquery.query(f"SELECT * FROM `{PROJECT}.{DATASET}.{table.table_id}`")
    return json.dumps(rows, default=str, ensure_ascii=False)


def _context(text: str, marker: str) -> str:
    """Where a marker survived, to say so in the failure."""
    at = text.find(marker)
    return "" if at < 0 else text[max(0, at - 60) : at + len(marker) + 20]


def _send(collector, tag: str, planted: list[Planted]) -> list[requests.Response]:
    """Each value where its kind belongs, on all three protocols."""
    answers = []
    values = {p.kind: p.text for p in planted}
    # what a detector can find in free text (a name under `language` or a refused number's key cannot be)
    fields = ("number_phone", "ga4_epn_phone", "event_name_phone", "language_name", "refused_number")
    texts = [p.text for p in planted if p.kind not in fields]
    urls = [p.text for p in planted if p.kind.startswith(("url_", "search_"))]
    detail = {"bot_id": tag, "label": " | ".join(texts), "process_name": texts[0], "value": int(values["number_phone"])}
    event = {
        "event": "message_received",
        "bot_id": tag,
        "detail": detail,
        "page_location": urls[0],
        "page_referrer": values["search_referrer"],
        "page_title": " ".join(texts[1:10]),
        "language": values["language_name"],
    }
    answers.append(collector.post(event, headers={"Accept-Language": values["language_name"]}))
    for url in urls:
        answers.append(collector.post({"event": "open", "bot_id": tag, "page_location": url, "page_referrer": url}))
    answers.append(collector.post({"event": values["event_name_phone"], "bot_id": tag}))
    for text in texts:  # one event each, so no detector hides behind another's placeholder
        answers.append(collector.post({"event": "open", "bot_id": tag, "detail": {"label": text}}))
    # Stape's Data Tag
    data = {
        "event_name": "loyjoy_open",
        "bot_id": tag,
        "page_location": urls[1],
        "page_referrer": urls[2],
        "event_label": texts[5],
        "page_title": texts[6],
        "value": int(values["number_phone"]),
    }
    answers.append(collector.post(data, path="/data"))
    answers.append(
        requests.get(
            collector.url + "/data?" + urlencode({"dtcd": json.dumps(data)}), timeout=30, headers={"Origin": ORIGIN}
        )
    )
    # GA4
    hit = {
        "v": "2",
        "tid": "G-TEST",
        "cid": "555.666",
        "en": "loyjoy_open",
        "ep.bot_id": tag,
        "dl": urls[3],
        "dr": values["search_referrer"],
        "dt": texts[7],
        "ul": values["language_name"],
        "epn.value": values["ga4_epn_phone"],
        "ep.label": texts[8],
    }
    answers.append(
        requests.post(collector.url + "/g/collect?" + urlencode(hit), timeout=30, headers={"Origin": ORIGIN})
    )
    bad = hit | {"epn.value": values["refused_number"]}
    answers.append(
        requests.post(collector.url + "/g/collect?" + urlencode(bad), timeout=30, headers={"Origin": ORIGIN})
    )
    # a body that is no JSON: strict text
    answers.append(collector.post('{"event": "open", "detail": {"label": "' + " ".join(texts) + '"'))
    for kind in SLASH_AND_HIDDEN:
        text = values[kind]
        page = "https://shop.example.com/kontakt"
        answers.append(
            collector.post(data | {"event_label": text, "page_title": text, "page_location": page}, path="/data")
        )
        ga4 = hit | {"dl": page, "dt": text, "ep.label": text}
        answers.append(
            requests.post(collector.url + "/g/collect?" + urlencode(ga4), timeout=30, headers={"Origin": ORIGIN})
        )
    return answers


def test_fifty_kinds_of_planted_values_are_in_no_table_and_no_log_line(collector, local_bigquery, tag):
    planted = corpus(int(tag[1:9], 16))
    assert len({p.kind for p in planted}) >= 50
    answers = _send(collector, tag, planted)
    assert all(answer.status_code < 500 for answer in answers), [a.text for a in answers if a.status_code >= 500]
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) >= 40  # what was sent is there, scrubbed
    local_bigquery.refresh()  # the analyst tables and their scratch copies
    text = _everything(local_bigquery)
    logs = collector.log.read_text(errors="replace")
    found = [(p.kind, _context(text, p.marker) or _context(logs, p.marker)) for p in planted]
    survived = [(kind, where) for kind, where in found if where]
    assert survived == [], "\n".join(f"{kind}: {where!r}" for kind, where in survived)


def test_healthy_answers_while_eight_crafted_worst_cases_are_in_flight(collector, tag):
    """A 75-byte near phone number (+49, seventy ones, a letter) in a label, an Origin, a User-Agent and a path; maximal unparseable
    bodies of quotes and escapes, and of digits: eight at once, and /healthy asked meanwhile."""
    worst = "+49 " + "1" * 70 + "x"
    body = ('{"event":"open","detail":{"label":"' + '"\\' * 200_000)[: 512 * 1024 - 1]
    digits = "+49 " + "1" * (512 * 1024 - 8) + "x"

    def crafted(index: int) -> int:
        kind = index % 4
        if kind == 0:
            return collector.post({"event": "open", "bot_id": tag, "detail": {"label": worst}}).status_code
        if kind == 1:
            headers = {"User-Agent": worst, "Origin": "https://" + worst}
            return requests.post(collector.url + "/" + quote(worst), data="{}", headers=headers, timeout=60).status_code
        if kind == 2:
            return collector.post(body).status_code
        return collector.post(digits).status_code

    slowest = 0.0
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(crafted, index) for index in range(8)]
        time.sleep(0.05)
        while not all(future.done() for future in futures):
            start = time.perf_counter()
            assert requests.get(collector.url + "/healthy", timeout=10).status_code == 200
            slowest = max(slowest, time.perf_counter() - start)
            time.sleep(0.02)
        statuses = [future.result() for future in futures]
    assert all(status < 500 for status in statuses), statuses
    assert slowest < 0.1, f"/healthy took {slowest * 1000:.0f} ms"
