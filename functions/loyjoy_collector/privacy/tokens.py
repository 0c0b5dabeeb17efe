"""Secrets and ids that carry what they hide: JWTs, and base64 that decodes to readable text.

LoyJoy's listener object has a signed JWT (`token`) with the visitor's e-mail and names in its payload, and
senders put such tokens anywhere. A JWT is found by its segments one by one (each base64url segment of a JSON
object starts `eyJ`), so that one damaged byte does not save the rest; any other base64 run of 16 characters
or more that decodes to readable text is hidden JSON or text, and goes too. Hex ids (UUIDs, hashes) and runs
in one letter case are never base64 of text, and stay.

False positives are the price: about 1 in 10,000 random base64url ids decodes to something readable.
"""

from __future__ import annotations

import base64
import binascii

from .detector import Detector
from .engine import Match, Pattern
from .placeholders import BASE64_PLACEHOLDER, JWT_PLACEHOLDER
from .tally import Tally

_B64_CHARS = r"[A-Za-z0-9+/_\-]"
_B64_RUN = Pattern(rf"{_B64_CHARS}{{16,}}(?:={{1,2}}|(?:%3D){{1,2}})?")
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"
_HEX_CHARS = "0123456789abcdef-"  # UUIDs, hashes: base64 of readable text always has other letters


def _decoded_b64(run: str) -> bytes | None:
    """The bytes a base64 or base64url run stands for, trying each alignment (damage shifts it)."""
    core = run.replace("%3D", "").replace("%3d", "").rstrip("=").replace("-", "+").replace("_", "/")
    for start in range(4):
        part = core[start:]
        part = part[: len(part) - len(part) % 4]
        if len(part) < 12:
            return None
        try:
            decoded = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            continue
        if decoded and len(decoded.translate(None, _PRINTABLE)) <= 0.15 * len(decoded):
            return decoded
    return None


def _b64(match: Match, tally: Tally) -> str:
    run = match.group(0)
    if run.startswith("eyJ"):  # base64 of '{"': a JWT segment, whole or not
        tally.replaced += 1
        return JWT_PLACEHOLDER
    mixed_case = run.lower() != run and run.upper() != run  # base64 of 16+ characters of text, nearly always
    if not run.strip(_HEX_CHARS) or not mixed_case or _decoded_b64(run) is None:
        return run
    tally.replaced += 1
    return BASE64_PLACEHOLDER


# A run that is replaced has 16 characters and both letter cases (`eyJ` has both; a `%3D` padding counts as it
# is written): a hex id has one case.
BASE64 = Detector(
    "JWT and base64",
    (rf"{_B64_CHARS}{{16}}", rf"[A-Z]{_B64_CHARS}*(?:[a-z]|%3d)|[a-z]{_B64_CHARS}*(?:[A-Z]|%3D)"),
    lambda text, look: _B64_RUN.sub(lambda m: _b64(m, look.tally), text),
)
