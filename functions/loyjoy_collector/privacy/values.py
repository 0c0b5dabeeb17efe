"""Personal values found by their shape, in any string, whatever key or language carried them.

Keys decide most of privacy (see `privacy.py`); this is the net under every string that is kept anyway: URLs,
titles, labels, ids, refused bodies that could not be parsed. It is built to survive damage, since hostile or
broken senders do not send tidy values: an e-mail is anything shaped like `local@domain` (however damaged the
local part, however escaped the `@`, with `+` tags and international domains); a JWT is found by its segments
one by one, and so is any base64 run that decodes to readable text; phone numbers, IBANs and card numbers are
found by their formats and checksums, street addresses by a street word and a house number; `key=value` and
`"key": "value"` pairs whose key names a personal field (in German, English, French, Italian, Spanish or Dutch)
lose their value. Percent-, unicode- and HTML-escaped forms are decoded and looked at again.

False positives are the price: `package@1.2` reads as an e-mail, a national number with a leading zero and
separators (`0170 1234567`, `030/12345678`) as a phone number. Plain dates are kept (a date is a birth date
only by its key), and so are names in free text: no shape tells `Erika` from a product.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from functools import lru_cache
from urllib.parse import unquote, unquote_plus

from .tally import Tally

EMAIL_PLACEHOLDER = "[email]"
JWT_PLACEHOLDER = "[jwt]"
BASE64_PLACEHOLDER = "[base64]"
PHONE_PLACEHOLDER = "[phone]"
IBAN_PLACEHOLDER = "[iban]"
CARD_PLACEHOLDER = "[card]"
STREET_PLACEHOLDER = "[address]"
REDACTED = "[redacted]"


@lru_cache(maxsize=4096)
def normalise_key(name: str) -> str:
    """`First-Name`, `firstName` and `first_name` are one key: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-zß-ÿ]", "", name.lower())


# Keys that name a personal field, normalised. Short words match whole keys only (`ort` is not in `sort`);
# stems match anywhere in a key (`mobile_phone`, `telefon_privat`, `customerLastName`).
PERSONAL_WORDS = frozenset(
    {
        # en
        "name", "fullname", "nickname", "dob", "age", "zip", "zipcode", "city", "town", "ip", "ipaddress",
        "text", "message", "comment", "payload", "freetext", "answer", "note", "notes", "salutation",
        "ssn", "bic", "swift", "taxid", "gender",
        # de
        "plz", "ort", "wohnort", "anrede", "antwort", "nachricht", "kommentar", "geschlecht", "alter",
        # fr
        "nom", "rue", "ville", "civilite",
        # it
        "nome", "via", "cap", "citta", "eta", "sesso",
        # es
        "calle", "ciudad", "edad", "sexo", "cp",
        # nl
        "naam", "straat", "woonplaats", "leeftijd",
    }
)  # fmt: skip
PERSONAL_STEMS = (
    # en
    "firstname", "lastname", "surname", "givenname", "familyname", "middlename", "maidenname", "username",
    "phone", "mobile", "telephone", "cellphone", "fax", "birth", "address", "street", "housenumber",
    "postal", "postcode", "iban", "accountnumber", "creditcard", "cardnumber", "passport", "socialsecurity",
    "nationalid", "idnumber", "licensenumber", "email", "mail",
    # de
    "vorname", "nachname", "familienname", "geburt", "telefon", "handy", "mobil", "rufnummer", "anschrift",
    "adresse", "strasse", "straße", "hausnummer", "postleitzahl", "kontonummer", "ausweis", "steuerid",
    "steuernummer", "sozialversicherung",
    # fr
    "prenom", "prénom", "nomdefamille", "telephone", "téléphone", "portable", "naissance", "codepostal",
    "numerorue",
    # it
    "cognome", "telefono", "cellulare", "nascita", "indirizzo", "codicefiscale",
    # es
    "nombre", "apellido", "teléfono", "movil", "móvil", "celular", "nacimiento", "direccion", "dirección",
    "codigopostal", "domicilio", "dni",
    # nl
    "voornaam", "achternaam", "telefoon", "mobiel", "geboorte", "adres", "huisnummer",
)  # fmt: skip


@lru_cache(maxsize=4096)
def personal_key(name: str) -> bool:
    key = normalise_key(name.rpartition(".")[2])  # `ep.vorname`: a GA4 parameter
    return key in PERSONAL_WORDS or any(stem in key for stem in PERSONAL_STEMS)


# ------------------------------------------------------------------------------------------- e-mail

_AT = r"(?:@|\uff20|\ufe6b|%40|%2540|\\u0040|\\x40|&#0*64;|&#x0*40;|&commat;)"
_ADDRESS_CHARS = r"[^\s\"'<>()\[\]{},;:/=&?#|@\uff20\ufe6b`]"
_EMAIL = re.compile(rf"{_ADDRESS_CHARS}{{1,128}}{_AT}{_ADDRESS_CHARS}{{2,255}}", re.IGNORECASE)
# Second pass, for what is left: every character RFC 5322 allows in a local part (`=`, `&`, `?`, `/`, `'`,
# backquotes, braces). Not first: in a URL it would take `?email=` along with the address.
_EMAIL_RFC = re.compile(rf"[^\s\"<>()\[\],;:@\uff20\ufe6b]{{1,128}}{_AT}{_ADDRESS_CHARS}{{2,255}}", re.IGNORECASE)
_HAS_AT = re.compile(_AT, re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")

# ---------------------------------------------------------------------------------------- base64, JWT

_B64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{16,}(?:={1,2}|(?:%3D){1,2})?")
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"
# Hex digits and hyphens (UUIDs, hashes): base64 of readable text always has other letters, so skip decoding.
_HEXISH = re.compile(r"[0-9a-f\-]+")
_MIXED_CASE = re.compile(r"(?=.*[A-Z])(?=.*[a-z])")  # base64 of 16+ characters of text has both, nearly always
# Nothing can be found in it: no digits, no `@`, `:`, `=` or escapes, and shorter than a base64 run.
_TRIVIAL = re.compile(r"[A-Za-z_.\- ]{0,15}")
_DIGIT = re.compile(r"\d")
_EIGHT_DIGITS = re.compile(r"(?:\D*\d){8}")

# ------------------------------------------------------------------------------- phone, IBAN, cards

_SEP = r"[\s./\-\u2013]?"
_INTERNATIONAL_PREFIX = re.compile(r"^(?:\+|00|%2[Bb])")
_PHONE_INTL = re.compile(
    rf"(?<![\w+\-])(?:\+|00|%2[Bb])\s?[1-9]\d{{0,2}}{_SEP}(?:\(0\){_SEP})?\(?\d{{1,5}}\)?(?:{_SEP}\d{{2,}}){{1,5}}(?![\w\-])"
)
_PHONE_NATIONAL = re.compile(r"(?<![\w+.,-])(?:\(?0\d{1,5}\)?(?:[\s/\-\u2013]\d{2,}){1,4}|0[1-9]\d{8,11})(?![\w/-])")
# The countries of the IBAN registry; with the checksum this keeps hex ids and the like out.
IBAN_COUNTRIES = frozenset(
    (  # noqa: SIM905
        "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL GR GT HN HR HU "
        "IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO OM PK PL PS PT QA RO RS RU SA "
        "SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE"
    ).split()
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:\s?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
# Grouped by four, or a bare run of a card network's length and prefix (a millisecond time starts with 1).
_CARD = re.compile(r"(?<![\w.,])(?:\d{4}[ \-]\d{4}[ \-]\d{4}[ \-]\d{1,7}|3[47]\d{13}|[4-6]\d{15})(?![\w.,])")

# A street and a house number, as written in the six languages (the number is what makes it an address).
_STREET = re.compile(
    r"(?<!\w)(?:"
    r"[A-ZÄÖÜ][\wäöüß.\-]*(?:straße|strasse|str\.|gasse|weg|allee|platz|damm|ufer|straat|laan|gracht|plein|kade)"
    r"\s*\d{1,4}\s?[a-zA-Z]?"
    r"|[A-ZÄÖÜ][\wäöüß\-]*\s+(?:Straße|Strasse|Str\.|Gasse|Weg|Allee|Platz|Damm|Ufer)\s*\d{1,4}[a-z]?"
    r"|\d{1,5}[A-Za-z]?\s*,?\s+(?:[A-Z][\w'\-]*\s+){1,3}(?:Street|St\.|Avenue|Ave\.?|Road|Rd\.|Lane|Drive|Boulevard|Way)"
    r"|\d{1,4}\s*,?\s+(?:rue|avenue|boulevard|bd|chemin|allée|impasse|place)\s+(?:(?:de|du|des|la|le|l'|d')\s*)*[A-ZÀ-Ý][\w'\-]*"
    r"|(?:[Vv]ia|[Vv]iale|[Pp]iazza|[Cc]orso|[Cc]alle|[Aa]venida|[Pp]laza|[Pp]aseo|[Cc]arrer)\s+(?:[\w'\-]+\s+){0,3}"
    r"[\w'\-]+,?\s+(?:n\.?\s*|nº\s*)?\d{1,4}"
    r")(?!\w)"
)

# ----------------------------------------------------------------------------------- keyed values

_KEYED = re.compile(
    r"""(?P<q>["']?)(?P<key>[^\W\d][\w.\-]{0,40})(?P=q)\s*(?P<sep>[:=])\s*"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|(?!//|[{\[])[^&\s,;}\]"'#?](?:[^&\n\r,;}\]"'#?]*[^&\s,;}\]"'#?])?)"""
)

_IDENTIFIER = re.compile(r"[A-Za-z_][\w.\-]{0,60}")
_PLACEHOLDER = re.compile(r"\[[a-z]+\]")
_GAP_WORD = re.compile(r"\[[a-z]+\]|[^\W\d_][\w.\-]*")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"(?P<key>\s*:)?|"(?:[^"\\]|\\.)*$')
_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _luhn(number: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = re.sub(r"\s", "", candidate)
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


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


def _email(match: re.Match[str], tally: Tally) -> str:
    domain = _HAS_AT.split(match.group(0), maxsplit=1)[-1]
    if not _LETTER.search(domain):
        return match.group(0)  # "3@45" is a score, not an address
    tally.replaced += 1
    return EMAIL_PLACEHOLDER


def _b64(match: re.Match[str], tally: Tally) -> str:
    run = match.group(0)
    if run.startswith("eyJ"):  # base64 of '{"': a JWT segment, whole or not
        tally.replaced += 1
        return JWT_PLACEHOLDER
    if _HEXISH.fullmatch(run) or not _MIXED_CASE.match(run) or _decoded_b64(run) is None:
        return run
    tally.replaced += 1
    return BASE64_PLACEHOLDER


def _phone(match: re.Match[str], tally: Tally, least: int) -> str:
    # E.164's 15 digits do not count the international prefix (+, 00) or a trunk zero written as (0)
    number = _INTERNATIONAL_PREFIX.sub("", match.group(0).strip()).replace("(0)", "")
    if not least <= len(_digits(number)) <= 15:
        return match.group(0)
    tally.replaced += 1
    return PHONE_PLACEHOLDER


def _iban(match: re.Match[str], tally: Tally) -> str:
    """The longest prefix with a valid checksum: the pattern may have run on into a following word."""
    found = match.group(0)
    if found[:2] not in IBAN_COUNTRIES:
        return found
    for end in range(len(found), 14, -1):
        if (end == len(found) or found[end] == " ") and _iban_valid(found[:end]):
            tally.replaced += 1
            return IBAN_PLACEHOLDER + found[end:]
    return found


def _card(match: re.Match[str], tally: Tally) -> str:
    if not _luhn(_digits(match.group(0))):
        return match.group(0)
    tally.replaced += 1
    return CARD_PLACEHOLDER


def _street(match: re.Match[str], tally: Tally) -> str:
    tally.replaced += 1
    return STREET_PLACEHOLDER


def _keyed(match: re.Match[str], tally: Tally, allowed: frozenset[str], strict: bool) -> str:
    key = match.group("key")
    value = match.group("value")
    inner = value.strip("\"'")
    keep = not inner or _PLACEHOLDER.fullmatch(inner) or normalise_key(key.rpartition(".")[2]) in allowed
    if keep or (not strict and not personal_key(key)):
        if len(value) > 2 and value[0] in "\"'" and ("=" in inner or ":" in inner):
            # a kept quoted value may hold pairs of its own: "url": "https://…/?vorname=Erika"
            start = match.start("value") - match.start(0) + 1
            body = _KEYED.sub(lambda m: _keyed(m, tally, allowed, False), value[1:-1])
            return match.group(0)[:start] + body + value[-1]
        return match.group(0)
    tally.replaced += 1
    quote = value[0] if value[0] in "\"'" else ""
    return match.group(0)[: match.start("value") - match.start(0)] + f"{quote}{REDACTED}{quote}"


def _strict_quoted(text: str, tally: Tally, allowed: frozenset[str]) -> str:
    """JSON-like text that did not parse. A string value is kept only under an allowed key (the key last seen
    before it, however deep the arrays between them); a string cut off by the end of the body is never kept,
    nor is any string value of a body with damaged bytes (its quotes cannot be trusted). Words outside quotes
    (a stray or lost quote shifts every string by one) are redacted too, but for JSON's own literals."""
    damaged = "\ufffd" in text
    last_key = ""
    out: list[str] = []
    position = 0
    for match in _QUOTED.finditer(text):
        out.append(_GAP_WORD.sub(lambda m: _gap_word(m, tally), text[position : match.start()]))
        position = match.end()
        token = match.group(0)
        dangling = len(token) < 2 or not token.endswith('"') or (match.group("key") is None and token.endswith('\\"'))
        inner = token[1 : token.rindex('"')] if match.group("key") else (token[1:] if dangling else token[1:-1])
        if match.group("key") and _IDENTIFIER.fullmatch(inner):
            last_key = inner
            out.append(token)
        elif (
            not inner
            or _PLACEHOLDER.fullmatch(inner)
            or (not dangling and not damaged and normalise_key(last_key) in allowed)
        ):
            out.append(token)
        else:
            tally.replaced += 1
            out.append(f'"{REDACTED}"' + (token[token.rindex('"') + 1 :] if match.group("key") else ""))
    out.append(_GAP_WORD.sub(lambda m: _gap_word(m, tally), text[position:]))
    return "".join(out)


def _gap_word(match: re.Match[str], tally: Tally) -> str:
    word = match.group(0)
    if word in ("true", "false", "null") or _PLACEHOLDER.fullmatch(word):
        return word
    tally.replaced += 1
    return REDACTED


def _scrub_plain(text: str, tally: Tally, allowed: frozenset[str], strict: bool) -> str:
    if _HAS_AT.search(text):
        text = _EMAIL.sub(lambda m: _email(m, tally), text)
        if _HAS_AT.search(text):
            text = _EMAIL_RFC.sub(lambda m: _email(m, tally), text)
    if len(text) >= 16:
        text = _B64_RUN.sub(lambda m: _b64(m, tally), text)
    if _DIGIT.search(text):
        text = _STREET.sub(lambda m: _street(m, tally), text)
    if _EIGHT_DIGITS.match(text):
        text = _IBAN.sub(lambda m: _iban(m, tally), text)
        text = _CARD.sub(lambda m: _card(m, tally), text)
        text = _PHONE_INTL.sub(lambda m: _phone(m, tally, 8), text)
        text = _PHONE_NATIONAL.sub(lambda m: _phone(m, tally, 9), text)  # 8 digits would take 01/02/2024
    if ":" in text or "=" in text:  # last: a value's shape is surer than its key, and a key may cut a value short
        text = _KEYED.sub(lambda m: _keyed(m, tally, allowed, strict), text)
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
            text = _ESCAPE.sub(lambda m: chr(int(m.group(0)[2:], 16)), text)
        if "&" in text:
            text = html.unescape(text)
    return text


def scrub_text(text: str, tally: Tally, allowed_keys: frozenset[str] = frozenset(), strict: bool = False) -> str:
    """`text` without personal values. Escaped text is decoded first when only the decoded form gives a value
    away (`%2B49%20170…`, `jane\\u0040…`): the escaping is lost, the value too. `strict` (for bodies that
    could not be parsed) applies the allow-list to text: a value whose key is not in `allowed_keys` is gone."""
    if _TRIVIAL.fullmatch(text):
        return text
    if "%" in text or "\\" in text or "&" in text:
        # `+` is a space in form-encoded text (a query string: pairs, no spaces, quotes or braces) only
        decoded = _unescaped(text, plus="=" in text and not any(c in text for c in ' {}"'))
        if decoded != text:
            probe, plain = Tally(), Tally()
            _scrub_plain(decoded, probe, allowed_keys, False)
            if probe.replaced and (_scrub_plain(text, plain, allowed_keys, False), plain.replaced)[1] < probe.replaced:
                text = decoded
    return _scrub_plain(text, tally, allowed_keys, strict)
