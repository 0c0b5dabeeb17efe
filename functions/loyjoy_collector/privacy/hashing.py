"""The one keyed hash: the collector, erasure and the tests all call these, so they cannot drift apart.

An e-mail address is stored only as `email_hash`; an identifier that held a personal value becomes a `pii-`
pseudonym of itself. Both are HMAC-SHA256 under the deployment's `PII_HASH_KEY`: without the key nobody can
test a guessed address against the table, and erasure finds a person's rows by hashing their address again.
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_PREFIX = "pii-"
PSEUDONYM_HEX = 32


def email_hash(key: bytes, email: str) -> str:
    """Case and surrounding spaces do not make another person."""
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()


def pseudonym(key: bytes, value: str) -> str:
    """The same value gives the same pseudonym, so counts and joins still work while the value is gone."""
    return PSEUDONYM_PREFIX + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


def email_pseudonyms(key: bytes, email: str) -> list[str]:
    """The pseudonyms an id column holds when a sender put this address in it, as typed or normalised."""
    variants = dict.fromkeys((email, email.strip(), email.strip().lower()))
    return [pseudonym(key, variant) for variant in variants]


REPLAY_HEADER = "X-Collector-Replay"


def replay_signature(key: bytes, query: bytes, body: bytes) -> str:
    """Proof that a replayed request comes from whoever holds the key (the operator's `replay` command): only such
    a request may carry the collector's own `email_hash`, which a kept payload holds in place of the address."""
    return hmac.new(key, b"replay\n" + query + b"\n" + body, hashlib.sha256).hexdigest()


def replay_signed(key: bytes | None, signature: str | None, query: bytes, body: bytes) -> bool:
    if not key or not signature:
        return False
    return hmac.compare_digest(signature.encode("latin-1"), replay_signature(key, query, body).encode())
