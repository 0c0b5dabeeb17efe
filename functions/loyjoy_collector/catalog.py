"""LoyJoy's event names: the current catalogue and the pre-2021 names that map onto it.

LoyJoy says its names are no forever-constant API and chat flows emit custom names, so the catalogue only
*labels* events (`event_known`); it never decides whether an event is stored.
"""

from __future__ import annotations

import re

EVENT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,99}$")

# Names older LoyJoy flows still send (and `interaction` from older docs) -> today's names. Today's docs still list
# `interaction` beside `session_interacted`; it is renamed all the same, so that one name counts a session's
# interactions from old and new flows alike (and is therefore not in CURRENT_NAMES: a renamed name never is).
LEGACY_NAMES: dict[str, str] = {
    "signin": "sign_in",
    "signup": "sign_up",
    "signout": "sign_out",
    "customer": "customer_updated",
    "newsletter_opt_in": "newsletter_single_opt_in",
    "profiling_opt_in": "profiling_single_opt_in",
    "reminder_opt_in": "reminder_single_opt_in",
    "interaction": "session_interacted",
}

_CONSENT_TOPICS = ("newsletter", "profiling", "reminder")
_CONSENT_STEPS = ("single_opt_in", "double_opt_in", "opt_out", "asked", "rejected")

CURRENT_NAMES: frozenset[str] = frozenset(
    {
        # widget
        "hide",
        "load",
        "open",
        "show",
        "close",
        # session
        "session_started",
        "session_interacted",
        "start",
        "end",
        "screen_time",
        "sub_process_visited",
        "participation",
        # clicks
        "link_clicked",
        # account
        "sign_in",
        "sign_up",
        "sign_out",
        "customer_created",
        "customer_updated",
        # data entry
        "firstname_entered",
        "lastname_entered",
        "phone_number_entered",
        "birthdate_entered",
        "postal_address_updated",
        "email_entered",
        # other
        "intent_matched",
        "message_received",
        "appointment_created",
        "advent_calendar_door_asked",
        "advent_calendar_door_opened",
        "api_exception",
        "api_http_connect_timeout_exception",
        "api_http_status_code",
        "api_http_timeout_exception",
        *(f"{topic}_{step}" for topic in _CONSENT_TOPICS for step in _CONSENT_STEPS),
    }
)

# Families whose members are numbered or open-ended in LoyJoy's docs.
_CURRENT_FAMILIES = re.compile(
    r"^(?:jump_decision_[1-7]|jump_persistent_[1-5]|nps_survey_score_(?:[0-9]|10)|sign_in_pin_[a-z0-9_]+"
    r"|quiz_[a-z0-9_]+|data_collection_[a-z0-9_]+|live_chat_[a-z0-9_]+|api_http_status_code_[0-9]{3})$"
)


def normalise(name: str) -> tuple[str, bool]:
    """Return the current name for `name` and whether it is in LoyJoy's catalogue."""
    current = LEGACY_NAMES.get(name, name)
    return current, current in CURRENT_NAMES or _CURRENT_FAMILIES.match(current) is not None
