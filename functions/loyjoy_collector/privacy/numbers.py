"""Numbers and cards: IBANs (country code and mod-97 checksum), card numbers (Luhn), and JSON numbers that are
phone or card numbers; the digits of any script read as ASCII, which every digit detector relies on.

An IBAN is found by its registry's country codes and its checksum, which keep hex ids and the like out; a
card number grouped by four, or as a bare run of a card network's prefix and length (a millisecond time starts
with 1), and only with a valid Luhn digit. A JSON number of phone or card length (`"value": 4917055512345`, a
GA4 `epn.*`) is one unless its key names a time, a duration or an id.
"""

from __future__ import annotations

import re
import unicodedata

from .detector import Detector, Look
from .engine import WORD, Match, Pattern, bounded, edges, sub_twice
from .names import last_key
from .placeholders import CARD_PLACEHOLDER, IBAN_PLACEHOLDER, PHONE_PLACEHOLDER
from .tally import Tally

# What a phone, card or IBAN number needs: eight digits with at most four separators between each two
# (`(089) / 1234567`).
CLOSE_DIGITS = r"\d(?:[\s./\-\x{2013}()+]{0,4}\d){7}"

# ------------------------------------------------------------------------------------------- digits

_ASCII_DIGITS = str.maketrans("", "", "0123456789")
_NON_DIGIT = re.compile(r"\D")  # one character class


class _UnicodeDigits(dict[int, int]):
    """Decimal digits of any script (full-width, Arabic-Indic, Devanagari) as ASCII, learnt as they are met:
    a phone number in full-width digits is a phone number, and RE2's `\\d` is ASCII."""

    def __missing__(self, code: int) -> int:
        value = unicodedata.decimal(chr(code), None)
        self[code] = code if value is None else ord(str(value))
        return self[code]


_DIGITS_OF_ANY_SCRIPT = _UnicodeDigits()


def ascii_digits(text: str) -> str:
    return text if text.isascii() else text.translate(_DIGITS_OF_ANY_SCRIPT)


def digit_count(text: str) -> int:
    return len(text) - len(text.translate(_ASCII_DIGITS))


def _digits(text: str) -> str:
    return _NON_DIGIT.sub("", text)


def is_number(text: str) -> bool:
    """A decimal number as a query string writes it: `12`, `-3.5`."""
    head, _, tail = text.lstrip("-").partition(".")
    return bool(head) and head.isascii() and head.isdigit() and (not tail or (tail.isascii() and tail.isdigit()))


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a Luhn digit doubled, its digits summed


def _luhn(number: str) -> bool:
    digits = [ord(char) - 48 for char in reversed(number)]
    return (sum(digits[0::2]) + sum(_DOUBLED[digit] for digit in digits[1::2])) % 10 == 0


# --------------------------------------------------------------------------------------------- IBAN

# The countries of the IBAN registry; with the checksum this keeps hex ids and the like out.
IBAN_COUNTRIES = frozenset(
    (  # noqa: SIM905
        "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL GR GT HN HR HU "
        "IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO OM PK PL PS PT QA RO RS RU SA "
        "SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE"
    ).split()
)
_IBAN = Pattern(bounded(r"[A-Z]{2}\d{2}(?:\s?[A-Z0-9]){11,30}", "A-Za-z0-9", "A-Za-z0-9"))
# Letters as the IBAN checksum reads them (A=10 … Z=35); digits stay.
_IBAN_DIGITS = {ord(letter): str(value) for value, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)}


def _iban(match: Match, tally: Tally) -> str:
    """The longest prefix with a valid checksum: the pattern may have run on into a following word. Only
    prefixes that end before a space or at the end are tried (a handful), each one C-speed big-number step."""
    found = match.named("v") or ""
    if found[:2] not in IBAN_COUNTRIES:
        return match.group(0)
    head = found[:4].translate(_IBAN_DIGITS)  # country and check digits, moved to the end
    end = len(found)
    while end > 14:
        compact = found[4:end].replace(" ", "")
        if 11 <= len(compact) <= 30 and int(compact.translate(_IBAN_DIGITS) + head) % 97 == 1:
            tally.replaced += 1
            return edges(match, IBAN_PLACEHOLDER + found[end:])
        end = found.rfind(" ", 0, end)
    return match.group(0)


IBANS = Detector("IBAN", (CLOSE_DIGITS,), lambda text, look: sub_twice(_IBAN, lambda m: _iban(m, look.tally), text))

# -------------------------------------------------------------------------------------------- cards

# Grouped by four, or a bare run of a card network's length and prefix (a millisecond time starts with 1).
_CARD = Pattern(bounded(r"\d{4}[ \-]\d{4}[ \-]\d{4}[ \-]\d{1,7}|3[47]\d{13}|[4-6]\d{15}", rf"{WORD}.,", rf"{WORD}.,"))


def _card(match: Match, tally: Tally) -> str:
    if not _luhn(_digits(match.named("v"))):
        return match.group(0)
    tally.replaced += 1
    return edges(match, CARD_PLACEHOLDER)


def _cards(text: str, look: Look) -> str:
    return sub_twice(_CARD, lambda m: _card(m, look.tally), text)


CARDS = Detector("card number", (CLOSE_DIGITS,), _cards)

# ------------------------------------------------------------------------------------- JSON numbers

# Numbers that are long by nature: times, durations, ids. Other numbers of phone or card length are checked.
_NUMERIC_SUFFIXES = ("id", "ts", "ms", "msec", "time", "timestamp", "at", "date", "epoch", "seconds", "sec")


def personal_number(value: float, key: str) -> str | None:
    """The placeholder for a JSON number that is a phone or card number (`"value": 4917055512345`, a GA4
    `epn.*`), or None. Numbers under keys that name times, durations and ids are what they say."""
    if isinstance(value, float) and not value.is_integer():
        return None
    number = abs(int(value))
    if number < 10**8:
        return None
    name = last_key(key)
    if name.endswith(_NUMERIC_SUFFIXES):
        return None
    digits = str(number)
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return CARD_PLACEHOLDER
    return PHONE_PLACEHOLDER if 9 <= len(digits) <= 15 else None
