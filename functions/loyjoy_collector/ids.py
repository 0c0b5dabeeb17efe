"""The collector's own ids (event_id when a sender gave none, rejected_id): random UUIDs, version 4, as text.

`str(uuid.uuid4())` builds a UUID object through integer arithmetic in Python, about four times the cost of
formatting the 16 random bytes directly, and a batch of events takes one id each. The same bytes from the
operating system's generator, the same version and variant bits, the same text.
"""

from __future__ import annotations

import os


def fresh_id() -> str:
    data = bytearray(os.urandom(16))
    data[6] = data[6] & 0x0F | 0x40  # version 4
    data[8] = data[8] & 0x3F | 0x80  # the RFC 4122 variant
    text = data.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
