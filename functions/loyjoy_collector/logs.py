"""Log lines: one JSON object per line for Cloud Logging, readable text in `loyjoy-collector dev`.

Cloud Run reads JSON lines from stdout/stderr as structured entries: `severity`, `message`, the request's trace
(`logging.googleapis.com/trace`, from `traceparent`, else `X-Cloud-Trace-Context`) and labels that log-based
metrics and alerts filter on (`event`, `reason`, `protocol`, `status`). Every message and every field passes
the same gate as the rows do: a log line is a column too, and must not carry a personal value. The one
exception is a field of the operator's own values (`Configured`, the settings on the start line): nobody
else wrote them, and an operator must be able to read back an endpoint or an origin as configured.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import __version__

LOGGER = "loyjoy_collector"
log = logging.getLogger(LOGGER)
_trace: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar("trace", default=None)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-f]{32})(?:/(\d+))?")
# Python's level names that are Cloud Logging severities as they are; any other level is logged as DEFAULT.
SEVERITIES = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


def trace_from(traceparent: str | None, cloud_trace: str | None) -> tuple[str, str | None] | None:
    """(trace id, span id as 16 hex digits) of a request, W3C first."""
    if traceparent and (match := _TRACEPARENT.match(traceparent.strip().lower())):
        return match.group(1), match.group(2)
    if cloud_trace and (match := _CLOUD_TRACE.match(cloud_trace.strip().lower())):
        span = f"{int(match.group(2)):016x}" if match.group(2) and int(match.group(2)) < 2**64 else None
        return match.group(1), span
    return None


def set_trace(trace: tuple[str, str | None] | None) -> None:
    _trace.set(trace)


class Configured(dict[str, Any]):
    """Values the operator configured (the settings), logged as they are: no visitor wrote them."""


def emit(level: int, message: str, event: str, **fields: Any) -> None:
    """A line with a stable `event` name (what metrics count) and fields; labels are the short ones."""
    log.log(level, message, extra={"event": event, "fields": fields})


class JsonFormatter(logging.Formatter):
    def __init__(self, project: str | None, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self._project = project
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname in SEVERITIES else "DEFAULT",
            "message": self._scrub(message),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        fields = getattr(record, "fields", None) or {}
        if event:
            entry["event"] = event
        for key, value in fields.items():
            entry[key] = self._clean(value)
        labels = {"event": event} if event else {}
        labels |= {k: str(entry[k]) for k in ("reason", "protocol", "status") if entry.get(k) is not None}
        if labels:
            entry["logging.googleapis.com/labels"] = labels
        trace = _trace.get()
        if trace and self._project:
            entry["logging.googleapis.com/trace"] = f"projects/{self._project}/traces/{trace[0]}"
            if trace[1]:
                entry["logging.googleapis.com/spanId"] = trace[1]
        return json.dumps(entry, ensure_ascii=False, default=str)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, Configured):
            return dict(value)
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, dict):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


class PlainFormatter(logging.Formatter):
    """For people: `12:00:01 INFO  refused: invalid_json (rejected_id=…)`."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and not isinstance(v, Configured))
        line = (
            f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.getMessage()}"
        )
        line = self._scrub(f"{line} ({extra})" if extra else line)
        configured = " ".join(f"{k}={v}" for k, v in fields.items() if isinstance(v, Configured))
        line += f" {configured}" if configured else ""
        if record.exc_info:
            line += "\n" + self._scrub(self.formatException(record.exc_info))
        return line


def configure(log_format: str, project: str | None, scrub: Callable[[str], str]) -> None:
    """JSON on Cloud Run (K_SERVICE is set there) unless told otherwise; once per process."""
    as_json = log_format == "json" or (log_format == "auto" and "K_SERVICE" in os.environ)
    handler = logging.StreamHandler(sys.stdout if as_json else sys.stderr)
    handler.setFormatter(JsonFormatter(project, scrub) if as_json else PlainFormatter(scrub))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


class StoredCounter:
    """How many events this instance stored, logged at most once a minute (on the next request after it):
    the line a silence alert waits for, at a log volume that does not grow with traffic."""

    def __init__(self, period: float = 60.0) -> None:
        self._period = period
        self._lock = threading.Lock()
        self._events = 0
        self._requests = 0
        self._since = time.monotonic() - period  # the first store is reported at once

    def add(self, events: int) -> None:
        with self._lock:
            self._events += events
            self._requests += 1
            now = time.monotonic()
            if now - self._since < self._period:
                return
            events, requests, seconds = self._events, self._requests, now - self._since
            self._events, self._requests, self._since = 0, 0, now
        emit(
            logging.INFO,
            f"stored {events} events from {requests} requests",
            "stored",
            events=events,
            requests=requests,
            seconds=round(seconds, 1),
            version=__version__,
        )
