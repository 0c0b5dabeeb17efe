"""What a flood may cost: per-client rate limits, and a budget for the refusals an instance stores whole.

The collector is an unauthenticated URL. A sender that floods it must neither fill `events_rejected` with junk
(insertAll bills at least 1 KB a row, kept 90 days) nor go unnoticed:

- `RateLimits`: token buckets per client address and per `client_id`, answered 429 with `Retry-After` (the
  snippet honours it, sGTM senders retry). Generous: a chat visitor sends a batch every few seconds at most,
  a company's NAT many visitors' worth.
- `RefusalBudget`: an instance stores up to N refusals a minute whole (payload, ids). Past that, refusals are
  counted per reason and minute, and one row per reason and minute records the count (`refusals`), with a
  log line: the count stays on record while junk cannot fill the table. The same row shape bounds one
  request: past a few refusals per KB it sent, its further refusals are counted, not kept one by one.

State is per instance and in memory: an attacker spread over many instances meets each one's limits, and
Cloud Armor (Terraform `cloud_armor`) in front of the load balancer.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .rows import rfc3339

MAX_KEYS = 50_000  # buckets kept per limit; the least recently seen go first


class TokenBuckets:
    """`rate` tokens a second up to `burst`, per key; a key unseen for a while starts full again."""

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None, cost: float = 1.0) -> float:
        """0 when `key` may go on (and pays `cost`); else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, when = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - when) * self.rate)
            need = min(cost, self.burst)  # a cost above the burst could never be paid: the burst then
            wait = 0.0 if tokens >= need else (need - tokens) / self.rate
            self._buckets[key] = (tokens - cost if tokens >= need else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait


@dataclass
class RateLimits:
    per_address: TokenBuckets
    per_client: TokenBuckets
    per_sgtm_address: TokenBuckets  # the server-side GTM routes: a container sends every visitor's events

    def wait(self, address: str | None, client_ids: list[str], events: int = 1, sgtm: bool = False) -> float:
        """Seconds the sender must wait (0: go on). Every key pays, so a flood of ids from one address is
        still one address; an address pays per event, so that a batch is no way around its rate. The sGTM
        routes' addresses have buckets of their own, far larger: a container sends from few addresses."""
        buckets, prefix = (self.per_sgtm_address, "s:") if sgtm else (self.per_address, "a:")
        waits = [buckets.take(prefix + address, cost=events)] if address else []
        waits += [self.per_client.take("c:" + client) for client in dict.fromkeys(client_ids)]
        return max(waits, default=0.0)


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


@dataclass
class _Count:
    rejected_id: str
    count: int = 0
    protocol: str | None = None
    status: int = 400
    path: str | None = None


@dataclass
class RefusalBudget:
    """Refusal rows an instance stores whole per minute; the rest counted. Thread-safe."""

    per_minute: int
    _minute: int = -1
    _stored: int = 0
    _counts: dict[tuple[int, str], _Count] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, rows: list[dict[str, Any]], now: float | None = None) -> list[dict[str, Any]]:
        """The rows to store whole. The others are counted, and take the id of their reason's count row
        (which `due()` hands out once the minute is over), so that the answer names a row that will exist."""
        minute = int((time.time() if now is None else now) // 60)
        kept: list[dict[str, Any]] = []
        with self._lock:
            if minute != self._minute:
                self._minute, self._stored = minute, 0
            for row in rows:
                if self._stored < self.per_minute:
                    self._stored += 1
                    kept.append(row)
                    continue
                row["rejected_id"] = self._add(
                    minute,
                    row["reason"],
                    row.get("refusals") or 1,
                    row["http_status"],
                    row.get("protocol"),
                    row.get("path"),
                )
        return kept

    def count(self, reason: str, status: int, protocol: str | None, path: str | None) -> str:
        """A refusal that is never stored whole (a 429): counted, and the id of its count row."""
        with self._lock:
            return self._add(int(time.time() // 60), reason, 1, status, protocol, path)

    def _add(self, minute: int, reason: str, refusals: int, status: int, protocol: str | None, path: str | None) -> str:
        """Count refusals under their reason's row of `minute` (the lock held); that row's id."""
        count = self._counts.setdefault((minute, reason), _Count(str(uuid.uuid4())))
        count.count += refusals
        count.protocol, count.status, count.path = protocol, status, path
        return count.rejected_id

    def due(self, now: float | None = None, everything: bool = False) -> list[dict[str, Any]]:
        """Count rows of the minutes that are over (all of them with `everything`, at shutdown)."""
        minute = int((time.time() if now is None else now) // 60)
        with self._lock:
            done = [key for key in self._counts if everything or key[0] < minute]
            counts = [(key, self._counts.pop(key)) for key in done]
        return [count_row(reason, at_minute, count) for (at_minute, reason), count in counts]


def count_row(reason: str, minute: int, count: _Count) -> dict[str, Any]:
    """One events_rejected row that stands for `count.count` refusals of one reason in one minute."""
    return {
        "rejected_id": count.rejected_id,
        "received_at": rfc3339(datetime.fromtimestamp(minute * 60, UTC)),
        "reason": reason,
        "reason_detail": f"{count.count} refusals past the budget in this minute, counted without their payloads",
        "http_status": count.status,
        "protocol": count.protocol,
        "method": None,
        "path": count.path,
        "raw_payload": None,
        "raw_bytes": None,
        "raw_truncated": True,
        "refusals": count.count,
        "collector_version": __version__,
    }


def fold(rows: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """One request's refusal rows: the first `keep` whole; of the rest, a reason met once stays whole too (a
    count row would cost the same row), a reason met more often becomes one row with its count (the first of
    them, without its payload). Each folded refusal takes the id of its reason's row."""
    if len(rows) <= keep:
        return rows
    rest: dict[str, list[dict[str, Any]]] = {}
    for row in rows[keep:]:
        rest.setdefault(row["reason"], []).append(row)
    kept = rows[:keep]
    for group in rest.values():
        if len(group) == 1:
            kept.append(group[0])
            continue
        counted = group[0] | {"raw_payload": None, "raw_truncated": True, "refusals": len(group)}
        counted["reason_detail"] = "refused events of one request past its share, counted"
        for row in group:
            row["rejected_id"] = counted["rejected_id"]
        kept.append(counted)
    return kept


def rows_allowed(body_bytes: int | None) -> int:
    """Refusals one request may store whole: two a KB it sent (a row is billed at least 1 KB), at least two."""
    return max(2, 2 * (body_bytes or 0) // 1024)


class Flusher:
    """Stores the count rows of minutes that are over, every few seconds, and everything at shutdown. Rows
    BigQuery did not take wait for the next round (up to a bound), so an outage delays counts, not loses them."""

    PENDING_LIMIT = 10_000

    def __init__(self, budget: RefusalBudget, store: Callable[[list[dict[str, Any]]], None], every: float) -> None:
        self._budget, self._store, self._every = budget, store, every
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="refusal-counts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._every)
            self.flush()

    def flush(self, everything: bool = False) -> None:
        with self._lock:
            rows = self._pending + self._budget.due(everything=everything)
            self._pending = []
            if not rows:
                return
            try:
                self._store(rows)
            except Exception:
                self._pending = rows[-self.PENDING_LIMIT :]
