"""Which browser origins may send, and the CORS headers that let them.

Senders use credentials (cookies of a first-party collector domain), so a wildcard answer would be
refused by the browser: the exact origin is echoed, and only when the allow-list admits it.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

ALLOW_HEADERS = "Content-Type, X-Gtm-Server-Preview, X-Requested-With"
MAX_AGE = "600"


@lru_cache(maxsize=1024)
def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """Exact origins, '*' (any), or 'https://*.example.com' (the domain and its subdomains)."""
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    for pattern in allowed:
        if "://*." not in pattern:
            continue
        scheme, domain = pattern.split("://*.", 1)
        host = parts.hostname or ""
        if parts.scheme == scheme and (host == domain or host.endswith("." + domain)):
            return True
    return False


def cors_headers(origin: str | None) -> dict[str, str]:
    headers = {"Vary": "Origin"}
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = "Retry-After"
    return headers


def preflight_headers(origin: str | None, methods: str) -> dict[str, str]:
    headers = cors_headers(origin)
    headers["Access-Control-Allow-Methods"] = methods
    headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    headers["Access-Control-Max-Age"] = MAX_AGE
    return headers
