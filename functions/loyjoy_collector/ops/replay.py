"""Send refused payloads again, once the cause is fixed (a schema change, a too-strict origin list, a bug).

`events_rejected` keeps each payload scrubbed and in the form it came in: a whole refused request goes back to
its own path and query; a single refused event goes back as the snippet protocol's event (with its event_id,
so nothing lands twice), or as a GA4 hit when it was one. A kept payload holds the collector's own `email_hash`
in place of an address; the collector takes such a hash only from a request signed with the key
(`hashing.replay_signature`), so the replay signs what it sends when it has the key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from ..privacy import hashing
from ..sink import BigQuerySink


@dataclass(frozen=True)
class Replayed:
    rejected_id: str
    reason: str
    status: int
    answer: str


def target(row: dict[str, Any]) -> tuple[str, str, bytes | None] | None:
    """(method, path?query, body) to send the kept payload again; None when it cannot be replayed."""
    payload, truncated = row["raw_payload"], row["raw_truncated"]
    if payload is None or truncated:
        return None
    if row["event_index"] is None:  # the whole request was refused: send it as it came
        query = f"?{row['query']}" if row["query"] else ""
        body = None if row["method"] in ("GET", "HEAD") else payload.encode()
        return (row["method"] or "POST", f"{row['path'] or '/'}{query}", body)
    event = json.loads(payload)
    if row["protocol"] == "ga4" and isinstance(event, dict) and "en" in event:
        return ("GET", "/g/collect?" + urlencode(event), None)
    return ("POST", "/", json.dumps(event).encode())


def rejected_rows(sink: BigQuerySink, reason: str | None, since: date | None, limit: int) -> list[dict[str, Any]]:
    from google.cloud import bigquery

    where, params = ["raw_payload IS NOT NULL"], []
    if reason:
        where.append("reason = @reason")
        params.append(bigquery.ScalarQueryParameter("reason", "STRING", reason))
    if since:
        where.append("received_at >= TIMESTAMP(@since)")
        params.append(bigquery.ScalarQueryParameter("since", "STRING", since.isoformat()))
    query = (
        f"SELECT * FROM `{sink.table_id('events_rejected')}` WHERE {' AND '.join(where)} "
        f"ORDER BY received_at LIMIT {int(limit)}"
    )
    job = sink.client.query(query, job_config=bigquery.QueryJobConfig(query_parameters=params))
    return [dict(row.items()) for row in job.result()]


def replay(
    rows: list[dict[str, Any]], collector: str, origin: str | None = None, key: bytes | None = None
) -> list[Replayed]:
    done: list[Replayed] = []
    for row in rows:
        planned = target(row)
        if planned is None:
            done.append(Replayed(row["rejected_id"], row["reason"], 0, "not replayable (no or truncated payload)"))
            continue
        method, path, body = planned
        headers = {"Content-Type": "text/plain", "User-Agent": "loyjoy-collector-replay"}
        if origin:
            headers["Origin"] = origin
        if key:
            query = path.partition("?")[2].encode()
            headers[hashing.REPLAY_HEADER] = hashing.replay_signature(key, query, body or b"")
        request = urllib.request.Request(collector.rstrip("/") + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, text = answer.status, answer.read(300).decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read(300).decode("utf-8", "replace")
        done.append(Replayed(row["rejected_id"], row["reason"], status, text))
    return done
