"""A BigQuery that fails on demand: a loopback proxy in front of the local BigQuery.

The local BigQuery never answers 503, never times out and never refuses a row, so this proxy produces those
answers in BigQuery's own REST format (google.rpc error bodies, `insertErrors` with per-row reasons) and
passes everything else through untouched.
"""

from __future__ import annotations

import io
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

STATUS_NAMES = {
    400: ("INVALID_ARGUMENT", "invalid"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "internalError"),
    503: ("UNAVAILABLE", "backendError"),
    502: ("UNAVAILABLE", "badGateway"),
}


def error_body(status: int) -> bytes:
    state, reason = STATUS_NAMES.get(status, ("UNKNOWN", "backendError"))
    message = "Error encountered during execution. Retrying may solve the problem."
    return json.dumps(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
                "status": state,
            }
        }
    ).encode()


class FaultyBigQuery:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.insert_calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.reset()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                owner.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------------------- test controls

    def reset(self) -> None:
        with self._lock:
            self._fail_status: int | None = None
            self._fail_times: int | None = None
            self._delay = 0.0
            self._delay_times: int | None = None
            self._refuse: Callable[[dict[str, Any]], str | None] | None = None
            self._stop_others = False
            self._poison: tuple[bytes, int, str] | None = None
            self._dml_refusals = 0
            self._reset_rate = 0.0
            self.resets = 0
            self.insert_calls = []

    def fail(self, status: int = 503, times: int | None = None) -> None:
        """Answer the next `times` insertAll calls (all, if None) with `status`."""
        with self._lock:
            self._fail_status, self._fail_times = status, times

    def reset_connections(self, rate: float) -> None:
        """Reset (TCP RST, no answer) this share of insertAll calls: half of them before BigQuery sees the rows,
        half after it stored them, as a flaky network does to a request or to its answer."""
        with self._lock:
            self._reset_rate = rate

    def delay(self, seconds: float, times: int | None = None) -> None:
        """Hold the next `times` insertAll calls (all, if None) this long before passing them on."""
        with self._lock:
            self._delay, self._delay_times = seconds, times

    def refuse_rows(self, predicate: Callable[[dict[str, Any]], str | None], stop_others: bool = False) -> None:
        """Refuse rows for which `predicate` returns a message. With `stop_others`, behave like insertAll
        without skipInvalidRows: the other rows are not stored either and come back as 'stopped'."""
        with self._lock:
            self._refuse, self._stop_others = predicate, stop_others

    def poison(self, value: str, status: int = 400, table: str = "events") -> None:
        """Fail every insertAll call into `table` whose body holds `value`, as a whole: 400 is how BigQuery
        refuses some bad rows, 500 how the local BigQuery fails on some values."""
        with self._lock:
            self._poison = (value.encode(), status, f"/tables/{table}/insertAll")

    def refuse_dml(self, times: int) -> None:
        """Answer the next `times` DELETE/UPDATE/MERGE jobs as BigQuery does for rows that insertAll streamed in
        the last ~30 minutes."""
        with self._lock:
            self._dml_refusals = times

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---------------------------------------------------------------------------------- the proxy

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        is_insert = request.path.split("?")[0].endswith("/insertAll")
        with self._lock:
            reset = is_insert and random.random() < self._reset_rate
            self.resets += reset
        if reset and random.random() < 0.5:
            self._reset(request)
            return
        if is_insert:
            status, payload = self._insert_all(request, body)
        elif self._refuses_dml(request, body):
            message = (
                "UPDATE or DELETE statement over table loyjoy-local.loyjoy.events would affect rows in the "
                "streaming buffer, which is not supported"
            )
            error = {
                "code": 400,
                "message": message,
                "status": "INVALID_ARGUMENT",
                "errors": [{"message": message, "domain": "global", "reason": "invalidQuery"}],
            }
            status, payload = 400, json.dumps({"error": error}).encode()
        else:
            status, payload = self._forward(request, body)
        if reset:
            self._reset(request)
            return
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=UTF-8")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    @staticmethod
    def _reset(request: BaseHTTPRequestHandler) -> None:
        """Close with SO_LINGER 0: the client sees ECONNRESET, and no answer."""
        request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.connection.close()
        request.close_connection = True
        request.wfile = io.BytesIO()  # what the server flushes after handle(): into nothing, not the closed socket

    def _refuses_dml(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command != "POST" or not request.path.split("?")[0].endswith(("/jobs", "/queries")):
            return False
        with self._lock:
            if self._dml_refusals <= 0 or b"DELETE FROM" not in body:
                return False
            self._dml_refusals -= 1
            return True

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        answer = requests.request(request.command, self.upstream + request.path, data=body, headers=headers, timeout=60)
        return answer.status_code, answer.content

    def _insert_all(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        document = json.loads(body)
        with self._lock:
            self.insert_calls.append(document)
            delay, status = self._delay, self._fail_status
            if delay and self._delay_times is not None:
                self._delay_times -= 1
                if self._delay_times <= 0:
                    self._delay = 0.0
            if status is not None and self._fail_times is not None:
                self._fail_times -= 1
                if self._fail_times <= 0:
                    self._fail_status = None
            refuse, stop_others, poison = self._refuse, self._stop_others, self._poison
        if delay:
            time.sleep(delay)
        if status is not None:
            return status, error_body(status)
        if poison is not None and poison[0] in body and poison[2] in request.path:
            return poison[1], error_body(poison[1])
        if refuse is None:
            return self._forward(request, body)
        rows = document["rows"]
        verdicts = [refuse(row["json"]) for row in rows]
        errors = [
            {"index": i, "errors": [{"reason": "invalid", "location": "", "debugInfo": "", "message": msg}]}
            for i, msg in enumerate(verdicts)
            if msg
        ]
        if not errors:
            return self._forward(request, body)
        if stop_others:
            errors += [
                {"index": i, "errors": [{"reason": "stopped", "location": "", "debugInfo": "", "message": ""}]}
                for i, msg in enumerate(verdicts)
                if not msg
            ]
        else:
            good = [row for row, msg in zip(rows, verdicts, strict=True) if not msg]
            if good:
                self._forward(request, json.dumps({**document, "rows": good}).encode())
        errors.sort(key=lambda entry: entry["index"])
        return 200, json.dumps({"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors}).encode()
