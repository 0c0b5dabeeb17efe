"""Addresses: e-mail addresses (however damaged, escaped or spelled out), IP addresses, street addresses.

An e-mail is anything shaped like `local@domain`, however damaged the local part, however escaped the `@`
(`%40`, `\\u0040`, `&#64;`, full-width), with `+` tags and international domains; `jane(at)example(dot)com`
is one too. IPv4 and IPv6 addresses are found by their syntax (`ipaddress` decides), street addresses by a
street word and a house number in German, English, French, Italian, Spanish and Dutch.

False positives are the price: `package@1.2` reads as an e-mail, a version `1.2.3.4` as an IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re

from .detector import Detector, Look
from .engine import WORD, Match, Pattern, bounded, edges, sub_twice
from .placeholders import EMAIL_PLACEHOLDER, IP_PLACEHOLDER, STREET_PLACEHOLDER
from .tally import Tally

# ------------------------------------------------------------------------------------------- e-mail

_AT = r"(?:@|\x{ff20}|\x{fe6b}|%40|%2540|\\u0040|\\x40|&#0*64;|&#x0*40;|&commat;)"
_ADDRESS_CHARS = r"[^\s\"'<>()\[\]{},;:/=&?#|@\x{ff20}\x{fe6b}`]"
_EMAIL = Pattern(rf"(?i){_ADDRESS_CHARS}+{_AT}{_ADDRESS_CHARS}{{2,}}")
# Second pass, for what is left: every character RFC 5322 allows in a local part (`=`, `&`, `?`, `/`, `'`,
# backquotes, braces). Not first: in a URL it would take `?email=` along with the address.
_EMAIL_RFC = Pattern(rf"(?i)[^\s\"<>()\[\],;:@\x{{ff20}}\x{{fe6b}}]+{_AT}{_ADDRESS_CHARS}{{2,}}")
_HAS_AT = Pattern(rf"(?i){_AT}")
# Written out for people and harvesters: jane(at)example(dot)com, jane [at] example [dot] com, jane at example.com
_OPEN, _CLOSE = r"[(\[{<]", r"[)\]}>]"
_OBFUSCATED_AT = rf"(?:\s*{_OPEN}\s*(?:at|ät)\s*{_CLOSE}\s*|\s+(?:at|ät)\s+)"
_OBFUSCATED_DOT = rf"(?:\s*\.\s*|\s*{_OPEN}\s*(?:dot|punkt)\s*{_CLOSE}\s*|\s+(?:dot|punkt)\s+)"
_EMAIL_SPELLED = Pattern(
    rf"(?i)(?:^|(?P<pre>[^{WORD}.%+\-]))(?P<v>[{WORD}.%+\-]+{_OBFUSCATED_AT}[{WORD}\-]+(?:{_OBFUSCATED_DOT}[{WORD}\-]+)+)"
)
_SPELLED_HINT = r"(?i)(?:[(\[{<]\s*(?:at|ät)\s*[)\]}>]|\s(?:at|ät)\s)"  # what every spelled-out address has
_SPELLED_AT_SPLIT = Pattern(rf"(?i){_OBFUSCATED_AT}")
_LETTER = re.compile(r"[^\W\d_]")  # one character class: cannot backtrack


def _email(match: Match, tally: Tally) -> str:
    if not _LETTER.search(_HAS_AT.split_once(match.group(0))[-1]):
        return match.group(0)  # "3@45" is a score, not an address
    tally.replaced += 1
    return EMAIL_PLACEHOLDER


def _emails(text: str, look: Look) -> str:
    text = _EMAIL.sub(lambda m: _email(m, look.tally), text)
    if _HAS_AT.search(text):
        text = _EMAIL_RFC.sub(lambda m: _email(m, look.tally), text)
    return text


def _spelled_email(match: Match, tally: Tally) -> str:
    if not _LETTER.search(_SPELLED_AT_SPLIT.split_once(match.named("v") or "")[-1]):
        return match.group(0)  # "meet at 10.30" is a time
    tally.replaced += 1
    return edges(match, EMAIL_PLACEHOLDER)


def _spelled_emails(text: str, look: Look) -> str:
    return sub_twice(_EMAIL_SPELLED, lambda m: _spelled_email(m, look.tally), text)


EMAILS = Detector("e-mail", (rf"(?i){_AT}",), _emails)
SPELLED_EMAILS = Detector("e-mail spelled out", (_SPELLED_HINT,), _spelled_emails)

# ------------------------------------------------------------------------------------- IP addresses

_IPV4_CORE = r"\d{1,3}(?:\.\d{1,3}){3}"
_IPV4 = Pattern(bounded(_IPV4_CORE, rf"{WORD}.", rf"{WORD}."))
_IPV6 = Pattern(bounded(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}", rf"{WORD}:.", rf"{WORD}:"))


def _ipv4(match: Match, tally: Tally) -> str:
    found = match.named("v")
    if any(int(octet) > 255 for octet in found.split(".")):
        return match.group(0)
    before = match.before("v", 2)
    if len(before) == 2 and before[1] == "/" and before[0].isalpha():
        return match.group(0)  # a product token's version (`Chrome/120.0.0.0`), not an address
    tally.replaced += 1
    return edges(match, IP_PLACEHOLDER)


def _ipv6(match: Match, tally: Tally) -> str:
    found = match.named("v")
    if len(found) > 45 or found.count(":") < 2:
        return match.group(0)
    try:
        ipaddress.IPv6Address(found)
    except ValueError:
        return match.group(0)  # 12:30:45 is a time
    tally.replaced += 1
    return edges(match, IP_PLACEHOLDER)


# First: an IPv6 address may end in an IPv4 one. An address without a digit (`a::b`) is left as it is.
IPV6 = Detector(
    "IPv6", (r":[0-9A-Fa-f]{0,4}:", r"\d"), lambda text, look: sub_twice(_IPV6, lambda m: _ipv6(m, look.tally), text)
)
IPV4 = Detector("IPv4", (_IPV4_CORE,), lambda text, look: sub_twice(_IPV4, lambda m: _ipv4(m, look.tally), text))

# ------------------------------------------------------------------------------------ street addresses

# A street and a house number, as written in the six languages (the number is what makes it an address).
_UPPER = "A-ZÄÖÜ"
_STREET = Pattern(
    bounded(
        rf"[{_UPPER}][{WORD}.\-]*(?:straße|strasse|str\.|gasse|weg|allee|platz|damm|ufer|straat|laan|gracht|plein|kade)"
        r"\s*\d{1,4}\s?[a-zA-Z]?"
        rf"|[{_UPPER}][{WORD}\-]*\s+(?:Straße|Strasse|Str\.|Gasse|Weg|Allee|Platz|Damm|Ufer)\s*\d{{1,4}}[a-z]?"
        rf"|\d{{1,5}}[A-Za-z]?\s*,?\s+(?:[A-Z][{WORD}'\-]*\s+){{1,3}}(?:Street|St\.|Avenue|Ave\.?|Road|Rd\.|Lane|Drive|Boulevard|Way)"
        rf"|\d{{1,4}}\s*,?\s+(?:rue|avenue|boulevard|bd|chemin|allée|impasse|place)\s+(?:(?:de|du|des|la|le|l'|d')\s*)*[A-ZÀ-Ý][{WORD}'\-]*"
        rf"|(?:[Vv]ia|[Vv]iale|[Pp]iazza|[Cc]orso|[Cc]alle|[Aa]venida|[Pp]laza|[Pp]aseo|[Cc]arrer)\s+(?:[{WORD}'\-]+\s+){{0,3}}"
        rf"[{WORD}'\-]+,?\s+(?:n\.?\s*|nº\s*)?\d{{1,4}}",
        WORD,
        WORD,
    )
)
# What any street pattern needs: one of its words (a literal alternation, matched as one automaton).
_STREET_WORD = (
    r"(?i)stra(?:ss|ß)e|str\.|gasse|weg|allee|platz|damm|ufer|straat|laan|gracht|plein|kade|street|st\.|avenue|ave"
    r"|road|rd\.|lane|drive|boulevard|way|rue|bd|chemin|allée|impasse|place|via|piazza|corso|calle|avenida|plaza"
    r"|paseo|carrer"
)


def _street(match: Match, tally: Tally) -> str:
    tally.replaced += 1
    return edges(match, STREET_PLACEHOLDER)


STREETS = Detector(
    "street address",
    (_STREET_WORD, r"\d"),
    lambda text, look: sub_twice(_STREET, lambda m: _street(m, look.tally), text),
)
