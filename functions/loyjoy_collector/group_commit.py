"""Group commit: concurrent requests share one insertAll call instead of making one each.

Each request still waits until BigQuery has answered for its own rows (nothing is acknowledged early), so it
is safe; while one call is on the wire, the rows of requests arriving meanwhile gather and leave together in
the next call. An idle instance sends at once (no timer, no added latency); a busy one makes fewer, larger
calls — less CPU and fewer round trips per event. It runs on the event loop: a request awaits its rows'
answer, one task per table sends the calls one after the other, and the call itself (blocking HTTP) runs in a
worker thread, so that no request holds a thread while it waits.

A shared call that fails for what is in it (a row BigQuery refuses or fails on) is no verdict on the requests
that only shared it: each of them sends its own rows again alone (`alone`), concurrently, so that the innocent
ones are stored at once and only the guilty one spends its deadline finding its bad row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

Send = Callable[[list[dict[str, Any]], list[str]], Awaitable[list[Any]]]


@dataclass
class _Waiting:
    rows: list[dict[str, Any]]
    ids: list[str]
    answer: asyncio.Future[list[Any]]


@dataclass
class _Queue:
    waiting: list[_Waiting] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None  # the task sending this table's calls, while there are any


class GroupCommit:
    def __init__(self, max_rows: int = 500) -> None:
        self._max_rows = max_rows  # BigQuery's recommended insertAll size
        self._queues: dict[str, _Queue] = {}

    async def insert(
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
        queue = self._queues.setdefault(key, _Queue())
        mine = _Waiting(rows, ids, asyncio.get_running_loop().create_future())
        queue.waiting.append(mine)
        if queue.sender is None:
            queue.sender = asyncio.create_task(self._send_all(queue, send))
        try:
            return await asyncio.shield(mine.answer)  # a cancelled request leaves the call to the others
        except split_on:
            if alone is None:
                raise
            return await alone(rows, ids)

    async def _send_all(self, queue: _Queue, send: Send) -> None:
        try:
            while queue.waiting:
                await self._send(self._take(queue), send)
        finally:
            queue.sender = None

    def _take(self, queue: _Queue) -> list[_Waiting]:
        """The oldest waiters, up to max_rows (always at least one, whatever its size)."""
        batch, total = [], 0
        while queue.waiting and (not batch or total + len(queue.waiting[0].rows) <= self._max_rows):
            waiter = queue.waiting.pop(0)
            batch.append(waiter)
            total += len(waiter.rows)
        return batch

    @staticmethod
    async def _send(batch: list[_Waiting], send: Send) -> None:
        rows = [row for waiter in batch for row in waiter.rows]
        ids = [row_id for waiter in batch for row_id in waiter.ids]
        try:
            errors = await send(rows, ids)
            answers = _split(errors, [len(waiter.rows) for waiter in batch])
        except BaseException as exc:  # every waiter of this call sees the same failure
            for waiter in batch:
                if not waiter.answer.done():
                    waiter.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for waiter, answer in zip(batch, answers, strict=True):
            if not waiter.answer.done():
                waiter.answer.set_result(answer)


def _split(errors: list[Any], sizes: list[int]) -> list[list[Any]]:
    """The row errors of one call, each given back to the request its row came from, re-indexed."""
    starts, offset = [], 0
    for size in sizes:
        starts.append(offset)
        offset += size
    answers: list[list[Any]] = [[] for _ in sizes]
    for error in errors:
        if not 0 <= error.index < offset:
            raise IndexError(f"a row error for row {error.index} of a call of {offset} rows")
        position = next(i for i in range(len(sizes) - 1, -1, -1) if starts[i] <= error.index)
        answers[position].append(replace(error, index=error.index - starts[position]))
    return answers
