"""CPU-bound work of one request, kept off the event loop when it is large.

Parsing, validating and scrubbing are linear in what a request sent, but a 512 KiB body of crafted text still
takes a good part of a second: on the event loop that would be a second in which no other request is answered
(`/healthy` included). Small requests, nearly all of them, run inline, since handing work to a thread costs more
than an event's whole gate; larger ones run in one worker thread at a time. The event loop then competes for
the interpreter with that one thread only, and the thread hands it over every millisecond (the interpreter's
switch interval, 5 ms by default): `/healthy` waits a few milliseconds, not the length of a crafted body.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import anyio

INLINE_BYTES = 8 * 1024  # at the detectors' worst case about 12 ms of CPU: the most the loop may wait

T = TypeVar("T")


SWITCH_INTERVAL = 0.001


async def run(size: int, work: Callable[[], T]) -> T:
    """`work()` for a request of `size` bytes: inline up to INLINE_BYTES, else in the worker thread."""
    if size <= INLINE_BYTES:
        return work()
    return await anyio.to_thread.run_sync(work, limiter=_one_thread())


@cache
def _one_thread() -> anyio.CapacityLimiter:
    """One at a time: CPU-bound work gains nothing from more threads (one interpreter lock), and every further
    thread is one more the event loop waits behind."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    return anyio.CapacityLimiter(1)
