"""Which keys of a sender's object are kept: an allow-list, so that privacy does not depend on key names.

LoyJoy's listener object is personal data: `token` is a signed JWT carrying the user's e-mail and names,
`email` is plain, and customer events carry what the visitor typed under names the flow's author chose, in
any language (`vorname`, `telefon`, `strasse`, `antwort`). A deny-list of personal keys cannot keep up with
that, so parsed objects keep only keys known to be analytical (LoyJoy's documented fields, the protocols'
own fields, GA4 and Stape parameters) plus those the operator names in `PII_ALLOWED_KEYS` (`*` patterns
allowed). Secrets go whatever the setting; `email` becomes a keyed hash. Every string that is kept still
passes the value detectors of `values.py` at the row boundary (`gate.py`).

The trade-off: a custom analytical key of a chat flow is dropped until the operator allows it; the row's
`quality_flags` say how many keys were dropped and name them (`dropped_key:<name>`), so that is visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from . import hashing
from .tally import Tally
from .values import is_number, normalise_key

SECRET_KEYS = frozenset(
    normalise_key(k)
    for k in (
        "token",
        "jwt",
        "id_token",
        "access_token",
        "refresh_token",
        "authorization",
        "password",
        "passwort",
        "secret",
        "api_key",
        "session_token",
        "cookie",
        "pin",
        "otp",
        "cvv",
        "cvc",
    )
)
EMAIL_KEYS = frozenset(
    normalise_key(k) for k in ("email", "e_mail", "email_address", "mail", "e_mail_adresse", "emailadresse")
)
# The collector's own keyed hash of an address. A sender's value under this name is no such hash: it may be an
# address, a phone number, an unkeyed SHA-256 anyone can reverse with a list of addresses, or a made-up value
# that inflates the counts of people; and erasure, which hashes an address with the key, would never find it.
# Only a replay signed with the key (`hashing.replay_signature`) may carry it, as 64 hex digits.
EMAIL_HASH_KEY = "email_hash"
_OWN_HASH = re.compile(r"[0-9a-f]{64}")

# Keys whose values are analytics, not the visitor: LoyJoy's documented event fields and common flow fields,
# the snippet protocol's own fields, Stape's Data Tag and Common Event Data, GA4's measurement protocol.
ANALYTICAL_KEYS = frozenset(
    normalise_key(k)
    for k in (
        # LoyJoy
        "bot_id",
        "process_id",
        "process_name",
        "sub_process_id",
        "sub_process_name",
        "tenant_id",
        "label",
        "type",
        "step",
        "score",
        "nps",
        "nps_score",
        "rating",
        "topic",
        "intent",
        "intent_name",
        "module",
        "module_name",
        "locale",
        "channel",
        "value",
        "count",
        "index",
        "position",
        "duration",
        "duration_ms",
        "screen_time",
        "seconds",
        "quiz_id",
        "quiz_name",
        "question_id",
        "answer_id",
        "option_id",
        "button_id",
        "jump",
        "decision",
        "outcome",
        "status",
        "result",
        "variant",
        "experiment",
        "category",
        "action",
        "product_id",
        "sku",
        "target",
        "reason",
        "code",
        "error",
        "version",
        "widget",
        "trigger",
        "platform",
        # the snippet protocol
        "event",
        "events",
        "detail",
        "event_id",
        "ts",
        "sent_at",
        "client_id",
        "session_id",
        "ga_client_id",
        "ga_session_id",
        "page_location",
        "page_referrer",
        "page_title",
        "language",
        "utm",
        "source",
        "medium",
        "campaign",
        "term",
        "content",
        "consent",
        "analytics_storage",
        "ad_storage",
        "ad_user_data",
        "ad_personalization",
        "sdk",
        "retry",
        # the snippet's delivery facts (delivery_health): its numbering and what it knowingly dropped
        "seq",
        "dropped",
        "overflow",
        "quota",
        "later_page",
        # Stape's Data Tag, sGTM common event data
        "event_name",
        "e_n",
        "gaEventCategory",
        "gaEventAction",
        "gaEventLabel",
        "event_category",
        "event_action",
        "event_label",
        "url",
        "href",
        "unique_event_id",
        "user_data",
        "user_properties",
        "measurement_id",
        "page_path",
        "page_hostname",
        "engagement_time_msec",
        "session_engaged",
        "percent_scrolled",
        "link_url",
        "link_domain",
        "outbound",
        "currency",
        "content_type",
        # GA4 hits
        "v",
        "tid",
        "gtm",
        "cid",
        "sid",
        "sct",
        "seg",
        "dl",
        "dr",
        "dt",
        "ul",
        "en",
        "gcs",
        "gcd",
        "_et",
        "_p",
        "_s",
        "_ss",
        "_fv",
        "_nsi",
        "dma",
        "npa",
        "frm",
        "are",
        "sr",
        "uaa",
        "uab",
        "uam",
        "uamb",
        "uap",
        "uapv",
        "uaw",
        "pscdl",
        "tfd",
        "richsstsse",
    )
)
GA4_PARAM_PREFIXES = ("ep.", "epn.", "up.", "upn.")
NUMERIC_PREFIXES = ("epn.", "upn.")
# Objects or arrays, judged key by key; a bare string under them is no analytical value (a number or a boolean
# is: `dropped.consent` counts events).
CONTAINER_KEYS = frozenset(
    normalise_key(k) for k in ("events", "detail", "user_data", "user_properties", "utm", "consent", "dropped")
)


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and is_number(value)


def _name_for_flag(name: str) -> str:
    return name[:40] if re.fullmatch(r"[A-Za-z_][\w.\-]{0,60}", name) else "?"


@dataclass
class Scrubber:
    """Holds the keyed hash and the operator's exceptions; one per process."""

    hash_key: bytes | None
    allowed_keys: frozenset[str] = field(default_factory=frozenset)
    url_params: frozenset[str] = field(default_factory=frozenset)  # query parameters URLs keep beyond utm_*, click ids

    def __post_init__(self) -> None:
        exact = {normalise_key(k) for k in self.allowed_keys if "*" not in k and "?" not in k}
        self._patterns = tuple(re.sub(r"[^0-9a-zß-ÿ*?]", "", k.lower()) for k in self.allowed_keys if k not in exact)
        self.kept_keys = ANALYTICAL_KEYS | exact  # also spares these keys' values in text (`key=value`)
        self.url_params = frozenset(name.strip().lower() for name in self.url_params if name.strip())

    def hash_email(self, email: str) -> str | None:
        return None if self.hash_key is None else hashing.email_hash(self.hash_key, email)

    def pseudonym(self, value: str) -> str | None:
        """An identifier that held a personal value (a client id that is an e-mail): the same keyed hash for
        the same value, so counts and joins still work and the value is gone. None without a key."""
        return None if self.hash_key is None else hashing.pseudonym(self.hash_key, value)

    def allowed(self, name: str) -> bool:
        if name.startswith(GA4_PARAM_PREFIXES):
            name = name.split(".", 1)[1]
        key = normalise_key(name)
        return key in self.kept_keys or any(fnmatchcase(key, pattern) for pattern in self._patterns)

    def scrub(self, value: Any, tally: Tally, own_hashes: bool = False) -> Any:
        """A copy of a parsed JSON value with only allowed keys, at every depth; an e-mail key becomes
        `email_hash`. Strings are left to the gate, which sees every column. A sender's own `email_hash` goes,
        unless `own_hashes` (a replay signed with the key) and it has the form of the collector's hash."""
        if isinstance(value, list):
            return [self.scrub(item, tally, own_hashes) for item in value]
        if not isinstance(value, dict):
            return value
        clean: dict[str, Any] = {}
        for name, item in value.items():
            key = normalise_key(name)
            if key in EMAIL_KEYS and isinstance(item, str):
                digest = self.hash_email(item)
                if digest is not None:
                    clean[EMAIL_HASH_KEY] = digest
                continue
            if key == "emailhash":
                if own_hashes and name == EMAIL_HASH_KEY and isinstance(item, str) and _OWN_HASH.fullmatch(item):
                    clean.setdefault(EMAIL_HASH_KEY, item)
                else:
                    tally.dropped_keys.append(_name_for_flag(name))
                continue
            misplaced = key in CONTAINER_KEYS and isinstance(item, str)
            misplaced |= name.startswith(NUMERIC_PREFIXES) and not _numeric(item)  # GA4's numbers hold numbers
            if key in SECRET_KEYS or key.startswith("sha256") or misplaced or not self.allowed(name):
                tally.dropped_keys.append(_name_for_flag(name))
                continue
            clean[name] = self.scrub(item, tally, own_hashes)
        return clean
