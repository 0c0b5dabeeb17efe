"""Personal values found by their shape, in any string, whatever key or language carried them: one pass.

Keys decide most of privacy (see `keys.py`); this is the net under every string that is kept anyway: URLs,
titles, labels, ids, refused bodies that could not be parsed. Each kind of value has a module of its own,
its patterns and its replacer side by side: `addresses.py` (e-mail, IP and street addresses), `phones.py`,
`numbers.py` (IBANs and cards), `tokens.py` (JWTs and base64), `urls.py` (URLs written into text) and
`pairs.py` (`key=value` pairs whose key names a personal field, and bodies that did not parse).

One pass decides which of them can find anything: every detector's needs (`detector.py`) are one RE2 set,
matched once over the text's UTF-8 bytes, and only the detectors whose needs all matched run. A text that no
detector can change costs that one call. After a detector changed the text the set looks again, so each
detector is judged on the text it gets. The pass never fails open: when RE2 cannot answer (its automaton out
of memory), every detector runs.

Escaped and hidden forms are looked at a second time: percent-, unicode- and HTML-escapes decoded, invisible
format characters (zero-width space, soft hyphen, bidi controls) removed and full-width forms, other spaces
and dashes read as ASCII. When only that form gives a value away (`%2B49%20170…`, `jane\\u0040…`,
`+49\\u200b170…`), it is the form kept, without the value.

Every pattern that repeats runs on RE2, whose matching time is linear in its input: the collector is a public
URL, and one crafted 75-byte string must not hold an instance's interpreter for seconds, as a backtracking
engine would. RE2 has no look-around; a boundary a pattern needs is matched as a character of its own (the
`pre` and `post` groups, given back unchanged), and a second pass finds a value whose boundary the value
before it took. What stays on Python's `re` are single-character classes, which cannot backtrack.
"""

from __future__ import annotations

import html
import html.entities
import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote, unquote_plus

from .addresses import EMAILS, IPV4, IPV6, SPELLED_EMAILS, STREETS
from .detector import Detector, Look
from .engine import Pattern, PatternSet
from .numbers import CARDS, IBANS, digit_count
from .pairs import PAIRS, STRICT_PAIRS, STRICT_STRINGS
from .phones import PHONES
from .tally import Tally
from .tokens import BASE64
from .urls import LINKS

# In this order: URLs first (a URL's query is cleaned as a whole), values before pairs (a value's shape is
# surer than its key, and a key may cut a value short), an IPv6 address before the IPv4 address it may end in.
DETECTORS: tuple[Detector, ...] = (
    LINKS,
    EMAILS,
    SPELLED_EMAILS,
    BASE64,
    STREETS,
    IPV6,
    IPV4,
    IBANS,
    CARDS,
    PHONES,
    PAIRS,
    STRICT_PAIRS,
    STRICT_STRINGS,
)

# What the pass itself needs to know of a text, in the same set.
_CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # BigQuery stores them, nobody reads them: removed
_OTHER_DIGITS = r"[^\x00-\x7f\P{Nd}]"  # decimal digits of another script (full-width, Arabic-Indic, …)
# What the second look would change: escapes (percent, `\u0040`, HTML's `&#64;` and named references, a `+`
# of a form-encoded query) ...
_LEGACY_ENTITIES = sorted((name for name in html.entities.html5 if not name.endswith(";")), key=len, reverse=True)
_ESCAPES = (
    r"%[0-9A-Fa-f]{2}|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\+"
    rf"|&(?:#|[A-Za-z][A-Za-z0-9]*;|{'|'.join(_LEGACY_ENTITIES)})"
)
# ... and hidden characters: format characters (zero-width, soft hyphen, bidi), full-width forms, spaces and
# dashes other than ASCII's, joiners and variation selectors. Each can sit inside a value and break its shape.
_HIDDEN_CHARS = (
    r"\p{Cf}|[\x{ff01}-\x{ff5e}\x{3000}\x{034f}\x{fe00}-\x{fe0f}\x{115f}\x{1160}\x{3164}\x{ffa0}]"
    r"|[^\x00-\x7f\P{Zs}]|[^\x00-\x7f\P{Pd}]"
)
_EXTRA = (_CONTROL_CHARS, _OTHER_DIGITS, _ESCAPES, _HIDDEN_CHARS)
_NEEDS = sorted({need for detector in DETECTORS for need in detector.needs} | set(_EXTRA))
_INDEX = {need: index for index, need in enumerate(_NEEDS)}
_PLAN = tuple((detector, tuple(_INDEX[need] for need in detector.needs)) for detector in DETECTORS)
CONTROL, OTHER_DIGITS, ESCAPES, HIDDEN = (_INDEX[need] for need in _EXTRA)
ALL = frozenset(range(len(_NEEDS)))  # what a text RE2 could not answer for is taken to hold


def build_needs(max_mem: int | None = None) -> PatternSet:
    """The one set of every need; a smaller memory budget is for tests that make RE2 fail."""
    return PatternSet(_NEEDS) if max_mem is None else PatternSet(_NEEDS, max_mem)


NEEDS = build_needs()

_CONTROL = re.compile(_CONTROL_CHARS)
_ESCAPE = Pattern(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}")
_TRIVIAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.- "


def matching(text: str) -> frozenset[int]:
    """The needs `text` matches; all of them when RE2 cannot say."""
    found = NEEDS.matching(text.encode())
    return ALL if found is None else frozenset(found)


# ------------------------------------------------------------------------------------ folded forms

# Non-ASCII characters that read as ASCII, or as nothing: digits of other scripts, spaces, dashes, full-width
# forms, and invisible ones (format characters, the grapheme joiner, variation selectors, fillers). Only those
# are ever kept here, so the cache is bounded by their classes, whatever characters texts bring.
_FOLDED: dict[str, str] = {}
_INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0") | frozenset(map(chr, range(0xFE00, 0xFE10)))


def _folded(char: str, hidden: bool) -> str:
    folded = _FOLDED.get(char)
    if folded is None:
        category = unicodedata.category(char)
        if category == "Nd":
            folded = str(unicodedata.decimal(char))
        elif category == "Zs":
            folded = " "
        elif category == "Pd":
            folded = "-"
        elif "\uff01" <= char <= "\uff5e":
            folded = chr(ord(char) - 0xFEE0)  # full-width ASCII
        elif category == "Cf" or char in _INVISIBLE:
            folded = ""
        else:
            return char  # not kept: the cache stays bounded
        _FOLDED[char] = folded
    if not hidden and not folded.isdigit():
        return char
    return folded


def _fold(text: str, hidden: bool) -> str:
    """Each distinct non-ASCII character looked at once, then one translation: digits of any script as ASCII,
    and with `hidden` the hidden characters too."""
    table = {ord(char): _folded(char, hidden) for char in set(text) if char > "\x7f"}
    return text.translate(table)


def ascii_digits(text: str) -> str:
    """Decimal digits of any script as ASCII: a phone number in full-width or Arabic-Indic digits is a phone
    number, and RE2's `\\d` is ASCII."""
    return text if text.isascii() else _fold(text, False)


def _storable(text: str) -> str:
    """Surrogates (which decoding escapes makes) as what they stand for, lone ones as U+FFFD: RE2 reads UTF-8,
    and BigQuery stores only that."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an escaped pair (`\\ud83d\\ude00`) is one character; a lone half is none
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _unescaped(text: str, plus: bool = False) -> str:
    """The text with percent-, unicode- and HTML-escapes decoded (twice: double encoding is common); with
    `plus`, a `+` is a space, as in form-encoded query strings."""
    for round_ in range(2):
        if "%" in text or plus:
            first_plus = plus and round_ == 0  # a `+` that decoding made is a plus sign
            text = unquote_plus(text, errors="replace") if first_plus else unquote(text, errors="replace")
        if "\\" in text:
            text = _storable(_ESCAPE.sub(lambda m: chr(int(m.group(0)[2:], 16)), text))
        if "&" in text:
            text = html.unescape(text)
    return _storable(text)


def _revealed(text: str, found: frozenset[int], plus: bool) -> str:
    """What the text says once its escapes are decoded and its hidden characters folded."""
    if ESCAPES in found:
        text = _unescaped(text, plus)
    return text if text.isascii() else _fold(text, True)


# ------------------------------------------------------------------------------------------ the pass


@lru_cache(maxsize=4096)
def _runnable(found: frozenset[int]) -> tuple[int, ...]:
    """The detectors (their places in DETECTORS) whose needs are all among `found`."""
    return tuple(place for place, (_, needs) in enumerate(_PLAN) if all(need in found for need in needs))


def _pass(text: str, look: Look, found: frozenset[int]) -> tuple[str, frozenset[int]]:
    """The detectors whose needs the text matches, in order; after one changed the text, the needs are
    matched again on what it gave, so each later one is judged on its own input."""
    runnable = _runnable(found)
    step = 0
    while step < len(runnable):
        place = runnable[step]
        step += 1
        changed = DETECTORS[place].replace(text, look)
        if changed is not text and changed != text:
            text = changed
            found = matching(text)
            runnable = tuple(later for later in _runnable(found) if later > place)
            step = 0
    return text, found


# Texts seen lately that held nothing to replace: a site's rows repeat the same bot ids, process names, labels
# and titles, so most strings of a row are found here. Only clean texts are kept, so the cache never holds a
# personal value; it is cleared when full (a flood of unique strings costs it nothing but its use).
_CLEAN: dict[tuple[str, frozenset[str], bool, frozenset[str], bool], None] = {}
CLEAN_CACHE_SIZE = 8192
CLEAN_CACHE_TEXT = 512  # longer texts are rare and seldom repeat


def scrub_text(
    text: str,
    tally: Tally,
    allowed_keys: frozenset[str] = frozenset(),
    strict: bool = False,
    url_params: frozenset[str] = frozenset(),
    links: bool = True,
) -> str:
    """`text` without personal values, storable: control characters removed, lone surrogates replaced.
    `strict` (for bodies that could not be parsed) applies the allow-list to text: a value whose key is not in
    `allowed_keys` is gone. URLs written into the text and under URL keys keep only allowed query parameters
    (`urls.py`), `url_params` among them; `links=False` for a URL `urls.py` already cleaned as a whole."""
    if len(text) <= 15 and not text.strip(_TRIVIAL_CHARS):
        return text  # nothing can be found in it: no digits, no `@`, `:`, `=` or escapes, shorter than base64
    key = (text, allowed_keys, strict, url_params, links) if len(text) <= CLEAN_CACHE_TEXT else None
    if key is not None and key in _CLEAN:
        return text
    before = tally.replaced
    clean = _scrub(text, tally, allowed_keys, strict, url_params, links)
    if key is not None and clean == text and tally.replaced == before:
        if len(_CLEAN) >= CLEAN_CACHE_SIZE:
            _CLEAN.clear()
        _CLEAN[key] = None
    return clean


def _scrub(text: str, tally: Tally, allowed: frozenset[str], strict: bool, urls: frozenset[str], links: bool) -> str:
    try:
        data = text.encode()
    except UnicodeEncodeError:
        text = _storable(text)
        data = text.encode()
    answer = NEEDS.matching(data)
    if answer is not None and len(answer) == 1:
        return text  # the sentinel alone: no detector can change it, nothing to fold or decode
    found = ALL if answer is None else frozenset(answer)
    if CONTROL in found or OTHER_DIGITS in found:
        text = ascii_digits(_CONTROL.sub("", text)) if OTHER_DIGITS in found else _CONTROL.sub("", text)
        found = matching(text)
    if not _runnable(found) and ESCAPES not in found and HIDDEN not in found:
        return text  # only some of a detector's needs: a digit, but no street word
    plus = "=" in text and not any(c in text for c in ' {}"')  # `+` is a space in a query string only
    first, found = _pass(text, Look(tally, allowed, strict, urls, links), found)
    if ESCAPES in found or HIDDEN in found:
        revealed = _revealed(first, found, plus)
        if revealed != first:
            probe = Look(Tally(), allowed, strict, urls, False)
            second, _ = _pass(revealed, probe, matching(revealed))
            if probe.tally.replaced:
                tally.replaced += probe.tally.replaced
                return second
    return first


@lru_cache(maxsize=4096)  # a site's events carry few names: each is read once
def personal_event_name(name: str) -> bool:
    """An event name (snake_case, maybe a chat flow's own) that carries a phone number, an address or another
    value the detectors know (`tel_01705551234`, `mail_jane_example_com`): its words are read as text."""
    if digit_count(name) >= 6:
        return True
    words = name.replace("_", " ")
    probe = Tally()
    scrub_text(words, probe)
    return probe.replaced > 0
