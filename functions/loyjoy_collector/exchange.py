"""What the routes see of a request and give back: plain values, read once, whatever the server.

The ASGI entry point (handler.collect) reads the body within its size limit and deadline before any route
runs, so a route never waits on the network while it holds a thread; and the routes stay plain functions that
tests and the benchmark can call without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Incoming:
    method: str
    path: str  # percent-decoded, as the server routed it
    query: bytes  # as sent
    headers: dict[str, str]  # lower-case names; a repeated header's values joined with ", " (RFC 9110 §5.3)
    body: bytes = b""  # at most the body limit plus one byte
    body_bytes: int = 0  # how many bytes arrived in all (counted past the limit while draining)
    remote_addr: str | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @cached_property
    def content_length(self) -> int | None:
        declared = self.headers.get("content-length", "").strip()
        return int(declared) if declared.isascii() and declared.isdigit() else None

    @cached_property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def args(self) -> list[tuple[str, str]]:
        """The query's parameters, the first value of each name, in order (as Werkzeug's `args.items()`)."""
        seen: dict[str, str] = {}
        for name, value in parse_qsl(self.query.decode("utf-8", "replace"), keep_blank_values=True):
            seen.setdefault(name, value)
        return list(seen.items())


def joined_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names in lower case; a repeated header's values joined with ", ", as a list header's are (RFC 9110
    §5.3): a second X-Forwarded-For line must not hide the entry the platform appended."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


@dataclass
class Reply:
    status: int
    body: bytes = b""
    media_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
