"""What a key's name says: the one normal form of a key, and the words that make a key personal.

Keys decide most of privacy (`keys.py` keeps only analytical keys of a parsed object); in text that could not
be parsed, and in `key=value` pairs written into any string (`pairs.py`), these words decide which values
go. `First-Name`, `firstName` and `first_name` are one key.
"""

from __future__ import annotations

import re
from functools import lru_cache


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
