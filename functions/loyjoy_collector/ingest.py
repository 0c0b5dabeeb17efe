"""The ingest: each event of a request validated on its own, the good ones stored, the refused ones kept.

Every protocol ends here with a list of events in the snippet's shape (or UnmappedEvent for what it could
not map). Each event travels as one Entry: its answer (Result), and either the row BigQuery should take
(with the event as sent, kept for replay if BigQuery refuses the row) or the record of its refusal.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import logs, offload
from .answers import RateLimited, error_body
from .floods import fold, rows_allowed
from .protocol import LoyJoyEvent, explain
from .rows import RequestContext, event_row, rejected_row
from .schema import EVENTS, REJECTED
from .sink import StorageUnavailable

if TYPE_CHECKING:
    from .handler import Runtime


@dataclass(frozen=True)
class UnmappedEvent:
    """An event a protocol could not map: ingest() records it with the reason, like an invalid one."""

    reason: str
    detail: str
    raw: Any


@dataclass
class Result:
    index: int
    stored: bool
    event_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    rejected_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Outcome:
    results: list[Result] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(result.stored for result in self.results)

    @property
    def status(self) -> int:
        if self.stored == len(self.results):
            return 200
        return 207 if self.stored else 400

    def body(self) -> dict[str, Any]:
        state = {200: "ok", 207: "partial", 400: "rejected"}[self.status]
        body: dict[str, Any] = {
            "status": state,
            "received": len(self.results),
            "stored": self.stored,
            "results": [result.as_json() for result in self.results],
        }
        if state == "rejected" and len(self.results) == 1:  # a lone event: the same shape as any refusal
            only = self.results[0]
            body |= error_body(only.reason or "invalid_event", only.detail or "", only.rejected_id)
        return body


@dataclass
class Entry:
    """One event on its way: stored (`row`, with `source` to keep if BigQuery refuses it) or refused
    (`refusal`, the events_rejected row)."""

    result: Result
    row: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    refusal: dict[str, Any] | None = None


async def ingest(events: list[Any], ctx: RequestContext, rt: Runtime, protocol: str, body_bytes: int | None) -> Outcome:
    """Validate each event on its own, store the good ones, keep the refused ones with their reason."""

    def record_refusal(index: int, reason: str, detail: str, raw: Any) -> Entry:
        fields = raw if isinstance(raw, dict) else {}
        # surrogatepass: a JSON "\ud800" escape decodes to a lone surrogate, which has no UTF-8 of its own
        size = (
            body_bytes if len(events) == 1 else len(json.dumps(raw, ensure_ascii=False).encode(errors="surrogatepass"))
        )
        row = rejected_row(
            ctx,
            rt.scrubber,
            reason=reason,
            detail=detail,
            status=400,
            protocol=protocol,
            payload=raw,
            raw_bytes=size,
            event_index=index,
            event_id=fields.get("event_id"),
            event_name=fields.get("event"),
            gate=rt.gate,
        )
        result = Result(index, False, row["event_id"], reason, detail, row["rejected_id"])
        return Entry(result, refusal=row)

    def admit(index: int, raw: Any) -> Entry:
        if isinstance(raw, UnmappedEvent):
            return record_refusal(index, raw.reason, raw.detail, raw.raw)
        if not isinstance(raw, dict):
            return record_refusal(index, "invalid_shape", "an event is a JSON object", raw)
        try:
            event = LoyJoyEvent.model_validate(raw)
        except ValidationError as exc:
            return record_refusal(index, *explain(exc), raw)
        row = event_row(event, raw, ctx, rt.settings, rt.scrubber, protocol, rt.gate)
        return Entry(Result(index, True, event_id=row["event_id"]), row, raw | {"event_id": row["event_id"]})

    clients = [str(raw["client_id"]) for raw in events[:1000] if isinstance(raw, dict) and raw.get("client_id")]
    address = ctx.address if len(events) > 1 else None  # its first event paid at the door
    sgtm = protocol != "loyjoy"
    if (clients or address) and (wait := rt.limits.wait(address, clients, len(events) - 1, sgtm)):
        raise RateLimited(wait)
    entries = await offload.run(body_bytes or 0, lambda: [admit(index, raw) for index, raw in enumerate(events)])
    storing = [entry for entry in entries if entry.row is not None]
    rows = [entry.row for entry in storing if entry.row is not None]
    refused_by_bigquery = await rt.sink.insert_until_stored_async(EVENTS, rows, "event_id")
    if refused_by_bigquery:
        logs.emit(
            logging.ERROR,
            f"BigQuery refused {len(refused_by_bigquery)} of {len(storing)} rows: {refused_by_bigquery[0].message}",
            "bigquery_refused",
            reason="bigquery_refused",
            protocol=protocol,
            rows=len(refused_by_bigquery),
        )
    for error in refused_by_bigquery:
        entry = storing[error.index]
        position = entry.result.index
        entries[position] = record_refusal(position, "bigquery_refused", error.message, entry.source)

    outcome = Outcome([entry.result for entry in entries])
    refused = [entry for entry in entries if entry.refusal is not None]
    refusals = [entry.refusal for entry in refused if entry.refusal is not None]
    for row in refusals:
        row["http_status"] = outcome.status
    refusals = fold(refusals, rows_allowed(body_bytes))  # what one request stores is bounded by what it sent
    await keep_rejected(rt, refusals)
    for entry in refused:  # folded or counted refusals name the row that records them
        if entry.refusal is not None:
            entry.result.rejected_id = entry.refusal["rejected_id"]
    if outcome.stored:
        rt.stored.add(outcome.stored)
    if refusals:
        reasons = sorted({entry.result.reason or "" for entry in refused})
        ids = [row["rejected_id"] for row in refusals][:20]
        logs.emit(
            logging.WARNING,
            f"refused {len(refusals)} of {len(events)} events: {', '.join(reasons)}",
            "refused",
            reason=reasons[0],
            reasons=reasons,
            protocol=protocol,
            status=outcome.status,
            refused=len(refusals),
            events=len(events),
            rejected_ids=ids,
        )
    return outcome


async def keep_rejected(rt: Runtime, rows: list[dict[str, Any]]) -> None:
    """Store refusals. A kept payload BigQuery will not take is dropped from its row, so that the refusal
    itself (reason, ids, sizes) is still on record under the rejected_id the sender was given. A refusal that
    cannot be recorded at all is an outage: nothing is answered as final that is not on record."""
    rows = rt.budget.admit(rows)  # past the instance's budget, refusals are counted instead
    for error in await rt.sink.insert_until_stored_async(REJECTED, rows, "rejected_id"):
        row = rows[error.index]
        message = f"BigQuery refused the record of refusal {row['rejected_id']}: {error.message}"
        logs.emit(logging.ERROR, message, "bigquery_refused", reason=row["reason"], rejected_id=row["rejected_id"])
        bare = row | {"raw_payload": None, "raw_truncated": True}
        bare["reason_detail"] = (f"{row['reason_detail'] or ''} [payload not storable: {error.message}]")[:1024]
        if await rt.sink.insert_until_stored_async(REJECTED, [bare], "rejected_id"):
            raise StorageUnavailable(f"BigQuery takes no record of refusal {row['rejected_id']}: {error.message}")
