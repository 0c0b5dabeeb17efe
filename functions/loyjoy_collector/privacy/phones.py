"""Phone numbers, as people write them: international, national with a trunk zero, North American, grouped.

International (`+49 170 …`, `0049 (0)30 …`), national with a trunk zero (`0170 1234567`, `(030) 1234567`,
`(0)30 …`), North American (`212-555-0199`, `(212) 555-0199`, `212.555.0199`), and national numbers written
in groups without a trunk zero (`347 123 4567`, `612 34 56 78`). Groups may be parted by a slash with or
without spaces, as German numbers are written: `089/1234567`, `089 / 123 45 67`, `+49 (0)89 / 1234567`,
`0049 89/1234567`. A number counts by its digits: a date never (`01/02/2024` has 8 digits, national numbers
need 9).

False positives are the price: a national number with a leading zero and separators (`0170 1234567`) cannot
be told from an order number written the same way.
"""

from __future__ import annotations

import re

from .detector import Detector, Look
from .engine import WORD, Match, Pattern, bounded, edges, sub_twice
from .numbers import CLOSE_DIGITS, digit_count
from .placeholders import PHONE_PLACEHOLDER
from .tally import Tally

_SEP = r"(?:\s?/\s?|[\s./\-\x{2013}])?"  # `089/123`, `089 / 123`: the German slash, with spaces or without
_INTERNATIONAL_PREFIX = re.compile(r"^(?:\+|00|%2[Bb])")  # anchored, no repetition
_PHONE_INTL = Pattern(
    bounded(
        rf"(?:\+|00|%2[Bb])\s?[1-9]\d{{0,2}}{_SEP}(?:\(0\){_SEP})?\(?\d{{1,5}}\)?(?:{_SEP}\d{{2,}}){{1,5}}",
        rf"{WORD}+\-",
        rf"{WORD}\-",
    )
)
_PHONE_NATIONAL = Pattern(
    bounded(
        r"(?:\(0\)\s?\d{1,5}|\(?0\d{1,5}\)?)(?:(?:\s?/\s?|[\s\-\x{2013}])\d{2,}){1,4}|0[1-9]\d{8,11}",
        rf"{WORD}+.\-",
        rf"{WORD}/\-",
    )
)
# North American (NANP): (212) 555-0199, 212-555-0199, 212.555.0199, +1 212 555 0199
_PHONE_NANP = Pattern(
    bounded(r"(?:\+?1[\s.\-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.\-])\d{3}[\s.\-]\d{4}", rf"{WORD}+.,\-", rf"{WORD}/.\-")
)
# National numbers written without a trunk zero, in groups (347 123 4567, 612 34 56 78, 79 123 45 67)
_PHONE_GROUPED = Pattern(bounded(r"[1-9]\d{1,3}(?:[ \-]\d{2,4}){2,4}", rf"{WORD}+.,\-", rf"{WORD}/.,\-"))


def _phone(match: Match, tally: Tally, least: int) -> str:
    # E.164's 15 digits do not count the international prefix (+, 00) or a trunk zero written as (0)
    number = _INTERNATIONAL_PREFIX.sub("", match.named("v").strip()).replace("(0)", "")
    if digit_count(number) < least:
        return match.group(0)
    tally.replaced += 1  # more than E.164's 15: numbers written side by side, each a phone number
    return edges(match, PHONE_PLACEHOLDER)


def _phones(text: str, look: Look) -> str:
    tally = look.tally
    text = sub_twice(_PHONE_INTL, lambda m: _phone(m, tally, 8), text)
    text = sub_twice(_PHONE_NATIONAL, lambda m: _phone(m, tally, 9), text)  # 8 digits would take 01/02/2024
    text = sub_twice(_PHONE_NANP, lambda m: _phone(m, tally, 10), text)
    return sub_twice(_PHONE_GROUPED, lambda m: _phone(m, tally, 9), text)


PHONES = Detector("phone number", (CLOSE_DIGITS,), _phones)
