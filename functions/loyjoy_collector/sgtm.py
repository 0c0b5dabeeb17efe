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
DROPPED = frozenset({"ip_override", "user_agent", "uid", "user_id", "screen_resolution", *NAME_KEYS, *CATEGORY_KEYS,
                     *ACTION_KEYS, *LABEL_KEYS})  # fmt: skip


class ProtocolError(ValueError):
    """Input that the protocol cannot carry: (reason, detail)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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
    params = dict(query)
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
            except ValueError as exc:
                raise ProtocolError("invalid_json", f"pixel data: {exc}") from None
    elif mimetype == "application/x-www-form-urlencoded":
        payload = dict(parse_qsl(body, keep_blank_values=True, max_num_fields=500))
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


def ga4_hits(query: str, body: str) -> list[dict[str, str]]:
    """One hit per body line (or the query string alone), each merged with the query string."""
    shared = dict(parse_qsl(query, keep_blank_values=True, max_num_fields=500))
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        return [shared]
    return [{**shared, **dict(parse_qsl(line, keep_blank_values=True, max_num_fields=500))} for line in lines]


def ga4_to_fields(hit: dict[str, str]) -> dict[str, Any]:
    """A GA4 hit as named fields: `en` plus its event parameters (ep.* strings, epn.* numbers); user
    properties (up.*, upn.*) under `user_properties`; the measurement id as `measurement_id`."""
    if not hit.get("en"):
        raise ProtocolError("missing_event", "a GA4 hit needs `en` (the event name)")
    if hit.get("v", "2") != "2":
        raise ProtocolError("invalid_field", f"v={hit['v']}: only the GA4 protocol (v=2) is supported")
    fields: dict[str, Any] = {"event_name": hit["en"]}
    user: dict[str, Any] = {}
    for key, value in hit.items():
        prefix, _, name = key.partition(".")
        if not name or prefix not in ("ep", "epn", "up", "upn"):
            continue
        target = fields if prefix.startswith("e") else user
        if prefix.endswith("n"):
            try:
                target[name] = float(value) if "." in value else int(value)
            except ValueError:
                raise ProtocolError("invalid_field", f"{key}={value!r} is not a number") from None
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
    for source, target in (("cid", "ga_client_id"), ("dl", "page_location"), ("dr", "page_referrer"),
                           ("dt", "page_title"), ("ul", "language")):  # fmt: skip
        if hit.get(source):
            context[target] = hit[source]
    if hit.get("cid"):
        context["client_id"] = hit["cid"]
    if hit.get("sid"):
        if not hit["sid"].isdigit():
            raise ProtocolError("invalid_field", f"sid={hit['sid']!r} is not a GA4 session id")
        context["ga_session_id"] = int(hit["sid"])
        context["session_id"] = hit["sid"]
    consent = _consent(hit)
    if consent:
        context["consent"] = {"analytics_storage": consent}
    return context
