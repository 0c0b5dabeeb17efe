"""Group commit: concurrent requests share one insertAll call instead of making one each.

Each request still waits until BigQuery has answered for its own rows (nothing is acknowledged early), so it
is safe; while one call is on the wire, the rows of requests arriving meanwhile gather and leave together in
the next call. An idle instance sends at once (no timer, no added latency); a busy one makes fewer, larger
calls — less CPU and fewer round trips per event. The caller that finds no call in flight sends ("leader");
the others wait for it.

A shared call that fails for what is in it (a row BigQuery refuses or fails on) is no verdict on the requests
that only shared it: each of them sends its own rows again alone (`alone`), in its own thread, so that the
innocent ones are stored at once and only the guilty one spends its deadline finding its bad row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

Send = Callable[[list[dict[str, Any]], list[str]], list[Any]]


@dataclass
class _Waiting:
    rows: list[dict[str, Any]]
    ids: list[str]
    errors: list[Any] = field(default_factory=list)
    failure: BaseException | None = None
    done: bool = False


@dataclass
class _Queue:
    waiting: list[_Waiting] = field(default_factory=list)
    sending: bool = False


class GroupCommit:
    def __init__(self, max_rows: int = 500) -> None:
        self._max_rows = max_rows  # BigQuery's recommended insertAll size
        self._queues: dict[str, _Queue] = {}
        self._changed = threading.Condition()

    def insert(
        self,
        key: str,
        rows: list[dict[str, Any]],
        ids: list[str],
        send: Send,
        alone: Send | None = None,
        split_on: tuple[type[BaseException], ...] = (),
    ) -> list[Any]:
        """Rows refused by BigQuery (indices into `rows`); raises what `send` raised for this request's call,
        unless it is one of `split_on`: then `alone` answers for this request's rows on their own."""
        mine = _Waiting(rows, ids)
        with self._changed:
            queue = self._queues.setdefault(key, _Queue())
            queue.waiting.append(mine)
            while not mine.done:
                if queue.sending:
                    self._changed.wait()
                    continue
                batch = self._take(queue)
                queue.sending = True
                self._changed.release()
                try:
                    self._send(batch, send)
                finally:
                    self._changed.acquire()
                    queue.sending = False
                    self._changed.notify_all()
        if mine.failure is not None:
            if alone is not None and isinstance(mine.failure, split_on):
                return alone(rows, ids)
            raise mine.failure
        return mine.errors

    def _take(self, queue: _Queue) -> list[_Waiting]:
        """The oldest waiters, up to max_rows (always at least one, whatever its size)."""
        batch, total = [], 0
        while queue.waiting and (not batch or total + len(queue.waiting[0].rows) <= self._max_rows):
            waiter = queue.waiting.pop(0)
            batch.append(waiter)
            total += len(waiter.rows)
        return batch

    @staticmethod
    def _send(batch: list[_Waiting], send: Send) -> None:
        rows = [row for waiter in batch for row in waiter.rows]
        ids = [row_id for waiter in batch for row_id in waiter.ids]
        try:
            errors = send(rows, ids)
        except BaseException as exc:  # every waiter of this call sees the same failure
            for waiter in batch:
                waiter.failure, waiter.done = exc, True
            return
        starts, offset = [], 0
        for waiter in batch:
            starts.append(offset)
            offset += len(waiter.rows)
        try:
            for error in errors:
                if not 0 <= error.index < offset:
                    raise IndexError(f"a row error for row {error.index} of a call of {offset} rows")
                position = next(i for i in range(len(batch) - 1, -1, -1) if starts[i] <= error.index)
                batch[position].errors.append(replace(error, index=error.index - starts[position]))
        except Exception as exc:  # every waiter must be released: its rows are no longer queued
            for waiter in batch:
                waiter.failure = exc
        for waiter in batch:
            waiter.done = True
