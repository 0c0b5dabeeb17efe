"""Server-side GTM protocols: Stape's Data Tag/Data Client and GA4's /g/collect, mapped onto the snippet's
event shape so one validation, privacy and storage path serves all three.

A LoyJoy event is recognised however it travels: LoyJoy's GTM snippet pushes `event: 'loyjoy'` with
`gaEventCategory: 'loyjoy'`, `gaEventAction: <process name>`, `gaEventLabel: <event>`; its newer examples push
`event_category: 'LoyJoy Chat'`, `event_action: <process name>`, `event_label: '<event>[/<label>]'`; a tag may
also send `loyjoy_<event>` as the event name. Anything else (a GA4 page_view) is not a LoyJoy event.
"""

from __future__ import annotations

import base64
import json
import random
import time
from typing import Any
from urllib.parse import parse_qsl

# 1x1 transparent GIF: what pixel requests are answered with.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

LOYJOY_CATEGORIES = frozenset({"loyjoy", "loyjoy chat"})
NAME_KEYS = ("event_name", "eventName", "event", "e_n")
CATEGORY_KEYS = ("gaEventCategory", "event_category", "eventCategory")
ACTION_KEYS = ("gaEventAction", "event_action", "eventAction")
LABEL_KEYS = ("gaEventLabel", "event_label", "eventLabel")
# Context that becomes typed columns; everything else of a LoyJoy hit goes to `detail` (scrubbed there).
CONTEXT_KEYS = {
    "client_id": "client_id",
    "page_location": "page_location",
    "url": "page_location",
    "href": "page_location",
    "page_referrer": "page_referrer",
    "page_title": "page_title",
    "language": "language",
    "bot_id": "bot_id",
    "process_id": "process_id",
    "tenant_id": "tenant_id",
}
DROPPED = frozenset(
    {
        "ip_override",
        "user_agent",
        "uid",
        "user_id",
        "screen_resolution",
        *NAME_KEYS,
        *CATEGORY_KEYS,
        *ACTION_KEYS,
        *LABEL_KEYS,
    }
)


MAX_FIELDS = 500  # parameters of one query, form body or GA4 line: gtag sends a few dozen


class ProtocolError(ValueError):
    """Input that the protocol cannot carry: (reason, detail), and the status that refuses it."""

    def __init__(self, reason: str, detail: str, status: int = 400, payload: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.payload = payload  # what was refused, when it is less than the whole request (a GA4 body line)


def parse_fields(text: str, where: str) -> dict[str, str]:
    """A query string or form body as fields, refused past MAX_FIELDS (parse_qsl raises a bare ValueError)."""
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError:
        raise ProtocolError("too_many_fields", f"{where}: more than {MAX_FIELDS} fields", 413) from None


def _check_field_count(count: int, where: str) -> None:
    if count > MAX_FIELDS:
        raise ProtocolError("too_many_fields", f"{where}: {count} fields; the limit is {MAX_FIELDS}", 413)


def ascii_digits(text: str) -> bool:
    """`str.isdigit()` is true for '²', '٣' and full-width digits, which `int()` refuses or reads as numbers
    no sender meant: identifiers and counts are ASCII."""
    return text.isascii() and text.isdigit()


def parse_number(text: str) -> int | float:
    """A GA4 numeric parameter (`epn.*`): ASCII decimal, finite, within what BigQuery's JSON holds.

    `int()` and `float()` also take '1_000', ' 7 ', '٣', 'nan' and '1e999' (infinity, which JSON cannot carry).
    """
    body = text[1:] if text.startswith("-") else text
    whole, dot, fraction = body.partition(".")
    if len(text) > 32 or not ascii_digits(whole) or (dot and not ascii_digits(fraction)):
        raise ValueError(text)
    if dot:
        return float(text)
    number = int(text)
    if not -(2**63) <= number < 2**63:
        raise ValueError(text)
    return number


def unique_event_id() -> str:
    """The Data Client's id format: <unix ms>_<9 digits>."""
    return f"{int(time.time() * 1000)}_{random.randrange(10**8, 10**9)}"


def _first(fields: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = fields.get(key)
        if value not in (None, ""):
            return value
    return None


def loyjoy_event(fields: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """(event, process_name, label) when `fields` is a LoyJoy event, else None."""
    name = _first(fields, NAME_KEYS)
    category = _first(fields, CATEGORY_KEYS)
    action = _first(fields, ACTION_KEYS)
    raw_label = _first(fields, LABEL_KEYS)
    if isinstance(name, str) and name.startswith("loyjoy_") and len(name) > 7:
        return name[7:], str(action) if action is not None else None, str(raw_label) if raw_label else None
    is_loyjoy = name == "loyjoy" or (isinstance(category, str) and category.strip().lower() in LOYJOY_CATEGORIES)
    if not is_loyjoy:
        return None
    label_text = str(raw_label) if raw_label is not None else ""
    event, _, label = label_text.partition("/")
    return event.strip(), str(action) if action is not None else None, label.strip() or None


def to_event(
    fields: dict[str, Any], protocol: str, event_id: str | None = None, keep_others: bool = False
) -> dict[str, Any] | None:
    """The snippet-protocol form of one hit; None when it is not a LoyJoy event (unless `keep_others`)."""
    recognised = loyjoy_event(fields)
    if recognised is None:
        name = _first(fields, NAME_KEYS)
        if not keep_others or name is None:
            return None
        recognised = (name, None, None)
    event, process_name, label = recognised
    mapped: dict[str, Any] = {"event": event, "sdk": protocol}
    detail: dict[str, Any] = {}
    for key, value in fields.items():
        if key in CONTEXT_KEYS and isinstance(value, str) and value:
            mapped.setdefault(CONTEXT_KEYS[key], value)
        elif key not in DROPPED and not key.startswith(("x-ga-", "x-sst-", "_")) and value not in (None, ""):
            detail[key] = value
    if process_name is not None:
        detail["process_name"] = process_name
    if label is not None:
        detail["label"] = label
    mapped["detail"] = detail
    if event_id:
        mapped["event_id"] = event_id
    return mapped


# ------------------------------------------------------------------------------------- Data Tag / Client


def data_payload(
    method: str, body: str, mimetype: str, query: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], bool]:
    """The Data Tag's event(s): a JSON body, a form body, or a pixel's `dtcd` (JSON) / `dtdc` (base64 JSON)."""
    pairs = list(query)
    _check_field_count(len(pairs), "the query string")
    params = dict(pairs)
    if method == "GET":
        encoded = params.pop("dtdc", None)
        raw = params.pop("dtcd", None)
        if encoded is not None:
            try:
                padded = encoded + "=" * (-len(encoded) % 4)
                altchars = b"-_" if "-" in encoded or "_" in encoded else None
                raw = base64.b64decode(padded, altchars=altchars, validate=True).decode()
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError("invalid_base64", f"dtdc is not base64 JSON: {exc}") from None
        payload: Any = params
        if raw is not None:
            try:
                payload = json.loads(raw)
            except RecursionError:
                raise ProtocolError("nesting_too_deep", "the pixel's JSON nests too deeply") from None
            except ValueError as exc:
                raise ProtocolError("invalid_json", f"pixel data: {exc}") from None
    elif mimetype == "application/x-www-form-urlencoded":
        payload = parse_fields(body, "the form body")
    else:
        if not body.strip():
            raise ProtocolError("empty_body", "the body is empty; send the event as JSON")
        try:
            payload = json.loads(body)
        except RecursionError:
            raise ProtocolError("nesting_too_deep", "the JSON nests too deeply") from None
        except ValueError as exc:
            raise ProtocolError("invalid_json", str(exc)) from None
    items = payload if isinstance(payload, list) else [payload]
    if not items or not all(isinstance(item, dict) for item in items):
        raise ProtocolError("invalid_shape", "send an event object or a non-empty array of event objects")
    # Query parameters are merged into each event; the body's own fields win.
    return [{**params, **item} for item in items], isinstance(payload, list)


# --------------------------------------------------------------------------------------------- GA4


def _consent(params: dict[str, str]) -> str | None:
    """analytics_storage from `gcs` (G1<ad><analytics>) or, failing that, `gcd` (Consent Mode v2)."""
    gcs = params.get("gcs", "")
    if len(gcs) == 4 and gcs.startswith("G1") and gcs[3] in "01":
        return "granted" if gcs[3] == "1" else "denied"
    gcd = params.get("gcd", "")
    if len(gcd) > 4:
        return {"r": "granted", "t": "granted", "v": "granted", "p": "denied", "q": "denied", "u": "denied"}.get(gcd[4])
    return None


def ga4_hits(query: str, body: str) -> list[dict[str, str] | ProtocolError]:
    """One hit per body line (or the query string alone), each merged with the query string.

    A query the protocol cannot carry refuses the request (raised); a line it cannot carry stands in the list
    as its error, so that the other lines' hits are still stored."""
    shared = parse_fields(query, "the query string")
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        return [shared]
    hits: list[dict[str, str] | ProtocolError] = []
    for number, line in enumerate(lines, 1):
        try:
            hits.append({**shared, **parse_fields(line, f"body line {number}")})
        except ProtocolError as exc:
            hits.append(ProtocolError(exc.reason, exc.detail, exc.status, line))
    return hits


def ga4_to_fields(hit: dict[str, str]) -> dict[str, Any]:
    """A GA4 hit as named fields: `en` plus its event parameters (ep.* strings, epn.* numbers); user
    properties (up.*, upn.*) under `user_properties`; the measurement id as `measurement_id`."""
    if not hit.get("en"):
        raise ProtocolError("missing_event", "a GA4 hit needs `en` (the event name)")
    if hit.get("v", "2") != "2":
        raise ProtocolError("invalid_field", "v: only the GA4 protocol (v=2) is supported")
    fields: dict[str, Any] = {"event_name": hit["en"]}
    user: dict[str, Any] = {}
    for key, value in hit.items():
        prefix, _, name = key.partition(".")
        if not name or prefix not in ("ep", "epn", "up", "upn"):
            continue
        target = fields if prefix.startswith("e") else user
        if prefix.endswith("n"):
            try:
                target[name] = parse_number(value)
            except ValueError:
                raise ProtocolError("invalid_field", f"{key}: not a number") from None
        else:
            target[name] = value
    if user:
        fields["user_properties"] = user
    if hit.get("tid"):
        fields["measurement_id"] = hit["tid"]
    return fields


def ga4_context(hit: dict[str, str]) -> dict[str, Any]:
    """The GA4 ids and page context, under the snippet protocol's names."""
    context: dict[str, Any] = {}
    for source, target in (
        ("cid", "ga_client_id"),
        ("dl", "page_location"),
        ("dr", "page_referrer"),
        ("dt", "page_title"),
        ("ul", "language"),
    ):
        if hit.get(source):
            context[target] = hit[source]
    if hit.get("cid"):
        context["client_id"] = hit["cid"]
    if hit.get("sid"):
        if not ascii_digits(hit["sid"]) or len(hit["sid"]) > 19:
            raise ProtocolError("invalid_field", "sid: a GA4 session id is ASCII digits")
        context["ga_session_id"] = int(hit["sid"])
        if hit.get("cid"):  # a sid is its start second, which anyone can guess and other visitors share
            context["session_id"] = f"{hit['cid']}.{hit['sid']}"
    consent = _consent(hit)
    if consent:
        context["consent"] = {"analytics_storage": consent}
    return context
