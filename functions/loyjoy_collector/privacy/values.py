"""Personal values found by their shape, in any string, whatever key or language carried them.

Keys decide most of privacy (see `keys.py`); this is the net under every string that is kept anyway: URLs,
titles, labels, ids, refused bodies that could not be parsed. It is built to survive damage, since hostile or
broken senders do not send tidy values: an e-mail is anything shaped like `local@domain` (however damaged the
local part, however escaped the `@`, with `+` tags and international domains); a JWT is found by its segments
one by one, and so is any base64 run that decodes to readable text; phone numbers, IBANs and card numbers are
found by their formats and checksums (international, national with a trunk zero, North American, grouped),
IPv4 and IPv6 addresses by their syntax, street addresses by a street word and a house number; `key=value` and
`"key": "value"` pairs whose key names a personal field (in German, English, French, Italian, Spanish or Dutch)
lose their value. Percent-, unicode- and HTML-escaped forms are decoded and looked at again; `jane(at)example
(dot)com` is an address too.

Every pattern that repeats runs on RE2, whose matching time is linear in its input: the collector is a public
URL, and one crafted 75-byte string must not hold an instance's interpreter for seconds, as a backtracking
engine would. RE2 has no look-around; a boundary a pattern needs is matched as a character of its own (the
`pre` and `post` groups, given back unchanged), and a second pass finds a value whose boundary the value
before it took. What stays on Python's `re` are single-character classes, which cannot backtrack.

False positives are the price: `package@1.2` reads as an e-mail, a national number with a leading zero and
separators (`0170 1234567`, `030/12345678`) as a phone number. Plain dates are kept (a date is a birth date
only by its key), and so are names in free text: no shape tells `Erika` from a product.
"""

from __future__ import annotations

import base64
import binascii
import html
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import quote, unquote, unquote_plus

from .engine import Match, Pattern
from .placeholders import (
    BASE64_PLACEHOLDER,
    CARD_PLACEHOLDER,
    EMAIL_PLACEHOLDER,
    IBAN_PLACEHOLDER,
    IP_PLACEHOLDER,
    JWT_PLACEHOLDER,
    PHONE_PLACEHOLDER,
    REDACTED,
    STREET_PLACEHOLDER,
)
from .tally import Tally
from .urls import clean_url, looks_like_url


@lru_cache(maxsize=4096)
def normalise_key(name: str) -> str:
    """`First-Name`, `firstName` and `first_name` are one key: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-zß-ÿ]", "", name.lower())


@lru_cache(maxsize=4096)
def last_key(key: str) -> str:
    """`ep.vorname` is judged as `vorname`: a GA4 parameter's name."""
    return normalise_key(key.rpartition(".")[2])


# Keys that name a personal field, normalised. Short words match whole keys only (`ort` is not in `sort`);
# stems match anywhere in a key (`mobile_phone`, `telefon_privat`, `customerLastName`).
PERSONAL_WORDS = frozenset(
    {
        # en
        "name",
        "fullname",
        "nickname",
        "dob",
        "age",
        "zip",
        "zipcode",
        "city",
        "town",
        "ip",
        "ipaddress",
        "text",
        "message",
        "comment",
        "payload",
        "freetext",
        "answer",
        "note",
        "notes",
        "salutation",
        "ssn",
        "bic",
        "swift",
        "taxid",
        "gender",
        "pin",
        "otp",
        "pwd",
        "cvv",
        "cvc",
        # de
        "plz",
        "ort",
        "wohnort",
        "anrede",
        "antwort",
        "nachricht",
        "kommentar",
        "geschlecht",
        "alter",
        # fr
        "nom",
        "rue",
        "ville",
        "civilite",
        # it
        "nome",
        "via",
        "cap",
        "citta",
        "eta",
        "sesso",
        # es
        "calle",
        "ciudad",
        "edad",
        "sexo",
        "cp",
        # nl
        "naam",
        "straat",
        "woonplaats",
        "leeftijd",
    }
)
PERSONAL_STEMS = (
    # en
    "firstname",
    "lastname",
    "surname",
    "givenname",
    "familyname",
    "middlename",
    "maidenname",
    "username",
    "phone",
    "mobile",
    "telephone",
    "cellphone",
    "fax",
    "birth",
    "address",
    "street",
    "housenumber",
    "postal",
    "postcode",
    "iban",
    "accountnumber",
    "creditcard",
    "cardnumber",
    "passport",
    "socialsecurity",
    "nationalid",
    "idnumber",
    "licensenumber",
    "email",
    "mail",
    "password",
    "passwd",
    "token",
    "secret",
    "apikey",
    "authorization",
    "customer",
    "user",
    # de
    "vorname",
    "nachname",
    "familienname",
    "geburt",
    "telefon",
    "handy",
    "mobil",
    "rufnummer",
    "anschrift",
    "adresse",
    "strasse",
    "straße",
    "hausnummer",
    "postleitzahl",
    "kontonummer",
    "ausweis",
    "steuerid",
    "steuernummer",
    "sozialversicherung",
    "passwort",
    "kunde",
    "benutzer",
    # fr
    "prenom",
    "prénom",
    "nomdefamille",
    "telephone",
    "téléphone",
    "portable",
    "naissance",
    "codepostal",
    "numerorue",
    # it
    "cognome",
    "telefono",
    "cellulare",
    "nascita",
    "indirizzo",
    "codicefiscale",
    # es
    "nombre",
    "apellido",
    "teléfono",
    "movil",
    "móvil",
    "celular",
    "nacimiento",
    "direccion",
    "dirección",
    "codigopostal",
    "domicilio",
    "dni",
    # nl
    "voornaam",
    "achternaam",
    "telefoon",
    "mobiel",
    "geboorte",
    "adres",
    "huisnummer",
)


@lru_cache(maxsize=4096)
def personal_key(name: str) -> bool:
    key = last_key(name)
    return key in PERSONAL_WORDS or any(stem in key for stem in PERSONAL_STEMS)


# Keys whose values are languages (normalised): BCP 47 tags or nothing.
LANGUAGE_KEYS = frozenset({"language", "ul", "locale", "lang", "acceptlanguage"})
# Keys whose values are URLs (normalised), whose query strings `urls.py` cleans wherever they appear.
URL_VALUE_KEYS = frozenset({"url", "href", "linkurl", "pagelocation", "pagereferrer", "pagepath", "dl", "dr", "link"})

# ----------------------------------------------------------------------------------------- the engine


def _edges(match: Match, replacement: str) -> str:
    """The replacement between the boundary characters the pattern had to take."""
    return (match.named("pre") or "") + replacement + (match.named("post") or "")


def _sub_twice(pattern: Pattern, replace: Callable[[Match], str], text: str) -> str:
    """A boundary character taken by one match (`post`) may be the one the next match needs (`pre`): a second
    pass, only after a first that found something, finds those."""
    text, found = pattern.subn(replace, text)
    return pattern.sub(replace, text) if found else text


def _bounded(core: str, before: str, after: str) -> str:
    """`core` not preceded by a character of the class `before` nor followed by one of `after`, in RE2."""
    return rf"(?:^|(?P<pre>[^{before}]))(?P<v>{core})(?:$|(?P<post>[^{after}]))"


_WORD = r"\pL\pN_"  # Python's \w, which RE2 spells out

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
    rf"(?i)(?:^|(?P<pre>[^{_WORD}.%+\-]))(?P<v>[{_WORD}.%+\-]+{_OBFUSCATED_AT}[{_WORD}\-]+(?:{_OBFUSCATED_DOT}[{_WORD}\-]+)+)"
)
_SPELLED_HINT = Pattern(r"(?i)(?:[(\[{<]\s*(?:at|ät)\s*[)\]}>]|\s(?:at|ät)\s)")
_LETTER = re.compile(r"[^\W\d_]")  # one character class: cannot backtrack

# ---------------------------------------------------------------------------------------- base64, JWT

_B64_RUN = Pattern(r"[A-Za-z0-9+/_\-]{16,}(?:={1,2}|(?:%3D){1,2})?")
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"
_HEX_CHARS = "0123456789abcdef-"  # UUIDs, hashes: base64 of readable text always has other letters
_TRIVIAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.- "
_ASCII_DIGITS = str.maketrans("", "", "0123456789")

# ------------------------------------------------------------------------------- phone, IBAN, cards

_SEP = r"[\s./\-\x{2013}]?"
_INTERNATIONAL_PREFIX = re.compile(r"^(?:\+|00|%2[Bb])")  # anchored, no repetition
_PHONE_INTL = Pattern(
    _bounded(
        rf"(?:\+|00|%2[Bb])\s?[1-9]\d{{0,2}}{_SEP}(?:\(0\){_SEP})?\(?\d{{1,5}}\)?(?:{_SEP}\d{{2,}}){{1,5}}",
        rf"{_WORD}+\-",
        rf"{_WORD}\-",
    )
)
_PHONE_NATIONAL = Pattern(
    _bounded(
        r"(?:\(0\)\s?\d{1,5}|\(?0\d{1,5}\)?)(?:[\s/\-\x{2013}]\d{2,}){1,4}|0[1-9]\d{8,11}",
        rf"{_WORD}+.\-",
        rf"{_WORD}/\-",
    )
)
# North American (NANP): (212) 555-0199, 212-555-0199, 212.555.0199, +1 212 555 0199
_PHONE_NANP = Pattern(
    _bounded(r"(?:\+?1[\s.\-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.\-])\d{3}[\s.\-]\d{4}", rf"{_WORD}+.,\-", rf"{_WORD}/.\-")
)
# National numbers written without a trunk zero, in groups (347 123 4567, 612 34 56 78, 79 123 45 67)
_PHONE_GROUPED = Pattern(_bounded(r"[1-9]\d{1,3}(?:[ \-]\d{2,4}){2,4}", rf"{_WORD}+.,\-", rf"{_WORD}/.,\-"))
# The countries of the IBAN registry; with the checksum this keeps hex ids and the like out.
IBAN_COUNTRIES = frozenset(
    (  # noqa: SIM905
        "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL GR GT HN HR HU "
        "IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO OM PK PL PS PT QA RO RS RU SA "
        "SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE"
    ).split()
)
_IBAN = Pattern(_bounded(r"[A-Z]{2}\d{2}(?:\s?[A-Z0-9]){11,30}", "A-Za-z0-9", "A-Za-z0-9"))
# Grouped by four, or a bare run of a card network's length and prefix (a millisecond time starts with 1).
_CARD = Pattern(
    _bounded(r"\d{4}[ \-]\d{4}[ \-]\d{4}[ \-]\d{1,7}|3[47]\d{13}|[4-6]\d{15}", rf"{_WORD}.,", rf"{_WORD}.,")
)

# ------------------------------------------------------------------------------------- IP addresses

_IPV4 = Pattern(_bounded(r"\d{1,3}(?:\.\d{1,3}){3}", rf"{_WORD}.", rf"{_WORD}."))
_IPV6 = Pattern(_bounded(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}", rf"{_WORD}:.", rf"{_WORD}:"))

# A street and a house number, as written in the six languages (the number is what makes it an address).
_UPPER = "A-ZÄÖÜ"
_STREET = Pattern(
    _bounded(
        rf"[{_UPPER}][{_WORD}.\-]*(?:straße|strasse|str\.|gasse|weg|allee|platz|damm|ufer|straat|laan|gracht|plein|kade)"
        r"\s*\d{1,4}\s?[a-zA-Z]?"
        rf"|[{_UPPER}][{_WORD}\-]*\s+(?:Straße|Strasse|Str\.|Gasse|Weg|Allee|Platz|Damm|Ufer)\s*\d{{1,4}}[a-z]?"
        rf"|\d{{1,5}}[A-Za-z]?\s*,?\s+(?:[A-Z][{_WORD}'\-]*\s+){{1,3}}(?:Street|St\.|Avenue|Ave\.?|Road|Rd\.|Lane|Drive|Boulevard|Way)"
        rf"|\d{{1,4}}\s*,?\s+(?:rue|avenue|boulevard|bd|chemin|allée|impasse|place)\s+(?:(?:de|du|des|la|le|l'|d')\s*)*[A-ZÀ-Ý][{_WORD}'\-]*"
        rf"|(?:[Vv]ia|[Vv]iale|[Pp]iazza|[Cc]orso|[Cc]alle|[Aa]venida|[Pp]laza|[Pp]aseo|[Cc]arrer)\s+(?:[{_WORD}'\-]+\s+){{0,3}}"
        rf"[{_WORD}'\-]+,?\s+(?:n\.?\s*|nº\s*)?\d{{1,4}}",
        _WORD,
        _WORD,
    )
)

# What any street pattern needs: one of its words (a literal alternation, matched as one automaton).
_STREET_WORD = Pattern(
    r"(?i)stra(?:ss|ß)e|str\.|gasse|weg|allee|platz|damm|ufer|straat|laan|gracht|plein|kade|street|st\.|avenue|ave"
    r"|road|rd\.|lane|drive|boulevard|way|rue|bd|chemin|allée|impasse|place|via|piazza|corso|calle|avenida|plaza"
    r"|paseo|carrer"
)
# What a phone, card or IBAN needs: eight digits with at most three separators between each two.
_EIGHT_CLOSE_DIGITS = Pattern(r"\d(?:[\s./\-\x{2013}()+]{0,3}\d){7}")

# A URL written into text (a label, a title, a refused body): up to a space, a quote or a bracket.
_LINK = Pattern(r"(?i)https?://[^\s\"'<>()\[\]{}\\|^`]+")

# ----------------------------------------------------------------------------------- keyed values

_KEY = rf"[\pL_][{_WORD}.\-]*"  # unbounded: a counted repeat of a Unicode class swells the automaton
# An unquoted value: not `//…` (a protocol-relative URL) and not an object or array, spelled out for RE2.
_END = "&\\s,;}\\]\"'#?"  # what ends a value, and what it may not end on
_MID = "&\\n\\r,;}\\]\"'#?"  # inside, spaces are allowed
_UNQUOTED = rf"(?:[^{_END}{{\[/](?:[^{_MID}]*[^{_END}])?|/(?:[^{_MID}/][^{_MID}]*[^{_END}]|[^{_END}/])?)"
_KEYED = Pattern(
    rf"""(?:"(?P<k1>{_KEY})"|'(?P<k2>{_KEY})'|(?P<k3>{_KEY}))\s*(?P<sep>[:=])\s*"""
    rf"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|{_UNQUOTED})"""
)

_IDENTIFIER = Pattern(rf"[\pL_][{_WORD}.\-]*")


def _is_placeholder(text: str) -> bool:
    """`[email]`, `[redacted]`: what a detector left, and what the next one must leave."""
    inner = text[1:-1]
    return text[:1] == "[" and text[-1:] == "]" and inner.isascii() and inner.isalpha() and inner.islower()


_GAP_WORD = Pattern(rf"\[[a-z]+\]|\pL[{_WORD}.\-]*")
_QUOTED = Pattern(r'"(?:[^"\\]|\\.)*"(?P<key>\s*:)?|"(?:[^"\\]|\\.)*$')
_ESCAPE = Pattern(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}")
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


def _luhn(number: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


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


def _email(match: Match, tally: Tally) -> str:
    if not _LETTER.search(_HAS_AT.split_once(match.group(0))[-1]):
        return match.group(0)  # "3@45" is a score, not an address
    tally.replaced += 1
    return EMAIL_PLACEHOLDER


_SPELLED_AT_SPLIT = Pattern(rf"(?i){_OBFUSCATED_AT}")


def _spelled_email(match: Match, tally: Tally) -> str:
    if not _LETTER.search(_SPELLED_AT_SPLIT.split_once(match.named("v") or "")[-1]):
        return match.group(0)  # "meet at 10.30" is a time
    tally.replaced += 1
    return _edges(match, EMAIL_PLACEHOLDER)


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


def _phone(match: Match, tally: Tally, least: int) -> str:
    # E.164's 15 digits do not count the international prefix (+, 00) or a trunk zero written as (0)
    number = _INTERNATIONAL_PREFIX.sub("", match.named("v").strip()).replace("(0)", "")
    if digit_count(number) < least:
        return match.group(0)
    tally.replaced += 1  # more than E.164's 15: numbers written side by side, each a phone number
    return _edges(match, PHONE_PLACEHOLDER)


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
            return _edges(match, IBAN_PLACEHOLDER + found[end:])
        end = found.rfind(" ", 0, end)
    return match.group(0)


def _card(match: Match, tally: Tally) -> str:
    if not _luhn(_digits(match.named("v"))):
        return match.group(0)
    tally.replaced += 1
    return _edges(match, CARD_PLACEHOLDER)


def _ipv4(match: Match, tally: Tally) -> str:
    found = match.named("v")
    if any(int(octet) > 255 for octet in found.split(".")):
        return match.group(0)
    before = match.before("v", 2)
    if len(before) == 2 and before[1] == "/" and before[0].isalpha():
        return match.group(0)  # a product token's version (`Chrome/120.0.0.0`), not an address
    tally.replaced += 1
    return _edges(match, IP_PLACEHOLDER)


def _ipv6(match: Match, tally: Tally) -> str:
    found = match.named("v")
    if len(found) > 45 or found.count(":") < 2:
        return match.group(0)
    try:
        ipaddress.IPv6Address(found)
    except ValueError:
        return match.group(0)  # 12:30:45 is a time
    tally.replaced += 1
    return _edges(match, IP_PLACEHOLDER)


def _link(match: Match, tally: Tally, urls: frozenset[str]) -> str:
    return clean_url(match.group(0), tally, urls)


def _street(match: Match, tally: Tally) -> str:
    tally.replaced += 1
    return _edges(match, STREET_PLACEHOLDER)


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


def is_number(text: str) -> bool:
    """A decimal number as a query string writes it: `12`, `-3.5`."""
    head, _, tail = text.lstrip("-").partition(".")
    return bool(head) and head.isascii() and head.isdigit() and (not tail or (tail.isascii() and tail.isdigit()))


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
    keep = not inner or name in allowed or _is_placeholder(inner)
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
        elif not inner or _is_placeholder(inner) or (trusted and normalise_key(current_key) in allowed):
            out.append(token)
        else:
            tally.replaced += 1
            out.append(f'"{REDACTED}"' + (token[token.rindex('"') + 1 :] if is_key else ""))
    out.append(_GAP_WORD.sub(lambda m: _gap_word(m, tally), data[position:].decode()))
    return "".join(out)


def _gap_word(match: Match, tally: Tally) -> str:
    word = match.group(0)
    if word in ("true", "false", "null") or _is_placeholder(word):
        return word
    tally.replaced += 1
    return REDACTED


_AT_SIGNS = ("@", "%40", "\\u0040", "\\x40", "&#", "&commat;", "\uff20", "\ufe6b")


def _maybe_at(text: str) -> bool:
    """A cheap look for anything `_AT` could match."""
    return any(sign in text for sign in _AT_SIGNS) or "%2540" in text


def _scrub_plain(
    text: str, tally: Tally, allowed: frozenset[str], strict: bool, urls: frozenset[str], links: bool
) -> str:
    """Each detector behind a look that costs next to nothing, so that the short strings a row is made of
    pay only for the detectors that could find something in them. With `links`, URLs written into the text
    keep what a page column keeps (not in decoded text: there a query string's `&` would end no URL)."""
    if links and "://" in text:
        text = _LINK.sub(lambda m: _link(m, tally, urls), text)
    lower = text.lower()  # `_AT` ignores case: \U0040, &#X40;
    if _maybe_at(lower):
        text = _EMAIL.sub(lambda m: _email(m, tally), text)
        if _maybe_at(text.lower()):
            text = _EMAIL_RFC.sub(lambda m: _email(m, tally), text)
            lower = text.lower()
    if ("at" in lower or "ät" in lower) and _SPELLED_HINT.search(text):
        text = _sub_twice(_EMAIL_SPELLED, lambda m: _spelled_email(m, tally), text)
    if len(text) >= 16:
        text = _B64_RUN.sub(lambda m: _b64(m, tally), text)
    digits = digit_count(text)
    if digits and _STREET_WORD.search(text):
        text = _sub_twice(_STREET, lambda m: _street(m, tally), text)
    if digits >= 1 and text.count(":") >= 2:  # first: an IPv6 address may end in an IPv4 one
        text = _sub_twice(_IPV6, lambda m: _ipv6(m, tally), text)
    if digits >= 4 and text.count(".") >= 3:
        text = _sub_twice(_IPV4, lambda m: _ipv4(m, tally), text)
    if digits >= 8 and _EIGHT_CLOSE_DIGITS.search(text):
        text = _sub_twice(_IBAN, lambda m: _iban(m, tally), text)
        text = _sub_twice(_CARD, lambda m: _card(m, tally), text)
        text = _sub_twice(_PHONE_INTL, lambda m: _phone(m, tally, 8), text)
        text = _sub_twice(_PHONE_NATIONAL, lambda m: _phone(m, tally, 9), text)  # 8 digits would take 01/02/2024
        text = _sub_twice(_PHONE_NANP, lambda m: _phone(m, tally, 10), text)
        text = _sub_twice(_PHONE_GROUPED, lambda m: _phone(m, tally, 9), text)
    if ":" in text or "=" in text:  # last: a value's shape is surer than its key, and a key may cut a value short
        text = _KEYED.sub(lambda m: _keyed(m, tally, allowed, strict, urls), text)
    if strict and '"' in text:
        text = _strict_quoted(text, tally, allowed)
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


def _storable(text: str) -> str:
    """Surrogates (which decoding escapes makes) as what they stand for, lone ones as U+FFFD: RE2 reads UTF-8,
    and BigQuery stores only that."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an escaped pair (`\\ud83d\\ude00`) is one character; a lone half is none
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# Texts seen lately that held nothing to replace: a site's rows repeat the same bot ids, process names, labels,
# titles and user agents, so most strings of a row are found here. Only clean texts are kept, so the cache never
# holds a personal value; it is cleared when full (a flood of unique strings costs it nothing but its use).
_CLEAN: dict[tuple[str, frozenset[str], bool, frozenset[str]], None] = {}
CLEAN_CACHE_SIZE = 8192
CLEAN_CACHE_TEXT = 512  # longer texts are rare and seldom repeat


def scrub_text(
    text: str,
    tally: Tally,
    allowed_keys: frozenset[str] = frozenset(),
    strict: bool = False,
    url_params: frozenset[str] = frozenset(),
) -> str:
    """`text` without personal values. Escaped text is decoded first when only the decoded form gives a value
    away (`%2B49%20170…`, `jane\\u0040…`): the escaping is lost, the value too. `strict` (for bodies that
    could not be parsed) applies the allow-list to text: a value whose key is not in `allowed_keys` is gone.
    URLs under URL keys keep only allowed query parameters (`urls.py`), `url_params` among them."""
    if len(text) <= 15 and not text.strip(_TRIVIAL_CHARS):
        return text  # nothing can be found in it: no digits, no `@`, `:`, `=` or escapes, shorter than base64
    key = (text, allowed_keys, strict, url_params) if len(text) <= CLEAN_CACHE_TEXT else None
    if key is not None and key in _CLEAN:
        return text
    before = tally.replaced
    clean = _scrub(text, tally, allowed_keys, strict, url_params)
    if key is not None and clean == text and tally.replaced == before:
        if len(_CLEAN) >= CLEAN_CACHE_SIZE:
            _CLEAN.clear()
        _CLEAN[key] = None
    return clean


def _scrub(text: str, tally: Tally, allowed_keys: frozenset[str], strict: bool, url_params: frozenset[str]) -> str:
    """Twice where escapes are left: what only the decoded form gives away (`%2B49%20170…`, `jane\\u0040…`)
    is found in it, and then the decoded form is kept (its escaping is lost, the value too)."""
    if not text.isascii():
        text = _storable(ascii_digits(text))
    plus = "=" in text and not any(c in text for c in ' {}"')  # `+` is a space in a query string only
    first = _scrub_plain(text, tally, allowed_keys, strict, url_params, True)
    if "%" in first or "\\" in first or "&" in first:
        decoded = _unescaped(first, plus)
        if decoded != first:
            probe = Tally()
            second = _scrub_plain(ascii_digits(decoded), probe, allowed_keys, strict, url_params, False)
            if probe.replaced:
                tally.replaced += probe.replaced
                return second
    return first


# --------------------------------------------------------------------- values of typed places

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


# Three-letter primary language subtags browsers send (BCP 47 prefers two letters where ISO 639-1 has them):
# a closed list, so that `Max` or `Eva` in an Accept-Language header is no language.
_THREE_LETTER_LANGUAGES = frozenset(
    {
        "ast",
        "ceb",
        "chr",
        "ckb",
        "fil",
        "gsw",
        "haw",
        "hmn",
        "kok",
        "mai",
        "mni",
        "sat",
        "yue",
        "zgh",
        "bas",
        "dua",
        "ewo",
        "kab",
        "kam",
        "kln",
        "luo",
        "nus",
        "ses",
        "twq",
        "wae",
    }
)


def _language_tag(tag: str) -> bool:
    """`de`, `de-DE`, `zh-Hant-TW`, `es-419`, `*`: language, optional script, optional region."""
    if tag == "*":
        return True
    parts = tag.split("-")
    primary = parts[0].lower()
    if not (primary.isascii() and primary.isalpha()):
        return False
    if not (len(primary) == 2 or primary in _THREE_LETTER_LANGUAGES):
        return False
    rest = parts[1:]
    if rest and len(rest[0]) == 4 and rest[0].isascii() and rest[0].isalpha():
        rest = rest[1:]  # script
    if rest and (
        (len(rest[0]) == 2 and rest[0].isascii() and rest[0].isalpha()) or (len(rest[0]) == 3 and rest[0].isdigit())
    ):
        rest = rest[1:]  # region
    return not rest


def language_tags(text: str, tally: Tally) -> str | None:
    """A language column holds BCP 47 tags (an Accept-Language list, `q` weights dropped), nothing else."""
    tags: list[str] = []
    for item in text.split(",")[:10]:
        tag = item.split(";", 1)[0].strip().replace("_", "-")  # `de_DE`, as locales are often written
        if not tag:
            continue
        if _language_tag(tag):
            tags.append(tag)
        else:
            tally.replaced += 1
    return ",".join(tags) or None


def personal_event_name(name: str) -> bool:
    """An event name (snake_case, maybe a chat flow's own) that carries a phone number, an address or another
    value the detectors know (`tel_01705551234`, `mail_jane_example_com`): its words are read as text."""
    if digit_count(name) >= 6:
        return True
    words = name.replace("_", " ")
    probe = Tally()
    scrub_text(words, probe)
    return probe.replaced > 0
