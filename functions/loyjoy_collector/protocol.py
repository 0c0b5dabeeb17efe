"""The snippet's ingest protocol: what one event may carry (documented in openapi.yaml).

The minimal valid event is what LoyJoy's listener receives, `{"event": evt, "detail": obj}`; everything
else is optional context. Types are strict (a number is no name), sizes are bounded, and errors are turned
into the machine-readable reasons the sender and the rejected-events table see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)

from .catalog import EVENT_NAME_PATTERN
from .schema import EVENTS, tables

COLUMN = tables()[EVENTS].limits  # the columns' maxLength: a field longer than its column is refused here


def _to_datetime(value: object) -> datetime:
    """RFC 3339 strings or epoch milliseconds; what JavaScript's Date gives most easily."""
    if isinstance(value, bool):
        raise ValueError("a timestamp is an RFC 3339 string or epoch milliseconds")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError("epoch milliseconds out of range") from exc
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("not an RFC 3339 timestamp") from exc
        try:  # year 1 east of UTC and year 9999 west of it are before and after what a datetime can hold
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("the timestamp is out of range in UTC") from exc
    raise ValueError("a timestamp is an RFC 3339 string or epoch milliseconds")


def _to_session_number(value: object) -> object:
    """GA4 session ids are digits; gtag keeps them as strings in cookies. ASCII digits only: `'²'.isdigit()`
    is true and `int('²')` fails."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return value


Timestamp = Annotated[datetime, BeforeValidator(_to_datetime)]
ID_LENGTH = 128
Id = Annotated[StrictStr, Field(min_length=1, max_length=ID_LENGTH)]
# LoyJoy's listener object names the bot and process too (rows.py takes them from there when the top level does
# not): held to the same limit, so that `detail` is no way around it into the analyst tables' dimensions.
DETAIL_IDS = ("tenant_id", "bot_id", "process_id")


def _detail_ids(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    for key in DETAIL_IDS:
        value = detail.get(key) if detail else None
        if isinstance(value, str) and not 1 <= len(value) <= ID_LENGTH:
            raise ValueError(f"{key} is an id of 1 to {ID_LENGTH} characters, like the top-level {key}")
    return detail


Text = Annotated[StrictStr, Field(max_length=8192)]


class Consent(BaseModel):
    """Google Consent Mode v2 names."""

    model_config = ConfigDict(extra="ignore")

    analytics_storage: Literal["granted", "denied"] | None = None
    ad_storage: Literal["granted", "denied"] | None = None


class Utm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: Annotated[StrictStr, Field(max_length=COLUMN["utm_source"])] | None = None
    medium: Annotated[StrictStr, Field(max_length=COLUMN["utm_medium"])] | None = None
    campaign: Annotated[StrictStr, Field(max_length=COLUMN["utm_campaign"])] | None = None
    term: Annotated[StrictStr, Field(max_length=COLUMN["utm_term"])] | None = None
    content: Annotated[StrictStr, Field(max_length=COLUMN["utm_content"])] | None = None


Count = Annotated[int, Field(ge=0, le=1_000_000_000, strict=True)]


class Dropped(BaseModel):
    """What the snippet knowingly lost since its last report: counts only, never the events."""

    model_config = ConfigDict(extra="ignore")

    overflow: Count | None = None  # the queue passed maxQueue: its oldest events went
    quota: Count | None = None  # lost with a page: storage full, or left before the script took the queue over
    consent: Count | None = None  # consent was refused: the events waiting for it were discarded


class LoyJoyEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Annotated[StrictStr, Field(pattern=EVENT_NAME_PATTERN.pattern)]
    detail: Annotated[dict[str, Any] | None, AfterValidator(_detail_ids)] = None
    event_id: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.:\-]{8,64}$")] | None = None
    ts: Timestamp | None = None
    sent_at: Timestamp | None = None
    tenant_id: Id | None = None
    bot_id: Id | None = None
    process_id: Id | None = None
    client_id: Id | None = None
    session_id: Id | None = None
    ga_client_id: Annotated[StrictStr, Field(max_length=COLUMN["ga_client_id"])] | None = None
    ga_session_id: (
        Annotated[int, BeforeValidator(_to_session_number), Field(ge=0, le=2**63 - 1, strict=True)] | None
    ) = None  # BigQuery's INT64: a larger number is refused here (invalid_field), not by BigQuery for its neighbours
    page_location: Text | None = None
    page_referrer: Text | None = None
    page_title: Text | None = None
    language: Annotated[StrictStr, Field(max_length=COLUMN["language"])] | None = None
    utm: Utm | None = None
    consent: Consent | None = None
    sdk: Annotated[StrictStr, Field(max_length=COLUMN["sdk"])] | None = None
    retry: Annotated[int, Field(ge=0, le=100_000, strict=True)] | None = None
    seq: Annotated[int, Field(ge=1, le=2**53, strict=True)] | None = None  # per client, for delivery_health
    dropped: Dropped | None = None
    later_page: StrictBool | None = None  # taken over from an earlier page's queue


KNOWN_FIELDS = frozenset(LoyJoyEvent.model_fields)


def explain(error: ValidationError) -> tuple[str, str]:
    """(reason, detail) for the first problem, named as the sender will understand it."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    if first["loc"][:1] == ("event",):
        if first["type"] == "missing":
            return "missing_event", "the field 'event' is required"
        return "invalid_event_name", f"event must be a string matching {EVENT_NAME_PATTERN.pattern} (snake_case)"
    return "invalid_field", f"{where}: {first['msg']}"
