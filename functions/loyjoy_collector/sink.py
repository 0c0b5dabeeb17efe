"""Streaming rows into BigQuery, and knowing for each row whether it is stored.

insertAll answers 200 even when it refused rows (per-row `insertErrors`), so every answer is read row by
row. Transient failures are retried with bounded backoff inside a deadline that fits a request; past it
the caller answers 503 and the sender retries: an event is never acknowledged unless BigQuery took it.

A call shared through group commit is made on the event loop first (`InsertAll.call_async`); only what that
cannot settle at once (the network failed, 429, 500, 502-504) goes to a worker thread, whose retry policy sends
it again within the deadline (the first attempt's own timeout comes before it).

One bad row must not cost its neighbours their place, and with group commit its neighbours are other
senders' events. BigQuery sometimes refuses a bad row as a whole request (400), and a local BigQuery fails the
whole call (500) on some values; either way the call is split in halves until the rows that fail on their own
are found ("poison"). Those come back as row errors, like per-row `insertErrors`, and the rest is stored.

A row is poison only on evidence that it fails on its own: refused (400, 413) every time it is sent alone, or
failed (500) every time alone while another part of the same call went through. A flaky network is never
evidence: resets, timeouts, 429 and 502-504 are retried within the deadline and then answered 503, so a valid
event is never refused for good because the network between us and BigQuery was bad.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .group_commit import GroupCommit
from .insert_all import RETRIED_STATUSES, InsertAll, InsertFailed, network_errors
from .settings import Settings

if TYPE_CHECKING:
    from google.cloud.bigquery import Client


class StorageUnavailable(Exception):
    """BigQuery could not be reached or kept failing for the whole retry deadline."""


class CallRefused(Exception):
    """BigQuery refused a whole insertAll call for what was in it (400, 413): a row's fault, not an outage."""


class CallFailed(Exception):
    """BigQuery answered a whole insertAll call 500 (after retries): its own trouble, or a value it fails on.
    Only isolation can tell which."""


SOLO_TRIES = 2  # a row sent alone this many times, failing every time, is poison


@dataclass(frozen=True)
class RowError:
    index: int
    reason: str
    message: str


class BigQuerySink:
    """One per process: the write path (`InsertAll`, a pooled connection) and the official client (for the
    operator's commands) are built on first use, never per request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._insert_all: InsertAll | None = None
        self._lock = threading.Lock()
        self._policies: tuple[Any, Any] | None = None  # the retry policies, built when first needed
        self._group = GroupCommit() if settings.bq_group_commit else None
        self._last_stored = float("-inf")  # when a call last went through: evidence that BigQuery is up
        self._threads: anyio.CapacityLimiter | None = None  # for the calls, made on the event loop's first write

    @property
    def dataset(self) -> str:
        return self._settings.bq_dataset

    @property
    def project(self) -> str:
        return self._settings.project or self.client.project

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self._settings.bq_dataset}.{table}"

    @property
    def client(self) -> Client:
        """The official client, for jobs and queries (bootstrap, refresh, erase, replay): not on the request path."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self) -> Client:
        from google.cloud import bigquery

        settings = self._settings
        if settings.bigquery_api_endpoint:
            from google.auth.credentials import AnonymousCredentials

            return bigquery.Client(
                project=settings.project,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": settings.bigquery_api_endpoint},
            )
        return bigquery.Client(project=settings.project)

    @property
    def insert_all(self) -> InsertAll:
        if self._insert_all is None:
            with self._lock:
                if self._insert_all is None:
                    settings = self._settings
                    endpoint, project = settings.bigquery_api_endpoint, settings.project
                    self._insert_all = InsertAll(endpoint, project, settings.bq_timeout_seconds)
        return self._insert_all

    @property
    def _retry(self) -> Any:
        """The retry policy of a call from a thread (google-api-core's): imported and built on the first call that
        needs it, off the first request's way (its import takes a cold start a tenth of a second)."""
        return self._retry_policies()[0]

    @property
    def _network_retry(self) -> Any:
        """The same without 500: isolation sends a failing part once, not until the deadline."""
        return self._retry_policies()[1]

    def _retry_policies(self) -> tuple[Any, Any]:
        if self._policies is None:
            from google.api_core import exceptions, retry

            network = (
                *(exceptions.from_http_status(status, "").__class__ for status in RETRIED_STATUSES if status != 500),
                *network_errors(),  # resets (also in the middle of the answer), refused connections, timeouts
            )
            policy = retry.Retry(
                predicate=retry.if_exception_type(exceptions.InternalServerError, *network),
                initial=0.1,
                maximum=2.0,
                multiplier=2.0,
                timeout=self._settings.bq_retry_deadline_seconds,
            )
            self._policies = (policy, policy.with_predicate(retry.if_exception_type(*network)))
        return self._policies

    def insert(self, table: str, rows: list[dict[str, Any]], row_ids: list[str]) -> list[RowError]:
        """Stream `rows` from a thread of its own (the refusal counts' flusher, the operator's commands): one
        call, isolated if need be. Returns the rows BigQuery refused; raises StorageUnavailable."""
        if not rows:
            return []
        return self._insert_now(table, rows, row_ids, time.monotonic())

    async def insert_async(self, table: str, rows: list[dict[str, Any]], row_ids: list[str]) -> list[RowError]:
        """Stream `rows` from the event loop: shared with concurrent requests through group commit, the call made
        on the event loop (its retries and isolation in a worker thread). Returns the rows BigQuery refused; raises
        StorageUnavailable."""
        if not rows:
            return []
        if self._insert_all is None:  # the real BigQuery's credentials are found over the network: not on the loop
            await asyncio.get_running_loop().run_in_executor(None, lambda: self.insert_all)
        began = time.monotonic()

        async def alone(batch: list[dict[str, Any]], ids: list[str]) -> list[RowError]:  # isolated if need be
            return await self._in_thread(self._insert_now, table, batch, ids, began)

        if self._group is None:
            return await alone(rows, row_ids)

        async def shared(batch: list[dict[str, Any]], ids: list[str]) -> list[RowError]:
            settled = await self._call_on_loop(table, batch, ids)
            if settled is not None:
                return settled
            return await self._in_thread(self._call_retried, table, batch, ids)

        return await self._group.insert(table, rows, row_ids, shared, alone, split_on=(CallRefused, CallFailed))

    async def _in_thread(self, function: Callable[..., list[RowError]], *args: Any) -> list[RowError]:
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self._settings.threads)
        return await anyio.to_thread.run_sync(function, *args, limiter=self._threads)

    def _insert_now(self, table: str, rows: list[dict[str, Any]], row_ids: list[str], began: float) -> list[RowError]:
        try:
            return self._call(table, rows, row_ids, self._retry)
        except (CallRefused, CallFailed) as exc:  # StorageUnavailable is no evidence about rows: it propagates
            cause = str(exc)
        deadline = time.monotonic() + self._settings.bq_retry_deadline_seconds
        return self._isolate(table, rows, row_ids, cause, began, deadline)

    async def _call_on_loop(self, table: str, rows: list[dict[str, Any]], row_ids: list[str]) -> list[RowError] | None:
        """One attempt on the event loop: the row errors, or what `_call` raises for an answer no retry changes
        (400, 413, 401, 403, 404); None when the retry policy would send it again."""
        send = self.insert_all
        try:
            errors = await send.call_async(send.path(self.dataset, table), rows, row_ids)
        except InsertFailed as exc:
            if exc.status in RETRIED_STATUSES:
                return None
            raise _verdict(exc.status, exc.message) from exc
        except Exception:  # the network, and anything else: the thread's attempt decides (and says) what it is
            return None
        self._last_stored = time.monotonic()
        return _row_errors(errors)

    def _call_retried(self, table: str, rows: list[dict[str, Any]], row_ids: list[str]) -> list[RowError]:
        """`_call` under the retry policy, from a thread: its first use imports google-api-core there."""
        return self._call(table, rows, row_ids, self._retry)

    def _call(self, table: str, rows: list[dict[str, Any]], row_ids: list[str], retry: Any) -> list[RowError]:
        from google.api_core import exceptions

        send = self.insert_all
        try:
            errors = retry(send)(send.url(self.dataset, table), rows, row_ids)
        except exceptions.RetryError as exc:
            if isinstance(exc.cause, exceptions.InternalServerError):
                raise CallFailed(f"BigQuery kept failing: {exc.cause.message}") from exc
            raise StorageUnavailable(f"BigQuery kept failing: {exc.cause or exc}") from exc
        except exceptions.GoogleAPICallError as exc:
            raise _verdict(exc.code, exc.message) from exc
        except Exception as exc:  # timeouts and connection errors surface as several types
            raise StorageUnavailable(f"BigQuery unreachable: {type(exc).__name__}: {exc}") from exc
        self._last_stored = time.monotonic()
        return _row_errors(errors)

    def _isolate(
        self, table: str, rows: list[dict[str, Any]], row_ids: list[str], cause: str, began: float, deadline: float
    ) -> list[RowError]:
        """Split a failed call in halves down to the rows that fail alone.

        Each part is sent once, with network failures retried inside the deadline (past it: StorageUnavailable,
        never a verdict on a row). A refused part (400) is split further; a failed one (500) only once some
        other part of this call went through, since a BigQuery that fails everything is an outage. A row is
        poison when it failed SOLO_TRIES times alone: refused (400), or failed (500) while other parts went in.
        Two rows failing with 500 in the two halves of a call, nothing else of it stored, are answered as an outage
        (503): a false refusal would be final, a false 503 is sent again.
        """
        found: list[RowError] = []
        poison: list[int] = []
        went_through = False  # some part of this call was stored: BigQuery is up, a 500 is about the rows

        def up() -> bool:
            """Evidence that BigQuery is up: a part of this call was stored, or another call since this insert
            began (the requests that shared a failed group commit call send their own rows alone meanwhile)."""
            return went_through or self._last_stored >= began

        def send(indices: list[int]) -> list[RowError] | CallRefused | CallFailed:
            nonlocal went_through
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StorageUnavailable(f"BigQuery kept failing while isolating bad rows: {cause}")
            retry = self._network_retry.with_timeout(remaining)
            try:
                errors = self._call(table, [rows[i] for i in indices], [row_ids[i] for i in indices], retry)
            except (CallRefused, CallFailed) as exc:
                return exc
            went_through = True
            return [RowError(indices[e.index], e.reason, e.message) for e in errors]

        def outage(detail: str) -> StorageUnavailable:
            return StorageUnavailable(f"BigQuery fails every part of the insert, {detail}: {cause}")

        def alone(index: int) -> None:
            outcome: list[RowError] | CallRefused | CallFailed = []
            for _ in range(SOLO_TRIES):
                outcome = send([index])
                if isinstance(outcome, list):
                    found.extend(outcome)
                    return
            if isinstance(outcome, CallFailed) and not up():
                raise outage("this row too")
            poison.append(index)

        def split(indices: list[int]) -> None:
            if len(indices) == 1:
                alone(indices[0])
                return
            middle = len(indices) // 2
            failed: list[tuple[list[int], CallRefused | CallFailed]] = []
            for half in (indices[:middle], indices[middle:]):
                outcome = send(half)
                if isinstance(outcome, list):
                    found.extend(outcome)
                else:
                    failed.append((half, outcome))
            if any(isinstance(error, CallFailed) for _, error in failed) and not up():
                raise outage("both halves")
            for half, _ in failed:
                split(half)

        split(list(range(len(rows))))
        message = f"BigQuery fails every insert that holds this row, alone too ({cause})"
        return sorted(found + [RowError(i, "invalid", message) for i in poison], key=lambda e: e.index)

    def insert_until_stored(self, table: str, rows: list[dict[str, Any]], id_field: str) -> list[RowError]:
        """Insert, then insert again the rows BigQuery only 'stopped' because of a neighbour's error."""
        steps = _until_stored(rows, id_field)
        try:
            batch, ids = next(steps)
            while True:
                batch, ids = steps.send(self.insert(table, batch, ids))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def insert_until_stored_async(self, table: str, rows: list[dict[str, Any]], id_field: str) -> list[RowError]:
        """insert_until_stored from the event loop."""
        steps = _until_stored(rows, id_field)
        try:
            batch, ids = next(steps)
            while True:
                batch, ids = steps.send(await self.insert_async(table, batch, ids))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


Batch = tuple[list[dict[str, Any]], list[str]]


def _until_stored(rows: list[dict[str, Any]], id_field: str) -> Generator[Batch, list[RowError], list[RowError]]:
    """The rows to insert, then again those BigQuery only 'stopped' (insertAll stops a call's valid rows when
    one is invalid, unless skipInvalidRows); sent each call's row errors, returns the rows refused for good."""
    pending = list(range(len(rows)))
    refused: list[RowError] = []
    for _ in range(3):
        batch = [rows[i] for i in pending]
        errors = yield batch, [row[id_field] for row in batch]
        stopped = [pending[e.index] for e in errors if e.reason == "stopped"]
        refused.extend(RowError(pending[e.index], e.reason, e.message) for e in errors if e.reason != "stopped")
        if not stopped:
            return refused
        pending = stopped
    raise StorageUnavailable("BigQuery kept stopping valid rows")


def _verdict(status: int | None, message: str) -> Exception:
    """What an HTTP error of a whole call says (not retried, or past its retries): a refusal for what was in the
    call, BigQuery's failure, or an outage."""
    if status in (400, 413):
        return CallRefused(f"BigQuery refused the insert: {message}")
    if status == 500:
        return CallFailed(f"BigQuery failed: {message}")
    # 401, 403, 404 (no table, no permission): a deployment problem; 429, 502-504: transient.
    return StorageUnavailable(f"BigQuery failed: {message}")


def _row_errors(errors: list[dict[str, Any]]) -> list[RowError]:
    found: list[RowError] = []
    for entry in errors:
        details = entry.get("errors") or [{}]
        real = [d for d in details if d.get("reason") != "stopped"] or details
        message = "; ".join(
            f"{d.get('location') or ''}: {d.get('message') or d.get('reason') or 'refused'}".lstrip(": ") for d in real
        )
        found.append(RowError(int(entry.get("index", 0)), real[0].get("reason") or "invalid", message))
    return found
