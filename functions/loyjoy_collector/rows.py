"""Rows exactly as `schema/events.json` and `schema/events_rejected.json` describe them.

Values are taken as the sender gave them; `gate.py` makes every one of them safe on the way out, so nothing
here scrubs strings or clips them. Timestamps are RFC 3339 strings: BigQuery (and its local stand-in) reads
float epochs unreliably.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import __version__
from .catalog import normalise
from .enrich import page_parts, parse_user_agent, reconcile_clock
from .privacy.gate import Gate
from .privacy.ip import truncate_ip
from .privacy.keys import Scrubber
from .privacy.tally import Tally
from .protocol import KNOWN_FIELDS, LoyJoyEvent
from .schema import EVENTS, REJECTED
from .settings import Settings


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RequestContext:
    """What the HTTP request says about every event it carries."""

    received_at: datetime
    method: str
    path: str
    query: str
    content_type: str | None
    origin: str | None
    user_agent: str
    ip: str | None
    accept_language: str | None
    address: str | None = None  # the client's address as the platform saw it (rate limits), never stored
    replayed: bool = False  # signed with the key by the operator's replay: may carry the collector's own hashes


def _first_language(header: str | None) -> str | None:
    if not header:
        return None
    return header.split(",", 1)[0].split(";", 1)[0].strip()[:35] or None


def event_row(
    event: LoyJoyEvent,
    raw: dict[str, Any],
    ctx: RequestContext,
    settings: Settings,
    scrubber: Scrubber,
    protocol: str = "loyjoy",
    gate: Gate | None = None,
) -> dict[str, Any]:
    flags: list[str] = []
    tally = Tally()
    name, known = normalise(event.event)
    clock = reconcile_clock(
        ctx.received_at,
        event.ts,
        event.sent_at,
        max_age=timedelta(days=settings.max_event_age_days),
        max_future=timedelta(seconds=settings.max_future_skew_seconds),
    )
    flags.extend(clock.flags)
    if not raw.keys() <= KNOWN_FIELDS:
        flags.append("unknown_fields_ignored")
    if event.retry:
        flags.append("resent")  # sent before without a confirming answer: may be a copy (dedup by event_id)

    detail = scrubber.scrub(event.detail, tally, ctx.replayed) if event.detail is not None else None
    email_hash = detail.pop("email_hash", None) if detail else None
    if email_hash is None and detail and isinstance(detail.get("user_data"), dict):
        email_hash = detail["user_data"].get("email_hash")  # sGTM's user-provided data

    def from_detail(key: str) -> str | None:
        value = detail.get(key) if detail else None
        return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None

    consent = event.consent.analytics_storage if event.consent and event.consent.analytics_storage else None
    identified = consent != "denied"
    if not identified:
        flags.append("ids_dropped_no_consent")

    location = event.page_location or None
    page = page_parts(location)
    utm = dict(page.utm)
    if event.utm:
        utm.update({f"utm_{k}": v for k, v in event.utm.model_dump(exclude_none=True).items()})
    device = parse_user_agent(ctx.user_agent, server_side=protocol != "loyjoy")  # sGTM: the container's UA

    row = {
        "event_id": event.event_id or str(uuid.uuid4()),
        "event_name": name,
        "event_name_raw": event.event,
        "event_known": known,
        "event_ts": rfc3339(clock.event_ts),
        "received_at": rfc3339(ctx.received_at),
        "client_ts": rfc3339(clock.client_ts) if clock.client_ts else None,
        "client_sent_at": rfc3339(clock.client_sent_at) if clock.client_sent_at else None,
        "clock_skew_ms": clock.skew_ms,
        "client_seq": event.seq,
        "dropped_overflow": event.dropped.overflow if event.dropped else None,
        "dropped_quota": event.dropped.quota if event.dropped else None,
        "dropped_consent": event.dropped.consent if event.dropped else None,
        "delivered_later_page": event.later_page,
        "protocol": protocol,
        "tenant_id": event.tenant_id or from_detail("tenant_id"),
        "bot_id": event.bot_id or from_detail("bot_id"),
        "process_id": event.process_id or from_detail("process_id"),
        "process_name": from_detail("process_name"),
        "sub_process_name": from_detail("sub_process_name"),
        "label": from_detail("label"),
        "client_id": event.client_id if identified else None,
        "session_id": event.session_id if identified else None,
        "ga_client_id": event.ga_client_id if identified else None,
        "ga_session_id": event.ga_session_id if identified else None,
        "email_hash": email_hash,
        "consent_analytics": consent or "unknown",
        "page_location": location,
        "page_hostname": page.hostname,
        "page_path": page.path,
        "page_referrer": event.page_referrer or None,
        "page_title": event.page_title or None,
        "language": event.language or _first_language(ctx.accept_language),
        "utm_source": utm.get("utm_source"),
        "utm_medium": utm.get("utm_medium"),
        "utm_campaign": utm.get("utm_campaign"),
        "utm_term": utm.get("utm_term"),
        "utm_content": utm.get("utm_content"),
        "gclid": page.gclid,
        "browser": device.browser,
        "browser_version": device.browser_version,
        "os": device.os,
        "os_version": device.os_version,
        "device_type": device.device_type,
        "ip_truncated": truncate_ip(ctx.ip) if settings.ip_mode == "truncate" else None,
        "detail": detail,
        "quality_flags": flags,
        "sdk": event.sdk,
        "collector_version": __version__,
        "is_bot": device.is_bot,
    }
    return (gate or Gate(scrubber)).seal(EVENTS, row, tally)


def rejected_row(
    ctx: RequestContext,
    scrubber: Scrubber,
    *,
    reason: str,
    detail: str,
    status: int,
    protocol: str | None,
    payload: Any,
    raw_bytes: int | None,
    truncated: bool = False,
    event_index: int | None = None,
    event_id: str | None = None,
    event_name: str | None = None,
    gate: Gate | None = None,
) -> dict[str, Any]:
    """Parsed payloads keep only allowed keys (their replayable form); text payloads are scrubbed as text."""
    tally = Tally()
    kept = payload if isinstance(payload, str) else scrubber.scrub(payload, tally, ctx.replayed)
    row = {
        "rejected_id": str(uuid.uuid4()),
        "received_at": rfc3339(ctx.received_at),
        "reason": reason,
        "reason_detail": detail,
        "http_status": status,
        "protocol": protocol,
        "method": ctx.method,
        "path": ctx.path,
        "query": ctx.query or None,
        "content_type": ctx.content_type or None,
        "origin": ctx.origin or None,
        "user_agent": ctx.user_agent or None,
        "event_index": event_index,
        "event_id": event_id if isinstance(event_id, str) else None,
        "event_name": event_name if isinstance(event_name, str) else None,
        "raw_payload": kept,
        "raw_bytes": raw_bytes,
        "raw_truncated": truncated,
        "collector_version": __version__,
    }
    sealed = (gate or Gate(scrubber)).seal(REJECTED, row, tally)
    sealed["raw_truncated"] = truncated or "raw_payload" in tally.truncated
    return sealed
