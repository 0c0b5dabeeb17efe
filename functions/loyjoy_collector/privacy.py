"""Removing personal data before anything is written, accepted or rejected.

LoyJoy's listener object is personal data: `token` is a signed JWT carrying the user's e-mail and names,
`email` is plain, customer events carry what the user typed. The rules, applied at every depth:
secrets are dropped, e-mails become a keyed hash, known personal fields are dropped unless allowed by
configuration, and any string still holding an e-mail address or a JWT has it replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Three base64url segments, the first a JSON header: what every JWT looks like.
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
# Percent-encoded '@' in URLs (e.g. ?email=jane%40example.com).
_EMAIL_URLENCODED = re.compile(r"[A-Za-z0-9._+\-]+%40[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")

EMAIL_PLACEHOLDER = "[email]"
JWT_PLACEHOLDER = "[jwt]"


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


SECRET_KEYS = frozenset(
    _key(k)
    for k in (
        "token",
        "jwt",
        "id_token",
        "access_token",
        "refresh_token",
        "authorization",
        "password",
        "secret",
        "api_key",
        "session_token",
    )
)
EMAIL_KEYS = frozenset(_key(k) for k in ("email", "e_mail", "email_address", "mail"))
PERSONAL_KEYS = frozenset(
    _key(k)
    for k in (
        # names
        "name",
        "firstname",
        "first_name",
        "lastname",
        "last_name",
        "fullname",
        "full_name",
        "surname",
        "given_name",
        "family_name",
        "salutation",
        # contact
        "phone",
        "phone_number",
        "phonenumber",
        "mobile",
        "mobile_number",
        "telephone",
        "fax",
        # dates
        "birthdate",
        "birthday",
        "date_of_birth",
        "dob",
        "age",
        # address
        "address",
        "postal_address",
        "street",
        "street_address",
        "house_number",
        "zip",
        "zipcode",
        "postal_code",
        "postcode",
        "city",
        # free text the user typed
        "text",
        "message",
        "comment",
        "payload",
        "free_text",
        # network identity
        "ip",
        "ip_address",
    )
)


@dataclass
class Scrubber:
    """Holds the keyed hash and the operator's exceptions; one per process."""

    hash_key: bytes | None
    allowed_keys: frozenset[str] = field(default_factory=frozenset)

    def hash_email(self, email: str) -> str | None:
        if self.hash_key is None:
            return None
        return hmac.new(self.hash_key, email.strip().lower().encode(), hashlib.sha256).hexdigest()

    def scrub_text(self, text: str) -> str:
        """Scrub what could not be parsed: a URL, a title, a broken body."""
        if "eyJ" in text:
            text = _JWT.sub(JWT_PLACEHOLDER, text)
        if "@" in text:
            text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
        if "%40" in text:
            text = _EMAIL_URLENCODED.sub(EMAIL_PLACEHOLDER, text)
        return text

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """A scrubbed copy of a JSON value. At each object level an e-mail key becomes `email_hash`."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, list):
            return [self.scrub(item, depth + 1) for item in value]
        if not isinstance(value, dict):
            return value
        clean: dict[str, Any] = {}
        for name, item in value.items():
            key = _key(name)
            if key in SECRET_KEYS or key.startswith("sha256"):  # secrets, and unsalted hashes of personal data
                continue
            if key in EMAIL_KEYS and isinstance(item, str):
                digest = self.hash_email(item)
                if digest is not None:
                    clean["email_hash"] = digest
                continue
            if key in PERSONAL_KEYS and name not in self.allowed_keys:
                continue
            clean[self.scrub_text(name)] = self.scrub(item, depth + 1)
        return clean


def truncate_ip(ip: str | None) -> str | None:
    """/24 for IPv4, /48 for IPv6: enough for a country, not for a person."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
