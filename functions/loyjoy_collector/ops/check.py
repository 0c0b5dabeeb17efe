"""After a deploy, the whole path in one step: what a site needs from the collector, and BigQuery behind it.

Each step prints PASS or FAIL with what it saw; any FAIL makes the exit code non-zero. The test event is named
`collector_check`: the analyst tables leave it out, so checking a live collector changes no number.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..sink import BigQuerySink

CHECK_EVENT = "collector_check"


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


Answer = tuple[int, dict[str, str], bytes]


def _request(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, _names(answer.headers.items()), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, _names(error.headers.items()), error.read()


def _names(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names in lower case: HTTP's are case-insensitive, and servers differ in how they write them."""
    return {name.lower(): value for name, value in items}


def _found(sink: BigQuerySink, table: str, column: str, value: str, timeout: float) -> bool:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("v", "STRING", value)])
    query = f"SELECT COUNT(*) AS n FROM `{sink.table_id(table)}` WHERE {column} = @v"
    deadline = time.monotonic() + timeout
    while True:
        [row] = list(sink.client.query(query, job_config=config).result())
        if row["n"] or time.monotonic() > deadline:
            return bool(row["n"])
        time.sleep(1)


def check(url: str, origin: str, sink: BigQuerySink | None, say: Callable[[Step], None], timeout: float = 30) -> bool:
    base = url if url.endswith("/") else url + "/"
    steps: list[Step] = []

    def step(name: str, run: Callable[[], tuple[bool, str]]) -> Any:
        try:
            ok, detail = run()
        except Exception as exc:  # a step that cannot even run has failed; the others still run
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        steps.append(Step(name, ok, detail))
        say(steps[-1])
        return ok

    def health() -> tuple[bool, str]:
        status, _, body = _request("GET", base + "healthy")
        return status == 200 and body.strip() == b"ok", f"GET /healthy: {status} {body[:40]!r}"

    def cors() -> tuple[bool, str]:
        headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        status, answer, _ = _request("OPTIONS", base, headers=headers)
        allowed = answer.get("access-control-allow-origin")
        return allowed == origin and status < 300, f"preflight for {origin}: {status}, allows {allowed!r}"

    def snippet() -> tuple[bool, str]:
        status, answer, body = _request("GET", base + "loyjoy-collector.js")
        kind = answer.get("content-type", "")
        ok = status == 200 and "javascript" in kind and b"LoyJoyCollector" in body
        return ok, f"GET /loyjoy-collector.js: {status}, {kind}, {len(body)} bytes"

    event_id = f"check-{uuid.uuid4().hex}"

    def store() -> tuple[bool, str]:
        event = {
            "event": CHECK_EVENT,
            "event_id": event_id,
            "bot_id": "loyjoy-collector-check",
            "sdk": f"loyjoy-collector-check/{__version__}",
        }
        headers = {"Content-Type": "text/plain", "Origin": origin}
        status, _, body = _request("POST", base, json.dumps(event).encode(), headers)
        if status != 200:
            return False, f"POST a test event: {status} {body[:200]!r}"
        if sink is None:
            return True, "POST a test event: 200 (not read back: no BigQuery access given)"
        found = _found(sink, "events", "event_id", event_id, timeout)
        return found, f"test event {event_id} {'is' if found else 'is NOT'} in the events table"

    def refusal() -> tuple[bool, str]:
        headers = {"Content-Type": "text/plain", "Origin": origin}
        status, _, body = _request("POST", base, b'{"event": "collector_check", "broken": ', headers)
        answer = json.loads(body or b"{}")
        rejected_id = answer.get("rejected_id")
        if status != 400 or answer.get("error", {}).get("reason") != "invalid_json" or not rejected_id:
            return False, f"POST a broken body: {status} {body[:200]!r}"
        if sink is None:
            return True, f"POST a broken body: 400 invalid_json, rejected_id {rejected_id} (not read back)"
        found = _found(sink, "events_rejected", "rejected_id", rejected_id, timeout)
        return found, f"refusal {rejected_id} {'is' if found else 'is NOT'} kept with its reason"

    step("health", health)
    step("CORS", cors)
    step("snippet", snippet)
    step("event stored", store)
    step("refusal kept", refusal)
    return all(s.ok for s in steps)
