"""insertAll with orjson, on the event loop (http1.py) or over a pooled urllib3 connection in a thread.

The official client sends insertAll through `requests`, which merges proxy settings from the environment on
every call (a scan of `os.environ`), builds a `PreparedRequest`, encodes with the standard `json` module and
wraps the answer in several layers: about a millisecond of CPU a call here, more than validating and scrubbing
an event. This module sends the same REST call (`tabledata.insertAll`: `rows[].json`, `rows[].insertId`,
`skipInvalidRows`) on a connection pool built once per process, and keeps from Google's libraries what earns
its place: credentials and their refresh (google-auth), the mapping of HTTP answers to exception types and
the retry policy (google-api-core). Network failures surface as urllib3's exceptions or as OSError
(`network_errors()`), which the sink retries and finally answers 503.

A request's call through group commit is first made on the event loop (`call_async`, http1.py): no worker
thread, no urllib3. What it cannot settle at once (a network failure, 429, 500, 502-504) is retried from a worker
thread over urllib3 (`__call__`), as are isolation, the refusal counts' flusher and the operator's commands.

The operator's commands (bootstrap, refresh, erase, replay) keep the official client: they run jobs and
queries, where its convenience matters and a millisecond does not.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import quote

import orjson

from . import __version__
from .http1 import Http1

SCOPES = ("https://www.googleapis.com/auth/bigquery",)
DEFAULT_ENDPOINT = "https://bigquery.googleapis.com"
# What BigQuery answers when another try may go through: sent again within the retry deadline.
RETRIED_STATUSES = (429, 500, 502, 503, 504)


class InsertFailed(Exception):
    """A whole call answered with an HTTP error, on the event loop (a thread's call raises google-api-core's
    exception for it instead, which its retry policy reads)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class InsertAll:
    """One per process. Thread-safe: urllib3's pool is, and credentials are refreshed under a lock."""

    def __init__(self, endpoint: str | None, project: str | None, timeout: float, pool_size: int = 16) -> None:
        self._base = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self._credentials: Any = None
        self.project = project
        if endpoint is None:  # the real BigQuery: the deployment's own identity (and its project)
            import google.auth

            self._credentials, found = google.auth.default(scopes=SCOPES)
            self.project = project or found
        if not self.project:
            raise ValueError("no project: set BQ_PROJECT")
        self._timeout, self._pool_size = timeout, pool_size
        self._urllib3_pool: Any = None
        self._pool_lock = threading.Lock()
        self._refresh = threading.Lock()
        self._agent = f"loyjoy-collector/{__version__} (urllib3 insertAll)"
        self._loop_client = Http1(self._base, timeout, pool_size)
        self._loop_agent = f"loyjoy-collector/{__version__} (insertAll)"

    def path(self, dataset: str, table: str) -> str:
        parts = (quote(self.project or "", safe=""), quote(dataset, safe=""), quote(table, safe=""))
        return f"/bigquery/v2/projects/{parts[0]}/datasets/{parts[1]}/tables/{parts[2]}/insertAll"

    def url(self, dataset: str, table: str) -> str:
        return self._base + self.path(dataset, table)

    def __call__(self, url: str, rows: list[dict[str, Any]], row_ids: list[str]) -> list[dict[str, Any]]:
        """The answer's `insertErrors` (per-row refusals); raises google.api_core's exception for an HTTP error
        and urllib3's (`network_errors()`) when the network fails."""
        headers = {"Content-Type": "application/json", "User-Agent": self._agent}
        if self._credentials is not None:
            self._authorize(headers)
        response = self._pool().request("POST", url, body=_body(rows, row_ids), headers=headers)
        return _insert_errors(response.status, response.data)

    async def call_async(self, path: str, rows: list[dict[str, Any]], row_ids: list[str]) -> list[dict[str, Any]]:
        """`__call__` on the event loop: the same answers; InsertFailed for an HTTP error, OSError when the network
        fails."""
        headers = {"Content-Type": "application/json", "User-Agent": self._loop_agent}
        if self._credentials is not None:
            if not self._credentials.valid:  # a refresh is a blocking HTTP call: in a thread, about once an hour
                await asyncio.get_running_loop().run_in_executor(None, self._authorize, {})
            self._credentials.apply(headers)
        status, data = await self._loop_client.post(path, _body(rows, row_ids), headers)
        if status >= 400:
            raise InsertFailed(status, _error_message(status, data)[0])
        return _insert_errors(status, data)

    def _pool(self) -> Any:
        """urllib3's pool, made on the first call from a thread (a retry, isolation, the operator's commands): the
        event loop's calls need neither it nor its import."""
        if self._urllib3_pool is None:
            with self._pool_lock:
                if self._urllib3_pool is None:
                    import urllib3

                    self._urllib3_pool = urllib3.PoolManager(
                        num_pools=2,
                        maxsize=self._pool_size,
                        block=False,
                        retries=False,  # the caller's retry policy decides, inside its deadline
                        timeout=urllib3.Timeout(connect=self._timeout, read=self._timeout),
                    )
        return self._urllib3_pool

    def _authorize(self, headers: dict[str, str]) -> None:
        credentials = self._credentials
        if not credentials.valid:
            with self._refresh:
                if not credentials.valid:
                    from google.auth.transport.urllib3 import Request

                    credentials.refresh(Request(self._pool()))
        credentials.apply(headers)


def network_errors() -> tuple[type[BaseException], ...]:
    """Everything a broken connection, a reset or a timeout raises, from a thread's call (urllib3) or the event
    loop's (OSError): no verdict on any row, only on the network."""
    import urllib3

    return (urllib3.exceptions.HTTPError, OSError)


def _body(rows: list[dict[str, Any]], row_ids: list[str]) -> bytes:
    return orjson.dumps(
        {
            "rows": [{"insertId": row_id, "json": row} for row, row_id in zip(rows, row_ids, strict=True)],
            "skipInvalidRows": True,
        }
    )


def _insert_errors(status: int, data: bytes) -> list[dict[str, Any]]:
    if status >= 400:
        raise _http_error(status, data)
    answer = orjson.loads(data) if data else {}
    return list(answer.get("insertErrors") or [])


def _http_error(status: int, data: bytes) -> Exception:
    """The exception google-api-core maps this status to, with BigQuery's message: the sink's verdicts (refused,
    failed, unavailable) are the official client's."""
    from google.api_core import exceptions

    message, errors = _error_message(status, data)
    return exceptions.from_http_status(status, message, errors=errors)


def _error_message(status: int, data: bytes) -> tuple[str, list[Any]]:
    """BigQuery's message and `errors` from an error answer (google.rpc's shape), or the answer's start."""
    message, errors = f"HTTP {status}", []
    try:
        error = orjson.loads(data).get("error") or {}
        message = str(error.get("message") or message)
        errors = list(error.get("errors") or [])
    except (orjson.JSONDecodeError, AttributeError):
        message = data[:200].decode("utf-8", "replace") or message
    return message, errors
