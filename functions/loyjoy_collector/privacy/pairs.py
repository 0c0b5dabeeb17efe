"""Pairs: `key=value` and `"key": "value"` written into any text, and bodies that did not parse.

A pair whose key names a personal field or a secret (`names.py`, in six languages) loses its value, as do the
pairs under a URL key (whose URL keeps what a page column keeps), a language key (BCP 47 tags only) and
GA4's numeric parameters (numbers only). A body that could not be parsed (`strict`) is held to the allow-list
as text: a string value is kept only under an allowed key, and a string cut off by the end of the body never.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, unquote_plus

from .detector import Detector, Look
from .engine import WORD, Match, Pattern
from .languages import language_tags
from .names import (
    LANGUAGE_KEYS,
    PERSONAL_STEMS,
    PERSONAL_WORDS,
    URL_VALUE_KEYS,
    last_key,
    normalise_key,
    personal_key,
)
from .numbers import is_number
from .placeholders import REDACTED
from .tally import Tally
from .urls import clean_url, looks_like_url

_KEY = rf"[\pL_][{WORD}.\-]*"  # unbounded: a counted repeat of a Unicode class swells the automaton
# An unquoted value: not `//…` (a protocol-relative URL) and not an object or array, spelled out for RE2.
_END = "&\\s,;}\\]\"'#?"  # what ends a value, and what it may not end on
_MID = "&\\n\\r,;}\\]\"'#?"  # inside, spaces are allowed
_UNQUOTED = rf"(?:[^{_END}{{\[/](?:[^{_MID}]*[^{_END}])?|/(?:[^{_MID}/][^{_MID}]*[^{_END}]|[^{_END}/])?)"
_KEYED = Pattern(
    rf"""(?:"(?P<k1>{_KEY})"|'(?P<k2>{_KEY})'|(?P<k3>{_KEY}))\s*(?P<sep>[:=])\s*"""
    rf"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|{_UNQUOTED})"""
)

_IDENTIFIER = Pattern(rf"[\pL_][{WORD}.\-]*")
_GAP_WORD = Pattern(rf"\[[a-z]+\]|\pL[{WORD}.\-]*")
_QUOTED = Pattern(r'"(?:[^"\\]|\\.)*"(?P<key>\s*:)?|"(?:[^"\\]|\\.)*$')


def is_placeholder(text: str) -> bool:
    """`[email]`, `[redacted]`: what a detector left, and what the next one must leave."""
    inner = text[1:-1]
    return text[:1] == "[" and text[-1:] == "]" and inner.isascii() and inner.isalpha() and inner.islower()


def _before_value(match: Match) -> str:
    """The key and separator of a pair: the value is the pattern's last group."""
    whole, value = match.group(0), match.named("value") or ""
    return whole[: len(whole) - len(value)]


def _key_of(match: Match) -> str:
    return match.named("k1") or match.named("k2") or match.named("k3") or ""


def _url_value(match: Match, tally: Tally, url_params: frozenset[str]) -> str | None:
    """A URL under a URL key (`dl=`, `"url":`) keeps what a page column keeps; None when it holds no URL."""
    value = match.named("value")
    mark = value[0] if value[:1] in ("'", '"') else ""
    inner = value[1:-1] if mark and len(value) >= 2 else value
    encoded = "%" in inner[:12]  # https%3A%2F%2F…, as in a query string
    url = unquote(inner, errors="replace") if encoded else inner
    if not looks_like_url(url):
        return None
    cleaned = clean_url(url, tally, url_params)
    if cleaned == url:
        return None
    prefix = _before_value(match)
    return prefix + mark + (quote(cleaned, safe="") if encoded else cleaned) + mark


def _keyed(match: Match, tally: Tally, allowed: frozenset[str], strict: bool, urls: frozenset[str]) -> str:
    key = _key_of(match)
    name = last_key(key)
    if name in URL_VALUE_KEYS:
        cleaned = _url_value(match, tally, urls)
        if cleaned is not None:
            return cleaned
    value = match.named("value") or ""
    quoted = len(value) > 2 and value[0] in "\"'"
    if name in LANGUAGE_KEYS:
        inner = unquote_plus(value.strip("\"'"), errors="replace")
        probe = Tally()
        if inner and (language_tags(inner, probe) is None or probe.replaced):
            tally.replaced += 1
            quote = value[0] if value[:1] in ("'", '"') else ""
            return _before_value(match) + f"{quote}{REDACTED}{quote}"
        return match.group(0)
    if key.startswith(("epn.", "upn.")) and not is_number(value.strip("\"'")):
        tally.replaced += 1  # GA4's numeric parameters hold numbers: anything else is no analytics
        return _before_value(match) + REDACTED
    if not strict and not quoted and not personal_key(key):
        return match.group(0)  # the common case, decided without looking further
    inner = value.strip("\"'")
    keep = not inner or name in allowed or is_placeholder(inner)
    if keep or (not strict and not personal_key(key)):
        if quoted and ("=" in inner or ":" in inner):
            # a kept quoted value may hold pairs of its own: "url": "https://…/?vorname=Erika"
            body = _KEYED.sub(lambda m: _keyed(m, tally, allowed, False, urls), value[1:-1])
            return _before_value(match) + value[0] + body + value[-1]
        return match.group(0)
    tally.replaced += 1
    quote = value[0] if value[0] in "\"'" else ""
    return _before_value(match) + f"{quote}{REDACTED}{quote}"


def _strict_quoted(text: str, tally: Tally, allowed: frozenset[str]) -> str:
    """JSON-like text that did not parse. A string value is kept only under an allowed key (the key last seen
    before it, however deep the arrays between them); a string cut off by the end of the body is never kept,
    nor is any string value of a body with damaged bytes (its quotes cannot be trusted). Words outside quotes
    (a stray or lost quote shifts every string by one) are redacted too, but for JSON's own literals."""
    damaged = "\ufffd" in text
    current_key = ""
    out: list[str] = []
    data = text.encode()
    position = 0  # offsets are RE2's, in UTF-8 bytes
    for match in _QUOTED.matches(data):
        out.append(_GAP_WORD.sub(lambda m: _gap_word(m, tally), data[position : match.start()].decode()))
        position = match.end()
        token = match.group(0)
        is_key = match.named("key") is not None
        dangling = len(token) < 2 or not token.endswith('"') or (not is_key and token.endswith('\\"'))
        trusted = not dangling and not damaged  # quotes that can be believed: a complete string of a whole body
        inner = token[1 : token.rindex('"')] if is_key else (token[1:] if dangling else token[1:-1])
        if is_key and len(inner) <= 61 and _IDENTIFIER.fullmatch(inner):
            current_key = inner
            out.append(token)
        elif not inner or is_placeholder(inner) or (trusted and normalise_key(current_key) in allowed):
            out.append(token)
        else:
            tally.replaced += 1
            out.append(f'"{REDACTED}"' + (token[token.rindex('"') + 1 :] if is_key else ""))
    out.append(_GAP_WORD.sub(lambda m: _gap_word(m, tally), data[position:].decode()))
    return "".join(out)


def _gap_word(match: Match, tally: Tally) -> str:
    word = match.group(0)
    if word in ("true", "false", "null") or is_placeholder(word):
        return word
    tally.replaced += 1
    return REDACTED


def _pairs(text: str, look: Look) -> str:
    return _KEYED.sub(lambda m: _keyed(m, look.tally, look.allowed, look.strict, look.urls), text)


# Outside a body that did not parse, a pair changes only under a key of a kind of its own (personal, URL,
# language, GA4 numeric) or with a quoted value (which may hold pairs of its own). The key's need spells each
# word letter by letter, with what `normalise_key` drops between the letters (`_`, `-`, `.`, letters outside
# Latin-1) and the five characters outside Latin-1 that lower-case into it (`İ` is an `i` there, which RE2's
# case folding does not know), so no way of writing a key slips past it.
_DROPPED = r"(?:[_.\-ªµº]|[^\x00-\x{ff}])*"
_FOLDED_INTO = {"i": "iİ", "k": "kK", "ß": "ßẞ", "å": "åÅ", "ÿ": "ÿŸ"}


def _spelled(word: str) -> str:
    return _DROPPED.join(f"[{_FOLDED_INTO[letter]}]" if letter in _FOLDED_INTO else letter for letter in word)


_WHOLE_KEYS = sorted(PERSONAL_WORDS | URL_VALUE_KEYS | LANGUAGE_KEYS)
_KEY_PARTS = sorted(set(PERSONAL_STEMS))
_TELLING_KEY = (
    r"(?i)(?:"
    + "|".join(_spelled(word) for word in _WHOLE_KEYS)
    + rf"){_DROPPED}[\"']?\s*[:=]|(?:"
    + "|".join(_spelled(stem) for stem in _KEY_PARTS)
    + rf")[{WORD}.\-]*[\"']?\s*[:=]|[eu]pn\.|[:=]\s*[\"']"
)
PAIRS = Detector("key=value pairs", (_TELLING_KEY,), lambda text, look: text if look.strict else _pairs(text, look))
# In a body that did not parse every pair is held to the allow-list: each one is looked at.
STRICT_PAIRS = Detector(
    "key=value pairs, strict", (r"[:=]",), lambda text, look: _pairs(text, look) if look.strict else text
)

# Last: what the allow-list keeps of a body that did not parse.
STRICT_STRINGS = Detector(
    "strings of a body that did not parse",
    ('"',),
    lambda text, look: _strict_quoted(text, look.tally, look.allowed) if look.strict else text,
)
